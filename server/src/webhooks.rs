//! Merchant notifications: every change of a payment request becomes an
//! event in an outbox (`webhook_events`), written in the same transaction
//! as the change, and a delivery task posts it to the merchant's URL, at
//! least once.
//!
//! - Signed as Stripe's are (`clink_protocol::wire::webhook_signing`):
//!   `t=…,v1=…`, one `v1` per live secret while a secret rotates.
//! - Retries with exponential backoff (capped at an hour) until delivered
//!   or 24 h have passed; then the event is kept as given up, and listed
//!   with the undelivered ones for the merchant to read.
//! - A payment request's events go out one at a time, oldest first: a newer
//!   one waits until the older is delivered or given up. Each carries a
//!   stable id and the request's version, so a receiver can drop repeats
//!   and stale ones.
//! - Events are leased before they are posted (a conditional update in a
//!   writer job), so several server instances never post one event at once.
//!
//! Posting uses hyper's client directly: the server links no HTTP client of
//! the phone's (`scripts/check-structure`), and needs nothing more.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clink_protocol::wire::*;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sqlx::{AnyConnection, Row};

use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::merchants::{MerchantCaller, merchant_by_id};
use crate::operator::Operator;
use crate::request::json_body;
use crate::writer::Outcome;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/operator/merchants/{id}/webhook", put(set_webhook))
        .route(
            "/v1/operator/merchants/{id}/webhook/rotate",
            post(rotate_secret),
        )
        .route(paths::MERCHANT_UNDELIVERED_EVENTS, get(undelivered))
}

/// Label of the derivation that makes a webhook secret from the merchant id
/// and the secret's generation.
const SECRET_LABEL: &str = "clink webhook secret v1";
/// Longest webhook URL.
const MAX_URL_CHARS: usize = 2_000;
/// Events leased per round, and for how long a lease keeps other instances off.
const BATCH: i64 = 100;
const LEASE_MS: i64 = 60_000;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// The most of a receiver's answer kept as the last error.
const MAX_ERROR_CHARS: usize = 200;

fn secret(state: &AppState, merchant_id: &str, generation: i64) -> String {
    format!(
        "whsec_{}",
        state
            .secret
            .hash(SECRET_LABEL, &format!("{merchant_id}:{generation}"))
    )
}

/// The secrets that sign now, newest first.
fn live_secrets(
    state: &AppState,
    merchant_id: &str,
    generation: i64,
    previous_until: Option<i64>,
    now: i64,
) -> Vec<String> {
    let mut secrets = vec![secret(state, merchant_id, generation)];
    if generation > 1 && previous_until.is_some_and(|until| now < until) {
        secrets.push(secret(state, merchant_id, generation - 1));
    }
    secrets
}

// ---------------------------------------------------------------- outbox

/// Writes the event for a payment request's current state; called in the
/// transaction that changed it.
pub async fn record(
    conn: &mut AnyConnection,
    merchant_id: &str,
    view: &ShopPaymentView,
    now: i64,
) -> AppResult<()> {
    let kind = format!("shop_payment.{}", state_name(view.state));
    record_as(conn, merchant_id, view, &kind, now).await
}

/// [`record`] with a type of its own (e.g. `shop_payment.refunded`).
pub async fn record_as(
    conn: &mut AnyConnection,
    merchant_id: &str,
    view: &ShopPaymentView,
    kind: &str,
    now: i64,
) -> AppResult<()> {
    let event = WebhookEvent {
        id: format!(
            "evt_{}_v{}",
            view.id.trim_start_matches("sp_"),
            view.version
        ),
        kind: kind.to_string(),
        created_at_ms: now,
        data: view.clone(),
    };
    let payload = serde_json::to_string(&event).expect("events serialise");
    sqlx::query(
        "INSERT INTO webhook_events (event_id, merchant_id, shop_payment_id, version, payload, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&event.id)
    .bind(merchant_id)
    .bind(&view.id)
    .bind(view.version)
    .bind(&payload)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

fn state_name(state: ShopPaymentState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("states serialise as strings")
}

// -------------------------------------------------------------- delivery

/// One event on its way out.
struct Due {
    id: i64,
    event_id: String,
    payload: String,
    url: String,
    secrets: Vec<String>,
    created_at: i64,
    attempts: i64,
}

/// How one attempt ended.
struct Attempt {
    id: i64,
    created_at: i64,
    attempts: i64,
    error: Option<String>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> HttpsClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .expect("ring offers the default protocol versions")
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

pub fn spawn(state: Arc<AppState>) {
    let weak = Arc::downgrade(&state);
    let period = Duration::from_millis(state.config.webhook_poll_ms.max(10));
    drop(state);
    tokio::spawn(async move {
        let client = client();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            if let Err(e) = deliver_due(&state, &client).await {
                tracing::warn!(error = ?e, "webhook delivery round failed; will retry");
            }
        }
    });
}

/// One round: lease what is due, post it all at once, record how it went.
/// Returns how many events were attempted.
pub async fn deliver_due(state: &Arc<AppState>, client: &HttpsClient) -> AppResult<usize> {
    let st = state.clone();
    let due = state
        .writer
        .run(move |conn| Box::pin(async move { Outcome::from_result(lease(&st, conn).await) }))
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let timeout = Duration::from_millis(state.config.webhook_timeout_ms);
    let mut posts = tokio::task::JoinSet::new();
    for event in due {
        let client = client.clone();
        posts.spawn(async move {
            let error = post_event(&client, &event, timeout).await.err();
            Attempt {
                id: event.id,
                created_at: event.created_at,
                attempts: event.attempts + 1,
                error,
            }
        });
    }
    let attempts = posts.join_all().await;
    let count = attempts.len();
    let (base_ms, give_up_ms) = (
        state.config.webhook_retry_base_ms as i64,
        state.config.webhook_give_up_secs as i64 * 1000,
    );
    state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(record_attempts(conn, &attempts, base_ms, give_up_ms).await)
            })
        })
        .await?;
    Ok(count)
}

