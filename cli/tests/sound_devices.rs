//! `clink play-token` and `clink listen` run as the real binary through the
//! real audio path (cpal, ALSA), with ALSA's `file` plugin over `null`
//! standing in for the sound card. Each child process gets its own ALSA
//! configuration through `XDG_CONFIG_HOME`.
#![cfg(feature = "audio")]

use std::path::Path;
use std::process::{Command, Output};

use clink_core::acoustic::{Profile, Token, TokenDecoder, TokenModem};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const RATE_HZ: u32 = 48_000;
const TOKEN_HEX: &str = "c11d0a7e5eed00112233445566778899";

fn token() -> Token {
    let bytes = (0..16)
        .map(|i| u8::from_str_radix(&TOKEN_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>();
    bytes.try_into().unwrap()
}

/// Runs `clink`, with ALSA configured from `alsa_config_home` if given.
fn clink(args: &[&str], alsa_config_home: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clink"));
    command.args(args);
    if let Some(home) = alsa_config_home {
        command.env("XDG_CONFIG_HOME", home);
    }
    command.output().expect("clink runs")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "clink failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn noise(seconds: f64, rms: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = rms * 3f32.sqrt();
    let n = (seconds * f64::from(RATE_HZ)) as usize;
    (0..n).map(|_| rng.gen_range(-a..a)).collect()
}

/// An ALSA configuration whose default PCM is `file` over `null`, in
/// `<dir>/config/alsa/asoundrc`; returns `<dir>/config`. Raw files are f32
/// little-endian mono 48 kHz, the stream's own format: no converter may
/// sit in front of `file`.
fn alsa_file_device(dir: &Path, infile: &Path, outfile: &Path) -> std::path::PathBuf {
    let home = dir.join("config");
    std::fs::create_dir_all(home.join("alsa")).unwrap();
    let asoundrc = format!(
        "pcm.!default {{\n    type file\n    slave.pcm \"null\"\n    file \"{}\"\n    infile \"{}\"\n    format \"raw\"\n}}\n",
        outfile.display(),
        infile.display()
    );
    std::fs::write(home.join("alsa").join("asoundrc"), asoundrc).unwrap();
    home
}

fn write_raw_f32(path: &Path, samples: &[f32]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_tokens_and_missing_devices_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never.wav");
    let short = clink(
        &["play-token", "0011", "--out", never.to_str().unwrap()],
        None,
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("32 hex digits"));
    assert!(!never.exists());

    let missing = clink(
        &["listen", "--device", "no-such-microphone", "--seconds", "1"],
        None,
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("no input device is called \"no-such-microphone\"")
            && stderr.contains("listen --in"),
        "{stderr}"
    );
}

#[test]
fn listen_decodes_a_token_from_the_microphone_through_alsa() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s of room noise, the token, then more noise than the capture takes
    // (at the file's end ALSA would repeat its last buffer).
    let modem = TokenModem::new(Profile::NearUltrasound, RATE_HZ).unwrap();
    let mut microphone = noise(1.0, 0.05, 7);
    microphone.extend(modem.modulate(&token()));
    microphone.extend(noise(4.0, 0.05, 8));
    let infile = dir.path().join("microphone.f32");
    write_raw_f32(&infile, &microphone);
    let config = alsa_file_device(dir.path(), &infile, Path::new("/dev/null"));

    let out = clink(&["--json", "listen", "--seconds", "3"], Some(&config));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let heard: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(heard["token"], TOKEN_HEX);
    // Heard after the token ended (1.471 s) and before the capture ended.
    let after = heard["heard_after_s"].as_f64().unwrap();
    assert!((1.47..3.0).contains(&after), "{after}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at 48000 Hz"));

    let first = clink(&["listen", "--first", "--seconds", "3"], Some(&config));
    assert_eq!(stdout_lines(&first), vec![TOKEN_HEX.to_string()]);
}

#[test]
fn play_token_plays_through_alsa_and_the_played_sound_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let outfile = dir.path().join("speaker.f32");
    let config = alsa_file_device(dir.path(), Path::new("/dev/zero"), &outfile);

    let out = clink(&["play-token", TOKEN_HEX], Some(&config));
    let lines = stdout_lines(&out);
    assert!(
        lines[0].starts_with(&format!("played {TOKEN_HEX} to ")),
        "{lines:?}"
    );

    let bytes = std::fs::read(&outfile).unwrap();
    let played: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert!(
        played.len() > modem_len(),
        "only {} samples played",
        played.len()
    );
    let mut decoder = TokenDecoder::new(Profile::NearUltrasound, RATE_HZ).unwrap();
    let mut heard = decoder.push(&played);
    heard.extend(decoder.push(&vec![0.0; RATE_HZ as usize / 2]));
    assert_eq!(heard, vec![token()]);
}

fn modem_len() -> usize {
    let modem = TokenModem::new(Profile::NearUltrasound, RATE_HZ).unwrap();
    (modem.token_duration_s() * f64::from(RATE_HZ)) as usize
}
