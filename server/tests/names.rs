//! Display names and memos that cannot impersonate, over HTTP on SQLite and
//! PostgreSQL: every kind of misleading character is refused where a name or
//! a memo enters (registration, send, claim, sync items, bump and sound
//! requests) with a 400 that names it, nothing is written, and what is
//! accepted is stored in NFC (`clink_core::wire::text` has the rules).

mod common;

use std::sync::Arc;

use clink_core::http_client::ApiClient;
use clink_core::wire::signing::{self, DeviceKey};
use clink_core::wire::*;
use common::{Backend, TestServer, User, fresh_phone, key};
use ring::rand::SystemRandom;
use sqlx::Row;

on_both_backends!(
    a_right_to_left_override_cannot_register,
    a_name_with_a_bidi_isolate_cannot_register,
    a_name_with_a_zero_width_character_cannot_register,
    a_name_with_a_byte_order_mark_cannot_register,
    a_name_with_a_noncharacter_cannot_register,
    a_name_with_a_control_character_cannot_register,
    a_name_mixing_scripts_cannot_register,
    a_name_with_stray_spaces_cannot_register,
    names_in_many_scripts_register_and_a_decomposed_one_is_stored_composed,
    misleading_memos_are_refused_in_send_and_claim,
    misleading_memos_are_refused_item_by_item_in_sync,
    misleading_memos_are_refused_in_bump_and_sound_requests,
);

/// Sends a signed request as raw bytes; returns the status and the JSON body.
async fn raw(
    ts: &TestServer,
    key: &DeviceKey,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = serde_json::to_vec(body).unwrap();
    let nonce = signing::new_nonce(&SystemRandom::new());
    let mut req = reqwest::Client::new().post(format!("{}{path}", ts.url()));
    for (name, value) in key.sign("POST", path, &body, clink_server::now_ms(), &nonce) {
        req = req.header(name, value);
    }
    let resp = req
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// Asserts a 400 with `code` whose message contains `names`.
#[track_caller]
fn assert_refused((status, body): &(u16, serde_json::Value), code: &str, names: &str) {
    assert_eq!(
        (*status, body["code"].as_str()),
        (400, Some(code)),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(names),
        "{message:?} does not name {names:?}"
    );
}

/// Someone with a registration code, not yet verified.
struct Newcomer {
    key: Arc<DeviceKey>,
    phone: String,
    code: String,
}

async fn newcomer(ts: &TestServer) -> Newcomer {
    let phone = fresh_phone();
    let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
    let key = Arc::new(key);
    let client = ApiClient::new(&ts.url()).with_key(key.clone());
    let started = client.register(&phone).await.unwrap();
    let code = ts.otp.last_code(started.phone.as_e164()).unwrap();
    Newcomer { key, phone, code }
}

impl Newcomer {
    async fn verify(&self, ts: &TestServer, display_name: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({
            "phone": self.phone,
            "code": self.code,
            "display_name": display_name,
            "pin": "1234",
        });
        raw(ts, &self.key, paths::REGISTER_VERIFY, &body).await
    }
}

async fn users(ts: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM users")
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0)
}

/// Each name is refused with `invalid_display_name` and a message naming
/// the problem; no account is opened, and the code still works for a good
/// name afterwards.
async fn names_are_refused(backend: Backend, cases: &[(&str, &str)]) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let someone = newcomer(&ts).await;
    for (name, names) in cases {
        let answer = someone.verify(&ts, name).await;
        assert_refused(&answer, "invalid_display_name", names);
    }
    assert_eq!(users(&ts).await, 0);
    let (status, account) = someone.verify(&ts, "Shoce").await;
    assert_eq!(
        (status, account["display_name"].as_str()),
        (201, Some("Shoce"))
    );
}

