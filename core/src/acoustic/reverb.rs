//! Interference cancellation against a long channel estimate, for rooms
//! whose reverberation outlasts the cyclic prefix.
//!
//! Where late reverberation carries most of the energy (the living room at
//! 1.5 m: direct-to-reverberant ratio −5 dB, RT60 0.5 s), the tails of the
//! earlier symbols fall on each symbol at nearly full strength and most of
//! the symbol's own energy arrives after its FFT window. A per-subcarrier
//! echo model cannot describe that; a time-domain channel can:
//!
//! 1. take the best decode so far (its CRC failed, but most bits are right)
//!    and rebuild the transmitted waveform, chirp and reference included;
//! 2. estimate the channel impulse response (up to `CHANNEL_S` long) from
//!    the rebuilt and the received waveform, by regularised division in one
//!    long FFT, kept to the band and to the plausible delays;
//! 3. subtract the rebuilt waveform as heard through that channel, and for
//!    each symbol and subcarrier correlate the residual with that
//!    subcarrier's burst as heard through the channel (a matched filter over
//!    the whole echo, so reverberation counts as signal), adding back the
//!    burst's own expected share;
//! 4. weight those by each subcarrier's residual power into soft values,
//!    decode, and go round again with the new bits.
//!
//! The input is first resampled to undo the clock offset, so that the
//! rebuilt waveform stays aligned with it to the end of the token. The
//! offset measured by the first decode can be tens of ppm wrong under this
//! much interference; `residual_clock_offset_ppm` refines it against the
//! rebuilt waveform (a Gauss–Newton step, accurate to a few ppm even when a
//! fifth of the bits are wrong).

use std::ops::Range;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::layout::Layout;
use super::modulate::{carrier_gain, symbol_signs, waveform};
use super::preamble::taper_gain;
use super::resample::Resampler;

/// Longest echo the channel estimate covers. Longer catches more of the
/// reverberation; shorter leaves fewer unknowns to estimate from one token.
const CHANNEL_S: f64 = 0.12;
/// Echo delays before the candidate start the estimate allows for (the
/// decoder may time a token on a strong path just after the direct sound).
const EARLY_CHANNEL_S: f64 = 0.005;
/// The estimate covers the band and this much either side of it.
const BAND_MARGIN_HZ: f64 = 100.0;
/// Regularisation of the channel division, as a share of the rebuilt
/// waveform's mean power per bin: keeps bins the token barely excites from
/// amplifying noise.
const REGULARISATION: f32 = 0.1;
/// The burst spectrum kernel is kept this far either side of a subcarrier.
const KERNEL_HALF_WIDTH_HZ: f64 = 1000.0;
/// Channel estimate and detection rounds per pass: each round estimates the
/// channel from the previous round's expected signs.
const ESTIMATION_ROUNDS: usize = 3;
/// Share of the in-band input explained by the rebuilt waveform heard
/// through the channel, after a pass's first round, below which the input
/// is taken for noise. Noise fits some through the channel's degrees of
/// freedom: 12 % median, up to a quarter, over 120 s of noise and ambient
/// sound. A token at 0 dB SNR in the reverberant living room fits about
/// half once its bits are mostly right, but from a poor first decode as
/// little as a seventh. So the first pass stops only below
/// `NOISE_SHARE` and the second below `TOKEN_SHARE`, unless the first
/// reached it: noise is spared the later passes (tens of milliseconds),
/// and a token whose first pass was poor gets one more chance.
pub const NOISE_SHARE: f32 = 0.1;
pub const TOKEN_SHARE: f32 = 0.22;
/// Half-width, in samples, of the average that measures each channel tap's
/// power.
const SMOOTHING_HALF_LEN: usize = 48;
/// Per-subcarrier sequence detection tries every sign sequence of the data
/// symbols (2^11 with today's 11); a guard against a layout with many more.
const MAX_SEQUENCE_SYMBOLS: usize = 16;
pub struct ReverbCanceller {
    /// Long FFT length: a multiple of `useful_len`, so every subcarrier
    /// falls on a bin, and longer than a token plus the channel.
    long_len: usize,
    bins_per_carrier: usize,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    symbol_fft: Arc<dyn Fft<f32>>,
    symbol_ifft: Arc<dyn Fft<f32>>,
    /// Long-FFT bins the channel estimate covers.
    band: Range<usize>,
    /// Samples of echo delay kept after and before the candidate start.
    channel_len: usize,
    early_len: usize,
    /// |W(j)|², j = −K..=K at index j + K: power spectrum of one symbol's
    /// taper window, for the energy of a burst heard through the channel.
    burst_kernel: Vec<f32>,
    resampler: Resampler,
    /// Spectrum of the clock-corrected input.
    received: Vec<Complex32>,
    /// Scratch: rebuilt waveform spectrum, channel, residual.
    rebuilt: Vec<Complex32>,
    channel: Vec<Complex32>,
    residual: Vec<Complex32>,
    /// Share of the in-band input the last rebuilt waveform explains.
    explained: f32,
    first_round_share: f32,
}

