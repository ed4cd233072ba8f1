//! Pay by bump and by sound (see `clink_core::wallet::{bump_pay,
//! sound_pay}`): each flow is a core object with a state the app renders and
//! a few actions; this module adapts them one to one.
//!
//! Sensor input goes in with blocking calls that return the new state
//! (quick: signal processing on the caller's thread, no I/O). Waiting for
//! the server and the user's decisions are `async`. Audio goes in either
//! as a list of floats or as the app's own byte buffer (`PcmEncoding`),
//! which crosses the boundary in one copy.

use std::sync::Arc;

use clink_core::acoustic::Profile;
use clink_core::wallet as core;
pub use clink_core::wire::BumpRole;

use crate::acoustic::AcousticProfile;
use crate::avatar::Avatar;
use crate::bump::AccelSample;
use crate::pcm::{self, PcmEncoding, PcmError};
use crate::wallet::Wallet;
use crate::wallet_error::WalletError;

/// Where a bump payment stands.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum BumpPaymentState {
    /// Waiting for a knock; keep pushing accelerometer samples and audio.
    Listening,
    /// A knock was found; its report is ready to go to the server.
    Reporting,
    /// The report is on the server, waiting for the other phone's.
    WaitingForPartner,
    /// Payer: "pay `amount` to `payee_display_name`?" — show
    /// `payee_avatar` (emoji, picture; where the payee set one) with it,
    /// then `approve` or `decline`.
    Confirm {
        payee_display_name: String,
        payee_avatar: Avatar,
        amount: i64,
        memo: String,
        expires_at_ms: i64,
    },
    /// Payee: the payer is asked to approve; `wait_for_payment`.
    RequestSent {
        amount: i64,
        memo: String,
    },
    Paid,
    Declined,
    /// Bump again: `reason` says why this one could not be used.
    BumpAgain {
        reason: String,
    },
    /// No other phone reported the same bump in time, or the request
    /// expired before it was approved.
    Expired,
    Cancelled,
    Failed {
        error: WalletError,
    },
}

/// Where a payee's request by sound stands.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum SoundRequestState {
    /// Play the token's PCM (again and again) until `expires_at_ms`.
    Playing {
        expires_at_ms: i64,
    },
    /// A payer heard it and is asked to approve.
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

/// Where a payer listening for a token stands.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum SoundPaymentState {
    /// Keep pushing microphone audio.
    Listening,
    /// A token was heard; `wait_for_confirm` redeems it.
    Redeeming,
    /// "Pay `amount` to `payee_display_name`?" — show `payee_avatar` with
    /// it, then `approve` or `decline`.
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
    /// E.g. `WalletError::TokenUsed` (heard a token already paid) or
    /// `TokenUnknown` (not from this server).
    Failed {
        error: WalletError,
    },
}

#[uniffi::export(async_runtime = "tokio")]
impl Wallet {
    /// Starts paying by bump, with microphone audio at
    /// `audio_sample_rate_hz` (16–96 kHz). Call `estimate_clock_offset`
    /// first: the server pairs knocks by time.
    pub fn pay_by_bump(&self, audio_sample_rate_hz: u32) -> Result<Arc<BumpPayment>, WalletError> {
        Ok(BumpPayment::wrap(
            self.core.pay_by_bump(audio_sample_rate_hz)?,
        ))
    }

    /// Starts asking for `amount` by bump; the payer sees this account's
    /// display name, the amount and the memo.
    pub fn request_by_bump(
        &self,
        amount: i64,
        memo: String,
        audio_sample_rate_hz: u32,
    ) -> Result<Arc<BumpPayment>, WalletError> {
        Ok(BumpPayment::wrap(self.core.request_by_bump(
            amount,
            &memo,
            audio_sample_rate_hz,
        )?))
    }

    /// Asks for `amount` by sound: a fresh single-use token from the server
    /// as PCM to play at `sample_rate_hz`; `profile` null: near-ultrasound
    /// where the rate allows, audible otherwise.
    pub async fn request_by_sound(
        &self,
        amount: i64,
        memo: String,
        sample_rate_hz: u32,
        profile: Option<AcousticProfile>,
    ) -> Result<Arc<SoundRequest>, WalletError> {
        let profile = profile.map(Profile::from);
        let core = self
            .core
            .request_by_sound(amount, &memo, sample_rate_hz, profile)
            .await?;
        Ok(Arc::new(SoundRequest { core }))
    }

    /// Starts listening for a payee's token in microphone audio at
    /// `sample_rate_hz`.
    pub fn listen_for_token(&self, sample_rate_hz: u32) -> Result<Arc<SoundPayment>, WalletError> {
        let core = self.core.listen_for_token(sample_rate_hz)?;
        Ok(Arc::new(SoundPayment { core }))
    }
}

/// One bump payment, as payer or payee. Safe to share between threads: the
/// sensor callbacks push while a coroutine/task waits for the outcome.
#[derive(uniffi::Object)]
pub struct BumpPayment {
    core: core::BumpPayment,
}

