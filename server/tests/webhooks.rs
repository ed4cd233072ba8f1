//! Merchant webhooks delivered to a real local HTTP receiver that fails its
//! first attempts and answers slowly: every event arrives, is applied once
//! and in version order; the README's verification snippet (run by Python)
//! accepts the genuine deliveries and refuses forged, replayed and stale
//! ones. SQLite and PostgreSQL.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clink_core::wire::signing::HEADER_TIMESTAMP;
use clink_core::wire::*;
use common::{Backend, OPERATOR_TOKEN, TestServer, User};
use serde_json::{Value, json};

on_both_backends!(
    events_reach_a_failing_slow_receiver_once_each_in_version_order,
    an_unreachable_endpoint_is_retried_and_listed_as_undelivered,
);

/// What the receiver saw: every attempt, and the deliveries it accepted.
#[derive(Default)]
struct Receiver {
    attempts: usize,
    failures_left: usize,
    accepted: Vec<(String, Bytes)>,
}

async fn receive(
    State(receiver): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // Slow: the server must wait, not give up or send again meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut r = receiver.lock().unwrap();
    r.attempts += 1;
    if r.failures_left > 0 {
        r.failures_left -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let signature = headers[webhook_signing::HEADER]
        .to_str()
        .unwrap()
        .to_string();
    r.accepted.push((signature, body));
    StatusCode::OK
}

async fn start_receiver(failures: usize) -> (String, Arc<Mutex<Receiver>>) {
    let receiver = Arc::new(Mutex::new(Receiver {
        failures_left: failures,
        ..Receiver::default()
    }));
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
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
    (status, resp.json().await.unwrap_or(Value::Null))
}

struct Shop {
    base_url: String,
    merchant_id: String,
    key_id: String,
    secret: String,
}

impl Shop {
    async fn open(ts: &TestServer) -> Shop {
        let (_, merchant) = operator(
            ts,
            "POST",
            paths::OPERATOR_MERCHANTS,
            json!({"display_name": "Hook Shop", "category_code": "5999"}),
        )
        .await;
        let merchant_id = merchant["merchant_id"].as_str().unwrap().to_string();
        let (_, key) = operator(
            ts,
            "POST",
            &paths::operator_api_keys(&merchant_id),
            json!({}),
        )
        .await;
        Shop {
            base_url: ts.url(),
            merchant_id,
            key_id: key["key_id"].as_str().unwrap().into(),
            secret: key["secret"].as_str().unwrap().into(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let now = clink_server::now_ms();
        let resp = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", self.base_url))
            .header(merchant_signing::HEADER_KEY_ID, &self.key_id)
            .header(
                merchant_signing::HEADER_SIGNATURE,
                merchant_signing::sign(&self.secret, now, method, path, body.as_bytes()),
            )
            .header(HEADER_TIMESTAMP, now.to_string())
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn charge(&self, order: &str, customer: &User, amount: i64) {
        let body = json!({
            "merchant_order_id": order,
            "amount": amount,
            "items": [{"code": "X", "name": "Thing", "quantity": 1, "unit_price": amount}],
            "customer": {"by": "phone", "phone": customer.phone},
        });
        let (status, v) = self
            .call("POST", paths::MERCHANT_PAYMENTS, &body.to_string())
            .await;
        assert_eq!(status, 201, "{v}");
    }

    async fn undelivered(&self) -> Vec<Value> {
        let (status, v) = self
            .call("GET", paths::MERCHANT_UNDELIVERED_EVENTS, "")
            .await;
        assert_eq!(status, 200, "{v}");
        v["events"].as_array().unwrap().clone()
    }
}

fn fast_webhooks(config: &mut clink_server::Config) {
    config.webhook_poll_ms = 50;
    config.webhook_retry_base_ms = 200;
    config.webhook_timeout_ms = 5_000;
}

async fn customer(ts: &TestServer, shop: &Shop) -> User {
    let alice = ts.user("Alice", "1234").await;
    alice.cash_in(10_000).await;
    let (status, _) = common::signed_raw(
        &ts.url(),
        &alice.key,
        "POST",
        &paths::merchant_link(&shop.merchant_id),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    alice
}

async fn claim_id(user: &User, memo: &str) -> String {
    let inbox = user.client.inbox(0).await.unwrap();
    inbox
        .pending_claims
        .iter()
        .find(|c| c.memo == memo)
        .unwrap()
        .id
        .clone()
}

/// The README's verification snippet, run by Python over `deliveries`
/// (payload, header) in order with one set of seen ids; each answer is the
/// event's id or the error.
fn verify_with_readme_snippet(
    secrets: &[String],
    deliveries: &[(String, Vec<u8>)],
    now: i64,
) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```python\nimport hashlib, hmac, json, time")
        .expect("the README shows the snippet")
        + "```python\n".len();
    let snippet = &readme[start..start + readme[start..].find("```").unwrap()];
    let driver = r#"
import base64, sys
cases = json.load(sys.stdin)
seen = set()
for case in cases["deliveries"]:
    try:
        event = verify_clink_webhook(base64.b64decode(case["payload"]), case["header"],
                                     cases["secrets"], seen, now=cases["now"])
        print(event["id"])
    except ValueError as e:
        print("refused: " + str(e))
"#;
    let input = json!({
        "secrets": secrets,
        "now": now,
        "deliveries": deliveries.iter().map(|(header, payload)| json!({
            "header": header,
            "payload": base64_encode(payload),
        })).collect::<Vec<_>>(),
    });
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{snippet}\n{driver}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the README's snippet");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the snippet failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn events_reach_a_failing_slow_receiver_once_each_in_version_order(backend: Backend) {
    let Some(ts) = TestServer::start(backend, fast_webhooks).await else {
        return;
    };
    let (url, receiver) = start_receiver(3).await;
    let shop = Shop::open(&ts).await;
    let (status, settings) = operator(
        &ts,
        "PUT",
        &paths::operator_webhook(&shop.merchant_id),
        json!({ "url": url }),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    let secrets: Vec<String> = serde_json::from_value(settings["secrets"].clone()).unwrap();
    assert_eq!(secrets.len(), 1);

    let alice = customer(&ts, &shop).await;
    shop.charge("w-1", &alice, 700).await;
    shop.charge("w-2", &alice, 300).await;
    let claim = claim_id(&alice, "Order w-1").await;
    alice.client.approve_claim(&claim, "1234").await.unwrap();
    let (status, _) = shop
        .call("POST", &paths::merchant_payment_cancel("w-2"), "")
        .await;
    assert_eq!(status, 200);

    // Two events per payment request: pending_approval (v2), then the end.
    wait_for("four deliveries", || {
        receiver.lock().unwrap().accepted.len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (attempts, accepted) = {
        let r = receiver.lock().unwrap();
        (r.attempts, r.accepted.clone())
    };
    assert_eq!(accepted.len(), 4, "each event accepted once");
    assert!(attempts >= 4 + 3, "the failed attempts were retried");

    let deliveries: Vec<(String, Vec<u8>)> = accepted
        .iter()
        .map(|(header, body)| (header.clone(), body.to_vec()))
        .collect();
    let now_secs = clink_server::now_ms() / 1000;
    let verdicts = verify_with_readme_snippet(&secrets, &deliveries, now_secs);
    assert!(
        verdicts.iter().all(|v| v.starts_with("evt_")),
        "{verdicts:?}"
    );

    // Per payment request, versions arrive in order and end in the final state.
    let events: Vec<WebhookEvent> = accepted
        .iter()
        .map(|(_, body)| serde_json::from_slice(body).unwrap())
        .collect();
    for order in ["w-1", "w-2"] {
        let mine: Vec<&WebhookEvent> = events
            .iter()
            .filter(|e| e.data.merchant_order_id == order)
            .collect();
        let versions: Vec<i64> = mine.iter().map(|e| e.data.version).collect();
        assert_eq!(versions, [2, 3], "{order}");
        assert_eq!(mine[0].kind, "shop_payment.pending_approval");
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"shop_payment.completed"), "{kinds:?}");
    assert!(kinds.contains(&"shop_payment.cancelled"), "{kinds:?}");
    assert!(shop.undelivered().await.is_empty());
    // No event names the customer.
    for (_, body) in &accepted {
        let text = String::from_utf8_lossy(body);
        assert!(
            !text.contains(&alice.e164[3..]) && !text.contains("Alice"),
            "{text}"
        );
    }

    // Forged, replayed and stale deliveries are refused by the snippet.
    let (header, body) = deliveries[0].clone();
    let forged_body = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"amount\":700", "\"amount\":7")
        .replace("\"amount\":300", "\"amount\":3");
    let stale_header = webhook_signing::header(&secrets, now_secs - 600, &body);
    let other_secret = webhook_signing::header(&["whsec_guess".to_string()], now_secs, &body);
    let verdicts = verify_with_readme_snippet(
        &secrets,
        &[
            (header.clone(), body.clone()),
            (header.clone(), body.clone()),
            (header.clone(), forged_body.into_bytes()),
            (stale_header, body.clone()),
            (other_secret, body.clone()),
            ("t=1,v1=".to_string(), body.clone()),
        ],
        now_secs,
    );
    assert!(verdicts[0].starts_with("evt_"), "{verdicts:?}");
    assert_eq!(
        &verdicts[1..],
        [
            "refused: replayed event",
            "refused: bad signature",
            "refused: stale timestamp",
            "refused: bad signature",
            "refused: stale timestamp",
        ],
        "{verdicts:?}"
    );

    // While a secret rotates, both sign, and either alone verifies.
    let (status, rotated) = operator(
        &ts,
        "POST",
        &paths::operator_webhook_rotate(&shop.merchant_id),
        json!({ "overlap_secs": 3600 }),
    )
    .await;
    assert_eq!(status, 200);
    let both: Vec<String> = serde_json::from_value(rotated["secrets"].clone()).unwrap();
    assert_eq!((both.len(), &both[1]), (2, &secrets[0]));
    shop.charge("w-3", &alice, 100).await;
    wait_for("the event after rotation", || {
        receiver.lock().unwrap().accepted.len() >= 5
    })
    .await;
    let (header, body) = receiver.lock().unwrap().accepted[4].clone();
    assert_eq!(header.matches("v1=").count(), 2, "{header}");
    for secret in &both {
        let verdict = verify_with_readme_snippet(
            &[secret.clone()],
            &[(header.clone(), body.to_vec())],
            now_secs,
        );
        assert!(verdict[0].starts_with("evt_"), "{verdict:?}");
    }
}

async fn an_unreachable_endpoint_is_retried_and_listed_as_undelivered(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |config| {
        fast_webhooks(config);
        config.webhook_give_up_secs = 2;
    })
    .await
    else {
        return;
    };
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", closed.local_addr().unwrap());
    drop(closed);
    let shop = Shop::open(&ts).await;
    let (status, _) = operator(
        &ts,
        "PUT",
        &paths::operator_webhook(&shop.merchant_id),
        json!({ "url": url }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = operator(
        &ts,
        "PUT",
        &paths::operator_webhook(&shop.merchant_id),
        json!({ "url": "ftp://shop.example/" }),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_request")));

    let alice = customer(&ts, &shop).await;
    shop.charge("u-1", &alice, 500).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = shop.undelivered().await;
        if listed.len() == 1 && listed[0]["gave_up"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed.len(), 1, "{listed:?}");
    let event = &listed[0];
    assert_eq!(event["event"]["type"], "shop_payment.pending_approval");
    assert_eq!(event["gave_up"], true, "{event}");
    assert!(event["attempts"].as_i64().unwrap() >= 2, "{event}");
    assert!(event["last_error"].as_str().is_some(), "{event}");
    // The money is untouched by delivery trouble: the customer can still pay.
    let claim = claim_id(&alice, "Order u-1").await;
    alice.client.approve_claim(&claim, "1234").await.unwrap();
    assert_eq!(ts.sum_of_balances().await, 0);
}
