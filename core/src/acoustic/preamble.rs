//! The preamble: a linear chirp across the band, and its matched filter.
//!
//! A chirp compresses to a sharp peak (width about 1 / bandwidth) even when
//! the room smears it, and a clock offset of 100 ppm barely moves that peak.
//! The detector scores each lag by the normalised correlation
//! `|<x, chirp>|² / (|x|² |chirp|²)` measured in the band only, so broadband
//! noise outside the band and the input level do not matter.

use std::f64::consts::TAU;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::layout::Layout;

/// The chirp, tapered at both ends.
pub fn chirp(layout: &Layout) -> Vec<f32> {
    let fs = f64::from(layout.sample_rate_hz);
    let len = layout.preamble_len;
    let duration_s = len as f64 / fs;
    let sweep_hz_per_s = (layout.band_high_hz - layout.band_low_hz) / duration_s;
    (0..len)
        .map(|n| {
            let t = n as f64 / fs;
            let phase = TAU * (layout.band_low_hz * t + 0.5 * sweep_hz_per_s * t * t);
            (phase.sin() * taper_gain(n, len, layout.taper_len)) as f32
        })
        .collect()
}

/// Raised-cosine ramp over the first and last `taper_len` of `len` samples.
pub fn taper_gain(n: usize, len: usize, taper_len: usize) -> f64 {
    let from_edge = n.min(len - 1 - n);
    if from_edge >= taper_len {
        1.0
    } else {
        0.5 - 0.5 * (std::f64::consts::PI * (from_edge as f64 + 0.5) / taper_len as f64).cos()
    }
}

/// Score of one lag of the matched filter.
#[derive(Debug, Clone, Copy)]
pub struct LagScore {
    /// Offset of the lag from the start of the block, in samples.
    pub offset: usize,
    /// Normalised correlation in [0, 1]: share of the in-band energy in the
    /// window that matches the chirp.
    pub score: f32,
    /// Squared correlation envelope, for locating the strongest path.
    pub envelope: f32,
}

/// Matched filter run block by block (overlap-save) on full-rate input;
/// the correlation is taken in the band only and comes out decimated.
pub struct PreambleDetector {
    block_len: usize,
    chirp_len: usize,
    decimation: usize,
    first_bin: usize,
    /// conj(FFT(chirp)) over the band bins.
    template: Vec<Complex32>,
    chirp_energy: f32,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    spectrum: Vec<Complex32>,
    correlation: Vec<Complex32>,
    band_signal: Vec<Complex32>,
    band_energy_prefix: Vec<f32>,
}

impl PreambleDetector {
    pub fn new(layout: &Layout) -> Self {
        let reference = chirp(layout);
        let chirp_len = reference.len();
        let block_len = (2 * chirp_len).next_power_of_two();
        let fs = f64::from(layout.sample_rate_hz);
        let bin_hz = fs / block_len as f64;
        let margin_hz = 100.0;
        let first_bin = ((layout.band_low_hz - margin_hz) / bin_hz).floor() as usize;
        let end_bin = ((layout.band_high_hz + margin_hz) / bin_hz).ceil() as usize + 1;
        // Twice the band width in bins: the decimated output is then sampled
        // finely enough to find the peak within a fraction of a millisecond.
        let band_len = (2 * (end_bin - first_bin))
            .next_power_of_two()
            .min(block_len);
        let decimation = block_len / band_len;

        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(block_len);
        let inverse = planner.plan_fft_inverse(band_len);
        let mut padded: Vec<Complex32> = reference
            .iter()
            .map(|&s| Complex32::new(s, 0.0))
            .chain(std::iter::repeat(Complex32::ZERO))
            .take(block_len)
            .collect();
        forward.process(&mut padded);
        let template = padded[first_bin..end_bin]
            .iter()
            .map(|c| c.conj())
            .collect();
        PreambleDetector {
            block_len,
            chirp_len,
            decimation,
            first_bin,
            template,
            chirp_energy: reference.iter().map(|s| s * s).sum(),
            forward,
            inverse,
            spectrum: vec![Complex32::ZERO; block_len],
            correlation: vec![Complex32::ZERO; band_len],
            band_signal: vec![Complex32::ZERO; band_len],
            band_energy_prefix: vec![0.0; band_len + 1],
        }
    }

    /// Samples the detector needs for one block.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Samples between scored lags.
    pub fn lag_step(&self) -> usize {
        self.decimation
    }

    /// Scores lags 0, step, 2·step, … of `block` for which the whole chirp
    /// fits in the block. `block` must hold `block_len()` samples.
    pub fn score_block(&mut self, block: &[f32], scores: &mut Vec<LagScore>) {
        scores.clear();
        debug_assert_eq!(block.len(), self.block_len);
        for (bin, &sample) in self.spectrum.iter_mut().zip(block) {
            *bin = Complex32::new(sample, 0.0);
        }
        self.forward.process(&mut self.spectrum);
        self.correlation.fill(Complex32::ZERO);
        self.band_signal.fill(Complex32::ZERO);
        let band = &self.spectrum[self.first_bin..self.first_bin + self.template.len()];
        for (i, (&x, &h)) in band.iter().zip(&self.template).enumerate() {
            self.correlation[i] = x * h;
            self.band_signal[i] = x;
        }
        self.inverse.process(&mut self.correlation);
        self.inverse.process(&mut self.band_signal);

        // Both outputs carry the same scale factor; it cancels in the score
        // once the analytic-signal energy (twice the real energy) and the
        // decimation are accounted for.
        let n = self.block_len as f32;
        let scale = 2.0 / n;
        for (i, x) in self.band_signal.iter().enumerate() {
            self.band_energy_prefix[i + 1] =
                self.band_energy_prefix[i] + (x * scale).norm_sqr() * 0.5 * self.decimation as f32;
        }
        let window = self.chirp_len.div_ceil(self.decimation);
        let last_offset = self.block_len - self.chirp_len;
        for j in 0..=last_offset / self.decimation {
            let end = (j + window).min(self.band_signal.len());
            let energy = self.band_energy_prefix[end] - self.band_energy_prefix[j];
            let envelope = (self.correlation[j] * scale).norm_sqr();
            let score = if energy > 0.0 {
                (envelope / (self.chirp_energy * energy)).min(1.0)
            } else {
                0.0
            };
            scores.push(LagScore {
                offset: j * self.decimation,
                score,
                envelope,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acoustic::Profile;

    #[test]
    fn chirp_scores_near_one_at_its_own_lag_and_low_elsewhere() {
        let layout = Layout::new(Profile::NearUltrasound, 48_000).unwrap();
        let mut detector = PreambleDetector::new(&layout);
        let offset = 40 * detector.lag_step();
        let mut block = vec![0f32; detector.block_len()];
        for (i, s) in chirp(&layout).into_iter().enumerate() {
            block[offset + i] = 0.3 * s;
        }
        let mut scores = Vec::new();
        detector.score_block(&block, &mut scores);
        let best = scores
            .iter()
            .max_by(|a, b| a.envelope.total_cmp(&b.envelope))
            .unwrap();
        assert_eq!(best.offset, offset);
        assert!(best.score > 0.9, "score {}", best.score);
        let far = scores.iter().find(|s| s.offset == offset + 480).unwrap();
        assert!(far.score < 0.05, "score 10 ms off: {}", far.score);
    }
}
