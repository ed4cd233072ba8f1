//! Asking for money and paying by sound through the `clink` binary, against
//! a real server on a loopback port: the payee's token goes into a WAV file,
//! the payer's `clink` decodes it, sees who asks, and pays once.

mod cash_in;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clink_server::{CapturingOtpSender, Config};
use sqlx::Row;

fn clink(home: &Path, server: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clink"));
    command
        .arg("--home")
        .arg(home)
        .args(["--server", server])
        .env_remove("CLINK_PIN");
    command
}

fn ok(home: &Path, server: &str, args: &[&str]) -> String {
    let out = clink(home, server).args(args).output().expect("clink runs");
    assert!(
        out.status.success(),
        "clink {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Registers `names` (one wallet each, PIN 1234) and cashes in 1000 for each.
fn register_all(url: &str, otp: &CapturingOtpSender, dir: &Path, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let home = dir.join(name);
        ok(&home, url, &["init"]);
        let phone = format!("090-6666-{:04}", 1000 + i);
        let started: serde_json::Value =
            serde_json::from_str(&ok(&home, url, &["--json", "register", &phone])).unwrap();
        let code = otp.last_code(started["phone"].as_str().unwrap()).unwrap();
        ok(
            &home,
            url,
            &["verify", &code, "--name", name, "--pin", "1234"],
        );
        cash_in::cash_in(url, &phone, 1000);
        ok(&home, url, &["sync"]);
    }
}

/// The microphone and the speaker as raw f32 files (ALSA's `file` plugin
/// over `null`, the stream's own format), for one child process.
#[cfg(feature = "audio")]
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

/// Through the sound devices (cpal, ALSA): the payee's `clink` plays the
/// token to its speaker, the payer's `clink` hears it on its microphone.
#[cfg(feature = "audio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_by_sound_is_paid_through_the_sound_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        Config::with_database(format!("sqlite:{}", dir.path().join("clink.db").display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.path().join("pin-secret"));
    cash_in::enable(&mut config);
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone()).await.unwrap();
    let url = server.url();
    let root = dir.path().to_path_buf();

    let (paid, asked) = tokio::task::spawn_blocking(move || {
        register_all(&url, &otp, &root, &["Dan", "Eve"]);
        let (speaker_dir, mic_dir) = (root.join("speaker"), root.join("mic"));
        let (played, heard) = (root.join("played.raw"), root.join("heard.raw"));
        let unused_input = root.join("unused.raw");
        std::fs::write(&unused_input, vec![0u8; 48_000 * 4 * 30]).unwrap();
        let speaker = alsa_file_device(&speaker_dir, &unused_input, &played);
        let asking = clink(&root.join("Eve"), &url)
            .args(["--json", "ask-by-sound", "300", "--wait", "30"])
            .env("XDG_CONFIG_HOME", &speaker)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // What the speaker played, after half a second of silence, is what
        // the payer's microphone picks up; the file must outlast the capture.
        let started = Instant::now();
        while std::fs::metadata(&played).map_or(0, |m| m.len()) < 48_000 * 4 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nothing played"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut mic = vec![0u8; 24_000 * 4];
        mic.extend(std::fs::read(&played).unwrap());
        mic.extend(vec![0u8; 48_000 * 4 * 10]);
        std::fs::write(&heard, mic).unwrap();
        let microphone = alsa_file_device(&mic_dir, &heard, &root.join("mic-out.raw"));
        let paid = clink(&root.join("Dan"), &url)
            .args([
                "--json",
                "pay-by-sound",
                "--seconds",
                "5",
                "--yes",
                "--pin",
                "1234",
            ])
            .env("XDG_CONFIG_HOME", &microphone)
            .output()
            .unwrap();
        assert!(
            paid.status.success(),
            "{}",
            String::from_utf8_lossy(&paid.stderr)
        );
        let asked = asking.wait_with_output().unwrap();
        assert!(
            asked.status.success(),
            "{}",
            String::from_utf8_lossy(&asked.stderr)
        );
        (
            serde_json::from_slice::<serde_json::Value>(&paid.stdout).unwrap(),
            serde_json::from_slice::<serde_json::Value>(&asked.stdout).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        (paid["outcome"].as_str(), paid["amount"].as_i64()),
        (Some("paid"), Some(300))
    );
    assert_eq!(paid["payee_display_name"], "Eve");
    assert_eq!(asked["outcome"], "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_by_sound_is_heard_confirmed_and_paid_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        Config::with_database(format!("sqlite:{}", dir.path().join("clink.db").display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.path().join("pin-secret"));
    cash_in::enable(&mut config);
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone()).await.unwrap();
    let url = server.url();
    let pool = server.state.db.pool.clone();
    let (alice, bob, carol) = (
        dir.path().join("alice"),
        dir.path().join("bob"),
        dir.path().join("carol"),
    );
    let wav = dir.path().join("token.wav");

    let outcome = tokio::task::spawn_blocking(move || {
        for (home, phone, name) in [
            (&alice, "090-5555-1111", "Alice"),
            (&bob, "090-5555-2222", "Bread & Co"),
            (&carol, "090-5555-3333", "Carol"),
        ] {
            ok(home, &url, &["init"]);
            let started: serde_json::Value =
                serde_json::from_str(&ok(home, &url, &["--json", "register", phone])).unwrap();
            let code = otp.last_code(started["phone"].as_str().unwrap()).unwrap();
            ok(
                home,
                &url,
                &["verify", &code, "--name", name, "--pin", "1234"],
            );
        }
        for (home, phone) in [(&alice, "090-5555-1111"), (&carol, "090-5555-3333")] {
            cash_in::cash_in(&url, phone, 1000);
            ok(home, &url, &["sync"]);
        }

        // Bob asks for 450; his clink writes the token's sound and waits.
        let asking = clink(&bob, &url)
            .args(["--json", "ask-by-sound", "450", "--memo", "bread"])
            .arg("--out")
            .arg(&wav)
            .args(["--wait", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !wav.exists() || std::fs::metadata(&wav).unwrap().len() < 40_000 {
            assert!(started.elapsed() < Duration::from_secs(20), "no token file");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));

        // Alice's clink hears it, shows who asks, and pays.
        let paid = clink(&alice, &url)
            .args(["--json", "pay-by-sound", "--in"])
            .arg(&wav)
            .args(["--yes", "--pin", "1234"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&paid.stderr).into_owned();
        assert!(paid.status.success(), "{shown}");
        // The confirm prompt names the payee next to the amount.
        assert!(
            shown.contains("Bread & Co asks you for 450 for \"bread\"."),
            "{shown}"
        );
        let paid: serde_json::Value = serde_json::from_slice(&paid.stdout).unwrap();
        let asked = asking.wait_with_output().unwrap();
        assert!(
            asked.status.success(),
            "{}",
            String::from_utf8_lossy(&asked.stderr)
        );
        let asked: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();

        // Alice hears the same sound again: the same request, already paid;
        // approving it again moves nothing (checked on the ledger below).
        let again = clink(&alice, &url)
            .args(["--json", "pay-by-sound", "--in"])
            .arg(&wav)
            .args(["--yes", "--pin", "1234"])
            .output()
            .unwrap();
        assert!(again.status.success());
        // Anyone else who hears it finds the token used up.
        let replayed = clink(&carol, &url)
            .args(["pay-by-sound", "--in"])
            .arg(&wav)
            .args(["--yes", "--pin", "1234"])
            .output()
            .unwrap();
        let replay_error = String::from_utf8_lossy(&replayed.stderr).into_owned();
        (paid, asked, replayed.status.success(), replay_error)
    })
    .await
    .unwrap();
    let (paid, asked, replay_succeeded, replay_error) = outcome;
    assert_eq!(paid["outcome"], "paid");
    assert_eq!(paid["payee_display_name"], "Bread & Co");
    assert_eq!(
        (paid["amount"].as_i64(), paid["memo"].as_str()),
        (Some(450), Some("bread"))
    );
    assert_eq!(asked["outcome"], "paid");
    assert!(!replay_succeeded);
    assert!(replay_error.contains("used"), "{replay_error}");

    let posted: (i64, i64) = {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM transfers WHERE state = 'posted' AND kind = 'claim'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(posted, (1, 450), "one payment of 450");
}
