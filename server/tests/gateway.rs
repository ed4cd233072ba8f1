//! The OCRA second factor through the device API, and the telephone gateway,
//! end to end over HTTP on SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use clink_core::challenge::{OcraKey, clink_response};
use clink_core::dialstring::{self, DialCommand, PhoneDigits};
use clink_core::wire::*;
use clink_server::config::BearerToken;
use common::{Backend, TestServer, User, code_of, key};
use ring::rand::SystemRandom;
use serde::Serialize;
use serde::de::DeserializeOwned;

on_both_backends!(
    second_factor_is_required_above_the_threshold_and_accepted_when_right,
    wrong_challenge_responses_share_the_pin_lockout,
    used_expired_and_foreign_challenges_are_refused,
    ocra_key_registration_needs_the_pin_and_is_stored_sealed,
    gateway_send_posts_and_notifies_the_payee,
    gateway_request_puts_a_claim_in_the_payers_inbox,
    gateway_refusals_are_clear_and_move_no_money,
    gateway_wrong_answers_lock_the_caller_and_calls_answer_once,
    gateway_expired_call_moves_no_money,
    gateway_call_completed_twice_at_once_moves_money_once,
    gateway_needs_its_token,
    old_challenges_and_calls_are_swept,
);

const GATEWAY_TOKEN: &str = "test-gateway-token-0123456789";

fn with_gateway(config: &mut clink_server::Config) {
    config.gateway_token = Some(BearerToken::new(GATEWAY_TOKEN).unwrap());
}

/// Registers a fresh OCRA key for the user's install and returns it.
async fn ocra_key(user: &User) -> OcraKey {
    let key = OcraKey::generate(&SystemRandom::new()).unwrap();
    let registered = user
        .client
        .register_ocra_key(&key, &user.pin)
        .await
        .unwrap();
    assert_eq!(registered.suite, "OCRA-1:HOTP-SHA256-8:QN08");
    key
}

/// A response that is certainly wrong: the right one with its first digit changed.
fn wrong(right: &str) -> String {
    let first = right.as_bytes()[0] - b'0';
    format!("{}{}", (first + 1) % 10, &right[1..])
}

fn send_request(to: &User, amount: i64, pin: &str) -> SendRequest {
    SendRequest {
        idempotency_key: key(),
        payee: to.phone.clone(),
        amount,
        memo: String::new(),
        pin: pin.into(),
        challenge_id: None,
        challenge_response: None,
    }
}

/// A send answered with a fresh challenge and `answer(right response)`.
async fn send_with_challenge(
    from: &User,
    key: &OcraKey,
    to: &User,
    amount: i64,
    answer: impl Fn(String) -> String,
) -> Result<TransferView, clink_core::http_client::ClientError> {
    let challenge = from.client.new_challenge().await.unwrap();
    let mut request = send_request(to, amount, &from.pin);
    request.challenge_id = Some(challenge.challenge_id);
    request.challenge_response = Some(answer(clink_response(key, &challenge.challenge).unwrap()));
    from.client.send(&request).await
}

async fn set_threshold(user: &User, limit: Option<i64>) {
    user.client
        .update_policy(&UpdatePolicyRequest {
            second_factor_above: limit,
            pin: user.pin.clone(),
        })
        .await
        .unwrap();
}

// ------------------------------------------------------------ second factor

