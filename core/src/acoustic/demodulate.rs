//! Streaming microphone input to tokens.
//!
//! The decoder scans the input with the preamble matched filter. When a lag
//! scores above `DETECTION_SCORE`, it looks a little further for the
//! strongest path and a little back for an earlier (direct) path, waits for
//! the rest of the token to arrive, and demodulates at those timings until
//! one passes the CRC. A failed candidate costs nothing but the attempt:
//! scanning resumes right after it.

use std::collections::VecDeque;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::frame::{self, FRAME_BITS, Interleaver};
use super::layout::Layout;
use super::preamble::{LagScore, PreambleDetector};
use super::{AcousticError, Profile, Token, fec};

/// Normalised chirp correlation that starts a decode attempt. Noise alone
/// scores about 1 / (bandwidth × chirp length) ≈ 0.008 on average; a chirp
/// heard through a reverberant room at 0 dB SNR scores well above 0.1.
const DETECTION_SCORE: f32 = 0.08;
/// After the first lag above threshold, keep looking this long for the
/// strongest path.
const PEAK_SEARCH_S: f64 = 0.02;
/// Look this far before the strongest path for an earlier, weaker one.
const EARLY_PATH_LOOKBACK_S: f64 = 0.004;
/// An earlier path counts if its envelope reaches this share of the peak.
const EARLY_PATH_SHARE: f32 = 0.25;

/// Decodes tokens from microphone audio pushed in chunks of any size.
pub struct TokenDecoder {
    layout: Layout,
    detector: PreambleDetector,
    demodulator: Demodulator,
    /// Input not yet consumed; `buffer[0]` is sample number `buffer_start`.
    buffer: Vec<f32>,
    buffer_start: u64,
    state: State,
    /// (lag, envelope) of the last few milliseconds, for the early-path look-back.
    recent: VecDeque<(u64, f32)>,
    scores: Vec<LagScore>,
    peak_search_len: u64,
    lookback_len: u64,
}

enum State {
    /// Matched-filter the block starting at `next_block`; `peak` is an open
    /// search for the strongest path after a threshold crossing.
    Scanning {
        next_block: u64,
        peak: Option<PeakSearch>,
    },
    /// Wait for the whole token after each candidate start, then demodulate.
    Decoding {
        candidates: Vec<u64>,
        resume_at: u64,
    },
}

struct PeakSearch {
    ends_at: u64,
    lags: Vec<(u64, f32)>,
}

impl TokenDecoder {
    pub fn new(profile: Profile, sample_rate_hz: u32) -> Result<Self, AcousticError> {
        let layout = Layout::new(profile, sample_rate_hz)?;
        let fs = f64::from(sample_rate_hz);
        Ok(TokenDecoder {
            detector: PreambleDetector::new(&layout),
            demodulator: Demodulator::new(&layout),
            buffer: Vec::new(),
            buffer_start: 0,
            state: State::Scanning {
                next_block: 0,
                peak: None,
            },
            recent: VecDeque::new(),
            scores: Vec::new(),
            peak_search_len: (PEAK_SEARCH_S * fs) as u64,
            lookback_len: (EARLY_PATH_LOOKBACK_S * fs) as u64,
            layout,
        })
    }

