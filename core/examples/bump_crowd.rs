//! Runs the phone's knock detector and fingerprint, and the server's
//! matching rules, over a bump crowd written by an independent generator
//! (one folder: `manifest.jsonl`, `accel/ID.csv`, `audio/ID.wav`), and writes
//! one prediction per phone for its scorer:
//!
//!     cargo run -p clink-core --example bump_crowd -- CROWD_DIR PREDICTIONS.jsonl
//!
//! It reads only what a phone has: each phone's accelerometer trace
//! (`t_ms,x,y,z`, gravity included, clock already corrected), its audio
//! (48 kHz mono float WAV starting at `audio_start_ms`), its role and its
//! location fix. Every other field of the manifest is ground truth and is
//! never read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use clink_core::bump::fingerprint::{AUDIO_AFTER_KNOCK_MS, AUDIO_BEFORE_KNOCK_MS};
use clink_core::bump::knock::REPORT_DELAY_MS;
use clink_core::bump::{AccelSample, FingerprintExtractor, KnockDetector, find_click};
use clink_core::wire::{BumpReport, BumpRole, CoarseLocation};
use clink_protocol::matching::{MatchOutcome, Matcher, MatcherConfig};
use serde::Deserialize;

/// The manifest fields a phone would know; the rest is never parsed.
#[derive(Deserialize)]
struct PhoneFields {
    phone_id: String,
    reported_role: String,
    accel_file: String,
    audio_file: String,
    audio_start_ms: f64,
    lat: Option<f64>,
    lon: Option<f64>,
    accuracy_m: Option<f64>,
}

struct Submitted {
    arrival_ms: i64,
    id: u64,
    report: BumpReport,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: bump_crowd CROWD_DIR PREDICTIONS.jsonl");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[1]);
    let phones = read_manifest(&dir.join("manifest.jsonl"));
    let mut extractors: HashMap<u32, FingerprintExtractor> = HashMap::new();
    let mut submitted = Vec::new();
    let (mut no_knock, mut no_fingerprint) = (0, 0);
    for (index, phone) in phones.iter().enumerate() {
        match report_of(&dir, phone, &mut extractors) {
            Ok(report) => {
                // Reported once the detector has judged the knock, then the
                // network: a spread of arrival delays, fixed per phone.
                let network_ms = 150 + (index as i64 * 7_919) % 600;
                let arrival_ms = report.instant_ms + REPORT_DELAY_MS as i64 + network_ms;
                submitted.push(Submitted {
                    arrival_ms,
                    id: index as u64,
                    report,
                });
            }
            Err(Missing::Knock) => no_knock += 1,
            Err(Missing::Fingerprint) => no_fingerprint += 1,
        }
    }
    submitted.sort_by_key(|s| (s.arrival_ms, s.id));
    if let Some(path) = std::env::var_os("CLINK_CROWD_EXPLAIN") {
        explain(&phones, &submitted, Path::new(&path));
    }

    let mut matcher = Matcher::new(MatcherConfig::default()).expect("default config is valid");
    let mut outcomes = Vec::new();
    let mut refused = 0;
    for s in &submitted {
        match matcher.submit(s.id, &s.report, s.arrival_ms) {
            Ok(decided) => outcomes.extend(decided),
            Err(e) => {
                refused += 1;
                eprintln!("{}: refused: {e}", phones[s.id as usize].phone_id);
            }
        }
    }
    let end_ms = submitted.last().map_or(0, |s| s.arrival_ms) + 60_000;
    outcomes.extend(matcher.expire(end_ms));

    let mut partner: HashMap<u64, u64> = HashMap::new();
    let mut bump_again = 0;
    for outcome in &outcomes {
        match outcome {
            MatchOutcome::Matched {
                payer_id, payee_id, ..
            } => {
                partner.insert(*payer_id, *payee_id);
                partner.insert(*payee_id, *payer_id);
            }
            MatchOutcome::Ambiguous { ids } => bump_again += ids.len(),
            MatchOutcome::Expired { .. } => {}
        }
    }
    let mut out = File::create(&args[2]).expect("predictions file can be created");
    for (index, phone) in phones.iter().enumerate() {
        let matched = partner
            .get(&(index as u64))
            .map(|p| phones[*p as usize].phone_id.clone());
        let line = serde_json::json!({"phone_id": phone.phone_id, "matched_phone_id": matched});
        writeln!(out, "{line}").expect("predictions are written");
    }
    eprintln!(
        "{} phones: {} reported ({no_knock} felt no knock, {no_fingerprint} without a fingerprint, {refused} refused), {} matched, {bump_again} told to bump again",
        phones.len(),
        submitted.len(),
        partner.len(),
    );
}

fn read_manifest(path: &Path) -> Vec<PhoneFields> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(file)
        .lines()
        .map(|line| {
            let line = line.expect("manifest is readable");
            serde_json::from_str(&line).expect("manifest line has the phone's fields")
        })
        .collect()
}

enum Missing {
    Knock,
    Fingerprint,
}

