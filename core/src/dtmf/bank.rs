//! Filter bank: DFT bins at the 8 DTMF frequencies and their second
//! harmonics, over sliding frames of `frame_hops` hops.
//!
//! Samples are collected into hops; each full hop is mixed down per bin with a
//! table of e^{-j w i} (a dot product, which vectorises) and turned to
//! absolute time with the hop's start phase, computed exactly from integers.
//! A frame is the sum of the last `frame_hops` hops. Because phases refer to
//! absolute sample time, a tone slightly off a bin shows as a phase that
//! advances from frame to frame: the detector reads the frequency error from
//! that advance. Working on whole hops also makes results independent of
//! how the caller chunks the stream.
//!
//! The frame energy (from which the detector estimates the noise in a bin)
//! is measured in the telephone band, 0-4 kHz: at higher rates the samples
//! pass a low-pass filter first, and the bank reports how much of a white
//! noise's energy that filter keeps. Noise confined to the telephone band
//! (8 kHz audio upsampled) is then not taken as spread over the whole band,
//! which would underestimate the noise in each bin by the rate's ratio to
//! 8 kHz.

use super::{HIGH_GROUP_HZ, LOW_GROUP_HZ};
use num_complex::Complex64;
use std::collections::VecDeque;
use std::f64::consts::TAU;

/// Bins 0..4 low group, 4..8 high group, 8..16 second harmonics in the same order.
pub(crate) const TONE_BINS: usize = 8;
pub(crate) const BINS: usize = 2 * TONE_BINS;

pub(crate) fn bin_frequencies_hz() -> [u32; BINS] {
    let mut freqs = [0; BINS];
    for (i, hz) in LOW_GROUP_HZ.iter().chain(&HIGH_GROUP_HZ).enumerate() {
        freqs[i] = *hz;
        freqs[TONE_BINS + i] = 2 * hz;
    }
    freqs
}

/// One analysis frame.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Index of the frame's first hop; frames advance by one hop.
    pub index: u64,
    /// Sample position of the frame's first sample.
    pub start_sample: u64,
    /// Unnormalised DFT values: a tone of amplitude A exactly on a bin gives
    /// |X| = A * frame_len / 2.
    pub bins: [Complex64; BINS],
    /// Sum of squared samples over the frame, in the telephone band (see
    /// `FilterBank::white_noise_fraction`).
    pub energy: f64,
}

/// Hops between exact recomputations of the bins' start phases (about 1 s);
/// in between they advance by multiplication, which drifts by ~1e-13.
const RESYNC_HOPS: u64 = 200;

#[derive(Clone, Copy)]
struct HopSums {
    bins: [Complex64; BINS],
    energy: f64,
}

pub(crate) struct FilterBank {
    sample_rate_hz: u32,
    hop_len: usize,
    frame_hops: usize,
    freqs_hz: [u32; BINS],
    /// cos(w i) and -sin(w i) for i in 0..hop_len, per bin.
    mix_re: Vec<Vec<f32>>,
    mix_im: Vec<Vec<f32>>,
    hop: Vec<f32>,
    /// The samples of the latest frame.
    frame_samples: Vec<f32>,
    /// Phase of each bin at the start of the current hop, and its advance
    /// per hop; re-derived exactly every `RESYNC_HOPS` hops.
    hop_phasor: [Complex64; BINS],
    hop_advance: [Complex64; BINS],
    hops_until_resync: u64,
    hops_done: u64,
    recent: VecDeque<HopSums>,
    /// Low-pass filter of the energy measurement, above 8 kHz.
    band: Option<TelephoneBand>,
}

/// Top of the telephone band, where the energy measurement stops.
const TELEPHONE_BAND_HZ: f64 = 4_000.0;

/// Fourth-order Butterworth low-pass at `TELEPHONE_BAND_HZ` (two biquads,
/// bilinear transform), for the energy measurement only: the DTMF tones
/// (1633 Hz at most) pass it within 0.01 dB.
#[derive(Clone)]
struct TelephoneBand {
    /// Per section: b0, b1, b2, a1, a2 (a0 = 1).
    coefficients: [[f64; 5]; 2],
    /// Per section: transposed direct form II state.
    state: [[f64; 2]; 2],
}

