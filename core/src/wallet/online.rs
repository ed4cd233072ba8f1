//! The wallet's operations that need the server at once: paying now (an
//! outbox item sent on its own, answering the second factor), withdrawing,
//! the security policy, the second-factor key, and cancelling one's own
//! request.
//!
//! **Second factor.** Above the user's `second_factor_above` the server
//! answers a send or a request approval with `second_factor_required`. The
//! wallet then asks for a fresh challenge (`POST /v1/challenges`), answers it
//! with this install's OCRA key from the secret store
//! (`challenge::clink_response`) and posts the same request once more. The
//! key is made on the device and registered with the PIN
//! ([`Wallet::register_second_factor`]); without it the payment fails with
//! [`WalletError::SecondFactorNotRegistered`]. Items sent in a sync batch
//! cannot do this (a challenge is fresh and single-use, the item was signed
//! offline): they come back `needs_action`; [`Wallet::requeue`] with the PIN
//! and [`Wallet::send_now`] finish them.
//!
//! **Online sends, exactly once.** [`Wallet::send`] queues the payment as an
//! outbox item (its idempotency key fixed and stored) and sends it at once;
//! the item is marked `sending` on disk before the request leaves. An answer
//! lost on the way back leaves it `sending`: the next sync or `send_now`
//! sends it again under its key and the server answers with the first
//! result (the challenge fields are not part of what the key stands for).
//!
//! **Withdrawals, exactly once.** The idempotency key is made when the user
//! confirms a withdrawal and stored (a [`PendingWithdrawal`]) before the
//! request leaves. A definite answer (done, or refused) clears it. Without
//! an answer (the network failed, the app stopped) it stays: the next
//! `withdraw` of the same amount is the retry and goes under the same key,
//! so the server does it once whatever happened to the first try; another
//! amount is refused with [`WalletError::WithdrawalPending`] until the
//! pending one is answered. After [`MAX_ITEM_AGE_MS`] (24 h) an unanswered
//! withdrawal is no longer sent again (the server keeps keys 48 h, so a
//! later resend could be done twice): the next withdrawal gets a new key,
//! and whatever became of the old one shows in the balance and history.

use serde::{Deserialize, Serialize};

use super::*;
use crate::challenge::{self, OcraKey};
use crate::wire::MAX_ITEM_AGE_MS;

const META_PENDING_WITHDRAWAL: &str = "pending_withdrawal";

/// A withdrawal the user confirmed that has no answer from the server yet:
/// `withdraw` the same amount again to finish it (it is done once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PendingWithdrawal {
    pub amount: i64,
    /// Fixed when the user confirmed; every retry uses it.
    pub idempotency_key: String,
    pub committed_at_ms: i64,
}

/// A payment that may need a second factor.
pub(super) enum Payment<'a> {
    Send(&'a SendRequest),
    Approve(&'a str, &'a ApproveClaimRequest),
}

/// The server asked for a second factor (`refusal`) and the wallet could
/// not give one (`error`).
pub(super) struct NoSecondFactor {
    pub refusal: ApiError,
    pub error: WalletError,
}

/// Checks a request (claim) id before it goes into a path.
pub(super) fn check_request_id(id: &str) -> Result<(), WalletError> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(invalid("request id", format!("{id:?} is not a request id")))
    }
}

impl Wallet {
    // ------------------------------------------------------------ sends

    /// Pays `payee` now: queues the payment like [`queue`](Self::queue)
    /// (PIN; idempotency key fixed and stored) and sends it at once with
    /// [`send_now`](Self::send_now). Offline, the item stays in the outbox
    /// and goes with the next sync.
    pub async fn send(
        &self,
        payee: &str,
        amount: i64,
        memo: &str,
        pin: &str,
    ) -> Result<TransferView, WalletError> {
        check_pin(pin)?;
        self.registered_key()?;
        let draft = self.draft_send(payee, amount, memo)?;
        let item = match self.queue(draft.id, pin) {
            Ok(item) => item,
            Err(e) => {
                let _ = self.delete_draft(draft.id);
                return Err(e);
            }
        };
        self.send_now(item.id).await
    }