async fn second_factor_is_required_above_the_threshold_and_accepted_when_right(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(10_000).await;
    // Without a key there is nothing to challenge.
    assert_eq!(
        code_of(alice.client.new_challenge().await).code,
        ErrorCode::OcraKeyNotRegistered
    );
    let key = ocra_key(&alice).await;
    set_threshold(&alice, Some(1_000)).await;

    let missing = code_of(alice.send(&bob, 1_500).await);
    assert_eq!(missing.code, ErrorCode::SecondFactorRequired);
    assert_eq!(missing.code.http_status(), 403);
    assert!(
        missing.message.contains("request a challenge"),
        "{}",
        missing.message
    );
    // An answer without its challenge id is as good as none.
    let mut half = send_request(&bob, 1_500, "1234");
    half.challenge_response = Some("12345678".into());
    assert_eq!(
        code_of(alice.client.send(&half).await).code,
        ErrorCode::SecondFactorRequired
    );
    assert_eq!(alice.balance().await, 10_000);

    let challenge = alice.client.new_challenge().await.unwrap();
    assert_eq!(challenge.challenge.len(), 8);
    assert!(challenge.challenge.bytes().all(|b| b.is_ascii_digit()));
    let sent = send_with_challenge(&alice, &key, &bob, 1_500, |r| r)
        .await
        .unwrap();
    assert_eq!((sent.state, sent.amount), (TransferState::Posted, 1_500));
    // At the threshold the PIN alone is enough.
    alice.send(&bob, 1_000).await.unwrap();
    assert_eq!((alice.balance().await, bob.balance().await), (7_500, 2_500));

    // Claim approvals above the threshold need it too.
    let claim = bob.claim(&alice, 2_000, "rent").await;
    assert_eq!(
        code_of(alice.client.approve_claim(&claim.id, "1234").await).code,
        ErrorCode::SecondFactorRequired
    );
    let challenge = alice.client.new_challenge().await.unwrap();
    let approved = alice
        .client
        .approve_claim_with(
            &claim.id,
            &ApproveClaimRequest {
                pin: "1234".into(),
                challenge_id: Some(challenge.challenge_id),
                challenge_response: Some(clink_response(&key, &challenge.challenge).unwrap()),
            },
        )
        .await
        .unwrap();
    assert_eq!(approved.state, TransferState::Posted);
    assert_eq!((alice.balance().await, bob.balance().await), (5_500, 4_500));
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn wrong_challenge_responses_share_the_pin_lockout(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| c.pin_max_attempts = 4).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(10_000).await;
    let key = ocra_key(&alice).await;
    set_threshold(&alice, Some(100)).await;

    // One wrong PIN, then wrong responses: one counter.
    let e = code_of(alice.client.send(&send_request(&bob, 500, "0000")).await);
    assert_eq!(
        (e.code, e.attempts_remaining),
        (ErrorCode::WrongPin, Some(3))
    );
    for remaining in [2, 1] {
        let e = code_of(send_with_challenge(&alice, &key, &bob, 500, |r| wrong(&r)).await);
        assert_eq!(
            (e.code, e.code.http_status(), e.attempts_remaining),
            (ErrorCode::WrongChallengeResponse, 403, Some(remaining))
        );
        assert!(
            e.message
                .contains(&format!("{remaining} more wrong attempt")),
            "{}",
            e.message
        );
    }
    // A wrong answer uses its challenge up.
    let challenge = alice.client.new_challenge().await.unwrap();
    let mut request = send_request(&bob, 500, "1234");
    request.challenge_id = Some(challenge.challenge_id.clone());
    request.challenge_response = Some(wrong(&clink_response(&key, &challenge.challenge).unwrap()));
    let e = code_of(alice.client.send(&request).await);
    assert_eq!(e.code, ErrorCode::AccountLocked);
    assert!(e.locked_until_ms.is_some());
    // Locked: even the right PIN and answer are refused, and no challenge is issued.
    request.idempotency_key = common::key();
    request.challenge_response = Some(clink_response(&key, &challenge.challenge).unwrap());
    assert_eq!(
        code_of(alice.client.send(&request).await).code,
        ErrorCode::AccountLocked
    );
    assert_eq!(
        code_of(alice.client.new_challenge().await).code,
        ErrorCode::AccountLocked
    );
    assert_eq!((alice.balance().await, bob.balance().await), (10_000, 0));
}

