//! Channel simulation for the acoustic modem tests, the SNR sweep examples and
//! the bench: room impulse responses and ambient recordings from the
//! test data, speaker/microphone frequency response, clock drift, white noise,
//! playback at one sample rate and capture at another, and chunked streaming
//! into the decoder.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use clink_core::acoustic::{Token, TokenDecoder, TokenModem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

/// Sample rate of the recorded test data.
pub const TESTDATA_RATE_HZ: u32 = 48_000;

/// `core/tests/data/acoustic`: room impulse responses and two-phone ambient
/// scenes kept in the repository (see its README for how they were made).
/// Panics with a clear message when missing: these tests must never pass by
/// skipping.
pub fn testdata_dir() -> PathBuf {
    // Through the workspace root: other crates (the server's crowd test)
    // include this module too.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/acoustic");
    assert!(
        dir.join("rir").is_dir() && dir.join("ambient").is_dir(),
        "acoustic test data missing: expected core/tests/data/acoustic (looked in {})",
        dir.display()
    );
    dir
}

pub fn read_wav(path: &std::path::Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "{} is not mono", path.display());
    assert_eq!(spec.sample_rate, TESTDATA_RATE_HZ, "{}", path.display());
    reader
        .samples::<f32>()
        .map(|s| s.expect("valid float sample"))
        .collect()
}

/// Room impulse responses and ambient recordings at one sample rate.
pub struct RoomData {
    /// (file stem, impulse response)
    pub rirs: Vec<(String, Vec<f32>)>,
    /// (file stem, recording)
    pub ambient: Vec<(String, Vec<f32>)>,
}

fn load_room_data(sample_rate_hz: u32) -> RoomData {
    let dir = testdata_dir();
    let load = |sub: &str| -> Vec<(String, Vec<f32>)> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap_or_else(|e| panic!("cannot list {sub}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no WAV files in {sub}");
        paths
            .iter()
            .map(|p| {
                let samples = read_wav(p);
                let ratio = f64::from(sample_rate_hz) / f64::from(TESTDATA_RATE_HZ);
                let samples = if sample_rate_hz == TESTDATA_RATE_HZ {
                    samples
                } else {
                    resample(&samples, ratio)
                };
                (
                    p.file_stem().unwrap().to_string_lossy().into_owned(),
                    samples,
                )
            })
            .collect()
    };
    let data = RoomData {
        rirs: load("rir"),
        ambient: load("ambient"),
    };
    assert_eq!(data.rirs.len(), 8, "expected 8 room impulse responses");
    data
}

/// Index of the impulse response named `stem` (file name without `.wav`).
pub fn room_index(sample_rate_hz: u32, stem: &str) -> usize {
    room_data(sample_rate_hz)
        .rirs
        .iter()
        .position(|(name, _)| name == stem)
        .unwrap_or_else(|| panic!("no impulse response named {stem}"))
}

/// Loaded once per test binary and sample rate.
pub fn room_data(sample_rate_hz: u32) -> &'static RoomData {
    static AT_44K1: OnceLock<RoomData> = OnceLock::new();
    static AT_48K: OnceLock<RoomData> = OnceLock::new();
    match sample_rate_hz {
        44_100 => AT_44K1.get_or_init(|| load_room_data(44_100)),
        48_000 => AT_48K.get_or_init(|| load_room_data(48_000)),
        other => panic!("no room data at {other} Hz"),
    }
}

