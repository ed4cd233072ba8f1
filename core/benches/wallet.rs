//! End-to-end wallet figures against a real server on a loopback port
//! (in-process, SQLite): the time to sync 10,000 queued remittances, and the
//! time to open a wallet holding 100,000 history rows.
//!
//! Run with `cargo bench -p clink-core --bench wallet`. Each figure is the
//! median of `RUNS` runs; every sync run starts from 10,000 freshly queued
//! items.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clink_core::secrets::{MemorySecretStore, SecretStore};
use clink_core::store::{OutboxState, Store};
use clink_core::wallet::{DATABASE_FILE, Wallet, profile};
use clink_core::wire::{
    CashInRequest, Counterpart, Direction, TransferKind, TransferState, TransferView, paths,
};
use clink_server::config::BearerToken;
use clink_server::{CapturingOtpSender, Config};

const SYNC_ITEMS: usize = 10_000;
const SYNC_RUNS: usize = 3;
const HISTORY_ROWS: usize = 100_000;
const OPEN_RUNS: usize = 21;
const PIN: &str = "2468";
/// The opening balance comes in through the operator's cash-in.
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median over runs of one phase's total, with its count in that run.
fn median_phase<P>(runs: &[Vec<(P, Duration, u64)>], phase: usize) -> (Duration, u64) {
    let mut samples: Vec<(Duration, u64)> = runs.iter().map(|r| (r[phase].1, r[phase].2)).collect();
    samples.sort();
    samples[samples.len() / 2]
}

async fn registered(
    url: &str,
    otp: &CapturingOtpSender,
    phone: &str,
    name: &str,
) -> (Wallet, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
    let wallet = Wallet::open(dir.path().to_str().unwrap(), url, secrets).unwrap();
    let started = wallet.register(phone).await.unwrap();
    let code = otp.last_code(&started.phone).unwrap();
    wallet.verify(&code, name, PIN).await.unwrap();
    (wallet, dir)
}

