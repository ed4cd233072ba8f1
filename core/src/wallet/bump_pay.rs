//! Pay by bump, the phone's side: a flow object the app feeds with sensor
//! data and renders; every rule lives here.
//!
//! `Listening` (the app pushes accelerometer samples and microphone audio;
//! the knock detector runs with the wallet's clock offset, and the last few
//! seconds of audio are kept) → `Reporting` (a knock was found and the room
//! sound around it fingerprinted) → `WaitingForPartner` (the report is on
//! the server, which decides a couple of seconds after the knock) →
//! `Confirm` (payer: approve with the PIN or decline) / `RequestSent`
//! (payee) → `Paid` / `Declined` / `Expired`; or `BumpAgain` (several phones
//! bumped at once nearby — also when a third phone's report arrived after
//! the match, which the server then withdraws — or the bump could not be
//! used), or `Failed`.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::pairing::{Decision, is_expired, is_withdrawn, wait_for_decision};
use super::{Avatar, Wallet, WalletError, invalid, lock};
use crate::bump::fingerprint::{AUDIO_AFTER_KNOCK_MS, AUDIO_BEFORE_KNOCK_MS};
use crate::bump::{
    AccelSample, FingerprintError, FingerprintExtractor, KnockDetector, KnockEvent, find_click,
};
use crate::wire::*;

/// Microphone audio kept while listening: the fingerprint's window plus the
/// knock detector's report delay, with margin.
const AUDIO_KEPT_MS: f64 = 4_000.0;
/// One status request waits this long on the server while undecided.
const POLL_WAIT_MS: u32 = 4_000;
/// A decision is due about two seconds after the knock; give up after this
/// many polls.
const MAX_POLLS: usize = 4;
/// Why a withdrawn match ends in `BumpAgain`.
const WITHDRAWN: &str = "another phone reported the same bump late, so the match was withdrawn";

/// Where a bump payment stands; the app renders it.
#[derive(Clone, Debug, PartialEq)]
pub enum BumpPaymentState {
    /// Waiting for a knock; keep pushing sensor data.
    Listening,
    /// A knock was found; its report is ready to go to the server.
    Reporting,
    /// The report is on the server, waiting for the other phone's.
    WaitingForPartner,
    /// Payer: "pay `amount` to `payee_display_name`?" — shown with the
    /// payee's avatar (emoji, picture), where the payee set one, before the
    /// PIN: in a crowd the payer confirms the person, not only the amount.
    Confirm {
        payee_display_name: String,
        payee_avatar: Avatar,
        amount: i64,
        memo: String,
        expires_at_ms: i64,
    },
    /// Payee: the payer is asked to approve.
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

impl BumpPaymentState {
    /// Whether the flow is over (nothing more will change).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            BumpPaymentState::Paid
                | BumpPaymentState::Declined
                | BumpPaymentState::BumpAgain { .. }
                | BumpPaymentState::Expired
                | BumpPaymentState::Cancelled
                | BumpPaymentState::Failed { .. }
        )
    }
}

/// The last few seconds of microphone audio, with the phone-clock time of
/// its first sample.
struct AudioWindow {
    rate_hz: u32,
    samples: VecDeque<f32>,
    /// Phone-clock time just after the newest sample, Unix ms.
    end_ms: f64,
}

enum Clip {
    Ready(Vec<f32>),
    /// Not enough audio after the knock yet.
    Wait,
    /// Audio before the knock is missing (the app started the microphone
    /// too late, or a gap).
    Missing,
}

impl AudioWindow {
    fn push(&mut self, samples: &[f32], start_ms: f64) {
        let ms_per_sample = 1000.0 / f64::from(self.rate_hz);
        let expected_start = self.end_ms;
        // A gap (or overlap) of more than a sample: what was kept no longer
        // lines up with the clock, so start again.
        if !self.samples.is_empty() && (start_ms - expected_start).abs() > ms_per_sample * 1.5 {
            self.samples.clear();
        }
        self.samples.extend(samples);
        self.end_ms = start_ms + samples.len() as f64 * ms_per_sample;
        let keep = (AUDIO_KEPT_MS / ms_per_sample) as usize;
        if self.samples.len() > keep {
            let excess = self.samples.len() - keep;
            self.samples.drain(..excess);
        }
    }

