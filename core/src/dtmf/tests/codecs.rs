//! DTMF through real telephone codecs: every key, at several durations,
//! levels and twists, written as 8 kHz WAV, round-tripped through sox
//! (GSM-FR, AMR-NB, G.711 μ-law) and decoded.
//!
//! Levels are per tone, peak, in dBFS; 0 dBm0 is about -3 dBFS (G.711's
//! digital milliwatt), so -28 dBFS is the -25 dBm0 bottom of the usual Q.24
//! acceptance range. Twist is the high group's level over the low group's
//! (negative: normal twist), the louder tone at the stated level; Q.24
//! requires 8 dB normal and 4 dB reverse accepted.
//!
//! sox is a test dependency (Debian: `sox libsox-fmt-all`). Without it, or
//! without a format, the tests print a note and pass, unless
//! CLINK_REQUIRE_SOX=1 (the test command sets it), which makes that a
//! failure. Run with `--nocapture` to see the per-key figures.

use crate::dtmf::test_signals::{TonePair, add_white_noise, random_phases, rng, samples_for_ms};
use crate::dtmf::{Digit, DtmfDetector, DtmfEvent};
use std::path::Path;
use std::process::Command;

const RATE_HZ: u32 = 8_000;

/// One way of sending the keypad.
#[derive(Clone, Copy, Debug)]
struct Condition {
    tone_ms: f64,
    gap_ms: f64,
    /// The louder tone's level.
    level_dbfs: f64,
    twist_db: f64,
    /// White noise over 0-4 kHz against the two tones' power, added before
    /// the codec.
    snr_db: Option<f64>,
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms on/{} ms off, {} dBFS, twist {:+} dB",
            self.tone_ms, self.gap_ms, self.level_dbfs, self.twist_db
        )?;
        if let Some(snr) = self.snr_db {
            write!(f, ", SNR {snr} dB")?;
        }
        Ok(())
    }
}

/// Q.24's shortest tone and pause, longer ones; loud, nominal and the
/// minimum level; no twist and the largest twists Q.24 requires accepted;
/// and noise.
fn conditions() -> Vec<Condition> {
    let mut all = Vec::new();
    for (tone_ms, gap_ms) in [(40.0, 40.0), (60.0, 60.0), (100.0, 100.0)] {
        for level_dbfs in [-9.0, -20.0, -28.0] {
            for twist_db in [0.0, -8.0, 4.0] {
                all.push(Condition {
                    tone_ms,
                    gap_ms,
                    level_dbfs,
                    twist_db,
                    snr_db: None,
                });
            }
        }
    }
    for twist_db in [0.0, -8.0, 4.0] {
        all.push(Condition {
            tone_ms: 60.0,
            gap_ms: 60.0,
            level_dbfs: -20.0,
            twist_db,
            snr_db: Some(20.0),
        });
    }
    all
}

/// A tone sent: its key, its condition and where it lies in the signal.
struct Sent {
    key: char,
    condition: usize,
    start: usize,
    end: usize,
}

/// The whole keypad once per condition, 300 ms of silence between
/// conditions, with random phases (fixed seeds).
fn keypad_signal(conditions: &[Condition]) -> (Vec<f32>, Vec<Sent>) {
    let mut pcm = vec![0f32; samples_for_ms(RATE_HZ, 300.0)];
    let mut sent = Vec::new();
    for (index, c) in conditions.iter().enumerate() {
        let mut random = rng(7_000 + index as u64);
        let louder = 10f64.powf(c.level_dbfs / 20.0);
        let quieter = louder * 10f64.powf(-c.twist_db.abs() / 20.0);
        let start_of_condition = pcm.len();
        for digit in Digit::ALL {
            let mut pair = TonePair::nominal(digit.as_char(), louder);
            if c.twist_db < 0.0 {
                pair.high_amp = quieter;
            } else if c.twist_db > 0.0 {
                pair.low_amp = quieter;
            }
            let start = pcm.len();
            let len = samples_for_ms(RATE_HZ, c.tone_ms);
            pair.render(RATE_HZ, len, random_phases(&mut random), 0, &mut pcm);
            sent.push(Sent {
                key: digit.as_char(),
                condition: index,
                start,
                end: start + len,
            });
            pcm.resize(pcm.len() + samples_for_ms(RATE_HZ, c.gap_ms), 0.0);
        }
        if let Some(snr_db) = c.snr_db {
            // Two tones of amplitudes a and b have power (a^2 + b^2) / 2.
            let power = (louder * louder + quieter * quieter) / 2.0;
            let sigma = (power / 10f64.powf(snr_db / 10.0)).sqrt();
            add_white_noise(&mut pcm[start_of_condition..], sigma, &mut random);
        }
        pcm.resize(pcm.len() + samples_for_ms(RATE_HZ, 300.0), 0.0);
    }
    (pcm, sent)
}