/// Takes the due events whose older siblings are all settled, and leases
/// them (an update conditioned on the value read, so one instance wins).
async fn lease(state: &AppState, conn: &mut AnyConnection) -> AppResult<Vec<Due>> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT e.id, e.event_id, e.payload, e.created_at, e.attempts, e.next_attempt_at,
                m.id, m.webhook_url, m.webhook_generation, m.webhook_previous_until
         FROM webhook_events e JOIN merchants m ON m.id = e.merchant_id
         WHERE e.delivered_at IS NULL AND e.failed_at IS NULL AND e.next_attempt_at <= $1
           AND m.webhook_url IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM webhook_events o
                           WHERE o.shop_payment_id = e.shop_payment_id AND o.id < e.id
                             AND o.delivered_at IS NULL AND o.failed_at IS NULL)
         ORDER BY e.next_attempt_at, e.id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&mut *conn)
    .await?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, seen): (i64, i64) = (row.try_get(0)?, row.try_get(5)?);
        let leased = sqlx::query(
            "UPDATE webhook_events SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL",
        )
        .bind(now + LEASE_MS)
        .bind(id)
        .bind(seen)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if leased == 0 {
            continue;
        }
        let merchant_id: String = row.try_get(6)?;
        due.push(Due {
            id,
            event_id: row.try_get(1)?,
            payload: row.try_get(2)?,
            created_at: row.try_get(3)?,
            attempts: row.try_get(4)?,
            url: row.try_get(7)?,
            secrets: live_secrets(state, &merchant_id, row.try_get(8)?, row.try_get(9)?, now),
        });
    }
    Ok(due)
}

/// Posts one event; any answer but 2xx within the timeout is a failure.
async fn post_event(client: &HttpsClient, event: &Due, timeout: Duration) -> Result<(), String> {
    let body = Bytes::from(event.payload.clone());
    let signature = webhook_signing::header(&event.secrets, now_ms() / 1000, &body);
    let request = hyper::Request::post(&event.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "Clink-Webhooks/1")
        .header(webhook_signing::HEADER, signature)
        .header("clink-event-id", &event.event_id)
        .body(Full::new(body))
        .map_err(|e| format!("bad request: {e}"))?;
    let answer = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Read a little of the answer for the merchant's undelivered list.
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text: String = String::from_utf8_lossy(&body)
            .chars()
            .take(MAX_ERROR_CHARS)
            .collect();
        Err(format!("HTTP {}: {text}", status.as_u16()))
    })
    .await;
    answer.unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

/// The wait before attempt `attempts + 1`: the base, doubled per attempt,
/// capped at an hour.
pub fn backoff_ms(base_ms: i64, attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 30) - 1;
    base_ms.saturating_mul(1 << doublings).min(MAX_BACKOFF_MS)
}

