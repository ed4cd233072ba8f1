//! The README walk-through, run as written: two wallets (two homes), one
//! server on a loopback port, every step through the `clink` binary.

mod cash_in;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use clink_server::{CapturingOtpSender, Config};

const ALICE: &str = "090-1111-2222";
const BOB: &str = "090-3333-4444";

fn clink(home: &Path, server: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clink"))
        .arg("--home")
        .arg(home)
        .args(["--server", server])
        .args(args)
        .env_remove("CLINK_PIN")
        .output()
        .expect("clink runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(home: &Path, server: &str, args: &[&str]) -> String {
    let (success, stdout, stderr) = clink(home, server, args);
    assert!(success, "clink {args:?} failed: {stderr}");
    assert!(
        !stdout.contains("2468") && !stdout.contains("1357"),
        "a PIN was printed: {stdout}"
    );
    stdout
}

fn json(home: &Path, server: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, server, &all)).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_wallets_one_server_walk_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        Config::with_database(format!("sqlite:{}", dir.path().join("clink.db").display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.path().join("pin-secret"));
    cash_in::enable(&mut config);
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone()).await.unwrap();
    let url = server.url();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));

    let steps = tokio::task::spawn_blocking(move || {
        // Register both.
        for (home, phone, name, pin) in
            [(&alice, ALICE, "Alice", "2468"), (&bob, BOB, "Bob", "1357")]
        {
            assert!(ok(home, &url, &["init"]).contains("wallet ready"));
            let started = json(home, &url, &["register", phone]);
            let e164 = started["phone"].as_str().unwrap().to_string();
            let code = otp.last_code(&e164).expect("a code was sent");
            assert!(
                ok(home, &url, &["verify", &code, "--name", name, "--pin", pin])
                    .contains(&format!("as {name}"))
            );
        }
        cash_in::cash_in(&url, ALICE, 5000);
        ok(&alice, &url, &["sync"]);

        // Draft and queue (no network needed), then sync.
        ok(
            &alice,
            &url,
            &["draft", "send", BOB, "800", "--memo", "lunch"],
        );
        ok(
            &alice,
            &url,
            &["draft", "request", BOB, "300", "--memo", "tickets"],
        );
        let typo = json(&alice, &url, &["draft", "send", BOB, "9"]);
        ok(&alice, &url, &["draft", "delete", &typo["id"].to_string()]);
        let drafts = ok(&alice, &url, &["drafts"]);
        assert!(
            drafts.contains("send 800 to 090-3333-4444  \"lunch\""),
            "{drafts}"
        );
        assert!(drafts.contains("request 300 from"), "{drafts}");
        let (wrong, _, stderr) = clink(&alice, &url, &["queue", "--pin", "12"]);
        assert!(!wrong && stderr.contains("invalid PIN"), "{stderr}");
        assert!(ok(&alice, &url, &["queue", "--pin", "2468"]).contains("2 item(s) queued"));
        let synced = ok(&alice, &url, &["sync"]);
        assert!(synced.contains("2 accepted, 0 rejected"), "{synced}");
        assert!(ok(&alice, &url, &["balance"]).starts_with("4200 JPY"));

        // Bob gets the money and the request, and pays it.
        assert!(ok(&bob, &url, &["sync"]).contains("1 new request(s); balance 800"));
        let requests = json(&bob, &url, &["requests"]);
        let id = requests[0]["id"].as_str().unwrap().to_string();
        assert!(ok(&bob, &url, &["requests"]).contains("Alice asks 300  tickets"));
        assert!(
            ok(&bob, &url, &["approve", &id, "--pin", "1357"])
                .contains("paid 300 to Alice; balance 500")
        );
        assert!(ok(&bob, &url, &["requests"]).contains("no requests waiting"));

        // Alice sees it.
        ok(&alice, &url, &["sync"]);
        assert!(ok(&alice, &url, &["balance"]).starts_with("4500 JPY"));
        let history = ok(&alice, &url, &["history"]);
        assert!(
            history.contains("-800  Bob") && history.contains("+300  Bob"),
            "{history}"
        );
        let report = json(&alice, &url, &["sync"]);
        assert_eq!(report["accepted"], 0);

        // Errors are plain sentences.
        let (done, _, stderr) = clink(&alice, &url, &["approve", "t_nope", "--pin", "2468"]);
        assert!(
            !done && stderr.starts_with("error: the server refused:"),
            "{stderr}"
        );
    });
    steps.await.unwrap();
    server.shutdown().await;
}
