//! Ambient sound fingerprint: do two phones hear the same room?
//!
//! This module is the fingerprint both sides agree on: its bytes and how two
//! are compared. The phone computes it from the microphone
//! (`clink_core::bump::FingerprintExtractor`); the server compares the two
//! reports of a bump.
//!
//! After Haitsma and Kalker: the audio around the knock is cut into
//! [`FRAME_MS`] frames every [`HOP_MS`]; each frame's energy is measured in
//! [`BAND_COUNT`] log-spaced bands from [`LOW_HZ`] to [`HIGH_HZ`]; and each
//! bit says whether a band's energy grew or shrank since the previous frame.
//! Differences of log energies across time cancel any fixed gain per band,
//! so a different microphone gain or frequency response does not change the
//! bits; what changes them is sound that only one phone hears (its own
//! noise, its own late reverberation, a different room).
//!
//! Why not Haitsma–Kalker's own bits (33 narrow bands, 50 ms frames, and a
//! difference across neighbouring bands as well): measured on the shared
//! two-phone scenes, two phones 30 cm apart agreed on barely more bits than
//! strangers (median score 0.10 against 0.03), because narrow bands in
//! short frames follow each microphone's own reverberation. Wide bands in
//! 100 ms frames follow the sources (voices, music, traffic) that both
//! phones hear: median 0.33 against 0.03.
//!
//! Two fingerprints are compared at every lag up to ±[`MAX_LAG_FRAMES`]
//! frames (the phones cut their audio around their own estimate of the knock,
//! and audio and sensor clocks differ by tens of milliseconds); the score is
//! `1 - 2 × (lowest bit error rate)`: about 0 for unrelated sounds, 1 for
//! identical ones.
//!
//! The phone fingerprints the audio from [`AUDIO_BEFORE_KNOCK_MS`] before the
//! knock to [`AUDIO_AFTER_KNOCK_MS`] after it: 92 frames of 16 bits, 185
//! bytes with the version byte.

/// Length of one analysis frame.
pub const FRAME_MS: u32 = 100;
/// Step between frames.
pub const HOP_MS: u32 = 25;
/// Bands per frame; one bit per band.
pub const BAND_COUNT: usize = 16;
/// The bands span this range: where room sound (voices, music, traffic,
/// machines) has energy and every phone microphone hears it.
pub const LOW_HZ: f32 = 300.0;
pub const HIGH_HZ: f32 = 6_000.0;
/// Audio the phone fingerprints around the knock.
pub const AUDIO_BEFORE_KNOCK_MS: u32 = 1_600;
pub const AUDIO_AFTER_KNOCK_MS: u32 = 800;
/// Shortest audio accepted.
pub const MIN_AUDIO_MS: u32 = 1_000;
/// Most bit rows kept (later audio is ignored), so the fingerprint fits the
/// report.
pub const MAX_FRAMES: usize = 120;
/// Lag search range either way, in frames (±50 ms).
pub const MAX_LAG_FRAMES: usize = 2;
/// Scores at or above this mean "the same room at the same moment"; chosen
/// from the shared two-phone scenes (see `tests/bump_fingerprint.rs`).
pub const SAME_ROOM_THRESHOLD: f32 = 0.17;
/// Sample rates accepted.
pub const MIN_SAMPLE_RATE_HZ: u32 = 16_000;
pub const MAX_SAMPLE_RATE_HZ: u32 = 96_000;
/// Below this RMS level (-120 dBFS) the microphone delivered nothing
/// usable (muted, permission denied).
pub const MIN_RMS_LEVEL: f32 = 1e-6;
/// A fingerprint whose bits are nearly all the same carries no information
/// (silence, a pure tone); it never scores as similar.
const MIN_ONES_FRACTION: f32 = 0.15;

/// The first byte of every fingerprint.
pub const FORMAT_VERSION: u8 = 2;
const BITS_PER_FRAME: usize = BAND_COUNT;
const _: () = assert!(BITS_PER_FRAME == 16);
const BYTES_PER_FRAME: usize = 2;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FingerprintError {
    #[error(
        "sample rate {sample_rate_hz} Hz is outside the supported {MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz"
    )]
    UnsupportedSampleRate { sample_rate_hz: u32 },
    #[error("{got_ms} ms of audio is too short: at least {MIN_AUDIO_MS} ms is needed")]
    AudioTooShort { got_ms: u32 },
    #[error("audio sample {index} is not finite")]
    NotFinite { index: usize },
    #[error("the audio is silent (RMS {rms:e}): the microphone delivered nothing usable")]
    Silent { rms: f32 },
    #[error("fingerprint bytes are empty")]
    Empty,
    #[error("fingerprint format version {0} is unknown (expected {FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("fingerprint has {len} bytes: expected 1 + 2 × frames with 1 to {MAX_FRAMES} frames")]
    BadLength { len: usize },
}

