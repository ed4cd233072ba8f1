//! A send posted in one statement (`ledger::post_send_directly`) writes
//! everything the step-by-step path writes when every rule holds, and
//! nothing at all when any rule does not: the caller then runs the steps,
//! which name the rule and count a wrong PIN.

mod common;

use clink_core::wire::TransferKind;
use clink_server::ledger::{self, DirectSend, NewTransfer, StoredResponse};
use clink_server::writer::Outcome;
use common::{Backend, TestServer, User};
use sqlx::Row;

on_both_backends!(a_direct_send_writes_all_or_nothing);

struct Party {
    account: i64,
    pin_hash: String,
}

async fn party(ts: &TestServer, user: &User) -> Party {
    let row = sqlx::query("SELECT account_id, pin_hash FROM users WHERE phone = $1")
        .bind(&user.e164)
        .fetch_one(ts.pool())
        .await
        .unwrap();
    Party {
        account: row.get(0),
        pin_hash: row.get(1),
    }
}

/// One attempt, as the writer runs it.
struct Attempt {
    id: String,
    key: String,
    nonce: String,
    amount: i64,
    pin_hash: String,
}

/// Runs `attempt` from `payer` to `payee` in a writer job; returns whether
/// it was posted.
async fn attempt(ts: &TestServer, payer: &Party, payee: &Party, a: Attempt) -> bool {
    let backend = ts.server.state.db.backend;
    let (debit, credit) = (payer.account, payee.account);
    ts.server
        .state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                let t = NewTransfer {
                    id: &a.id,
                    kind: TransferKind::Send,
                    debit,
                    credit,
                    amount: a.amount,
                    memo: "direct",
                    expires_at: None,
                };
                let response = StoredResponse {
                    status: 201,
                    body: format!("{{\"id\":\"{}\"}}", a.id),
                };
                let send = DirectSend {
                    nonce: Some(("device-key", &a.nonce)),
                    pin_hash: &a.pin_hash,
                    transfer: &t,
                    key: &a.key,
                    fingerprint: "fingerprint",
                    response: &response,
                    now: clink_server::now_ms(),
                };
                Outcome::from_result(ledger::post_send_directly(conn, backend, &send).await)
            })
        })
        .await
        .unwrap()
}

async fn count(ts: &TestServer, sql: &str, arg: &str) -> i64 {
    let row = sqlx::query(sql)
        .bind(arg)
        .fetch_one(ts.pool())
        .await
        .unwrap();
    row.get::<i64, _>(0)
}

/// Rows any attempt wrote: its transfer, nonce and idempotency record.
async fn rows_of(ts: &TestServer, id: &str, key: &str, nonce: &str) -> [i64; 3] {
    [
        count(ts, "SELECT COUNT(*) FROM transfers WHERE id = $1", id).await,
        count(ts, "SELECT COUNT(*) FROM nonces WHERE nonce = $1", nonce).await,
        count(ts, "SELECT COUNT(*) FROM idempotency WHERE key = $1", key).await,
    ]
}