    fn clip(&self, from_ms: f64, to_ms: f64) -> Clip {
        let ms_per_sample = 1000.0 / f64::from(self.rate_hz);
        if to_ms > self.end_ms {
            return Clip::Wait;
        }
        let start_ms = self.end_ms - self.samples.len() as f64 * ms_per_sample;
        if from_ms < start_ms - ms_per_sample {
            return Clip::Missing;
        }
        let first = ((from_ms - start_ms) / ms_per_sample).round().max(0.0) as usize;
        let len = ((to_ms - from_ms) / ms_per_sample).round() as usize;
        Clip::Ready(self.samples.iter().skip(first).take(len).copied().collect())
    }
}

struct Inner {
    state: BumpPaymentState,
    detector: KnockDetector,
    audio: AudioWindow,
    extractor: FingerprintExtractor,
    /// Knocks felt and not yet judged against the audio, oldest first.
    knocks: VecDeque<KnockEvent>,
    report: Option<BumpReport>,
    request_id: Option<String>,
}

/// One bump payment, as payer or payee. Made by [`Wallet::pay_by_bump`] or
/// [`Wallet::request_by_bump`].
pub struct BumpPayment {
    wallet: Wallet,
    role: BumpRole,
    amount: Option<i64>,
    memo: String,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl BumpPayment {
    pub(super) fn new(
        wallet: Wallet,
        role: BumpRole,
        amount: Option<i64>,
        memo: &str,
        audio_sample_rate_hz: u32,
    ) -> Result<BumpPayment, WalletError> {
        let extractor = FingerprintExtractor::new(audio_sample_rate_hz)
            .map_err(|e| invalid("audio sample rate", e.to_string()))?;
        let clock_offset_ms = wallet.clock_offset_ms()?.unwrap_or(0);
        Ok(BumpPayment {
            wallet,
            role,
            amount,
            memo: memo.to_string(),
            inner: Mutex::new(Inner {
                state: BumpPaymentState::Listening,
                // The flow hears the microphone too: faint knocks from slow
                // sensors count once their click is heard.
                detector: KnockDetector::with_faint_candidates(clock_offset_ms),
                audio: AudioWindow {
                    rate_hz: audio_sample_rate_hz,
                    samples: VecDeque::new(),
                    end_ms: 0.0,
                },
                extractor,
                knocks: VecDeque::new(),
                report: None,
                request_id: None,
            }),
            changed: Notify::new(),
        })
    }

    pub fn role(&self) -> BumpRole {
        self.role
    }

    pub fn state(&self) -> BumpPaymentState {
        lock(&self.inner).state.clone()
    }

    fn set(&self, state: BumpPaymentState) -> BumpPaymentState {
        lock(&self.inner).state = state.clone();
        self.changed.notify_one();
        state
    }

    /// Accelerometer samples, in time order (phone clock). Ignored once a
    /// knock was reported.
    pub fn push_accel(&self, samples: &[AccelSample]) -> Result<BumpPaymentState, WalletError> {
        let mut inner = lock(&self.inner);
        if inner.state != BumpPaymentState::Listening {
            return Ok(inner.state.clone());
        }
        let knocks = inner
            .detector
            .push(samples)
            .map_err(|e| invalid("accelerometer samples", e.to_string()))?;
        inner.knocks.extend(knocks);
        Ok(self.try_report(&mut inner))
    }

    /// Mono microphone audio at the flow's sample rate; `start_time_ms` is
    /// the phone-clock time (Unix ms) of its first sample.
    pub fn push_audio(
        &self,
        samples: &[f32],
        start_time_ms: f64,
    ) -> Result<BumpPaymentState, WalletError> {
        if !start_time_ms.is_finite() {
            return Err(invalid("audio start time", "must be a finite time"));
        }
        let mut inner = lock(&self.inner);
        if inner.state != BumpPaymentState::Listening {
            return Ok(inner.state.clone());
        }
        inner.audio.push(samples, start_time_ms);
        Ok(self.try_report(&mut inner))
    }

    /// Once a knock is known and the audio around it is in, fingerprints it
    /// and builds the report. A faint knock counts only if the audio holds
    /// its click; otherwise it is dropped and the next one judged.
    fn try_report(&self, inner: &mut Inner) -> BumpPaymentState {
        let (knock, audio) = loop {
            let Some(&knock) = inner.knocks.front() else {
                return inner.state.clone();
            };
            let at = knock.device_instant_ms;
            let clip = inner.audio.clip(
                at - f64::from(AUDIO_BEFORE_KNOCK_MS),
                at + f64::from(AUDIO_AFTER_KNOCK_MS),
            );
            match clip {
                Clip::Wait => return inner.state.clone(),
                Clip::Ready(audio)
                    if knock.faint
                        && find_click(
                            &audio,
                            inner.audio.rate_hz,
                            f64::from(AUDIO_BEFORE_KNOCK_MS),
                        )
                        .is_none() =>
                {
                    inner.knocks.pop_front();
                }
                Clip::Missing if knock.faint => {
                    inner.knocks.pop_front();
                }
                Clip::Ready(audio) => break (knock, Some(audio)),
                Clip::Missing => break (knock, None),
            }
        };
        inner.knocks.clear();
        let audio = match audio {
            None => {
                inner.state = BumpPaymentState::BumpAgain {
                    reason: "the microphone was not listening before the knock".into(),
                };
                self.changed.notify_one();
                return inner.state.clone();
            }
            Some(audio) => audio,
        };
        inner.state = match inner.extractor.fingerprint(&audio) {
            Ok(fingerprint) => {
                inner.report = Some(BumpReport {
                    role: self.role,
                    amount: self.amount,
                    instant_ms: knock.instant_ms,
                    impulse: knock.impulse,
                    fingerprint: fingerprint.to_bytes(),
                    location: None,
                });
                BumpPaymentState::Reporting
            }
            Err(FingerprintError::Silent { .. }) => BumpPaymentState::BumpAgain {
                reason: "the microphone heard nothing; check its permission".into(),
            },
            Err(e) => BumpPaymentState::Failed {
                error: invalid("microphone audio", e.to_string()),
            },
        };
        self.changed.notify_one();
        inner.state.clone()
    }

    /// Waits for a knock, reports it and waits for the server's decision:
    /// returns `Confirm` (payer), `RequestSent` (payee), `BumpAgain`,
    /// `Expired`, `Cancelled` or `Failed`.
    pub async fn wait_for_outcome(&self) -> BumpPaymentState {
        let report = loop {
            {
                let inner = lock(&self.inner);
                match (&inner.state, &inner.report) {
                    (BumpPaymentState::Reporting, Some(report)) => break report.clone(),
                    (BumpPaymentState::Listening, _) => {}
                    (other, _) => return other.clone(),
                }
            }
            self.changed.notified().await;
        };
        let client = match self.wallet.registered_client() {
            Ok(c) => c,
            Err(error) => return self.set(BumpPaymentState::Failed { error }),
        };
        let submitted = client
            .submit_bump(&SubmitBumpRequest {
                report,
                memo: self.memo.clone(),
            })
            .await;
        let mut view = match submitted {
            Ok(view) => view,
            Err(e) if e.code() == Some(ErrorCode::BumpRejected) => {
                return self.set(BumpPaymentState::BumpAgain {
                    reason: "the bump reached the server too late".into(),
                });
            }
            Err(e) => return self.set(BumpPaymentState::Failed { error: e.into() }),
        };
        self.set(BumpPaymentState::WaitingForPartner);
        for _ in 0..MAX_POLLS {
            if !matches!(view.outcome, BumpOutcome::Pending { .. }) {
                break;
            }
            if self.state() == BumpPaymentState::Cancelled {
                return BumpPaymentState::Cancelled;
            }
            view = match client.bump_status(&view.report_id, POLL_WAIT_MS).await {
                Ok(view) => view,
                Err(e) => return self.set(BumpPaymentState::Failed { error: e.into() }),
            };
        }
        if self.state() == BumpPaymentState::Cancelled {
            return BumpPaymentState::Cancelled;
        }
        let next = match view.outcome {
            BumpOutcome::Pending { .. } => BumpPaymentState::Failed {
                error: WalletError::Protocol {
                    detail: "the server did not decide the bump in time".into(),
                },
            },
            BumpOutcome::Confirm { request } => match Avatar::from_wire(request.payee_avatar) {
                Ok(payee_avatar) => {
                    lock(&self.inner).request_id = Some(request.request_id.clone());
                    BumpPaymentState::Confirm {
                        payee_display_name: request.payee_display_name,
                        payee_avatar,
                        amount: request.amount,
                        memo: request.memo,
                        expires_at_ms: request.expires_at_ms,
                    }
                }
                Err(error) => BumpPaymentState::Failed { error },
            },
            BumpOutcome::RequestSent { request } => {
                lock(&self.inner).request_id = Some(request.request_id.clone());
                BumpPaymentState::RequestSent {
                    amount: request.amount,
                    memo: request.memo,
                }
            }
            BumpOutcome::BumpAgain => BumpPaymentState::BumpAgain {
                reason: "several phones bumped nearby at the same moment".into(),
            },
            BumpOutcome::Expired => BumpPaymentState::Expired,
        };
        self.set(next)
    }

    fn request_in(&self, wanted: fn(&BumpPaymentState) -> bool) -> Result<String, WalletError> {
        let inner = lock(&self.inner);
        match (&inner.request_id, wanted(&inner.state)) {
            (Some(id), true) => Ok(id.clone()),
            _ => Err(invalid(
                "bump payment",
                format!("cannot do that in state {:?}", inner.state),
            )),
        }
    }

    /// Payer: pays. A wrong PIN (or any refusal the user can correct)
    /// leaves the flow in `Confirm` and returns the error.
    pub async fn approve(&self, pin: &str) -> Result<BumpPaymentState, WalletError> {
        let id = self.request_in(|s| matches!(s, BumpPaymentState::Confirm { .. }))?;
        match self.wallet.approve_request(&id, pin).await {
            Ok(_) => Ok(self.set(BumpPaymentState::Paid)),
            Err(e) if is_expired(&e) => Ok(self.set(BumpPaymentState::Expired)),
            Err(e) if is_withdrawn(&e) => Ok(self.set(BumpPaymentState::BumpAgain {
                reason: WITHDRAWN.into(),
            })),
            Err(e) => Err(e),
        }
    }

    /// Payer: refuses to pay.
    pub async fn decline(&self) -> Result<BumpPaymentState, WalletError> {
        let id = self.request_in(|s| matches!(s, BumpPaymentState::Confirm { .. }))?;
        match self.wallet.decline_request(&id).await {
            Ok(_) => Ok(self.set(BumpPaymentState::Declined)),
            Err(e) if is_expired(&e) => Ok(self.set(BumpPaymentState::Expired)),
            Err(e) if is_withdrawn(&e) => Ok(self.set(BumpPaymentState::BumpAgain {
                reason: WITHDRAWN.into(),
            })),
            Err(e) => Err(e),
        }
    }

    /// Payee: waits (up to `timeout_ms`) for the payer's decision: `Paid`,
    /// `Declined` or `Expired` (`BumpAgain` if the server withdrew the
    /// match); `RequestSent` if still undecided.
    pub async fn wait_for_payment(&self, timeout_ms: u64) -> Result<BumpPaymentState, WalletError> {
        let id = self.request_in(|s| matches!(s, BumpPaymentState::RequestSent { .. }))?;
        let state = match wait_for_decision(&self.wallet, &id, timeout_ms).await? {
            Some(Decision::Paid) => BumpPaymentState::Paid,
            Some(Decision::Declined) => BumpPaymentState::Declined,
            Some(Decision::Expired) => BumpPaymentState::Expired,
            Some(Decision::Withdrawn) => BumpPaymentState::BumpAgain {
                reason: WITHDRAWN.into(),
            },
            None => return Ok(self.state()),
        };
        Ok(self.set(state))
    }

    /// Stops the flow before a decision: nothing is reported any more (a
    /// report already sent expires on the server). Once matched, the payer
    /// declines instead.
    pub fn cancel(&self) -> BumpPaymentState {
        let mut inner = lock(&self.inner);
        if matches!(
            inner.state,
            BumpPaymentState::Listening
                | BumpPaymentState::Reporting
                | BumpPaymentState::WaitingForPartner
        ) {
            inner.state = BumpPaymentState::Cancelled;
            self.changed.notify_one();
        }
        inner.state.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::secrets::MemorySecretStore;

    fn flow(dir: &tempfile::TempDir) -> BumpPayment {
        let wallet = Wallet::open(
            dir.path().to_str().unwrap(),
            "http://127.0.0.1:9",
            Arc::new(MemorySecretStore::new()),
        )
        .unwrap();
        BumpPayment::new(wallet, BumpRole::Payer, None, "", 16_000).unwrap()
    }

    #[test]
    fn the_audio_window_waits_for_the_end_and_refuses_a_missing_start() {
        let mut w = AudioWindow {
            rate_hz: 1_000,
            samples: VecDeque::new(),
            end_ms: 0.0,
        };
        w.push(&[1.0; 500], 10_000.0);
        w.push(&[2.0; 500], 10_500.0);
        assert!(matches!(w.clip(10_200.0, 11_200.0), Clip::Wait));
        assert!(matches!(w.clip(9_000.0, 10_800.0), Clip::Missing));
        let Clip::Ready(clip) = w.clip(10_400.0, 10_600.0) else {
            panic!("ready")
        };
        assert_eq!(clip.len(), 200);
        assert_eq!((clip[0], clip[199]), (1.0, 2.0));
        // A gap in the audio: what came before no longer lines up.
        w.push(&[3.0; 100], 12_000.0);
        assert!(matches!(w.clip(10_400.0, 10_600.0), Clip::Missing));
        // Only the last few seconds are kept.
        for k in 0..10 {
            w.push(&[0.5; 1_000], 12_100.0 + 1_000.0 * f64::from(k));
        }
        assert_eq!(w.samples.len(), AUDIO_KEPT_MS as usize);
    }

    #[tokio::test]
    async fn nothing_can_be_approved_before_a_match_and_cancel_ends_listening() {
        let dir = tempfile::tempdir().unwrap();
        let f = flow(&dir);
        assert!(matches!(
            f.approve("1234").await,
            Err(WalletError::InvalidInput { .. })
        ));
        assert!(matches!(
            f.decline().await,
            Err(WalletError::InvalidInput { .. })
        ));
        assert!(f.wait_for_payment(10).await.is_err());
        let backwards = [
            AccelSample {
                timestamp_ms: 2.0,
                x: 0.0,
                y: 0.0,
                z: 9.8,
            },
            AccelSample {
                timestamp_ms: 1.0,
                x: 0.0,
                y: 0.0,
                z: 9.8,
            },
        ];
        assert!(matches!(
            f.push_accel(&backwards),
            Err(WalletError::InvalidInput { .. })
        ));
        assert!(f.push_audio(&[0.0], f64::NAN).is_err());
        assert_eq!(f.cancel(), BumpPaymentState::Cancelled);
        assert_eq!(f.wait_for_outcome().await, BumpPaymentState::Cancelled);
        assert_eq!(
            f.push_audio(&[0.0; 16], 0.0).unwrap(),
            BumpPaymentState::Cancelled
        );
        assert!(BumpPaymentState::Cancelled.is_final());
        assert!(!BumpPaymentState::WaitingForPartner.is_final());
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn flows_and_their_futures_can_move_between_threads() {
        let dir = tempfile::tempdir().unwrap();
        let f = flow(&dir);
        assert_send(&f);
        assert_send(&f.wait_for_outcome());
        assert_send(&f.approve("1234"));
        assert_send(&f.wait_for_payment(1));
        let wallet = f.wallet.clone();
        let sound = crate::wallet::SoundPayment::new(wallet, 48_000).unwrap();
        assert_send(&sound);
        assert_send(&sound.wait_for_confirm());
        assert_send(&sound.approve("1234"));
    }

    #[test]
    fn an_unsupported_audio_rate_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = Wallet::open(
            dir.path().to_str().unwrap(),
            "http://127.0.0.1:9",
            Arc::new(MemorySecretStore::new()),
        )
        .unwrap();
        assert!(matches!(
            BumpPayment::new(wallet.clone(), BumpRole::Payer, None, "", 8_000),
            Err(WalletError::InvalidInput { .. })
        ));
        // Not registered: the wallet refuses to start a flow.
        assert!(matches!(
            wallet.pay_by_bump(16_000),
            Err(WalletError::NotRegistered)
        ));
        assert!(matches!(
            wallet.listen_for_token(48_000),
            Err(WalletError::NotRegistered)
        ));
    }
}
