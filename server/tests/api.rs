//! The HTTP API end to end: a real server on a loopback port, driven over
//! HTTP, on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use clink_core::http_client::ApiClient;
use clink_core::wire::signing::{self, DeviceKey};
use clink_core::wire::*;
use common::{Backend, TestServer, code_of, key};
use ring::rand::SystemRandom;

on_both_backends!(
    registration_opens_an_empty_account_and_refuses_bad_codes,
    registration_codes_are_rate_limited_per_number,
    send_moves_money_once_and_notifies_the_payee,
    claim_waits_in_the_payers_inbox_until_approved,
    declined_and_cancelled_claims_move_no_money,
    claims_expire_on_approval_and_by_the_sweeper,
    wrong_pins_count_down_then_lock_payments_until_the_lockout_ends,
    idempotent_retry_replays_and_key_misuse_is_a_conflict,
    every_bad_input_is_a_clear_4xx,
    tampered_stale_and_replayed_requests_are_refused,
    second_factor_policy_refuses_what_it_cannot_check,
    withdrawal_needs_funds_and_pin,
    history_pages_newest_first,
    the_inbox_pages_its_notifications_and_says_when_more_wait,
);

async fn registration_opens_an_empty_account_and_refuses_bad_codes(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let me = alice.client.me().await.unwrap();
    assert_eq!(
        (
            me.balance,
            me.display_name.as_str(),
            me.currency.code.as_str()
        ),
        (0, "Alice", "JPY")
    );
    assert!(
        me.phone.as_e164().starts_with("+8190"),
        "local numbers become E.164: {}",
        me.phone
    );

    // The same number cannot register twice.
    let (key2, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let other = ApiClient::new(&ts.url()).with_key(key2.into());
    assert_eq!(
        code_of(other.register(&alice.phone).await).code,
        ErrorCode::AlreadyRegistered
    );

    // A wrong code says how many attempts remain; the right one still works.
    let phone = common::fresh_phone();
    let (key3, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let bob = ApiClient::new(&ts.url()).with_key(key3.into());
    let reg = bob.register(&phone).await.unwrap();
    let code = ts.otp.last_code(reg.phone.as_e164()).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verify = |code: &str| VerifyRequest {
        phone: phone.clone(),
        code: code.into(),
        display_name: "Bob".into(),
        pin: "5678".into(),
    };
    let e = code_of(bob.verify(&verify(wrong)).await);
    assert_eq!(
        (e.code, e.attempts_remaining),
        (ErrorCode::WrongCode, Some(4))
    );
    // A different device cannot finish someone else's registration.
    let (key4, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let thief = ApiClient::new(&ts.url()).with_key(key4.into());
    assert_eq!(
        code_of(thief.verify(&verify(&code)).await).code,
        ErrorCode::RegistrationNotFound
    );
    // Bad PIN format and display name are refused before the code is spent.
    let mut bad_pin = verify(&code);
    bad_pin.pin = "12".into();
    assert_eq!(
        code_of(bob.verify(&bad_pin).await).code,
        ErrorCode::InvalidPin
    );
    let mut bad_name = verify(&code);
    bad_name.display_name = "  ".into();
    assert_eq!(
        code_of(bob.verify(&bad_name).await).code,
        ErrorCode::InvalidDisplayName
    );
    assert_eq!(
        bob.verify(&verify(&code)).await.unwrap().display_name,
        "Bob"
    );
    // The code is single-use.
    assert_eq!(
        code_of(bob.verify(&verify(&code)).await).code,
        ErrorCode::RegistrationNotFound
    );

    // Five wrong codes end a registration.
    let phone = common::fresh_phone();
    let (key5, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let carol = ApiClient::new(&ts.url()).with_key(key5.into());
    let reg = carol.register(&phone).await.unwrap();
    let code = ts.otp.last_code(reg.phone.as_e164()).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let req = |code: &str| VerifyRequest {
        phone: phone.clone(),
        code: code.into(),
        display_name: "Carol".into(),
        pin: "5678".into(),
    };
    for remaining in (0..5).rev() {
        assert_eq!(
            code_of(carol.verify(&req(wrong)).await).attempts_remaining,
            Some(remaining)
        );
    }
    assert_eq!(
        code_of(carol.verify(&req(&code)).await).code,
        ErrorCode::RegistrationNotFound
    );

    // An unregistered device cannot call anything else.
    assert_eq!(code_of(carol.me().await).code, ErrorCode::Unauthenticated);
}

async fn send_moves_money_once_and_notifies_the_payee(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(10_000).await;
    let sent = alice
        .client
        .send(&SendRequest {
            idempotency_key: key(),
            payee: bob.phone.clone(),
            amount: 800,
            memo: "lunch".into(),
            pin: "1234".into(),
            challenge_id: None,
            challenge_response: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (sent.state, sent.direction, sent.amount),
        (TransferState::Posted, Direction::Outgoing, 800)
    );
    assert_eq!(sent.counterpart.display_name, "Bob");
    assert_eq!((alice.balance().await, bob.balance().await), (9_200, 800));
    assert_eq!(ts.sum_of_balances().await, 0);

    let inbox = bob.client.inbox(0).await.unwrap();
    assert_eq!(inbox.notifications.len(), 1);
    let n = &inbox.notifications[0];
    assert_eq!(
        (n.kind, n.transfer.id.as_str(), n.transfer.direction),
        (
            NotificationKind::PaymentReceived,
            sent.id.as_str(),
            Direction::Incoming
        )
    );
    assert_eq!(
        (
            n.transfer.counterpart.display_name.as_str(),
            n.transfer.memo.as_str()
        ),
        ("Alice", "lunch")
    );
    // The cursor moves past what was seen.
    assert!(
        bob.client
            .inbox(inbox.cursor)
            .await
            .unwrap()
            .notifications
            .is_empty()
    );
    // Either party can look the transfer up; nobody else can.
    assert_eq!(
        bob.client.transfer(&sent.id).await.unwrap().direction,
        Direction::Incoming
    );
    let carol = ts.user("Carol", "1111").await;
    assert_eq!(
        code_of(carol.client.transfer(&sent.id).await).code,
        ErrorCode::NotFound
    );
}

async fn claim_waits_in_the_payers_inbox_until_approved(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (shop, customer) = (
        ts.user("Shop A", "1234").await,
        ts.user("Customer", "5678").await,
    );
    customer.cash_in(1_000).await;
    let claim = shop.claim(&customer, 800, "coffee").await;
    assert_eq!(
        (claim.state, claim.direction, claim.kind),
        (
            TransferState::Pending,
            Direction::Incoming,
            TransferKind::Claim
        )
    );
    assert!(claim.expires_at_ms.is_some());

    let inbox = customer.client.inbox(0).await.unwrap();
    assert_eq!(inbox.pending_claims.len(), 1);
    let waiting = &inbox.pending_claims[0];
    assert_eq!(
        (
            waiting.counterpart.display_name.as_str(),
            waiting.amount,
            waiting.memo.as_str()
        ),
        ("Shop A", 800, "coffee")
    );
    // After the cash-in's own notification.
    assert_eq!(
        inbox.notifications.last().unwrap().kind,
        NotificationKind::ClaimReceived
    );
    assert_eq!(
        customer.balance().await,
        1_000,
        "a pending claim moves no money"
    );

    // The requester cannot approve their own claim.
    assert_eq!(
        code_of(shop.client.approve_claim(&claim.id, "1234").await).code,
        ErrorCode::NotFound
    );
    let approved = customer
        .client
        .approve_claim(&claim.id, "5678")
        .await
        .unwrap();
    assert_eq!(
        (approved.state, approved.direction),
        (TransferState::Posted, Direction::Outgoing)
    );
    assert_eq!((customer.balance().await, shop.balance().await), (200, 800));
    // Approving again is answered with the same outcome, and moves nothing.
    assert_eq!(
        customer
            .client
            .approve_claim(&claim.id, "5678")
            .await
            .unwrap()
            .state,
        TransferState::Posted
    );
    assert_eq!((customer.balance().await, shop.balance().await), (200, 800));
    // Declining a paid claim is refused.
    assert_eq!(
        code_of(customer.client.decline_claim(&claim.id).await).code,
        ErrorCode::ClaimNotPending
    );
    assert!(
        customer
            .client
            .inbox(0)
            .await
            .unwrap()
            .pending_claims
            .is_empty()
    );
    let kinds: Vec<_> = shop
        .client
        .inbox(0)
        .await
        .unwrap()
        .notifications
        .iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(kinds, vec![NotificationKind::ClaimApproved]);

    // A claim the payer cannot cover stays pending.
    let big = shop.claim(&customer, 5_000, "too much").await;
    assert_eq!(
        code_of(customer.client.approve_claim(&big.id, "5678").await).code,
        ErrorCode::InsufficientFunds
    );
    assert_eq!(
        customer.client.inbox(0).await.unwrap().pending_claims.len(),
        1
    );
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn declined_and_cancelled_claims_move_no_money(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (shop, customer) = (
        ts.user("Shop", "1234").await,
        ts.user("Customer", "5678").await,
    );
    customer.cash_in(1_000).await;

    let declined = shop.claim(&customer, 300, "no thanks").await;
    assert_eq!(
        customer
            .client
            .decline_claim(&declined.id)
            .await
            .unwrap()
            .void_reason,
        Some(VoidReason::Declined)
    );
    assert_eq!(
        code_of(customer.client.approve_claim(&declined.id, "5678").await).code,
        ErrorCode::ClaimNotPending
    );
    assert_eq!(
        code_of(shop.client.cancel_claim(&declined.id).await).code,
        ErrorCode::ClaimNotPending
    );

    let cancelled = shop.claim(&customer, 400, "oops").await;
    // Only the requester cancels.
    assert_eq!(
        code_of(customer.client.cancel_claim(&cancelled.id).await).code,
        ErrorCode::NotFound
    );
    assert_eq!(
        shop.client
            .cancel_claim(&cancelled.id)
            .await
            .unwrap()
            .void_reason,
        Some(VoidReason::Cancelled)
    );
    assert_eq!(
        code_of(customer.client.approve_claim(&cancelled.id, "5678").await).code,
        ErrorCode::ClaimNotPending
    );

    assert_eq!((customer.balance().await, shop.balance().await), (1_000, 0));
    let shop_kinds: Vec<_> = shop
        .client
        .inbox(0)
        .await
        .unwrap()
        .notifications
        .iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(shop_kinds, vec![NotificationKind::ClaimDeclined]);
    let customer_kinds: Vec<_> = customer
        .client
        .inbox(0)
        .await
        .unwrap()
        .notifications
        .iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(
        customer_kinds,
        vec![
            NotificationKind::PaymentReceived, // the cash-in
            NotificationKind::ClaimReceived,
            NotificationKind::ClaimReceived,
            NotificationKind::ClaimCancelled
        ]
    );
    assert!(
        customer
            .client
            .inbox(0)
            .await
            .unwrap()
            .pending_claims
            .is_empty()
    );
    assert_eq!(
        code_of(customer.client.approve_claim("t_nonexistent", "5678").await).code,
        ErrorCode::NotFound
    );
}

async fn claims_expire_on_approval_and_by_the_sweeper(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| {
        c.claim_ttl_secs = 1;
        c.sweep_secs = 3600; // no sweeps until asked
    })
    .await
    else {
        return;
    };
    let (shop, customer) = (
        ts.user("Shop", "1234").await,
        ts.user("Customer", "5678").await,
    );
    customer.cash_in(1_000).await;
    let claim = shop.claim(&customer, 300, "late").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        customer
            .client
            .inbox(0)
            .await
            .unwrap()
            .pending_claims
            .is_empty(),
        "an expired claim leaves the inbox"
    );
    let e = code_of(customer.client.approve_claim(&claim.id, "5678").await);
    assert_eq!(e.code, ErrorCode::ClaimExpired);
    assert_eq!(customer.balance().await, 1_000);
    assert_eq!(
        shop.client.transfer(&claim.id).await.unwrap().void_reason,
        Some(VoidReason::Expired)
    );

    // The sweeper expires claims nobody touches, and tells the requester.
    let ignored = shop.claim(&customer, 200, "ignored").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let state = ts.server.state.clone();
    let expired = state
        .writer
        .run(|conn| {
            Box::pin(async move {
                clink_server::writer::Outcome::from_result(
                    clink_server::sweeper::sweep(conn, clink_server::now_ms()).await,
                )
            })
        })
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(
        shop.client.transfer(&ignored.id).await.unwrap().void_reason,
        Some(VoidReason::Expired)
    );
    let kinds: Vec<_> = shop
        .client
        .inbox(0)
        .await
        .unwrap()
        .notifications
        .iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            NotificationKind::ClaimExpired,
            NotificationKind::ClaimExpired
        ]
    );
}

async fn wrong_pins_count_down_then_lock_payments_until_the_lockout_ends(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| c.lockout_secs = 2).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let send = |pin: &str| SendRequest {
        idempotency_key: key(),
        payee: bob.phone.clone(),
        amount: 100,
        memo: String::new(),
        pin: pin.into(),
        challenge_id: None,
        challenge_response: None,
    };
    // A right PIN resets the count.
    assert_eq!(
        code_of(alice.client.send(&send("0000")).await).attempts_remaining,
        Some(4)
    );
    alice.client.send(&send("1234")).await.unwrap();
    for remaining in (1..5).rev() {
        let e = code_of(alice.client.send(&send("0000")).await);
        assert_eq!(
            (e.code, e.attempts_remaining),
            (ErrorCode::WrongPin, Some(remaining))
        );
        assert!(e.message.contains(&remaining.to_string()), "{}", e.message);
    }
    let e = code_of(alice.client.send(&send("0000")).await);
    assert_eq!(e.code, ErrorCode::AccountLocked);
    assert!(e.locked_until_ms.is_some());
    // Locked: even the right PIN is refused, approvals too.
    assert_eq!(
        code_of(alice.client.send(&send("1234")).await).code,
        ErrorCode::AccountLocked
    );
    let claim = bob.claim(&alice, 50, "").await;
    assert_eq!(
        code_of(alice.client.approve_claim(&claim.id, "1234").await).code,
        ErrorCode::AccountLocked
    );
    assert_eq!(alice.balance().await, 900);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    alice.client.send(&send("1234")).await.unwrap();
    assert_eq!(alice.balance().await, 800);
}

async fn idempotent_retry_replays_and_key_misuse_is_a_conflict(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let request = SendRequest {
        idempotency_key: "pay-bob-1".into(),
        payee: bob.phone.clone(),
        amount: 300,
        memo: "m".into(),
        pin: "1234".into(),
        challenge_id: None,
        challenge_response: None,
    };
    let first = alice.client.send(&request).await.unwrap();
    let again = alice.client.send(&request).await.unwrap();
    assert_eq!(first, again, "a retry gets the same answer");
    assert_eq!(
        (alice.balance().await, bob.balance().await),
        (700, 300),
        "and moves no money twice"
    );
    let mut changed = request.clone();
    changed.amount = 301;
    let e = code_of(alice.client.send(&changed).await);
    assert_eq!(e.code, ErrorCode::IdempotencyKeyReused);
    // Keys belong to their user: Bob may use the same key for his own payment.
    bob.client
        .send(&SendRequest {
            idempotency_key: "pay-bob-1".into(),
            payee: alice.phone.clone(),
            amount: 10,
            memo: "m".into(),
            pin: "5678".into(),
            challenge_id: None,
            challenge_response: None,
        })
        .await
        .unwrap();
    // A refused request is not remembered: corrected, it may go through under its key.
    let mut too_much = request.clone();
    too_much.idempotency_key = "big".into();
    too_much.amount = 5_000;
    assert_eq!(
        code_of(alice.client.send(&too_much).await).code,
        ErrorCode::InsufficientFunds
    );
    alice.cash_in(10_000).await;
    alice.client.send(&too_much).await.unwrap();
    assert_eq!(alice.balance().await, 700 + 10 + 10_000 - 5_000);
    assert_eq!(ts.sum_of_balances().await, 0);
}

/// Sends a raw signed request and returns the status and the parsed body.
async fn raw(
    ts: &TestServer,
    key: &DeviceKey,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    common::signed_raw(&ts.url(), key, method, path, body).await
}

async fn every_bad_input_is_a_clear_4xx(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| c.max_amount = 100_000).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let send = |payee: &str, amount: i64, pin: &str| SendRequest {
        idempotency_key: key(),
        payee: payee.into(),
        amount,
        memo: String::new(),
        pin: pin.into(),
        challenge_id: None,
        challenge_response: None,
    };
    let cases: Vec<(SendRequest, ErrorCode, u16)> = vec![
        (send(&bob.phone, 0, "1234"), ErrorCode::InvalidAmount, 400),
        (send(&bob.phone, -5, "1234"), ErrorCode::InvalidAmount, 400),
        (
            send(&bob.phone, 100_001, "1234"),
            ErrorCode::AmountTooLarge,
            400,
        ),
        (
            send(&bob.phone, 5_000, "1234"),
            ErrorCode::InsufficientFunds,
            422,
        ),
        (
            send("not a number", 10, "1234"),
            ErrorCode::InvalidPhoneNumber,
            400,
        ),
        (
            send("090-0000", 10, "1234"),
            ErrorCode::InvalidPhoneNumber,
            400,
        ),
        (
            send("090-9999-9999", 10, "1234"),
            ErrorCode::UnknownPayee,
            404,
        ),
        (send(&alice.phone, 10, "1234"), ErrorCode::SelfTransfer, 422),
        (send(&bob.phone, 10, "12a4"), ErrorCode::InvalidPin, 400),
        (send(&bob.phone, 10, "9999"), ErrorCode::WrongPin, 403),
    ];
    for (request, code, status) in cases {
        let e = code_of(alice.client.send(&request).await);
        assert_eq!(
            (e.code, e.code.http_status()),
            (code, status),
            "{request:?}"
        );
        assert!(!e.message.is_empty());
    }
    let mut long_memo = send(&bob.phone, 10, "1234");
    long_memo.memo = "x".repeat(201);
    assert_eq!(
        code_of(alice.client.send(&long_memo).await).code,
        ErrorCode::InvalidMemo
    );
    let mut empty_key = send(&bob.phone, 10, "1234");
    empty_key.idempotency_key = String::new();
    assert_eq!(
        code_of(alice.client.send(&empty_key).await).code,
        ErrorCode::InvalidRequest
    );

    // Malformed, incomplete, over-complete and mistyped JSON, over raw HTTP.
    for body in [
        &b"{not json"[..],
        br#"{"payee":"090-1111-1111"}"#,
        br#"{"idempotency_key":"a","payee":"x","amount":1,"pin":"1234","extra":1}"#,
        br#"{"idempotency_key":"a","payee":"x","amount":"ten","pin":"1234"}"#,
        br#"{"idempotency_key":"a","payee":"x","amount":1e30,"pin":"1234"}"#,
        br#"{"idempotency_key":"a","payee":"x","amount":99999999999999999999,"pin":"1234"}"#,
        b"",
    ] {
        let (status, json) = raw(&ts, &alice.key, "POST", paths::SEND, body).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (400, Some("malformed_json")),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Unknown endpoints, methods and claim actions are JSON errors too.
    assert_eq!(
        raw(&ts, &alice.key, "GET", "/v1/nothing", b"").await,
        (
            404,
            serde_json::json!({"code": "not_found", "message": "no such endpoint"})
        )
    );
    assert_eq!(
        raw(&ts, &alice.key, "DELETE", paths::SEND, b"").await.1["code"],
        "method_not_allowed"
    );
    assert_eq!(
        raw(&ts, &alice.key, "POST", "/v1/claims/x/steal", b"{}")
            .await
            .1["code"],
        "not_found"
    );
    assert_eq!(
        raw(&ts, &alice.key, "GET", "/v1/history?limit=abc", b"")
            .await
            .1["code"],
        "invalid_request"
    );
    // Registration's unsigned first step checks its input too.
    let http = reqwest::Client::new();
    for (body, code) in [
        (
            r#"{"phone":"hello","public_key":"AAAA"}"#,
            "invalid_phone_number",
        ),
        (
            r#"{"phone":"090-1234-5678","public_key":"short"}"#,
            "invalid_request",
        ),
        (r#"{"phone":"090-1234-5678"}"#, "malformed_json"),
    ] {
        let resp = http
            .post(format!("{}{}", ts.url(), paths::REGISTER))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let json: serde_json::Value = resp.json().await.unwrap();
        assert_eq!((status, json["code"].as_str()), (400, Some(code)), "{body}");
    }
    assert_eq!(
        (alice.balance().await, bob.balance().await),
        (1_000, 0),
        "no bad input moved money"
    );
}

async fn tampered_stale_and_replayed_requests_are_refused(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let body = serde_json::to_vec(&SendRequest {
        idempotency_key: key(),
        payee: bob.phone.clone(),
        amount: 100,
        memo: String::new(),
        pin: "1234".into(),
        challenge_id: None,
        challenge_response: None,
    })
    .unwrap();
    let send = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let url = format!("{}{}", ts.url(), paths::SEND);
        async move {
            let mut req = reqwest::Client::new().post(url).body(body);
            for (n, v) in headers {
                req = req.header(n, v);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (
                status,
                resp.json::<serde_json::Value>().await.unwrap()["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        }
    };
    let signed = |ts_ms: i64| {
        alice
            .key
            .sign(
                "POST",
                paths::SEND,
                &body,
                ts_ms,
                &signing::new_nonce(&SystemRandom::new()),
            )
            .to_vec()
    };
    let now = clink_server::now_ms();

    // The body changed after signing (amount 100 -> 900).
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("100", "900")
        .into_bytes();
    assert_eq!(
        send(signed(now), tampered).await,
        (401, "bad_signature".into())
    );
    // Signed by another key than the one named.
    let mut forged = signed(now);
    forged[0].1 = bob.key.public_key_b64();
    assert_eq!(
        send(forged, body.clone()).await,
        (401, "bad_signature".into())
    );
    // Timestamps more than five minutes off, either way.
    assert_eq!(
        send(signed(now - 6 * 60_000), body.clone()).await,
        (401, "stale_timestamp".into())
    );
    assert_eq!(
        send(signed(now + 6 * 60_000), body.clone()).await,
        (401, "stale_timestamp".into())
    );
    // Missing headers.
    assert_eq!(
        send(signed(now)[1..].to_vec(), body.clone()).await,
        (401, "unauthenticated".into())
    );
    // A key nobody registered.
    let (stranger, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let headers = stranger
        .sign(
            "POST",
            paths::SEND,
            &body,
            now,
            &signing::new_nonce(&SystemRandom::new()),
        )
        .to_vec();
    assert_eq!(
        send(headers, body.clone()).await,
        (401, "unauthenticated".into())
    );
    assert_eq!(alice.balance().await, 1_000, "nothing refused moved money");

    // The genuine request goes through once; the identical bytes again are a replay.
    let genuine = signed(now);
    assert_eq!(send(genuine.clone(), body.clone()).await.0, 201);
    assert_eq!(
        send(genuine, body.clone()).await,
        (401, "replayed_nonce".into())
    );
    assert_eq!(alice.balance().await, 900);
    // Replays of reads are refused as well.
    let read = alice
        .key
        .sign(
            "GET",
            paths::ME,
            b"",
            now,
            &signing::new_nonce(&SystemRandom::new()),
        )
        .to_vec();
    let get = |headers: Vec<(&'static str, String)>| {
        let url = format!("{}{}", ts.url(), paths::ME);
        async move {
            let mut req = reqwest::Client::new().get(url);
            for (n, v) in headers {
                req = req.header(n, v);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(get(read.clone()).await, 200);
    assert_eq!(get(read).await, 401);
}

async fn second_factor_policy_refuses_what_it_cannot_check(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(10_000).await;
    let update = |limit: Option<i64>, pin: &str| UpdatePolicyRequest {
        second_factor_above: limit,
        pin: pin.into(),
    };
    assert_eq!(
        code_of(
            alice
                .client
                .update_policy(&update(Some(1_000), "0000"))
                .await
        )
        .code,
        ErrorCode::WrongPin
    );
    let view = alice
        .client
        .update_policy(&update(Some(1_000), "1234"))
        .await
        .unwrap();
    assert_eq!(view.policy.second_factor_above, Some(1_000));
    assert_eq!(
        code_of(alice.send(&bob, 1_500).await).code,
        ErrorCode::SecondFactorRequired
    );
    alice.send(&bob, 1_000).await.unwrap();
    // Claims above the threshold cannot be approved either.
    let claim = bob.claim(&alice, 2_000, "").await;
    assert_eq!(
        code_of(alice.client.approve_claim(&claim.id, "1234").await).code,
        ErrorCode::SecondFactorRequired
    );
    assert_eq!(alice.balance().await, 9_000);
    alice
        .client
        .update_policy(&update(None, "1234"))
        .await
        .unwrap();
    alice.client.approve_claim(&claim.id, "1234").await.unwrap();
    assert_eq!(alice.balance().await, 7_000);
}

async fn withdrawal_needs_funds_and_pin(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(500).await;
    let withdraw = |amount: i64, pin: &str| WithdrawRequest {
        idempotency_key: key(),
        amount,
        pin: pin.into(),
    };
    assert_eq!(
        code_of(alice.client.withdraw(&withdraw(600, "1234")).await).code,
        ErrorCode::InsufficientFunds
    );
    assert_eq!(
        code_of(alice.client.withdraw(&withdraw(100, "4321")).await).code,
        ErrorCode::WrongPin
    );
    let w = alice.client.withdraw(&withdraw(500, "1234")).await.unwrap();
    assert_eq!(
        (w.kind, w.direction, w.counterpart.display_name.as_str()),
        (TransferKind::Withdrawal, Direction::Outgoing, "Withdrawal")
    );
    assert_eq!(alice.balance().await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn history_pages_newest_first(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    for amount in 1..=5 {
        alice.send(&bob, amount).await.unwrap();
    }
    bob.claim(&alice, 7, "pending one").await;
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = alice.client.history(before, 3).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let amounts: Vec<i64> = seen.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, vec![7, 5, 4, 3, 2, 1, 1_000]);
    assert_eq!(seen[0].state, TransferState::Pending);
    assert_eq!(seen[0].counterpart.display_name, "Bob");
    assert_eq!(seen[6].kind, TransferKind::Deposit);
    let e = code_of(alice.client.history(None, 0).await);
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

/// Notifications come 200 a page; `has_more` says another page waits, and
/// following the cursor reaches every one of them exactly once.
async fn the_inbox_pages_its_notifications_and_says_when_more_wait(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    const CLAIMS: usize = 201;
    for i in 0..CLAIMS {
        bob.claim(&alice, 1 + i as i64, "page").await;
    }
    let first = alice.client.inbox(0).await.unwrap();
    assert_eq!(first.notifications.len(), 200);
    assert!(first.has_more);
    assert_eq!(first.pending_claims.len(), CLAIMS, "claims are not paged");
    let second = alice.client.inbox(first.cursor).await.unwrap();
    assert_eq!(second.notifications.len(), 1);
    assert!(!second.has_more);
    assert_eq!(second.notifications[0].transfer.amount, CLAIMS as i64);
    let caught_up = alice.client.inbox(second.cursor).await.unwrap();
    assert!(caught_up.notifications.is_empty() && !caught_up.has_more);
    assert_eq!(caught_up.cursor, second.cursor);
    // An answer without the field (a server that predates it) reads as no more.
    let old: Inbox =
        serde_json::from_str(r#"{"pending_claims":[],"notifications":[],"cursor":3}"#).unwrap();
    assert!(!old.has_more);
}

/// Codes cost a text message each and give a fresh set of guesses, so one
/// number gets a new code at most every `otp_resend_secs` and at most
/// `otp_max_per_hour` an hour; a refusal says when to ask again.
async fn registration_codes_are_rate_limited_per_number(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| {
        c.otp_resend_secs = 0;
        c.otp_max_per_hour = 3;
    })
    .await
    else {
        return;
    };
    let phone = common::fresh_phone();
    let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let client = ApiClient::new(&ts.url()).with_key(key.into());
    let mut e164 = String::new();
    for _ in 0..3 {
        e164 = client
            .register(&phone)
            .await
            .unwrap()
            .phone
            .as_e164()
            .to_string();
    }
    let before = clink_server::now_ms();
    let e = code_of(client.register(&phone).await);
    assert_eq!(e.code, ErrorCode::TooManyRequests);
    assert_eq!(e.status(), 429);
    let retry_at = e.retry_after_ms.expect("says when to ask again");
    assert!(
        retry_at > before + 3_590_000 && retry_at <= before + 3_600_000,
        "an hour after the first code: {retry_at} vs now {before}"
    );
    // The last code sent still works: a refusal changes nothing.
    let code = ts.otp.last_code(&e164).unwrap();
    client
        .verify(&VerifyRequest {
            phone: phone.clone(),
            code,
            display_name: "Dora".into(),
            pin: "1234".into(),
        })
        .await
        .unwrap();

    // The resend pause: a second code within it is refused; other numbers
    // are not affected.
    let Some(ts) = TestServer::start(backend, |c| c.otp_resend_secs = 30).await else {
        return;
    };
    let client = ApiClient::new(&ts.url())
        .with_key(DeviceKey::generate(&SystemRandom::new()).unwrap().0.into());
    let phone = common::fresh_phone();
    client.register(&phone).await.unwrap();
    let e = code_of(client.register(&phone).await);
    assert_eq!(e.code, ErrorCode::TooManyRequests);
    let wait_ms = e.retry_after_ms.unwrap() - clink_server::now_ms();
    assert!(
        (25_000..=30_000).contains(&wait_ms),
        "about 30 s: {wait_ms}"
    );
    client.register(&common::fresh_phone()).await.unwrap();
}
