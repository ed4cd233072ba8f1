//! Knock detection on generated accelerometer traces (fixed seeds): knocks
//! found once each with their timing error, nothing found in walking, hand
//! gestures, shaking or a phone set down on a table.

mod bump_support;

use bump_support::*;
use clink_core::bump::{AccelSample, KnockDetector, KnockEvent, detect_knocks};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TRACES: usize = 40;
const TRACE_MS: f64 = 4_000.0;
const KNOCK_AT_MS: f64 = 2_500.0;
/// The phone's wall clock, ahead of server time by a random amount.
const CLOCK_BASE_MS: f64 = 1_700_000_000_000.0;

struct Timing {
    errors_ms: Vec<f64>,
}

impl Timing {
    fn mean_abs(&self) -> f64 {
        self.errors_ms.iter().map(|e| e.abs()).sum::<f64>() / self.errors_ms.len() as f64
    }
    fn max_abs(&self) -> f64 {
        self.errors_ms.iter().fold(0.0, |m, e| m.max(e.abs()))
    }
}

/// `TRACES` knocks at `rate_hz` (15 % jitter), each in its own trace with
/// hand motion (and walking if asked); every trace must give exactly one
/// knock. Returns the instant errors against the middle of contact.
fn knock_timing(rate_hz: f64, walk: bool, seed: u64) -> Timing {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut errors_ms = Vec::new();
    for trial in 0..TRACES {
        let mut motion = held(&mut rng);
        if walk {
            walking(&mut rng, &mut motion);
        }
        gestures(&mut rng, &mut motion, 0.0, KNOCK_AT_MS - 600.0);
        let collision = Collision::random(&mut rng, KNOCK_AT_MS);
        let mass_g = rng.gen_range(140.0..230.0);
        collision.add_to(&mut rng, &mut motion, mass_g);
        let clock_ms = CLOCK_BASE_MS + rng.gen_range(-5_000.0..5_000.0);
        let samples = Sensor::new(rate_hz).sample(&motion, 0.0, TRACE_MS, clock_ms, &mut rng);
        // The wallet's offset: server time minus phone time.
        let offset_ms = -clock_ms.round() as i64;
        let knocks = detect_knocks(&samples, offset_ms).unwrap();
        assert_eq!(
            knocks.len(),
            1,
            "trial {trial} at {rate_hz} Hz: expected one knock, got {knocks:?}"
        );
        let knock = knocks[0];
        let error_ms = knock.device_instant_ms - clock_ms - collision.instant_ms();
        // The server-time instant is the same up to rounding of the offset.
        let server_error_ms = knock.instant_ms as f64 - collision.instant_ms();
        assert!((server_error_ms - error_ms).abs() <= 1.0);
        errors_ms.push(error_ms);
    }
    Timing { errors_ms }
}

fn check_timing(rate_hz: f64, walk: bool, seed: u64, max_mean_ms: f64, max_worst_ms: f64) {
    let timing = knock_timing(rate_hz, walk, seed);
    println!(
        "{rate_hz} Hz{}: {TRACES}/{TRACES} knocks, instant error mean |e| {:.2} ms, max {:.2} ms",
        if walk { " walking" } else { "" },
        timing.mean_abs(),
        timing.max_abs()
    );
    assert!(timing.mean_abs() < max_mean_ms, "{}", timing.mean_abs());
    assert!(timing.max_abs() < max_worst_ms, "{}", timing.max_abs());
}

#[test]
fn detects_40_knocks_at_50hz_with_15pct_jitter_within_8ms() {
    check_timing(50.0, false, 50, 3.5, 8.0);
}

#[test]
fn detects_40_knocks_at_100hz_with_15pct_jitter_within_4ms() {
    check_timing(100.0, false, 100, 2.0, 4.0);
}

#[test]
fn detects_40_knocks_at_200hz_with_15pct_jitter_within_3ms() {
    check_timing(200.0, false, 200, 1.5, 3.0);
}

#[test]
fn detects_40_knocks_at_500hz_with_15pct_jitter_within_3ms() {
    check_timing(500.0, false, 500, 1.5, 3.0);
}