async fn used_expired_and_foreign_challenges_are_refused(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| c.challenge_ttl_secs = 1).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(10_000).await;
    let alice_key = ocra_key(&alice).await;
    let bob_key = ocra_key(&bob).await;
    set_threshold(&alice, Some(100)).await;
    let answered = |challenge: &IssuedChallenge, key: &OcraKey| {
        let mut request = send_request(&bob, 500, "1234");
        request.challenge_id = Some(challenge.challenge_id.clone());
        request.challenge_response = Some(clink_response(key, &challenge.challenge).unwrap());
        request
    };

    // A refused payment (no funds) leaves its challenge usable.
    let challenge = alice.client.new_challenge().await.unwrap();
    let mut too_much = answered(&challenge, &alice_key);
    too_much.amount = 20_000;
    assert_eq!(
        code_of(alice.client.send(&too_much).await).code,
        ErrorCode::InsufficientFunds
    );
    // It is used once...
    let request = answered(&challenge, &alice_key);
    let sent = alice.client.send(&request).await.unwrap();
    // ...a retry of the same payment replays its answer without checking
    // the spent challenge again...
    assert_eq!(alice.client.send(&request).await.unwrap(), sent);
    // ...and never again, even for a new payment.
    let e = code_of(alice.client.send(&answered(&challenge, &alice_key)).await);
    assert_eq!(
        (e.code, e.code.http_status()),
        (ErrorCode::ChallengeUsed, 409)
    );
    assert!(e.message.contains("request a new one"), "{}", e.message);

    // Someone else's challenge (answered with their own key) is not yours.
    let bobs = bob.client.new_challenge().await.unwrap();
    let e = code_of(alice.client.send(&answered(&bobs, &bob_key)).await);
    assert_eq!(
        (e.code, e.code.http_status()),
        (ErrorCode::ChallengeNotFound, 404)
    );
    let mut unknown = answered(&bobs, &alice_key);
    unknown.challenge_id = Some("ch_nope".into());
    assert_eq!(
        code_of(alice.client.send(&unknown).await).code,
        ErrorCode::ChallengeNotFound
    );

    // Past its TTL a challenge is refused even with the right answer.
    let challenge = alice.client.new_challenge().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let e = code_of(alice.client.send(&answered(&challenge, &alice_key)).await);
    assert_eq!(
        (e.code, e.code.http_status()),
        (ErrorCode::ChallengeExpired, 410)
    );
    assert_eq!((alice.balance().await, bob.balance().await), (9_500, 500));
}

