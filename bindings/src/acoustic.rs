//! The acoustic token modem (see `clink_core::acoustic`): a 16-byte token
//! played by one phone's loudspeaker and decoded from another's microphone.

use std::sync::{Arc, Mutex};

use clink_core::acoustic as core;

use crate::lock::lock;
use crate::pcm::{self, PcmEncoding, PcmError};

/// Which part of the spectrum the modem uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AcousticProfile {
    /// 17.5–20 kHz, inaudible to most adults; needs at least 44.1 kHz.
    NearUltrasound,
    /// 1.5–4 kHz, for devices that cut off the near-ultrasound band.
    Audible,
}

/// Why a modem or decoder could not be built or a token not sent;
/// `description` is the core's sentence for people and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum AcousticError {
    #[error("{description}")]
    SampleRateTooLow {
        profile: AcousticProfile,
        sample_rate_hz: u32,
        min_hz: u32,
        description: String,
    },
    #[error("{description}")]
    SampleRateTooHigh {
        sample_rate_hz: u32,
        max_hz: u32,
        description: String,
    },
    #[error("{description}")]
    SampleRateNotMultiple {
        sample_rate_hz: u32,
        step_hz: u32,
        description: String,
    },
    /// The token handed to `modulate` is not `expected` bytes long.
    #[error("{description}")]
    TokenLength {
        expected: u64,
        found: u64,
        description: String,
    },
}

/// Bytes in a token.
#[uniffi::export]
pub fn acoustic_token_len() -> u64 {
    core::TOKEN_LEN as u64
}

/// Lowest sample rate that carries the profile's band.
#[uniffi::export]
pub fn acoustic_min_sample_rate_hz(profile: AcousticProfile) -> u32 {
    core::Profile::from(profile).min_sample_rate_hz()
}

/// Turns tokens into PCM for the loudspeaker.
#[derive(uniffi::Object)]
pub struct TokenModem {
    modem: core::TokenModem,
}

#[uniffi::export]
impl TokenModem {
    #[uniffi::constructor]
    pub fn new(profile: AcousticProfile, sample_rate_hz: u32) -> Result<Arc<Self>, AcousticError> {
        Ok(Arc::new(TokenModem {
            modem: core::TokenModem::new(profile.into(), sample_rate_hz)?,
        }))
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.modem.sample_rate_hz()
    }

    /// Length of one token's signal in seconds.
    pub fn token_duration_s(&self) -> f64 {
        self.modem.token_duration_s()
    }

    /// The signal for one 16-byte token, samples in -1.0..=1.0.
    pub fn modulate(&self, token: Vec<u8>) -> Result<Vec<f32>, AcousticError> {
        let token: core::Token =
            token
                .as_slice()
                .try_into()
                .map_err(|_| AcousticError::TokenLength {
                    expected: core::TOKEN_LEN as u64,
                    found: token.len() as u64,
                    description: format!(
                        "a token is {} bytes, got {}",
                        core::TOKEN_LEN,
                        token.len()
                    ),
                })?;
        Ok(self.modem.modulate(&token))
    }
}

/// Decodes tokens from microphone audio pushed in chunks of any size. Safe
/// to share between threads.
#[derive(uniffi::Object)]
pub struct TokenDecoder {
    state: Mutex<core::TokenDecoder>,
}

#[uniffi::export]
impl TokenDecoder {
    #[uniffi::constructor]
    pub fn new(profile: AcousticProfile, sample_rate_hz: u32) -> Result<Arc<Self>, AcousticError> {
        Ok(Arc::new(TokenDecoder {
            state: Mutex::new(core::TokenDecoder::new(profile.into(), sample_rate_hz)?),
        }))
    }

    /// Feeds microphone samples; returns the tokens they completed, in order.
    pub fn push(&self, samples: Vec<f32>) -> Vec<Vec<u8>> {
        lock(&self.state, "token decoder")
            .push(&samples)
            .into_iter()
            .map(|token| token.to_vec())
            .collect()
    }

    /// Feeds raw PCM bytes (see `PcmEncoding`): the same as `push`, without
    /// passing the samples one by one.
    pub fn push_bytes(
        &self,
        pcm: Vec<u8>,
        encoding: PcmEncoding,
    ) -> Result<Vec<Vec<u8>>, PcmError> {
        let samples = pcm::to_f32(&pcm, encoding)?;
        Ok(self.push(samples))
    }

    /// Forgets all buffered input, as if newly created.
    pub fn reset(&self) {
        lock(&self.state, "token decoder").reset()
    }
}

impl From<AcousticProfile> for core::Profile {
    fn from(profile: AcousticProfile) -> Self {
        match profile {
            AcousticProfile::NearUltrasound => core::Profile::NearUltrasound,
            AcousticProfile::Audible => core::Profile::Audible,
        }
    }
}

impl From<core::Profile> for AcousticProfile {
    fn from(profile: core::Profile) -> Self {
        match profile {
            core::Profile::NearUltrasound => AcousticProfile::NearUltrasound,
            core::Profile::Audible => AcousticProfile::Audible,
        }
    }
}

impl From<core::AcousticError> for AcousticError {
    fn from(error: core::AcousticError) -> Self {
        use core::AcousticError as E;
        let description = error.to_string();
        match error {
            E::SampleRateTooLow {
                profile,
                sample_rate_hz,
                min_hz,
            } => AcousticError::SampleRateTooLow {
                profile: profile.into(),
                sample_rate_hz,
                min_hz,
                description,
            },
            E::SampleRateTooHigh {
                sample_rate_hz,
                max_hz,
            } => AcousticError::SampleRateTooHigh {
                sample_rate_hz,
                max_hz,
                description,
            },
            E::SampleRateNotMultiple {
                sample_rate_hz,
                step_hz,
            } => AcousticError::SampleRateNotMultiple {
                sample_rate_hz,
                step_hz,
                description,
            },
        }
    }
}