impl ReverbCanceller {
    pub fn new(layout: &Layout) -> Self {
        let fs = f64::from(layout.sample_rate_hz);
        let channel_len = (CHANNEL_S * fs) as usize;
        let early_len = (EARLY_CHANNEL_S * fs) as usize;
        let needed = layout.token_len() + channel_len + early_len;
        let bins_per_carrier = needed.div_ceil(layout.useful_len).next_power_of_two();
        let long_len = bins_per_carrier * layout.useful_len;
        let bin_hz = fs / long_len as f64;
        let band = ((layout.band_low_hz - BAND_MARGIN_HZ) / bin_hz).floor() as usize
            ..((layout.band_high_hz + BAND_MARGIN_HZ) / bin_hz).ceil() as usize + 1;
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(long_len);
        let inverse = planner.plan_fft_inverse(long_len);

        // Power spectrum of the taper window, truncated and rescaled to the
        // window's full energy (Parseval: Σ|W|² = N·Σw²).
        let extended_len = layout.symbol_stride() + layout.taper_len;
        let mut window: Vec<Complex32> = (0..long_len)
            .map(|m| {
                let w = if m < extended_len {
                    taper_gain(m, extended_len, layout.taper_len) as f32
                } else {
                    0.0
                };
                Complex32::new(w, 0.0)
            })
            .collect();
        let window_energy: f32 = window.iter().map(|w| w.re * w.re).sum();
        forward.process(&mut window);
        let half_width = (KERNEL_HALF_WIDTH_HZ / bin_hz) as usize;
        let mut burst_kernel: Vec<f32> = (0..=2 * half_width)
            .map(|i| window[(i + long_len - half_width) % long_len].norm_sqr())
            .collect();
        let kept: f32 = burst_kernel.iter().sum();
        let rescale = long_len as f32 * window_energy / kept;
        burst_kernel.iter_mut().for_each(|p| *p *= rescale);

        ReverbCanceller {
            long_len,
            bins_per_carrier,
            symbol_fft: planner.plan_fft_forward(layout.useful_len),
            symbol_ifft: planner.plan_fft_inverse(layout.useful_len),
            forward,
            inverse,
            band,
            channel_len,
            early_len,
            burst_kernel,
            resampler: Resampler::new(),
            received: vec![Complex32::ZERO; long_len],
            rebuilt: vec![Complex32::ZERO; long_len],
            channel: vec![Complex32::ZERO; long_len],
            residual: vec![Complex32::ZERO; long_len],
            explained: 0.0,
            first_round_share: 0.0,
        }
    }

    /// Clock offset, in ppm, still left in the input given to `prepare`,
    /// judged against the waveform `grid_bits` imply heard through the
    /// channel estimated from it: one Gauss–Newton step on the residual
    /// (input heard `p` fast is the rebuilt waveform z stretched,
    /// z(t·(1 + p)) ≈ z(t) + p·t·z′(t), with t from the token's centre).
    pub fn residual_clock_offset_ppm(&mut self, layout: &Layout, grid_bits: &[u8]) -> f64 {
        let signs = symbol_signs(layout, grid_bits);
        self.rebuild(layout, &signs);
        self.estimate_channel();
        let n = self.long_len;
        // Residual and derivative of the heard waveform, in band only.
        let mut residual = vec![Complex32::ZERO; n];
        let mut slope = vec![Complex32::ZERO; n];
        for f in self.band.clone() {
            let heard = self.rebuilt[f] * self.channel[f];
            residual[f] = self.received[f] - heard;
            residual[n - f] = residual[f].conj();
            let turn = Complex32::new(0.0, (std::f64::consts::TAU * f as f64 / n as f64) as f32);
            slope[f] = heard * turn;
            slope[n - f] = slope[f].conj();
        }
        self.inverse.process(&mut residual);
        self.inverse.process(&mut slope);
        let centre = layout.token_len() as f64 / 2.0;
        let (mut along, mut energy) = (0f64, 0f64);
        for (t, (r, z)) in residual
            .iter()
            .zip(&slope)
            .enumerate()
            .take(layout.token_len() + self.channel_len)
        {
            let g = (t as f64 - centre) * f64::from(z.re);
            along += f64::from(r.re) * g;
            energy += g * g;
        }
        along / energy.max(f64::MIN_POSITIVE) * 1e6
    }

