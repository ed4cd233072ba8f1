//! Paying at shops: the operator opens a merchant, its web shop (API key,
//! HMAC) or terminal (device key) asks a customer to pay, the customer's
//! phone approves or declines like any request. A real server on a loopback
//! port, on SQLite and on PostgreSQL; balances checked on the ledger.

mod common;

use clink_core::wire::signing::HEADER_TIMESTAMP;
use clink_core::wire::*;
use clink_server::writer::Outcome;
use common::{Backend, OPERATOR_TOKEN, TestServer, User};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

on_both_backends!(
    a_web_shop_charges_a_linked_phone_and_is_refused_for_an_unlinked_one,
    a_retried_create_gets_the_same_request_never_a_second,
    bad_orders_and_bad_credentials_are_refused_and_move_no_money,
    cancel_before_approval_and_decline_are_final,
    a_terminal_signs_like_a_phone_and_a_phone_is_no_terminal,
    cancel_racing_approval_has_exactly_one_winner,
    expiry_racing_approval_has_exactly_one_winner,
    unlinking_reporting_spam_and_the_waiting_limit_protect_the_inbox,
    a_presented_request_is_taken_by_the_first_phone_only,
    partial_and_full_refunds_never_exceed_what_was_paid,
);

/// A merchant with a web shop's API key, as the shop's server holds it.
struct Shop {
    base_url: String,
    merchant_id: String,
    key_id: String,
    secret: String,
}

async fn operator(ts: &TestServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", ts.url()))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Shop {
    async fn open(ts: &TestServer, name: &str) -> Shop {
        let (status, merchant) = operator(
            ts,
            "POST",
            paths::OPERATOR_MERCHANTS,
            json!({"display_name": name, "category_code": "5814"}),
        )
        .await;
        assert_eq!(status, 201, "{merchant}");
        let merchant_id = merchant["merchant_id"].as_str().unwrap().to_string();
        let (status, key) = operator(
            ts,
            "POST",
            &paths::operator_api_keys(&merchant_id),
            json!({}),
        )
        .await;
        assert_eq!(status, 201, "{key}");
        Shop {
            base_url: ts.url(),
            merchant_id,
            key_id: key["key_id"].as_str().unwrap().into(),
            secret: key["secret"].as_str().unwrap().into(),
        }
    }

    /// A request signed with the shop's API key; the raw body text comes
    /// back too, for the privacy checks.
    async fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value, String) {
        self.call_as(&self.key_id, &self.secret, method, path, body)
            .await
    }

    async fn call_as(
        &self,
        key_id: &str,
        secret: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, Value, String) {
        let now = clink_server::now_ms();
        let signature = merchant_signing::sign(secret, now, method, path, body.as_bytes());
        let resp = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", self.base_url))
            .header(merchant_signing::HEADER_KEY_ID, key_id)
            .header(merchant_signing::HEADER_SIGNATURE, signature)
            .header(HEADER_TIMESTAMP, now.to_string())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, text)
    }

    async fn charge(&self, order: &str, customer: &User, lines: &[(i64, i64)]) -> (u16, Value) {
        let body = order_body(order, &customer.phone, lines, None);
        let (status, value, _) = self.call("POST", paths::MERCHANT_PAYMENTS, &body).await;
        (status, value)
    }

    async fn payment(&self, order: &str) -> Value {
        let (status, value, _) = self.call("GET", &paths::merchant_payment(order), "").await;
        assert_eq!(status, 200, "{value}");
        value
    }

    async fn balance(&self, ts: &TestServer) -> i64 {
        let (status, view) = operator(
            ts,
            "GET",
            &paths::operator_merchant(&self.merchant_id),
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{view}");
        view["balance"].as_i64().unwrap()
    }
}

fn order_body(order: &str, phone: &str, lines: &[(i64, i64)], expires: Option<u32>) -> String {
    let items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (quantity, unit_price))| {
            json!({"code": format!("SKU-{i}"), "name": format!("Item {i}"), "quantity": quantity, "unit_price": unit_price})
        })
        .collect();
    let amount: i64 = lines.iter().map(|(q, p)| q * p).sum();
    let mut body = json!({
        "merchant_order_id": order,
        "amount": amount,
        "items": items,
        "customer": {"by": "phone", "phone": phone},
    });
    if let Some(secs) = expires {
        body["expires_in_secs"] = json!(secs);
    }
    body.to_string()
}

