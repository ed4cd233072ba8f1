//! Spectral purity: the power spectrum of a frame across the telephone band,
//! to check that a candidate's two tones stand above everything else in it.
//!
//! Speech and music that put energy on two DTMF frequencies almost always
//! carry other partials of similar strength (other notes of a chord, other
//! harmonics, formants); a DTMF signal in white noise does not. Computed only
//! for frames that already look like a digit, so its cost hardly shows.

use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::f64::consts::TAU;
use std::sync::Arc;

/// The band inspected: what a telephone channel carries.
const BAND_LOW_HZ: f64 = 300.0;
const BAND_HIGH_HZ: f64 = 3_400.0;

pub(crate) struct BandSpectrum {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    buffer: Vec<Complex32>,
    scratch: Vec<Complex32>,
    bin_hz: f64,
    /// Half-width of a tone's main lobe under the Hann window.
    lobe_hz: f64,
    first_bin: usize,
    last_bin: usize,
}

impl BandSpectrum {
    pub fn new(frame_len: usize, sample_rate_hz: u32) -> BandSpectrum {
        // Zero-padded to a power of two: some rates' frame lengths have large
        // prime factors (880 = 16 x 5 x 11 at 44.1 kHz) that slow an FFT down.
        let fft_len = frame_len.next_power_of_two();
        let fft = FftPlanner::<f32>::new().plan_fft_forward(fft_len);
        // Hann window: sidelobes fall fast, so a strong tone does not hide
        // or fake partials a few bins away.
        let window = (0..frame_len)
            .map(|n| (0.5 - 0.5 * (TAU * n as f64 / frame_len as f64).cos()) as f32)
            .collect();
        let bin_hz = sample_rate_hz as f64 / fft_len as f64;
        let nyquist_bin = fft_len / 2;
        BandSpectrum {
            scratch: vec![Complex32::new(0.0, 0.0); fft.get_inplace_scratch_len()],
            fft,
            window,
            buffer: vec![Complex32::new(0.0, 0.0); fft_len],
            bin_hz,
            lobe_hz: 2.0 * sample_rate_hz as f64 / frame_len as f64,
            first_bin: (BAND_LOW_HZ / bin_hz).ceil() as usize,
            last_bin: ((BAND_HIGH_HZ / bin_hz).floor() as usize).min(nyquist_bin),
        }
    }

    /// Frequency of the `i`-th bin `power` returns.
    pub fn frequency_hz(&self, i: usize) -> f64 {
        (self.first_bin + i) as f64 * self.bin_hz
    }

    /// Power per bin across the band for one frame of `frame_len` samples.
    pub fn power(&mut self, frame: &[f32]) -> Vec<f32> {
        self.buffer.fill(Complex32::new(0.0, 0.0));
        for ((out, &x), &w) in self.buffer.iter_mut().zip(frame).zip(&self.window) {
            *out = Complex32::new(x * w, 0.0);
        }
        self.fft
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
        self.buffer[self.first_bin..=self.last_bin]
            .iter()
            .map(|c| c.norm_sqr())
            .collect()
    }
}

/// Whether two tones stand out in `power` (a band spectrum, possibly summed
/// over frames) the way a DTMF signal does: every other component must be
/// weaker than the weaker tone by `min_purity` (power ratio), unless it is
/// within `noise_peak_over_median` of the spectrum's median, i.e. a peak white
/// noise itself makes. Tones are looked for within half a main lobe of
/// `tones_hz`; everything within their main lobes is theirs.
pub(crate) fn tones_stand_out(
    spectrum: &BandSpectrum,
    power: &[f64],
    tones_hz: [f64; 2],
    min_purity: f64,
    noise_peak_over_median: f64,
) -> bool {
    let lobe_hz = spectrum.lobe_hz;
    let mut tone_peak = [0.0f64; 2];
    let mut strongest_other = 0.0f64;
    for (i, &p) in power.iter().enumerate() {
        let hz = spectrum.frequency_hz(i);
        let distance = tones_hz.map(|t| (hz - t).abs());
        let mut owned = false;
        for t in 0..2 {
            if distance[t] <= 0.5 * lobe_hz {
                tone_peak[t] = tone_peak[t].max(p);
            }
            owned |= distance[t] <= lobe_hz;
        }
        if !owned {
            strongest_other = strongest_other.max(p);
        }
    }
    let mut sorted = power.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let weaker_tone = tone_peak[0].min(tone_peak[1]);
    strongest_other * min_purity <= weaker_tone
        || strongest_other <= noise_peak_over_median * median
}

/// Power of each tone in `power` (a band spectrum, possibly summed over
/// frames): everything within its main lobe, less what the noise floor (the
/// spectrum's median, over ln 2 for the mean) puts there. Unlike one DFT bin,
/// this does not depend on the other tone's leakage, and a tone whose level
/// or phase wavers (as through a codec) keeps the power it spread.
pub(crate) fn tone_powers(spectrum: &BandSpectrum, power: &[f64], tones_hz: [f64; 2]) -> [f64; 2] {
    let mut sorted = power.to_vec();
    sorted.sort_by(f64::total_cmp);
    let floor = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0) / std::f64::consts::LN_2;
    tones_hz.map(|tone| {
        let (sum, bins) = power
            .iter()
            .enumerate()
            .filter(|&(i, _)| (spectrum.frequency_hz(i) - tone).abs() <= spectrum.lobe_hz)
            .fold((0.0, 0.0), |(sum, bins), (_, &p)| (sum + p, bins + 1.0));
        (sum - floor * bins).max(sum * 1e-3).max(1e-30)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::test_signals::{add_white_noise, rng};

    const RATE_HZ: u32 = 8_000;
    const FRAME_LEN: usize = 160;

    fn tones(parts: &[(f64, f64)]) -> Vec<f32> {
        (0..FRAME_LEN)
            .map(|n| {
                let t = n as f64 / RATE_HZ as f64;
                parts
                    .iter()
                    .map(|&(hz, a)| a * (TAU * hz * t).sin())
                    .sum::<f64>() as f32
            })
            .collect()
    }

    fn stands_out(frame: &[f32]) -> bool {
        let mut spectrum = BandSpectrum::new(FRAME_LEN, RATE_HZ);
        let power: Vec<f64> = spectrum.power(frame).into_iter().map(f64::from).collect();
        tones_stand_out(&spectrum, &power, [770.0, 1477.0], 4.0, 8.0)
    }

    #[test]
    fn a_clean_tone_pair_stands_out() {
        assert!(stands_out(&tones(&[(770.0, 0.1), (1477.0, 0.1)])));
    }

    #[test]
    fn a_third_tone_3db_below_the_pair_spoils_it() {
        assert!(!stands_out(&tones(&[
            (770.0, 0.1),
            (1477.0, 0.1),
            (1100.0, 0.07)
        ])));
    }

    #[test]
    fn white_noise_at_10db_snr_does_not_spoil_it() {
        let mut frame = tones(&[(770.0, 0.1), (1477.0, 0.1)]);
        add_white_noise(&mut frame, 0.1 / 10f64.sqrt(), &mut rng(3));
        assert!(stands_out(&frame));
    }
}
