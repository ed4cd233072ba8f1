//! `clink` as scripts use it, against a real server on a loopback port:
//! thousands of queued items synced through SIGKILLs until the wallet's
//! balance, history and inbox are the server's; a sync that cannot connect;
//! listings piped into a reader that goes away; errors as JSON.

mod cash_in;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clink_core::secrets::SecretStore;
use clink_core::wallet::{FileSecretStore, Wallet, crash};
use clink_server::{CapturingOtpSender, Config, RunningServer};
use serde_json::Value;
use sqlx::Row;

const ALICE: &str = "090-1212-3434";
const BOB: &str = "090-5656-7878";
const PIN: &str = "2468";

fn clink(home: &Path, server: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clink"));
    command
        .arg("--home")
        .arg(home)
        .args(["--server", server])
        .env_remove("CLINK_PIN")
        .env_remove(crash::CRASH_AT_ENV);
    command
}

fn run(home: &Path, server: &str, args: &[&str]) -> Output {
    clink(home, server).args(args).output().expect("clink runs")
}

fn ok(home: &Path, server: &str, args: &[&str]) -> String {
    let out = run(home, server, args);
    assert!(
        out.status.success(),
        "clink {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(home: &Path, server: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, server, &all)).expect("JSON output")
}

/// A command that must fail under `--json`: nothing on standard output, one
/// `{code, message}` object on standard error. Returns it and the status.
fn json_error(home: &Path, server: &str, args: &[&str]) -> (Value, i32) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(home, server, &all);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "clink {args:?} succeeded: {stdout}");
    assert!(
        stdout.is_empty(),
        "clink {args:?} printed a result: {stdout}"
    );
    let error: Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("clink {args:?}: not JSON ({e}): {stderr}"));
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{error}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    (error, out.status.code().expect("exited"))
}

/// Puts `amount` into the account of the wallet in `home` (number `phone`):
/// the operator's cash-in, then a sync to see it. The one place these tests
/// bring money in.
fn fund(home: &Path, server: &str, phone: &str, amount: i64) {
    cash_in::cash_in(server, phone, amount);
    ok(home, server, &["sync"]);
}

async fn start_server(dir: &Path) -> (RunningServer, Arc<CapturingOtpSender>) {
    let mut config = Config::with_database(format!("sqlite:{}", dir.join("clink.db").display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.join("pin-secret"));
    cash_in::enable(&mut config);
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone()).await.unwrap();
    (server, otp)
}

/// Registers the wallet in `home` through `clink`; returns its E.164 number.
fn register(home: &Path, url: &str, otp: &CapturingOtpSender, phone: &str, name: &str) -> String {
    ok(home, url, &["init"]);
    let started = json(home, url, &["register", phone]);
    let e164 = started["phone"].as_str().unwrap().to_string();
    let code = otp.last_code(&e164).expect("a code was sent");
    ok(home, url, &["verify", &code, "--name", name, "--pin", PIN]);
    e164
}

/// The wallet `clink` keeps in `home`, opened through the library to draft
/// thousands of items in one process.
fn library_wallet(home: &Path, url: &str) -> Wallet {
    let secrets: Arc<dyn SecretStore> =
        Arc::new(FileSecretStore::new(home.join("secrets").to_str().unwrap()).unwrap());
    Wallet::open(home.join("data").to_str().unwrap(), url, secrets).unwrap()
}

/// A TCP proxy in front of `upstream` whose uploads go at `bytes_per_sec`,
/// as on a slow mobile uplink: a big batch takes longer to arrive than a
/// small request sent after it.
async fn slow_uplink(upstream: SocketAddr, bytes_per_sec: usize) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                        let secs = n as f64 / bytes_per_sec as f64;
                        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    let _ = to_client.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

/// The server's ledger, read directly.
struct Ledger {
    pool: sqlx::AnyPool,
    runtime: tokio::runtime::Handle,
}

