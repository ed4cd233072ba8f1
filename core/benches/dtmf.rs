//! DTMF detector speed, and the FFT alternative it was chosen against.
//!
//! Run: `cargo bench -p clink-core --bench dtmf`. Prints the median over
//! `RUNS` runs of the time to process one second of audio.

use clink_core::dtmf::{DtmfDetector, SynthConfig, synthesize_f32};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;
use std::hint::black_box;
use std::time::{Duration, Instant};

const RUNS: usize = 21;
const AUDIO_SECONDS: f64 = 10.0;
/// Chunk size a phone's audio callback typically delivers: 20 ms.
const CHUNK_MS: f64 = 20.0;

/// Digits (50 ms on, 50 ms off) in white noise at 10 dB SNR, or the noise
/// alone, `AUDIO_SECONDS` long.
fn test_audio(rate: u32, with_digits: bool) -> Vec<f32> {
    let config = SynthConfig {
        sample_rate_hz: rate,
        tone_ms: 50.0,
        gap_ms: 50.0,
        level_dbfs: -20.0,
    };
    let one_round = synthesize_f32("0123456789*#ABCD", &config).expect("valid config");
    let wanted = (AUDIO_SECONDS * rate as f64) as usize;
    let mut audio: Vec<f32> = one_round.iter().copied().cycle().take(wanted).collect();
    if !with_digits {
        audio.iter_mut().for_each(|x| *x = 0.0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Tone amplitude 0.1 each: signal power 0.01; noise power 0.001.
    let sigma = 0.001f32.sqrt() * 3f32.sqrt(); // uniform on [-a, a] has variance a^2 / 3
    for x in &mut audio {
        *x += sigma * rng.gen_range(-1.0f32..1.0);
    }
    audio
}

fn median_per_audio_second(mut run: impl FnMut() -> Duration) -> f64 {
    let mut times: Vec<f64> = (0..RUNS).map(|_| run().as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2] / AUDIO_SECONDS * 1e6
}

fn bench_detector(rate: u32, audio: &[f32]) -> f64 {
    let chunk = (CHUNK_MS * rate as f64 / 1000.0) as usize;
    median_per_audio_second(|| {
        let start = Instant::now();
        let mut detector = DtmfDetector::new(rate).expect("supported rate");
        let mut found = 0;
        for piece in audio.chunks(chunk) {
            found += detector.push_f32(piece).len();
        }
        found += detector.finish().len();
        black_box(found);
        start.elapsed()
    })
}

/// The alternative: an FFT of every 20 ms frame at every 5 ms hop (only the
/// transforms, none of the detection logic).
fn bench_fft_frames(rate: u32, audio: &[f32]) -> f64 {
    let hop = (0.005 * rate as f64).round() as usize;
    let frame = 4 * hop;
    let fft = FftPlanner::<f32>::new().plan_fft_forward(frame);
    let mut buffer = vec![Complex32::new(0.0, 0.0); frame];
    let mut scratch = vec![Complex32::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    median_per_audio_second(|| {
        let start = Instant::now();
        let mut total = 0.0f32;
        for frame_start in (0..audio.len().saturating_sub(frame)).step_by(hop) {
            for (out, &x) in buffer
                .iter_mut()
                .zip(&audio[frame_start..frame_start + frame])
            {
                *out = Complex32::new(x, 0.0);
            }
            fft.process_with_scratch(&mut buffer, &mut scratch);
            total += buffer[frame / 8].norm_sqr();
        }
        black_box(total);
        start.elapsed()
    })
}

fn main() {
    println!("median of {RUNS} runs over {AUDIO_SECONDS} s of audio, fed in {CHUNK_MS} ms chunks");
    for rate in [8_000, 16_000, 44_100, 48_000] {
        let digits = test_audio(rate, true);
        let noise = test_audio(rate, false);
        let on_digits = bench_detector(rate, &digits);
        let on_noise = bench_detector(rate, &noise);
        let fft = bench_fft_frames(rate, &noise);
        println!(
            "{rate:>6} Hz: detector {on_digits:>7.1} us per audio second on digits in noise \
             ({:>5.0}x real time), {on_noise:>7.1} us on noise alone; \
             FFT frames alone {fft:>7.1} us",
            1e6 / on_digits
        );
    }
}