async fn signed(user: &User, method: &str, path: &str, body: &str) -> (u16, Value) {
    common::signed_raw(
        user.client.base_url(),
        &user.key,
        method,
        path,
        body.as_bytes(),
    )
    .await
}

async fn link(user: &User, shop: &Shop) {
    let (status, body) = signed(user, "POST", &paths::merchant_link(&shop.merchant_id), "").await;
    assert_eq!(status, 200, "{body}");
}

/// The claim id of the shop's request, from the customer's inbox.
async fn claim_in_inbox(user: &User, memo: &str) -> String {
    let inbox = user.client.inbox(0).await.unwrap();
    inbox
        .pending_claims
        .iter()
        .find(|c| c.memo == memo)
        .unwrap_or_else(|| panic!("no claim {memo:?} in the inbox"))
        .id
        .clone()
}

async fn shop_payment_rows(ts: &TestServer) -> i64 {
    let row = sqlx::query("SELECT COUNT(*) FROM shop_payments")
        .fetch_one(ts.pool())
        .await
        .unwrap();
    sqlx::Row::get(&row, 0)
}

async fn a_web_shop_charges_a_linked_phone_and_is_refused_for_an_unlinked_one(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Corner Cafe").await;
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(10_000).await;
    let mut merchant_bodies = String::new();

    // Not linked yet: refused, and nothing is written.
    let body = order_body("o-1", &alice.phone, &[(2, 450), (1, 300)], None);
    let (status, refused, text) = shop.call("POST", paths::MERCHANT_PAYMENTS, &body).await;
    merchant_bodies += &text;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("merchant_not_linked"))
    );
    // An unknown number gets the very same answer.
    let stranger = order_body("o-2", "090-9999-0000", &[(1, 100)], None);
    let (status, unknown, _) = shop.call("POST", paths::MERCHANT_PAYMENTS, &stranger).await;
    assert_eq!((status, &unknown["code"]), (403, &refused["code"]));
    assert_eq!(shop_payment_rows(&ts).await, 0);

    link(&alice, &shop).await;
    let (status, created, text) = shop.call("POST", paths::MERCHANT_PAYMENTS, &body).await;
    merchant_bodies += &text;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending_approval");
    assert_eq!(created["amount"], 1_200);
    assert_eq!(created["version"], 2);

    // The phone shows the merchant and every line before the PIN.
    let claim_id = claim_in_inbox(&alice, "Order o-1").await;
    let (status, charge) = signed(&alice, "GET", &paths::charge(&claim_id), "").await;
    assert_eq!(status, 200, "{charge}");
    assert_eq!(charge["merchant"]["display_name"], "Corner Cafe");
    assert_eq!(charge["items"].as_array().unwrap().len(), 2);
    assert_eq!(charge["items"][0]["quantity"], 2);
    assert_eq!(charge["amount"], 1_200);
    let inbox = alice.client.inbox(0).await.unwrap();
    assert_eq!(
        inbox.pending_claims[0].counterpart.display_name,
        "Corner Cafe"
    );

    let approved = alice.client.approve_claim(&claim_id, "1234").await.unwrap();
    assert_eq!(approved.state, TransferState::Posted);
    let done = shop.payment("o-1").await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["version"], 3);
    merchant_bodies += &done.to_string();
    assert_eq!(alice.balance().await, 8_800);
    assert_eq!(shop.balance(&ts).await, 1_200);
    assert_eq!(ts.sum_of_balances().await, 0);

    // No answer to the merchant names the customer's number.
    let digits: String = alice.e164.chars().filter(char::is_ascii_digit).collect();
    assert!(
        !merchant_bodies.contains(&digits[digits.len() - 8..]),
        "{merchant_bodies}"
    );
    assert!(!merchant_bodies.contains("Alice"));
}

