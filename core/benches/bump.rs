//! Bump speed on the phone: the knock detector per second of accelerometer
//! data (walking and a knock, fed 10 samples at a time), and one ambient
//! fingerprint of 2.4 s of audio. Single thread; medians over `RUNS` runs.
//!
//! `cargo bench -p clink-core --bench bump`

use std::hint::black_box;
use std::time::{Duration, Instant};

use clink_core::bump::fingerprint::{AUDIO_AFTER_KNOCK_MS, AUDIO_BEFORE_KNOCK_MS};
use clink_core::bump::{AccelSample, FingerprintExtractor, KnockDetector};

const RUNS: usize = 101;
const TRACE_SECONDS: usize = 10;

/// Deterministic noise (xorshift), so the bench needs no RNG crate.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Walking (2 Hz bounce), sensor noise, and a knock every 2 s.
fn trace(rate_hz: usize) -> Vec<AccelSample> {
    let mut noise = Noise(3);
    (0..TRACE_SECONDS * rate_hz)
        .map(|k| {
            let t = k as f64 * 1000.0 / rate_hz as f64;
            let bounce = 2.5 * (std::f64::consts::TAU * 2.0 * t / 1000.0).sin() as f32;
            let knock = if (t % 2000.0 - 1000.0).abs() < 3.0 {
                60.0
            } else {
                0.0
            };
            AccelSample {
                timestamp_ms: t,
                x: 0.05 * noise.next() + knock,
                y: 6.0 + bounce + 0.05 * noise.next(),
                z: 7.5 + 0.05 * noise.next(),
            }
        })
        .collect()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    for rate_hz in [50, 100, 200, 500] {
        let samples = trace(rate_hz);
        let mut knocks = 0;
        let time = median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    let mut detector = KnockDetector::new(0);
                    knocks = 0;
                    for chunk in samples.chunks(10) {
                        knocks += black_box(detector.push(chunk).unwrap()).len();
                    }
                    start.elapsed()
                })
                .collect(),
        );
        println!(
            "knock detector {rate_hz:>3} Hz: {:>7.1} µs per second of samples ({knocks} knocks in {TRACE_SECONDS} s)",
            time.as_secs_f64() * 1e6 / TRACE_SECONDS as f64
        );
    }
    for rate_hz in [16_000u32, 44_100, 48_000] {
        let mut noise = Noise(5);
        let len = ((AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS) * rate_hz / 1000) as usize;
        let audio: Vec<f32> = (0..len).map(|_| 0.1 * noise.next()).collect();
        let mut extractor = FingerprintExtractor::new(rate_hz).unwrap();
        let time = median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    black_box(extractor.fingerprint(black_box(&audio)).unwrap());
                    start.elapsed()
                })
                .collect(),
        );
        let fp = extractor.fingerprint(&audio).unwrap();
        let other = extractor
            .fingerprint(&audio.iter().rev().copied().collect::<Vec<_>>())
            .unwrap();
        let compare = median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..1000 {
                        black_box(black_box(&fp).similarity(black_box(&other)));
                    }
                    start.elapsed()
                })
                .collect(),
        );
        println!(
            "fingerprint {rate_hz:>5} Hz: {:>7.0} µs per {} ms clip; similarity {:.2} µs",
            time.as_secs_f64() * 1e6,
            AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS,
            compare.as_secs_f64() * 1e6 / 1000.0
        );
    }
}
