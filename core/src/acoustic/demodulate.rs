//! Streaming microphone input to tokens.
//!
//! The decoder scans the input with the preamble matched filter. When a lag
//! scores above `DETECTION_SCORE`, it looks a little further for the
//! strongest path and a little back for an earlier (direct) path, waits for
//! the rest of the token to arrive, and demodulates at those timings until
//! one passes the CRC, first with its own symbol timing, then as played at
//! the other common sample rate (see `PLAYER_RATES_HZ`). A failed candidate
//! costs nothing but the attempt: scanning resumes right after it. Each
//! attempt checks at most 104 decodes against the CRC-32C (26 per candidate
//! start and timing: ten passes and a list of 16 alternatives after the
//! last), each passing by chance with probability 2⁻³²; noise and ambient
//! sound start an attempt about once every 20 s (six in the two minutes of
//! the false-token test), so a false token is expected about once in 25
//! years of listening.

use std::collections::VecDeque;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::frame::{self, FRAME_BITS, Interleaver};
use super::layout::{Layout, SUBCARRIER_SPACING_HZ};
use super::modulate::reference_sign;
use super::preamble::{LagScore, PreambleDetector};
use super::resample::Resampler;
use super::reverb::{NOISE_SHARE, ReverbCanceller, TOKEN_SHARE};
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

/// FFT windows end this long before the next symbol's first path, so a
/// candidate start that is slightly late still sees no next-symbol energy.
const WINDOW_GUARD_S: f64 = 0.001;

/// Direct path plus echoes of this many earlier symbols in the echo model.
const ECHO_TAPS: usize = 2;
/// Re-decoding passes with the echo model when the first decode fails.
const ECHO_MODEL_PASSES: usize = 2;
/// Re-decoding passes with the long channel estimate when those fail.
const REVERB_PASSES: usize = 6;
/// Refinements of the measured clock offset before the long-channel passes
/// (each a few milliseconds; two or three settle it from 20 ppm off).
const CLOCK_REFINE_STEPS: usize = 3;
/// A refinement smaller than this leaves the clock correction as it is:
/// 1 ppm moves the end of the token by a twentieth of a cycle at 20 kHz.
const CLOCK_SETTLED_PPM: f64 = 1.0;
/// Clock offsets beyond this are not plausible for a phone (they are a few
/// tens of ppm; the tests use ±100).
const MAX_CLOCK_PPM: f64 = 300.0;
/// Alternative decodes checked against the CRC when the last pass fails:
/// the likeliest single error events, which rescue frames that settle a
/// bit or two from right.
const LIST_ALTERNATIVES: usize = 16;

/// Sample rates phones play at. A token played at one and recorded at the
/// other does not line up with the recorder's own symbol timing: the
/// 15 ms cyclic prefix is 662 samples (15.011 ms) at 44.1 kHz and 720
/// (15.000 ms) at 48 kHz, so each symbol starts 11 µs later or earlier than
/// the recorder expects, the same drift as a 314 ppm clock offset, and one
/// the reverberation canceller cannot undo by resampling (the subcarriers
/// keep their frequencies). The decoder therefore also reads every
/// candidate as played at the other rate: resampled to it, and demodulated
/// in its layout.
const PLAYER_RATES_HZ: [u32; 2] = [44_100, 48_000];