async fn a_retried_create_gets_the_same_request_never_a_second(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Vending 7").await;
    let alice = ts.user("Alice", "1234").await;
    link(&alice, &shop).await;
    let body = order_body("v-42", &alice.phone, &[(1, 150)], Some(120));
    // Sent several times at once, as a flaky till's retries would be.
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (url, key_id, secret, body) = (
            shop.base_url.clone(),
            shop.key_id.clone(),
            shop.secret.clone(),
            body.clone(),
        );
        sends.spawn(async move {
            let shop = Shop {
                base_url: url,
                merchant_id: String::new(),
                key_id,
                secret,
            };
            shop.call("POST", paths::MERCHANT_PAYMENTS, &body).await
        });
    }
    let answers = sends.join_all().await;
    let created = answers.iter().filter(|(s, _, _)| *s == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(s, v, _)| {
            assert!(*s == 200 || *s == 201, "{v}");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(shop_payment_rows(&ts).await, 1);
    assert_eq!(alice.client.inbox(0).await.unwrap().pending_claims.len(), 1);

    // The same order id with another amount or another line is refused.
    for other in [
        order_body("v-42", &alice.phone, &[(1, 160)], Some(120)),
        order_body("v-42", &alice.phone, &[(1, 100), (1, 50)], Some(120)),
    ] {
        let (status, v, _) = shop.call("POST", paths::MERCHANT_PAYMENTS, &other).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (409, Some("idempotency_key_reused"))
        );
    }
    assert_eq!(shop_payment_rows(&ts).await, 1);
}