/// A codec as sox names it, with its encoder options.
struct Codec {
    name: &'static str,
    sox_type: &'static str,
    encode_options: &'static [&'static str],
    /// Conditions under which every key must come through.
    every_key: fn(&Condition) -> bool,
    /// Tones that must come through over all conditions (of 16 per
    /// condition), and digits the detector may add: what was measured,
    /// so the figures cannot slip back.
    min_decoded: usize,
    max_extra: usize,
}

fn all(_: &Condition) -> bool {
    true
}

const GSM_FR: Codec = Codec {
    name: "GSM-FR (13 kbit/s)",
    sox_type: "gsm",
    encode_options: &[],
    // GSM-FR moves each tone's level by up to about 5 dB (its regular-pulse
    // excitation keeps one sample in three, so the weaker tone partly turns
    // into images and noise), which takes twisted pairs past the limits a
    // clean pair must be rejected at; and it blurs a tone's first few ms,
    // which takes 40 ms tones below the shortest accepted.
    every_key: |c| c.twist_db == 0.0 && c.tone_ms >= 60.0 && c.snr_db.is_none(),
    min_decoded: 441,
    max_extra: 0,
};
/// 12.2 kbit/s, the mode GSM and UMTS voice calls use (sox's default is
/// 4.75 kbit/s).
const AMR_NB: Codec = Codec {
    name: "AMR-NB 12.2 kbit/s",
    sox_type: "amr-nb",
    encode_options: &["-C", "7"],
    every_key: all,
    min_decoded: 30 * 16,
    // Key 3 (697 + 1477 Hz) now and then breaks in two.
    max_extra: 3,
};
const MU_LAW: Codec = Codec {
    name: "G.711 μ-law",
    sox_type: "ul",
    encode_options: &[],
    every_key: all,
    min_decoded: 30 * 16,
    max_extra: 0,
};

/// Whether sox can write and read `sox_type`. If not: a failure under
/// CLINK_REQUIRE_SOX=1, otherwise a printed note.
fn sox_supports(sox_type: &str) -> bool {
    let formats = Command::new("sox").arg("-h").output().ok().and_then(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("AUDIO FILE FORMATS:"))
            .map(|list| {
                list.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
    });
    let missing = match formats {
        None => Some("sox is not installed".to_owned()),
        Some(list) if !list.iter().any(|f| f == sox_type) => {
            Some(format!("sox has no {sox_type} format"))
        }
        Some(_) => None,
    };
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var("CLINK_REQUIRE_SOX").as_deref() == Ok("1") {
        panic!(
            "{missing} but CLINK_REQUIRE_SOX=1: install sox with its format \
             libraries (Debian: apt-get install sox libsox-fmt-all)"
        );
    }
    println!("skipped: {missing} (Debian: apt-get install sox libsox-fmt-all)");
    false
}

