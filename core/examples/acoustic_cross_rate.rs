//! Prints the acoustic modem's decode rate for a token played at one sample
//! rate and recorded at another (44.1 → 48 kHz and 48 → 44.1 kHz, with the
//! same-rate pairs for comparison), against the in-band SNR: token power as
//! heard over ambient power, both measured in 17.5–20 kHz. The token goes
//! through a band-limited resampler from the playing to the recording rate
//! with ±100 ppm of clock error, then a room impulse response, then an
//! ambient recording, and is streamed into the decoder in random chunks.
//!
//! `cargo run --release -p clink-core --example acoustic_cross_rate [trials] [room] [snr_db,...]`
//!
//! `room` is the impulse response's file name (default the reverberant
//! living room at 1.5 m); `snr_db` defaults to −10…10 dB in steps of 2.

#[path = "../tests/acoustic_support/mod.rs"]
mod acoustic_support;

use acoustic_support::{Chunking, CrossRate, room_index, run_cross_rate_trials};
use clink_core::acoustic::Profile;

fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args
        .next()
        .map(|a| a.parse().expect("trials must be a number"))
        .unwrap_or(100);
    let room = args
        .next()
        .unwrap_or_else(|| "livingroom_rt60-0.5_d-1.5m".into());
    let snrs: Vec<i32> = args.next().map_or_else(
        || (-10..=10).step_by(2).collect(),
        |list| {
            list.split(',')
                .map(|s| s.parse().expect("SNRs must be whole dB"))
                .collect()
        },
    );
    let profile = Profile::NearUltrasound;
    let pairs = [
        (44_100, 48_000),
        (48_000, 44_100),
        (44_100, 44_100),
        (48_000, 48_000),
    ];
    println!(
        "profile {profile:?}, {room}, {trials} trials per cell, ±100 ppm clock error, \
         ambient sound at the in-band SNR, random chunks; decoded %"
    );
    println!(
        " in-band SNR dB | {}",
        pairs
            .iter()
            .map(|(play, capture)| format!(
                "{:>5.1} → {:>4.1} kHz",
                f64::from(*play) / 1000.0,
                f64::from(*capture) / 1000.0
            ))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for &snr_db in &snrs {
        let snr = f64::from(snr_db);
        let cells: Vec<String> = pairs
            .iter()
            .enumerate()
            .map(|(index, &(play, capture))| {
                let room = room_index(capture, &room);
                let stats = run_cross_rate_trials(
                    profile,
                    (snr_db + 100) as u64 * 37 + index as u64,
                    trials,
                    Chunking::Random(4096),
                    |rng, trial| CrossRate::random(rng, trial, play, capture, room, snr),
                );
                assert_eq!(stats.wrong, 0, "wrong token accepted");
                format!(
                    "{:>15.1} %",
                    100.0 * stats.decoded as f64 / stats.trials as f64
                )
            })
            .collect();
        println!(" {snr_db:>14} | {}", cells.join(" | "));
    }
}