async fn bad_orders_and_bad_credentials_are_refused_and_move_no_money(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Web Books").await;
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(5_000).await;
    link(&alice, &shop).await;
    let order = |amount: i64, quantity: i64, unit_price: i64| {
        json!({
            "merchant_order_id": "bad-1",
            "amount": amount,
            "items": [{"code": "B1", "name": "Book", "quantity": quantity, "unit_price": unit_price}],
            "customer": {"by": "phone", "phone": alice.phone},
        })
        .to_string()
    };
    let cases = [
        (order(300, 2, 100), 422, "items_do_not_add_up"),
        (order(100, -1, -100), 400, "invalid_order"),
        (order(100, 1, -100), 400, "invalid_order"),
        (order(100, 0, 100), 400, "invalid_order"),
        (
            order(1, 10_000, i64::MAX / 1_000),
            422,
            "items_do_not_add_up",
        ),
        (order(0, 1, 0), 400, "invalid_amount"),
        (
            order(100, 1, 100).replace("bad-1", "has space"),
            400,
            "invalid_order",
        ),
        (
            order(100, 1, 100).replace(r#""customer""#, r#""expires_in_secs":5,"customer""#),
            400,
            "invalid_request",
        ),
        (
            order(100, 1, 100).replace("\"amount\"", "\"amont\""),
            400,
            "malformed_json",
        ),
    ];
    for (body, status, code) in cases {
        let (got, v, _) = shop.call("POST", paths::MERCHANT_PAYMENTS, &body).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{body} -> {v}"
        );
    }
    // Credentials: a wrong secret, an unknown key, a revoked key.
    let good = order(100, 1, 100);
    let (status, v, _) = shop
        .call_as(
            &shop.key_id,
            "sk_wrong",
            "POST",
            paths::MERCHANT_PAYMENTS,
            &good,
        )
        .await;
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")));
    let (status, v, _) = shop
        .call_as(
            "key_unknown",
            &shop.secret,
            "POST",
            paths::MERCHANT_PAYMENTS,
            &good,
        )
        .await;
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")));
    let (status, _) = operator(
        &ts,
        "DELETE",
        &paths::operator_api_key(&shop.merchant_id, &shop.key_id),
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, v, _) = shop.call("POST", paths::MERCHANT_PAYMENTS, &good).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_signature")));
    // Linking a merchant that does not exist.
    let (status, v) = signed(&alice, "POST", &paths::merchant_link("m_nope"), "").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("unknown_merchant"))
    );
    // A merchant account is opened by the operator only.
    let resp = reqwest::Client::new()
        .post(format!("{}{}", ts.url(), paths::OPERATOR_MERCHANTS))
        .json(&json!({"display_name": "Me", "category_code": "5814"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, v) = operator(
        &ts,
        "POST",
        paths::OPERATOR_MERCHANTS,
        json!({"display_name": "Shop", "category_code": "58a4"}),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_request")));

    assert_eq!(shop_payment_rows(&ts).await, 0);
    assert_eq!(alice.balance().await, 5_000);
    assert_eq!(shop.balance(&ts).await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn cancel_before_approval_and_decline_are_final(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Corner Cafe").await;
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(1_000).await;
    link(&alice, &shop).await;

    assert_eq!(shop.charge("c-1", &alice, &[(1, 500)]).await.0, 201);
    let claim = claim_in_inbox(&alice, "Order c-1").await;
    let (status, cancelled, _) = shop
        .call("POST", &paths::merchant_payment_cancel("c-1"), "")
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    // Saying it twice is fine; approving afterwards is refused.
    let (status, again, _) = shop
        .call("POST", &paths::merchant_payment_cancel("c-1"), "")
        .await;
    assert_eq!(
        (status, again["version"].clone()),
        (200, cancelled["version"].clone())
    );
    let refused = common::code_of(alice.client.approve_claim(&claim, "1234").await);
    assert_eq!(refused.code, ErrorCode::ClaimNotPending);

    assert_eq!(shop.charge("c-2", &alice, &[(2, 100)]).await.0, 201);
    let claim = claim_in_inbox(&alice, "Order c-2").await;
    alice.client.decline_claim(&claim).await.unwrap();
    assert_eq!(shop.payment("c-2").await["state"], "declined");
    let (status, v, _) = shop
        .call("POST", &paths::merchant_payment_cancel("c-2"), "")
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("claim_not_pending"))
    );
    let (status, v, _) = shop
        .call("POST", &paths::merchant_payment_cancel("c-404"), "")
        .await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));

    assert_eq!(alice.balance().await, 1_000);
    assert_eq!(shop.balance(&ts).await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn a_terminal_signs_like_a_phone_and_a_phone_is_no_terminal(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Vending 7").await;
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(1_000).await;
    link(&alice, &shop).await;
    let (terminal, _) =
        clink_core::wire::signing::DeviceKey::generate(&SystemRandom::new()).unwrap();
    let public_key = terminal.public_key_b64();
    let (status, v) = operator(
        &ts,
        "POST",
        &paths::operator_terminals(&shop.merchant_id),
        json!({ "public_key": public_key }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Registering the same key again, or a phone's key, is refused.
    let (status, _) = operator(
        &ts,
        "POST",
        &paths::operator_terminals(&shop.merchant_id),
        json!({ "public_key": public_key }),
    )
    .await;
    assert_eq!(status, 409);

    let body = order_body("t-1", &alice.phone, &[(3, 120)], None);
    let (status, created) = common::signed_raw(
        &ts.url(),
        &terminal,
        "POST",
        paths::MERCHANT_PAYMENTS,
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // A till's default: three minutes.
    let expiry =
        created["expires_at_ms"].as_i64().unwrap() - created["created_at_ms"].as_i64().unwrap();
    assert_eq!(expiry, 180_000);
    let claim = claim_in_inbox(&alice, "Order t-1").await;
    alice.client.approve_claim(&claim, "1234").await.unwrap();
    let (status, seen) = common::signed_raw(
        &ts.url(),
        &terminal,
        "GET",
        &paths::merchant_payment("t-1"),
        b"",
    )
    .await;
    assert_eq!((status, seen["state"].as_str()), (200, Some("completed")));

    // A phone is not a terminal.
    let (status, v) = signed(&alice, "POST", paths::MERCHANT_PAYMENTS, &body).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(shop.balance(&ts).await, 360);
    assert_eq!(ts.sum_of_balances().await, 0);
}

/// Runs `rounds` of `shop`'s payments where the customer's approval races
/// `rival`; checks that each ends one way, with the ledger and the payment
/// request agreeing, and returns how many were paid.
async fn race_approval<F, Fut>(ts: &TestServer, shop: &Shop, rounds: usize, rival: F) -> usize
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(100 * rounds as i64).await;
    link(&alice, shop).await;
    let mut paid = 0;
    for round in 0..rounds {
        let order = format!("r-{round}");
        assert_eq!(shop.charge(&order, &alice, &[(1, 100)]).await.0, 201);
        let claim = claim_in_inbox(&alice, &format!("Order {order}")).await;
        // The approval starts 0 to 2.8 ms later from round to round, so
        // that either side gets to win some of the races.
        let head_start = std::time::Duration::from_micros((round % 5) as u64 * 700);
        let approve = async {
            tokio::time::sleep(head_start).await;
            alice.client.approve_claim(&claim, "1234").await
        };
        let (approval, ()) = tokio::join!(approve, rival(order.clone()));
        let state = shop.payment(&order).await["state"]
            .as_str()
            .unwrap()
            .to_string();
        let transfer = alice.client.transfer(&claim).await.unwrap();
        match approval {
            Ok(_) => {
                assert_eq!(state, "completed");
                assert_eq!(transfer.state, TransferState::Posted);
                paid += 1;
            }
            Err(e) => {
                assert!(state == "cancelled" || state == "expired", "{state}: {e:?}");
                assert_eq!(transfer.state, TransferState::Voided);
            }
        }
    }
    assert_eq!(shop.balance(ts).await, 100 * paid as i64);
    assert_eq!(alice.balance().await, 100 * (rounds - paid) as i64);
    assert_eq!(ts.sum_of_balances().await, 0);
    eprintln!("{paid} of {rounds} approvals won their race");
    paid
}

async fn cancel_racing_approval_has_exactly_one_winner(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Racing Shop").await;
    race_approval(&ts, &shop, 20, |order| {
        let shop = &shop;
        async move {
            let (status, v, _) = shop
                .call("POST", &paths::merchant_payment_cancel(&order), "")
                .await;
            // Cancelled, or told the customer approved first.
            assert!(
                status == 200 || v["code"] == "claim_not_pending",
                "{status} {v}"
            );
        }
    })
    .await;
}

async fn expiry_racing_approval_has_exactly_one_winner(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Racing Shop").await;
    let state = ts.server.state.clone();
    race_approval(&ts, &shop, 20, |_| {
        let state = state.clone();
        async move {
            // The sweeper as it would run once the request is past its expiry.
            let later = clink_server::now_ms() + 2 * 3_600 * 1000;
            let n = state
                .writer
                .run(move |conn| {
                    Box::pin(async move {
                        Outcome::from_result(clink_server::sweeper::sweep(conn, later).await)
                    })
                })
                .await
                .unwrap();
            assert!(n <= 1);
        }
    })
    .await;
}

async fn unlinking_reporting_spam_and_the_waiting_limit_protect_the_inbox(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Pushy Shop").await;
    let alice = ts.user("Alice", "1234").await;
    link(&alice, &shop).await;
    let (status, linked) = signed(&alice, "GET", paths::LINKED_MERCHANTS, "").await;
    assert_eq!(status, 200);
    assert_eq!(linked["merchants"][0]["display_name"], "Pushy Shop");

    for n in 0..3 {
        assert_eq!(
            shop.charge(&format!("p-{n}"), &alice, &[(1, 100)]).await.0,
            201
        );
    }
    let (status, v) = shop.charge("p-3", &alice, &[(1, 100)]).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("too_many_requests"))
    );

    let (status, left) = signed(
        &alice,
        "POST",
        &paths::merchant_spam_report(&shop.merchant_id),
        "",
    )
    .await;
    assert_eq!(
        (status, left["merchants"].as_array().unwrap().len()),
        (200, 0)
    );
    for n in 0..3 {
        assert_eq!(shop.payment(&format!("p-{n}")).await["state"], "declined");
    }
    assert!(
        alice
            .client
            .inbox(0)
            .await
            .unwrap()
            .pending_claims
            .is_empty()
    );
    let (status, v) = shop.charge("p-4", &alice, &[(1, 100)]).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("merchant_not_linked"))
    );

    // Linking again, then unlinking: refused again.
    link(&alice, &shop).await;
    assert_eq!(shop.charge("p-5", &alice, &[(1, 100)]).await.0, 201);
    let (status, _) = signed(
        &alice,
        "DELETE",
        &paths::merchant_link(&shop.merchant_id),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = shop.charge("p-6", &alice, &[(1, 100)]).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("merchant_not_linked"))
    );
}