    /// Sends one `queued` (or unanswered `sending`) outbox item now, on its
    /// own, answering the second factor if the security policy asks for one.
    /// The answer is recorded on the item as a sync would record it; a
    /// refusal the user can fix leaves it `needs_action`.
    pub async fn send_now(&self, item_id: i64) -> Result<TransferView, WalletError> {
        let client = self.registered_client()?;
        // Not while a sync runs: it could send the same item without the
        // second factor and record the other answer.
        let _one_at_a_time = self.inner.sync_running.lock().await;
        let item = self.store().outbox_item(item_id)?;
        match item.state {
            OutboxState::Queued | OutboxState::Sending => {}
            OutboxState::NeedsAction => {
                return Err(WalletError::WrongItemState {
                    id: item_id,
                    detail: "it needs action: requeue it with the PIN first".into(),
                });
            }
            done => {
                return Err(WalletError::WrongItemState {
                    id: item_id,
                    detail: format!("it is {} already", done.as_str()),
                });
            }
        }
        let sealed = self.store().sealed_item(item_id)?;
        let signed = self.open_item(&item, &sealed)?;
        let (sending, _) = self.store().dispatch_one(item_id, now_ms())?;
        if sending.state != item.state {
            self.emit(WalletEvent::OutboxItemChanged {
                item_id,
                state: sending.state,
            });
        }
        // The same age limit as a sync's: an older item may have been done
        // under a key the server has since forgotten.
        if self.server_now_ms()? - signed.signed_at_ms > MAX_ITEM_AGE_MS {
            let detail = "it was confirmed more than 24 h ago: requeue it with the PIN";
            self.record_item_answer(
                item_id,
                &ItemAnswer::NeedsAction(Reason {
                    code: ErrorCode::StaleTimestamp,
                    message: detail.into(),
                }),
            )?;
            return Err(WalletError::WrongItemState {
                id: item_id,
                detail: detail.into(),
            });
        }
        let mut clock_checked = false;
        let result = loop {
            let outcome = match signed.kind {
                SyncItemKind::Send => {
                    let body: SendRequest = parse_item(item_id, &signed.body)?;
                    self.with_second_factor(&client, Payment::Send(&body)).await
                }
                SyncItemKind::Claim => {
                    let body: ClaimRequest = parse_item(item_id, &signed.body)?;
                    Ok(client.claim(&body).await)
                }
            };
            let result = match outcome {
                Ok(result) => result,
                Err(NoSecondFactor { refusal, error }) => {
                    self.record_item_answer(item_id, &ItemAnswer::NeedsAction(refusal.into()))?;
                    return Err(error);
                }
            };
            // This request's own timestamp was refused, not the item: the
            // phone's clock moved. Measure it again and try once more.
            if let Err(ClientError::Api(e)) = &result
                && e.code == ErrorCode::StaleTimestamp
                && !clock_checked
            {
                clock_checked = true;
                self.estimate_clock_offset().await?;
                continue;
            }
            break result;
        };
        match result {
            Ok(view) => {
                self.record_item_answer(item_id, &ItemAnswer::Accepted(view.clone()))?;
                self.refresh_after_payment(&client).await;
                Ok(view)
            }
            Err(ClientError::Api(e)) => {
                self.record_item_answer(item_id, &ItemAnswer::from_error(e.clone()))?;
                Err(ClientError::Api(e).into())
            }
            // No answer: the item stays `sending` and goes again.
            Err(e) => Err(e.into()),
        }
    }

    fn record_item_answer(&self, item_id: i64, answer: &ItemAnswer) -> Result<(), WalletError> {
        if let Some(state) = self.store().record_answer(item_id, answer, now_ms())? {
            self.emit(WalletEvent::OutboxItemChanged { item_id, state });
        }
        Ok(())
    }

    // ---------------------------------------------------- second factor