async fn ocra_key_registration_needs_the_pin_and_is_stored_sealed(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let key = OcraKey::generate(&SystemRandom::new()).unwrap();
    let e = code_of(alice.client.register_ocra_key(&key, "0000").await);
    assert_eq!(
        (e.code, e.attempts_remaining),
        (ErrorCode::WrongPin, Some(4))
    );
    let (status, body) =
        alice_raw_put_key(&ts, &alice, r#"{"ocra_key":"c2hvcnQ","pin":"1234"}"#).await;
    assert_eq!((status, body.code), (400, ErrorCode::InvalidRequest));
    assert!(body.message.contains("ocra_key"), "{}", body.message);

    let first = ocra_key(&alice).await;
    // What the database holds is not the key.
    let row = sqlx::query("SELECT sealed_key FROM ocra_keys")
        .fetch_one(ts.pool())
        .await
        .unwrap();
    let sealed: String = sqlx::Row::get(&row, 0);
    use base64::Engine;
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .unwrap();
    assert!(!sealed.windows(32).any(|w| w == first.as_bytes()));

    // Registering again replaces the key: the old one no longer answers.
    let second = ocra_key(&alice).await;
    set_threshold(&alice, Some(100)).await;
    assert_eq!(
        code_of(send_with_challenge(&alice, &first, &bob, 200, |r| r).await).code,
        ErrorCode::WrongChallengeResponse
    );
    send_with_challenge(&alice, &second, &bob, 200, |r| r)
        .await
        .unwrap();
    assert_eq!(bob.balance().await, 200);
}

async fn alice_raw_put_key(ts: &TestServer, user: &User, body: &str) -> (u16, ApiError) {
    use clink_core::wire::signing;
    let nonce = signing::new_nonce(&SystemRandom::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut request = reqwest::Client::new()
        .put(format!("{}{}", ts.url(), paths::OCRA_KEY))
        .body(body.to_string());
    for (name, value) in user
        .key
        .sign("PUT", paths::OCRA_KEY, body.as_bytes(), now, &nonce)
    {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

// ------------------------------------------------------------------ gateway

/// The voice gateway's side: bearer-authenticated JSON calls.
struct GatewayClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl GatewayClient {
    fn new(ts: &TestServer) -> GatewayClient {
        GatewayClient {
            http: reqwest::Client::new(),
            base: ts.url(),
            token: Some(GATEWAY_TOKEN.into()),
        }
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, (u16, ApiError)> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        if status == 201 {
            Ok(serde_json::from_slice(&bytes).unwrap())
        } else {
            let error = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{status}: {}", String::from_utf8_lossy(&bytes)));
            Err((status, error))
        }
    }

    async fn call(&self, caller: &str, dialed: &str) -> Result<GatewayCall, (u16, ApiError)> {
        let request = GatewayCallRequest {
            caller: caller.into(),
            dialed: dialed.into(),
        };
        self.post(paths::GATEWAY_CALLS, &request).await
    }

    async fn complete(
        &self,
        call_id: &str,
        digits: &str,
    ) -> Result<CompletedCall, (u16, ApiError)> {
        let request = CompleteCallRequest {
            digits: digits.into(),
        };
        self.post(&paths::gateway_call_completion(call_id), &request)
            .await
    }
}

/// The user's number as dial-string digits (national, no separators).
fn digits(user: &User) -> PhoneDigits {
    PhoneDigits::new(&user.phone.replace('-', "")).unwrap()
}

fn amount(minor: u64) -> dialstring::Amount {
    dialstring::Amount::new(minor).unwrap()
}

/// Clink's checked send form, `*1*from*to*amount*C#`.
fn dial_send(from: &User, to: &User, minor: u64) -> String {
    DialCommand::Send(dialstring::Send {
        originator: digits(from),
        payee: digits(to),
        amount: amount(minor),
    })
    .to_dial_string()
}

/// Clink's checked request form, `*2*requester*payer*amount*C#`.
fn dial_request(requester: &User, payer: &User, minor: u64) -> String {
    DialCommand::Request(dialstring::Request {
        requester: digits(requester),
        payer: digits(payer),
        amount: amount(minor),
    })
    .to_dial_string()
}

fn status_and_code(result: Result<impl std::fmt::Debug, (u16, ApiError)>) -> (u16, ErrorCode) {
    match result {
        Err((status, e)) => {
            assert!(!e.message.is_empty());
            (status, e.code)
        }
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

async fn gateway_send_posts_and_notifies_the_payee(backend: Backend) {
    let Some(ts) = TestServer::start(backend, with_gateway).await else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(5_000).await;
    let key = ocra_key(&alice).await;

    // The caller ID arrives in E.164, the dial string holds national digits.
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 800))
        .await
        .unwrap();
    assert_eq!(
        (
            call.kind,
            call.amount,
            call.collect_digits,
            call.challenge.len()
        ),
        (GatewayCallKind::Send, 800, 8, 8)
    );
    assert_eq!(call.counterpart.display_name, "Bob");
    assert_eq!(
        alice.balance().await,
        5_000,
        "nothing moves before the answer"
    );
    let answer = clink_response(&key, &call.challenge).unwrap();
    let done = gw
        .complete(&call.call_id, &format!("{answer}#"))
        .await
        .unwrap();
    assert_eq!(
        (
            done.transfer.kind,
            done.transfer.state,
            done.transfer.direction,
            done.transfer.amount
        ),
        (
            TransferKind::Send,
            TransferState::Posted,
            Direction::Outgoing,
            800
        )
    );
    assert_eq!((alice.balance().await, bob.balance().await), (4_200, 800));
    let inbox = bob.client.inbox(0).await.unwrap();
    let n = &inbox.notifications[0];
    assert_eq!(
        (
            n.kind,
            n.transfer.id.as_str(),
            n.transfer.counterpart.display_name.as_str(),
            n.transfer.memo.as_str()
        ),
        (
            NotificationKind::PaymentReceived,
            done.transfer.id.as_str(),
            "Alice",
            "by phone"
        )
    );

    // A person's quick send (no check digit), with the payee in
    // international digits, from a caller ID in national form.
    let quick = format!("111{}*300#", &bob.e164[1..]);
    let call = gw.call(&alice.phone, &quick).await.unwrap();
    let answer = clink_response(&key, &call.challenge).unwrap();
    gw.complete(&call.call_id, &answer).await.unwrap();
    // And the seed send form, with dashes as typed.
    let seed = format!("{}*{}*200", alice.phone, bob.phone);
    let call = gw.call(&alice.e164, &seed).await.unwrap();
    gw.complete(
        &call.call_id,
        &clink_response(&key, &call.challenge).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((alice.balance().await, bob.balance().await), (3_700, 1_300));
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn gateway_request_puts_a_claim_in_the_payers_inbox(backend: Backend) {
    let Some(ts) = TestServer::start(backend, with_gateway).await else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (shop, customer) = (
        ts.user("Shop", "1234").await,
        ts.user("Customer", "5678").await,
    );
    customer.cash_in(1_000).await;
    let key = ocra_key(&shop).await;

    let call = gw
        .call(&shop.e164, &dial_request(&shop, &customer, 700))
        .await
        .unwrap();
    assert_eq!(
        (call.kind, call.counterpart.display_name.as_str()),
        (GatewayCallKind::Request, "Customer")
    );
    let done = gw
        .complete(
            &call.call_id,
            &clink_response(&key, &call.challenge).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            done.transfer.kind,
            done.transfer.state,
            done.transfer.direction
        ),
        (
            TransferKind::Claim,
            TransferState::Pending,
            Direction::Incoming
        )
    );
    assert_eq!(customer.balance().await, 1_000, "a claim moves no money");
    let inbox = customer.client.inbox(0).await.unwrap();
    assert_eq!(inbox.pending_claims.len(), 1);
    let claim = &inbox.pending_claims[0];
    assert_eq!(
        (
            claim.id.as_str(),
            claim.amount,
            claim.counterpart.display_name.as_str()
        ),
        (done.transfer.id.as_str(), 700, "Shop")
    );
    // After the cash-in's own notification.
    assert_eq!(
        inbox.notifications.last().unwrap().kind,
        NotificationKind::ClaimReceived
    );
    customer
        .client
        .approve_claim(&claim.id, "5678")
        .await
        .unwrap();
    assert_eq!((customer.balance().await, shop.balance().await), (300, 700));
}

async fn gateway_refusals_are_clear_and_move_no_money(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| {
        with_gateway(c);
        c.max_amount = 10_000;
    })
    .await
    else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (alice, bob, carol) = (
        ts.user("Alice", "1234").await,
        ts.user("Bob", "5678").await,
        ts.user("Carol", "1111").await,
    );
    alice.cash_in(1_000).await;
    let key = ocra_key(&alice).await;
    let stranger = common::fresh_phone();

    // Who is calling, and whom for.
    assert_eq!(
        status_and_code(gw.call(&stranger, &dial_send(&alice, &bob, 100)).await),
        (404, ErrorCode::UnknownCaller)
    );
    assert_eq!(
        status_and_code(gw.call("not a number", &dial_send(&alice, &bob, 100)).await),
        (400, ErrorCode::InvalidPhoneNumber)
    );
    let to_stranger = format!("{}*{}*100", alice.phone, stranger);
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &to_stranger).await),
        (404, ErrorCode::UnknownPayee)
    );
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dial_send(&carol, &bob, 100)).await),
        (403, ErrorCode::OriginatorNotCaller)
    );
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dial_request(&carol, &bob, 100)).await),
        (403, ErrorCode::OriginatorNotCaller)
    );
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dial_send(&alice, &alice, 100)).await),
        (422, ErrorCode::SelfTransfer)
    );
    // Carol has an account but no install key to challenge.
    assert_eq!(
        status_and_code(gw.call(&carol.e164, &dial_send(&carol, &bob, 100)).await),
        (409, ErrorCode::OcraKeyNotRegistered)
    );
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dial_send(&alice, &bob, 10_001)).await),
        (400, ErrorCode::AmountTooLarge)
    );

    // Malformed dial strings name the parser's position and reason.
    let good = dial_send(&alice, &bob, 100);
    let check_at = good.len() - 2;
    let wrong_check = format!(
        "{}{}#",
        &good[..check_at],
        (good.as_bytes()[check_at] - b'0' + 1) % 10
    );
    for (dialed, position, reason) in [
        (wrong_check.as_str(), Some(check_at), "check digit"),
        ("12a4*5678*100", Some(2), "unexpected character"),
        ("", None, "empty"),
        ("*9*1*2*3*4#", Some(1), "unknown kind"),
        ("0901*0902*0100", Some(10), "leading zero"),
    ] {
        let Err((status, e)) = gw.call(&alice.e164, dialed).await else {
            panic!("{dialed:?} was accepted");
        };
        assert_eq!(
            (status, e.code, e.position),
            (400, ErrorCode::InvalidDialString, position),
            "{dialed:?}: {}",
            e.message
        );
        assert!(e.message.contains(reason), "{dialed:?}: {}", e.message);
    }

    // Insufficient funds is found when the call is answered; the call is used up.
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 5_000))
        .await
        .unwrap();
    let answer = clink_response(&key, &call.challenge).unwrap();
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, &answer).await),
        (422, ErrorCode::InsufficientFunds)
    );
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, &answer).await),
        (409, ErrorCode::ChallengeUsed)
    );
    // Bad digits and unknown calls.
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 100))
        .await
        .unwrap();
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, "12*4").await),
        (400, ErrorCode::InvalidRequest)
    );
    assert_eq!(
        status_and_code(gw.complete("c_nope", "12345678").await),
        (404, ErrorCode::NotFound)
    );
    // The malformed answer did not use the call up.
    gw.complete(
        &call.call_id,
        &clink_response(&key, &call.challenge).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!((alice.balance().await, bob.balance().await), (900, 100));
    assert_eq!(carol.balance().await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn gateway_wrong_answers_lock_the_caller_and_calls_answer_once(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| {
        with_gateway(c);
        c.pin_max_attempts = 3;
    })
    .await
    else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let key = ocra_key(&alice).await;

    // A right answer completes the call; the same call id never pays again.
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 100))
        .await
        .unwrap();
    let answer = clink_response(&key, &call.challenge).unwrap();
    let done = gw.complete(&call.call_id, &answer).await.unwrap();
    let Err((status, e)) = gw.complete(&call.call_id, &answer).await else {
        panic!("a call was completed twice");
    };
    assert_eq!((status, e.code), (409, ErrorCode::ChallengeUsed));
    assert!(e.message.contains(&done.transfer.id), "{}", e.message);
    assert_eq!((alice.balance().await, bob.balance().await), (900, 100));

    // Wrong answers count down the caller's lockout, shared with the PIN.
    let e = code_of(alice.client.send(&send_request(&bob, 10, "0000")).await);
    assert_eq!(e.attempts_remaining, Some(2));
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 100))
        .await
        .unwrap();
    let right = clink_response(&key, &call.challenge).unwrap();
    let Err((status, e)) = gw.complete(&call.call_id, &wrong(&right)).await else {
        panic!("a wrong answer was accepted");
    };
    assert_eq!(
        (status, e.code, e.attempts_remaining),
        (403, ErrorCode::WrongChallengeResponse, Some(1))
    );
    // The call is used up by the wrong answer: the right one comes too late.
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, &right).await),
        (409, ErrorCode::ChallengeUsed)
    );
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 100))
        .await
        .unwrap();
    let right = clink_response(&key, &call.challenge).unwrap();
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, &wrong(&right)).await),
        (423, ErrorCode::AccountLocked)
    );
    // Locked: no new call, and the app's payments are locked too.
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dial_send(&alice, &bob, 100)).await),
        (423, ErrorCode::AccountLocked)
    );
    assert_eq!(
        code_of(alice.send(&bob, 10).await).code,
        ErrorCode::AccountLocked
    );
    assert_eq!((alice.balance().await, bob.balance().await), (900, 100));
}

