//! Prints the acoustic modem's decode rate against SNR (white noise over the
//! whole band) for a clean channel and for rooms (echo, ambient sound at the
//! same SNR, speaker/microphone tilt), with ±100 ppm clock drift.
//!
//! `cargo run --release -p clink-core --example acoustic_snr_sweep [trials]`

#[path = "../tests/acoustic_support/mod.rs"]
mod acoustic_support;

use acoustic_support::{Chunking, Impairments, run_trials};
use clink_core::acoustic::{Profile, TokenModem};

fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("trials must be a number"))
        .unwrap_or(100);
    let profile = Profile::NearUltrasound;
    println!("profile {profile:?}, {trials} trials per cell, ±100 ppm drift, random chunks");
    for rate in [44_100, 48_000] {
        let modem = TokenModem::new(profile, rate).unwrap();
        println!(
            "\n{rate} Hz, token {:.3} s\n SNR dB | clean channel | room + ambient",
            modem.token_duration_s()
        );
        for snr_db in (-10..=20).step_by(2) {
            let snr = f64::from(snr_db);
            let mut cells = Vec::new();
            for room in [false, true] {
                let stats = run_trials(
                    &modem,
                    (snr_db + 100) as u64 * 2 + u64::from(room),
                    trials,
                    Chunking::Random(4096),
                    |rng, trial| Impairments::random(rng, trial, snr, room),
                    profile.band_hz(),
                );
                assert_eq!(stats.wrong, 0, "wrong token accepted");
                cells.push(100.0 * stats.decoded as f64 / stats.trials as f64);
            }
            println!(" {snr_db:>6} | {:>12.1} % | {:>12.1} %", cells[0], cells[1]);
        }
    }
}