    /// Takes the token's samples (preamble start first) and the clock
    /// offset measured by the first decode, in parts per million of the
    /// transmitter's rate.
    pub fn prepare(&mut self, samples: &[f32], clock_ppm: f64) {
        let corrected = self.resample(samples, 1.0 + clock_ppm * 1e-6);
        self.received.fill(Complex32::ZERO);
        for (bin, &s) in self.received.iter_mut().zip(&corrected) {
            *bin = Complex32::new(s, 0.0);
        }
        self.forward.process(&mut self.received);
    }

    /// Fills `grid` (one soft value per data bit, as the differential
    /// detectors do) from the input given to `prepare`, cancelling the
    /// interference the coded bits `grid_bits` (spread over the grid) imply.
    ///
    /// Returns false, after one round, if the rebuilt waveform heard through
    /// the channel explains less than `stop_below` of the input's in-band
    /// energy (`grid` is then incomplete); see `NOISE_SHARE`.
    pub fn fill_grid(
        &mut self,
        layout: &Layout,
        grid_bits: &[u8],
        grid: &mut [f32],
        stop_below: f32,
    ) -> bool {
        let mut signs = symbol_signs(layout, grid_bits);
        for round in 0..ESTIMATION_ROUNDS {
            signs = self.detect(layout, &signs, grid);
            if round == 0 {
                self.first_round_share = self.explained;
                if self.explained < stop_below {
                    return false;
                }
            }
        }
        true
    }

    /// Share of the in-band input explained after the first round of the
    /// last `fill_grid`.
    pub fn first_round_share(&self) -> f32 {
        self.first_round_share
    }

    fn rebuild(&mut self, layout: &Layout, signs: &[Vec<f32>]) {
        let rebuilt = waveform(layout, self.symbol_ifft.as_ref(), signs);
        self.rebuilt.fill(Complex32::ZERO);
        for (bin, &s) in self.rebuilt.iter_mut().zip(&rebuilt) {
            *bin = Complex32::new(s, 0.0);
        }
        self.forward.process(&mut self.rebuilt);
    }

    /// 1 − in-band residual energy / in-band input energy.
    fn explained_share(&self) -> f32 {
        let band = self.band.clone();
        let left: f32 = band
            .clone()
            .map(|f| (self.received[f] - self.rebuilt[f] * self.channel[f]).norm_sqr())
            .sum();
        let total: f32 = band.map(|f| self.received[f].norm_sqr()).sum();
        1.0 - left / total.max(f32::MIN_POSITIVE)
    }