async fn gateway_expired_call_moves_no_money(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| {
        with_gateway(c);
        c.challenge_ttl_secs = 1;
    })
    .await
    else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let key = ocra_key(&alice).await;
    let call = gw
        .call(&alice.e164, &dial_send(&alice, &bob, 100))
        .await
        .unwrap();
    let answer = clink_response(&key, &call.challenge).unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, &answer).await),
        (410, ErrorCode::ChallengeExpired)
    );
    assert_eq!(
        status_and_code(gw.complete(&call.call_id, &answer).await),
        (409, ErrorCode::ChallengeUsed)
    );
    assert_eq!((alice.balance().await, bob.balance().await), (1_000, 0));
}

async fn gateway_call_completed_twice_at_once_moves_money_once(backend: Backend) {
    let Some(ts) = TestServer::start(backend, with_gateway).await else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    alice.cash_in(1_000).await;
    let key = ocra_key(&alice).await;
    for _ in 0..5 {
        let call = gw
            .call(&alice.e164, &dial_send(&alice, &bob, 100))
            .await
            .unwrap();
        let answer = clink_response(&key, &call.challenge).unwrap();
        let (a, b) = tokio::join!(
            gw.complete(&call.call_id, &answer),
            gw.complete(&call.call_id, &answer)
        );
        let refused: Vec<_> = [&a, &b]
            .iter()
            .filter_map(|r| r.as_ref().err().map(|(s, e)| (*s, e.code)))
            .collect();
        assert_eq!(
            refused,
            vec![(409, ErrorCode::ChallengeUsed)],
            "{a:?} {b:?}"
        );
    }
    assert_eq!((alice.balance().await, bob.balance().await), (500, 500));
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn old_challenges_and_calls_are_swept(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |c| {
        with_gateway(c);
        c.sweep_secs = 3600; // no sweeps until asked
    })
    .await
    else {
        return;
    };
    let gw = GatewayClient::new(&ts);
    let (alice, bob) = (ts.user("Alice", "1234").await, ts.user("Bob", "5678").await);
    ocra_key(&alice).await;
    alice.client.new_challenge().await.unwrap();
    gw.call(&alice.e164, &dial_send(&alice, &bob, 100))
        .await
        .unwrap();
    let pool = ts.pool().clone();
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            sqlx::Row::get::<i64, _>(&row, 0)
        }
    };
    let sweep_at = |now: i64| {
        let state = ts.server.state.clone();
        async move {
            state
                .writer
                .run(move |conn| {
                    Box::pin(async move {
                        clink_server::writer::Outcome::from_result(
                            clink_server::sweeper::sweep(conn, now).await,
                        )
                    })
                })
                .await
                .unwrap()
        }
    };
    // Expired a minute ago: kept, so a replay still hears "already used".
    sweep_at(clink_server::now_ms() + 3 * 60 * 1000).await;
    assert_eq!((count("challenges").await, count("calls").await), (1, 1));
    sweep_at(clink_server::now_ms() + 49 * 3600 * 1000).await;
    assert_eq!((count("challenges").await, count("calls").await), (0, 0));
}

