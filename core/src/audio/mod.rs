//! The machine's own microphone and loudspeaker, through cpal (ALSA on
//! Linux, CoreAudio on macOS, WASAPI on Windows). Built only with the
//! `audio-io` feature: the phone apps capture through their platform's API
//! and push samples into the decoders themselves, so they leave it out.
//!
//! - [`capture`]: opens an input device as mono f32 and hands its samples
//!   out of the audio thread through a lock-free ring, counting what the
//!   ring had no room for instead of blocking the device.
//! - [`sinks`]: consumers of captured audio that give the CLI and desktop
//!   builds the same path the apps feed by hand: a [`TokenSink`] around a
//!   [`TokenDecoder`](crate::acoustic::TokenDecoder) and a [`Recorder`] that
//!   keeps audio for the ambient fingerprint.
//! - [`playback`]: plays a mono f32 buffer (a modulated token) on an output
//!   device and waits until it has been played.
//!
//! This is the only module of the core that opens sound devices.

pub mod capture;
mod device;
pub mod playback;
pub mod sinks;

pub use capture::{Capture, CaptureOptions, RunSummary};
/// The device-side sample format reported in [`StreamInfo`].
pub use cpal::SampleFormat;
pub use device::{DeviceInfo, StreamInfo, input_devices, output_devices};
pub use playback::{Player, Playing};
pub use sinks::{AudioSink, HeardToken, Recorder, TokenSink};

/// The rate asked of devices unless the caller says otherwise: every
/// acoustic profile and the fingerprint work at it, and most hardware runs
/// at it natively.
pub const DEFAULT_SAMPLE_RATE_HZ: u32 = 48_000;

/// Which way a device carries sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// Why a sound device could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    #[error("the sound system is not available: {message}")]
    HostUnavailable { message: String },
    #[error("there is no default {direction} device: connect a microphone or speaker, or name one")]
    NoDefaultDevice { direction: Direction },
    #[error("no {direction} device is called {name:?}; available: {available}")]
    DeviceNotFound {
        direction: Direction,
        name: String,
        available: String,
    },
    #[error("the {direction} device {device:?} could not be opened: {message}")]
    DeviceUnavailable {
        direction: Direction,
        device: String,
        message: String,
    },
    #[error(
        "the {direction} device {device:?} offers no usable format (it needs f32, i16 or i32 samples): {message}"
    )]
    UnsupportedConfig {
        direction: Direction,
        device: String,
        message: String,
    },
    #[error("the {direction} stream of {device:?} failed: {message}")]
    Stream {
        direction: Direction,
        device: String,
        message: String,
    },
    #[error("playback of {device:?} did not finish within {waited_ms} ms")]
    PlaybackTimedOut { device: String, waited_ms: u64 },
}