/// The bits of one fingerprint: one 16-bit word per frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbientFingerprint {
    frames: Vec<u16>,
}

impl AmbientFingerprint {
    /// The fingerprint of these frames' bits, one word per frame (the
    /// phone's extractor builds them from audio). At most [`MAX_FRAMES`]
    /// are kept.
    pub fn from_frames(mut frames: Vec<u16>) -> AmbientFingerprint {
        frames.truncate(MAX_FRAMES);
        AmbientFingerprint { frames }
    }

    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Version byte, then each frame as a little-endian u16.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + BYTES_PER_FRAME * self.frames.len());
        bytes.push(FORMAT_VERSION);
        for word in &self.frames {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<AmbientFingerprint, FingerprintError> {
        let (&version, body) = bytes.split_first().ok_or(FingerprintError::Empty)?;
        if version != FORMAT_VERSION {
            return Err(FingerprintError::UnknownVersion(version));
        }
        if body.is_empty()
            || body.len() % BYTES_PER_FRAME != 0
            || body.len() / BYTES_PER_FRAME > MAX_FRAMES
        {
            return Err(FingerprintError::BadLength { len: bytes.len() });
        }
        let frames = body
            .chunks_exact(BYTES_PER_FRAME)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(AmbientFingerprint { frames })
    }

    /// `1 - 2 × BER` at the best lag within ±[`MAX_LAG_FRAMES`]; 0 when
    /// either fingerprint carries no information or they barely overlap.
    pub fn similarity(&self, other: &AmbientFingerprint) -> f32 {
        if !self.is_informative() || !other.is_informative() {
            return 0.0;
        }
        let mut best_ber = 0.5f32;
        for lag in -(MAX_LAG_FRAMES as isize)..=MAX_LAG_FRAMES as isize {
            let (a, b) = if lag >= 0 {
                (&self.frames[lag as usize..], &other.frames[..])
            } else {
                (&self.frames[..], &other.frames[(-lag) as usize..])
            };
            let overlap = a.len().min(b.len());
            // Comparing a few frames proves nothing.
            if overlap * 2 < self.frames.len().min(other.frames.len()) {
                continue;
            }
            let errors: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
            best_ber = best_ber.min(errors as f32 / (overlap * BITS_PER_FRAME) as f32);
        }
        (1.0 - 2.0 * best_ber).max(0.0)
    }

    fn is_informative(&self) -> bool {
        let ones: u32 = self.frames.iter().map(|w| w.count_ones()).sum();
        let fraction = ones as f32 / (self.frames.len() * BITS_PER_FRAME) as f32;
        (MIN_ONES_FRACTION..=1.0 - MIN_ONES_FRACTION).contains(&fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uninformative_fingerprints_never_match() {
        let constant = AmbientFingerprint::from_frames(vec![0; 100]);
        assert_eq!(constant.similarity(&constant.clone()), 0.0);
    }

    #[test]
    fn bytes_round_trip_and_frames_are_capped() {
        let words: Vec<u16> = (0..MAX_FRAMES as u16 + 5)
            .map(|i| i.wrapping_mul(40_503))
            .collect();
        let fp = AmbientFingerprint::from_frames(words.clone());
        assert_eq!(fp.frame_count(), MAX_FRAMES);
        let bytes = fp.to_bytes();
        assert_eq!(bytes.len(), 1 + 2 * MAX_FRAMES);
        assert_eq!(AmbientFingerprint::from_bytes(&bytes), Ok(fp.clone()));
        // A fingerprint matches itself, and not a shifted-away stranger.
        assert_eq!(fp.similarity(&fp), 1.0);
        let other = AmbientFingerprint::from_frames(
            words.iter().map(|w| w.rotate_left(7) ^ 0x5a5a).collect(),
        );
        assert!(fp.similarity(&other) < SAME_ROOM_THRESHOLD);
    }
}