async fn gateway_needs_its_token(backend: Backend) {
    let Some(ts) = TestServer::start(backend, with_gateway).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let bob = ts.user("Bob", "5678").await;
    let dialed = dial_send(&alice, &bob, 100);
    let mut gw = GatewayClient::new(&ts);
    gw.token = None;
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dialed).await),
        (401, ErrorCode::Unauthenticated)
    );
    gw.token = Some(format!("{GATEWAY_TOKEN}x"));
    assert_eq!(
        status_and_code(gw.call(&alice.e164, &dialed).await),
        (401, ErrorCode::Unauthenticated)
    );
    assert_eq!(
        status_and_code(gw.complete("c_any", "12345678").await),
        (401, ErrorCode::Unauthenticated)
    );
    // A device signature is not a gateway credential.
    let e = code_of(
        alice
            .client
            .call::<GatewayCall>(
                reqwest::Method::POST,
                paths::GATEWAY_CALLS,
                Some(&GatewayCallRequest {
                    caller: alice.e164.clone(),
                    dialed: dialed.clone(),
                }),
                true,
            )
            .await,
    );
    assert_eq!(e.code, ErrorCode::Unauthenticated);

    // Without a configured token the gateway does not exist.
    let Some(plain) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let gw = GatewayClient::new(&plain);
    let Err((status, e)) = gw.call(&alice.e164, &dialed).await else {
        panic!("the gateway answered without a token configured");
    };
    assert_eq!((status, e.code), (404, ErrorCode::NotFound));
    assert!(e.message.contains("gateway is disabled"), "{}", e.message);
    assert!(BearerToken::new("short").is_err());
}
