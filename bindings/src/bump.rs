//! The bump detector's pure parts (see `clink_core::bump`), for an app that
//! wants them without a `BumpPayment`: a streaming knock detector over
//! accelerometer samples, and the ambient-sound fingerprint.

use std::sync::{Arc, Mutex};

pub use clink_core::bump::AccelSample;
use clink_core::bump::{self as core, AmbientFingerprint};
use clink_core::wire::ImpulseFeatures;

use crate::lock::lock;

/// The shape of a knock's impulse.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Impulse {
    /// Largest acceleration magnitude (gravity removed), m/s².
    pub peak_mps2: f32,
    /// Velocity change over the impulse, m/s.
    pub delta_v_mps: f32,
    /// From 10 % of the peak to the peak, ms.
    pub rise_ms: f32,
    /// Width at half the peak, ms.
    pub duration_ms: f32,
    /// Unit vector of the acceleration at the peak, in the phone's axes:
    /// x right, y up the screen, z out of the screen.
    pub direction_x: f32,
    pub direction_y: f32,
    pub direction_z: f32,
}

/// A knock, as found.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct KnockEvent {
    /// Server time of the knock (the phone's instant plus the clock
    /// offset), Unix ms.
    pub instant_ms: i64,
    /// The instant on the phone's own clock, Unix ms.
    pub device_instant_ms: f64,
    pub impulse: Impulse,
    /// RMS of the motion around the knock (gravity removed), m/s².
    pub motion_rms_mps2: f32,
}

/// Input the knock detector or the fingerprint cannot use; `description`
/// is the core's sentence for people and logs.
#[derive(Clone, Debug, PartialEq, thiserror::Error, uniffi::Error)]
pub enum BumpError {
    /// Nothing of the offending push was used: drop the sample and push the
    /// rest again.
    #[error("{description}")]
    TimestampNotIncreasing {
        index: u64,
        timestamp_ms: f64,
        previous_ms: f64,
        description: String,
    },
    /// An accelerometer sample has a NaN or infinite value or timestamp.
    #[error("{description}")]
    NotFinite {
        index: u64,
        timestamp_ms: f64,
        description: String,
    },
    /// An audio sample is NaN or infinite.
    #[error("{description}")]
    AudioNotFinite { index: u64, description: String },
    #[error("{description}")]
    UnsupportedSampleRate {
        sample_rate_hz: u32,
        description: String,
    },
    #[error("{description}")]
    AudioTooShort { got_ms: u32, description: String },
    /// The microphone delivered nothing usable (muted, no permission).
    #[error("{description}")]
    Silent { description: String },
    /// Fingerprint bytes that are not a fingerprint.
    #[error("{description}")]
    MalformedFingerprint { description: String },
}

/// Audio the fingerprint wants before the knock, ms.
#[uniffi::export]
pub fn fingerprint_audio_before_knock_ms() -> u32 {
    core::fingerprint::AUDIO_BEFORE_KNOCK_MS
}

/// Audio the fingerprint wants after the knock, ms.
#[uniffi::export]
pub fn fingerprint_audio_after_knock_ms() -> u32 {
    core::fingerprint::AUDIO_AFTER_KNOCK_MS
}

/// How alike two fingerprints are, 0.0 (unrelated) to 1.0; the server
/// takes two phones as in the same room from
/// `fingerprint_same_room_threshold()`.
#[uniffi::export]
pub fn fingerprint_similarity(a: Vec<u8>, b: Vec<u8>) -> Result<f32, BumpError> {
    let a = AmbientFingerprint::from_bytes(&a)?;
    let b = AmbientFingerprint::from_bytes(&b)?;
    Ok(a.similarity(&b))
}

#[uniffi::export]
pub fn fingerprint_same_room_threshold() -> f32 {
    core::fingerprint::SAME_ROOM_THRESHOLD
}

/// Finds knocks in accelerometer samples pushed in time order; each is
/// reported a few hundred ms after it happened, once the motion after it
/// has been seen. Safe to share between threads.
#[derive(uniffi::Object)]
pub struct KnockDetector {
    state: Mutex<core::KnockDetector>,
}

