//! What `clink` shows before the PIN confirms a payment: the counterpart's
//! name next to the amount, and no name that could mislead.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use clink_server::{CapturingOtpSender, Config};

const ALICE: &str = "090-7777-1111";
const BOB: &str = "090-7777-2222";

fn clink(home: &Path, server: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clink"))
        .arg("--home")
        .arg(home)
        .args(["--server", server])
        .args(args)
        .env_remove("CLINK_PIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clink runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(home: &Path, server: &str, args: &[&str]) -> String {
    let (success, stdout, stderr) = clink(home, server, args, "");
    assert!(success, "clink {args:?} failed: {stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_request_shows_who_asks_before_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        Config::with_database(format!("sqlite:{}", dir.path().join("clink.db").display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.path().join("pin-secret"));
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone()).await.unwrap();
    let url = server.url();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));

    tokio::task::spawn_blocking(move || {
        for (home, phone, name) in [(&alice, ALICE, "Alice"), (&bob, BOB, "Bob")] {
            ok(home, &url, &["init"]);
            let started: serde_json::Value =
                serde_json::from_str(&ok(home, &url, &["--json", "register", phone])).unwrap();
            let code = otp.last_code(started["phone"].as_str().unwrap()).unwrap();
            // A name that shows as something else is refused by the wallet.
            let (verified, _, stderr) = clink(
                home,
                &url,
                &["verify", &code, "--name", "\u{202E}ecohS", "--pin", "1234"],
                "",
            );
            assert!(!verified);
            assert!(
                stderr
                    .contains("invalid display name: U+202E RIGHT-TO-LEFT OVERRIDE at character 1"),
                "{stderr}"
            );
            ok(
                home,
                &url,
                &["verify", &code, "--name", name, "--pin", "1234"],
            );
        }
        ok(
            &alice,
            &url,
            &["draft", "request", BOB, "300", "--memo", "tickets"],
        );
        ok(&alice, &url, &["queue", "--pin", "1234"]);
        ok(&alice, &url, &["sync"]);
        ok(&bob, &url, &["sync"]);
        let requests: serde_json::Value =
            serde_json::from_str(&ok(&bob, &url, &["--json", "requests"])).unwrap();
        let id = requests[0]["id"].as_str().unwrap().to_string();

        // Bob types his PIN only after seeing who asks for how much. (He has
        // no money, so the payment itself is refused; what he saw is the
        // point here.)
        let (_, _, stderr) = clink(&bob, &url, &["approve", &id], "1234\n");
        let asks = stderr
            .find("Alice asks you for 300 for \"tickets\".")
            .unwrap_or_else(|| panic!("no name and amount before the PIN: {stderr}"));
        let pin = stderr.find("PIN: ").expect("a PIN prompt");
        assert!(asks < pin, "{stderr}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