/// Band-limited resampling by `ratio` (output rate / input rate) with a
/// Blackman-windowed sinc, 32 zero crossings each side. The kernel is
/// tabulated finely and interpolated linearly, which keeps errors far below
/// the noise levels tested while running fast enough for thousands of trials.
pub fn resample(input: &[f32], ratio: f64) -> Vec<f32> {
    const HALF_TAPS: f64 = 32.0;
    const TABLE_STEPS_PER_SAMPLE: f64 = 512.0;
    // Cut off a little below the lower Nyquist frequency.
    let cutoff = 0.97 * ratio.min(1.0);
    let half_width = HALF_TAPS / cutoff;
    let table: Vec<f32> = (0..=(half_width * TABLE_STEPS_PER_SAMPLE).ceil() as usize + 1)
        .map(|i| {
            let d = i as f64 / TABLE_STEPS_PER_SAMPLE;
            if d >= half_width {
                return 0.0;
            }
            let w = 0.42
                + 0.5 * (std::f64::consts::PI * d / half_width).cos()
                + 0.08 * (2.0 * std::f64::consts::PI * d / half_width).cos();
            (cutoff * sinc(cutoff * d) * w) as f32
        })
        .collect();
    let kernel = |d: f64| {
        let position = d.abs() * TABLE_STEPS_PER_SAMPLE;
        let index = position as usize;
        let frac = (position - index as f64) as f32;
        table[index] * (1.0 - frac) + table[index + 1] * frac
    };
    let out_len = (input.len() as f64 * ratio).floor() as usize;
    (0..out_len)
        .map(|m| {
            let t = m as f64 / ratio;
            let first = (t - half_width).ceil().max(0.0) as usize;
            let last = ((t + half_width).floor() as usize).min(input.len() - 1);
            (first..=last)
                .map(|k| input[k] * kernel(t - k as f64))
                .sum::<f32>()
        })
        .collect()
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Full linear convolution through the FFT.
pub fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let out_len = x.len() + h.len() - 1;
    let n = out_len.next_power_of_two();
    let mut planner = FftPlanner::<f32>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);
    let spectrum = |s: &[f32]| {
        let mut buf: Vec<Complex32> = s.iter().map(|&v| Complex32::new(v, 0.0)).collect();
        buf.resize(n, Complex32::ZERO);
        forward.process(&mut buf);
        buf
    };
    let mut product: Vec<Complex32> = spectrum(x)
        .iter()
        .zip(spectrum(h))
        .map(|(a, b)| a * b)
        .collect();
    inverse.process(&mut product);
    product[..out_len].iter().map(|c| c.re / n as f32).collect()
}