    /// One round: estimates the channel from the rebuilt waveform for
    /// `signs`, writes the soft values to `grid` and returns the most
    /// likely signs found.
    // Indexing by (symbol, subcarrier) reads closer to the model than zips.
    #[allow(clippy::needless_range_loop)]
    fn detect(&mut self, layout: &Layout, signs: &[Vec<f32>], grid: &mut [f32]) -> Vec<Vec<f32>> {
        let n = self.long_len;
        self.rebuild(layout, signs);
        self.estimate_channel();

        // Residual after cancelling everything rebuilt, matched-filtered
        // with the channel: correlating it with a bare burst then equals
        // correlating the residual with the burst as heard.
        for ((r, &y), (&x, &h)) in self
            .residual
            .iter_mut()
            .zip(&self.received)
            .zip(self.rebuilt.iter().zip(&self.channel))
        {
            *r = (y - x * h) * h.conj();
        }
        self.explained = self.explained_share();
        self.inverse.process(&mut self.residual);
        let scale = 1.0 / n as f32;
        let count = layout.ofdm_symbols();
        let carriers = layout.subcarrier_bins.len();
        let residuals: Vec<Vec<f32>> = (0..count)
            .map(|k| {
                self.project(layout, k)
                    .into_iter()
                    .map(|p| p * scale)
                    .collect()
            })
            .collect();
        let overlaps: Vec<Vec<f32>> = layout
            .subcarrier_bins
            .iter()
            .map(|&bin| self.burst_overlaps(layout, bin, count))
            .collect();
        // Noise per unit of burst energy, from the residual; a floor of a
        // tenth of the median keeps one lucky quiet subcarrier from
        // outweighing the rest.
        let mut noise: Vec<f32> = (0..carriers)
            .map(|c| {
                residuals.iter().map(|r| r[c] * r[c]).sum::<f32>()
                    / (count as f32 * overlaps[c][0]).max(f32::MIN_POSITIVE)
            })
            .collect();
        let mut sorted = noise.clone();
        sorted.sort_by(f32::total_cmp);
        let floor = (0.1 * sorted[carriers / 2]).max(f32::MIN_POSITIVE);
        noise.iter_mut().for_each(|v| *v = v.max(floor));

        let gain = carrier_gain(layout);
        let mut best = signs.to_vec();
        for c in 0..carriers {
            let overlap = &overlaps[c];
            // Residual correlated with each burst, with the subcarrier's own
            // rebuilt contribution added back: other subcarriers cancelled,
            // this one's symbols and their mutual interference left to the
            // sequence detector.
            let correlations: Vec<f32> = (0..count)
                .map(|k| {
                    let own: f32 = (0..count)
                        .map(|j| signs[j][c] * overlap[k.abs_diff(j)])
                        .sum();
                    residuals[k][c] + gain * own
                })
                .collect();
            let sequence = sequence_llrs(
                &correlations,
                overlap,
                gain,
                noise[c],
                signs[0][c],
                |k, llr| grid[(k - 1) * carriers + c] = llr,
            );
            for (k, sign) in sequence.into_iter().enumerate() {
                best[k][c] = sign;
            }
        }
        best
    }

    /// Channel spectrum from the received and rebuilt spectra: regularised
    /// division over the band, then kept to delays in
    /// [−`early_len`, `channel_len`), which removes most of the noise the
    /// division lets through.
    fn estimate_channel(&mut self) {
        let n = self.long_len;
        let band = self.band.clone();
        let mean_power = self.rebuilt[band.clone()]
            .iter()
            .map(|x| x.norm_sqr())
            .sum::<f32>()
            / band.len() as f32;
        let lambda = REGULARISATION * mean_power;
        self.channel.fill(Complex32::ZERO);
        for f in band {
            let x = self.rebuilt[f];
            let h = self.received[f] * x.conj() / (x.norm_sqr() + lambda);
            self.channel[f] = h;
            self.channel[n - f] = h.conj();
        }
        self.inverse.process(&mut self.channel);
        let scale = 1.0 / n as f32;
        let taps: Vec<f32> = self.channel.iter().map(|h| h.re * scale).collect();
        // Delays from half the FFT length on (short of the early ones) hold
        // no echo, only what the division let through: the noise per tap.
        let quiet = &taps[n / 2..n - self.early_len];
        let noise = quiet.iter().map(|t| t * t).sum::<f32>() / quiet.len() as f32;
        // Wiener weight per tap from the local power (taps oscillate at the
        // band's frequencies, so average over a millisecond or two).
        let half = SMOOTHING_HALF_LEN;
        let mut prefix = vec![0f32; n + 1];
        for (i, t) in taps.iter().enumerate() {
            prefix[i + 1] = prefix[i] + t * t;
        }
        let local_power = |delay: usize| {
            let lo = delay.saturating_sub(half);
            let hi = (delay + half + 1).min(n);
            (prefix[hi] - prefix[lo]) / (hi - lo) as f32
        };
        let fade_len = self.channel_len / 4;
        for (delay, h) in self.channel.iter_mut().enumerate() {
            let keep = if delay < self.channel_len {
                // Fade out the last quarter so the cut does not ring.
                let from_end = self.channel_len - delay;
                if from_end < fade_len {
                    from_end as f32 / fade_len as f32
                } else {
                    1.0
                }
            } else if delay >= n - self.early_len {
                1.0
            } else {
                0.0
            };
            let wiener = if keep > 0.0 {
                (1.0 - noise / local_power(delay).max(f32::MIN_POSITIVE)).max(0.0)
            } else {
                1.0
            };
            *h = Complex32::new(taps[delay] * keep * wiener, 0.0);
        }
        self.forward.process(&mut self.channel);
    }

