//! Acoustic token modem: a 16-byte single-use token played by one phone's
//! loudspeaker and decoded from another phone's microphone.
//!
//! Signal, in order:
//! 1. a linear chirp across the band (timing and detection, matched-filtered);
//! 2. one OFDM reference symbol with known phases;
//! 3. 11 OFDM data symbols (49 subcarriers 50 Hz apart, 20 ms + 15 ms cyclic
//!    prefix), differentially encoded BPSK on each subcarrier.
//!
//! The frame is the token and its CRC-32C (160 bits), convolutionally coded
//! at rate 1/3 and interleaved over the symbol × subcarrier grid. In total
//! 0.471 s at any supported sample rate.
//!
//! Why this shape: a phone-to-phone room channel is static over half a second
//! but has long echoes, a tilted and rippled frequency response and a clock
//! offset. Differential encoding makes the static channel's phase irrelevant
//! (no equaliser, no pilots), a long cyclic prefix absorbs the early echoes,
//! the chirp gives sharp timing even under reverberation, and a
//! soft-decision code over a time/frequency interleaver rides through
//! notches and late-echo interference. The decoder tries differential
//! detection, then coherent detection against a per-subcarrier channel
//! estimate, then cancels the echoes of earlier symbols with a fitted echo
//! model, and last, for reverberation that outlasts the prefix, estimates
//! the room's impulse response over the whole token and cancels the
//! interference in the time domain (`reverb`), refining the clock offset as
//! it goes; a frame that settles a bit or two from right is rescued from
//! the Viterbi decoder's runners-up. The CRC-32C decides, so anything the
//! code could not repair is dropped rather than reported.
//!
//! Sample rates: the parts of the token last the same in seconds at every
//! rate but the cyclic prefix, 662 samples at 44.1 kHz (15.011 ms) against
//! 15 ms at 48 kHz. The decoder reads a candidate with its own rate's
//! timing and, failing that, resampled to the other rate's, so a token
//! played at 44.1 kHz and recorded at 48 kHz (or the reverse) decodes as
//! well as one played and recorded at the same rate.
//!
//! Everything here is pure: samples and a sample rate in, values out.

mod demodulate;
mod fec;
mod frame;
mod layout;
mod modulate;
mod preamble;
mod resample;
mod reverb;

pub use demodulate::TokenDecoder;
pub use modulate::TokenModem;

/// Bytes in a token.
pub const TOKEN_LEN: usize = 16;

/// A token as carried over the air.
pub type Token = [u8; TOKEN_LEN];

/// Which part of the spectrum the modem uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 17.5–20 kHz: inaudible to most adults; needs a sample rate of at
    /// least 44.1 kHz.
    NearUltrasound,
    /// 1.5–4 kHz: audible, for devices whose speaker or microphone cuts off
    /// the near-ultrasound band.
    Audible,
}

impl Profile {
    /// Lowest and highest frequency of the occupied band, in Hz.
    pub fn band_hz(self) -> (u32, u32) {
        match self {
            Profile::NearUltrasound => (17_500, 20_000),
            Profile::Audible => (1_500, 4_000),
        }
    }

    /// Lowest sample rate that carries the band with room for anti-alias
    /// filters (Nyquist at least 10 % above the top of the band).
    pub fn min_sample_rate_hz(self) -> u32 {
        match self {
            Profile::NearUltrasound => 44_100,
            Profile::Audible => 16_000,
        }
    }
}

/// Why a modem or decoder could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcousticError {
    #[error(
        "sample rate {sample_rate_hz} Hz is too low for the {profile:?} profile: it needs at least {min_hz} Hz"
    )]
    SampleRateTooLow {
        profile: Profile,
        sample_rate_hz: u32,
        min_hz: u32,
    },
    #[error("sample rate {sample_rate_hz} Hz is above the supported maximum of {max_hz} Hz")]
    SampleRateTooHigh { sample_rate_hz: u32, max_hz: u32 },
    #[error(
        "sample rate {sample_rate_hz} Hz is not a multiple of {step_hz} Hz, so an OFDM symbol would not be a whole number of samples"
    )]
    SampleRateNotMultiple { sample_rate_hz: u32, step_hz: u32 },
}