    /// Posts `payment`; if the server asks for a second factor, answers a
    /// fresh challenge with this install's key and posts it once more. The
    /// inner result is the server's last answer.
    pub(super) async fn with_second_factor(
        &self,
        client: &ApiClient,
        payment: Payment<'_>,
    ) -> Result<Result<TransferView, ClientError>, NoSecondFactor> {
        let refusal = match post(client, &payment, None).await {
            Err(ClientError::Api(e)) if e.code == ErrorCode::SecondFactorRequired => e,
            other => return Ok(other),
        };
        match self.answer_challenge(client).await {
            Ok(proof) => Ok(post(client, &payment, Some(proof)).await),
            Err(error) => Err(NoSecondFactor { refusal, error }),
        }
    }

    /// A fresh challenge and this install's answer to it: `(id, response)`.
    async fn answer_challenge(&self, client: &ApiClient) -> Result<(String, String), WalletError> {
        // Read, never made here: a key the server does not know would only
        // count wrong answers toward the lockout.
        let key = match self.inner.secrets.get(secrets::OCRA_KEY)? {
            Some(bytes) => {
                OcraKey::from_bytes(bytes.expose()).map_err(|e| WalletError::Secrets {
                    detail: format!("the stored second-factor key is unusable: {e}"),
                })?
            }
            None => return Err(WalletError::SecondFactorNotRegistered),
        };
        let issued = match client.new_challenge().await {
            Ok(issued) => issued,
            Err(ClientError::Api(e)) if e.code == ErrorCode::OcraKeyNotRegistered => {
                self.store().delete_meta(META_SECOND_FACTOR_REGISTERED_AT)?;
                return Err(WalletError::SecondFactorNotRegistered);
            }
            Err(e) => return Err(e.into()),
        };
        if issued.suite != challenge::CLINK_SUITE {
            return Err(WalletError::Protocol {
                detail: format!("a challenge for the unknown suite {:?}", issued.suite),
            });
        }
        let response = challenge::clink_response(&key, &issued.challenge).map_err(|e| {
            WalletError::Protocol {
                detail: format!("the server's challenge cannot be answered: {e}"),
            }
        })?;
        Ok((issued.challenge_id, response))
    }

    /// Makes this install's second-factor key (once; it stays in the secret
    /// store) and registers it with the server, confirmed with the PIN.
    /// Calling it again registers the same key again.
    pub async fn register_second_factor(&self, pin: &str) -> Result<AccountSummary, WalletError> {
        check_pin(pin)?;
        let client = self.registered_client()?;
        let key = secrets::ocra_key(self.inner.secrets.as_ref(), &self.inner.rng)?;
        let registered = client.register_ocra_key(&key, pin).await?;
        self.store().set_meta(
            META_SECOND_FACTOR_REGISTERED_AT,
            &registered.registered_at_ms.to_string(),
        )?;
        self.account()?.ok_or(WalletError::NotRegistered)
    }

    /// Sets the security policy: sends and approvals above
    /// `second_factor_above` need the second factor as well as the PIN;
    /// `None` turns it off. Confirmed with the PIN.
    pub async fn set_security_policy(
        &self,
        second_factor_above: Option<i64>,
        pin: &str,
    ) -> Result<AccountSummary, WalletError> {
        if let Some(limit) = second_factor_above
            && limit < 0
        {
            return Err(invalid(
                "amount",
                format!("the second-factor threshold cannot be negative, got {limit}"),
            ));
        }
        check_pin(pin)?;
        let client = self.registered_client()?;
        let account = client
            .update_policy(&UpdatePolicyRequest {
                second_factor_above,
                pin: pin.to_string(),
            })
            .await?;
        self.adopt_account(&account)?;
        self.account()?.ok_or(WalletError::NotRegistered)
    }

    // -------------------------------------------------------- withdrawals