    /// Correlation of a unit-amplitude burst on subcarrier `bin` with the
    /// same burst `d` symbols later, both heard through the channel, for
    /// d = 0..count: (1 / 2N) Re Σ_j |W(j)|² |H(f + j)|² e^{2πi(f+j)·d·stride/N}.
    fn burst_overlaps(&self, layout: &Layout, bin: usize, count: usize) -> Vec<f32> {
        let half_width = self.burst_kernel.len() / 2;
        let first = bin * self.bins_per_carrier - half_width;
        let weights: Vec<f32> = self
            .burst_kernel
            .iter()
            .enumerate()
            .map(|(i, &w)| w * self.channel[first + i].norm_sqr())
            .collect();
        let n = self.long_len as f64;
        (0..count)
            .map(|d| {
                let shift = (d * layout.symbol_stride()) as f64;
                let turn = |f: usize| {
                    let phase = std::f64::consts::TAU * (f as f64 * shift / n).fract();
                    Complex32::from_polar(1.0, phase as f32)
                };
                // Rotate bin by bin from the first, refreshing now and then
                // so the rounding does not pile up.
                let step = turn(1);
                let mut rotation = turn(first);
                let mut sum = 0f32;
                for (i, &w) in weights.iter().enumerate() {
                    if i % 256 == 0 {
                        rotation = turn(first + i);
                    }
                    sum += w * rotation.re;
                    rotation *= step;
                }
                sum / (2 * self.long_len) as f32
            })
            .collect()
    }

    /// Correlation of the time-domain `residual` (unscaled) with each
    /// unit-amplitude subcarrier burst of OFDM symbol `symbol`: the burst is
    /// cos(2π·bin·(m − prefix)/N)·taper(m), so folding the tapered span onto
    /// one useful length and taking its FFT gives every subcarrier at once.
    fn project(&self, layout: &Layout, symbol: usize) -> Vec<f32> {
        let n_useful = layout.useful_len;
        let start = layout.symbol_start(symbol);
        let extended_len = layout.symbol_stride() + layout.taper_len;
        let shift = n_useful - layout.cyclic_prefix_len % n_useful;
        let mut folded = vec![Complex32::ZERO; n_useful];
        for m in 0..extended_len {
            let weight = taper_gain(m, extended_len, layout.taper_len) as f32;
            folded[(m + shift) % n_useful].re += self.residual[start + m].re * weight;
        }
        self.symbol_fft.process(&mut folded);
        layout
            .subcarrier_bins
            .iter()
            .map(|&bin| folded[bin].re)
            .collect()
    }

    /// `out[n] = input(n · ratio)`, as long as the input (see `Resampler`).
    pub(super) fn resample(&self, input: &[f32], ratio: f64) -> Vec<f32> {
        if ratio == 1.0 {
            return input.to_vec();
        }
        self.resampler.resample(input, ratio, input.len())
    }
}