async fn record_attempts(
    conn: &mut AnyConnection,
    attempts: &[Attempt],
    base_ms: i64,
    give_up_ms: i64,
) -> AppResult<()> {
    let now = now_ms();
    for a in attempts {
        match &a.error {
            None => {
                sqlx::query(
                    "UPDATE webhook_events SET delivered_at = $1, attempts = $2, last_error = NULL WHERE id = $3",
                )
                .bind(now)
                .bind(a.attempts)
                .bind(a.id)
                .execute(&mut *conn)
                .await?;
            }
            Some(error) => {
                let gave_up = (now - a.created_at >= give_up_ms).then_some(now);
                sqlx::query(
                    "UPDATE webhook_events SET attempts = $1, next_attempt_at = $2, failed_at = $3, last_error = $4 WHERE id = $5",
                )
                .bind(a.attempts)
                .bind(now + backoff_ms(base_ms, a.attempts))
                .bind(gave_up)
                .bind(error)
                .bind(a.id)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------- endpoints

fn check_url(url: &str) -> AppResult<()> {
    let parsed: Result<hyper::Uri, _> = url.parse();
    let ok = url.len() <= MAX_URL_CHARS
        && parsed.is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("https" | "http")) && uri.host().is_some()
        });
    if !ok {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!("url must be an absolute http(s) URL of at most {MAX_URL_CHARS} characters"),
        ));
    }
    Ok(())
}

async fn settings(state: &AppState, merchant_id: &str) -> AppResult<WebhookSettings> {
    let row = sqlx::query(
        "SELECT webhook_url, webhook_generation, webhook_previous_until FROM merchants WHERE id = $1",
    )
    .bind(merchant_id)
    .fetch_one(&state.db.pool)
    .await?;
    Ok(WebhookSettings {
        url: row.try_get(0)?,
        secrets: live_secrets(
            state,
            merchant_id,
            row.try_get(1)?,
            row.try_get(2)?,
            now_ms(),
        ),
    })
}

async fn set_webhook(
    State(state): St,
    _operator: Operator,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<WebhookSettings>> {
    let req: SetWebhookRequest = json_body(body)?;
    check_url(&req.url)?;
    let merchant = id.clone();
    update_merchant(&state, &id, move |conn| {
        Box::pin(async move {
            sqlx::query("UPDATE merchants SET webhook_url = $1 WHERE id = $2")
                .bind(&req.url)
                .bind(&merchant)
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(AppError::from)
        })
    })
    .await?;
    Ok(Json(settings(&state, &id).await?))
}

async fn rotate_secret(
    State(state): St,
    _operator: Operator,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<WebhookSettings>> {
    let req: RotateWebhookSecretRequest = json_body(body)?;
    let merchant = id.clone();
    update_merchant(&state, &id, move |conn| {
        Box::pin(async move {
            sqlx::query(
                "UPDATE merchants SET webhook_generation = webhook_generation + 1, webhook_previous_until = $1 WHERE id = $2",
            )
            .bind(now_ms() + i64::from(req.overlap_secs) * 1000)
            .bind(&merchant)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(AppError::from)
        })
    })
    .await?;
    Ok(Json(settings(&state, &id).await?))
}

async fn update_merchant<F>(state: &Arc<AppState>, id: &str, update: F) -> AppResult<()>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> crate::writer::BoxFuture<'c, AppResult<()>>
        + Send
        + 'static,
{
    if merchant_by_id(&state.db.pool, id).await?.is_none() {
        return Err(AppError::new(
            ErrorCode::UnknownMerchant,
            format!("there is no merchant {id:?}"),
        ));
    }
    state
        .writer
        .run(move |conn| Box::pin(async move { Outcome::from_result(update(conn).await) }))
        .await
}

/// Events not delivered yet (waiting for a retry, or given up), oldest
/// first: what a shop reads after an outage.
async fn undelivered(
    State(state): St,
    caller: MerchantCaller,
) -> AppResult<Json<UndeliveredEvents>> {
    if let Some(signed) = caller.signed {
        crate::request::consume_nonce(&state, signed).await?;
    }
    let rows = sqlx::query(
        "SELECT payload, attempts, next_attempt_at, failed_at, last_error FROM webhook_events
         WHERE merchant_id = $1 AND delivered_at IS NULL ORDER BY id LIMIT 1000",
    )
    .bind(&caller.merchant.id)
    .fetch_all(&state.db.pool)
    .await?;
    let events = rows
        .iter()
        .map(|row| {
            let payload: String = row.try_get(0)?;
            Ok(EventDelivery {
                event: serde_json::from_str(&payload).map_err(|e| {
                    AppError::new(ErrorCode::Internal, format!("stored event: {e}"))
                })?,
                attempts: row.try_get(1)?,
                next_attempt_at_ms: row.try_get(2)?,
                gave_up: row.try_get::<Option<i64>, _>(3)?.is_some(),
                last_error: row.try_get(4)?,
            })
        })
        .collect::<AppResult<_>>()?;
    Ok(Json(UndeliveredEvents { events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_an_hour() {
        let waits: Vec<i64> = (1..=6).map(|n| backoff_ms(5_000, n)).collect();
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000]);
        assert_eq!(backoff_ms(5_000, 12), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(5_000, i64::MAX), MAX_BACKOFF_MS);
    }
}
