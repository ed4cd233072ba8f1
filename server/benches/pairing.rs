//! Pairing benchmark: pairs of phones bumping at random moments against a
//! real server over loopback, on SQLite and (when CLINK_TEST_POSTGRES_URL
//! is set) PostgreSQL, each pair in a room of its own.
//!
//!     cargo bench -p clink-server --bench pairing
//!     scripts/with-postgres cargo bench -p clink-server --bench pairing
//!
//! Prints how many pairs were matched correctly (and wrongly), the latency
//! of `POST /v1/bumps`, and the time from the knock until the payer's phone
//! learns the match (the settle delay, 2.08 s, is most of it).
//! Knobs: CLINK_BENCH_PAIRS (200), CLINK_BENCH_SPREAD_MS (5000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clink_core::http_client::ApiClient;
use clink_core::wire::signing::DeviceKey;
use clink_core::wire::*;
use clink_server::{CapturingOtpSender, Config};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ring::rand::SystemRandom;
use sqlx::{Connection, Executor};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fingerprint only reports from the same `room` match.
fn fingerprint(room: u64) -> Vec<u8> {
    let mut state = room.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = vec![2u8];
    for _ in 0..92 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&(state as u16).to_le_bytes());
    }
    bytes
}

fn report(role: BumpRole, instant_ms: i64, room: u64) -> BumpReport {
    BumpReport {
        role,
        amount: (role == BumpRole::Payee).then_some(100),
        instant_ms,
        impulse: ImpulseFeatures {
            peak_mps2: 40.0,
            delta_v_mps: 0.2,
            rise_ms: 2.0,
            duration_ms: 4.0,
            direction: [0.0, 1.0, 0.0],
        },
        fingerprint: fingerprint(room),
        location: None,
    }
}

async fn user(url: &str, otp: &CapturingOtpSender, i: usize, name: String) -> ApiClient {
    let phone = format!("090-2{:03}-{:04}", i / 10_000, i % 10_000);
    let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let client = ApiClient::new(url).with_key(Arc::new(key));
    let reg = client.register(&phone).await.unwrap();
    let code = otp.last_code(reg.phone.as_e164()).unwrap();
    client
        .verify(&VerifyRequest {
            phone,
            code,
            display_name: name,
            pin: "1234".into(),
        })
        .await
        .unwrap();
    client
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run(label: &str, database_url: String, dir: &std::path::Path) {
    let pairs = env_or("CLINK_BENCH_PAIRS", 200) as usize;
    let spread_ms = env_or("CLINK_BENCH_SPREAD_MS", 5_000);
    let mut config = Config::with_database(database_url);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.pin_secret_file = Some(dir.join("pin-secret"));
    let otp = Arc::new(CapturingOtpSender::default());
    let server = clink_server::start(config, otp.clone())
        .await
        .expect("server starts");
    let url = server.url();
    let mut phones = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let payer = user(&url, &otp, 2 * i, format!("Payer {i}")).await;
        let payee = user(&url, &otp, 2 * i + 1, format!("Shop {i}")).await;
        phones.push((payer, payee));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, (payer, payee)) in phones.into_iter().enumerate() {
        let delay = Duration::from_millis(rng.gen_range(0..spread_ms));
        let clock_error_ms = rng.gen_range(-30..=30);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + delay).into()).await;
            let knock = clink_server::now_ms();
            let room = 10_000 + i as u64;
            let t0 = Instant::now();
            let body = |role, instant| SubmitBumpRequest {
                report: report(role, instant, room),
                memo: String::new(),
            };
            let (payer_report, payee_report) = (
                body(BumpRole::Payer, knock + clock_error_ms),
                body(BumpRole::Payee, knock),
            );
            let (a, b) = tokio::join!(
                payer.submit_bump(&payer_report),
                payee.submit_bump(&payee_report)
            );
            let submit_ms = t0.elapsed().as_secs_f64() * 1e3;
            let mut view = a.expect("payer report");
            b.expect("payee report");
            while matches!(view.outcome, BumpOutcome::Pending { .. }) {
                view = payer.bump_status(&view.report_id, 5_000).await.unwrap();
            }
            let decided_ms = (clink_server::now_ms() - knock) as f64;
            let correct = match &view.outcome {
                BumpOutcome::Confirm { request } => {
                    Some(request.payee_display_name == format!("Shop {i}"))
                }
                _ => None,
            };
            (submit_ms, decided_ms, correct)
        }));
    }
    let (mut submits, mut decisions) = (Vec::new(), Vec::new());
    let (mut right, mut wrong, mut unmatched) = (0, 0, 0);
    for t in tasks {
        let (s, d, correct) = t.await.unwrap();
        submits.push(s);
        decisions.push(d);
        match correct {
            Some(true) => right += 1,
            Some(false) => wrong += 1,
            None => unmatched += 1,
        }
    }
    submits.sort_by(f64::total_cmp);
    decisions.sort_by(f64::total_cmp);
    println!(
        "{label:<9} {pairs} pairs over {spread_ms} ms: {right} matched right, {wrong} wrong, {unmatched} unmatched; \
         POST /v1/bumps (two at once) p50 {:.1} ms p99 {:.1} ms; knock to payer's Confirm p50 {:.0} ms p99 {:.0} ms",
        pct(&submits, 0.5),
        pct(&submits, 0.99),
        pct(&decisions, 0.5),
        pct(&decisions, 0.99),
    );
    server.shutdown().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run(
            "sqlite",
            format!("sqlite:{}", dir.path().join("bench.db").display()),
            dir.path(),
        )
        .await;
        if let Ok(base) = std::env::var("CLINK_TEST_POSTGRES_URL") {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&base).await.unwrap();
            conn.execute("DROP DATABASE IF EXISTS clink_bench_pairing")
                .await
                .unwrap();
            conn.execute("CREATE DATABASE clink_bench_pairing")
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            run(
                "postgres",
                format!("{prefix}/clink_bench_pairing"),
                dir.path(),
            )
            .await;
        } else {
            println!("postgres  skipped: set CLINK_TEST_POSTGRES_URL (scripts/with-postgres does)");
        }
    });
}
