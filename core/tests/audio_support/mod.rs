//! Shared by the `audio_*` tests: signals made in code with fixed seeds, and
//! ALSA configurations that stand in for a sound card.
//!
//! With no sound card, ALSA's `file` plugin over the `null` device is a
//! real PCM: captured audio is read from a raw file, played audio is
//! written to one. The raw files are in exactly the stream's format (f32
//! little-endian, mono, 48 kHz) because no converter (`plug`) may sit in
//! front of `file`: a converter there drops periods.
//!
//! ALSA reads its configuration once per process, before the first device
//! is opened, so each test binary sets `XDG_CONFIG_HOME` once, in its only
//! test, before touching a device.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const RATE_HZ: u32 = 48_000;

/// White noise of the given RMS level, from a fixed seed.
pub fn noise(seconds: f64, rms: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A uniform variable on [-a, a] has RMS a/√3.
    let a = rms * 3f32.sqrt();
    (0..samples(seconds))
        .map(|_| rng.gen_range(-a..a))
        .collect()
}

/// A linear sweep from `from_hz` to `to_hz` at amplitude 0.5: every sample
/// differs from its neighbours, so a lost or repeated stretch shows.
pub fn sweep(seconds: f64, from_hz: f64, to_hz: f64) -> Vec<f32> {
    let n = samples(seconds);
    let rate = f64::from(RATE_HZ);
    let k = (to_hz - from_hz) / seconds;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let phase = std::f64::consts::TAU * (from_hz * t + k * t * t / 2.0);
            (0.5 * phase.sin()) as f32
        })
        .collect()
}

pub fn samples(seconds: f64) -> usize {
    (seconds * f64::from(RATE_HZ)).round() as usize
}

pub fn write_raw_f32(path: &Path, samples: &[f32]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_raw_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// ALSA default PCM whose capture side reads `infile`.
pub fn capture_from_file(infile: &Path) -> String {
    format!(
        "pcm.!default {{\n    type file\n    slave.pcm \"null\"\n    file \"/dev/null\"\n    infile \"{}\"\n    format \"raw\"\n}}\n",
        infile.display()
    )
}

/// ALSA default PCM whose playback side writes `outfile`.
pub fn playback_to_file(outfile: &Path) -> String {
    format!(
        "pcm.!default {{\n    type file\n    slave.pcm \"null\"\n    file \"{}\"\n    format \"raw\"\n}}\n",
        outfile.display()
    )
}

/// Writes `asoundrc` where ALSA looks with `XDG_CONFIG_HOME=<dir>`, and
/// returns that directory.
pub fn alsa_config_home(dir: &Path, asoundrc: &str) -> PathBuf {
    let home = dir.join("config");
    std::fs::create_dir_all(home.join("alsa")).unwrap();
    std::fs::write(home.join("alsa").join("asoundrc"), asoundrc).unwrap();
    home
}

/// Points this process's ALSA at `config_home`. Call once, first thing in
/// the binary's only test.
pub fn use_alsa_config(config_home: &Path) {
    // SAFETY: each audio test binary holds a single test, which calls this
    // before it starts any thread or opens any device, so nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("XDG_CONFIG_HOME", config_home) };
}
