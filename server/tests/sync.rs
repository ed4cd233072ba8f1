//! `POST /v1/sync` over HTTP, on SQLite and PostgreSQL: items signed at queue
//! time, executed once through the money rules, refused items reported.

mod common;

use clink_core::http_client::ClientError;
use clink_core::wire::signing;
use clink_core::wire::*;
use common::{Backend, TestServer, User, key};

on_both_backends!(
    items_run_once_in_order_and_refusals_do_not_stop_the_batch,
    tampered_stale_and_oversized_syncs_are_refused,
    a_wrong_pin_on_many_items_counts_once,
    a_replayed_sync_request_runs_none_of_its_items,
    an_item_failing_in_a_shared_job_undoes_none_of_the_others,
);

fn now_ms() -> i64 {
    clink_server::now_ms()
}

/// A send item signed by `user` at `signed_at_ms`.
fn send_item(
    user: &User,
    to: &User,
    amount: i64,
    idempotency_key: &str,
    signed_at_ms: i64,
) -> SyncItem {
    send_item_with_pin(user, to, amount, idempotency_key, signed_at_ms, &user.pin)
}

/// A send item confirmed with `pin`, right or not.
fn send_item_with_pin(
    user: &User,
    to: &User,
    amount: i64,
    idempotency_key: &str,
    signed_at_ms: i64,
    pin: &str,
) -> SyncItem {
    let body = serde_json::to_string(&SendRequest {
        idempotency_key: idempotency_key.into(),
        payee: to.phone.clone(),
        amount,
        memo: "sync".into(),
        pin: pin.into(),
        challenge_id: None,
        challenge_response: None,
    })
    .unwrap();
    let signature = user
        .key
        .sign(
            "POST",
            paths::SEND,
            body.as_bytes(),
            signed_at_ms,
            idempotency_key,
        )
        .into_iter()
        .find(|(n, _)| *n == signing::HEADER_SIGNATURE)
        .unwrap()
        .1;
    SyncItem {
        kind: SyncItemKind::Send,
        body,
        signed_at_ms,
        signature,
    }
}

fn item_key() -> String {
    // Item keys double as signing nonces: 16-64 of [A-Za-z0-9_-].
    format!("item-{}-{}", key(), "0123456789")
}

async fn sync(user: &User, items: Vec<SyncItem>) -> Result<SyncResponse, ClientError> {
    user.client
        .call(
            reqwest::Method::POST,
            paths::SYNC,
            Some(&SyncRequest {
                inbox_after: 0,
                items,
            }),
            true,
        )
        .await
}

fn rejected_code(r: &SyncItemResult) -> Option<ErrorCode> {
    match &r.outcome {
        SyncOutcome::Rejected { error } => Some(error.code),
        SyncOutcome::Accepted { .. } => None,
    }
}

async fn items_run_once_in_order_and_refusals_do_not_stop_the_batch(backend: Backend) {
    let Some(server) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = server.user("Alice", "1234").await;
    let bob = server.user("Bob", "5678").await;
    alice.cash_in(1_000).await;
    let t = now_ms() - 3 * 3600 * 1000; // confirmed offline three hours ago
    let keys: Vec<String> = (0..4).map(|_| item_key()).collect();
    let items = vec![
        send_item(&alice, &bob, 600, &keys[0], t),
        send_item(&alice, &bob, 600, &keys[1], t), // only 400 left
        send_item(&alice, &bob, 300, &keys[2], t),
        send_item(&alice, &alice, 10, &keys[3], t),
    ];
    let first = sync(&alice, items.clone()).await.unwrap();
    let codes: Vec<Option<ErrorCode>> = first.results.iter().map(rejected_code).collect();
    assert_eq!(
        codes,
        vec![
            None,
            Some(ErrorCode::InsufficientFunds),
            None,
            Some(ErrorCode::SelfTransfer)
        ]
    );
    assert_eq!(
        first
            .results
            .iter()
            .map(|r| r.idempotency_key.clone())
            .collect::<Vec<_>>(),
        keys
    );
    assert_eq!(first.balance, 100);
    // The same items again (a lost answer): the same transfers, no new money moved.
    let again = sync(&alice, items[..1].to_vec()).await.unwrap();
    match (&first.results[0].outcome, &again.results[0].outcome) {
        (SyncOutcome::Accepted { transfer: a }, SyncOutcome::Accepted { transfer: b }) => {
            assert_eq!(a, b)
        }
        other => panic!("expected the first answer again, got {other:?}"),
    }
    assert_eq!(alice.balance().await, 100);
    assert_eq!(bob.balance().await, 900);
    assert_eq!(server.sum_of_balances().await, 0);
    // Bob's inbox comes with his (empty) sync.
    let bobs = sync(&bob, vec![]).await.unwrap();
    assert_eq!(bobs.inbox.notifications.len(), 2);
    assert_eq!(bobs.balance, 900);
}

