//! ITU-T Q.24 acceptance limits, each tested on both sides of the line.
//! Tones are clean, at -20 dBFS per tone, with random phases and random
//! alignment against the detector's hops (fixed seeds).

use crate::dtmf::detect::Rejection;
use crate::dtmf::test_signals::{TonePair, push_silence, random_phases, rng, samples_for_ms};
use crate::dtmf::{Digit, DtmfDetector};
use rand::Rng;

const AMPLITUDE: f64 = 0.1;
const ALIGNMENTS: u64 = 4;
/// Telephone audio, and the rate most phones record at.
const RATES_HZ: [u32; 2] = [8_000, 48_000];

/// What the detector made of a signal: the keys, and why it turned down
/// any tone it followed.
struct Verdict {
    keys: String,
    rejections: Vec<(Digit, Rejection)>,
}

/// Renders `pair` as tone bursts of `bursts_ms`, separated by silences of
/// `gap_ms` during which the oscillators keep running (a gated tone), with
/// silence around and a random lead-in, and runs the detector on it.
fn decode_bursts(pair: TonePair, bursts_ms: &[f64], gap_ms: f64, rate: u32, seed: u64) -> Verdict {
    let mut random = rng(seed);
    let phases = random_phases(&mut random);
    let mut pcm = Vec::new();
    push_silence(
        samples_for_ms(rate, 50.0) + random.gen_range(0..samples_for_ms(rate, 5.0)),
        &mut pcm,
    );
    let mut clock = 0;
    for (i, &ms) in bursts_ms.iter().enumerate() {
        if i > 0 {
            let gap = samples_for_ms(rate, gap_ms);
            push_silence(gap, &mut pcm);
            clock += gap;
        }
        let len = samples_for_ms(rate, ms);
        pair.render(rate, len, phases, clock, &mut pcm);
        clock += len;
    }
    push_silence(samples_for_ms(rate, 80.0), &mut pcm);
    let mut detector = DtmfDetector::new(rate).unwrap();
    let mut events = detector.push_f32(&pcm);
    events.extend(detector.finish());
    Verdict {
        keys: events.iter().map(|e| e.digit.as_char()).collect(),
        rejections: detector.take_rejections(),
    }
}

fn decode_tone(pair: TonePair, ms: f64, rate: u32, seed: u64) -> Verdict {
    decode_bursts(pair, &[ms], 0.0, rate, seed)
}