async fn sync_figures() {
    let server_dir = tempfile::tempdir().unwrap();
    let mut config = Config::with_database(format!(
        "sqlite:{}",
        server_dir.path().join("clink.db").display()
    ));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(server_dir.path().join("pin-secret"));
    config.max_amount = 1_000_000_000;
    config.operator_token = Some(BearerToken::new(OPERATOR_TOKEN).unwrap());
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone()).await.unwrap();
    let url = server.url();
    let (alice, _alice_dir) = registered(&url, &otp, "090-1000-0001", "Alice").await;
    let (_bob, _bob_dir) = registered(&url, &otp, "090-1000-0002", "Bob").await;
    let funded = reqwest::Client::new()
        .post(format!("{url}{}", paths::OPERATOR_CASH_IN))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&CashInRequest {
            idempotency_key: "opening".into(),
            phone: "090-1000-0001".into(),
            amount: 1_000_000_000,
            reference: "opening balance".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(funded.status(), 201, "cash-in refused");
    alice.sync_now().await.unwrap();

    let mut draft_times = Vec::new();
    let mut queue_times = Vec::new();
    let mut sync_times = Vec::new();
    let mut wallet_phases = Vec::new();
    let mut server_phases = Vec::new();
    for run in 0..SYNC_RUNS {
        let start = Instant::now();
        let ids: Vec<i64> = (0..SYNC_ITEMS)
            .map(|i| {
                alice
                    .draft_send("090-1000-0002", 1 + (i % 100) as i64, "bench")
                    .unwrap()
                    .id
            })
            .collect();
        draft_times.push(start.elapsed());
        let start = Instant::now();
        alice.queue_drafts(ids, PIN).unwrap();
        queue_times.push(start.elapsed());
        profile::take();
        clink_server::sync::profile::take();
        let start = Instant::now();
        let report = alice.sync_now().await.unwrap();
        let took = start.elapsed();
        wallet_phases.push(profile::take());
        server_phases.push(clink_server::sync::profile::take());
        assert_eq!(
            report.accepted as usize, SYNC_ITEMS,
            "run {run}: {report:?}"
        );
        assert_eq!(alice.balance().unwrap(), report.balance);
        assert!(
            alice
                .outbox()
                .unwrap()
                .iter()
                .all(|item| item.state == OutboxState::Accepted),
            "run {run}: an item is not accepted in the phone's store"
        );
        let history: std::collections::HashSet<String> = alice
            .history(u32::MAX, None)
            .unwrap()
            .into_iter()
            .map(|view| view.id)
            .collect();
        assert!(
            alice.outbox().unwrap().iter().all(|item| item
                .transfer_id
                .as_ref()
                .is_some_and(|t| history.contains(t))),
            "run {run}: an accepted item is missing from the phone's history"
        );
        sync_times.push(took);
        println!("  run {run}: sync of {SYNC_ITEMS} items took {took:?}");
    }
    println!(
        "draft {SYNC_ITEMS} sends (one durable write each)   median {:>10.1?}",
        median(draft_times)
    );
    println!(
        "queue {SYNC_ITEMS} drafts (sign + seal, one tx)     median {:>10.1?}",
        median(queue_times)
    );
    println!(
        "sync {SYNC_ITEMS} queued items end to end          median {:>10.1?}",
        median(sync_times)
    );
    println!(
        "  where the sync's time goes (median per run; the phases marked * add up to the sync, the others overlap them):"
    );
    for (i, &(phase, _, _)) in wallet_phases[0].iter().enumerate() {
        let (took, count) = median_phase(&wallet_phases, i);
        let mark = if phase.on_the_path() { '*' } else { ' ' };
        println!(
            "  {mark} {:<34} {took:>10.1?}  ({count} times)",
            phase.name()
        );
    }
    for (i, &(phase, _, _)) in server_phases[0].iter().enumerate() {
        let (took, count) = median_phase(&server_phases, i);
        let per = took.checked_div(count.max(1) as u32).unwrap_or_default();
        println!(
            "    {:<34} {took:>10.1?}  ({count} requests, {per:.1?} each)",
            phase.name()
        );
    }
    server.shutdown().await;
}

fn open_figures() {
    let dir = tempfile::tempdir().unwrap();
    let views: Vec<TransferView> = (0..HISTORY_ROWS)
        .map(|i| TransferView {
            id: format!("t_{i:016x}"),
            kind: TransferKind::Send,
            state: TransferState::Posted,
            void_reason: None,
            direction: if i % 2 == 0 {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            amount: 1 + (i % 1000) as i64,
            counterpart: Counterpart {
                display_name: "Bob".into(),
                phone: None,
            },
            memo: "history row".into(),
            created_at_ms: 1_700_000_000_000 + i as i64 * 1000,
            decided_at_ms: Some(1_700_000_000_000 + i as i64 * 1000),
            expires_at_ms: None,
        })
        .collect();
    {
        let mut store = Store::open(&dir.path().join(DATABASE_FILE)).unwrap();
        store.put_history_many(&views).unwrap();
    }
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
    let path = dir.path().to_str().unwrap();
    let mut open_times = Vec::new();
    let mut page_times = Vec::new();
    for _ in 0..OPEN_RUNS {
        let start = Instant::now();
        let wallet = Wallet::open(path, "http://127.0.0.1:9", secrets.clone()).unwrap();
        open_times.push(start.elapsed());
        let start = Instant::now();
        let page = wallet.history(50, None).unwrap();
        page_times.push(start.elapsed());
        assert_eq!(page.len(), 50);
    }
    println!(
        "open a wallet with {HISTORY_ROWS} history rows         median {:>10.1?}",
        median(open_times)
    );
    println!(
        "first history page (50) of {HISTORY_ROWS} rows          median {:>10.1?}",
        median(page_times)
    );
}

fn main() {
    open_figures();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(sync_figures());
}
