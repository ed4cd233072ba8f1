//! The offline wallet (see `clink_core::wallet::Wallet`), one method per core
//! method, for the apps.
//!
//! Local calls (drafts, queueing, balance, history) are blocking calls on
//! the wallet's SQLite store: quick, callable from any thread. Network calls
//! are `async` (Kotlin `suspend`, Swift and Python `async`). The core's
//! futures need a tokio runtime (reqwest, timers, the sync's background
//! batch): `async_runtime = "tokio"` makes uniffi poll each of them inside a
//! tokio context (async-compat's shared runtime), so the app needs none of
//! its own. A call the app cancels is dropped where it waits; the core has
//! stored everything it needs before it waits, so nothing is lost.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use clink_core::wallet as core;

use crate::secrets::{ForeignSecretStore, SecretStore};
use crate::wallet_error::WalletError;
use crate::wallet_types::{
    AccountSummary, ClockOffset, Draft, KnownPayee, OutboxItem, PendingWithdrawal,
    RegistrationStarted, SyncReport, Transfer, WalletEvent,
};

/// Receives the wallet's events, on whatever thread made the change: keep
/// it quick and hand the work to the UI thread.
#[uniffi::export(with_foreign)]
pub trait WalletListener: Send + Sync {
    fn on_event(&self, event: WalletEvent);
}

/// The core's listener over one the app implements.
struct ForeignListener(Arc<dyn WalletListener>);

impl core::WalletListener for ForeignListener {
    fn on_event(&self, event: core::WalletEvent) {
        let event = WalletEvent::from(event);
        // uniffi turns an exception thrown by the app's listener into a
        // panic here. The change the event reports is already stored, so the
        // call that made it must not fail because the app could not show it.
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.on_event(event)));
    }
}

/// The phone's offline wallet: drafts and a queue of confirmed remittances
/// in a local store, synced with the server exactly once each.
#[derive(uniffi::Object)]
pub struct Wallet {
    pub(crate) core: core::Wallet,
}

