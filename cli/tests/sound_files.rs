//! `clink play-token --out` and `clink listen --in` run as the real binary:
//! WAV files, no sound device needed.

use std::process::{Command, Output};

const TOKEN_HEX: &str = "c11d0a7e5eed00112233445566778899";

fn clink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clink"))
        .args(args)
        .output()
        .expect("clink runs")
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

#[test]
fn play_token_to_a_wav_file_and_listen_to_it_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, rate) in [("ultrasonic", "44100"), ("audible", "16000")] {
        let wav = dir.path().join(format!("{profile}.wav"));
        let wav = wav.to_str().unwrap();
        let played = clink(&[
            "--json",
            "play-token",
            TOKEN_HEX,
            "--profile",
            profile,
            "--rate",
            rate,
            "--out",
            wav,
        ]);
        let played: serde_json::Value =
            serde_json::from_str(&stdout_lines(&played).join("\n")).unwrap();
        assert_eq!(played["token"], TOKEN_HEX);
        assert_eq!(played["sample_rate_hz"].to_string(), rate);

        let heard = stdout_lines(&clink(&["listen", "--in", wav, "--profile", profile]));
        assert_eq!(heard, vec![TOKEN_HEX.to_string()], "{profile}");
    }
    // The audible profile hears no token in the ultrasonic file: nothing on
    // stdout; with --first, an error.
    let other = dir.path().join("ultrasonic.wav");
    let other = other.to_str().unwrap();
    let none = clink(&["listen", "--in", other, "--profile", "audible"]);
    assert!(stdout_lines(&none).is_empty());
    let first = clink(&["listen", "--in", other, "--profile", "audible", "--first"]);
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stderr).contains("no token"));
    // A rate the profile cannot use is refused, not misread.
    let audible = dir.path().join("audible.wav");
    let low = clink(&["listen", "--in", audible.to_str().unwrap()]);
    assert!(!low.status.success());
    assert!(String::from_utf8_lossy(&low.stderr).contains("at least 44100 Hz"));
}
