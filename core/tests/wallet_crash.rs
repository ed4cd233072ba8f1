//! Kill tests: a child process holding the wallet is SIGKILLed at each point
//! of a sync that matters; a new process reopens the wallet and syncs; the
//! server's ledger must show every queued remittance exactly once.
//!
//! The child is this test binary run again on the ignored test
//! `child_syncs_until_killed`, with the crash point in its environment.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clink_core::wallet::OutboxState;
use clink_core::wallet::crash;
use support::{PIN, TestServer, WalletHome, open_wallet, registered};

const CHILD_HOME_ENV: &str = "CLINK_TEST_CHILD_HOME";
const CHILD_URL_ENV: &str = "CLINK_TEST_CHILD_URL";
const AMOUNT: i64 = 7;

/// Runs only as the child of a kill test.
#[test]
#[ignore = "run by the kill tests as their child process"]
fn child_syncs_until_killed() {
    let (Ok(home), Ok(url)) = (std::env::var(CHILD_HOME_ENV), std::env::var(CHILD_URL_ENV)) else {
        panic!("{CHILD_HOME_ENV} and {CHILD_URL_ENV} must be set");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let wallet = open_wallet(Path::new(&home), &url);
    let result = runtime.block_on(wallet.sync_now());
    panic!("the sync was meant to be killed at its crash point, but it ended: {result:?}");
}

async fn killed_at_then_resynced_posts_each_item_once(point: &str, items: usize) {
    let server = TestServer::start().await;
    let (alice_home, bob_home) = (WalletHome::new(), WalletHome::new());
    let (alice, alice_phone) = registered(&server, &alice_home, "Alice").await;
    let (_bob, bob_phone) = registered(&server, &bob_home, "Bob").await;
    server.fund(&alice, &alice_phone, 1_000_000).await;
    let ids: Vec<i64> = (0..items)
        .map(|i| {
            alice
                .draft_send(&bob_phone, AMOUNT, &format!("n{i}"))
                .unwrap()
                .id
        })
        .collect();
    alice.queue_drafts(ids, PIN).unwrap();
    drop(alice);

    let marker = alice_home.dir.path().join(format!("crashed-at-{point}"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_syncs_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_HOME_ENV, alice_home.dir.path())
        .env(CHILD_URL_ENV, server.url())
        .env(crash::CRASH_AT_ENV, point)
        .env(crash::CRASH_DIR_ENV, alice_home.dir.path())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended ({status}) before reaching {point}");
        }
        assert!(Instant::now() < deadline, "the child never reached {point}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let alice = open_wallet(alice_home.dir.path(), &server.url());
    let report = alice.sync_now().await.unwrap();
    assert_eq!(
        report.rejected + report.needs_action + report.still_sending,
        0,
        "{report:?}"
    );
    let outbox = alice.outbox().unwrap();
    assert_eq!(outbox.len(), items);
    assert!(outbox.iter().all(|i| i.state == OutboxState::Accepted));
    let total = AMOUNT * items as i64;
    assert_eq!(
        server.posted_sends_from(&alice_phone).await,
        (items as i64, total),
        "killed at {point}"
    );
    assert_eq!(server.balance_of(&bob_phone).await, total);
    assert_eq!(alice.balance().unwrap(), 1_000_000 - total);
    assert_eq!(server.sum_of_balances().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_request_leaves_then_resynced_posts_each_item_once() {
    killed_at_then_resynced_posts_each_item_once(crash::BEFORE_REQUEST, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_server_committed_then_resynced_posts_each_item_once() {
    killed_at_then_resynced_posts_each_item_once(crash::AFTER_RESPONSE, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_recording_half_a_batch_then_resynced_posts_each_item_once() {
    killed_at_then_resynced_posts_each_item_once(crash::MID_RECORD, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_two_batches_then_resynced_posts_each_item_once() {
    // 500 + 30: the kill comes after the first batch is recorded.
    killed_at_then_resynced_posts_each_item_once(crash::BETWEEN_BATCHES, 530).await;
}