impl BumpPayment {
    fn wrap(core: core::BumpPayment) -> Arc<BumpPayment> {
        Arc::new(BumpPayment { core })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl BumpPayment {
    pub fn role(&self) -> BumpRole {
        self.core.role()
    }

    pub fn state(&self) -> BumpPaymentState {
        self.core.state().into()
    }

    /// Accelerometer samples in time order (phone clock). Ignored once a
    /// knock was found.
    pub fn push_accel(&self, samples: Vec<AccelSample>) -> Result<BumpPaymentState, WalletError> {
        Ok(self.core.push_accel(&samples)?.into())
    }

    /// Mono microphone audio at the flow's sample rate; `start_time_ms` is
    /// the phone-clock time (Unix ms) of its first sample.
    pub fn push_audio(
        &self,
        samples: Vec<f32>,
        start_time_ms: f64,
    ) -> Result<BumpPaymentState, WalletError> {
        Ok(self.core.push_audio(&samples, start_time_ms)?.into())
    }

    /// `push_audio` with the app's PCM buffer as bytes.
    pub fn push_audio_bytes(
        &self,
        pcm: Vec<u8>,
        encoding: PcmEncoding,
        start_time_ms: f64,
    ) -> Result<BumpPaymentState, WalletError> {
        let samples = audio(&pcm, encoding)?;
        Ok(self.core.push_audio(&samples, start_time_ms)?.into())
    }

    /// Waits for a knock, reports it and waits for the server's decision:
    /// `Confirm` (payer), `RequestSent` (payee), `BumpAgain`, `Expired`,
    /// `Cancelled` or `Failed`.
    pub async fn wait_for_outcome(&self) -> BumpPaymentState {
        self.core.wait_for_outcome().await.into()
    }

    /// Payer: pays. A wrong PIN leaves the flow in `Confirm` and throws;
    /// `BumpAgain` if the server withdrew the match meanwhile.
    pub async fn approve(&self, pin: String) -> Result<BumpPaymentState, WalletError> {
        Ok(self.core.approve(&pin).await?.into())
    }

    /// Payer: refuses to pay.
    pub async fn decline(&self) -> Result<BumpPaymentState, WalletError> {
        Ok(self.core.decline().await?.into())
    }

    /// Payee: waits up to `timeout_ms` for the payer's decision: `Paid`,
    /// `Declined`, `Expired`, `BumpAgain` (the server withdrew the match),
    /// or still `RequestSent`.
    pub async fn wait_for_payment(&self, timeout_ms: u64) -> Result<BumpPaymentState, WalletError> {
        Ok(self.core.wait_for_payment(timeout_ms).await?.into())
    }

    /// Stops the flow before a decision.
    pub fn cancel(&self) -> BumpPaymentState {
        self.core.cancel().into()
    }
}

/// A payee's request by sound: play `pcm()` until a payer hears it.
#[derive(uniffi::Object)]
pub struct SoundRequest {
    core: core::SoundRequest,
}

#[uniffi::export(async_runtime = "tokio")]
impl SoundRequest {
    /// The token as mono PCM at the requested sample rate, about half a
    /// second, samples in -1.0..=1.0; play it in a loop.
    pub fn pcm(&self) -> Vec<f32> {
        self.core.pcm().to_vec()
    }

    /// `pcm()` as bytes in `encoding`, e.g. for Android's `AudioTrack`.
    pub fn pcm_bytes(&self, encoding: PcmEncoding) -> Vec<u8> {
        pcm::from_f32(self.core.pcm(), encoding)
    }

    pub fn profile(&self) -> AcousticProfile {
        self.core.profile().into()
    }

    pub fn state(&self) -> SoundRequestState {
        self.core.state().into()
    }

    /// Waits up to `timeout_ms` for a payer to redeem the token and decide:
    /// `Paid`, `Declined` or `Expired`, or the current state if the time
    /// ran out first.
    pub async fn wait_for_payment(
        &self,
        timeout_ms: u64,
    ) -> Result<SoundRequestState, WalletError> {
        Ok(self.core.wait_for_payment(timeout_ms).await?.into())
    }
}

/// A payer listening for a payee's token. Safe to share between threads.
#[derive(uniffi::Object)]
pub struct SoundPayment {
    core: core::SoundPayment,
}

#[uniffi::export(async_runtime = "tokio")]
impl SoundPayment {
    pub fn state(&self) -> SoundPaymentState {
        self.core.state().into()
    }

    /// Mono microphone audio at the flow's sample rate, any chunk size.
    pub fn push_audio(&self, samples: Vec<f32>) -> SoundPaymentState {
        self.core.push_audio(&samples).into()
    }

    /// `push_audio` with the app's PCM buffer as bytes.
    pub fn push_audio_bytes(
        &self,
        pcm: Vec<u8>,
        encoding: PcmEncoding,
    ) -> Result<SoundPaymentState, WalletError> {
        Ok(self.core.push_audio(&audio(&pcm, encoding)?).into())
    }

    /// Waits until a token is heard, redeems it, and returns `Confirm`, or
    /// `Expired`, `Cancelled`, `Failed`.
    pub async fn wait_for_confirm(&self) -> SoundPaymentState {
        self.core.wait_for_confirm().await.into()
    }

    /// Pays. A wrong PIN leaves the flow in `Confirm` and throws.
    pub async fn approve(&self, pin: String) -> Result<SoundPaymentState, WalletError> {
        Ok(self.core.approve(&pin).await?.into())
    }

    pub async fn decline(&self) -> Result<SoundPaymentState, WalletError> {
        Ok(self.core.decline().await?.into())
    }

    /// Stops listening (before a token was redeemed).
    pub fn cancel(&self) -> SoundPaymentState {
        self.core.cancel().into()
    }
}

/// PCM bytes as samples; a partial sample is the app's mistake.
fn audio(pcm: &[u8], encoding: PcmEncoding) -> Result<Vec<f32>, WalletError> {
    pcm::to_f32(pcm, encoding).map_err(|e: PcmError| WalletError::InvalidInput {
        field: "audio bytes".into(),
        reason: e.to_string(),
        description: format!("invalid audio bytes: {e}"),
    })
}

impl From<core::BumpPaymentState> for BumpPaymentState {
    fn from(state: core::BumpPaymentState) -> Self {
        use core::BumpPaymentState as S;
        match state {
            S::Listening => BumpPaymentState::Listening,
            S::Reporting => BumpPaymentState::Reporting,
            S::WaitingForPartner => BumpPaymentState::WaitingForPartner,
            S::Confirm {
                payee_display_name,
                payee_avatar,
                amount,
                memo,
                expires_at_ms,
            } => BumpPaymentState::Confirm {
                payee_display_name,
                payee_avatar: payee_avatar.into(),
                amount,
                memo,
                expires_at_ms,
            },
            S::RequestSent { amount, memo } => BumpPaymentState::RequestSent { amount, memo },
            S::Paid => BumpPaymentState::Paid,
            S::Declined => BumpPaymentState::Declined,
            S::BumpAgain { reason } => BumpPaymentState::BumpAgain { reason },
            S::Expired => BumpPaymentState::Expired,
            S::Cancelled => BumpPaymentState::Cancelled,
            S::Failed { error } => BumpPaymentState::Failed {
                error: error.into(),
            },
        }
    }
}

impl From<core::SoundRequestState> for SoundRequestState {
    fn from(state: core::SoundRequestState) -> Self {
        use core::SoundRequestState as S;
        match state {
            S::Playing { expires_at_ms } => SoundRequestState::Playing { expires_at_ms },
            S::RequestSent {
                payee_display_name,
                amount,
                memo,
            } => SoundRequestState::RequestSent {
                payee_display_name,
                amount,
                memo,
            },
            S::Paid => SoundRequestState::Paid,
            S::Declined => SoundRequestState::Declined,
            S::Expired => SoundRequestState::Expired,
            S::Failed { error } => SoundRequestState::Failed {
                error: error.into(),
            },
        }
    }
}

impl From<core::SoundPaymentState> for SoundPaymentState {
    fn from(state: core::SoundPaymentState) -> Self {
        use core::SoundPaymentState as S;
        match state {
            S::Listening => SoundPaymentState::Listening,
            S::Redeeming => SoundPaymentState::Redeeming,
            S::Confirm {
                payee_display_name,
                payee_avatar,
                amount,
                memo,
                expires_at_ms,
            } => SoundPaymentState::Confirm {
                payee_display_name,
                payee_avatar: payee_avatar.into(),
                amount,
                memo,
                expires_at_ms,
            },
            S::Paid => SoundPaymentState::Paid,
            S::Declined => SoundPaymentState::Declined,
            S::Expired => SoundPaymentState::Expired,
            S::Cancelled => SoundPaymentState::Cancelled,
            S::Failed { error } => SoundPaymentState::Failed {
                error: error.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_bytes_with_a_partial_sample_are_an_invalid_input() {
        assert!(matches!(
            audio(&[0, 0, 0], PcmEncoding::I16Le),
            Err(WalletError::InvalidInput { field, .. }) if field == "audio bytes"
        ));
        assert_eq!(audio(&[0, 0x40], PcmEncoding::I16Le).unwrap(), vec![0.5f32]);
    }

    #[test]
    fn a_failed_flow_carries_the_typed_error() {
        let failed = core::SoundPaymentState::Failed {
            error: core::WalletError::Refused {
                code: clink_core::wire::ErrorCode::TokenUsed,
                message: "used".into(),
                attempts_remaining: None,
                locked_until_ms: None,
            },
        };
        assert!(matches!(
            SoundPaymentState::from(failed),
            SoundPaymentState::Failed {
                error: WalletError::TokenUsed { .. }
            }
        ));
    }
}