/// What this phone's app would send: its first knock, the audio around it,
/// its role and its location fix.
fn report_of(
    dir: &Path,
    phone: &PhoneFields,
    extractors: &mut HashMap<u32, FingerprintExtractor>,
) -> Result<BumpReport, Missing> {
    let samples = read_accel(&dir.join(&phone.accel_file));
    // Clocks are already corrected: the offset is zero.
    let mut detector = KnockDetector::with_faint_candidates(0);
    let mut knocks = detector.push(&samples).unwrap_or_default();
    // The trace ends soon after the knock: push a quiet tail so the detector
    // can judge the last one, as a phone still listening would.
    if let Some(last) = samples.last() {
        let step = 10.0;
        let tail: Vec<AccelSample> = (1..=(REPORT_DELAY_MS / step) as usize + 20)
            .map(|i| AccelSample {
                timestamp_ms: last.timestamp_ms + step * i as f64,
                ..*last
            })
            .collect();
        knocks.extend(detector.push(&tail).unwrap_or_default());
    }
    let (audio, rate) = read_audio(&dir.join(&phone.audio_file));
    // The first knock the accelerometer felt clearly, or faintly and the
    // microphone heard its click.
    let heard = |at_ms: f64| find_click(&audio, rate, at_ms - phone.audio_start_ms).is_some();
    let knock = knocks
        .iter()
        .find(|k| !k.faint || heard(k.device_instant_ms));
    if std::env::var_os("CLINK_CROWD_VERBOSE").is_some() {
        let candidates: Vec<String> = knocks
            .iter()
            .map(|k| {
                let kind = if !k.faint {
                    "clear"
                } else if heard(k.device_instant_ms) {
                    "heard"
                } else {
                    "unheard"
                };
                format!(
                    "{:.0} {kind} {:.1}",
                    k.device_instant_ms, k.impulse.peak_mps2
                )
            })
            .collect();
        eprintln!("{} candidates: [{}]", phone.phone_id, candidates.join(", "));
    }
    let knock = knock.ok_or(Missing::Knock)?;

    let extractor = extractors
        .entry(rate)
        .or_insert_with(|| FingerprintExtractor::new(rate).expect("phone sample rate"));
    let from_ms = knock.device_instant_ms - f64::from(AUDIO_BEFORE_KNOCK_MS) - phone.audio_start_ms;
    let len_ms = f64::from(AUDIO_BEFORE_KNOCK_MS + AUDIO_AFTER_KNOCK_MS);
    let at = |ms: f64| ((ms * f64::from(rate) / 1000.0).round().max(0.0) as usize).min(audio.len());
    let clip = &audio[at(from_ms)..at(from_ms + len_ms)];
    let fingerprint = extractor
        .fingerprint(clip)
        .map_err(|_| Missing::Fingerprint)?
        .to_bytes();

    let role = match phone.reported_role.as_str() {
        "payer" => BumpRole::Payer,
        _ => BumpRole::Payee,
    };
    let location = match (phone.lat, phone.lon, phone.accuracy_m) {
        (Some(lat_deg), Some(lon_deg), Some(accuracy_m)) => Some(CoarseLocation {
            lat_deg,
            lon_deg,
            accuracy_m: accuracy_m as f32,
        }),
        _ => None,
    };
    Ok(BumpReport {
        role,
        amount: (role == BumpRole::Payee).then_some(1_000),
        instant_ms: knock.instant_ms,
        impulse: knock.impulse,
        fingerprint,
        location,
    })
}

fn read_accel(path: &Path) -> Vec<AccelSample> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut samples: Vec<AccelSample> = Vec::new();
    for line in BufReader::new(file).lines().skip(1) {
        let line = line.expect("trace is readable");
        let v: Vec<f64> = line
            .split(',')
            .filter_map(|f| f.trim().parse().ok())
            .collect();
        if v.len() != 4 {
            continue;
        }
        // A platform never delivers time going backwards; skip such a row.
        if samples.last().is_some_and(|p| v[0] <= p.timestamp_ms) {
            continue;
        }
        samples.push(AccelSample {
            timestamp_ms: v[0],
            x: v[1] as f32,
            y: v[2] as f32,
            z: v[3] as f32,
        });
    }
    samples
}

fn read_audio(path: &Path) -> (Vec<f32>, u32) {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().map(|s| s.unwrap_or(0.0)).collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1i64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.unwrap_or(0) as f32 * scale)
                .collect()
        }
    };
    (samples, spec.sample_rate)
}

/// For tuning: how the reports of the phone pairs listed in `path` (one
/// `ID ID` a line, e.g. true partners from a scorer's output) compare.
fn explain(phones: &[PhoneFields], submitted: &[Submitted], path: &Path) {
    use clink_core::bump::AmbientFingerprint;
    let by_phone: HashMap<&str, &BumpReport> = submitted
        .iter()
        .map(|s| (phones[s.id as usize].phone_id.as_str(), &s.report))
        .collect();
    let text = std::fs::read_to_string(path).expect("pairs file is readable");
    for line in text.lines() {
        let ids: Vec<&str> = line.split_whitespace().collect();
        let [a, b] = ids[..] else { continue };
        let (Some(ra), Some(rb)) = (by_phone.get(a), by_phone.get(b)) else {
            eprintln!("{a} {b}: not both reported");
            continue;
        };
        let fa = AmbientFingerprint::from_bytes(&ra.fingerprint).expect("own fingerprint");
        let fb = AmbientFingerprint::from_bytes(&rb.fingerprint).expect("own fingerprint");
        let distance = match (ra.location, rb.location) {
            (Some(la), Some(lb)) => format!(
                "{:.0} m (accuracies {:.0}, {:.0})",
                la.distance_m(&lb),
                la.accuracy_m,
                lb.accuracy_m
            ),
            _ => "-".into(),
        };
        let (da, db) = (ra.impulse.delta_v_mps, rb.impulse.delta_v_mps);
        eprintln!(
            "{a} {b}: dt {} ms, similarity {:.3}, distance {distance}, delta-v {da:.3}/{db:.3} (ratio {:.2})",
            ra.instant_ms - rb.instant_ms,
            fa.similarity(&fb),
            da.max(db) / da.min(db),
        );
    }
}