async fn a_presented_request_is_taken_by_the_first_phone_only(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Till 3").await;
    let alice = ts.user("Alice", "1234").await;
    let bob = ts.user("Bob", "5678").await;
    alice.cash_in(1_000).await;
    let presented = |order: &str, expires: u32| {
        json!({
            "merchant_order_id": order,
            "amount": 450,
            "items": [{"code": "TEA", "name": "Green tea", "quantity": 3, "unit_price": 150}],
            "customer": {"by": "presented"},
            "expires_in_secs": expires,
        })
        .to_string()
    };
    let (status, created, _) = shop
        .call("POST", paths::MERCHANT_PAYMENTS, &presented("q-1", 120))
        .await;
    assert_eq!(
        (status, created["state"].as_str()),
        (201, Some("created")),
        "{created}"
    );
    let payment_id = created["id"].as_str().unwrap().to_string();
    let take = json!({ "payment_id": payment_id }).to_string();

    let (status, charge) = signed(&alice, "POST", paths::CHARGES, &take).await;
    assert_eq!(status, 200, "{charge}");
    assert_eq!(charge["merchant"]["display_name"], "Till 3");
    assert_eq!(charge["items"][0]["name"], "Green tea");
    let claim = charge["claim_id"].as_str().unwrap().to_string();
    // The same phone again: the same claim. Another phone: taken.
    let (status, again) = signed(&alice, "POST", paths::CHARGES, &take).await;
    assert_eq!(
        (status, again["claim_id"].as_str()),
        (200, Some(claim.as_str()))
    );
    let (status, v) = signed(&bob, "POST", paths::CHARGES, &take).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("token_used")));
    let (status, v) = signed(&bob, "POST", paths::CHARGES, r#"{"payment_id":"sp_nope"}"#).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("token_unknown")));
    assert_eq!(shop.payment("q-1").await["state"], "pending_approval");
    alice.client.approve_claim(&claim, "1234").await.unwrap();
    assert_eq!(shop.payment("q-1").await["state"], "completed");
    assert_eq!(shop.balance(&ts).await, 450);

    // Presented and taken by nobody: expired by the sweeper, then refused.
    let (_, untaken, _) = shop
        .call("POST", paths::MERCHANT_PAYMENTS, &presented("q-2", 30))
        .await;
    let later = clink_server::now_ms() + 31_000;
    let state = ts.server.state.clone();
    state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(clink_server::sweeper::sweep(conn, later).await)
            })
        })
        .await
        .unwrap();
    let expired = shop.payment("q-2").await;
    assert_eq!(expired["state"], "expired");
    assert_eq!(expired["version"], 2);
    let take = json!({ "payment_id": untaken["id"] }).to_string();
    let (status, v) = signed(&bob, "POST", paths::CHARGES, &take).await;
    assert_eq!((status, v["code"].as_str()), (410, Some("claim_expired")));
    assert_eq!(ts.sum_of_balances().await, 0);
}

