//! DTMF synthesis: digits to PCM at any supported sample rate.

use super::{DtmfError, check_sample_rate, parse_digits};
use std::f64::consts::TAU;

/// Shortest and longest tone a caller may ask for. Below 1 ms there is no
/// tone to speak of; a key held for more than 10 s is a mistake.
pub const MIN_TONE_MS: f64 = 1.0;
pub const MAX_TONE_MS: f64 = 10_000.0;
/// Longest gap between digits.
pub const MAX_GAP_MS: f64 = 10_000.0;
/// Per-tone level range. Two tones at -6.02 dBFS peak at exactly full scale.
pub const MIN_LEVEL_DBFS: f64 = -90.0;
pub const MAX_LEVEL_DBFS: f64 = -6.03;

/// How to render digits: every digit is `tone_ms` of its two tones followed by
/// `gap_ms` of silence (so the signal also ends in silence).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub sample_rate_hz: u32,
    pub tone_ms: f64,
    pub gap_ms: f64,
    /// Peak level of each of the two tones, in dB relative to full scale.
    pub level_dbfs: f64,
}

impl Default for SynthConfig {
    /// Telephone audio, comfortably above the Q.24 minimum durations.
    fn default() -> Self {
        SynthConfig {
            sample_rate_hz: 8_000,
            tone_ms: 70.0,
            gap_ms: 70.0,
            level_dbfs: -10.0,
        }
    }
}

impl SynthConfig {
    fn validate(&self) -> Result<(), DtmfError> {
        check_sample_rate(self.sample_rate_hz)?;
        if !(MIN_TONE_MS..=MAX_TONE_MS).contains(&self.tone_ms) {
            return Err(DtmfError::ToneLengthOutOfRange {
                ms: self.tone_ms,
                min_ms: MIN_TONE_MS,
                max_ms: MAX_TONE_MS,
            });
        }
        if !(0.0..=MAX_GAP_MS).contains(&self.gap_ms) {
            return Err(DtmfError::GapLengthOutOfRange {
                ms: self.gap_ms,
                max_ms: MAX_GAP_MS,
            });
        }
        if !(MIN_LEVEL_DBFS..=MAX_LEVEL_DBFS).contains(&self.level_dbfs) {
            return Err(DtmfError::LevelOutOfRange {
                dbfs: self.level_dbfs,
                min_dbfs: MIN_LEVEL_DBFS,
                max_dbfs: MAX_LEVEL_DBFS,
            });
        }
        Ok(())
    }
}

/// Renders `keys` (e.g. `"0123*#ABCD"`) as samples in -1.0..=1.0.
pub fn synthesize_f32(keys: &str, config: &SynthConfig) -> Result<Vec<f32>, DtmfError> {
    config.validate()?;
    let digits = parse_digits(keys)?;
    let rate = config.sample_rate_hz as f64;
    let tone_len = ms_to_samples(config.tone_ms, rate).max(1);
    let gap_len = ms_to_samples(config.gap_ms, rate);
    let amplitude = 10f64.powf(config.level_dbfs / 20.0);

    let mut out = Vec::with_capacity(digits.len() * (tone_len + gap_len));
    for digit in digits {
        let low_step = TAU * digit.low_hz() as f64 / rate;
        let high_step = TAU * digit.high_hz() as f64 / rate;
        out.extend((0..tone_len).map(|n| {
            let n = n as f64;
            (amplitude * ((low_step * n).sin() + (high_step * n).sin())) as f32
        }));
        out.resize(out.len() + gap_len, 0.0);
    }
    Ok(out)
}

/// Renders `keys` as signed 16-bit PCM (full scale 32767).
pub fn synthesize_i16(keys: &str, config: &SynthConfig) -> Result<Vec<i16>, DtmfError> {
    Ok(synthesize_f32(keys, config)?
        .into_iter()
        .map(|x| (x * 32767.0).round() as i16)
        .collect())
}

