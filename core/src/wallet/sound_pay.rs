//! Pay by sound, the phone's side.
//!
//! Payee: [`Wallet::request_by_sound`] asks the server for a single-use
//! token (valid about a minute) and gives back a [`SoundRequest`] holding the
//! PCM to play (near-ultrasound by default, audible where the sample rate or
//! the app asks for it); `Playing` → `RequestSent` → `Paid` / `Declined` /
//! `Expired`.
//!
//! Payer: [`Wallet::listen_for_token`] gives a [`SoundPayment`]; the app
//! pushes microphone audio in chunks of any size, `Listening` → `Redeeming`
//! (a token was heard) → `Confirm` (approve with the PIN, or decline) →
//! `Paid` / `Declined`; a token already used, or not from this server, ends
//! in `Failed`, an old one in `Expired`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::pairing::{Decision, is_expired, wait_for_decision};
use super::{Avatar, Wallet, WalletError, invalid, lock};
use crate::acoustic::{Profile, Token, TokenDecoder, TokenModem};
use crate::wire::*;

/// How often the payee's flow asks whether its token was redeemed.
const REDEEM_POLL: Duration = Duration::from_millis(300);

/// The profile for a sample rate: near-ultrasound where it fits, else audible.
pub fn default_profile(sample_rate_hz: u32) -> Profile {
    if sample_rate_hz >= Profile::NearUltrasound.min_sample_rate_hz() {
        Profile::NearUltrasound
    } else {
        Profile::Audible
    }
}

// ------------------------------------------------------------------ payee

#[derive(Clone, Debug, PartialEq)]
pub enum SoundRequestState {
    /// Play [`SoundRequest::pcm`] (again and again) until `expires_at_ms`.
    Playing {
        expires_at_ms: i64,
    },
    /// A payer heard it; the payer is asked to approve.
    RequestSent {
        payee_display_name: String,
        amount: i64,
        memo: String,
    },
    Paid,
    Declined,
    Expired,
    Failed {
        error: WalletError,
    },
}

/// A payee's request by sound.
pub struct SoundRequest {
    wallet: Wallet,
    token: Token,
    pcm: Vec<f32>,
    profile: Profile,
    state: Mutex<SoundRequestState>,
    request_id: Mutex<Option<String>>,
}

impl SoundRequest {
    pub(super) async fn issue(
        wallet: Wallet,
        amount: i64,
        memo: &str,
        sample_rate_hz: u32,
        profile: Option<Profile>,
    ) -> Result<SoundRequest, WalletError> {
        if amount <= 0 {
            return Err(invalid("amount", format!("must be positive, got {amount}")));
        }
        let profile = profile.unwrap_or_else(|| default_profile(sample_rate_hz));
        let modem = TokenModem::new(profile, sample_rate_hz)
            .map_err(|e| invalid("sample rate", e.to_string()))?;
        let client = wallet.registered_client()?;
        let issued = client
            .issue_sound_token(&IssueSoundTokenRequest {
                amount,
                memo: memo.to_string(),
            })
            .await?;
        let token = decode_token(&issued.token).ok_or_else(|| WalletError::Protocol {
            detail: format!("the server's token {:?} is not 16 bytes", issued.token),
        })?;
        Ok(SoundRequest {
            pcm: modem.modulate(&token),
            wallet,
            token,
            profile,
            state: Mutex::new(SoundRequestState::Playing {
                expires_at_ms: issued.expires_at_ms,
            }),
            request_id: Mutex::new(None),
        })
    }

