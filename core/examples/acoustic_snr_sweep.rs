//! Prints the acoustic modem's decode rate against SNR (white noise from
//! 0 Hz to Nyquist, relative to the received token) with ±100 ppm clock
//! drift, random lead-in and random chunk sizes, for a clean channel and
//! for each room impulse response on its own. Room trials mix in an ambient
//! recording at the same SNR on top of the white noise and a speaker/mic
//! response with up to ±20 dB tilt and ±5 dB ripple.
//!
//! `cargo run --release -p clink-core --example acoustic_snr_sweep [trials] [room] [snr_db,...]`
//!
//! `room` keeps the impulse responses whose name contains it ("all" for
//! every one); `snr_db` defaults to −10…20 dB in steps of 2.

#[path = "../tests/acoustic_support/mod.rs"]
mod acoustic_support;

use acoustic_support::{Chunking, Impairments, room_data, run_trials};
use clink_core::acoustic::{Profile, TokenModem};

fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args
        .next()
        .map(|a| a.parse().expect("trials must be a number"))
        .unwrap_or(100);
    let room_filter = args.next().filter(|r| r != "all");
    let snrs: Vec<i32> = args.next().map_or_else(
        || (-10..=20).step_by(2).collect(),
        |list| {
            list.split(',')
                .map(|s| s.parse().expect("SNRs must be whole dB"))
                .collect()
        },
    );
    let profile = Profile::NearUltrasound;
    println!("profile {profile:?}, {trials} trials per cell, ±100 ppm drift, random chunks");
    for rate in [44_100, 48_000] {
        let modem = TokenModem::new(profile, rate).unwrap();
        let rooms: Vec<(usize, &str)> = room_data(rate)
            .rirs
            .iter()
            .enumerate()
            .map(|(index, (name, _))| (index, name.as_str()))
            .filter(|(_, name)| {
                room_filter
                    .as_ref()
                    .is_none_or(|f| name.contains(f.as_str()))
            })
            .collect();
        // Column 0 is the clean channel, then one per impulse response.
        let mut channels: Vec<(Option<usize>, String)> = vec![(None, "clean".into())];
        channels.extend(rooms.iter().map(|&(i, name)| (Some(i), short_name(name))));
        println!(
            "\n{rate} Hz, token {:.3} s, decoded %\n SNR dB | {}",
            modem.token_duration_s(),
            channels
                .iter()
                .map(|(_, name)| format!("{name:>11}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        for &snr_db in &snrs {
            let snr = f64::from(snr_db);
            let mut cells = Vec::new();
            for (index, &(room, _)) in channels.iter().enumerate() {
                let stats = run_trials(
                    &modem,
                    (snr_db + 100) as u64 * 31 + index as u64,
                    trials,
                    Chunking::Random(4096),
                    |rng, trial| {
                        let mut imp = Impairments::random(rng, trial, snr, room.is_some());
                        imp.room = room;
                        imp
                    },
                    profile.band_hz(),
                );
                assert_eq!(stats.wrong, 0, "wrong token accepted");
                cells.push(format!(
                    "{:>9.1} %",
                    100.0 * stats.decoded as f64 / stats.trials as f64
                ));
            }
            println!(" {snr_db:>6} | {}", cells.join(" | "));
        }
    }
}

/// `livingroom_rt60-0.5_d-1.5m` → `living 1.5m`.
fn short_name(stem: &str) -> String {
    let room = stem.split('_').next().unwrap_or(stem);
    let distance = stem.rsplit("_d-").next().unwrap_or("");
    format!("{} {distance}", &room[..room.len().min(6)])
}
