//! 16-digit sequences of 40 ms tones and 40 ms pauses in white Gaussian noise
//! at 8 kHz.
//!
//! SNR = signal power / noise power, where signal power is the mean square of
//! the DTMF signal while a tone sounds (two tones of amplitude A: A^2) and
//! noise power is the variance of the white noise sampled at 8 kHz, i.e. all
//! noise in 0-4 kHz. Run with `--nocapture` to see the rates.

use super::decode;
use crate::dtmf::Digit;
use crate::dtmf::test_signals::{
    TonePair, add_white_noise, push_silence, random_phases, rng, samples_for_ms, upsample,
};
use rand::Rng;

const RATE_HZ: u32 = 8_000;
const TONE_AMPLITUDE: f64 = 0.1;
const TRIALS: u64 = 300;

struct Outcome {
    trials: u64,
    exact_sequences: u64,
    digit_errors: usize,
    digits_sent: usize,
}

impl Outcome {
    fn sequence_rate(&self) -> f64 {
        self.exact_sequences as f64 / self.trials as f64
    }
    fn digit_rate(&self) -> f64 {
        1.0 - self.digit_errors as f64 / self.digits_sent as f64
    }
}

/// Edit distance: digits missed, added or wrong.
pub(super) fn digit_errors(sent: &str, got: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (sent.chars().collect(), got.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut diagonal = row[0];
        row[0] = i;
        for j in 1..=b.len() {
            let substitution = diagonal + usize::from(a[i - 1] != b[j - 1]);
            diagonal = row[j];
            row[j] = substitution.min(row[j] + 1).min(row[j - 1] + 1);
        }
    }
    row[b.len()]
}

fn run_trials(snr_db: f64, seed_base: u64) -> Outcome {
    run_trials_at(RATE_HZ, TRIALS, snr_db, seed_base)
}

/// `trials` sequences at `rate`; the noise is white over 0..rate/2, and SNR
/// is measured over that whole band.
fn run_trials_at(rate: u32, trials: u64, snr_db: f64, seed_base: u64) -> Outcome {
    run_trials_upsampled(rate, 1, trials, snr_db, seed_base)
}

/// As `run_trials_at`, the signal and its noise made at `rate` and then
/// upsampled by `factor` (band-limited, see `upsample`) before decoding.
fn run_trials_upsampled(
    rate: u32,
    factor: usize,
    trials: u64,
    snr_db: f64,
    seed_base: u64,
) -> Outcome {
    let sigma = TONE_AMPLITUDE / 10f64.powf(snr_db / 20.0);
    let mut outcome = Outcome {
        trials,
        exact_sequences: 0,
        digit_errors: 0,
        digits_sent: 0,
    };
    for trial in 0..trials {
        let mut random = rng(seed_base + trial);
        let sent: String = (0..16)
            .map(|_| Digit::ALL[random.gen_range(0..16)].as_char())
            .collect();
        let mut pcm = Vec::new();
        push_silence(
            samples_for_ms(RATE_HZ, 60.0) + random.gen_range(0..40),
            &mut pcm,
        );
        for key in sent.chars() {
            let phases = random_phases(&mut random);
            TonePair::nominal(key, TONE_AMPLITUDE).render(
                rate,
                samples_for_ms(rate, 40.0),
                phases,
                0,
                &mut pcm,
            );
            push_silence(samples_for_ms(rate, 40.0), &mut pcm);
        }
        push_silence(samples_for_ms(rate, 60.0), &mut pcm);
        add_white_noise(&mut pcm, sigma, &mut random);
        let got = if factor == 1 {
            decode(&pcm, rate)
        } else {
            decode(&upsample(&pcm, factor), rate * factor as u32)
        };
        let errors = digit_errors(&sent, &got);
        outcome.exact_sequences += u64::from(errors == 0);
        outcome.digit_errors += errors;
        outcome.digits_sent += sent.len();
    }
    let upsampled = if factor == 1 {
        String::new()
    } else {
        format!(" upsampled to {} Hz", rate * factor as u32)
    };
    println!(
        "{rate} Hz{upsampled}, SNR {snr_db:>5.1} dB: {}/{trials} sequences exact ({:.1} %), {:.2} % of {} digits right",
        outcome.exact_sequences,
        100.0 * outcome.sequence_rate(),
        100.0 * outcome.digit_rate(),
        outcome.digits_sent
    );
    outcome
}

#[test]
fn edit_distance_counts_missed_added_and_wrong_digits() {
    assert_eq!(digit_errors("1234", "1234"), 0);
    assert_eq!(digit_errors("1234", "124"), 1);
    assert_eq!(digit_errors("1234", "12334"), 1);
    assert_eq!(digit_errors("1234", "1264"), 1);
    assert_eq!(digit_errors("1234", ""), 4);
}

#[test]
fn decodes_16_digit_sequences_at_10db_snr_at_8khz() {
    assert!(run_trials(10.0, 10_000).sequence_rate() >= 0.99);
}

#[test]
fn decodes_16_digit_sequences_at_5db_snr_at_8khz() {
    assert!(run_trials(5.0, 20_000).sequence_rate() >= 0.99);
}

#[test]
fn decodes_99_percent_of_digits_at_0db_snr_at_8khz() {
    assert!(run_trials(0.0, 30_000).digit_rate() >= 0.99);
}

#[test]
fn decodes_95_percent_of_digits_at_minus_3db_snr_at_8khz() {
    assert!(run_trials(-3.0, 40_000).digit_rate() >= 0.95);
}

/// At 48 kHz the same SNR (noise over 0-24 kHz) puts less noise in each
/// bin, so 0 dB is as easy as 5 dB is at 8 kHz.
#[test]
fn decodes_16_digit_sequences_at_0db_snr_at_48khz() {
    assert!(run_trials_at(48_000, 100, 0.0, 50_000).sequence_rate() >= 0.99);
}

/// The 0 dB trial's 8 kHz audio, noise and all (so the noise lies in
/// 0-4 kHz), upsampled to 48 kHz: telephone audio handled at a phone's rate.
/// The resampler's low-pass (3.8 kHz) removes about 2 % of the noise.
#[test]
fn decodes_99_percent_of_digits_at_0db_snr_at_8khz_upsampled_to_48khz() {
    assert!(run_trials_upsampled(RATE_HZ, 6, TRIALS, 0.0, 30_000).digit_rate() >= 0.99);
}