    /// The token as mono PCM at the requested sample rate, about half a
    /// second; play it in a loop.
    pub fn pcm(&self) -> &[f32] {
        &self.pcm
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn state(&self) -> SoundRequestState {
        lock(&self.state).clone()
    }

    fn set(&self, state: SoundRequestState) -> SoundRequestState {
        *lock(&self.state) = state.clone();
        state
    }

    /// Waits up to `timeout_ms` for a payer to redeem the token and decide:
    /// returns `Paid`, `Declined` or `Expired`, or the current state
    /// (`Playing`, `RequestSent`) if the time ran out first.
    pub async fn wait_for_payment(
        &self,
        timeout_ms: u64,
    ) -> Result<SoundRequestState, WalletError> {
        let client = self.wallet.registered_client()?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        let request_id = loop {
            if let Some(id) = lock(&self.request_id).clone() {
                break id;
            }
            match client.sound_token_status(&self.token).await? {
                SoundTokenStatus::Waiting { .. } => {}
                SoundTokenStatus::Redeemed { request } => {
                    *lock(&self.request_id) = Some(request.request_id.clone());
                    self.set(SoundRequestState::RequestSent {
                        payee_display_name: request.payee_display_name,
                        amount: request.amount,
                        memo: request.memo,
                    });
                    continue;
                }
                SoundTokenStatus::Expired => return Ok(self.set(SoundRequestState::Expired)),
            }
            if tokio::time::Instant::now() + REDEEM_POLL > deadline {
                return Ok(self.state());
            }
            tokio::time::sleep(REDEEM_POLL).await;
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let state =
            match wait_for_decision(&self.wallet, &request_id, left.as_millis() as u64).await? {
                Some(Decision::Paid) => SoundRequestState::Paid,
                Some(Decision::Declined) => SoundRequestState::Declined,
                Some(Decision::Expired) => SoundRequestState::Expired,
                // Only bump matches are ever withdrawn.
                Some(Decision::Withdrawn) => SoundRequestState::Failed {
                    error: WalletError::Protocol {
                        detail: "the server withdrew a request made by sound".into(),
                    },
                },
                None => return Ok(self.state()),
            };
        Ok(self.set(state))
    }
}

// ------------------------------------------------------------------ payer

#[derive(Clone, Debug, PartialEq)]
pub enum SoundPaymentState {
    /// Keep pushing microphone audio.
    Listening,
    /// A token was heard; it is being redeemed.
    Redeeming,
    /// "Pay `amount` to `payee_display_name`?" — shown with the payee's
    /// avatar (emoji, picture), where the payee set one, before the PIN.
    Confirm {
        payee_display_name: String,
        payee_avatar: Avatar,
        amount: i64,
        memo: String,
        expires_at_ms: i64,
    },
    Paid,
    Declined,
    /// The token (or the request it made) expired: the payee asks again.
    Expired,
    Cancelled,
    /// E.g. the token was already used (`token_used`) or is not from this
    /// server (`token_unknown`).
    Failed {
        error: WalletError,
    },
}

struct Listener {
    state: SoundPaymentState,
    decoders: Vec<TokenDecoder>,
    token: Option<Token>,
    request_id: Option<String>,
}

/// A payer listening for a payee's token.
pub struct SoundPayment {
    wallet: Wallet,
    inner: Mutex<Listener>,
    changed: Notify,
}

impl SoundPayment {
    /// Listens on both profiles where the sample rate carries them.
    pub(super) fn new(wallet: Wallet, sample_rate_hz: u32) -> Result<SoundPayment, WalletError> {
        let mut decoders = Vec::new();
        for profile in [Profile::NearUltrasound, Profile::Audible] {
            if sample_rate_hz >= profile.min_sample_rate_hz() {
                decoders.push(
                    TokenDecoder::new(profile, sample_rate_hz)
                        .map_err(|e| invalid("sample rate", e.to_string()))?,
                );
            }
        }
        if decoders.is_empty() {
            return Err(invalid(
                "sample rate",
                format!(
                    "{sample_rate_hz} Hz is below the {} Hz the audible profile needs",
                    Profile::Audible.min_sample_rate_hz()
                ),
            ));
        }
        Ok(SoundPayment {
            wallet,
            inner: Mutex::new(Listener {
                state: SoundPaymentState::Listening,
                decoders,
                token: None,
                request_id: None,
            }),
            changed: Notify::new(),
        })
    }

    pub fn state(&self) -> SoundPaymentState {
        lock(&self.inner).state.clone()
    }

    fn set(&self, state: SoundPaymentState) -> SoundPaymentState {
        lock(&self.inner).state = state.clone();
        self.changed.notify_one();
        state
    }

    /// Mono microphone audio at the flow's sample rate, any chunk size.
    pub fn push_audio(&self, samples: &[f32]) -> SoundPaymentState {
        let mut inner = lock(&self.inner);
        if inner.state != SoundPaymentState::Listening {
            return inner.state.clone();
        }
        let heard = inner
            .decoders
            .iter_mut()
            .find_map(|d| d.push(samples).into_iter().next());
        if let Some(token) = heard {
            inner.token = Some(token);
            inner.state = SoundPaymentState::Redeeming;
            self.changed.notify_one();
        }
        inner.state.clone()
    }

    /// Waits until a token is heard, redeems it, and returns `Confirm`, or
    /// `Expired`, `Cancelled`, `Failed`.
    pub async fn wait_for_confirm(&self) -> SoundPaymentState {
        let token = loop {
            {
                let inner = lock(&self.inner);
                match (&inner.state, inner.token) {
                    (SoundPaymentState::Redeeming, Some(token)) => break token,
                    (SoundPaymentState::Listening, _) => {}
                    (other, _) => return other.clone(),
                }
            }
            self.changed.notified().await;
        };
        let client = match self.wallet.registered_client() {
            Ok(c) => c,
            Err(error) => return self.set(SoundPaymentState::Failed { error }),
        };
        let next = match client.redeem_sound_token(&token).await {
            Ok(request) => match Avatar::from_wire(request.payee_avatar) {
                Ok(payee_avatar) => {
                    lock(&self.inner).request_id = Some(request.request_id.clone());
                    SoundPaymentState::Confirm {
                        payee_display_name: request.payee_display_name,
                        payee_avatar,
                        amount: request.amount,
                        memo: request.memo,
                        expires_at_ms: request.expires_at_ms,
                    }
                }
                Err(error) => SoundPaymentState::Failed { error },
            },
            Err(e) if e.code() == Some(ErrorCode::TokenExpired) => SoundPaymentState::Expired,
            Err(e) => SoundPaymentState::Failed { error: e.into() },
        };
        self.set(next)
    }

    fn confirming(&self) -> Result<String, WalletError> {
        let inner = lock(&self.inner);
        match (&inner.state, &inner.request_id) {
            (SoundPaymentState::Confirm { .. }, Some(id)) => Ok(id.clone()),
            (state, _) => Err(invalid(
                "sound payment",
                format!("cannot do that in state {state:?}"),
            )),
        }
    }

    /// Pays. A wrong PIN (or any refusal the user can correct) leaves the
    /// flow in `Confirm` and returns the error.
    pub async fn approve(&self, pin: &str) -> Result<SoundPaymentState, WalletError> {
        let id = self.confirming()?;
        match self.wallet.approve_request(&id, pin).await {
            Ok(_) => Ok(self.set(SoundPaymentState::Paid)),
            Err(e) if is_expired(&e) => Ok(self.set(SoundPaymentState::Expired)),
            Err(e) => Err(e),
        }
    }

    pub async fn decline(&self) -> Result<SoundPaymentState, WalletError> {
        let id = self.confirming()?;
        match self.wallet.decline_request(&id).await {
            Ok(_) => Ok(self.set(SoundPaymentState::Declined)),
            Err(e) if is_expired(&e) => Ok(self.set(SoundPaymentState::Expired)),
            Err(e) => Err(e),
        }
    }

    /// Stops listening (before a token was redeemed).
    pub fn cancel(&self) -> SoundPaymentState {
        let mut inner = lock(&self.inner);
        if matches!(
            inner.state,
            SoundPaymentState::Listening | SoundPaymentState::Redeeming
        ) {
            inner.state = SoundPaymentState::Cancelled;
            self.changed.notify_one();
        }
        inner.state.clone()
    }
}
