//! Ambient sound fingerprint: the phone's side, from audio to bits.
//!
//! The fingerprint's format, constants and comparison are shared with the
//! server and live in [`clink_protocol::fingerprint`] (re-exported here);
//! this module computes it (see there for the method and why).

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

pub use clink_protocol::fingerprint::*;

/// Fingerprints one clip; build a [`FingerprintExtractor`] to fingerprint
/// many clips at one rate.
pub fn fingerprint_audio(
    audio: &[f32],
    sample_rate_hz: u32,
) -> Result<AmbientFingerprint, FingerprintError> {
    FingerprintExtractor::new(sample_rate_hz)?.fingerprint(audio)
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
        Ok(AmbientFingerprint::from_frames(frames))
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
        let fp = fingerprint_audio(&audio, 16_000).unwrap();
        assert_eq!(fp.frame_count(), 92);
        let bytes = fp.to_bytes();
        assert_eq!(bytes.len(), 185);
        assert_eq!(AmbientFingerprint::from_bytes(&bytes).unwrap(), fp);
    }

    #[test]
    fn gain_does_not_change_the_bits_and_other_noise_scores_near_zero() {
        let audio = noise(32_000, 1);
        let louder: Vec<f32> = audio.iter().map(|s| s * 7.5).collect();
        let a = fingerprint_audio(&audio, 16_000).unwrap();
        let b = fingerprint_audio(&louder, 16_000).unwrap();
        assert!(a.similarity(&b) > 0.95, "{}", a.similarity(&b));
        let other = fingerprint_audio(&noise(32_000, 2), 16_000).unwrap();
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
            fingerprint_audio(&noise(8_000, 1), 16_000),
            Err(FingerprintError::AudioTooShort { got_ms: 500 })
        );
        let mut audio = noise(20_000, 1);
        audio[123] = f32::INFINITY;
        assert_eq!(
            fingerprint_audio(&audio, 16_000),
            Err(FingerprintError::NotFinite { index: 123 })
        );
        assert!(matches!(
            fingerprint_audio(&vec![0.0; 20_000], 16_000),
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
}
