use super::super::{DtmfDetector, SynthConfig, synthesize_f32, synthesize_i16};
use super::{decode, events};
use crate::dtmf::test_signals::rng;
use rand::Rng;

const ALL_KEYS: &str = "123A456B789C*0#D";

#[test]
fn detects_all_16_digits_at_8_16_44k1_and_48khz() {
    for rate in [8_000, 16_000, 44_100, 48_000] {
        let config = SynthConfig {
            sample_rate_hz: rate,
            tone_ms: 50.0,
            gap_ms: 50.0,
            level_dbfs: -12.0,
        };
        let pcm = synthesize_f32(ALL_KEYS, &config).unwrap();
        assert_eq!(decode(&pcm, rate), ALL_KEYS, "at {rate} Hz");
    }
}

#[test]
fn detects_all_16_digits_from_i16_at_44k1() {
    let config = SynthConfig {
        sample_rate_hz: 44_100,
        ..SynthConfig::default()
    };
    let pcm = synthesize_i16(ALL_KEYS, &config).unwrap();
    let mut detector = DtmfDetector::new(44_100).unwrap();
    let mut found = detector.push_i16(&pcm);
    found.extend(detector.finish());
    let keys: String = found.iter().map(|e| e.digit.as_char()).collect();
    assert_eq!(keys, ALL_KEYS);
}

#[test]
fn events_report_where_each_tone_was_to_within_one_hop() {
    for rate in [8_000, 48_000] {
        let config = SynthConfig {
            sample_rate_hz: rate,
            tone_ms: 60.0,
            gap_ms: 45.0,
            level_dbfs: -20.0,
        };
        let lead_in = (0.030 * rate as f64) as usize;
        let mut pcm = vec![0.0; lead_in];
        pcm.extend(synthesize_f32("159D", &config).unwrap());
        let found = events(&pcm, rate);
        assert_eq!(found.len(), 4);
        let tone = (0.060 * rate as f64) as i64;
        let period = (0.105 * rate as f64) as i64;
        let hop = (0.005 * rate as f64) as i64;
        for (i, event) in found.iter().enumerate() {
            let start = lead_in as i64 + i as i64 * period;
            assert!(
                (event.start_sample as i64 - start).abs() <= hop,
                "{event:?} at {rate} Hz"
            );
            assert!(
                (event.end_sample as i64 - (start + tone)).abs() <= hop,
                "{event:?} at {rate} Hz"
            );
        }
    }
}

#[test]
fn digits_are_reported_as_they_end_not_at_the_end_of_the_stream() {
    let config = SynthConfig::default();
    let pcm = synthesize_f32("7", &config).unwrap();
    let mut detector = DtmfDetector::new(8_000).unwrap();
    // 70 ms tone then 70 ms of silence: the digit must come out before finish().
    let found = detector.push_f32(&pcm);
    assert_eq!(found.len(), 1);
    assert!(detector.finish().is_empty());
}

#[test]
fn chunk_size_does_not_change_events() {
    for rate in [8_000, 44_100] {
        let config = SynthConfig {
            sample_rate_hz: rate,
            tone_ms: 45.0,
            gap_ms: 45.0,
            level_dbfs: -15.0,
        };
        let pcm = synthesize_f32("0123456789*#ABCD", &config).unwrap();
        let whole = events(&pcm, rate);
        assert_eq!(whole.len(), 16);
        let mut random = rng(7);
        // 1 sample, sizes that divide no hop (40 / 220 samples), and random.
        for plan in [vec![1], vec![3], vec![37], vec![1001], vec![]] {
            let mut detector = DtmfDetector::new(rate).unwrap();
            let mut found = Vec::new();
            let mut rest = &pcm[..];
            let mut turn = 0;
            while !rest.is_empty() {
                let size = if plan.is_empty() {
                    random.gen_range(1..500)
                } else {
                    plan[turn % plan.len()]
                };
                let (now, later) = rest.split_at(size.min(rest.len()));
                found.extend(detector.push_f32(now));
                rest = later;
                turn += 1;
            }
            found.extend(detector.finish());
            assert_eq!(found, whole, "chunks {plan:?} at {rate} Hz");
        }
    }
}

#[test]
fn finish_reports_a_tone_running_to_the_end_and_resets() {
    let config = SynthConfig {
        gap_ms: 0.0,
        ..SynthConfig::default()
    };
    let pcm = synthesize_f32("#", &config).unwrap();
    let mut detector = DtmfDetector::new(8_000).unwrap();
    assert!(detector.push_f32(&pcm).is_empty(), "tone has not ended yet");
    let found = detector.finish();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digit.as_char(), '#');
    // A new stream starts counting samples from zero again.
    let again = detector.push_f32(&pcm);
    assert!(again.is_empty());
    assert_eq!(detector.finish()[0].start_sample, found[0].start_sample);
}

#[test]
fn silence_and_very_quiet_tones_give_nothing() {
    assert!(events(&vec![0.0; 16_000], 8_000).is_empty());
    let config = SynthConfig {
        level_dbfs: -60.0,
        ..SynthConfig::default()
    };
    let pcm = synthesize_f32("123", &config).unwrap();
    assert!(events(&pcm, 8_000).is_empty());
}

#[test]
fn a_key_held_for_3s_is_one_digit_ending_at_3s() {
    let rate = 16_000;
    let config = SynthConfig {
        sample_rate_hz: rate,
        tone_ms: 3_000.0,
        gap_ms: 100.0,
        level_dbfs: -20.0,
    };
    let pcm = synthesize_f32("8", &config).unwrap();
    let found = events(&pcm, rate);
    assert_eq!(found.len(), 1);
    let hop = (0.005 * rate as f64) as i64;
    assert!(
        (found[0].end_sample as i64 - 3 * rate as i64).abs() <= hop,
        "{:?}",
        found[0]
    );
}

#[test]
fn non_finite_samples_do_not_panic_and_detection_recovers() {
    let config = SynthConfig::default();
    let mut pcm = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30];
    pcm.extend(vec![0.0; 400]);
    pcm.extend(synthesize_f32("42", &config).unwrap());
    assert_eq!(decode(&pcm, 8_000), "42");
}

#[test]
fn level_does_not_matter_from_minus_45_to_minus_6_dbfs_per_tone() {
    for level_dbfs in [-45.0, -30.0, -20.0, -10.0, -6.03] {
        let config = SynthConfig {
            level_dbfs,
            tone_ms: 45.0,
            gap_ms: 45.0,
            ..SynthConfig::default()
        };
        let pcm = synthesize_f32(ALL_KEYS, &config).unwrap();
        assert_eq!(decode(&pcm, 8_000), ALL_KEYS, "at {level_dbfs} dBFS");
    }
}