async fn a_direct_send_writes_all_or_nothing(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let bob = ts.user("Bob", "5678").await;
    alice.cash_in(100).await;
    let (a, b) = (party(&ts, &alice).await, party(&ts, &bob).await);
    let fresh = |n: &str, amount: i64, pin_hash: &str| Attempt {
        id: format!("t_direct_{n}"),
        key: format!("key-{n}"),
        nonce: format!("nonce-{n}"),
        amount,
        pin_hash: pin_hash.to_string(),
    };

    // Every rule that does not hold leaves no row behind.
    let refused = [
        ("wrong-pin", fresh("wrong-pin", 10, &b.pin_hash)),
        ("no-funds", fresh("no-funds", 101, &a.pin_hash)),
    ];
    for (what, attempt_) in refused {
        let (id, key, nonce) = (
            attempt_.id.clone(),
            attempt_.key.clone(),
            attempt_.nonce.clone(),
        );
        assert!(!attempt(&ts, &a, &b, attempt_).await, "{what}");
        assert_eq!(rows_of(&ts, &id, &key, &nonce).await, [0, 0, 0], "{what}");
    }
    assert_eq!(alice.balance().await, 100);
    assert_eq!(bob.balance().await, 0);

    // Every rule holds: all rows, the money moved by double entry.
    assert!(attempt(&ts, &a, &b, fresh("ok", 30, &a.pin_hash)).await);
    assert_eq!(
        rows_of(&ts, "t_direct_ok", "key-ok", "nonce-ok").await,
        [1, 1, 1]
    );
    assert_eq!(alice.balance().await, 70);
    assert_eq!(bob.balance().await, 30);
    assert_eq!(ts.sum_of_balances().await, 0);
    let entries = sqlx::query(
        "SELECT e.account_id, e.amount FROM entries e JOIN transfers t ON t.seq = e.transfer_seq
         WHERE t.id = $1 AND t.state = 'posted' ORDER BY e.amount",
    )
    .bind("t_direct_ok")
    .fetch_all(ts.pool())
    .await
    .unwrap();
    let entries: Vec<(i64, i64)> = entries.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(entries, vec![(a.account, -30), (b.account, 30)]);
    let notified = sqlx::query(
        "SELECT COUNT(*) FROM notifications n JOIN transfers t ON t.seq = n.transfer_seq
         WHERE t.id = $1 AND n.account_id = $2 AND n.kind = 'payment_received'",
    )
    .bind("t_direct_ok")
    .bind(b.account)
    .fetch_one(ts.pool())
    .await
    .unwrap()
    .get::<i64, _>(0);
    assert_eq!(notified, 1);
    let stored = sqlx::query("SELECT response_body FROM idempotency WHERE key = $1")
        .bind("key-ok")
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get::<String, _>(0);
    assert_eq!(stored, "{\"id\":\"t_direct_ok\"}");

    // The key already answered, the nonce already used: nothing more.
    let mut same_key = fresh("same-key", 1, &a.pin_hash);
    same_key.key = "key-ok".into();
    assert!(!attempt(&ts, &a, &b, same_key).await);
    let mut same_nonce = fresh("same-nonce", 1, &a.pin_hash);
    same_nonce.nonce = "nonce-ok".into();
    assert!(!attempt(&ts, &a, &b, same_nonce).await);
    assert_eq!(
        rows_of(&ts, "t_direct_same-key", "key-same-key", "nonce-same-key").await,
        [0, 0, 0]
    );
    assert_eq!(
        rows_of(
            &ts,
            "t_direct_same-nonce",
            "key-same-nonce",
            "nonce-same-nonce"
        )
        .await,
        [0, 0, 0]
    );

    // Wrong attempts counted, payments locked, a second factor wanted: the
    // step-by-step path must run (it clears, refuses or asks).
    for (what, sql) in [
        (
            "counted",
            "UPDATE users SET failed_pins = 1 WHERE account_id = $1",
        ),
        (
            "locked",
            "UPDATE users SET failed_pins = 0, locked_until = 9000000000000 WHERE account_id = $1",
        ),
        (
            "second factor",
            "UPDATE users SET locked_until = 0, second_factor_above = 5 WHERE account_id = $1",
        ),
    ] {
        sqlx::query(sql)
            .bind(a.account)
            .execute(ts.pool())
            .await
            .unwrap();
        let n = what.replace(' ', "-");
        assert!(
            !attempt(&ts, &a, &b, fresh(&n, 10, &a.pin_hash)).await,
            "{what}"
        );
        assert_eq!(
            rows_of(
                &ts,
                &format!("t_direct_{n}"),
                &format!("key-{n}"),
                &format!("nonce-{n}")
            )
            .await,
            [0, 0, 0],
            "{what}"
        );
    }
    assert_eq!(alice.balance().await, 70);
    assert_eq!(ts.sum_of_balances().await, 0);
}