async fn tampered_stale_and_oversized_syncs_are_refused(backend: Backend) {
    let Some(server) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = server.user("Alice", "1234").await;
    let bob = server.user("Bob", "5678").await;
    alice.cash_in(1_000).await;
    let mut tampered = send_item(&alice, &bob, 10, &item_key(), now_ms());
    tampered.body = tampered.body.replace("\"amount\":10", "\"amount\":900");
    let stale = send_item(
        &alice,
        &bob,
        10,
        &item_key(),
        now_ms() - MAX_ITEM_AGE_MS - 60_000,
    );
    let by_bob = send_item(&bob, &alice, 10, &item_key(), now_ms()); // Bob's item in Alice's sync
    let mut unreadable = send_item(&alice, &bob, 10, &item_key(), now_ms());
    unreadable.body = "{".into();
    let r = sync(&alice, vec![tampered, stale, by_bob, unreadable])
        .await
        .unwrap();
    let codes: Vec<Option<ErrorCode>> = r.results.iter().map(rejected_code).collect();
    assert_eq!(
        codes,
        vec![
            Some(ErrorCode::BadSignature),
            Some(ErrorCode::StaleTimestamp),
            Some(ErrorCode::BadSignature),
            Some(ErrorCode::MalformedJson)
        ]
    );
    assert_eq!(alice.balance().await, 1_000);

    let too_many: Vec<SyncItem> = (0..=MAX_SYNC_ITEMS)
        .map(|_| send_item(&alice, &bob, 1, &item_key(), now_ms()))
        .collect();
    match sync(&alice, too_many).await {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.code, ErrorCode::InvalidRequest);
            assert_eq!(e.status(), 400);
            assert!(e.message.contains("at most 500"), "{}", e.message);
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(alice.balance().await, 1_000);
}

/// Drafts queued with a mistyped PIN all carry it; the mistake counts as one
/// wrong attempt, not one per item, so it does not lock the account.
async fn a_wrong_pin_on_many_items_counts_once(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let bob = ts.user("Bob", "1234").await;
    alice.cash_in(1_000).await;
    let now = now_ms();
    let mut items: Vec<SyncItem> = (0..10)
        .map(|_| send_item_with_pin(&alice, &bob, 10, &item_key(), now, "9999"))
        .collect();
    items.push(send_item(&alice, &bob, 10, &item_key(), now));
    let response = sync(&alice, items).await.unwrap();
    let codes: Vec<_> = response.results.iter().map(rejected_code).collect();
    assert!(
        codes[..10].iter().all(|c| *c == Some(ErrorCode::WrongPin)),
        "every item with the wrong PIN is refused: {codes:?}"
    );
    assert_eq!(codes[10], None, "the item with the right PIN posts");
    let counted: Vec<_> = response.results[..10]
        .iter()
        .filter_map(|r| match &r.outcome {
            SyncOutcome::Rejected { error } => error.attempts_remaining,
            _ => None,
        })
        .collect();
    assert_eq!(counted, vec![4], "one wrong attempt counted, four remain");
    // Not locked: a payment with the right PIN goes through.
    alice.send(&bob, 5).await.unwrap();
    assert_eq!(alice.balance().await, 1_000 - 10 - 5);
}

