//! Ambient sound fingerprint: do two phones hear the same room?
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

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

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
const MIN_RMS_LEVEL: f32 = 1e-6;
/// A fingerprint whose bits are nearly all the same carries no information
/// (silence, a pure tone); it never scores as similar.
const MIN_ONES_FRACTION: f32 = 0.15;

const FORMAT_VERSION: u8 = 2;
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
    /// Convenience for one-off use; build a [`FingerprintExtractor`] to
    /// fingerprint many clips at one rate.
    pub fn from_audio(
        audio: &[f32],
        sample_rate_hz: u32,
    ) -> Result<AmbientFingerprint, FingerprintError> {
        FingerprintExtractor::new(sample_rate_hz)?.fingerprint(audio)
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

/// Fingerprints audio at one sample rate, keeping its FFT plan and buffers.
pub struct FingerprintExtractor {
    sample_rate_hz: u32,
    frame_len: usize,
    hop_len: usize,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// FFT bin range `[start, end)` of each band.
    band_bins: Vec<(usize, usize)>,
    buffer: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl FingerprintExtractor {
    pub fn new(sample_rate_hz: u32) -> Result<FingerprintExtractor, FingerprintError> {
        if !(MIN_SAMPLE_RATE_HZ..=MAX_SAMPLE_RATE_HZ).contains(&sample_rate_hz) {
            return Err(FingerprintError::UnsupportedSampleRate { sample_rate_hz });
        }
        let rate = sample_rate_hz as f32;
        let frame_len = (rate * FRAME_MS as f32 / 1000.0).round() as usize;
        let hop_len = (rate * HOP_MS as f32 / 1000.0).round() as usize;
        let fft = FftPlanner::new().plan_fft_forward(frame_len);
        // Hann window.
        let window = (0..frame_len)
            .map(|n| {
                let phase = std::f32::consts::TAU * n as f32 / frame_len as f32;
                0.5 - 0.5 * phase.cos()
            })
            .collect();
        let bin_hz = rate / frame_len as f32;
        let ratio = (HIGH_HZ / LOW_HZ).powf(1.0 / BAND_COUNT as f32);
        let edge_bin = |k: usize| (LOW_HZ * ratio.powi(k as i32) / bin_hz).round() as usize;
        let band_bins = (0..BAND_COUNT)
            .map(|k| {
                let start = edge_bin(k);
                // At least one bin per band, even where bins are coarse.
                (start, edge_bin(k + 1).max(start + 1))
            })
            .collect();
        let scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        Ok(FingerprintExtractor {
            sample_rate_hz,
            frame_len,
            hop_len,
            fft,
            window,
            band_bins,
            buffer: vec![Complex32::default(); frame_len],
            scratch,
        })
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Fingerprints mono audio: ideally from [`AUDIO_BEFORE_KNOCK_MS`]
    /// before the knock to [`AUDIO_AFTER_KNOCK_MS`] after it, so both phones
    /// cut the same stretch.
    pub fn fingerprint(&mut self, audio: &[f32]) -> Result<AmbientFingerprint, FingerprintError> {
        let rate = self.sample_rate_hz as usize;
        let got_ms = (audio.len() * 1000 / rate) as u32;
        if got_ms < MIN_AUDIO_MS {
            return Err(FingerprintError::AudioTooShort { got_ms });
        }
        if let Some(index) = audio.iter().position(|s| !s.is_finite()) {
            return Err(FingerprintError::NotFinite { index });
        }
        let rms = (audio
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / audio.len() as f64)
            .sqrt() as f32;
        if rms < MIN_RMS_LEVEL {
            return Err(FingerprintError::Silent { rms });
        }

        let energy_frames = (1 + (audio.len() - self.frame_len) / self.hop_len).min(MAX_FRAMES + 1);
        let mut previous: Option<[f32; BAND_COUNT]> = None;
        let mut frames = Vec::with_capacity(energy_frames - 1);
        for f in 0..energy_frames {
            let start = f * self.hop_len;
            let energies = self.log_band_energies(&audio[start..start + self.frame_len]);
            if let Some(prev) = previous {
                let mut word = 0u16;
                for (m, (now, before)) in energies.iter().zip(&prev).enumerate() {
                    if now > before {
                        word |= 1 << m;
                    }
                }
                frames.push(word);
            }
            previous = Some(energies);
        }
        Ok(AmbientFingerprint { frames })
    }

    fn log_band_energies(&mut self, frame: &[f32]) -> [f32; BAND_COUNT] {
        for ((slot, &s), &w) in self.buffer.iter_mut().zip(frame).zip(&self.window) {
            *slot = Complex32::new(s * w, 0.0);
        }
        self.fft
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
        let mut energies = [0.0f32; BAND_COUNT];
        for (e, &(start, end)) in energies.iter_mut().zip(&self.band_bins) {
            let power: f32 = self.buffer[start..end].iter().map(|c| c.norm_sqr()).sum();
            // The floor keeps digital silence finite; far below any real noise.
            *e = (power + 1e-20).ln();
        }
        energies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise (xorshift), uniform in [-1, 1).
    fn noise(len: usize, mut state: u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn size_fits_a_report() {
        let audio = noise(
            16 * (AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS) as usize,
            7,
        );
        let fp = AmbientFingerprint::from_audio(&audio, 16_000).unwrap();
        assert_eq!(fp.frame_count(), 92);
        let bytes = fp.to_bytes();
        assert_eq!(bytes.len(), 185);
        assert_eq!(AmbientFingerprint::from_bytes(&bytes).unwrap(), fp);
    }

    #[test]
    fn gain_does_not_change_the_bits_and_other_noise_scores_near_zero() {
        let audio = noise(32_000, 1);
        let louder: Vec<f32> = audio.iter().map(|s| s * 7.5).collect();
        let a = AmbientFingerprint::from_audio(&audio, 16_000).unwrap();
        let b = AmbientFingerprint::from_audio(&louder, 16_000).unwrap();
        assert!(a.similarity(&b) > 0.95, "{}", a.similarity(&b));
        let other = AmbientFingerprint::from_audio(&noise(32_000, 2), 16_000).unwrap();
        assert!(a.similarity(&other) < 0.1, "{}", a.similarity(&other));
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            FingerprintExtractor::new(8_000).err(),
            Some(FingerprintError::UnsupportedSampleRate {
                sample_rate_hz: 8_000
            })
        );
        assert_eq!(
            AmbientFingerprint::from_audio(&noise(8_000, 1), 16_000),
            Err(FingerprintError::AudioTooShort { got_ms: 500 })
        );
        let mut audio = noise(20_000, 1);
        audio[123] = f32::INFINITY;
        assert_eq!(
            AmbientFingerprint::from_audio(&audio, 16_000),
            Err(FingerprintError::NotFinite { index: 123 })
        );
        assert!(matches!(
            AmbientFingerprint::from_audio(&vec![0.0; 20_000], 16_000),
            Err(FingerprintError::Silent { .. })
        ));
        assert_eq!(
            AmbientFingerprint::from_bytes(&[]),
            Err(FingerprintError::Empty)
        );
        assert_eq!(
            AmbientFingerprint::from_bytes(&[9, 0, 0, 0, 0]),
            Err(FingerprintError::UnknownVersion(9))
        );
        assert_eq!(
            AmbientFingerprint::from_bytes(&[FORMAT_VERSION, 0, 0, 0]),
            Err(FingerprintError::BadLength { len: 4 })
        );
    }

    #[test]
    fn uninformative_fingerprints_never_match() {
        let constant = AmbientFingerprint {
            frames: vec![0; 100],
        };
        assert_eq!(constant.similarity(&constant.clone()), 0.0);
    }
}
