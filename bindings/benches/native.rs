//! The same work as the Kotlin and Python FFI benchmarks, called from Rust
//! without crossing the FFI, so their difference is the cost of the
//! boundary. `cargo bench -p clink-ffi --bench native`.

use std::hint::black_box;
use std::time::Instant;

use clink_ffi::acoustic::acoustic_token_len;
use clink_ffi::dtmf::{DtmfDetector, dtmf_synth_config_default, synthesize_dtmf_f32};

/// Median nanoseconds per call of `body` over `rounds` timed rounds.
fn median_ns(rounds: usize, calls_per_round: u32, mut body: impl FnMut()) -> f64 {
    for _ in 0..calls_per_round {
        body();
    }
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls_per_round {
                body();
            }
            start.elapsed().as_nanos() as f64 / f64::from(calls_per_round)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[rounds / 2]
}

fn report(what: &str, ns: f64) {
    let shown = if ns < 1_000_000.0 {
        format!("{:.3} µs", ns / 1_000.0)
    } else {
        format!("{:.3} ms", ns / 1_000_000.0)
    };
    println!("rust    {what:<52} median {shown}");
}

fn main() {
    report(
        "trivial call: acoustic_token_len()",
        median_ns(51, 100_000, || {
            black_box(acoustic_token_len());
        }),
    );
    for rate_hz in [8_000u32, 48_000] {
        let mut config = dtmf_synth_config_default();
        config.sample_rate_hz = rate_hz;
        let mut pcm = synthesize_dtmf_f32("0123456789".into(), config).expect("valid config");
        pcm.truncate(rate_hz as usize);
        let detector = DtmfDetector::new(rate_hz).expect("valid rate");
        // The clone stands for the copy the FFI makes of every buffer.
        let ns = median_ns(31, 5, || {
            black_box(detector.push_f32(pcm.clone()));
        });
        report(
            &format!("DtmfDetector.push_f32, 1 s at {} kHz", rate_hz / 1000),
            ns,
        );
    }
}