async fn a_right_to_left_override_cannot_register(backend: Backend) {
    // Shown as "Shoce" by a renderer that obeys the override.
    names_are_refused(
        backend,
        &[
            (
                "\u{202E}ecohS",
                "U+202E RIGHT-TO-LEFT OVERRIDE at character 1 is not allowed in a display name",
            ),
            (
                "Sho\u{202D}ce",
                "U+202D LEFT-TO-RIGHT OVERRIDE at character 4",
            ),
            ("Shoce\u{200F}", "U+200F RIGHT-TO-LEFT MARK at character 6"),
        ],
    )
    .await;
}

async fn a_name_with_a_bidi_isolate_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            (
                "\u{2067}Shoce",
                "U+2067 RIGHT-TO-LEFT ISOLATE at character 1",
            ),
            (
                "Sho\u{2068}ce\u{2069}",
                "U+2068 FIRST STRONG ISOLATE at character 4",
            ),
        ],
    )
    .await;
}

async fn a_name_with_a_zero_width_character_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            ("Sh\u{200B}oce", "U+200B ZERO WIDTH SPACE at character 3"),
            ("Shoce\u{200D}", "U+200D ZERO WIDTH JOINER at character 6"),
            ("S\u{2060}hoce", "U+2060 WORD JOINER at character 2"),
            ("Sho\u{3164}ce", "U+3164 HANGUL FILLER at character 4"),
        ],
    )
    .await;
}

async fn a_name_with_a_byte_order_mark_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            ("\u{FEFF}Shoce", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
            ("Sho\u{FEFF}ce", "at character 4"),
        ],
    )
    .await;
}

async fn a_name_with_a_noncharacter_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            (
                "Shoce\u{FDD0}",
                "U+FDD0 at character 6 is not allowed in a display name",
            ),
            ("\u{FFFF}Shoce", "U+FFFF at character 1"),
            ("Sho\u{10FFFE}ce", "U+10FFFE at character 4"),
        ],
    )
    .await;
}

async fn a_name_with_a_control_character_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            (
                "Sho\u{7}ce",
                "U+0007 at character 4 is not allowed in a display name",
            ),
            ("Shoce\nBob", "U+000A at character 6"),
            ("Sho\u{1B}[2Jce", "U+001B at character 4"),
            ("Shoce\u{2028}Bob", "U+2028 LINE SEPARATOR at character 6"),
        ],
    )
    .await;
}

async fn a_name_mixing_scripts_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            // A Cyrillic а among Latin letters.
            (
                "Pаypal",
                "U+0430 'а' at character 2 is Cyrillic, but the display name before it is Latin",
            ),
            // A Greek omicron.
            ("Gοogle", "U+03BF 'ο' at character 2 is Greek"),
        ],
    )
    .await;
}

async fn a_name_with_stray_spaces_cannot_register(backend: Backend) {
    names_are_refused(
        backend,
        &[
            ("  ", "cannot be blank"),
            (" Shoce", "cannot start or end with a space (character 1)"),
            ("Shoce ", "cannot start or end with a space (character 6)"),
            ("Sho  ce", "two spaces in a row (character 5)"),
            ("Sho\u{A0}ce", "U+00A0 NO-BREAK SPACE at character 4"),
            ("Sho\u{200A}ce", "U+200A HAIR SPACE at character 4"),
        ],
    )
    .await;
}

async fn names_in_many_scripts_register_and_a_decomposed_one_is_stored_composed(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    for name in [
        "山田 はなこ",
        "山田　花子",
        "Müller",
        "Ζωή",
        "김민준",
        "Bread & Co",
    ] {
        let someone = newcomer(&ts).await;
        let (status, account) = someone.verify(&ts, name).await;
        assert_eq!(
            (status, account["display_name"].as_str()),
            (201, Some(name))
        );
    }
    // "José" typed as "Jose" + U+0301 COMBINING ACUTE ACCENT.
    let jose = ts.user("Jose\u{301}", "1234").await;
    assert_eq!(jose.client.me().await.unwrap().display_name, "José");
    let stored: String = sqlx::query("SELECT display_name FROM users WHERE phone = $1")
        .bind(&jose.e164)
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.as_bytes(), "José".as_bytes());
    // Others see the composed form too.
    let ana = ts.user("Ana", "5678").await;
    jose.claim(&ana, 100, "tapas").await;
    let inbox = ana.client.inbox(0).await.unwrap();
    assert_eq!(inbox.pending_claims[0].counterpart.display_name, "José");
}

