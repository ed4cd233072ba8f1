//! Ambient fingerprints on the recorded two-phone scenes: micA and micB of one
//! scene (30 cm apart) score at least the threshold, different scenes and
//! different moments of one scene below it, with ±30 ms misalignment and a
//! different microphone on one phone, at 16, 44.1 and 48 kHz. The quiet room
//! (at the microphones' noise floor) is reported but cannot match.

mod bump_support;

use bump_support::*;
use clink_core::bump::fingerprint::{
    AUDIO_AFTER_KNOCK_MS, AUDIO_BEFORE_KNOCK_MS, SAME_ROOM_THRESHOLD,
};
use clink_core::bump::{AmbientFingerprint, FingerprintExtractor};

const CLIP_MS: u32 = AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS;
/// Knock instants within the 8 s recordings (each clip starts 1.6 s earlier).
const KNOCKS_MS: [u32; 4] = [1_700, 3_400, 5_100, 6_800];
/// Misalignment of phone B's clip against phone A's.
const SHIFTS_MS: [f64; 3] = [-30.0, 0.0, 30.0];
/// The scene near the phones' noise floor.
const QUIET_SCENE: &str = "quiet_room";

struct Scores {
    same_room: Vec<(String, f32)>,
    other_room: Vec<(String, f32)>,
    other_moment: Vec<(String, f32)>,
}

fn clip(audio: &[f32], rate: u32, knock_ms: u32) -> &[f32] {
    let start = ((knock_ms - AUDIO_BEFORE_KNOCK_MS) * rate / 1000) as usize;
    &audio[start..start + (CLIP_MS * rate / 1000) as usize]
}