/// Linear-phase FIR of a loudspeaker plus microphone: `tilt_db` from the
/// bottom to the top of `band_hz`, plus a ±`ripple_db` ripple every
/// `ripple_period_hz`.
pub fn speaker_mic_response(
    sample_rate_hz: u32,
    band_hz: (u32, u32),
    tilt_db: f64,
    ripple_db: f64,
    ripple_period_hz: f64,
    ripple_phase: f64,
) -> Vec<f32> {
    const TAPS: usize = 511;
    let n = 4096;
    let fs = f64::from(sample_rate_hz);
    let (low, high) = (f64::from(band_hz.0), f64::from(band_hz.1));
    let mut spectrum: Vec<Complex32> = (0..n)
        .map(|k| {
            let f = (k.min(n - k)) as f64 * fs / n as f64;
            let position = ((f - low) / (high - low)).clamp(0.0, 1.0);
            let db = tilt_db * (position - 0.5)
                + ripple_db * (std::f64::consts::TAU * f / ripple_period_hz + ripple_phase).sin();
            Complex32::new(10f64.powf(db / 20.0) as f32, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_inverse(n).process(&mut spectrum);
    (0..TAPS)
        .map(|i| {
            let lag = (i + n - TAPS / 2) % n;
            let hann =
                0.5 - 0.5 * (std::f64::consts::TAU * (i as f64 + 1.0) / (TAPS + 1) as f64).cos();
            spectrum[lag].re / n as f32 * hann as f32
        })
        .collect()
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

pub fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// What happens between the paying phone's speaker and the payer's microphone.
#[derive(Clone, Debug)]
pub struct Impairments {
    /// White noise from 0 Hz to Nyquist, relative to the received token's RMS.
    pub white_snr_db: f64,
    /// Transmitter clock offset in parts per million.
    pub drift_ppm: f64,
    /// Index into `room_data(..).rirs`, or none for a direct channel.
    pub room: Option<usize>,
    /// Index into `room_data(..).ambient` and its level relative to the
    /// received token's RMS.
    pub ambient: Option<(usize, f64)>,
    /// Speaker/microphone tilt across the band, in dB (0 = flat).
    pub tilt_db: f64,
    /// Speaker/microphone ripple, ± dB.
    pub ripple_db: f64,
    /// Silence (with noise) before the token arrives.
    pub lead_s: f64,
}

impl Impairments {
    pub fn clean(white_snr_db: f64) -> Self {
        Impairments {
            white_snr_db,
            drift_ppm: 0.0,
            room: None,
            ambient: None,
            tilt_db: 0.0,
            ripple_db: 0.0,
            lead_s: 0.1,
        }
    }

    /// A random trial: ±100 ppm drift, random lead-in; with `room`, a room
    /// impulse response, an ambient scene at `white_snr_db` and a
    /// speaker/microphone with up to ±20 dB tilt and ±5 dB ripple.
    pub fn random(rng: &mut StdRng, trial: usize, white_snr_db: f64, room: bool) -> Self {
        let sign = if rng.r#gen::<bool>() { 1.0 } else { -1.0 };
        Impairments {
            white_snr_db,
            drift_ppm: sign * 100.0,
            room: room.then_some(trial % 8),
            ambient: room.then_some((trial % 12, white_snr_db)),
            tilt_db: if room {
                rng.gen_range(-20.0..20.0)
            } else {
                0.0
            },
            ripple_db: if room { 5.0 } else { 0.0 },
            lead_s: rng.gen_range(0.0..1.0),
        }
    }
}

/// Microphone signal for `tx` through `imp`.
pub fn receive(
    tx: &[f32],
    sample_rate_hz: u32,
    band_hz: (u32, u32),
    imp: &Impairments,
    rng: &mut StdRng,
) -> Vec<f32> {
    let fs = f64::from(sample_rate_hz);
    let mut signal = if imp.drift_ppm != 0.0 {
        resample(tx, 1.0 + imp.drift_ppm * 1e-6)
    } else {
        tx.to_vec()
    };
    if imp.tilt_db != 0.0 || imp.ripple_db != 0.0 {
        let response = speaker_mic_response(
            sample_rate_hz,
            band_hz,
            imp.tilt_db,
            imp.ripple_db,
            700.0,
            rng.gen_range(0.0..std::f64::consts::TAU),
        );
        signal = convolve(&signal, &response);
    }
    let mut arrival = 0;
    if let Some(room) = imp.room {
        let rir = &room_data(sample_rate_hz).rirs[room].1;
        arrival = rir
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map_or(0, |(i, _)| i);
        signal = convolve(&signal, rir);
    }
    // Level of the token as heard, from the direct sound on.
    let token_rms = rms(&signal[arrival..(arrival + tx.len()).min(signal.len())]);

    let lead = (imp.lead_s * fs) as usize;
    let tail = (0.2 * fs) as usize;
    let mut rx = vec![0f32; lead + signal.len() + tail];
    rx[lead..lead + signal.len()].copy_from_slice(&signal);
    if let Some((scene, snr_db)) = imp.ambient {
        let noise = &room_data(sample_rate_hz).ambient[scene].1;
        let gain = (token_rms / rms(noise) * 10f64.powf(-snr_db / 20.0)) as f32;
        let start = rng.gen_range(0..noise.len());
        for (i, s) in rx.iter_mut().enumerate() {
            *s += gain * noise[(start + i) % noise.len()];
        }
    }
    let white = (token_rms * 10f64.powf(-imp.white_snr_db / 20.0)) as f32;
    for s in rx.iter_mut() {
        *s += white * gaussian(rng);
    }
    rx
}

/// How the microphone signal is cut into chunks for the decoder.
#[derive(Clone, Copy, Debug)]
pub enum Chunking {
    Fixed(usize),
    /// Uniformly random sizes from 1 to the given maximum.
    Random(usize),
}

pub fn decode_streaming(
    decoder: &mut TokenDecoder,
    rx: &[f32],
    chunking: Chunking,
    rng: &mut StdRng,
) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = rx;
    while !rest.is_empty() {
        let size = match chunking {
            Chunking::Fixed(n) => n,
            Chunking::Random(max) => rng.gen_range(1..=max),
        }
        .min(rest.len());
        let (chunk, after) = rest.split_at(size);
        tokens.extend(decoder.push(chunk));
        rest = after;
    }
    tokens
}

/// Outcome of a batch of trials.
pub struct TrialStats {
    pub trials: usize,
    pub decoded: usize,
    pub wrong: usize,
}

/// Runs `trials` random tokens through the channel; counts exact decodes and
/// wrong tokens (any token other than the one sent).
pub fn run_trials(
    modem: &TokenModem,
    seed: u64,
    trials: usize,
    chunking: Chunking,
    mut impairments: impl FnMut(&mut StdRng, usize) -> Impairments,
    band_hz: (u32, u32),
) -> TrialStats {
    let mut rng = StdRng::seed_from_u64(seed);
    let rate = modem.sample_rate_hz();
    let mut decoder = TokenDecoder::new(modem.profile(), rate).unwrap();
    let mut stats = TrialStats {
        trials,
        decoded: 0,
        wrong: 0,
    };
    for trial in 0..trials {
        let token: Token = rng.r#gen();
        let imp = impairments(&mut rng, trial);
        let rx = receive(&modem.modulate(&token), rate, band_hz, &imp, &mut rng);
        decoder.reset();
        let got = decode_streaming(&mut decoder, &rx, chunking, &mut rng);
        stats.decoded += usize::from(got.contains(&token));
        stats.wrong += got.iter().filter(|t| **t != token).count();
    }
    stats
}

/// Mean power per sample of `x` between `band_hz.0` and `band_hz.1` (both
/// sides of the spectrum), through one FFT of the whole signal.
pub fn in_band_power(x: &[f32], sample_rate_hz: u32, band_hz: (u32, u32)) -> f64 {
    let n = x.len().next_power_of_two();
    let mut spectrum: Vec<Complex32> = x.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    spectrum.resize(n, Complex32::ZERO);
    FftPlanner::new().plan_fft_forward(n).process(&mut spectrum);
    let bin_hz = f64::from(sample_rate_hz) / n as f64;
    let first = (f64::from(band_hz.0) / bin_hz).ceil() as usize;
    let last = ((f64::from(band_hz.1) / bin_hz).floor() as usize).min(n / 2);
    let one_side: f64 = spectrum[first..=last]
        .iter()
        .map(|c| f64::from(c.norm_sqr()))
        .sum();
    // Parseval: Σ x² = Σ |X|² / n; the band appears at ±f.
    2.0 * one_side / n as f64 / x.len().max(1) as f64
}

/// A token played by one phone at `play_rate_hz` and recorded by another
/// at `capture_rate_hz` (the two may differ: 44.1 kHz against 48 kHz).
#[derive(Clone, Debug)]
pub struct CrossRate {
    pub play_rate_hz: u32,
    pub capture_rate_hz: u32,
    /// Error of the playing phone's clock against the recording phone's, in
    /// parts per million: positive plays fast (the token arrives shorter).
    pub clock_ppm: f64,
    /// Index into `room_data(capture_rate_hz).rirs`.
    pub room: usize,
    /// Index into `room_data(capture_rate_hz).ambient`.
    pub ambient: usize,
    /// Token power as heard over ambient power, both measured in the band.
    pub in_band_snr_db: f64,
    /// Ambient sound before the token arrives.
    pub lead_s: f64,
}

impl CrossRate {
    /// A random trial in `room`: ±100 ppm clock error, a random lead-in, the
    /// ambient scenes in turn.
    pub fn random(
        rng: &mut StdRng,
        trial: usize,
        play_rate_hz: u32,
        capture_rate_hz: u32,
        room: usize,
        in_band_snr_db: f64,
    ) -> Self {
        let sign = if rng.r#gen::<bool>() { 1.0 } else { -1.0 };
        CrossRate {
            play_rate_hz,
            capture_rate_hz,
            clock_ppm: sign * 100.0,
            room,
            ambient: trial % room_data(capture_rate_hz).ambient.len(),
            in_band_snr_db,
            lead_s: rng.gen_range(0.0..1.0),
        }
    }
}

/// In-band power of each ambient scene at one rate, measured once.
fn ambient_in_band_power(sample_rate_hz: u32, band_hz: (u32, u32), scene: usize) -> f64 {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: OnceLock<Mutex<HashMap<(u32, u32, u32, usize), f64>>> = OnceLock::new();
    let key = (sample_rate_hz, band_hz.0, band_hz.1, scene);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(&power) = cache.lock().unwrap().get(&key) {
        return power;
    }
    let recording = &room_data(sample_rate_hz).ambient[scene].1;
    let power = in_band_power(recording, sample_rate_hz, band_hz);
    cache.lock().unwrap().insert(key, power);
    power
}

/// Microphone signal at `imp.capture_rate_hz` for `tx`, modulated at
/// `imp.play_rate_hz`: band-limited resampling from the playing to the
/// recording rate with the clock error folded in, the room, then the
/// ambient scene at the in-band SNR.
pub fn receive_cross_rate(
    tx: &[f32],
    band_hz: (u32, u32),
    imp: &CrossRate,
    rng: &mut StdRng,
) -> Vec<f32> {
    let capture = imp.capture_rate_hz;
    // The player emits its samples at play_rate · (1 + ppm) per second of
    // the recorder's clock.
    let ratio = f64::from(capture) / (f64::from(imp.play_rate_hz) * (1.0 + imp.clock_ppm * 1e-6));
    let played = resample(tx, ratio);
    let rir = &room_data(capture).rirs[imp.room].1;
    let arrival = rir
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map_or(0, |(i, _)| i);
    let signal = convolve(&played, rir);
    // Level of the token as heard, from the direct sound on.
    let heard = &signal[arrival..(arrival + played.len()).min(signal.len())];
    let token_power = in_band_power(heard, capture, band_hz);

    let fs = f64::from(capture);
    let lead = (imp.lead_s * fs) as usize;
    let tail = (0.2 * fs) as usize;
    let mut rx = vec![0f32; lead + signal.len() + tail];
    rx[lead..lead + signal.len()].copy_from_slice(&signal);
    let noise = &room_data(capture).ambient[imp.ambient].1;
    let noise_power = ambient_in_band_power(capture, band_hz, imp.ambient);
    let gain = (token_power / noise_power * 10f64.powf(-imp.in_band_snr_db / 10.0)).sqrt() as f32;
    let start = rng.gen_range(0..noise.len());
    for (i, s) in rx.iter_mut().enumerate() {
        *s += gain * noise[(start + i) % noise.len()];
    }
    rx
}

/// Runs `trials` random tokens played at one rate and recorded at another;
/// counts exact decodes and wrong tokens.
pub fn run_cross_rate_trials(
    profile: clink_core::acoustic::Profile,
    seed: u64,
    trials: usize,
    chunking: Chunking,
    mut impairments: impl FnMut(&mut StdRng, usize) -> CrossRate,
) -> TrialStats {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut modems: Vec<TokenModem> = Vec::new();
    let mut decoders: Vec<(u32, TokenDecoder)> = Vec::new();
    let mut stats = TrialStats {
        trials,
        decoded: 0,
        wrong: 0,
    };
    for trial in 0..trials {
        let token: Token = rng.r#gen();
        let imp = impairments(&mut rng, trial);
        if !modems
            .iter()
            .any(|m| m.sample_rate_hz() == imp.play_rate_hz)
        {
            modems.push(TokenModem::new(profile, imp.play_rate_hz).unwrap());
        }
        let modem = modems
            .iter()
            .find(|m| m.sample_rate_hz() == imp.play_rate_hz)
            .unwrap();
        let rx = receive_cross_rate(&modem.modulate(&token), profile.band_hz(), &imp, &mut rng);
        let capture = imp.capture_rate_hz;
        if !decoders.iter().any(|(rate, _)| *rate == capture) {
            decoders.push((capture, TokenDecoder::new(profile, capture).unwrap()));
        }
        let (_, decoder) = decoders
            .iter_mut()
            .find(|(rate, _)| *rate == capture)
            .unwrap();
        decoder.reset();
        let got = decode_streaming(decoder, &rx, chunking, &mut rng);
        stats.decoded += usize::from(got.contains(&token));
        stats.wrong += got.iter().filter(|t| **t != token).count();
    }
    stats
}
