//! DTMF synthesis and a streaming detector (see `clink_core::dtmf`).

use std::sync::{Arc, Mutex};

use clink_core::dtmf as core;

use crate::lock::lock;
use crate::pcm::{self, PcmEncoding, PcmError};

/// How to render keys: each is `tone_ms` of its two tones then `gap_ms` of
/// silence. `dtmf_synth_config_default()` gives the core's defaults.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DtmfSynthConfig {
    pub sample_rate_hz: u32,
    pub tone_ms: f64,
    pub gap_ms: f64,
    /// Peak level of each of the two tones, in dB relative to full scale.
    pub level_dbfs: f64,
}

/// A detected key; the tone occupied `start_sample..end_sample`, counted
/// from the start of the stream.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DtmfEvent {
    /// One of `0`-`9`, `*`, `#`, `A`-`D`.
    pub key: String,
    pub start_sample: u64,
    pub end_sample: u64,
}

/// What is wrong with arguments given to the DTMF modem; `description` is
/// the core's sentence for people and logs.
#[derive(Clone, Debug, PartialEq, thiserror::Error, uniffi::Error)]
pub enum DtmfError {
    #[error("{description}")]
    UnknownKey {
        found: String,
        position: u64,
        description: String,
    },
    #[error("{description}")]
    SampleRateOutOfRange { hz: u32, description: String },
    #[error("{description}")]
    ToneLengthOutOfRange {
        ms: f64,
        min_ms: f64,
        max_ms: f64,
        description: String,
    },
    #[error("{description}")]
    GapLengthOutOfRange {
        ms: f64,
        max_ms: f64,
        description: String,
    },
    #[error("{description}")]
    LevelOutOfRange {
        dbfs: f64,
        min_dbfs: f64,
        max_dbfs: f64,
        description: String,
    },
}

/// The core's default rendering: 8 kHz, 70 ms tones, 70 ms gaps, -10 dBFS.
#[uniffi::export]
pub fn dtmf_synth_config_default() -> DtmfSynthConfig {
    core::SynthConfig::default().into()
}

/// Renders `keys` (e.g. `"0123*#ABCD"`) as samples in -1.0..=1.0.
#[uniffi::export]
pub fn synthesize_dtmf_f32(keys: String, config: DtmfSynthConfig) -> Result<Vec<f32>, DtmfError> {
    Ok(core::synthesize_f32(&keys, &config.into())?)
}

/// Renders `keys` as signed 16-bit PCM.
#[uniffi::export]
pub fn synthesize_dtmf_i16(keys: String, config: DtmfSynthConfig) -> Result<Vec<i16>, DtmfError> {
    Ok(core::synthesize_i16(&keys, &config.into())?)
}

/// Detects keys in audio pushed in chunks of any size; each key is reported
/// once its tone has ended. Safe to share between threads.
#[derive(uniffi::Object)]
pub struct DtmfDetector {
    state: Mutex<core::DtmfDetector>,
}

#[uniffi::export]
impl DtmfDetector {
    #[uniffi::constructor]
    pub fn new(sample_rate_hz: u32) -> Result<Arc<Self>, DtmfError> {
        Ok(Arc::new(DtmfDetector {
            state: Mutex::new(core::DtmfDetector::new(sample_rate_hz)?),
        }))
    }

    pub fn sample_rate_hz(&self) -> u32 {
        lock(&self.state, "DTMF detector").sample_rate_hz()
    }

    /// Feeds samples in -1.0..=1.0; returns the keys that ended in them.
    pub fn push_f32(&self, samples: Vec<f32>) -> Vec<DtmfEvent> {
        events(lock(&self.state, "DTMF detector").push_f32(&samples))
    }

    /// Feeds signed 16-bit samples; returns the keys that ended in them.
    pub fn push_i16(&self, samples: Vec<i16>) -> Vec<DtmfEvent> {
        events(lock(&self.state, "DTMF detector").push_i16(&samples))
    }

    /// Feeds raw PCM bytes (see `PcmEncoding`): the same as `push_f32` or
    /// `push_i16`, without passing the samples one by one.
    pub fn push_bytes(
        &self,
        pcm: Vec<u8>,
        encoding: PcmEncoding,
    ) -> Result<Vec<DtmfEvent>, PcmError> {
        let samples = pcm::to_f32(&pcm, encoding)?;
        Ok(events(
            lock(&self.state, "DTMF detector").push_f32(&samples),
        ))
    }

    /// Ends the stream: reports a key still sounding at its end and starts
    /// over for a new stream.
    pub fn finish(&self) -> Vec<DtmfEvent> {
        events(lock(&self.state, "DTMF detector").finish())
    }
}

fn events(events: Vec<core::DtmfEvent>) -> Vec<DtmfEvent> {
    events
        .into_iter()
        .map(|event| DtmfEvent {
            key: event.digit.as_char().to_string(),
            start_sample: event.start_sample,
            end_sample: event.end_sample,
        })
        .collect()
}

impl From<core::SynthConfig> for DtmfSynthConfig {
    fn from(config: core::SynthConfig) -> Self {
        DtmfSynthConfig {
            sample_rate_hz: config.sample_rate_hz,
            tone_ms: config.tone_ms,
            gap_ms: config.gap_ms,
            level_dbfs: config.level_dbfs,
        }
    }
}

impl From<DtmfSynthConfig> for core::SynthConfig {
    fn from(config: DtmfSynthConfig) -> Self {
        core::SynthConfig {
            sample_rate_hz: config.sample_rate_hz,
            tone_ms: config.tone_ms,
            gap_ms: config.gap_ms,
            level_dbfs: config.level_dbfs,
        }
    }
}

impl From<core::DtmfError> for DtmfError {
    fn from(error: core::DtmfError) -> Self {
        use core::DtmfError as E;
        let description = error.to_string();
        match error {
            E::UnknownDigit { found, position } => DtmfError::UnknownKey {
                found: found.to_string(),
                position: position as u64,
                description,
            },
            E::SampleRateOutOfRange { hz } => DtmfError::SampleRateOutOfRange { hz, description },
            E::ToneLengthOutOfRange { ms, min_ms, max_ms } => DtmfError::ToneLengthOutOfRange {
                ms,
                min_ms,
                max_ms,
                description,
            },
            E::GapLengthOutOfRange { ms, max_ms } => DtmfError::GapLengthOutOfRange {
                ms,
                max_ms,
                description,
            },
            E::LevelOutOfRange {
                dbfs,
                min_dbfs,
                max_dbfs,
            } => DtmfError::LevelOutOfRange {
                dbfs,
                min_dbfs,
                max_dbfs,
                description,
            },
        }
    }
}