/// Decodes tokens from microphone audio pushed in chunks of any size.
pub struct TokenDecoder {
    detector: PreambleDetector,
    /// One per symbol timing a player may use, the decoder's own first.
    readers: Vec<Reader>,
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
            readers: Reader::for_rate(&layout, profile)?,
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
                let span = self.readers.iter().map(|r| r.span).max().unwrap_or(0);
                let last = candidates.iter().copied().max().unwrap_or(0);
                if buffer_end < last + span as u64 {
                    return false;
                }
                let (candidates, resume_at) = (std::mem::take(candidates), *resume_at);
                let buffer = &self.buffer;
                let buffer_start = self.buffer_start;
                let decoded = self.readers.iter_mut().find_map(|reader| {
                    candidates.iter().find_map(|&start| {
                        // Input before the buffer is gone; such a start cannot be tried.
                        let offset = usize::try_from(start.checked_sub(buffer_start)?).ok()?;
                        let token = reader.read(&buffer[offset..offset + reader.span])?;
                        Some((start + reader.token_span as u64, token))
                    })
                });
                let next_block = match decoded {
                    Some((end, token)) => {
                        tokens.push(token);
                        self.recent.clear();
                        end
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
            // A peak search may reach back to lags kept in `recent`.
            State::Scanning { next_block, peak } => peak
                .as_ref()
                .and_then(|p| p.lags.first().map(|&(lag, _)| lag))
                .unwrap_or(*next_block)
                .min(*next_block)
                .saturating_sub(self.lookback_len + self.detector.lag_step() as u64),
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

/// Reads candidates as played with one player's symbol timing: at the
/// decoder's own rate as they are, at another rate resampled to it first.
struct Reader {
    /// The player's layout.
    layout: Layout,
    demodulator: Demodulator,
    /// Input samples per player sample, and the resampler when that is not 1.
    ratio: f64,
    resampler: Option<Resampler>,
    /// Input samples a candidate needs, and those the token itself takes.
    span: usize,
    token_span: usize,
}

impl Reader {
    /// The decoder's own timing, then each player rate's whose timing
    /// differs from it (in seconds: 96 kHz plays like 48 kHz).
    fn for_rate(own: &Layout, profile: Profile) -> Result<Vec<Self>, AcousticError> {
        let own_rate = own.sample_rate_hz;
        let mut readers = vec![Reader {
            layout: own.clone(),
            demodulator: Demodulator::new(own),
            ratio: 1.0,
            resampler: None,
            span: own.token_len(),
            token_span: own.token_len(),
        }];
        for rate in PLAYER_RATES_HZ {
            let Ok(layout) = Layout::new(profile, rate) else {
                continue;
            };
            // Same timing when every part lasts as long in seconds.
            let lasts_as_long = |other: &Layout| {
                let parts = |l: &Layout| [l.preamble_len, l.cyclic_prefix_len, l.useful_len];
                let (r1, r2) = (u64::from(other.sample_rate_hz), u64::from(rate));
                parts(other)
                    .iter()
                    .zip(parts(&layout))
                    .all(|(&a, b)| a as u64 * r2 == b as u64 * r1)
            };
            let same = readers.iter().any(|r| lasts_as_long(&r.layout));
            if same {
                continue;
            }
            let ratio = f64::from(own_rate) / f64::from(rate);
            let token_span = (layout.token_len() as f64 * ratio).ceil() as usize;
            readers.push(Reader {
                demodulator: Demodulator::new(&layout),
                ratio,
                resampler: Some(Resampler::new()),
                span: token_span + Resampler::reach(),
                token_span,
                layout,
            });
        }
        Ok(readers)
    }

    /// Demodulates the candidate whose preamble starts at `samples[0]`;
    /// `samples` holds `span` input samples.
    fn read(&mut self, samples: &[f32]) -> Option<Token> {
        match &self.resampler {
            None => self.demodulator.demodulate(&self.layout, samples),
            Some(resampler) => {
                let played = resampler.resample(samples, self.ratio, self.layout.token_len());
                self.demodulator.demodulate(&self.layout, &played)
            }
        }
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
    /// Phase turn per symbol that undoes the clock offset.
    drift: Complex32,
    reverb: ReverbCanceller,
    /// Clock offset the reverb canceller corrects, in ppm.
    clock_ppm: f64,
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
            drift: Complex32::ONE,
            reverb: ReverbCanceller::new(layout),
            clock_ppm: 0.0,
        }
    }

    fn demodulate(&mut self, layout: &Layout, samples: &[f32]) -> Option<Token> {
        // End each FFT window a little before the next symbol's first path:
        // echoes up to a prefix long (less the guard) then add to the symbol.
        let guard_len = (WINDOW_GUARD_S * f64::from(layout.sample_rate_hz)) as usize;
        let window_offset = layout.cyclic_prefix_len.saturating_sub(guard_len);
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
        let mut bits = fec::decode(&self.interleaver.gather(&self.grid), FRAME_BITS)?;
        if let Some(token) = frame::token_from_bits(&bits) {
            return Some(token);
        }
        // Differential detection compares two noisy symbols; against a
        // channel averaged over all symbols only one is noisy.
        self.coherent_grid();
        bits = fec::decode(&self.interleaver.gather(&self.grid), FRAME_BITS)?;
        for _ in 0..ECHO_MODEL_PASSES {
            if let Some(token) = frame::token_from_bits(&bits) {
                return Some(token);
            }
            // Close but not right: fit the echo model to the symbols the
            // decoded bits imply, cancel the echo and decode again.
            self.echo_cancelled_grid(&bits);
            bits = fec::decode(&self.interleaver.gather(&self.grid), FRAME_BITS)?;
        }
        // Reverberation longer than the echo model: cancel it through a
        // channel estimated over the whole token.
        self.prepare_reverb_canceller(layout, samples, &bits);
        let mut first_pass_share = 0.0;
        for pass in 0..REVERB_PASSES {
            if let Some(token) = frame::token_from_bits(&bits) {
                return Some(token);
            }
            let grid_bits = self.interleaver.spread(&fec::encode(&bits));
            if pass > 0 {
                self.refine_clock(layout, samples, &grid_bits);
            }
            let stop_below = match pass {
                0 => NOISE_SHARE,
                1 if first_pass_share < TOKEN_SHARE => TOKEN_SHARE,
                _ => 0.0,
            };
            if !self
                .reverb
                .fill_grid(layout, &grid_bits, &mut self.grid, stop_below)
            {
                return None;
            }
            if pass == 0 {
                first_pass_share = self.reverb.first_round_share();
            }
            bits = fec::decode(&self.interleaver.gather(&self.grid), FRAME_BITS)?;
        }
        if let Some(token) = frame::token_from_bits(&bits) {
            return Some(token);
        }
        let list = fec::decode_list(
            &self.interleaver.gather(&self.grid),
            FRAME_BITS,
            LIST_ALTERNATIVES,
        )?;
        list.iter()
            .skip(1)
            .find_map(|bits| frame::token_from_bits(bits))
    }

    /// Hands the samples to the reverb canceller, corrected for the clock
    /// offset. Strong interference throws the phase-turn measure off by up
    /// to tens of ppm, which misaligns the end of the token by a cycle or
    /// more; the canceller then refines it against the waveform `bits`
    /// imply, which works even with a fair share of them wrong.
    fn prepare_reverb_canceller(&mut self, layout: &Layout, samples: &[f32], bits: &[u8]) {
        self.clock_ppm = self.clock_offset_ppm(layout);
        self.reverb.prepare(samples, self.clock_ppm);
        let grid_bits = self.interleaver.spread(&fec::encode(bits));
        for _ in 0..CLOCK_REFINE_STEPS {
            if !self.refine_clock(layout, samples, &grid_bits) {
                break;
            }
        }
    }

    /// One refinement of the clock offset against the waveform the coded
    /// bits `grid_bits` (spread over the grid) imply; false when it moved
    /// by less than `CLOCK_SETTLED_PPM`.
    fn refine_clock(&mut self, layout: &Layout, samples: &[f32], grid_bits: &[u8]) -> bool {
        let left = self.reverb.residual_clock_offset_ppm(layout, grid_bits);
        if !left.is_finite() || left.abs() < CLOCK_SETTLED_PPM {
            return false;
        }
        self.clock_ppm = (self.clock_ppm - left).clamp(-MAX_CLOCK_PPM, MAX_CLOCK_PPM);
        self.reverb.prepare(samples, self.clock_ppm);
        true
    }

    /// Transmitter clock offset, in ppm of its rate, from the phase turn per
    /// symbol: a clock fast by `p` advances a subcarrier at `f` by
    /// 2π·f·p·stride / fs per symbol (taken at the band's centre).
    fn clock_offset_ppm(&self, layout: &Layout) -> f64 {
        let bins = &layout.subcarrier_bins;
        let centre_hz = bins.iter().sum::<usize>() as f64 / bins.len() as f64
            * f64::from(SUBCARRIER_SPACING_HZ);
        let turn = f64::from(self.drift.arg());
        turn * f64::from(layout.sample_rate_hz)
            / (std::f64::consts::TAU * centre_hz * layout.symbol_stride() as f64)
            * 1e6
    }

    /// Fills `grid` by coherent detection: each subcarrier's channel is the
    /// square root of the mean squared (drift-corrected) symbol, which the
    /// ±1 data cannot bias; its sign is irrelevant to differential data.
    fn coherent_grid(&mut self) {
        let carriers = self.symbols[0].len();
        let count = self.symbols.len();
        let mut symbol_llr = vec![0f32; count];
        for c in 0..carriers {
            let observed: Vec<Complex32> = (0..count)
                .map(|k| self.symbols[k][c] * self.drift.powf(k as f32))
                .collect();
            let squared: Complex32 =
                observed.iter().map(|y| y * y).sum::<Complex32>() / count as f32;
            let channel = squared.sqrt();
            let unit = channel.conj() / channel.norm().max(f32::MIN_POSITIVE);
            let projected: Vec<Complex32> = observed.iter().map(|y| y * unit).collect();
            let noise = (projected.iter().map(|p| p.im * p.im).sum::<f32>() / count as f32)
                .max(1e-6 * channel.norm_sqr());
            for (llr, p) in symbol_llr.iter_mut().zip(&projected) {
                *llr = 2.0 * channel.norm() * p.re / noise;
            }
            for k in 1..count {
                self.grid[(k - 1) * carriers + c] = soft_xor(symbol_llr[k], symbol_llr[k - 1]);
            }
        }
    }

    /// Fills `grid` from a per-subcarrier model of the room:
    /// `Y[k] = H·X[k] + G1·X[k-1] + G2·X[k-2] + noise`, where the `G` terms
    /// are echoes of earlier symbols longer than the cyclic prefix. The
    /// symbols `X` are re-derived from `bits`; `H` and `G` come from a
    /// least-squares fit; the echoes are subtracted and each symbol is
    /// detected coherently against `H`, with the noise measured from the fit.
    // Indexing by (symbol, subcarrier) reads closer to the model than zips.
    #[allow(clippy::needless_range_loop)]
    fn echo_cancelled_grid(&mut self, bits: &[u8]) {
        let carriers = self.symbols[0].len();
        let count = self.symbols.len();
        let coded = fec::encode(bits);
        let grid_bits = self.interleaver.spread(&coded);
        // Symbols the bits imply, per subcarrier, reference first.
        let mut signs = vec![vec![0f32; carriers]; count];
        for c in 0..carriers {
            signs[0][c] = reference_sign(c);
            for k in 1..count {
                let flip = grid_bits[(k - 1) * carriers + c] == 1;
                signs[k][c] = if flip {
                    -signs[k - 1][c]
                } else {
                    signs[k - 1][c]
                };
            }
        }
        let lagged = |k: usize, lag: usize, c: usize| {
            if k >= lag { signs[k - lag][c] } else { 0.0 }
        };
        for c in 0..carriers {
            let observed: Vec<Complex32> = (0..count)
                .map(|k| self.symbols[k][c] * self.drift.powf(k as f32))
                .collect();
            // Normal equations of the least-squares fit (the regressors are
            // real, so the matrix is real).
            let mut matrix = [[0f32; ECHO_TAPS]; ECHO_TAPS];
            let mut rhs = [Complex32::ZERO; ECHO_TAPS];
            for (k, &y) in observed.iter().enumerate() {
                let regressors: [f32; ECHO_TAPS] = std::array::from_fn(|i| lagged(k, i, c));
                for ((row, sum), &ri) in matrix.iter_mut().zip(&mut rhs).zip(&regressors) {
                    *sum += y * ri;
                    for (cell, &rj) in row.iter_mut().zip(&regressors) {
                        *cell += ri * rj;
                    }
                }
            }
            let Some(taps) = solve(matrix, rhs) else {
                (0..count - 1).for_each(|k| self.grid[k * carriers + c] = 0.0);
                continue;
            };
            let mut residual_power = 0f32;
            let mut symbol_llr = vec![0f32; count];
            let direct_power = taps[0].norm_sqr().max(f32::MIN_POSITIVE);
            let cleaned: Vec<Complex32> = (0..count)
                .map(|k| {
                    let echo: Complex32 = (1..ECHO_TAPS).map(|i| taps[i] * lagged(k, i, c)).sum();
                    let fit = taps[0] * signs[k][c] + echo;
                    residual_power += (observed[k] - fit).norm_sqr();
                    observed[k] - echo
                })
                .collect();
            let noise = (residual_power / (count - ECHO_TAPS) as f32).max(1e-6 * direct_power);
            for k in 0..count {
                symbol_llr[k] = 2.0 * (cleaned[k] * taps[0].conj()).re / noise;
            }
            // The reference is known: its symbol is certain.
            symbol_llr[0] = reference_sign(c) * 1e30;
            for k in 1..count {
                self.grid[(k - 1) * carriers + c] = soft_xor(symbol_llr[k], symbol_llr[k - 1]);
            }
        }
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
        self.drift = derotate;
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

/// Solves a small real linear system with a complex right-hand side by
/// Gaussian elimination with partial pivoting; `None` if singular.
fn solve(
    mut matrix: [[f32; ECHO_TAPS]; ECHO_TAPS],
    mut rhs: [Complex32; ECHO_TAPS],
) -> Option<[Complex32; ECHO_TAPS]> {
    for col in 0..ECHO_TAPS {
        let pivot = (col..ECHO_TAPS)
            .max_by(|&a, &b| matrix[a][col].abs().total_cmp(&matrix[b][col].abs()))?;
        if matrix[pivot][col].abs() < 1e-6 {
            return None;
        }
        matrix.swap(col, pivot);
        rhs.swap(col, pivot);
        for row in col + 1..ECHO_TAPS {
            let factor = matrix[row][col] / matrix[col][col];
            let pivot_row = matrix[col];
            for (cell, &p) in matrix[row].iter_mut().zip(&pivot_row).skip(col) {
                *cell -= factor * p;
            }
            let pivot_rhs = rhs[col];
            rhs[row] -= pivot_rhs * factor;
        }
    }
    let mut x = [Complex32::ZERO; ECHO_TAPS];
    for row in (0..ECHO_TAPS).rev() {
        let tail: Complex32 = (row + 1..ECHO_TAPS).map(|k| x[k] * matrix[row][k]).sum();
        x[row] = (rhs[row] - tail) / matrix[row][row];
    }
    Some(x)
}

/// Soft value of the sign change between two soft symbols (min-sum rule):
/// a differentially encoded data bit.
pub(super) fn soft_xor(a: f32, b: f32) -> f32 {
    (a * b).signum() * a.abs().min(b.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_transmitter_clock_offset_from_the_phase_turn_per_symbol() {
        // The cancellation resamples by this figure: its sign and size matter.
        let layout = Layout::new(Profile::NearUltrasound, 48_000).unwrap();
        let modem = super::super::TokenModem::new(Profile::NearUltrasound, 48_000).unwrap();
        let tx = modem.modulate(b"clock-offset-001");
        let mut demodulator = Demodulator::new(&layout);
        for ppm in [-100.0, 60.0] {
            // A clock fast by `ppm` plays the token that much shorter.
            let rx = ReverbCanceller::new(&layout).resample(&tx, 1.0 / (1.0 + ppm * 1e-6));
            let mut samples = rx;
            samples.resize(layout.token_len(), 0.0);
            assert!(demodulator.demodulate(&layout, &samples).is_some());
            let measured = demodulator.clock_offset_ppm(&layout);
            assert!(
                (measured - ppm).abs() < 10.0,
                "{ppm} ppm measured as {measured}"
            );
        }
    }

    #[test]
    fn keeps_the_early_path_look_back_buffered_after_dropping_old_input() {
        // A peak search that opens on a block's first lag looks back at lags
        // of the previous block; their input must not have been dropped.
        let mut decoder = TokenDecoder::new(Profile::NearUltrasound, 44_100).unwrap();
        let mut dropped_any = false;
        for _ in 0..200 {
            decoder.push(&[0.0; 1000]);
            let State::Scanning { next_block, .. } = decoder.state else {
                panic!("silence started a decode attempt");
            };
            dropped_any |= decoder.buffer_start > 0;
            let oldest_look_back = next_block.saturating_sub(decoder.lookback_len + 8);
            assert!(decoder.buffer_start <= oldest_look_back);
        }
        assert!(dropped_any, "the decoder never released input");
    }
}
