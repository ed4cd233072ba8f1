//! The server keeps working when its database connection breaks under it.

mod common;

use clink_core::wire::SendRequest;
use clink_server::db::WRITER_APPLICATION_NAME;
use common::{Backend, TestServer};
use sqlx::Row;

/// PostgreSQL drops the ledger writer's connection (a restart, a failover,
/// an operator's `pg_terminate_backend`): the request caught in it fails
/// with a retryable error, the writer reconnects, and a retry under the
/// same idempotency key posts the payment exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_reconnects_after_postgres_drops_its_connection() {
    let Some(ts) = TestServer::start(Backend::Postgres, |_| {}).await else {
        return;
    };
    let payer = ts.user("Payer", "1234").await;
    let payee = ts.user("Payee", "1234").await;
    payer.cash_in(1_000).await;

    let terminated: i64 = sqlx::query(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(WRITER_APPLICATION_NAME)
    .fetch_one(ts.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(terminated, 1, "the writer's one connection was found");

    let request = SendRequest {
        idempotency_key: common::key(),
        payee: payee.phone.clone(),
        amount: 300,
        memo: "after the drop".into(),
        pin: payer.pin.clone(),
        challenge_id: None,
        challenge_response: None,
    };
    let mut failures = 0;
    let posted = loop {
        match payer.client.send(&request).await {
            Ok(transfer) => break transfer,
            Err(e) => {
                let code = e.code().expect("an API error, not a transport failure");
                assert!(code.is_retryable(), "a retryable error, got {e}");
                failures += 1;
                assert!(failures < 50, "the writer never came back");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert!(failures >= 1, "the first try met the dropped connection");
    // Later payments go through at once, and the retried one counted once.
    payer.send(&payee, 100).await.unwrap();
    assert_eq!(payer.balance().await, 600);
    assert_eq!(payee.balance().await, 400);
    assert_eq!(posted.amount, 300);
    assert_eq!(ts.sum_of_balances().await, 0);
}
