//! Crowd simulation: 1,000 bump pairs within the same 10 seconds and the
//! same city block, through the phone side (knock detector, fingerprint)
//! and the matcher. At least 99 % of pairs must be matched correctly and
//! none wrongly.
//!
//! Each pair stands in a room: most rooms hold one pair, a few shops hold
//! several (their pairs hear the same sound). A room's sound is a bed from
//! one shared ambient recording plus a collage of short snippets of the
//! recordings placed at the room's own times; phone A hears the micA
//! recordings, phone B the micB ones (30 cm away), each through its own gain
//! and self-noise. Each phone has its own accelerometer rate (50–500 Hz,
//! jittered), clock error (±30 ms after offset correction), audio/sensor
//! misalignment (±20 ms), mass, GPS error, and hand motion (some walk).

#[path = "../../core/tests/bump_support/mod.rs"]
mod bump_support;

use bump_support::*;
use clink_core::bump::fingerprint::{AUDIO_AFTER_KNOCK_MS, AUDIO_BEFORE_KNOCK_MS};
use clink_core::bump::{FingerprintExtractor, KnockDetector};
use clink_core::wire::{BumpReport, BumpRole, CoarseLocation};
use clink_server::matching::{MatchOutcome, Matcher, MatcherConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PAIRS: usize = 1_000;
const SPAN_MS: f64 = 10_000.0;
const RATE_HZ: u32 = 16_000;
const SHOPS: usize = 15;
const PAIRS_PER_SHOP: usize = 4;
const CLOCK_ERROR_MS: f64 = 30.0;
const AUDIO_MISALIGNMENT_MS: f64 = 20.0;
const BLOCK_M: f64 = 100.0;
const BLOCK_LAT_DEG: f64 = 35.6812;
const BLOCK_LON_DEG: f64 = 139.7671;
const METRES_PER_DEG_LAT: f64 = 111_195.0;
/// Accelerometer rates phones use.
const SENSOR_RATES_HZ: [f64; 5] = [50.0, 100.0, 200.0, 400.0, 500.0];

/// A short piece of one recording, placed in a room's timeline.
struct Snippet {
    at_ms: f64,
    scene: usize,
    source_ms: f64,
    length_ms: f64,
    gain: f32,
}

struct Room {
    bed_scene: usize,
    bed_offset_ms: f64,
    bed_gain: f32,
    snippets: Vec<Snippet>,
}

impl Room {
    fn random(rng: &mut ChaCha8Rng, scenes: usize) -> Room {
        let mut snippets = Vec::new();
        let mut at_ms = -3_000.0;
        while at_ms < SPAN_MS + 2_000.0 {
            let length_ms = rng.gen_range(150.0..600.0);
            snippets.push(Snippet {
                at_ms,
                scene: rng.gen_range(0..scenes),
                source_ms: rng.gen_range(0.0..7_000.0),
                length_ms,
                gain: rng.gen_range(0.5..2.0),
            });
            at_ms += rng.gen_range(50.0..400.0);
        }
        Room {
            bed_scene: rng.gen_range(0..scenes),
            bed_offset_ms: rng.gen_range(0.0..8_000.0),
            bed_gain: rng.gen_range(0.2..0.5),
            snippets,
        }
    }

    /// What a phone at `mic` (0: A, 1: B) hears from `start_ms` on.
    fn audio(&self, beds: &[[Vec<f32>; 2]], mic: usize, start_ms: f64, len: usize) -> Vec<f32> {
        let per_ms = f64::from(RATE_HZ) / 1000.0;
        let bed = &beds[self.bed_scene][mic];
        let first =
            ((start_ms + self.bed_offset_ms) * per_ms).rem_euclid(bed.len() as f64) as usize;
        let mut out: Vec<f32> = bed
            .iter()
            .cycle()
            .skip(first)
            .take(len)
            .map(|s| s * self.bed_gain)
            .collect();
        let end_ms = start_ms + len as f64 / per_ms;
        for s in &self.snippets {
            if s.at_ms + s.length_ms <= start_ms || s.at_ms >= end_ms {
                continue;
            }
            let source = &beds[s.scene][mic];
            let n = (s.length_ms * per_ms) as usize;
            let fade = (0.01 * f64::from(RATE_HZ)) as usize; // 10 ms ramps
            let at = ((s.at_ms - start_ms) * per_ms).round() as isize;
            let from = (s.source_ms * per_ms) as usize;
            for i in 0..n {
                let j = at + i as isize;
                if j < 0 || j as usize >= len {
                    continue;
                }
                let ramp = (i.min(n - 1 - i) as f32 / fade as f32).min(1.0);
                out[j as usize] += s.gain * ramp * source[from + i];
            }
        }
        out
    }
}

struct Phone {
    report: BumpReport,
}

/// Simulates one phone of a pair through the detector and fingerprint.
#[allow(clippy::too_many_arguments)]
fn phone(
    rng: &mut ChaCha8Rng,
    role: BumpRole,
    collision: &Collision,
    room: &Room,
    mic: usize,
    beds: &[[Vec<f32>; 2]],
    extractor: &mut FingerprintExtractor,
    position_m: (f64, f64),
) -> Option<Phone> {
    // Motion around the knock: held, maybe walking, gestures before it.
    let mut motion = held(rng);
    if rng.gen_bool(0.3) {
        walking(rng, &mut motion);
    }
    gestures(
        rng,
        &mut motion,
        collision.at_ms - 1_200.0,
        collision.at_ms - 300.0,
    );
    let mass_g = rng.gen_range(140.0..230.0);
    collision.add_to(rng, &mut motion, mass_g);
    let mut sensor = Sensor::new(SENSOR_RATES_HZ[rng.gen_range(0..SENSOR_RATES_HZ.len())]);
    sensor.grid_step_ms = 0.5;
    // The phone's clock: far off, corrected by the wallet's offset up to a
    // residual of ±30 ms.
    let clock_ms = rng.gen_range(-5_000.0..5_000.0);
    let residual_ms = rng.gen_range(-CLOCK_ERROR_MS..CLOCK_ERROR_MS);
    let offset_ms = -(clock_ms + residual_ms).round() as i64;
    let start_ms = collision.at_ms - 1_000.0;
    let samples = sensor.sample(&motion, start_ms, 1_600.0, clock_ms, rng);
    let knock = *KnockDetector::new(offset_ms).push(&samples).ok()?.first()?;

    // Audio cut around the knock as the phone places it in its audio stream.
    let knock_true_ms = knock.device_instant_ms - clock_ms;
    let audio_start_ms = knock_true_ms - f64::from(AUDIO_BEFORE_KNOCK_MS)
        + rng.gen_range(-AUDIO_MISALIGNMENT_MS..AUDIO_MISALIGNMENT_MS);
    let len = ((AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS) * RATE_HZ / 1000) as usize;
    let gain = rng.gen_range(0.2..3.0f32);
    let self_noise = 0.002 * rng.gen_range(0.5..2.0f32);
    let audio: Vec<f32> = room
        .audio(beds, mic, audio_start_ms, len)
        .into_iter()
        .map(|s| gain * (s + self_noise * gaussian(rng) as f32))
        .collect();
    let fingerprint = extractor.fingerprint(&audio).ok()?.to_bytes();

    let location = rng.gen_bool(0.9).then(|| {
        let accuracy_m = rng.gen_range(5.0..30.0);
        let north = position_m.0 + accuracy_m * gaussian(rng);
        let east = position_m.1 + accuracy_m * gaussian(rng);
        CoarseLocation {
            lat_deg: BLOCK_LAT_DEG + north / METRES_PER_DEG_LAT,
            lon_deg: BLOCK_LON_DEG + east / (METRES_PER_DEG_LAT * BLOCK_LAT_DEG.to_radians().cos()),
            accuracy_m: accuracy_m as f32,
        }
    });
    Some(Phone {
        report: BumpReport {
            role,
            amount: (role == BumpRole::Payee).then(|| rng.gen_range(100..10_000)),
            instant_ms: knock.instant_ms,
            impulse: knock.impulse,
            fingerprint,
            location,
        },
    })
}

#[test]
fn crowd_of_1000_pairs_in_10_seconds_in_one_block_matches_99pct_and_none_wrongly() {
    let scenes = ambient_scenes();
    // Every recording at 16 kHz and the same RMS level.
    let beds: Vec<[Vec<f32>; 2]> = scenes
        .iter()
        .map(|(_, a, b)| {
            let level = |x: &[f32]| (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt();
            let a = resample(a, TESTDATA_RATE_HZ, RATE_HZ);
            let b = resample(b, TESTDATA_RATE_HZ, RATE_HZ);
            let scale = 0.05 / level(&a);
            [
                a.iter().map(|s| s * scale).collect(),
                b.iter().map(|s| s * scale).collect(),
            ]
        })
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let shops: Vec<Room> = (0..SHOPS)
        .map(|_| Room::random(&mut rng, beds.len()))
        .collect();
    let mut extractor = FingerprintExtractor::new(RATE_HZ).unwrap();
    // (arrival time, id, report); payee of pair i is 2i, its payer 2i + 1.
    let mut arrivals: Vec<(i64, u64, BumpReport)> = Vec::new();
    let mut lost = 0;
    for pair in 0..PAIRS {
        let own_room;
        let room = if pair < SHOPS * PAIRS_PER_SHOP {
            &shops[pair % SHOPS]
        } else {
            own_room = Room::random(&mut rng, beds.len());
            &own_room
        };
        let at_ms = rng.gen_range(0.0..SPAN_MS);
        let collision = Collision::random(&mut rng, at_ms);
        let position_m = (rng.gen_range(0.0..BLOCK_M), rng.gen_range(0.0..BLOCK_M));
        let (payee_mic, payer_mic) = if rng.gen_bool(0.5) { (0, 1) } else { (1, 0) };
        for (role, mic, id) in [
            (BumpRole::Payee, payee_mic, 2 * pair as u64),
            (BumpRole::Payer, payer_mic, 2 * pair as u64 + 1),
        ] {
            let ctx = &mut extractor;
            match phone(
                &mut rng, role, &collision, room, mic, &beds, ctx, position_m,
            ) {
                Some(p) => {
                    // Knock reported after the detector's delay and the network.
                    let arrival = p.report.instant_ms + rng.gen_range(450..1_400);
                    arrivals.push((arrival, id, p.report));
                }
                None => lost += 1,
            }
        }
    }
    arrivals.sort_by_key(|(arrival, id, _)| (*arrival, *id));

    // True partners' fingerprint similarity, for the printout.
    let by_id: std::collections::HashMap<u64, &BumpReport> =
        arrivals.iter().map(|(_, id, r)| (*id, r)).collect();
    let fingerprint = |id: u64| {
        clink_core::bump::AmbientFingerprint::from_bytes(&by_id[&id].fingerprint).unwrap()
    };
    let mut partner_scores: Vec<f32> = (0..PAIRS as u64)
        .filter(|p| by_id.contains_key(&(2 * p)) && by_id.contains_key(&(2 * p + 1)))
        .map(|p| fingerprint(2 * p).similarity(&fingerprint(2 * p + 1)))
        .collect();
    partner_scores.sort_by(f32::total_cmp);

    let mut matcher = Matcher::new(MatcherConfig::default()).unwrap();
    let mut outcomes = Vec::new();
    for (arrival, id, report) in &arrivals {
        outcomes.extend(
            matcher
                .submit(*id, report, *arrival)
                .expect("report accepted"),
        );
    }
    outcomes.extend(matcher.expire(SPAN_MS as i64 + 60_000));
    assert_eq!(matcher.pending_count(), 0);

    let (mut correct, mut wrong, mut ambiguous, mut expired) = (0, 0, 0, 0);
    for outcome in &outcomes {
        match outcome {
            MatchOutcome::Matched {
                payer_id, payee_id, ..
            } => {
                if *payer_id == payee_id + 1 && payee_id % 2 == 0 {
                    correct += 1;
                } else {
                    wrong += 1;
                    println!("WRONG: payer {payer_id} with payee {payee_id}");
                }
            }
            MatchOutcome::Ambiguous { ids } => ambiguous += ids.len(),
            MatchOutcome::Expired { .. } => expired += 1,
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / PAIRS as f64;
    println!(
        "crowd: {PAIRS} pairs in {SPAN_MS} ms, {SHOPS} shops × {PAIRS_PER_SHOP} pairs, the rest alone"
    );
    println!(
        "  matched correctly {correct} ({:.1} %), wrongly {wrong} ({:.1} %)",
        pct(correct),
        pct(wrong)
    );
    println!(
        "  reports: {} submitted, {lost} phones without a knock or fingerprint, {ambiguous} told to bump again (ambiguous), {expired} expired",
        arrivals.len()
    );
    let q = |f: f64| partner_scores[((partner_scores.len() - 1) as f64 * f) as usize];
    println!(
        "  true partners' fingerprint similarity: min {:.3}, p1 {:.3}, median {:.3}",
        q(0.0),
        q(0.01),
        q(0.5)
    );
    assert_eq!(wrong, 0, "pairs matched wrongly");
    assert!(
        correct * 100 >= PAIRS * 99,
        "only {correct} of {PAIRS} matched"
    );
}