#[test]
fn detects_40_knocks_while_walking_at_100hz_within_4ms() {
    check_timing(100.0, true, 101, 2.0, 4.0);
}

/// Runs `TRACES` ten-second traces of a motion at each rate and asserts
/// that no knock is reported.
fn assert_no_knocks(what: &str, seed: u64, make: impl Fn(&mut ChaCha8Rng) -> Motion) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for rate_hz in [50.0, 100.0, 200.0, 500.0] {
        for trial in 0..TRACES / 4 {
            let motion = make(&mut rng);
            let samples = Sensor::new(rate_hz).sample(&motion, 0.0, 10_000.0, 0.0, &mut rng);
            let knocks = detect_knocks(&samples, 0).unwrap();
            assert!(
                knocks.is_empty(),
                "{what}, trial {trial} at {rate_hz} Hz: false knocks {knocks:?}"
            );
        }
    }
}

#[test]
fn no_knocks_from_walking() {
    assert_no_knocks("walking", 1, |rng| {
        let mut motion = held(rng);
        walking(rng, &mut motion);
        motion
    });
}

#[test]
fn no_knocks_from_hand_gestures_while_walking() {
    assert_no_knocks("gestures", 2, |rng| {
        let mut motion = held(rng);
        walking(rng, &mut motion);
        gestures(rng, &mut motion, 0.0, 10_000.0);
        motion
    });
}

#[test]
fn no_knocks_from_shaking_up_to_3g() {
    assert_no_knocks("shaking", 3, |rng| {
        let mut motion = held(rng);
        motion.parts.push(Part::Shake {
            direction: random_unit(rng),
            amplitude: rng.gen_range(10.0..30.0),
            hz: rng.gen_range(3.0..8.0),
            from_ms: rng.gen_range(1_000.0..3_000.0),
            to_ms: rng.gen_range(6_000.0..9_000.0),
        });
        motion
    });
}

#[test]
fn no_knocks_from_a_phone_set_down_on_a_table_with_up_to_40mps2_impact() {
    assert_no_knocks("table", 4, |rng| {
        let set_down_ms = rng.gen_range(4_000.0..7_000.0);
        // Held and moved about, lowered, then flat and still on the table.
        let mut motion = Motion {
            parts: vec![Part::LoweredGravity {
                pitch: rng.gen_range(0.3..1.0),
                roll: rng.gen_range(-0.4..0.4),
                from_ms: set_down_ms - 500.0,
                to_ms: set_down_ms,
            }],
        };
        gestures(rng, &mut motion, 0.0, set_down_ms - 700.0);
        motion.parts.push(Part::Reach {
            from_ms: set_down_ms - 600.0,
            width_ms: 600.0,
            peak: rng.gen_range(1.0..3.0),
            direction: [0.0, 0.0, -1.0],
        });
        motion.parts.push(Part::Impact {
            at_ms: set_down_ms,
            width_ms: rng.gen_range(2.0..5.0),
            peak: rng.gen_range(15.0..40.0),
            direction: [0.0, 0.0, 1.0],
            ring_hz: rng.gen_range(150.0..300.0),
            ring_fraction: 0.2,
            ring_tau_ms: 3.0,
        });
        motion
    });
}

#[test]
fn clock_offset_moves_the_instant_and_nothing_else() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut motion = held(&mut rng);
    Collision::random(&mut rng, KNOCK_AT_MS).add_to(&mut rng, &mut motion, 180.0);
    let samples = Sensor::new(200.0).sample(&motion, 0.0, TRACE_MS, CLOCK_BASE_MS, &mut rng);
    let a = detect_knocks(&samples, 0).unwrap();
    let b = detect_knocks(&samples, -1_234_567).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(b[0].instant_ms, a[0].instant_ms - 1_234_567);
    assert_eq!(b[0].impulse, a[0].impulse);
    assert_eq!(b[0].device_instant_ms, a[0].device_instant_ms);
}