/// Max-log soft values of the differential bits of one subcarrier by
/// exhaustive sequence detection (hand-written: 2^11 sequences, a few
/// microseconds). `correlations[k]` is the received signal correlated with
/// burst k as heard, `overlap[d]` the correlation of two bursts d symbols
/// apart, `gain` the bursts' amplitude and `noise` the noise power per unit
/// of burst energy. The metric of signs s is (gain·s·z − gain²·sᵀRs / 2) /
/// noise; symbol 0 is the reference, `reference` its sign. `emit(k, llr)`
/// receives the soft value of the bit carried by symbol k (positive: 0).
/// Returns the expected sign of each symbol (±1 when certain, near 0 when
/// not), which rebuilds the next channel estimate without committing to
/// doubtful symbols.
fn sequence_llrs(
    correlations: &[f32],
    overlap: &[f32],
    gain: f32,
    noise: f32,
    reference: f32,
    mut emit: impl FnMut(usize, f32),
) -> Vec<f32> {
    let count = correlations.len();
    let free = count - 1;
    assert!(
        free <= MAX_SEQUENCE_SYMBOLS,
        "too many symbols for exhaustive detection"
    );
    let z: Vec<f64> = correlations.iter().map(|&v| f64::from(gain * v)).collect();
    let r = |k: usize, j: usize| f64::from(gain * gain * overlap[k.abs_diff(j)]);
    // Start from all signs equal to the reference; walk the Gray code so
    // each step flips one sign.
    let mut signs = vec![f64::from(reference); count];
    let mut metric: f64 = (0..count)
        .map(|k| {
            signs[k] * z[k]
                - 0.5
                    * (0..count)
                        .map(|j| signs[k] * signs[j] * r(k, j))
                        .sum::<f64>()
        })
        .sum();
    // Best metric per bit value and per sign, for each symbol.
    let mut best_bit = vec![[f64::NEG_INFINITY; 2]; count];
    let mut best_sign = vec![[f64::NEG_INFINITY; 2]; count];
    let record =
        |signs: &[f64], metric: f64, best_bit: &mut [[f64; 2]], best_sign: &mut [[f64; 2]]| {
            for k in 1..count {
                let bit = usize::from(signs[k] != signs[k - 1]);
                best_bit[k][bit] = best_bit[k][bit].max(metric);
                let negative = usize::from(signs[k] < 0.0);
                best_sign[k][negative] = best_sign[k][negative].max(metric);
            }
        };
    record(&signs, metric, &mut best_bit, &mut best_sign);
    for step in 1u32..(1 << free) {
        // Symbol 1 + (index of the lowest set bit) flips.
        let i = 1 + step.trailing_zeros() as usize;
        let others: f64 = (0..count)
            .filter(|&j| j != i)
            .map(|j| signs[j] * r(i, j))
            .sum();
        metric += -2.0 * signs[i] * (z[i] - others);
        signs[i] = -signs[i];
        record(&signs, metric, &mut best_bit, &mut best_sign);
    }
    let scale = 1.0 / f64::from(noise);
    for (k, pair) in best_bit.iter().enumerate().skip(1) {
        emit(k, ((pair[0] - pair[1]) * scale) as f32);
    }
    // Expected sign of each symbol: tanh of half its soft value.
    let mut expected = vec![reference; count];
    for (k, pair) in best_sign.iter().enumerate().skip(1) {
        expected[k] = (0.5 * (pair[0] - pair[1]) * scale).tanh() as f32;
    }
    expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acoustic::frame::{self, FRAME_BITS, Interleaver};
    use crate::acoustic::{Profile, fec};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Exponentially decaying noise (RT60 `rt60_s`) after a direct path of
    /// a fifth of the total amplitude: reverberation dominates.
    fn reverberant_channel(rng: &mut StdRng, fs: f64, rt60_s: f64, len_s: f64) -> Vec<f32> {
        let len = (len_s * fs) as usize;
        let decay_per_sample = (-6.91 / (rt60_s * fs)).exp();
        let mut envelope = 0.05;
        let mut h: Vec<f32> = (0..len)
            .map(|_| {
                envelope *= decay_per_sample;
                (envelope * (rng.r#gen::<f64>() - 0.5)) as f32
            })
            .collect();
        h[0] = 1.0;
        h
    }

    fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        for (i, &xi) in x.iter().enumerate() {
            if xi != 0.0 {
                for (j, &hj) in h.iter().enumerate().take(x.len() - i) {
                    y[i + j] += xi * hj;
                }
            }
        }
        y
    }

    #[test]
    fn cancels_reverberation_longer_than_the_prefix_from_partly_wrong_bits() {
        // Direct path a fifth of the reverberation's amplitude, RT60 0.4 s,
        // no noise. One coded bit in 60 wrong in the first guess (a decode
        // that failed its CRC); the passes must recover the token.
        let layout = Layout::new(Profile::NearUltrasound, 48_000).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let token: [u8; 16] = rng.r#gen();
        let interleaver = Interleaver::new(layout.slots(), layout.subcarrier_bins.len());
        let coded = fec::encode(&frame::frame_bits(&token));
        let grid_bits = interleaver.spread(&coded);
        let ifft = FftPlanner::new().plan_fft_inverse(layout.useful_len);
        let tx = waveform(&layout, ifft.as_ref(), &symbol_signs(&layout, &grid_bits));
        let h = reverberant_channel(&mut rng, 48_000.0, 0.4, CHANNEL_S);
        let rx = convolve(&tx, &h);
        let mut canceller = ReverbCanceller::new(&layout);
        canceller.prepare(&rx, 0.0);
        let mut grid = vec![0f32; layout.slots()];

        canceller.fill_grid(&layout, &grid_bits, &mut grid, 0.0);
        let wrong = |grid: &[f32]| {
            grid.iter()
                .zip(&grid_bits)
                .filter(|&(&soft, &bit)| (soft < 0.0) != (bit == 1))
                .count()
        };
        assert_eq!(wrong(&grid), 0, "right bits must reproduce themselves");

        let mut bits = frame::frame_bits(&token);
        for i in (0..bits.len()).step_by(40) {
            bits[i] ^= 1;
        }
        let mut decoded = None;
        for _ in 0..3 {
            canceller.fill_grid(
                &layout,
                &interleaver.spread(&fec::encode(&bits)),
                &mut grid,
                0.0,
            );
            bits = fec::decode(&interleaver.gather(&grid), FRAME_BITS).unwrap();
            decoded = frame::token_from_bits(&bits);
            if decoded.is_some() {
                break;
            }
        }
        assert_eq!(decoded, Some(token));
    }

    #[test]
    fn refines_a_clock_offset_measured_30_ppm_off_from_partly_wrong_bits() {
        // The transmitter is 100 ppm fast; the first decode measured 70 and
        // got one differential bit in twenty wrong (each flips the signs of
        // the rest of its subcarrier's symbols). A few refinement steps must
        // land within a few ppm of the truth.
        let layout = Layout::new(Profile::NearUltrasound, 48_000).unwrap();
        let mut rng = StdRng::seed_from_u64(6);
        let token: [u8; 16] = rng.r#gen();
        let interleaver = Interleaver::new(layout.slots(), layout.subcarrier_bins.len());
        let grid_bits = interleaver.spread(&fec::encode(&frame::frame_bits(&token)));
        let ifft = FftPlanner::new().plan_fft_inverse(layout.useful_len);
        let tx = waveform(&layout, ifft.as_ref(), &symbol_signs(&layout, &grid_bits));
        let h = reverberant_channel(&mut rng, 48_000.0, 0.4, CHANNEL_S);
        let mut canceller = ReverbCanceller::new(&layout);
        let true_ppm = 100.0;
        let mut rx = convolve(&canceller.resample(&tx, 1.0 / (1.0 + true_ppm * 1e-6)), &h);
        rx.resize(layout.token_len(), 0.0);
        let mut guessed_bits = grid_bits.clone();
        for bit in guessed_bits.iter_mut().step_by(20) {
            *bit ^= 1;
        }
        let mut ppm = 70.0;
        for _ in 0..4 {
            canceller.prepare(&rx, ppm);
            ppm -= canceller.residual_clock_offset_ppm(&layout, &guessed_bits);
        }
        assert!((ppm - true_ppm).abs() < 5.0, "refined to {ppm} ppm");
    }

    #[test]
    fn resampling_by_a_ratio_keeps_an_in_band_tone() {
        // A 19 kHz tone stretched by 100 ppm is the same tone 100 ppm lower.
        let layout = Layout::new(Profile::NearUltrasound, 44_100).unwrap();
        let canceller = ReverbCanceller::new(&layout);
        let fs = 44_100.0;
        let tone = |f: f64, n: usize| (std::f64::consts::TAU * f * n as f64 / fs).sin() as f32;
        let input: Vec<f32> = (0..20_000).map(|n| tone(19_000.0, n)).collect();
        let output = canceller.resample(&input, 1.0 - 100e-6);
        let worst = (100..19_900)
            .map(|n| (output[n] - tone(19_000.0 * (1.0 - 100e-6), n)).abs())
            .fold(0f32, f32::max);
        assert!(worst < 0.01, "worst error {worst}");
    }
}
