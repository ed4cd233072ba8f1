//! Acoustic modem speed: median time to decode one second of microphone
//! audio (fed in 1024-sample chunks), with and without a token in it, the
//! token also heard through a room whose reverberation outlasts the cyclic
//! prefix (the slow path: a long channel estimate and interference
//! cancellation), the same token played at the other sample rate (44.1 kHz
//! heard at 48 kHz and the reverse: the decoder reads it in its own timing
//! first, then in the player's), and to modulate a token. Single thread.
//!
//! `cargo bench -p clink-core --bench acoustic`

use std::hint::black_box;
use std::time::{Duration, Instant};

use clink_core::acoustic::{Profile, TokenDecoder, TokenModem};

#[path = "../tests/acoustic_support/mod.rs"]
mod acoustic_support;

const RUNS: usize = 200;
const CHUNK_LEN: usize = 1024;

/// Deterministic white-ish noise (xorshift), so the bench needs no RNG crate.
fn noise(len: usize, level: f32, mut state: u64) -> Vec<f32> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            level * ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46
        })
        .collect()
}

/// Reverberant room: a direct path, then exponentially decaying noise with
/// an RT60 of 0.5 s carrying about three times the direct energy.
fn reverberant_room(rate: u32) -> Vec<f32> {
    let fs = rate as f32;
    let len = (0.3 * fs) as usize;
    let decay = (-6.91 / (0.5 * fs)).exp();
    let taps = noise(len, 1.0, 3);
    let mut envelope = 0.045;
    let mut h: Vec<f32> = taps
        .iter()
        .map(|t| {
            envelope *= decay;
            envelope * t
        })
        .collect();
    h[0] = 1.0;
    h
}

fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len() + h.len() - 1];
    for (i, &xi) in x.iter().enumerate() {
        for (j, &hj) in h.iter().enumerate() {
            y[i + j] += xi * hj;
        }
    }
    y
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_decode(rate: u32, audio: &[f32]) -> Duration {
    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, rate).unwrap();
    let times = (0..RUNS)
        .map(|_| {
            decoder.reset();
            let start = Instant::now();
            for chunk in audio.chunks(CHUNK_LEN) {
                black_box(decoder.push(black_box(chunk)));
            }
            start.elapsed()
        })
        .collect();
    median(times)
}

fn main() {
    for rate in [44_100u32, 48_000] {
        let modem = TokenModem::new(Profile::NearUltrasound, rate).unwrap();
        let second = rate as usize;
        let token = *b"bench-token-0001";

        // One second: noise only, at 0 dB SNR relative to a token.
        let quiet = noise(second, 0.3, 1);
        // One second with a token in it at 0 dB SNR (white, whole band).
        let mut with_token = noise(second, 0.3, 2);
        for (s, t) in with_token[second / 4..]
            .iter_mut()
            .zip(modem.modulate(&token))
        {
            *s += t;
        }
        let mut check = TokenDecoder::new(Profile::NearUltrasound, rate).unwrap();
        assert_eq!(
            check.push(&with_token),
            vec![token],
            "bench signal must decode"
        );

        // The same through the reverberant room, white noise at 0 dB
        // relative to the token as heard.
        let heard = convolve(&modem.modulate(&token), &reverberant_room(rate));
        let heard_rms = (heard.iter().map(|s| s * s).sum::<f32>() / heard.len() as f32).sqrt();
        let mut in_room = noise(second, heard_rms, 4);
        for (s, t) in in_room[second / 4..].iter_mut().zip(&heard) {
            *s += t;
        }
        let mut check = TokenDecoder::new(Profile::NearUltrasound, rate).unwrap();
        assert_eq!(
            check.push(&in_room),
            vec![token],
            "reverberant bench signal must decode"
        );

        // Played at the other rate, through the same room, at the same level
        // of white noise.
        let player = if rate == 48_000 { 44_100 } else { 48_000 };
        let played = TokenModem::new(Profile::NearUltrasound, player)
            .unwrap()
            .modulate(&token);
        let resampled = acoustic_support::resample(&played, f64::from(rate) / f64::from(player));
        let heard = convolve(&resampled, &reverberant_room(rate));
        let mut across_rates = noise(second, heard_rms, 5);
        for (s, t) in across_rates[second / 4..].iter_mut().zip(&heard) {
            *s += t;
        }
        let mut check = TokenDecoder::new(Profile::NearUltrasound, rate).unwrap();
        assert_eq!(
            check.push(&across_rates),
            vec![token],
            "bench signal played at the other rate must decode"
        );

        let modulate_times = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                black_box(modem.modulate(black_box(&token)));
                start.elapsed()
            })
            .collect();
        println!(
            "{rate} Hz: decode 1 s of noise: median {:?}; decode 1 s holding a token: median {:?}; holding a token heard through a reverberant room: median {:?}; the same played at {player} Hz: median {:?}; modulate a {:.3} s token: median {:?}",
            time_decode(rate, &quiet),
            time_decode(rate, &with_token),
            time_decode(rate, &in_room),
            time_decode(rate, &across_rates),
            modem.token_duration_s(),
            median(modulate_times),
        );
    }
}