/// Runs `check` for every key and several alignments, collecting failures.
fn for_all_keys(mut check: impl FnMut(Digit, u64) -> Option<String>) {
    let mut failures = Vec::new();
    for digit in Digit::ALL {
        for seed in 0..ALIGNMENTS {
            if let Some(failure) = check(digit, seed) {
                failures.push(format!("{digit} seed {seed}: {failure}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn expect(found: Verdict, wanted: &str) -> Option<String> {
    (found.keys != wanted).then(|| {
        format!(
            "decoded {:?}, wanted {wanted:?} (rejected: {:?})",
            found.keys, found.rejections
        )
    })
}

/// Expects no digit and, if the detector followed a tone of key `d` at all,
/// that it turned it down for `reason`.
fn expect_rejected(
    found: Verdict,
    d: Digit,
    reason: impl Fn(&Rejection) -> bool,
) -> Option<String> {
    if !found.keys.is_empty() {
        return Some(format!("decoded {:?}, wanted nothing", found.keys));
    }
    let own: Vec<&Rejection> = found
        .rejections
        .iter()
        .filter(|(key, _)| *key == d)
        .map(|(_, r)| r)
        .collect();
    (!own.is_empty() && !own.iter().any(|r| reason(r)))
        .then(|| format!("rejected for unexpected reasons: {own:?}"))
}

#[test]
fn accepts_40ms_tones_at_8_and_48khz() {
    for rate in [8_000, 48_000] {
        for_all_keys(|d, seed| {
            let key = d.as_char().to_string();
            expect(
                decode_tone(TonePair::nominal(d.as_char(), AMPLITUDE), 40.0, rate, seed),
                &key,
            )
        });
    }
}

#[test]
fn rejects_23ms_and_shorter_tones_at_8_and_48khz() {
    for rate in [8_000, 48_000] {
        for ms in [23.0, 20.0, 10.0] {
            for_all_keys(|d, seed| {
                expect_rejected(
                    decode_tone(TonePair::nominal(d.as_char(), AMPLITUDE), ms, rate, seed),
                    d,
                    |r| matches!(r, Rejection::TooShort { .. }),
                )
            });
        }
    }
}

/// The key's pair with the low (`low == true`) or high tone moved by `error`.
fn detuned(d: Digit, low: bool, error: f64) -> TonePair {
    let mut pair = TonePair::nominal(d.as_char(), AMPLITUDE);
    if low {
        pair.low_hz *= 1.0 + error;
    } else {
        pair.high_hz *= 1.0 + error;
    }
    pair
}

#[test]
fn accepts_frequency_errors_of_1_5_percent_both_signs_both_groups_at_8_and_48khz() {
    for rate in RATES_HZ {
        for error in [0.015, -0.015] {
            for low in [true, false] {
                for_all_keys(|d, seed| {
                    let key = d.as_char().to_string();
                    expect(decode_tone(detuned(d, low, error), 50.0, rate, seed), &key).map(|f| {
                        format!(
                            "error {error} on {} group: {f}",
                            if low { "low" } else { "high" }
                        )
                    })
                });
            }
        }
    }
}

#[test]
fn rejects_frequency_errors_of_3_5_percent_both_signs_both_groups_at_8_and_48khz() {
    for rate in RATES_HZ {
        for error in [0.035, -0.035] {
            for low in [true, false] {
                for_all_keys(|d, seed| {
                    expect_rejected(
                        decode_tone(detuned(d, low, error), 50.0, rate, seed),
                        d,
                        off_frequency,
                    )
                    .map(|f| {
                        format!(
                            "error {error} on {} group: {f}",
                            if low { "low" } else { "high" }
                        )
                    })
                });
            }
        }
    }
}

/// Ways an off-frequency tone is turned down: its measured frequency, its
/// shape across frames, or (far off its bin) too few frames that look like it.
fn off_frequency(reason: &Rejection) -> bool {
    matches!(
        reason,
        Rejection::FrequencyError { .. }
            | Rejection::OffBin
            | Rejection::Interrupted
            | Rejection::TooShort { .. }
    )
}

/// Pair with the high group `twist_db` louder than the low group (negative:
/// normal twist, low group louder), the louder tone at `AMPLITUDE`.
fn twisted(d: Digit, twist_db: f64) -> TonePair {
    let mut pair = TonePair::nominal(d.as_char(), AMPLITUDE);
    let quieter = AMPLITUDE * 10f64.powf(-twist_db.abs() / 20.0);
    if twist_db < 0.0 {
        pair.high_amp = quieter;
    } else {
        pair.low_amp = quieter;
    }
    pair
}

#[test]
fn accepts_8db_normal_twist_and_4db_reverse_twist_at_8_and_48khz() {
    for rate in RATES_HZ {
        for twist_db in [-8.0, 4.0] {
            for_all_keys(|d, seed| {
                let key = d.as_char().to_string();
                expect(decode_tone(twisted(d, twist_db), 50.0, rate, seed), &key)
                    .map(|f| format!("twist {twist_db} dB: {f}"))
            });
        }
    }
}

#[test]
fn rejects_12db_normal_twist_and_8db_reverse_twist_at_8_and_48khz() {
    for rate in RATES_HZ {
        for twist_db in [-12.0, 8.0] {
            for_all_keys(|d, seed| {
                expect_rejected(
                    decode_tone(twisted(d, twist_db), 50.0, rate, seed),
                    d,
                    |r| matches!(r, Rejection::Twist { .. }),
                )
                .map(|f| format!("twist {twist_db} dB: {f}"))
            });
        }
    }
}

#[test]
fn a_10ms_break_inside_a_tone_does_not_make_a_second_digit_at_8_and_48khz() {
    for rate in [8_000, 48_000] {
        for_all_keys(|d, seed| {
            let key = d.as_char().to_string();
            let pair = TonePair::nominal(d.as_char(), AMPLITUDE);
            expect(decode_bursts(pair, &[40.0, 40.0], 10.0, rate, seed), &key)
        });
    }
}

#[test]
fn a_40ms_pause_separates_two_identical_digits_at_8_and_48khz() {
    for rate in [8_000, 48_000] {
        for_all_keys(|d, seed| {
            let key = d.as_char().to_string().repeat(2);
            let pair = TonePair::nominal(d.as_char(), AMPLITUDE);
            expect(decode_bursts(pair, &[40.0, 40.0], 40.0, rate, seed), &key)
        });
    }
}

/// The duration and break limits still hold in noise at 20 dB SNR (noise
/// power over 0-4 kHz against the power of the two tones).
#[test]
fn duration_and_break_limits_hold_at_20db_snr_at_8khz() {
    use crate::dtmf::test_signals::add_white_noise;
    let sigma = AMPLITUDE / 10f64.powf(20.0 / 20.0);
    let mut failures = Vec::new();
    for trial in 0..64u64 {
        let d = Digit::ALL[trial as usize % 16];
        let key = d.as_char().to_string();
        let cases: [(&[f64], f64, String); 4] = [
            (&[23.0], 0.0, String::new()),
            (&[40.0], 0.0, key.clone()),
            (&[40.0, 40.0], 10.0, key.clone()),
            (&[40.0, 40.0], 40.0, key.repeat(2)),
        ];
        for (bursts, gap_ms, wanted) in cases {
            let mut random = rng(1_000 + trial);
            let phases = random_phases(&mut random);
            let mut pcm = Vec::new();
            push_silence(400 + random.gen_range(0..40), &mut pcm);
            let mut clock = 0;
            for (i, &ms) in bursts.iter().enumerate() {
                if i > 0 {
                    let gap = samples_for_ms(8_000, gap_ms);
                    push_silence(gap, &mut pcm);
                    clock += gap;
                }
                let len = samples_for_ms(8_000, ms);
                TonePair::nominal(d.as_char(), AMPLITUDE)
                    .render(8_000, len, phases, clock, &mut pcm);
                clock += len;
            }
            push_silence(640, &mut pcm);
            add_white_noise(&mut pcm, sigma, &mut random);
            let got = super::decode(&pcm, 8_000);
            if got != wanted {
                failures.push(format!(
                    "{bursts:?} gap {gap_ms} ms: decoded {got:?}, wanted {wanted:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
