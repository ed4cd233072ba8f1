//! Filter bank: DFT bins at the 8 DTMF frequencies and their second
//! harmonics, over sliding frames of `FRAME_HOPS` hops.
//!
//! Each sample is mixed down by a complex phasor per bin and summed into the
//! current hop; a frame is the sum of the last `FRAME_HOPS` hops. Phasors are
//! referenced to absolute sample time, so a tone slightly off a bin shows as a
//! phase that advances from frame to frame: the detector reads the frequency
//! error from that advance. Phasors restart from an exact integer phase at each
//! hop, so they never drift.

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
    /// Sum of squared samples over the frame.
    pub energy: f64,
}

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
    /// Per-sample rotation e^{-j w} of each bin.
    step: [Complex64; BINS],
    phasor: [Complex64; BINS],
    current: HopSums,
    filled: usize,
    hops_done: u64,
    recent: VecDeque<HopSums>,
}

impl FilterBank {
    pub fn new(sample_rate_hz: u32, hop_len: usize, frame_hops: usize) -> FilterBank {
        let freqs_hz = bin_frequencies_hz();
        let step =
            freqs_hz.map(|hz| Complex64::from_polar(1.0, -TAU * hz as f64 / sample_rate_hz as f64));
        let mut bank = FilterBank {
            sample_rate_hz,
            hop_len,
            frame_hops,
            freqs_hz,
            step,
            phasor: [Complex64::new(1.0, 0.0); BINS],
            current: HopSums {
                bins: [Complex64::new(0.0, 0.0); BINS],
                energy: 0.0,
            },
            filled: 0,
            hops_done: 0,
            recent: VecDeque::with_capacity(frame_hops + 1),
        };
        bank.reset_phasors();
        bank
    }

    /// Feeds samples; calls `on_frame` for every frame completed.
    pub fn push(&mut self, mut samples: &[f32], mut on_frame: impl FnMut(&Frame)) {
        while !samples.is_empty() {
            let take = (self.hop_len - self.filled).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.accumulate(now);
            samples = rest;
            self.filled += take;
            if self.filled == self.hop_len
                && let Some(frame) = self.finish_hop()
            {
                on_frame(&frame);
            }
        }
    }

    fn accumulate(&mut self, samples: &[f32]) {
        let HopSums { bins, energy } = &mut self.current;
        for &x in samples {
            let x = x as f64;
            *energy += x * x;
            for ((bin, phasor), step) in bins.iter_mut().zip(&mut self.phasor).zip(&self.step) {
                *bin += *phasor * x;
                *phasor *= *step;
            }
        }
    }

    fn finish_hop(&mut self) -> Option<Frame> {
        self.recent.push_back(self.current);
        if self.recent.len() > self.frame_hops {
            self.recent.pop_front();
        }
        self.current = HopSums {
            bins: [Complex64::new(0.0, 0.0); BINS],
            energy: 0.0,
        };
        self.filled = 0;
        self.hops_done += 1;
        self.reset_phasors();
        if self.recent.len() < self.frame_hops {
            return None;
        }
        let mut frame = Frame {
            index: self.hops_done - self.frame_hops as u64,
            start_sample: (self.hops_done - self.frame_hops as u64) * self.hop_len as u64,
            bins: [Complex64::new(0.0, 0.0); BINS],
            energy: 0.0,
        };
        for hop in &self.recent {
            for k in 0..BINS {
                frame.bins[k] += hop.bins[k];
            }
            frame.energy += hop.energy;
        }
        Some(frame)
    }

    /// Sets each phasor to e^{-j 2 pi f n / rate} for the next sample n, using
    /// integer arithmetic for the phase so it stays exact on long streams.
    fn reset_phasors(&mut self) {
        let next_sample = self.hops_done * self.hop_len as u64;
        let rate = self.sample_rate_hz as u64;
        for k in 0..BINS {
            let cycles_num = (self.freqs_hz[k] as u64 * (next_sample % rate)) % rate;
            let phase = -TAU * cycles_num as f64 / rate as f64;
            self.phasor[k] = Complex64::from_polar(1.0, phase);
        }
    }
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
