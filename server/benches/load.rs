//! Load benchmark: single signed sends against a real server over loopback,
//! on SQLite and (when CLINK_TEST_POSTGRES_URL is set) PostgreSQL.
//!
//!     cargo bench -p clink-server --bench load
//!     scripts/with-postgres cargo bench -p clink-server --bench load
//!
//! Prints posted transfers per second and p50/p99 latency per backend, and
//! the same as one `RESULT backend=… clients=… tps=… p50_ms=… p99_ms=…`
//! line per run for scripts (`scripts/bench-vs-pgbench`).
//! Knobs: CLINK_BENCH_SECONDS (10), CLINK_BENCH_CLIENTS (64; a comma list such
//! as `8,64` runs each in turn on the same server), CLINK_BENCH_ACCOUNTS (200),
//! CLINK_BENCH_BACKENDS (`sqlite,postgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clink_core::http_client::ApiClient;
use clink_core::wire::signing::DeviceKey;
use clink_core::wire::*;
use clink_server::{CapturingOtpSender, Config};
use ring::rand::SystemRandom;
use sqlx::{Connection, Executor};

/// Opening balances come in through the operator's cash-in.
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Account {
    client: ApiClient,
    phone: String,
}

/// The client counts to run, from CLINK_BENCH_CLIENTS.
fn client_counts() -> Vec<usize> {
    let counts: Vec<usize> = std::env::var("CLINK_BENCH_CLIENTS")
        .unwrap_or_else(|_| "64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| c > 0)
        .collect();
    if counts.is_empty() { vec![64] } else { counts }
}

fn backend_wanted(name: &str) -> bool {
    std::env::var("CLINK_BENCH_BACKENDS")
        .map(|list| list.split(',').any(|b| b.trim() == name))
        .unwrap_or(true)
}

async fn run(label: &str, database_url: String, dir: &std::path::Path) {
    let seconds = env_or("CLINK_BENCH_SECONDS", 10);
    let accounts = env_or("CLINK_BENCH_ACCOUNTS", 200) as usize;

    let mut config = Config::with_database(database_url);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.join("pin-secret"));
    config.operator_token = Some(clink_server::config::BearerToken::new(OPERATOR_TOKEN).unwrap());
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone())
        .await
        .expect("server starts");
    let url = server.url();

    let mut users = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let phone = format!("090-1{:03}-{:04}", i / 10_000, i % 10_000);
        let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
        let client = ApiClient::new(&url).with_key(Arc::new(key));
        let reg = client.register(&phone).await.unwrap();
        let code = otp.last_code(reg.phone.as_e164()).unwrap();
        client
            .verify(&VerifyRequest {
                phone: phone.clone(),
                code,
                display_name: format!("U{i}"),
                pin: "1234".into(),
            })
            .await
            .unwrap();
        let opened = reqwest::Client::new()
            .post(format!("{url}{}", paths::OPERATOR_CASH_IN))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&CashInRequest {
                idempotency_key: format!("open-{i}"),
                phone: phone.clone(),
                amount: 1_000_000,
                reference: "opening balance".into(),
            })
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status(), 201, "cash-in refused");
        users.push(Account { client, phone });
    }
    let users = Arc::new(users);
    for (round, clients) in client_counts().into_iter().enumerate() {
        let (elapsed, mut latencies) = drive(&users, round, clients, seconds).await;
        latencies.sort();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
                .as_secs_f64()
                * 1e3
        };
        let tps = latencies.len() as f64 / elapsed;
        let (p50, p99) = (pct(0.50), pct(0.99));
        println!(
            "{label:<9} {clients} clients, {accounts} accounts, {seconds} s: {tps:>6.0} posted sends/s   p50 {p50:>6.2} ms   p99 {p99:>6.2} ms   ({} sends)",
            latencies.len()
        );
        println!(
            "RESULT backend={label} clients={clients} tps={tps:.1} p50_ms={p50:.3} p99_ms={p99:.3} sends={}",
            latencies.len()
        );
    }
    server.shutdown().await;
}

/// Sends from `clients` concurrent clients for `seconds`; returns the time
/// taken and every send's latency.
async fn drive(
    users: &Arc<Vec<Account>>,
    round: usize,
    clients: usize,
    seconds: u64,
) -> (f64, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = c;
            while Instant::now() < deadline {
                let payer = n % users.len();
                let payee = (payer + 1 + (n * 7) % (users.len() - 1)) % users.len();
                n += clients;
                let request = SendRequest {
                    idempotency_key: format!("b{round}-{c}-{n}"),
                    payee: users[payee].phone.clone(),
                    amount: 1,
                    memo: String::new(),
                    pin: "1234".into(),
                    challenge_id: None,
                    challenge_response: None,
                };
                let t0 = Instant::now();
                users[payer].client.send(&request).await.expect("send");
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    (started.elapsed().as_secs_f64(), latencies)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        if backend_wanted("sqlite") {
            run(
                "sqlite",
                format!("sqlite:{}", dir.path().join("bench.db").display()),
                dir.path(),
            )
            .await;
        }
        if !backend_wanted("postgres") {
            return;
        }
        if let Ok(base) = std::env::var("CLINK_TEST_POSTGRES_URL") {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&base).await.unwrap();
            conn.execute("DROP DATABASE IF EXISTS clink_bench")
                .await
                .unwrap();
            conn.execute("CREATE DATABASE clink_bench").await.unwrap();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            run("postgres", format!("{prefix}/clink_bench"), dir.path()).await;
        } else {
            println!("postgres  skipped: set CLINK_TEST_POSTGRES_URL (scripts/with-postgres does)");
        }
    });
}