/// The request's nonce is recorded while its items are checked; a request
/// whose nonce was already used is still refused whole, and none of its
/// items reaches the ledger (they post once when sent in a fresh request).
async fn a_replayed_sync_request_runs_none_of_its_items(backend: Backend) {
    let Some(server) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = server.user("Alice", "1234").await;
    let bob = server.user("Bob", "5678").await;
    alice.cash_in(1_000).await;
    let items: Vec<SyncItem> = (0..20)
        .map(|_| send_item(&alice, &bob, 10, &item_key(), now_ms()))
        .collect();
    let body = serde_json::to_vec(&SyncRequest {
        inbox_after: 0,
        items: items.clone(),
    })
    .unwrap();
    let nonce = signing::new_nonce(&ring::rand::SystemRandom::new());
    let post = |path: &'static str, body: Vec<u8>| {
        let headers = alice.key.sign("POST", path, &body, now_ms(), &nonce);
        let url = format!("{}{path}", server.url());
        async move {
            let mut req = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            for (n, v) in headers {
                req = req.header(n, v);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // Another request takes the nonce first.
    let empty = serde_json::to_vec(&SyncRequest {
        inbox_after: 0,
        items: Vec::new(),
    })
    .unwrap();
    assert_eq!(post(paths::SYNC, empty).await.0, 200);
    let (status, answer) = post(paths::SYNC, body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("replayed_nonce"), "{answer}");
    assert_eq!(
        alice.balance().await,
        1_000,
        "no item of the refused request ran"
    );

    let r = sync(&alice, items).await.unwrap();
    assert!(
        r.results.iter().all(|r| rejected_code(r).is_none()),
        "{r:?}"
    );
    assert_eq!(alice.balance().await, 800);
}

/// A sync's items share writer jobs. An item whose writes fail part of the
/// way (here a trigger refuses its ledger entry) is refused alone: the items
/// before and after it in the same job are posted, once each, and sending
/// the batch again replays their answers and moves no more money.
async fn an_item_failing_in_a_shared_job_undoes_none_of_the_others(backend: Backend) {
    let Some(server) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = server.user("Alice", "1234").await;
    let bob = server.user("Bob", "5678").await;
    alice.cash_in(10_000).await;
    const FAILING: i64 = 4_243;
    let trigger: &[&str] = match backend {
        Backend::Sqlite => &["CREATE TRIGGER refuse_entry BEFORE INSERT ON entries \
             WHEN NEW.amount = 4243 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_entry() RETURNS trigger AS $$ BEGIN \
             IF NEW.amount = 4243 THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_entry BEFORE INSERT ON entries \
             FOR EACH ROW EXECUTE FUNCTION refuse_entry()",
        ],
    };
    for statement in trigger {
        sqlx::query(statement).execute(server.pool()).await.unwrap();
    }
    let amounts = [10, 20, FAILING, 30, 40, FAILING, 50];
    let items: Vec<SyncItem> = amounts
        .iter()
        .map(|&amount| send_item(&alice, &bob, amount, &item_key(), now_ms()))
        .collect();
    let first = sync(&alice, items.clone()).await.unwrap();
    let refused: Vec<bool> = first
        .results
        .iter()
        .map(|r| rejected_code(r).is_some())
        .collect();
    assert_eq!(
        refused,
        amounts.map(|a| a == FAILING).to_vec(),
        "{:?}",
        first.results
    );
    assert_eq!(first.balance, 10_000 - 150);
    assert_eq!(bob.balance().await, 150);
    let posted: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'send'")
        .fetch_one(server.pool())
        .await
        .unwrap();
    assert_eq!(posted, 5, "each accepted item is posted once");

    let again = sync(&alice, items).await.unwrap();
    for (a, b) in first.results.iter().zip(&again.results) {
        match (&a.outcome, &b.outcome) {
            (SyncOutcome::Accepted { transfer: a }, SyncOutcome::Accepted { transfer: b }) => {
                assert_eq!(a, b)
            }
            (SyncOutcome::Rejected { .. }, SyncOutcome::Rejected { .. }) => {}
            other => panic!("a different answer the second time: {other:?}"),
        }
    }
    assert_eq!(alice.balance().await, 10_000 - 150);
    assert_eq!(server.sum_of_balances().await, 0);
}