fn run_sox(args: &[&str]) {
    let out = Command::new("sox").args(args).output().expect("sox runs");
    assert!(
        out.status.success(),
        "sox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `pcm` as 16-bit 8 kHz WAV, encodes it with `codec`, decodes it
/// back to WAV and returns what came out.
fn round_trip(pcm: &[f32], codec: &Codec, dir: &Path) -> Vec<f32> {
    let input = dir.join("in.wav");
    let coded = dir.join(format!("coded.{}", codec.sox_type));
    let output = dir.join("out.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&input, spec).expect("temporary WAV");
    for &x in pcm {
        let sample = (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        writer.write_sample(sample).expect("temporary WAV");
    }
    writer.finalize().expect("temporary WAV");
    let (input, coded, output) = (
        input.to_str().unwrap(),
        coded.to_str().unwrap(),
        output.to_str().unwrap(),
    );
    let mut encode = vec![input];
    encode.extend_from_slice(codec.encode_options);
    encode.extend_from_slice(&["-t", codec.sox_type, coded]);
    run_sox(&encode);
    // Raw μ-law carries no header: say what it is.
    run_sox(&[
        "-t",
        codec.sox_type,
        "-r",
        "8000",
        "-c",
        "1",
        coded,
        "-b",
        "16",
        "-e",
        "signed-integer",
        output,
    ]);
    let mut reader = hound::WavReader::open(output).expect("sox wrote a WAV");
    assert_eq!(reader.spec().sample_rate, RATE_HZ);
    reader
        .samples::<i16>()
        .map(|s| s.expect("16-bit samples") as f32 / 32768.0)
        .collect()
}

/// Which sent tones were decoded, per condition and key.
struct Report {
    /// `missed[condition]`: keys not decoded (or decoded wrong).
    missed: Vec<String>,
    /// Events that match no tone.
    extra: Vec<DtmfEvent>,
    decoded: usize,
    sent: usize,
}

fn score(events: &[DtmfEvent], sent: &[Sent], conditions: usize) -> Report {
    // A codec delays the signal by a few ms at most.
    let slack = samples_for_ms(RATE_HZ, 20.0) as u64;
    let mut used = vec![false; events.len()];
    let mut report = Report {
        missed: vec![String::new(); conditions],
        extra: Vec::new(),
        decoded: 0,
        sent: sent.len(),
    };
    for tone in sent {
        let hit = events.iter().enumerate().position(|(i, e)| {
            !used[i]
                && e.digit.as_char() == tone.key
                && e.start_sample < tone.end as u64 + slack
                && e.end_sample + slack > tone.start as u64
        });
        match hit {
            Some(i) => {
                used[i] = true;
                report.decoded += 1;
            }
            None => report.missed[tone.condition].push(tone.key),
        }
    }
    report.extra = events
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| *e)
        .collect();
    report
}

/// Round-trips the keypad under every condition through `codec`, prints the
/// figures and asserts every key came through.
fn keypad_through(codec: &Codec) {
    if !sox_supports(codec.sox_type) {
        return;
    }
    let conditions = conditions();
    let (pcm, sent) = keypad_signal(&conditions);
    let dir = tempfile::tempdir().expect("temporary directory");
    let decoded_pcm = round_trip(&pcm, codec, dir.path());
    // Each condition is decoded on its own (with the silence around it), so
    // the detector's reasons for turning tones down can be told apart.
    let margin = samples_for_ms(RATE_HZ, 150.0);
    let mut events = Vec::new();
    let mut rejections = vec![Vec::new(); conditions.len()];
    for (c, reasons) in rejections.iter_mut().enumerate() {
        let mut tones = sent.iter().filter(|s| s.condition == c);
        let start = tones.next().expect("16 tones").start - margin;
        let end = (tones.last().expect("16 tones").end + margin).min(decoded_pcm.len());
        let mut detector = DtmfDetector::new(RATE_HZ).unwrap();
        let mut found = detector.push_f32(&decoded_pcm[start..end]);
        found.extend(detector.finish());
        events.extend(found.into_iter().map(|e| DtmfEvent {
            start_sample: e.start_sample + start as u64,
            end_sample: e.end_sample + start as u64,
            ..e
        }));
        *reasons = detector.take_rejections();
    }
    let report = score(&events, &sent, conditions.len());

    println!(
        "{}: {}/{} tones decoded, {} extra",
        codec.name,
        report.decoded,
        report.sent,
        report.extra.len()
    );
    let mut failures = Vec::new();
    let mut shortfalls = Vec::new();
    for ((c, missed), reasons) in conditions.iter().zip(&report.missed).zip(&rejections) {
        if !missed.is_empty() {
            let reasons: Vec<String> = reasons.iter().map(|(d, r)| format!("{d} {r:?}")).collect();
            let line = format!(
                "  {c}: missed {missed} (tones turned down: {})",
                reasons.join(", ")
            );
            if (codec.every_key)(c) {
                failures.push(line);
            } else {
                shortfalls.push(line);
            }
        }
    }
    let per_key: Vec<String> = Digit::ALL
        .iter()
        .map(|d| {
            let lost: usize = report
                .missed
                .iter()
                .map(|m| m.chars().filter(|&k| k == d.as_char()).count())
                .sum();
            format!("{d} {}/{}", conditions.len() - lost, conditions.len())
        })
        .collect();
    println!("  per key: {}", per_key.join(", "));
    for line in failures.iter().chain(&shortfalls) {
        println!("{line}");
    }
    assert!(
        failures.is_empty()
            && report.decoded >= codec.min_decoded
            && report.extra.len() <= codec.max_extra,
        "{}: {} of {} tones missed (at most {} may be), extra digits {:?}\n{}",
        codec.name,
        report.sent - report.decoded,
        report.sent,
        report.sent - codec.min_decoded,
        report.extra,
        failures
            .iter()
            .chain(&shortfalls)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_key_decodes_through_gsm_fr() {
    keypad_through(&GSM_FR);
}

#[test]
fn every_key_decodes_through_amr_nb() {
    keypad_through(&AMR_NB);
}

#[test]
fn every_key_decodes_through_mu_law() {
    keypad_through(&MU_LAW);
}