fn ms_to_samples(ms: f64, rate_hz: f64) -> usize {
    (ms * rate_hz / 1000.0).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::Digit;

    fn config(rate: u32) -> SynthConfig {
        SynthConfig {
            sample_rate_hz: rate,
            ..SynthConfig::default()
        }
    }

    #[test]
    fn length_is_tone_plus_gap_per_digit_at_each_rate() {
        for rate in [8_000, 16_000, 44_100, 48_000] {
            let pcm = synthesize_f32("12#", &config(rate)).unwrap();
            let per_digit = (0.070 * rate as f64).round() as usize * 2;
            assert_eq!(pcm.len(), 3 * per_digit, "rate {rate}");
        }
    }

    #[test]
    fn tone_holds_both_frequencies_at_the_requested_level() {
        // Correlate one tone against each nominal frequency: each should carry
        // amplitude 10^(-10/20), and a frequency that is not in the key none.
        let cfg = config(16_000);
        let pcm = synthesize_f32("9", &cfg).unwrap();
        let tone_len = (0.070 * 16_000.0) as usize;
        let amplitude_at = |hz: f64| {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, &x) in pcm[..tone_len].iter().enumerate() {
                let phase = TAU * hz * n as f64 / 16_000.0;
                re += x as f64 * phase.cos();
                im += x as f64 * phase.sin();
            }
            2.0 * (re * re + im * im).sqrt() / tone_len as f64
        };
        let digit = Digit::from_char('9').unwrap();
        let expected = 10f64.powf(-10.0 / 20.0);
        assert!((amplitude_at(digit.low_hz() as f64) - expected).abs() < 0.01);
        assert!((amplitude_at(digit.high_hz() as f64) - expected).abs() < 0.01);
        assert!(amplitude_at(1209.0) < 0.01);
        assert!(pcm[tone_len..].iter().all(|&x| x == 0.0), "gap is silent");
    }

    #[test]
    fn i16_matches_f32_scaled_to_full_scale() {
        let cfg = config(8_000);
        let f = synthesize_f32("5A", &cfg).unwrap();
        let i = synthesize_i16("5A", &cfg).unwrap();
        assert_eq!(f.len(), i.len());
        for (a, b) in f.iter().zip(&i) {
            assert!((a * 32767.0 - *b as f32).abs() <= 0.5);
        }
    }

    #[test]
    fn lowercase_letters_are_accepted() {
        let cfg = config(8_000);
        assert_eq!(
            synthesize_f32("abcd", &cfg).unwrap(),
            synthesize_f32("ABCD", &cfg).unwrap()
        );
    }

    #[test]
    fn unknown_digit_reports_character_and_position() {
        let err = synthesize_f32("12x4", &config(8_000)).unwrap_err();
        assert_eq!(
            err,
            DtmfError::UnknownDigit {
                found: 'x',
                position: 2
            }
        );
    }

    #[test]
    fn bad_parameters_get_typed_errors() {
        let bad_rate = SynthConfig {
            sample_rate_hz: 0,
            ..config(8_000)
        };
        assert_eq!(
            synthesize_f32("1", &bad_rate),
            Err(DtmfError::SampleRateOutOfRange { hz: 0 })
        );
        let absurd_rate = SynthConfig {
            sample_rate_hz: 10_000_000,
            ..config(8_000)
        };
        assert!(matches!(
            synthesize_i16("1", &absurd_rate),
            Err(DtmfError::SampleRateOutOfRange { hz: 10_000_000 })
        ));
        for tone_ms in [0.0, -5.0, f64::NAN, 60_000.0] {
            let cfg = SynthConfig {
                tone_ms,
                ..config(8_000)
            };
            assert!(matches!(
                synthesize_f32("1", &cfg),
                Err(DtmfError::ToneLengthOutOfRange { .. })
            ));
        }
        for gap_ms in [-1.0, f64::INFINITY] {
            let cfg = SynthConfig {
                gap_ms,
                ..config(8_000)
            };
            assert!(matches!(
                synthesize_f32("1", &cfg),
                Err(DtmfError::GapLengthOutOfRange { .. })
            ));
        }
        for level_dbfs in [0.0, -3.0, -200.0, f64::NAN] {
            let cfg = SynthConfig {
                level_dbfs,
                ..config(8_000)
            };
            assert!(matches!(
                synthesize_f32("1", &cfg),
                Err(DtmfError::LevelOutOfRange { .. })
            ));
        }
    }

    #[test]
    fn loudest_allowed_level_does_not_clip_i16() {
        let cfg = SynthConfig {
            level_dbfs: MAX_LEVEL_DBFS,
            ..config(48_000)
        };
        let pcm = synthesize_f32("D", &cfg).unwrap();
        assert!(pcm.iter().all(|x| x.abs() <= 1.0));
    }
}