#[uniffi::export(async_runtime = "tokio")]
impl Wallet {
    /// Opens the wallet in `data_dir` (created if missing), talking to
    /// `server_url`, with its device keys in the app's `secrets`.
    #[uniffi::constructor]
    pub fn open(
        data_dir: String,
        server_url: String,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Arc<Wallet>, WalletError> {
        let secrets = Arc::new(ForeignSecretStore::new(secrets));
        let core = core::Wallet::open(&data_dir, &server_url, secrets)?;
        Ok(Arc::new(Wallet { core }))
    }

    /// Sets (or with null/nil/None removes) the listener for events.
    pub fn set_listener(&self, listener: Option<Arc<dyn WalletListener>>) {
        let listener =
            listener.map(|l| Arc::new(ForeignListener(l)) as Arc<dyn core::WalletListener>);
        self.core.set_listener(listener);
    }

    /// Registration step 1: the server sends a code to `phone`.
    pub async fn register(&self, phone: String) -> Result<RegistrationStarted, WalletError> {
        Ok(self.core.register(&phone).await?)
    }

    /// Registration step 2: the code, the name others see, and the PIN
    /// that will confirm payments.
    pub async fn verify(
        &self,
        code: String,
        display_name: String,
        pin: String,
    ) -> Result<AccountSummary, WalletError> {
        Ok(self.core.verify(&code, &display_name, &pin).await?)
    }

    /// The account as of the last sync; null before verification.
    pub fn account(&self) -> Result<Option<AccountSummary>, WalletError> {
        Ok(self.core.account()?)
    }

    /// The balance as of the last sync, in minor units.
    pub fn balance(&self) -> Result<i64, WalletError> {
        Ok(self.core.balance()?)
    }

    /// A draft payment to `payee`; works offline.
    pub fn draft_send(
        &self,
        payee: String,
        amount: i64,
        memo: String,
    ) -> Result<Draft, WalletError> {
        Ok(self.core.draft_send(&payee, amount, &memo)?)
    }

    /// A draft request for money from `payer`; works offline.
    pub fn draft_request(
        &self,
        payer: String,
        amount: i64,
        memo: String,
    ) -> Result<Draft, WalletError> {
        Ok(self.core.draft_request(&payer, amount, &memo)?)
    }

    pub fn edit_draft(
        &self,
        id: i64,
        counterparty: String,
        amount: i64,
        memo: String,
    ) -> Result<Draft, WalletError> {
        Ok(self.core.edit_draft(id, &counterparty, amount, &memo)?)
    }

    pub fn delete_draft(&self, id: i64) -> Result<(), WalletError> {
        Ok(self.core.delete_draft(id)?)
    }

    pub fn drafts(&self) -> Result<Vec<Draft>, WalletError> {
        Ok(self.core.drafts()?)
    }

    pub fn known_payees(&self) -> Result<Vec<KnownPayee>, WalletError> {
        Ok(self.core.known_payees()?)
    }

    /// Confirms a draft with the PIN and moves it to the outbox; works
    /// offline. The PIN is checked by the server when the item is synced.
    pub fn queue(&self, draft_id: i64, pin: String) -> Result<OutboxItem, WalletError> {
        Ok(self.core.queue(draft_id, &pin)?)
    }

    /// Confirms several drafts with one PIN entry, all or none.
    pub fn queue_drafts(
        &self,
        draft_ids: Vec<i64>,
        pin: String,
    ) -> Result<Vec<OutboxItem>, WalletError> {
        Ok(self.core.queue_drafts(draft_ids, &pin)?)
    }

    /// Confirms again an item that needs action, under its idempotency key.
    pub fn requeue(&self, item_id: i64, pin: String) -> Result<OutboxItem, WalletError> {
        Ok(self.core.requeue(item_id, &pin)?)
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>, WalletError> {
        Ok(self.core.outbox()?)
    }

    /// Sends the outbox and brings in requests and the balance. Safe to call
    /// again at any time: each item is posted exactly once.
    pub async fn sync_now(&self) -> Result<SyncReport, WalletError> {
        Ok(self.core.sync_now().await?)
    }

    /// History, newest first; `before_ms` pages back.
    pub fn history(
        &self,
        limit: u32,
        before_ms: Option<i64>,
    ) -> Result<Vec<Transfer>, WalletError> {
        Ok(into_transfers(self.core.history(limit, before_ms)?))
    }

    /// Requests for money waiting for this user's decision (as of the last sync).
    pub fn incoming_requests(&self) -> Result<Vec<Transfer>, WalletError> {
        Ok(into_transfers(self.core.incoming_requests()?))
    }

    /// Pays a request; online only.
    pub async fn approve_request(
        &self,
        request_id: String,
        pin: String,
    ) -> Result<Transfer, WalletError> {
        Ok(self.core.approve_request(&request_id, &pin).await?.into())
    }

    pub async fn decline_request(&self, request_id: String) -> Result<Transfer, WalletError> {
        Ok(self.core.decline_request(&request_id).await?.into())
    }

    /// Pays `payee` now: queued (PIN, idempotency key fixed) and sent at
    /// once, answering the second factor if the security policy asks for
    /// one. Offline, the item stays in the outbox for the next sync.
    pub async fn send(
        &self,
        payee: String,
        amount: i64,
        memo: String,
        pin: String,
    ) -> Result<Transfer, WalletError> {
        Ok(self.core.send(&payee, amount, &memo, &pin).await?.into())
    }

    /// Sends one queued (or unanswered) outbox item now, answering the
    /// second factor if needed; e.g. after `requeue` of an item that needed
    /// one.
    pub async fn send_now(&self, item_id: i64) -> Result<Transfer, WalletError> {
        Ok(self.core.send_now(item_id).await?.into())
    }

    /// Takes `amount` out of Clink, confirmed with the PIN. Without an
    /// answer the withdrawal stays pending: withdrawing the same amount
    /// again finishes it, exactly once.
    pub async fn withdraw(&self, amount: i64, pin: String) -> Result<Transfer, WalletError> {
        Ok(self.core.withdraw(amount, &pin).await?.into())
    }

    /// The withdrawal still waiting for an answer, if any.
    pub fn pending_withdrawal(&self) -> Result<Option<PendingWithdrawal>, WalletError> {
        Ok(self.core.pending_withdrawal()?)
    }

    /// Sets the security policy (PIN): sends and approvals above
    /// `second_factor_above` need the second factor; null turns it off.
    pub async fn set_security_policy(
        &self,
        second_factor_above: Option<i64>,
        pin: String,
    ) -> Result<AccountSummary, WalletError> {
        Ok(self
            .core
            .set_security_policy(second_factor_above, &pin)
            .await?)
    }

    /// Makes this install's second-factor key (kept in the app's secret
    /// store) and registers it with the PIN; again registers the same key.
    pub async fn register_second_factor(&self, pin: String) -> Result<AccountSummary, WalletError> {
        Ok(self.core.register_second_factor(&pin).await?)
    }

    /// Cancels a request this user made that the payer has not answered.
    pub async fn cancel_request(&self, request_id: String) -> Result<Transfer, WalletError> {
        Ok(self.core.cancel_request(&request_id).await?.into())
    }

    /// Measures the offset to the server's clock and keeps it for signing.
    pub async fn estimate_clock_offset(&self) -> Result<ClockOffset, WalletError> {
        Ok(self.core.estimate_clock_offset().await?)
    }

    /// Server time minus local time, from the last estimate.
    pub fn clock_offset_ms(&self) -> Result<Option<i64>, WalletError> {
        Ok(self.core.clock_offset_ms()?)
    }
}

fn into_transfers(views: Vec<clink_core::wire::TransferView>) -> Vec<Transfer> {
    views.into_iter().map(Transfer::from).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use clink_core::wire::ErrorCode;

    use super::*;
    use crate::secrets::SecretError;
    use crate::wallet_types::OutboxState;

    /// An app's secret store: a map.
    #[derive(Default)]
    struct MapStore(Mutex<HashMap<String, Vec<u8>>>);

    impl SecretStore for MapStore {
        fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretError> {
            Ok(self.0.lock().unwrap().get(&name).cloned())
        }

        fn put(&self, name: String, secret: Vec<u8>) -> Result<(), SecretError> {
            self.0.lock().unwrap().insert(name, secret);
            Ok(())
        }

        fn delete(&self, name: String) -> Result<bool, SecretError> {
            Ok(self.0.lock().unwrap().remove(&name).is_some())
        }
    }

    fn offline_wallet(dir: &tempfile::TempDir) -> Arc<Wallet> {
        Wallet::open(
            dir.path().to_str().unwrap().into(),
            "http://127.0.0.1:9".into(),
            Arc::new(MapStore::default()),
        )
        .unwrap()
    }

    #[test]
    fn each_field_the_core_checks_becomes_its_own_exception() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = offline_wallet(&dir);
        assert!(matches!(
            wallet.draft_send("not a number".into(), 5, String::new()),
            Err(WalletError::InvalidPhoneNumber { .. })
        ));
        assert!(matches!(
            wallet.draft_send("090-1234-5678".into(), 0, String::new()),
            Err(WalletError::InvalidAmount { .. })
        ));
        assert!(matches!(
            wallet.draft_request("090-1234-5678".into(), 5, "a\u{7}".into()),
            Err(WalletError::InvalidMemo { .. })
        ));
        let draft = wallet
            .draft_send("090-1234-5678".into(), 800, "lunch".into())
            .unwrap();
        assert!(matches!(
            wallet.queue(draft.id, "12".into()),
            Err(WalletError::InvalidPin { .. })
        ));
        assert!(matches!(
            wallet.queue(draft.id, "1234".into()),
            Err(WalletError::NotRegistered { .. })
        ));
        assert!(matches!(
            wallet.delete_draft(draft.id + 1),
            Err(WalletError::DraftNotFound { id, .. }) if id == draft.id + 1
        ));
        assert_eq!(wallet.drafts().unwrap().len(), 1);
    }

    #[test]
    fn server_refusals_keep_their_code_and_counters() {
        let refused = |code, attempts_remaining, locked_until_ms| {
            WalletError::from(core::WalletError::Refused {
                code,
                message: "no".into(),
                attempts_remaining,
                locked_until_ms,
            })
        };
        assert!(matches!(
            refused(ErrorCode::WrongPin, Some(3), None),
            WalletError::WrongPin {
                attempts_remaining: Some(3),
                ..
            }
        ));
        assert!(matches!(
            refused(ErrorCode::AccountLocked, None, Some(42)),
            WalletError::Locked {
                locked_until_ms: Some(42),
                ..
            }
        ));
        // The sound and bump refusals an app tells apart have their own.
        assert!(matches!(
            refused(ErrorCode::TokenUsed, None, None),
            WalletError::TokenUsed { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::TokenExpired, None, None),
            WalletError::TokenExpired { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::TokenUnknown, None, None),
            WalletError::TokenUnknown { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::BumpRejected, None, None),
            WalletError::BumpRejected { .. }
        ));
        // Memo and display name: the same exception as the wallet's own check.
        assert!(matches!(
            refused(ErrorCode::InvalidMemo, None, None),
            WalletError::InvalidMemo { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::InvalidDisplayName, None, None),
            WalletError::InvalidDisplayName { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::UnknownPayee, None, None),
            WalletError::Refused {
                code: ErrorCode::UnknownPayee,
                ..
            }
        ));
    }

    #[test]
    fn second_factor_withdrawal_and_request_refusals_have_their_own_exceptions() {
        let refused = |code, attempts_remaining| {
            WalletError::from(core::WalletError::Refused {
                code,
                message: "no".into(),
                attempts_remaining,
                locked_until_ms: None,
            })
        };
        assert!(matches!(
            refused(ErrorCode::WrongChallengeResponse, Some(2)),
            WalletError::WrongChallengeResponse {
                attempts_remaining: Some(2),
                ..
            }
        ));
        assert!(matches!(
            refused(ErrorCode::OcraKeyNotRegistered, None),
            WalletError::SecondFactorNotRegistered { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::NotFound, None),
            WalletError::NotFound { .. }
        ));
        assert!(matches!(
            refused(ErrorCode::ClaimNotPending, None),
            WalletError::RequestNotPending { .. }
        ));
        assert!(matches!(
            WalletError::from(core::WalletError::SecondFactorNotRegistered),
            WalletError::SecondFactorNotRegistered { description } if description.contains("register")
        ));
        assert!(matches!(
            WalletError::from(core::WalletError::WithdrawalPending { amount: 500 }),
            WalletError::WithdrawalPending { amount: 500, .. }
        ));
    }

    /// A listener with a bug: counts its calls, then panics, as uniffi does
    /// when the app's listener throws.
    #[derive(Default)]
    struct ThrowingListener(AtomicU32);

    impl WalletListener for ThrowingListener {
        fn on_event(&self, _event: WalletEvent) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("the app's listener threw");
        }
    }

    #[test]
    fn a_listener_that_throws_does_not_fail_the_change_it_reports() {
        use clink_core::wallet::WalletListener as _;
        let app = Arc::new(ThrowingListener::default());
        let listener = ForeignListener(app.clone());
        listener.on_event(core::WalletEvent::OutboxItemChanged {
            item_id: 1,
            state: OutboxState::Accepted,
        });
        listener.on_event(core::WalletEvent::BalanceChanged { balance: 5 });
        assert_eq!(app.0.load(Ordering::SeqCst), 2);
    }
}