#[test]
fn streaming_in_uneven_chunks_gives_the_same_knocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let mut motion = held(&mut rng);
    walking(&mut rng, &mut motion);
    for at in [1_500.0, 3_000.0, 6_000.0] {
        Collision::random(&mut rng, at).add_to(&mut rng, &mut motion, 180.0);
    }
    let samples = Sensor::new(100.0).sample(&motion, 0.0, 8_000.0, 0.0, &mut rng);
    let whole = detect_knocks(&samples, 0).unwrap();
    assert_eq!(whole.len(), 3, "{whole:?}");
    let mut detector = KnockDetector::new(0);
    let mut streamed: Vec<KnockEvent> = Vec::new();
    let mut rest: &[AccelSample] = &samples;
    while !rest.is_empty() {
        let n = rng.gen_range(1..40).min(rest.len());
        streamed.extend(detector.push(&rest[..n]).unwrap());
        rest = &rest[n..];
    }
    assert_eq!(streamed, whole);
}

#[test]
fn velocity_change_agrees_between_50hz_and_500hz_phones_within_40pct() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for trial in 0..20 {
        let collision = Collision::random(&mut rng, KNOCK_AT_MS);
        let mut motion = held(&mut rng);
        collision.add_to(&mut rng, &mut motion, 180.0);
        let dv = |rate: f64, rng: &mut ChaCha8Rng| {
            let samples = Sensor::new(rate).sample(&motion, 0.0, TRACE_MS, 0.0, rng);
            detect_knocks(&samples, 0).unwrap()[0].impulse.delta_v_mps
        };
        let (slow, fast) = (dv(50.0, &mut rng), dv(500.0, &mut rng));
        // Half-sine contact: area = peak × width × 2/π.
        let truth = collision.peak_180g * collision.width_ms / 1000.0 * 2.0 / std::f64::consts::PI;
        println!("trial {trial}: delta-v true {truth:.3}, 50 Hz {slow:.3}, 500 Hz {fast:.3} m/s");
        assert!((slow / fast - 1.0).abs() < 0.4, "{slow} vs {fast}");
    }
}

/// Knocks through a slow phone sensor (50 Hz, its own filter at 18 Hz)
/// while walking: the peak reads a fraction of the true one, near walking's.
/// A detector that also hears the microphone must still put forward a
/// candidate at each knock (clear, or faint for the microphone to confirm),
/// within ±12 ms; a detector without the microphone reports only clear ones.
#[test]
fn faint_knocks_through_a_50hz_sensor_filter_are_put_forward_for_the_microphone() {
    let mut rng = ChaCha8Rng::seed_from_u64(404);
    let (mut found, mut faint, mut clear_only) = (0, 0, 0);
    for trial in 0..TRACES {
        let mut motion = held(&mut rng);
        walking(&mut rng, &mut motion);
        gestures(&mut rng, &mut motion, 0.0, KNOCK_AT_MS - 600.0);
        let collision = Collision::random(&mut rng, KNOCK_AT_MS);
        let mass_g = rng.gen_range(140.0..230.0);
        collision.add_to(&mut rng, &mut motion, mass_g);
        let mut sensor = Sensor::new(50.0);
        sensor.bandwidth_hz = Some(18.0);
        let samples = sensor.sample(&motion, 0.0, TRACE_MS, 0.0, &mut rng);
        let near = |k: &KnockEvent| (k.device_instant_ms - collision.instant_ms()).abs() <= 12.0;
        let candidates = KnockDetector::with_faint_candidates(0)
            .push(&samples)
            .unwrap();
        match candidates.iter().find(|k| near(k)) {
            Some(k) => {
                found += 1;
                faint += usize::from(k.faint);
            }
            None => println!("trial {trial}: no candidate near the knock: {candidates:?}"),
        }
        let strict = detect_knocks(&samples, 0).unwrap();
        assert!(strict.iter().all(|k| !k.faint), "{strict:?}");
        clear_only += strict.iter().filter(|k| near(k)).count();
    }
    println!(
        "50 Hz, 18 Hz filter, walking: {found}/{TRACES} knocks put forward ({faint} faint), {clear_only} clear without the microphone"
    );
    assert!(found * 100 >= TRACES * 95, "{found}/{TRACES}");
}