async fn partial_and_full_refunds_never_exceed_what_was_paid(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let shop = Shop::open(&ts, "Refund Shop").await;
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(5_000).await;
    link(&alice, &shop).await;
    assert_eq!(shop.charge("f-1", &alice, &[(4, 300)]).await.0, 201);
    let refund = |id: &str, amount: i64| json!({"refund_id": id, "amount": amount}).to_string();
    let path = paths::merchant_payment_refunds("f-1");

    // Not completed yet: nothing to refund.
    let (status, v, _) = shop.call("POST", &path, &refund("r-0", 100)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("claim_not_pending"))
    );
    let claim = claim_in_inbox(&alice, "Order f-1").await;
    alice.client.approve_claim(&claim, "1234").await.unwrap();
    assert_eq!(alice.balance().await, 3_800);

    let (status, first, _) = shop.call("POST", &path, &refund("r-1", 300)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["payment"]["refunded"], 300);
    // A retry answers the same and pays nothing more.
    let (status, again, _) = shop.call("POST", &path, &refund("r-1", 300)).await;
    assert_eq!(
        (status, &again["transfer_id"]),
        (200, &first["transfer_id"])
    );
    let (status, v, _) = shop.call("POST", &path, &refund("r-1", 200)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    // More than is left of the payment.
    let (status, v, _) = shop.call("POST", &path, &refund("r-2", 901)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("invalid_amount")),
        "{v}"
    );
    for bad in [refund("r-3", 0), refund("r-3", -5)] {
        let (status, v, _) = shop.call("POST", &path, &bad).await;
        assert_eq!((status, v["code"].as_str()), (400, Some("invalid_amount")));
    }
    let (status, rest, _) = shop.call("POST", &path, &refund("r-4", 900)).await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(rest["payment"]["refunded"], 1_200);
    let (status, v, _) = shop.call("POST", &path, &refund("r-5", 1)).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_amount")));

    assert_eq!(alice.balance().await, 5_000);
    assert_eq!(shop.balance(&ts).await, 0);
    assert_eq!(ts.sum_of_balances().await, 0);
    // The customer sees each refund from the shop, citing the order.
    let refund_id = first["transfer_id"].as_str().unwrap();
    let seen = alice.client.transfer(refund_id).await.unwrap();
    assert_eq!(seen.kind, TransferKind::Refund);
    assert_eq!(seen.counterpart.display_name, "Refund Shop");
    assert_eq!(seen.memo, "Refund of order f-1");
    assert_eq!(seen.direction, Direction::Incoming);
}