    /// Feeds microphone samples; returns the tokens completed by them, in
    /// order. Non-finite samples are treated as silence.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Token> {
        self.buffer
            .extend(samples.iter().map(|&s| if s.is_finite() { s } else { 0.0 }));
        let mut tokens = Vec::new();
        while self.step(&mut tokens) {}
        self.drop_consumed_input();
        tokens
    }

    /// Forgets all buffered input, as if newly created.
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.buffer_start = 0;
        self.recent.clear();
        self.state = State::Scanning {
            next_block: 0,
            peak: None,
        };
    }

    fn buffer_end(&self) -> u64 {
        self.buffer_start + self.buffer.len() as u64
    }

    /// Does one unit of work; false when it needs more input.
    fn step(&mut self, tokens: &mut Vec<Token>) -> bool {
        let buffer_end = self.buffer_end();
        match &mut self.state {
            State::Decoding {
                candidates,
                resume_at,
            } => {
                let token_len = self.layout.token_len();
                let last = candidates.iter().copied().max().unwrap_or(0);
                if buffer_end < last + token_len as u64 {
                    return false;
                }
                let (candidates, resume_at) = (std::mem::take(candidates), *resume_at);
                let decoded = candidates.iter().find_map(|&start| {
                    let offset = (start - self.buffer_start) as usize;
                    let samples = &self.buffer[offset..offset + token_len];
                    let token = self.demodulator.demodulate(&self.layout, samples)?;
                    Some((start, token))
                });
                let next_block = match decoded {
                    Some((start, token)) => {
                        tokens.push(token);
                        self.recent.clear();
                        start + token_len as u64
                    }
                    None => resume_at,
                };
                self.state = State::Scanning {
                    next_block,
                    peak: None,
                };
                true
            }
            State::Scanning { next_block, .. } => {
                let block_start = *next_block;
                let block_len = self.detector.block_len();
                if buffer_end < block_start + block_len as u64 {
                    return false;
                }
                let offset = (block_start - self.buffer_start) as usize;
                self.detector
                    .score_block(&self.buffer[offset..offset + block_len], &mut self.scores);
                self.scan_scores(block_start);
                true
            }
        }
    }

    /// Walks the scores of the block at `block_start`, updating the peak
    /// search; switches to decoding when a search closes.
    fn scan_scores(&mut self, block_start: u64) {
        let State::Scanning { peak, .. } = &mut self.state else {
            return;
        };
        let mut peak = peak.take();
        let step = self.detector.lag_step() as u64;
        let lookback_lags = (self.lookback_len / step) as usize + 1;
        let mut next_block = block_start;
        for score in &self.scores {
            let lag = block_start + score.offset as u64;
            next_block = lag + step;
            self.recent.push_back((lag, score.envelope));
            if self.recent.len() > lookback_lags {
                self.recent.pop_front();
            }
            match &mut peak {
                None if score.score >= DETECTION_SCORE => {
                    peak = Some(PeakSearch {
                        ends_at: lag + self.peak_search_len,
                        lags: self.recent.iter().copied().collect(),
                    });
                }
                None => {}
                Some(search) => {
                    search.lags.push((lag, score.envelope));
                    if lag >= search.ends_at {
                        self.state = State::Decoding {
                            candidates: candidate_starts(&search.lags, self.lookback_len),
                            resume_at: lag + step,
                        };
                        return;
                    }
                }
            }
        }
        self.state = State::Scanning { next_block, peak };
    }

    /// Drops input that no candidate or block can need any more.
    fn drop_consumed_input(&mut self) {
        let keep_from = match &self.state {
            State::Scanning { next_block, peak } => peak
                .as_ref()
                .and_then(|p| p.lags.first().map(|&(lag, _)| lag))
                .unwrap_or(*next_block)
                .min(*next_block),
            State::Decoding { candidates, .. } => candidates
                .iter()
                .copied()
                .min()
                .unwrap_or(self.buffer_start),
        };
        let drop = keep_from.saturating_sub(self.buffer_start) as usize;
        // Drain in large steps so long streams do not shift memory per push.
        if drop >= self.detector.block_len() {
            self.buffer.drain(..drop.min(self.buffer.len()));
            self.buffer_start += drop as u64;
        }
    }
}

/// Candidate token starts from a closed peak search: the strongest path,
/// preceded by the earliest clearly present path shortly before it.
fn candidate_starts(lags: &[(u64, f32)], lookback_len: u64) -> Vec<u64> {
    let Some(&(best_lag, best_envelope)) = lags.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return Vec::new();
    };
    let earliest = lags
        .iter()
        .find(|&&(lag, envelope)| {
            lag + lookback_len >= best_lag && envelope >= EARLY_PATH_SHARE * best_envelope
        })
        .map_or(best_lag, |&(lag, _)| lag);
    if earliest == best_lag {
        vec![best_lag]
    } else {
        vec![earliest, best_lag]
    }
}

