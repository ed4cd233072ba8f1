//! The online operations through the `clink` binary against one server on a
//! loopback port: withdraw, the security policy and the second-factor key
//! (sends and approvals above the threshold answered by themselves, an item
//! that needed the key retried), and cancelling one's own request.

mod cash_in;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use clink_server::{CapturingOtpSender, Config};

const ALICE: &str = "090-5555-6666";
const BOB: &str = "090-7777-8888";
const ALICE_PIN: &str = "2468";
const BOB_PIN: &str = "1357";

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
    stdout
}

/// Runs a command that must fail; returns its standard error.
fn fails(home: &Path, server: &str, args: &[&str]) -> String {
    let (success, stdout, stderr) = clink(home, server, args);
    assert!(!success, "clink {args:?} should have failed: {stdout}");
    stderr
}

fn json(home: &Path, server: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, server, &all)).expect("JSON output")
}

/// Puts `amount` on the wallet in `home`: the one place this test funds.
fn fund(home: &Path, server: &str, phone: &str, amount: i64) {
    cash_in::cash_in(server, phone, amount);
    ok(home, server, &["sync"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_policy_second_factor_and_cancel_through_the_binary() {
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
        for (home, phone, name, pin) in [
            (&alice, ALICE, "Alice", ALICE_PIN),
            (&bob, BOB, "Bob", BOB_PIN),
        ] {
            ok(home, &url, &["init"]);
            let started = json(home, &url, &["register", phone]);
            let e164 = started["phone"].as_str().unwrap().to_string();
            let code = otp.last_code(&e164).expect("a code was sent");
            ok(home, &url, &["verify", &code, "--name", name, "--pin", pin]);
        }
        fund(&alice, &url, ALICE, 10_000);

        // Withdraw; a wrong PIN says how many attempts are left.
        let out = ok(&alice, &url, &["withdraw", "700", "--pin", ALICE_PIN]);
        assert!(out.contains("withdrew 700; balance 9300"), "{out}");
        let err = fails(&alice, &url, &["withdraw", "700", "--pin", "0000"]);
        assert!(err.contains("4 attempt(s) left"), "{err}");

        // The policy, before and after.
        let out = ok(&alice, &url, &["policy"]);
        assert!(out.contains("PIN alone for every payment"), "{out}");
        assert!(out.contains("key: not registered"), "{out}");
        let out = ok(
            &alice,
            &url,
            &[
                "policy",
                "--second-factor-above",
                "1000",
                "--pin",
                ALICE_PIN,
            ],
        );
        assert!(out.contains("second factor above 1000 JPY"), "{out}");

        // Above it without a key: a clear error, the item kept.
        let err = fails(&alice, &url, &["send", BOB, "1500", "--pin", ALICE_PIN]);
        assert!(err.contains("clink second-factor register"), "{err}");
        let outbox = json(&alice, &url, &["outbox"]);
        assert_eq!(outbox[0]["state"], "needs_action");
        let item = outbox[0]["id"].to_string();

        // With the key, the retry goes through, and so does a new send.
        let out = ok(
            &alice,
            &url,
            &["second-factor", "register", "--pin", ALICE_PIN],
        );
        assert!(out.contains("second-factor key is registered"), "{out}");
        let out = ok(&alice, &url, &["retry", &item, "--pin", ALICE_PIN]);
        assert!(out.contains("paid 1500 to Bob; balance 7800"), "{out}");
        let out = ok(
            &alice,
            &url,
            &["send", BOB, "2000", "--memo", "bike", "--pin", ALICE_PIN],
        );
        assert!(out.contains("paid 2000 to Bob; balance 5800"), "{out}");

        // An approval above the threshold too.
        ok(&bob, &url, &["draft", "request", ALICE, "1200"]);
        ok(&bob, &url, &["queue", "--pin", BOB_PIN]);
        ok(&bob, &url, &["sync"]);
        ok(&alice, &url, &["sync"]);
        let requests = json(&alice, &url, &["requests"]);
        let id = requests[0]["id"].as_str().unwrap().to_string();
        let out = ok(&alice, &url, &["approve", &id, "--pin", ALICE_PIN]);
        assert!(out.contains("paid 1200 to Bob; balance 4600"), "{out}");

        // Alice cancels her own request; Bob cannot, and no longer sees it.
        ok(
            &alice,
            &url,
            &["draft", "request", BOB, "300", "--memo", "cake"],
        );
        ok(&alice, &url, &["queue", "--pin", ALICE_PIN]);
        ok(&alice, &url, &["sync"]);
        let outbox = json(&alice, &url, &["outbox"]);
        let asked = outbox
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["memo"] == "cake")
            .unwrap()["transfer_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(ok(&bob, &url, &["sync"]).contains("1 new request(s)"));
        let err = fails(&bob, &url, &["cancel", &asked]);
        assert!(err.contains("the server refused"), "{err}");
        let out = ok(&alice, &url, &["cancel", &asked]);
        assert!(
            out.contains("cancelled the request for 300 from Bob"),
            "{out}"
        );
        let err = fails(&bob, &url, &["approve", &asked, "--pin", BOB_PIN]);
        assert!(err.contains("cancelled"), "{err}");
        ok(&bob, &url, &["sync"]);
        assert!(ok(&bob, &url, &["requests"]).contains("no requests waiting"));

        // Off again.
        let out = ok(&alice, &url, &["policy", "--off", "--pin", ALICE_PIN]);
        assert!(out.contains("PIN alone for every payment"), "{out}");
        assert!(out.contains("key: registered"), "{out}");
        let policy = json(&alice, &url, &["policy"]);
        assert_eq!(policy["second_factor_above"], serde_json::Value::Null);
        assert_eq!(policy["second_factor_registered"], true);
    });
    steps.await.unwrap();
    server.shutdown().await;
}