impl Ledger {
    fn ids(&self, sql: &str, e164: &str) -> BTreeSet<String> {
        self.runtime.block_on(async {
            sqlx::query(sql)
                .bind(e164)
                .fetch_all(&self.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
    }

    /// Every transfer `e164` is a party to.
    fn transfers_of(&self, e164: &str) -> BTreeSet<String> {
        self.ids(
            "SELECT t.id FROM transfers t JOIN users u ON u.account_id IN (t.debit_account, t.credit_account) WHERE u.phone = $1",
            e164,
        )
    }

    /// The claims waiting for `e164` to pay them.
    fn pending_claims_of(&self, e164: &str) -> BTreeSet<String> {
        self.ids(
            "SELECT t.id FROM transfers t JOIN users u ON u.account_id = t.debit_account WHERE u.phone = $1 AND t.kind = 'claim' AND t.state = 'pending'",
            e164,
        )
    }

    /// Sends posted from `e164` and claims made by `e164`.
    fn made_by(&self, e164: &str) -> (usize, usize) {
        let sends = self.ids(
            "SELECT t.id FROM transfers t JOIN users u ON u.account_id = t.debit_account WHERE u.phone = $1 AND t.kind = 'send' AND t.state = 'posted'",
            e164,
        );
        let claims = self.ids(
            "SELECT t.id FROM transfers t JOIN users u ON u.account_id = t.credit_account WHERE u.phone = $1 AND t.kind = 'claim'",
            e164,
        );
        (sends.len(), claims.len())
    }

    fn balance_of(&self, e164: &str) -> i64 {
        self.runtime.block_on(async {
            sqlx::query(
                "SELECT a.balance FROM accounts a JOIN users u ON u.account_id = a.id WHERE u.phone = $1",
            )
            .bind(e164)
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .get(0)
        })
    }
}

/// The ids in a JSON array of transfers.
fn ids_of(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `clink sync` until it reaches the crash point `point`, then SIGKILLs it.
fn kill_sync_at(home: &Path, url: &str, markers: &Path, point: &str) {
    let marker = markers.join(format!("crashed-at-{point}"));
    let mut child = clink(home, url)
        .arg("sync")
        .env(crash::CRASH_AT_ENV, point)
        .env(crash::CRASH_DIR_ENV, markers)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("clink sync ended ({status}) before reaching {point}");
        }
        assert!(
            Instant::now() < deadline,
            "clink sync never reached {point}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// 3,000 items (six batches of 500) synced over a slow uplink, the sync
/// killed at four places in turn; then one sync to the end. Every item
/// posts once, and the wallet's balance, history and requests are the
/// server's; the payee sees every transfer after one sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_items_synced_through_kills_leave_the_wallet_as_the_server_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, otp) = start_server(dir.path()).await;
    let direct = server.url();
    let slow = format!("http://{}", slow_uplink(server.addr, 250_000).await);
    let ledger = Ledger {
        pool: server.state.db.pool.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let root = dir.path().to_path_buf();

    tokio::task::spawn_blocking(move || {
        let (alice, bob) = (root.join("alice"), root.join("bob"));
        let alice_phone = register(&alice, &direct, &otp, ALICE, "Alice");
        let bob_phone = register(&bob, &direct, &otp, BOB, "Bob");
        fund(&alice, &direct, ALICE, 1_000_000);
        // Bob asks Alice three times: her inbox.
        for amount in ["11", "12", "13"] {
            ok(&bob, &direct, &["draft", "request", ALICE, amount]);
        }
        ok(&bob, &direct, &["queue", "--pin", PIN]);
        ok(&bob, &direct, &["sync"]);

        // Alice's items: sends to Bob, every tenth a request to him.
        const ITEMS: usize = 3_000;
        let is_request = |i: usize| i % 10 == 9;
        let wallet = library_wallet(&alice, &direct);
        for i in 0..ITEMS {
            let amount = 1 + (i % 9) as i64;
            if is_request(i) {
                wallet.draft_request(BOB, amount, "ask").unwrap();
            } else {
                wallet.draft_send(BOB, amount, &format!("n{i}")).unwrap();
            }
        }
        drop(wallet);
        assert!(ok(&alice, &slow, &["queue", "--pin", PIN]).contains("3000 item(s) queued"));

        let markers = root.join("markers");
        std::fs::create_dir_all(&markers).unwrap();
        for point in [
            crash::BEFORE_REQUEST,
            crash::MID_RECORD,
            crash::BETWEEN_BATCHES,
            crash::AFTER_RESPONSE,
        ] {
            kill_sync_at(&alice, &slow, &markers, point);
        }
        let report = json(&alice, &slow, &["sync"]);
        assert_eq!(
            (
                &report["rejected"],
                &report["needs_action"],
                &report["still_sending"]
            ),
            (&Value::from(0), &Value::from(0), &Value::from(0)),
            "{report}"
        );

        // Each item once.
        let outbox = json(&alice, &slow, &["outbox"]);
        let outbox = outbox.as_array().unwrap();
        assert_eq!(outbox.len(), ITEMS);
        assert!(outbox.iter().all(|i| i["state"] == "accepted"));
        let requests = (0..ITEMS).filter(|&i| is_request(i)).count();
        assert_eq!(ledger.made_by(&alice_phone), (ITEMS - requests, requests));

        // Alice's wallet is the server's.
        let balance = json(&alice, &slow, &["balance"])["balance"]
            .as_i64()
            .unwrap();
        assert_eq!(balance, ledger.balance_of(&alice_phone));
        assert_eq!(report["balance"].as_i64(), Some(balance));
        let history = ids_of(&json(&alice, &slow, &["history", "--limit", "10000"]));
        assert_eq!(history, ledger.transfers_of(&alice_phone));
        let waiting = ids_of(&json(&alice, &slow, &["requests"]));
        assert_eq!(waiting, ledger.pending_claims_of(&alice_phone));
        assert_eq!(waiting.len(), 3);

        // Bob sees every transfer after one sync.
        let report = json(&bob, &direct, &["sync"]);
        assert_eq!(report["new_requests"].as_u64(), Some(requests as u64));
        let history = ids_of(&json(&bob, &direct, &["history", "--limit", "10000"]));
        assert_eq!(history.len(), ITEMS + 3);
        assert_eq!(history, ledger.transfers_of(&bob_phone));
        let waiting = ids_of(&json(&bob, &direct, &["requests"]));
        assert_eq!(waiting, ledger.pending_claims_of(&bob_phone));
        assert_eq!(waiting.len(), requests);
        let balance = json(&bob, &direct, &["balance"])["balance"]
            .as_i64()
            .unwrap();
        assert_eq!(balance, ledger.balance_of(&bob_phone));
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// `clink outbox | head` and the like: the reader goes away (before clink
/// writes, or after one line) and clink ends quietly, with no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_into_a_pipe_closed_early_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, otp) = start_server(dir.path()).await;
    let url = server.url();
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let alice = root.join("alice");
        register(&alice, &url, &otp, ALICE, "Alice");
        // Far more than a pipe holds (64 KiB) of each listing.
        let wallet = library_wallet(&alice, &url);
        for i in 0..2_000 {
            wallet.draft_send(BOB, 5, &format!("queued {i}")).unwrap();
        }
        drop(wallet);
        ok(&alice, &url, &["queue", "--pin", PIN]);
        let wallet = library_wallet(&alice, &url);
        for i in 0..2_000 {
            wallet.draft_send(BOB, 7, &format!("draft {i}")).unwrap();
        }
        drop(wallet);

        for args in [&["outbox"][..], &["--json", "outbox"], &["drafts"]] {
            for read_a_line in [false, true] {
                let mut child = clink(&alice, &url)
                    .args(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let stdout = child.stdout.take().unwrap();
                if read_a_line {
                    let mut line = String::new();
                    BufReader::new(stdout).read_line(&mut line).unwrap();
                    assert!(!line.is_empty(), "clink {args:?} printed nothing");
                } else {
                    drop(stdout);
                }
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success() && stderr.is_empty(),
                    "clink {args:?} into a closed pipe: {} {stderr}",
                    out.status
                );
            }
        }
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// With `--json` every error is `{"code", "message"}` on standard error and
/// the exit status is non-zero: refusals by the server, mistakes the wallet
/// finds, usage errors, a server that cannot be reached (after which the
/// items are still `queued`, and go once when it can).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_every_error_is_a_code_and_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (server, otp) = start_server(dir.path()).await;
    let url = server.url();
    let ledger = Ledger {
        pool: server.state.db.pool.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (alice, bob) = (root.join("alice"), root.join("bob"));
        let alice_phone = register(&alice, &url, &otp, ALICE, "Alice");
        register(&bob, &url, &otp, BOB, "Bob");
        fund(&alice, &url, ALICE, 1_000);

        let (e, status) = json_error(&alice, &url, &["approve", "t_nope", "--pin", PIN]);
        assert_eq!((e["code"].as_str(), status), (Some("not_found"), 1), "{e}");
        for amount in ["100", "200", "300"] {
            ok(&alice, &url, &["draft", "send", BOB, amount]);
        }
        let (e, _) = json_error(&alice, &url, &["queue", "--pin", "12"]);
        assert_eq!(e["code"], "invalid_input", "{e}");
        let (e, _) = json_error(&root.join("nobody"), &url, &["balance"]);
        assert_eq!(e["code"], "not_registered", "{e}");
        let (e, status) = json_error(&alice, &url, &["frobnicate"]);
        assert_eq!((e["code"].as_str(), status), (Some("usage"), 2), "{e}");

        // Offline: the error says so, and the items wait in the queue.
        ok(&alice, &url, &["queue", "--pin", PIN]);
        let nowhere = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let (e, _) = json_error(&alice, &nowhere, &["sync"]);
        assert_eq!(e["code"], "offline", "{e}");
        let outbox = json(&alice, &url, &["outbox"]);
        assert!(
            outbox
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["state"] == "queued"),
            "{outbox}"
        );
        assert_eq!(json(&alice, &url, &["sync"])["accepted"], 3);
        assert_eq!(json(&alice, &url, &["sync"])["accepted"], 0);
        assert_eq!(ledger.made_by(&alice_phone), (3, 0));

        // Without --json, errors stay sentences.
        let out = run(&alice, &url, &["approve", "t_nope", "--pin", PIN]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.starts_with("error: the server refused:"),
            "{stderr}"
        );
    })
    .await
    .unwrap();
    server.shutdown().await;
}
