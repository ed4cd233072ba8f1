//! Prints the acoustic modem's decode rate against SNR (white noise from
//! 0 Hz to Nyquist, relative to the received token) with ±100 ppm clock
//! drift, random lead-in and random chunk sizes, for three channels:
//! - clean: no echo, flat response;
//! - rooms: 7 of the 8 room impulse responses, an ambient recording mixed in
//!   at the same SNR on top of the white noise, and a speaker/mic response
//!   with up to ±20 dB tilt and ±5 dB ripple;
//! - the same for the eighth, the living room at 1.5 m, where late
//!   reverberation carries three quarters of the energy.
//!
//! `cargo run --release -p clink-core --example acoustic_snr_sweep [trials]`

#[path = "../tests/acoustic_support/mod.rs"]
mod acoustic_support;

use acoustic_support::{Chunking, Impairments, room_data, room_index, run_trials};
use clink_core::acoustic::{Profile, TokenModem};

const REVERB_DOMINATED_ROOM: &str = "livingroom_rt60-0.5_d-1.5m";

fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("trials must be a number"))
        .unwrap_or(100);
    let profile = Profile::NearUltrasound;
    println!("profile {profile:?}, {trials} trials per cell, ±100 ppm drift, random chunks");
    for rate in [44_100, 48_000] {
        let modem = TokenModem::new(profile, rate).unwrap();
        let hard = room_index(rate, REVERB_DOMINATED_ROOM);
        let rooms: Vec<usize> = (0..room_data(rate).rirs.len())
            .filter(|&i| i != hard)
            .collect();
        println!(
            "\n{rate} Hz, token {:.3} s\n SNR dB | clean channel | 7 rooms + ambient | living room 1.5 m + ambient",
            modem.token_duration_s()
        );
        for snr_db in (-10..=20).step_by(2) {
            let snr = f64::from(snr_db);
            let channels: [Option<&[usize]>; 3] = [None, Some(&rooms), Some(&[hard])];
            let mut cells = Vec::new();
            for (index, channel) in channels.iter().enumerate() {
                let stats = run_trials(
                    &modem,
                    (snr_db + 100) as u64 * 3 + index as u64,
                    trials,
                    Chunking::Random(4096),
                    |rng, trial| {
                        let mut imp = Impairments::random(rng, trial, snr, channel.is_some());
                        imp.room = channel.map(|rooms| rooms[trial % rooms.len()]);
                        imp
                    },
                    profile.band_hz(),
                );
                assert_eq!(stats.wrong, 0, "wrong token accepted");
                cells.push(100.0 * stats.decoded as f64 / stats.trials as f64);
            }
            println!(
                " {snr_db:>6} | {:>11.1} % | {:>15.1} % | {:>25.1} %",
                cells[0], cells[1], cells[2]
            );
        }
    }
}
