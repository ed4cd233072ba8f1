//! Money enters only through an authorised path: the operator's cash-in
//! (bearer credential, idempotency key kept for ever, audit record). Every
//! way a user might credit themselves is tried and refused. A real server on
//! a loopback port, on SQLite and on PostgreSQL.

mod common;

use clink_core::wire::*;
use common::{Backend, OPERATOR_TOKEN, TestServer, User, key, operator_cash_in};
use sqlx::Row;

on_both_backends!(
    no_request_of_a_user_raises_their_own_balance,
    cash_in_credits_once_per_key_and_leaves_an_audit_record,
    concurrent_cash_ins_with_one_key_credit_once,
    cash_in_refuses_bad_input_and_bad_credentials,
    operator_endpoints_do_not_exist_without_a_token,
);

/// A request signed by `user`'s device key, sent as is.
async fn signed(user: &User, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    common::signed_raw(
        user.client.base_url(),
        &user.key,
        method,
        path,
        body.as_bytes(),
    )
    .await
}

fn cash_in_request(phone: &str, amount: i64, key: &str) -> CashInRequest {
    CashInRequest {
        idempotency_key: key.into(),
        phone: phone.into(),
        amount,
        reference: "desk 7 receipt 0042".into(),
    }
}

async fn no_request_of_a_user_raises_their_own_balance(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let mallory = ts.user("Mallory", "1234").await;
    let deposit = format!(r#"{{"idempotency_key":"{}","amount":1000000}}"#, key());

    // The old self-deposit endpoint is gone, signed or not.
    let (status, body) = signed(&mallory, "POST", "/v1/transfers/deposit", &deposit).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    for method in ["POST", "GET", "PUT"] {
        let resp = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                format!("{}/v1/transfers/deposit", ts.url()),
            )
            .body(deposit.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method}");
    }

    // The operator's endpoint wants the operator's credential, not a device
    // signature.
    let own = serde_json::to_string(&cash_in_request(&mallory.phone, 1_000_000, &key())).unwrap();
    let (status, body) = signed(&mallory, "POST", paths::OPERATOR_CASH_IN, &own).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    // A queued item cannot be a deposit either: sync carries sends and claims only.
    let sync = format!(
        r#"{{"inbox_after":0,"items":[{{"kind":"deposit","body":{},"signed_at_ms":{},"signature":"x"}}]}}"#,
        serde_json::to_string(&deposit).unwrap(),
        clink_server::now_ms()
    );
    let (status, body) = signed(&mallory, "POST", paths::SYNC, &sync).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("malformed_json"))
    );

    // Paying or asking oneself moves nothing.
    let to_self = SendRequest {
        idempotency_key: key(),
        payee: mallory.phone.clone(),
        amount: 1,
        memo: String::new(),
        pin: mallory.pin.clone(),
        challenge_id: None,
        challenge_response: None,
    };
    assert_eq!(
        common::code_of(mallory.client.send(&to_self).await).code,
        ErrorCode::SelfTransfer
    );
    let from_self = ClaimRequest {
        idempotency_key: key(),
        payer: mallory.phone.clone(),
        amount: 1_000_000,
        memo: String::new(),
    };
    assert_eq!(
        common::code_of(mallory.client.claim(&from_self).await).code,
        ErrorCode::SelfTransfer
    );

    assert_eq!(mallory.balance().await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
    let transfers: i64 = sqlx::query("SELECT COUNT(*) FROM transfers")
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(transfers, 0, "no attempt wrote a transfer");
}