/// OFDM demodulation and decoding of one token whose preamble starts at the
/// first sample handed to it.
struct Demodulator {
    fft: Arc<dyn Fft<f32>>,
    interleaver: Interleaver,
    spectrum: Vec<Complex32>,
    /// Subcarrier values per OFDM symbol.
    symbols: Vec<Vec<Complex32>>,
    /// Soft value per grid slot.
    grid: Vec<f32>,
}

impl Demodulator {
    fn new(layout: &Layout) -> Self {
        let carriers = layout.subcarrier_bins.len();
        Demodulator {
            fft: FftPlanner::new().plan_fft_forward(layout.useful_len),
            interleaver: Interleaver::new(layout.slots(), carriers),
            spectrum: vec![Complex32::ZERO; layout.useful_len],
            symbols: vec![vec![Complex32::ZERO; carriers]; layout.ofdm_symbols()],
            grid: vec![0.0; layout.slots()],
        }
    }

    fn demodulate(&mut self, layout: &Layout, samples: &[f32]) -> Option<Token> {
        // Start each FFT window halfway into the cyclic prefix: tolerant of
        // timing on either side and of echoes up to half the prefix.
        let window_offset = layout.cyclic_prefix_len / 2;
        for (index, values) in self.symbols.iter_mut().enumerate() {
            let start = layout.symbol_start(index) + window_offset;
            let window = &samples[start..start + layout.useful_len];
            for (bin, &s) in self.spectrum.iter_mut().zip(window) {
                *bin = Complex32::new(s, 0.0);
            }
            self.fft.process(&mut self.spectrum);
            for (value, &bin) in values.iter_mut().zip(&layout.subcarrier_bins) {
                *value = self.spectrum[bin];
            }
        }
        self.soft_grid();
        let soft = self.interleaver.gather(&self.grid);
        let bits = fec::decode(&soft, FRAME_BITS)?;
        frame::token_from_bits(&bits)
    }

    /// Fills `grid` with a soft value per data bit: the phase change from
    /// the previous symbol on the same subcarrier, rotated by the common
    /// drift, weighted by that subcarrier's signal-to-noise ratio.
    fn soft_grid(&mut self) {
        let carriers = self.symbols[0].len();
        let data_symbols = self.symbols.len() - 1;
        let mut products = vec![Complex32::ZERO; data_symbols * carriers];
        for (s, pair) in self.symbols.windows(2).enumerate() {
            for c in 0..carriers {
                products[s * carriers + c] = pair[1][c] * pair[0][c].conj();
            }
        }
        // Clock offset turns every subcarrier's phase by about the same angle
        // per symbol; squaring removes the ±1 data and leaves twice that angle.
        let squared: Complex32 = products.iter().map(|p| p * p).sum();
        let derotate = Complex32::from_polar(1.0, -0.5 * squared.arg());
        products.iter_mut().for_each(|p| *p *= derotate);

        let mut weights = vec![0f32; carriers];
        let mut noise = vec![0f32; carriers];
        for c in 0..carriers {
            let column = products.iter().skip(c).step_by(carriers);
            let (amplitude, power) =
                column.fold((0f32, 0f32), |(a, n), p| (a + p.re.abs(), n + p.im * p.im));
            weights[c] = amplitude / data_symbols as f32;
            noise[c] = power / data_symbols as f32;
        }
        // A floor keeps one lucky quiet subcarrier from outweighing the rest.
        let mut sorted = noise.clone();
        sorted.sort_by(f32::total_cmp);
        let floor = (0.1 * sorted[carriers / 2]).max(f32::MIN_POSITIVE);
        for c in 0..carriers {
            weights[c] /= noise[c].max(floor);
        }
        for (i, (slot, p)) in self.grid.iter_mut().zip(&products).enumerate() {
            *slot = p.re * weights[i % carriers];
        }
    }
}