mod both_sides_agree {
    use super::*;

    on_both_backends!(a_customer_code_pays_only_when_both_statements_match,);

    fn statement(merchant_id: &str, order: &str, lines: &[(i64, i64)]) -> Value {
        let items: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(i, (quantity, unit_price))| {
                json!({"code": format!("SKU-{i}"), "name": format!("Item {i}"), "quantity": quantity, "unit_price": unit_price})
            })
            .collect();
        json!({
            "merchant_id": merchant_id,
            "merchant_order_id": order,
            "amount": lines.iter().map(|(q, p)| q * p).sum::<i64>(),
            "items": items,
        })
    }

    async fn code_for(user: &User, order: Value, pin: &str) -> (u16, Value) {
        let body = json!({ "order": order, "pin": pin }).to_string();
        signed(user, "POST", paths::CUSTOMER_CODES, &body).await
    }

    fn shop_order(order: &str, code: &str, lines: &[(i64, i64)]) -> String {
        let mut body: Value =
            serde_json::from_str(&order_body(order, "unused", lines, None)).unwrap();
        body["customer"] = json!({"by": "code", "code": code});
        body.to_string()
    }

    async fn a_customer_code_pays_only_when_both_statements_match(backend: Backend) {
        let Some(ts) = TestServer::start(backend, |_| {}).await else {
            return;
        };
        let shop = Shop::open(&ts, "Agreeing Shop").await;
        let alice = ts.user("Alice", "1234").await;
        alice.cash_in(10_000).await;
        let lines = [(2, 450), (1, 300)];

        // A wrong PIN gives no code; a good one does.
        let (status, v) =
            code_for(&alice, statement(&shop.merchant_id, "a-1", &lines), "9999").await;
        assert_eq!((status, v["code"].as_str()), (403, Some("wrong_pin")));
        let (status, issued) =
            code_for(&alice, statement(&shop.merchant_id, "a-1", &lines), "1234").await;
        assert_eq!(status, 201, "{issued}");
        let code = issued["code"].as_str().unwrap().to_string();
        assert!(code.starts_with("CL") && code.len() == 18, "{code}");

        // The shop agrees: paid at once, and the shop never sees the number.
        let (status, paid, text) = shop
            .call(
                "POST",
                paths::MERCHANT_PAYMENTS,
                &shop_order("a-1", &code, &lines),
            )
            .await;
        assert_eq!(
            (status, paid["state"].as_str()),
            (201, Some("completed")),
            "{paid}"
        );
        let digits: String = alice.e164.chars().filter(char::is_ascii_digit).collect();
        assert!(!text.contains(&digits[digits.len() - 8..]));
        assert_eq!(alice.balance().await, 10_000 - 1_200);
        assert_eq!(shop.balance(&ts).await, 1_200);
        // The same order sent again: the same answer, no second payment.
        let (status, again, _) = shop
            .call(
                "POST",
                paths::MERCHANT_PAYMENTS,
                &shop_order("a-1", &code, &lines),
            )
            .await;
        assert_eq!((status, &again["id"]), (200, &paid["id"]));
        // The code is single use.
        let (status, v, _) = shop
            .call(
                "POST",
                paths::MERCHANT_PAYMENTS,
                &shop_order("a-2", &code, &lines),
            )
            .await;
        assert_eq!((status, v["code"].as_str()), (409, Some("token_used")));

        // Disagreeing on the amount, and on one item line: refused, naming
        // the field; nothing is paid and the code is used up.
        for (order, shop_lines, field) in [
            ("a-3", vec![(2, 450), (1, 350)], "amount"),
            ("a-4", vec![(2, 450), (2, 150)], "item line 2: quantity"),
        ] {
            let (_, issued) =
                code_for(&alice, statement(&shop.merchant_id, order, &lines), "1234").await;
            let code = issued["code"].as_str().unwrap();
            let (status, v, _) = shop
                .call(
                    "POST",
                    paths::MERCHANT_PAYMENTS,
                    &shop_order(order, code, &shop_lines),
                )
                .await;
            assert_eq!(
                (status, v["code"].as_str()),
                (409, Some("order_mismatch")),
                "{v}"
            );
            assert!(v["message"].as_str().unwrap().contains(field), "{v}");
            let (status, v, _) = shop
                .call(
                    "POST",
                    paths::MERCHANT_PAYMENTS,
                    &shop_order(order, code, &lines),
                )
                .await;
            assert_eq!(
                (status, v["code"].as_str()),
                (409, Some("token_used")),
                "{v}"
            );
        }
        // A code made for another shop, an unknown one, a mistyped one.
        let other = Shop::open(&ts, "Other Shop").await;
        let (_, issued) =
            code_for(&alice, statement(&other.merchant_id, "a-5", &lines), "1234").await;
        let (status, v, _) = shop
            .call(
                "POST",
                paths::MERCHANT_PAYMENTS,
                &shop_order("a-5", issued["code"].as_str().unwrap(), &lines),
            )
            .await;
        assert_eq!((status, v["code"].as_str()), (404, Some("token_unknown")));
        for bad in ["CL0000000000000000", "CL1234"] {
            let (status, v, _) = shop
                .call(
                    "POST",
                    paths::MERCHANT_PAYMENTS,
                    &shop_order("a-6", bad, &lines),
                )
                .await;
            assert_eq!(
                (status, v["code"].as_str()),
                (404, Some("token_unknown")),
                "{bad}: {v}"
            );
        }
        let (status, v) = code_for(&alice, statement("m_nope", "a-7", &lines), "1234").await;
        assert_eq!(
            (status, v["code"].as_str()),
            (404, Some("unknown_merchant"))
        );
        let mut bad = statement(&shop.merchant_id, "a-8", &lines);
        bad["amount"] = json!(1);
        let (status, v) = code_for(&alice, bad, "1234").await;
        assert_eq!(
            (status, v["code"].as_str()),
            (422, Some("items_do_not_add_up"))
        );

        assert_eq!(alice.balance().await, 10_000 - 1_200);
        assert_eq!(shop.balance(&ts).await, 1_200);
        assert_eq!(ts.sum_of_balances().await, 0);
    }
}