async fn transfers(ts: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM transfers")
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0)
}

async fn stored_memo(ts: &TestServer, transfer_id: &str) -> String {
    sqlx::query("SELECT memo FROM transfers WHERE id = $1")
        .bind(transfer_id)
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0)
}

async fn misleading_memos_are_refused_in_send_and_claim(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let bob = ts.user("Bob", "5678").await;
    // The memo is refused before anything else is looked at (Alice has no
    // money yet, and the answer is still about the memo).
    let send = |memo: &str| {
        serde_json::json!({
            "idempotency_key": key(), "payee": bob.phone, "amount": 10,
            "memo": memo, "pin": "1234",
        })
    };
    for (memo, names) in [
        (
            "\u{202E}hcnul",
            "U+202E RIGHT-TO-LEFT OVERRIDE at character 1 is not allowed in a memo",
        ),
        ("lunch\u{200B}", "U+200B ZERO WIDTH SPACE at character 6"),
        ("a\u{7}", "U+0007 at character 2"),
    ] {
        let answer = raw(&ts, &alice.key, paths::SEND, &send(memo)).await;
        assert_refused(&answer, "invalid_memo", names);
    }
    let claim = |memo: &str| {
        serde_json::json!({
            "idempotency_key": key(), "payer": alice.phone, "amount": 300, "memo": memo,
        })
    };
    for (memo, names) in [
        (
            "tick\u{2066}ets",
            "U+2066 LEFT-TO-RIGHT ISOLATE at character 5",
        ),
        (
            "\u{FEFF}tickets",
            "U+FEFF ZERO WIDTH NO-BREAK SPACE (byte order mark) at character 1",
        ),
        ("tickets\u{FFFE}", "U+FFFE at character 8"),
    ] {
        let answer = raw(&ts, &bob.key, paths::CLAIMS, &claim(memo)).await;
        assert_refused(&answer, "invalid_memo", names);
    }
    assert_eq!(transfers(&ts).await, 0);
    assert!(
        alice
            .client
            .inbox(0)
            .await
            .unwrap()
            .pending_claims
            .is_empty()
    );

    // A memo may mix scripts; a decomposed one is stored composed.
    let (status, made) = raw(&ts, &bob.key, paths::CLAIMS, &claim("Pаypal ラーメン")).await;
    assert_eq!(status, 201, "{made}");
    let (status, made) = raw(&ts, &bob.key, paths::CLAIMS, &claim("cafe\u{301}")).await;
    assert_eq!((status, made["memo"].as_str()), (201, Some("café")));
    assert_eq!(stored_memo(&ts, made["id"].as_str().unwrap()).await, "café");
}

/// An item as the wallet queues it: the single request's body, signed.
fn item(user: &User, kind: SyncItemKind, body: serde_json::Value) -> SyncItem {
    let idempotency_key = body["idempotency_key"].as_str().unwrap().to_string();
    let body = body.to_string();
    let signed_at_ms = clink_server::now_ms();
    let signature = user
        .key
        .sign(
            "POST",
            kind.path(),
            body.as_bytes(),
            signed_at_ms,
            &idempotency_key,
        )
        .into_iter()
        .find(|(n, _)| *n == signing::HEADER_SIGNATURE)
        .unwrap()
        .1;
    SyncItem {
        kind,
        body,
        signed_at_ms,
        signature,
    }
}

fn item_key() -> String {
    // Item keys double as signing nonces: 16-64 of [A-Za-z0-9_-].
    format!("names-{}-0123456789", key())
}