async fn cash_in_credits_once_per_key_and_leaves_an_audit_record(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let request = cash_in_request(&alice.phone, 5_000, "desk-7-0042");

    let first = operator_cash_in(&ts.url(), OPERATOR_TOKEN, &request).await;
    assert_eq!(first.status(), 201);
    let first: CashInResponse = first.json().await.unwrap();
    assert_eq!(
        (
            first.phone.as_str(),
            first.display_name.as_str(),
            first.amount
        ),
        (alice.e164.as_str(), "Alice", 5_000)
    );

    // A retry, however late, gets the same answer and moves nothing more.
    let again = operator_cash_in(&ts.url(), OPERATOR_TOKEN, &request).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<CashInResponse>().await.unwrap(), first);
    // Even once users' idempotency records are long gone.
    sqlx::query("DELETE FROM idempotency")
        .execute(ts.pool())
        .await
        .unwrap();
    let late = operator_cash_in(&ts.url(), OPERATOR_TOKEN, &request).await;
    assert_eq!(late.json::<CashInResponse>().await.unwrap(), first);
    // The same key for another cash-in is a conflict.
    let mut other = request.clone();
    other.amount = 6_000;
    let conflict = operator_cash_in(&ts.url(), OPERATOR_TOKEN, &other).await;
    assert_eq!(conflict.status(), 409);
    let body: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(body["code"], "idempotency_key_reused");

    assert_eq!(alice.balance().await, 5_000);
    assert_eq!(ts.sum_of_balances().await, 0);

    // The user sees it, in history and inbox, from "Cash-in".
    let history = alice.client.history(None, 10).await.unwrap();
    assert_eq!(history.items.len(), 1);
    let seen = &history.items[0];
    assert_eq!(
        (
            seen.id.as_str(),
            seen.kind,
            seen.direction,
            seen.counterpart.display_name.as_str(),
            seen.memo.as_str()
        ),
        (
            first.transfer_id.as_str(),
            TransferKind::Deposit,
            Direction::Incoming,
            "Cash-in",
            "desk 7 receipt 0042"
        )
    );
    let inbox = alice.client.inbox(0).await.unwrap();
    assert!(
        inbox
            .notifications
            .iter()
            .any(|n| n.kind == NotificationKind::PaymentReceived
                && n.transfer.id == first.transfer_id)
    );

    // One audit record: which credential, whom, how much, what.
    let rows = sqlx::query(
        "SELECT credential, action, account_id, amount, reference, transfer_id FROM operator_audit",
    )
    .fetch_all(ts.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let credential: String = row.get(0);
    assert!(credential.starts_with("operator-token:"), "{credential}");
    assert!(!credential.contains(OPERATOR_TOKEN));
    assert_eq!(row.get::<String, _>(1), "cash_in");
    assert_eq!(row.get::<i64, _>(3), 5_000);
    assert_eq!(row.get::<String, _>(4), "desk 7 receipt 0042");
    assert_eq!(row.get::<String, _>(5), first.transfer_id);
}

async fn concurrent_cash_ins_with_one_key_credit_once(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let bob = ts.user("Bob", "1234").await;
    let request = cash_in_request(&bob.phone, 700, "desk-1-race");
    let url = ts.url();
    let tries: Vec<_> = (0..12)
        .map(|_| {
            let (url, request) = (url.clone(), request.clone());
            tokio::spawn(async move {
                let resp = operator_cash_in(&url, OPERATOR_TOKEN, &request).await;
                assert_eq!(resp.status(), 201);
                resp.json::<CashInResponse>().await.unwrap()
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tries {
        ids.insert(t.await.unwrap().transfer_id);
    }
    assert_eq!(ids.len(), 1, "every try got the one answer");
    assert_eq!(bob.balance().await, 700);
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn cash_in_refuses_bad_input_and_bad_credentials(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| c.max_amount = 100_000).await else {
        return;
    };
    let carol = ts.user("Carol", "1234").await;
    let url = ts.url();
    let refused = |token: &'static str, request: CashInRequest| {
        let url = url.clone();
        async move {
            let resp = operator_cash_in(&url, token, &request).await;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body["code"].as_str().unwrap().to_string())
        }
    };
    let good = |amount| cash_in_request(&carol.phone, amount, &key());
    assert_eq!(
        refused("a-wrong-operator-token", good(100)).await,
        (401, "unauthenticated".into())
    );
    assert_eq!(
        refused(OPERATOR_TOKEN, good(0)).await,
        (400, "invalid_amount".into())
    );
    assert_eq!(
        refused(OPERATOR_TOKEN, good(100_001)).await,
        (400, "amount_too_large".into())
    );
    assert_eq!(
        refused(
            OPERATOR_TOKEN,
            cash_in_request(&common::fresh_phone(), 100, &key())
        )
        .await,
        (404, "unknown_payee".into())
    );
    assert_eq!(
        refused(OPERATOR_TOKEN, cash_in_request("not a number", 100, &key())).await,
        (400, "invalid_phone_number".into())
    );
    for reference in ["", "receipt \u{202e}1200", "slip\u{200b}7", "r\u{7}"] {
        let mut bad_reference = good(100);
        bad_reference.reference = reference.into();
        assert_eq!(
            refused(OPERATOR_TOKEN, bad_reference).await,
            (400, "invalid_request".into()),
            "{reference:?}"
        );
    }
    // No bearer header at all.
    let resp = reqwest::Client::new()
        .post(format!("{url}{}", paths::OPERATOR_CASH_IN))
        .json(&good(100))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(carol.balance().await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn operator_endpoints_do_not_exist_without_a_token(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| c.operator_token = None).await else {
        return;
    };
    let dave = ts.user("Dave", "1234").await;
    let resp = operator_cash_in(
        &ts.url(),
        OPERATOR_TOKEN,
        &cash_in_request(&dave.phone, 100, &key()),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(dave.balance().await, 0);
}