fn scores_at(rate: u32) -> Scores {
    let scenes: Vec<(String, Vec<f32>, Vec<f32>)> = ambient_scenes()
        .into_iter()
        .map(|(name, a, b)| {
            let a = resample(&a, TESTDATA_RATE_HZ, rate);
            // Phone B: another microphone (high-pass at 250 Hz, -10 dB).
            let b = other_microphone(&resample(&b, TESTDATA_RATE_HZ, rate), rate, 250.0, 0.3);
            (name, a, b)
        })
        .collect();
    let mut extractor = FingerprintExtractor::new(rate).unwrap();
    // fps_a[scene][knock], fps_b[scene][knock][shift]
    let fps_a: Vec<Vec<AmbientFingerprint>> = scenes
        .iter()
        .map(|(_, a, _)| {
            KNOCKS_MS
                .iter()
                .map(|&k| extractor.fingerprint(clip(a, rate, k)).unwrap())
                .collect()
        })
        .collect();
    let fps_b: Vec<Vec<Vec<AmbientFingerprint>>> = scenes
        .iter()
        .map(|(_, _, b)| {
            KNOCKS_MS
                .iter()
                .map(|&k| {
                    SHIFTS_MS
                        .iter()
                        .map(|&shift| {
                            let moved = shifted(b, rate, shift);
                            extractor.fingerprint(clip(&moved, rate, k)).unwrap()
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut scores = Scores {
        same_room: vec![],
        other_room: vec![],
        other_moment: vec![],
    };
    for (i, (name_i, _, _)) in scenes.iter().enumerate() {
        for (j, (name_j, _, _)) in scenes.iter().enumerate() {
            for (ka, fa) in fps_a[i].iter().enumerate() {
                for (kb, fbs) in fps_b[j].iter().enumerate() {
                    for (fb, shift) in fbs.iter().zip(SHIFTS_MS) {
                        let score = fa.similarity(fb);
                        let label = format!("{name_i}@{ka} vs {name_j}@{kb} {shift:+} ms");
                        match (i == j, ka == kb) {
                            (true, true) => scores.same_room.push((label, score)),
                            (true, false) => scores.other_moment.push((label, score)),
                            (false, _) => scores.other_room.push((label, score)),
                        }
                    }
                }
            }
        }
    }
    scores
}

fn summary(name: &str, scores: &[(String, f32)]) -> (f32, f32) {
    let mut values: Vec<f32> = scores.iter().map(|(_, s)| *s).collect();
    values.sort_by(f32::total_cmp);
    let pick = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {name:<13} n={:<4} min {:.3}  p10 {:.3}  median {:.3}  p90 {:.3}  max {:.3}",
        values.len(),
        pick(0.0),
        pick(0.1),
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
    (pick(0.0), pick(1.0))
}

fn check(rate: u32) {
    let scores = scores_at(rate);
    println!("fingerprint similarity at {rate} Hz (threshold {SAME_ROOM_THRESHOLD}):");
    let mut per_scene: Vec<(String, f32)> = Vec::new();
    for (label, score) in &scores.same_room {
        let scene = label.split('@').next().unwrap().to_string();
        match per_scene.iter_mut().find(|(s, _)| *s == scene) {
            Some((_, lowest)) => *lowest = lowest.min(*score),
            None => per_scene.push((scene, *score)),
        }
    }
    for (scene, lowest) in &per_scene {
        println!("    same room, lowest for {scene}: {lowest:.3}");
    }
    // quiet_room is at the phones' noise floor: each phone hears mostly its
    // own self-noise, so the fingerprint cannot tell that the phones are
    // together and that pair is left unmatched (never matched wrongly).
    let audible: Vec<(String, f32)> = scores
        .same_room
        .iter()
        .filter(|(label, _)| !label.starts_with(QUIET_SCENE))
        .cloned()
        .collect();
    let (same_min, _) = summary("same room", &audible);
    let (_, other_max) = summary("other room", &scores.other_room);
    let (_, moment_max) = summary("other moment", &scores.other_moment);
    let worst_same = audible.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert!(
        same_min >= SAME_ROOM_THRESHOLD,
        "same room scored below the threshold: {worst_same:?}"
    );
    assert!(
        other_max < SAME_ROOM_THRESHOLD,
        "different rooms scored as same"
    );
    assert!(
        moment_max < SAME_ROOM_THRESHOLD,
        "different moments scored as same"
    );
}

#[test]
fn audible_scenes_match_others_do_not_with_30ms_shifts_and_other_mic_at_16khz() {
    check(16_000);
}

#[test]
fn audible_scenes_match_others_do_not_with_30ms_shifts_and_other_mic_at_44_1khz() {
    check(44_100);
}

#[test]
fn audible_scenes_match_others_do_not_with_30ms_shifts_and_other_mic_at_48khz() {
    check(48_000);
}

#[test]
fn audible_scenes_match_across_rates_16khz_vs_48khz() {
    let scenes = ambient_scenes();
    let mut at_48 = FingerprintExtractor::new(48_000).unwrap();
    let mut at_16 = FingerprintExtractor::new(16_000).unwrap();
    for (name, a, b) in scenes.iter().filter(|(name, _, _)| name != QUIET_SCENE) {
        let b16 = resample(b, TESTDATA_RATE_HZ, 16_000);
        for &k in &KNOCKS_MS {
            let fa = at_48.fingerprint(clip(a, 48_000, k)).unwrap();
            let fb = at_16.fingerprint(clip(&b16, 16_000, k)).unwrap();
            let score = fa.similarity(&fb);
            println!("{name} knock at {k} ms: 48 kHz vs 16 kHz {score:.3}");
            assert!(score >= SAME_ROOM_THRESHOLD, "{name} at {k} ms: {score}");
        }
    }
}

#[test]
fn fingerprint_round_trips_through_bytes_and_fits_512_bytes() {
    let (_, a, _) = &ambient_scenes()[0];
    let fp =
        clink_core::bump::fingerprint::fingerprint_audio(clip(a, 48_000, KNOCKS_MS[0]), 48_000)
            .unwrap();
    let bytes = fp.to_bytes();
    assert!(bytes.len() <= 512, "{}", bytes.len());
    assert_eq!(AmbientFingerprint::from_bytes(&bytes).unwrap(), fp);
}