impl TelephoneBand {
    fn new(sample_rate_hz: u32) -> TelephoneBand {
        let w0 = TAU * TELEPHONE_BAND_HZ / sample_rate_hz as f64;
        // The two pole pairs of a fourth-order Butterworth filter.
        let section = |q: f64| {
            let alpha = w0.sin() / (2.0 * q);
            let cos = w0.cos();
            let a0 = 1.0 + alpha;
            let b = (1.0 - cos) / 2.0;
            [
                b / a0,
                2.0 * b / a0,
                b / a0,
                -2.0 * cos / a0,
                (1.0 - alpha) / a0,
            ]
        };
        let q = |k: f64| 1.0 / (2.0 * (std::f64::consts::PI * (2.0 * k - 1.0) / 8.0).sin());
        TelephoneBand {
            coefficients: [section(q(1.0)), section(q(2.0))],
            state: [[0.0; 2]; 2],
        }
    }

    fn step(&mut self, x: f64) -> f64 {
        let mut y = x;
        for (c, s) in self.coefficients.iter().zip(self.state.iter_mut()) {
            let input = y;
            y = c[0] * input + s[0];
            s[0] = c[1] * input - c[3] * y + s[1];
            s[1] = c[2] * input - c[4] * y;
        }
        y
    }

    /// Fraction of a white noise's power the filter keeps: the sum of its
    /// squared impulse response.
    fn white_noise_fraction(&self) -> f64 {
        let mut filter = self.clone();
        filter.state = [[0.0; 2]; 2];
        let mut sum = filter.step(1.0).powi(2);
        for _ in 0..100_000 {
            sum += filter.step(0.0).powi(2);
        }
        sum
    }
}

impl FilterBank {
    pub fn new(sample_rate_hz: u32, hop_len: usize, frame_hops: usize) -> FilterBank {
        let freqs_hz = bin_frequencies_hz();
        let angle = |hz: u32, i: usize| TAU * hz as f64 * i as f64 / sample_rate_hz as f64;
        let table = |f: fn(f64) -> f64| -> Vec<Vec<f32>> {
            freqs_hz
                .iter()
                .map(|&hz| (0..hop_len).map(|i| f(angle(hz, i)) as f32).collect())
                .collect()
        };
        FilterBank {
            sample_rate_hz,
            hop_len,
            frame_hops,
            freqs_hz,
            mix_re: table(f64::cos),
            mix_im: table(|a| -a.sin()),
            hop: Vec::with_capacity(hop_len),
            frame_samples: Vec::with_capacity((frame_hops + 1) * hop_len),
            hop_phasor: [Complex64::new(1.0, 0.0); BINS],
            hop_advance: freqs_hz.map(|hz| Complex64::from_polar(1.0, -angle(hz, hop_len))),
            hops_until_resync: 0,
            hops_done: 0,
            recent: VecDeque::with_capacity(frame_hops + 1),
            band: (sample_rate_hz as f64 > 2.0 * TELEPHONE_BAND_HZ)
                .then(|| TelephoneBand::new(sample_rate_hz)),
        }
    }

    /// Fraction of a white noise's energy over the whole band (0 to half the
    /// sample rate) that `Frame::energy` counts: 1 at 8 kHz, about 1/6 at
    /// 48 kHz.
    pub fn white_noise_fraction(&self) -> f64 {
        self.band
            .as_ref()
            .map_or(1.0, TelephoneBand::white_noise_fraction)
    }

    /// Feeds samples; calls `on_frame` with every frame completed and the
    /// frame's samples.
    pub fn push(&mut self, mut samples: &[f32], mut on_frame: impl FnMut(&Frame, &[f32])) {
        while !samples.is_empty() {
            let take = (self.hop_len - self.hop.len()).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.hop.extend_from_slice(now);
            samples = rest;
            if self.hop.len() < self.hop_len {
                continue;
            }
            if let Some(frame) = self.finish_hop() {
                on_frame(&frame, &self.frame_samples);
            }
        }
    }