async fn misleading_memos_are_refused_item_by_item_in_sync(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let alice = ts.user("Alice", "1234").await;
    let bob = ts.user("Bob", "5678").await;
    let send = |memo: &str| {
        let body = serde_json::json!({
            "idempotency_key": item_key(), "payee": bob.phone, "amount": 10,
            "memo": memo, "pin": "1234",
        });
        item(&alice, SyncItemKind::Send, body)
    };
    let claim = |memo: &str| {
        let body = serde_json::json!({
            "idempotency_key": item_key(), "payer": bob.phone, "amount": 20, "memo": memo,
        });
        item(&alice, SyncItemKind::Claim, body)
    };
    let items = vec![
        send("\u{FEFF}lunch"),
        claim("tickets\u{202E}"),
        claim("tick\u{200C}ets"),
        claim("cafe\u{301}"),
    ];
    let answer: SyncResponse = alice
        .client
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
        .unwrap();
    let outcomes: Vec<_> = answer.results.iter().map(|r| &r.outcome).collect();
    let refused = |outcome: &SyncOutcome, names: &str| match outcome {
        SyncOutcome::Rejected { error } => {
            assert_eq!((error.code, error.status()), (ErrorCode::InvalidMemo, 400));
            assert!(error.message.contains(names), "{}", error.message);
        }
        other => panic!("expected invalid_memo, got {other:?}"),
    };
    refused(
        outcomes[0],
        "U+FEFF ZERO WIDTH NO-BREAK SPACE (byte order mark) at character 1",
    );
    refused(outcomes[1], "U+202E RIGHT-TO-LEFT OVERRIDE at character 8");
    refused(outcomes[2], "U+200C ZERO WIDTH NON-JOINER at character 5");
    match outcomes[3] {
        SyncOutcome::Accepted { transfer } => {
            assert_eq!(transfer.memo, "café");
            assert_eq!(stored_memo(&ts, &transfer.id).await, "café");
        }
        other => panic!("expected the good item accepted, got {other:?}"),
    }
    assert_eq!(transfers(&ts).await, 1);
}

/// A fingerprint the server accepts (the real ones come from audio).
fn fingerprint() -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = vec![2u8]; // format version
    for _ in 0..92 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&(state as u16).to_le_bytes());
    }
    bytes
}

async fn misleading_memos_are_refused_in_bump_and_sound_requests(backend: Backend) {
    let Some(ts) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let bob = ts.user("Bob", "5678").await;
    let alice = ts.user("Alice", "1234").await;
    let report = BumpReport {
        role: BumpRole::Payee,
        amount: Some(800),
        instant_ms: clink_server::now_ms(),
        impulse: ImpulseFeatures {
            peak_mps2: 40.0,
            delta_v_mps: 0.2,
            rise_ms: 2.0,
            duration_ms: 4.0,
            direction: [0.0, 1.0, 0.0],
        },
        fingerprint: fingerprint(),
        location: None,
    };
    let bump = serde_json::json!({"report": report, "memo": "cof\u{202E}fee"});
    let answer = raw(&ts, &bob.key, paths::BUMPS, &bump).await;
    assert_refused(
        &answer,
        "invalid_memo",
        "U+202E RIGHT-TO-LEFT OVERRIDE at character 4",
    );
    let reports: i64 = sqlx::query("SELECT COUNT(*) FROM bump_reports")
        .fetch_one(ts.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(reports, 0);

    let sound = |memo: &str| serde_json::json!({"amount": 500, "memo": memo});
    let answer = raw(&ts, &bob.key, paths::SOUND_TOKENS, &sound("bread\u{2069}")).await;
    assert_refused(
        &answer,
        "invalid_memo",
        "U+2069 POP DIRECTIONAL ISOLATE at character 6",
    );
    // The memo the payer confirms is the composed one.
    let (status, issued) = raw(&ts, &bob.key, paths::SOUND_TOKENS, &sound("cafe\u{301}")).await;
    assert_eq!(
        (status, issued["memo"].as_str()),
        (201, Some("café")),
        "{issued}"
    );
    let token = decode_token(issued["token"].as_str().unwrap()).unwrap();
    let request = alice.client.redeem_sound_token(&token).await.unwrap();
    assert_eq!(
        (request.payee_display_name.as_str(), request.memo.as_str()),
        ("Bob", "café")
    );
}