#[uniffi::export]
impl KnockDetector {
    /// `clock_offset_ms`: server time minus the phone's clock (the wallet's
    /// `clock_offset_ms()`), so that knocks carry server time.
    #[uniffi::constructor]
    pub fn new(clock_offset_ms: i64) -> Arc<Self> {
        Arc::new(KnockDetector {
            state: Mutex::new(core::KnockDetector::new(clock_offset_ms)),
        })
    }

    /// Feeds samples; returns the knocks that can now be judged.
    pub fn push(&self, samples: Vec<AccelSample>) -> Result<Vec<KnockEvent>, BumpError> {
        let knocks = lock(&self.state, "knock detector").push(&samples)?;
        Ok(knocks.into_iter().map(KnockEvent::from).collect())
    }

    /// The clock was measured again; applies to knocks reported from now on.
    pub fn set_clock_offset(&self, clock_offset_ms: i64) {
        lock(&self.state, "knock detector").set_clock_offset(clock_offset_ms)
    }

    /// Forgets all samples (e.g. when the app stops listening).
    pub fn reset(&self) {
        lock(&self.state, "knock detector").reset()
    }
}

/// Fingerprints the room's sound around a knock, at one sample rate.
#[derive(uniffi::Object)]
pub struct FingerprintExtractor {
    state: Mutex<core::FingerprintExtractor>,
}

#[uniffi::export]
impl FingerprintExtractor {
    #[uniffi::constructor]
    pub fn new(sample_rate_hz: u32) -> Result<Arc<Self>, BumpError> {
        Ok(Arc::new(FingerprintExtractor {
            state: Mutex::new(core::FingerprintExtractor::new(sample_rate_hz)?),
        }))
    }

    pub fn sample_rate_hz(&self) -> u32 {
        lock(&self.state, "fingerprint extractor").sample_rate_hz()
    }

    /// The fingerprint (< 512 bytes) of mono audio, ideally from
    /// `fingerprint_audio_before_knock_ms()` before the knock to
    /// `fingerprint_audio_after_knock_ms()` after it.
    pub fn fingerprint(&self, audio: Vec<f32>) -> Result<Vec<u8>, BumpError> {
        let fingerprint = lock(&self.state, "fingerprint extractor").fingerprint(&audio)?;
        Ok(fingerprint.to_bytes())
    }
}

impl From<ImpulseFeatures> for Impulse {
    fn from(impulse: ImpulseFeatures) -> Self {
        let [direction_x, direction_y, direction_z] = impulse.direction;
        Impulse {
            peak_mps2: impulse.peak_mps2,
            delta_v_mps: impulse.delta_v_mps,
            rise_ms: impulse.rise_ms,
            duration_ms: impulse.duration_ms,
            direction_x,
            direction_y,
            direction_z,
        }
    }
}

impl From<core::KnockEvent> for KnockEvent {
    fn from(knock: core::KnockEvent) -> Self {
        KnockEvent {
            instant_ms: knock.instant_ms,
            device_instant_ms: knock.device_instant_ms,
            impulse: knock.impulse.into(),
            motion_rms_mps2: knock.motion_rms_mps2,
        }
    }
}

impl From<core::KnockError> for BumpError {
    fn from(error: core::KnockError) -> Self {
        let description = error.to_string();
        match error {
            core::KnockError::TimestampNotIncreasing {
                index,
                timestamp_ms,
                previous_ms,
            } => BumpError::TimestampNotIncreasing {
                index: index as u64,
                timestamp_ms,
                previous_ms,
                description,
            },
            core::KnockError::NotFinite {
                index,
                timestamp_ms,
            } => BumpError::NotFinite {
                index: index as u64,
                timestamp_ms,
                description,
            },
        }
    }
}

impl From<core::FingerprintError> for BumpError {
    fn from(error: core::FingerprintError) -> Self {
        use core::FingerprintError as E;
        let description = error.to_string();
        match error {
            E::UnsupportedSampleRate { sample_rate_hz } => BumpError::UnsupportedSampleRate {
                sample_rate_hz,
                description,
            },
            E::AudioTooShort { got_ms } => BumpError::AudioTooShort {
                got_ms,
                description,
            },
            E::NotFinite { index } => BumpError::AudioNotFinite {
                index: index as u64,
                description,
            },
            E::Silent { .. } => BumpError::Silent { description },
            E::Empty | E::UnknownVersion(_) | E::BadLength { .. } => {
                BumpError::MalformedFingerprint { description }
            }
        }
    }
}
