//! Talk-off: no digits from speech or music. Signals are generated with fixed
//! seeds (see `test_signals`). The same audio with digits played over it
//! shows the detector is not simply deaf to it.

use super::noise::digit_errors;
use super::{decode, events};
use crate::dtmf::Digit;
use crate::dtmf::test_signals::{
    TonePair, music_like, random_phases, rng, samples_for_ms, speech_like,
};
use rand::Rng;

const RATE_HZ: u32 = 8_000;
const SECONDS: f64 = 60.0;

#[test]
fn no_digits_in_60s_of_speech_like_audio_at_8khz() {
    let pcm = speech_like(RATE_HZ, SECONDS, 1);
    let found = events(&pcm, RATE_HZ);
    assert!(found.is_empty(), "{} false digits: {found:?}", found.len());
}

#[test]
fn no_digits_in_60s_of_music_like_audio_at_8khz() {
    let pcm = music_like(RATE_HZ, SECONDS, 2);
    let found = events(&pcm, RATE_HZ);
    assert!(found.is_empty(), "{} false digits: {found:?}", found.len());
}

/// Plays 60 ms digits every 200 ms over `bed`, with the DTMF signal's power
/// `ratio_db` above the bed's mean power; returns the fraction decoded right.
fn digit_rate_over(bed: &[f32], ratio_db: f64, seed: u64) -> f64 {
    let bed_power = bed.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / bed.len() as f64;
    // Two tones of amplitude A have power A^2.
    let amplitude = (bed_power * 10f64.powf(ratio_db / 10.0)).sqrt();
    let mut random = rng(seed);
    let mut pcm = bed.to_vec();
    let mut sent = String::new();
    let (tone_len, period) = (
        samples_for_ms(RATE_HZ, 60.0),
        samples_for_ms(RATE_HZ, 200.0),
    );
    let mut at = period;
    while at + period < pcm.len() {
        let key = Digit::ALL[random.gen_range(0..16)].as_char();
        sent.push(key);
        let mut tone = Vec::with_capacity(tone_len);
        let phases = random_phases(&mut random);
        TonePair::nominal(key, amplitude).render(RATE_HZ, tone_len, phases, 0, &mut tone);
        for (out, x) in pcm[at..].iter_mut().zip(tone) {
            *out += x;
        }
        at += period;
    }
    let errors = digit_errors(&sent, &decode(&pcm, RATE_HZ));
    1.0 - errors as f64 / sent.len() as f64
}

#[test]
fn detects_95_percent_of_digits_played_10db_over_speech_and_music() {
    let speech = digit_rate_over(&speech_like(RATE_HZ, 30.0, 11), 10.0, 5);
    let music = digit_rate_over(&music_like(RATE_HZ, 30.0, 12), 10.0, 6);
    println!("digits right 10 dB over speech: {speech:.3}, over music: {music:.3}");
    assert!(speech >= 0.95 && music >= 0.95);
}

/// Longer run for reports: `cargo test --release -p clink-core -- --ignored
/// --nocapture talk_off`.
#[test]
#[ignore = "20 minutes of audio each; run on demand"]
fn no_digits_in_20_minutes_each_of_speech_and_music_like_audio_at_8khz() {
    let mut false_digits = Vec::new();
    for seed in 100..120 {
        false_digits.extend(events(&speech_like(RATE_HZ, SECONDS, seed), RATE_HZ));
        false_digits.extend(events(&music_like(RATE_HZ, SECONDS, seed), RATE_HZ));
    }
    println!(
        "false digits in 20 min of speech and 20 min of music: {}",
        false_digits.len()
    );
    assert!(false_digits.is_empty(), "{false_digits:?}");
}

#[test]
fn no_digits_in_60s_each_of_speech_and_music_like_audio_at_48khz() {
    let mut found = events(&speech_like(48_000, SECONDS, 1), 48_000);
    found.extend(events(&music_like(48_000, SECONDS, 2), 48_000));
    assert!(found.is_empty(), "{} false digits: {found:?}", found.len());
}