    fn finish_hop(&mut self) -> Option<Frame> {
        if self.hops_until_resync == 0 {
            self.hops_until_resync = RESYNC_HOPS;
            let start_sample = self.hops_done * self.hop_len as u64;
            for k in 0..BINS {
                self.hop_phasor[k] = self.start_phasor(self.freqs_hz[k], start_sample);
            }
        }
        self.hops_until_resync -= 1;
        let mut sums = HopSums {
            bins: [Complex64::new(0.0, 0.0); BINS],
            energy: match &mut self.band {
                None => dot(&self.hop, &self.hop) as f64,
                Some(band) => self.hop.iter().map(|&x| band.step(x as f64).powi(2)).sum(),
            },
        };
        for k in 0..BINS {
            let mixed = Complex64::new(
                dot(&self.hop, &self.mix_re[k]) as f64,
                dot(&self.hop, &self.mix_im[k]) as f64,
            );
            sums.bins[k] = mixed * self.hop_phasor[k];
            self.hop_phasor[k] *= self.hop_advance[k];
        }
        self.frame_samples.extend_from_slice(&self.hop);
        let surplus = self
            .frame_samples
            .len()
            .saturating_sub(self.frame_hops * self.hop_len);
        self.frame_samples.drain(..surplus);
        self.hop.clear();
        self.hops_done += 1;
        self.recent.push_back(sums);
        if self.recent.len() > self.frame_hops {
            self.recent.pop_front();
        }
        if self.recent.len() < self.frame_hops {
            return None;
        }
        let index = self.hops_done - self.frame_hops as u64;
        let mut frame = Frame {
            index,
            start_sample: index * self.hop_len as u64,
            bins: [Complex64::new(0.0, 0.0); BINS],
            energy: 0.0,
        };
        for hop in &self.recent {
            for (sum, bin) in frame.bins.iter_mut().zip(&hop.bins) {
                *sum += bin;
            }
            frame.energy += hop.energy;
        }
        Some(frame)
    }

    /// e^{-j 2 pi f n / rate}, with the phase reduced in integers so it stays
    /// exact on streams of any length.
    fn start_phasor(&self, hz: u32, sample: u64) -> Complex64 {
        let rate = self.sample_rate_hz as u64;
        let cycles_times_rate = (hz as u64 * (sample % rate)) % rate;
        Complex64::from_polar(1.0, -TAU * cycles_times_rate as f64 / rate as f64)
    }
}

/// Dot product in 8 independent lanes, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() / LANES * LANES);
    let b_body = &b[..a_body.len()];
    for (x, y) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for lane in 0..LANES {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a_tail
        .iter()
        .zip(&b[a_body.len()..])
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// Magnitude response of a rectangular `len`-sample DFT bin to a tone
/// `offset_hz` away from it (1.0 on the bin).
pub(crate) fn rectangular_response(offset_hz: f64, len: usize, sample_rate_hz: u32) -> f64 {
    let x = std::f64::consts::PI * offset_hz / sample_rate_hz as f64;
    if x.abs() < 1e-12 {
        return 1.0;
    }
    ((len as f64 * x).sin() / (len as f64 * x.sin())).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_on_a_bin_gives_amplitude_times_half_frame_and_steady_phase() {
        let rate = 8_000;
        let (hop, hops) = (40, 4);
        let amplitude = 0.3;
        let signal: Vec<f32> = (0..2_000)
            .map(|n| (amplitude * (TAU * 852.0 * n as f64 / rate as f64).cos()) as f32)
            .collect();
        let mut bank = FilterBank::new(rate, hop, hops);
        let mut frames = Vec::new();
        bank.push(&signal, |f, samples| {
            assert_eq!(samples.len(), hop * hops);
            frames.push(f.clone());
        });
        assert_eq!(frames.len(), 2_000 / hop - hops + 1);
        let bin = 2; // 852 Hz
        for frame in &frames {
            let x = frame.bins[bin];
            // Within 1 %: the cosine's negative-frequency image leaks a little.
            let expected = amplitude * (hop * hops) as f64 / 2.0;
            assert!((x.norm() - expected).abs() < 0.01 * expected, "{x}");
            // A cosine starting at phase 0 keeps phase 0 against absolute time.
            assert!(x.arg().abs() < 0.01, "phase {}", x.arg());
            // Other bins of the group see only leakage.
            assert!(frame.bins[3].norm() < 0.25 * x.norm());
        }
    }

    #[test]
    fn rectangular_response_is_one_on_the_bin_and_zero_at_the_first_null() {
        assert_eq!(rectangular_response(0.0, 160, 8_000), 1.0);
        // A 20 ms window has its first null at 50 Hz.
        assert!(rectangular_response(50.0, 160, 8_000) < 1e-9);
        assert!((rectangular_response(25.0, 160, 8_000) - 0.637).abs() < 0.01);
    }
}