    /// Takes `amount` out of Clink (to the user's bank), confirmed with the
    /// PIN. Exactly once, however often it is retried (see the module docs).
    pub async fn withdraw(&self, amount: i64, pin: &str) -> Result<TransferView, WalletError> {
        if amount <= 0 {
            return Err(invalid("amount", format!("must be positive, got {amount}")));
        }
        check_pin(pin)?;
        let client = self.registered_client()?;
        // One at a time: two quick taps cannot each make a key.
        let _one_at_a_time = self.inner.sync_running.lock().await;
        let pending = self.commit_withdrawal(amount)?;
        let result = client
            .withdraw(&WithdrawRequest {
                idempotency_key: pending.idempotency_key,
                amount,
                pin: pin.to_string(),
            })
            .await;
        match result {
            Ok(view) => {
                self.store().put_history(&view)?;
                self.store().delete_meta(META_PENDING_WITHDRAWAL)?;
                self.refresh_after_payment(&client).await;
                Ok(view)
            }
            Err(ClientError::Api(e)) if !e.code.is_retryable() => {
                // Refused for good: nothing was done under this key.
                self.store().delete_meta(META_PENDING_WITHDRAWAL)?;
                Err(ClientError::Api(e).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The withdrawal waiting for an answer, if any (younger than 24 h).
    pub fn pending_withdrawal(&self) -> Result<Option<PendingWithdrawal>, WalletError> {
        let Some(json) = self.store().meta(META_PENDING_WITHDRAWAL)? else {
            return Ok(None);
        };
        let pending: PendingWithdrawal =
            serde_json::from_str(&json).map_err(|_| WalletError::Storage {
                detail: "the pending withdrawal is unreadable".into(),
            })?;
        Ok((now_ms() - pending.committed_at_ms <= MAX_ITEM_AGE_MS).then_some(pending))
    }

    /// The key for a withdrawal of `amount`: the unanswered one's if it is
    /// its retry, else a new one, stored before anything is sent.
    fn commit_withdrawal(&self, amount: i64) -> Result<PendingWithdrawal, WalletError> {
        match self.pending_withdrawal()? {
            Some(pending) if pending.amount == amount => Ok(pending),
            Some(pending) => Err(WalletError::WithdrawalPending {
                amount: pending.amount,
            }),
            None => {
                let pending = PendingWithdrawal {
                    amount,
                    idempotency_key: self.new_idempotency_key()?,
                    committed_at_ms: now_ms(),
                };
                let json = serde_json::to_string(&pending).expect("serialisable");
                self.store().set_meta(META_PENDING_WITHDRAWAL, &json)?;
                Ok(pending)
            }
        }
    }

    // ----------------------------------------------------------- requests

    /// Cancels a request this user made that the payer has not answered.
    /// The payer's inbox drops it at their next sync.
    pub async fn cancel_request(&self, request_id: &str) -> Result<TransferView, WalletError> {
        check_request_id(request_id)?;
        let client = self.registered_client()?;
        let view = client.cancel_claim(request_id).await?;
        self.store().put_history(&view)?;
        Ok(view)
    }

    // ------------------------------------------------------------ account

    /// The account after a payment the server confirmed. A failure here
    /// does not fail the payment (it is done and recorded): the next sync
    /// brings the balance.
    pub(super) async fn refresh_after_payment(&self, client: &ApiClient) {
        let _ = self.refresh_balance(client).await;
    }

    /// Keeps an account view the server sent, and tells the listener if the
    /// balance moved.
    fn adopt_account(&self, account: &AccountView) -> Result<(), WalletError> {
        let old = self.balance()?;
        self.save_account(account)?;
        if account.balance != old {
            self.emit(WalletEvent::BalanceChanged {
                balance: account.balance,
            });
        }
        Ok(())
    }
}

/// One try of `payment`, with the second factor if given.
async fn post(
    client: &ApiClient,
    payment: &Payment<'_>,
    proof: Option<(String, String)>,
) -> Result<TransferView, ClientError> {
    let (challenge_id, challenge_response) = proof.unzip();
    match payment {
        Payment::Send(body) => {
            client
                .send(&SendRequest {
                    challenge_id,
                    challenge_response,
                    ..(*body).clone()
                })
                .await
        }
        Payment::Approve(id, body) => {
            let approval = ApproveClaimRequest {
                challenge_id,
                challenge_response,
                ..(*body).clone()
            };
            client.approve_claim_with(id, &approval).await
        }
    }
}

fn parse_item<T: serde::de::DeserializeOwned>(item_id: i64, body: &str) -> Result<T, WalletError> {
    serde_json::from_str(body).map_err(|_| WalletError::Storage {
        detail: format!("outbox item {item_id} does not hold a readable request"),
    })
}
