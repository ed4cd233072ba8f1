//! Token to PCM: preamble chirp, reference symbol, DBPSK OFDM data symbols.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::frame::{self, Interleaver};
use super::layout::Layout;
use super::preamble::{chirp, taper_gain};
use super::{AcousticError, Profile, Token, fec};

/// Peak level of the output, leaving a little headroom below full scale.
const OUTPUT_PEAK: f32 = 0.9;

/// Known phases (0 → +1, 1 → −1) of the reference symbol's subcarriers, a
/// fixed pseudo-random pattern so the symbol has no large peak.
const REFERENCE_PHASE_BITS: u64 = 0x9E37_79B9_7F4A_7C15;

/// Sign (+1/−1) of subcarrier `carrier` in the reference symbol.
pub fn reference_sign(carrier: usize) -> f32 {
    if REFERENCE_PHASE_BITS >> (carrier % 64) & 1 == 0 {
        1.0
    } else {
        -1.0
    }
}

/// Turns tokens into audio for one profile and sample rate.
#[derive(Clone)]
pub struct TokenModem {
    profile: Profile,
    layout: Layout,
    inverse_fft: Arc<dyn Fft<f32>>,
    interleaver_subcarriers: usize,
}

impl TokenModem {
    pub fn new(profile: Profile, sample_rate_hz: u32) -> Result<Self, AcousticError> {
        let layout = Layout::new(profile, sample_rate_hz)?;
        Ok(TokenModem {
            profile,
            inverse_fft: FftPlanner::new().plan_fft_inverse(layout.useful_len),
            interleaver_subcarriers: layout.subcarrier_bins.len(),
            layout,
        })
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn sample_rate_hz(&self) -> u32 {
        self.layout.sample_rate_hz
    }

    /// Length of a modulated token, in seconds.
    pub fn token_duration_s(&self) -> f64 {
        self.layout.token_len() as f64 / f64::from(self.layout.sample_rate_hz)
    }

    /// Mono PCM, peak 0.9, ready to play at `sample_rate_hz()`.
    pub fn modulate(&self, token: &Token) -> Vec<f32> {
        let layout = &self.layout;
        let coded = fec::encode(&frame::frame_bits(token));
        let grid = Interleaver::new(layout.slots(), self.interleaver_subcarriers).spread(&coded);
        let mut out = waveform(
            layout,
            self.inverse_fft.as_ref(),
            &symbol_signs(layout, &grid),
        );
        let peak = out.iter().fold(0f32, |m, s| m.max(s.abs()));
        if peak > 0.0 {
            let gain = OUTPUT_PEAK / peak;
            out.iter_mut().for_each(|s| *s *= gain);
        }
        out
    }
}

/// Subcarrier signs (+1/−1) of every OFDM symbol, reference first, for the
/// coded bits as spread over the grid: a 1 flips the subcarrier's sign.
pub fn symbol_signs(layout: &Layout, grid_bits: &[u8]) -> Vec<Vec<f32>> {
    let carriers = layout.subcarrier_bins.len();
    let mut signs = vec![(0..carriers).map(reference_sign).collect::<Vec<f32>>()];
    for bits in grid_bits.chunks_exact(carriers).take(layout.data_symbols) {
        let previous = signs.last().expect("the reference is there");
        let next = previous
            .iter()
            .zip(bits)
            .map(|(&sign, &bit)| if bit == 1 { -sign } else { sign })
            .collect();
        signs.push(next);
    }
    signs
}

/// Same RMS per OFDM symbol as the chirp (1/√2): amplitude of each
/// subcarrier.
pub fn carrier_gain(layout: &Layout) -> f32 {
    1.0 / (layout.subcarrier_bins.len() as f32).sqrt()
}

/// The token's samples before level normalisation: the chirp, then the
/// OFDM symbols with subcarrier signs `signs[symbol][carrier]`.
/// `inverse_fft` has length `layout.useful_len`.
pub fn waveform(layout: &Layout, inverse_fft: &dyn Fft<f32>, signs: &[Vec<f32>]) -> Vec<f32> {
    let mut out = vec![0f32; layout.token_len()];
    out[..layout.preamble_len].copy_from_slice(&chirp(layout));
    let gain = carrier_gain(layout);
    for (symbol, symbol_signs) in signs.iter().enumerate() {
        add_symbol(
            layout,
            inverse_fft,
            symbol_signs,
            gain,
            layout.symbol_start(symbol),
            &mut out,
        );
    }
    out
}

/// Adds one OFDM symbol (cyclic prefix, useful part, ramp-down suffix)
/// at `start`; its ramps overlap the neighbouring symbols' ramps.
fn add_symbol(
    layout: &Layout,
    inverse_fft: &dyn Fft<f32>,
    signs: &[f32],
    gain: f32,
    start: usize,
    out: &mut [f32],
) {
    let n_useful = layout.useful_len;
    // Useful part: sum of sign · cos(2π·bin·n/N), the real part of an
    // inverse FFT with the signs on the subcarrier bins.
    let mut spectrum = vec![Complex32::ZERO; n_useful];
    for (&bin, &sign) in layout.subcarrier_bins.iter().zip(signs) {
        spectrum[bin] = Complex32::new(sign * gain, 0.0);
    }
    inverse_fft.process(&mut spectrum);
    let useful: Vec<f32> = spectrum.iter().map(|c| c.re).collect();
    let extended_len = layout.symbol_stride() + layout.taper_len;
    for m in 0..extended_len {
        // The prefix and suffix are cyclic copies of the useful part.
        let sample = useful[(m + n_useful - layout.cyclic_prefix_len % n_useful) % n_useful];
        out[start + m] += sample * taper_gain(m, extended_len, layout.taper_len) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_has_token_length_and_peak_0_9() {
        let modem = TokenModem::new(Profile::NearUltrasound, 44_100).unwrap();
        let pcm = modem.modulate(&[7; 16]);
        assert_eq!(pcm.len() as f64 / 44_100.0, modem.token_duration_s());
        let peak = pcm.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - OUTPUT_PEAK).abs() < 1e-6);
    }

    #[test]
    fn near_ultrasound_output_keeps_out_of_the_audible_band() {
        // Energy below 16 kHz stays 40 dB under the total: no audible clicks.
        let modem = TokenModem::new(Profile::NearUltrasound, 48_000).unwrap();
        let pcm = modem.modulate(b"clink-token-0001");
        let total: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
        let audible = energy_below_hz(&pcm, 48_000.0, 16_000.0);
        assert!(audible < total * 1e-4, "audible share {}", audible / total);
    }

    fn energy_below_hz(pcm: &[f32], fs: f64, cutoff_hz: f64) -> f64 {
        use rustfft::{FftPlanner, num_complex::Complex64};
        let mut spectrum: Vec<Complex64> = pcm
            .iter()
            .map(|&s| Complex64::new(f64::from(s), 0.0))
            .collect();
        let n = spectrum.len();
        FftPlanner::new().plan_fft_forward(n).process(&mut spectrum);
        let cutoff_bin = (cutoff_hz / fs * n as f64) as usize;
        // Two-sided spectrum: bins 0..cutoff and their mirror images.
        let one_side: f64 = spectrum[1..cutoff_bin].iter().map(|c| c.norm_sqr()).sum();
        (spectrum[0].norm_sqr() + 2.0 * one_side) / n as f64
    }
}
