//! Merchants: opened by the operator (never self-service), with the two
//! ways a merchant's machines speak to Clink, and the customer's consent.
//!
//! - A terminal (POS, vending machine) holds an Ed25519 device key the
//!   operator registers for the merchant; it signs requests exactly as a
//!   phone does (`auth`).
//! - A web shop's server holds API keys (several at once, revocable) and
//!   signs each request with HMAC-SHA256 over timestamp, method, path and
//!   body (`clink_protocol::wire::merchant_signing`). A key's secret is an
//!   HMAC of its id under the server secret: nothing secret is stored.
//! - A customer links a merchant before it may charge their number, can
//!   unlink it, and can report it as spam (which unlinks it and declines
//!   what it has pending).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clink_protocol::wire::signing::{self, MAX_CLOCK_SKEW_MS};
use clink_protocol::wire::*;
use sqlx::Row;

use crate::auth::{Caller, Signed};
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, outcome};
use crate::operator::Operator;
use crate::request::{json_body, write_signed};
use crate::secrets::random_hex;
use crate::writer::Outcome;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::OPERATOR_MERCHANTS, post(create_merchant))
        .route("/v1/operator/merchants/{id}", get(merchant))
        .route("/v1/operator/merchants/{id}/api-keys", post(create_api_key))
        .route(
            "/v1/operator/merchants/{id}/api-keys/{key_id}",
            delete(revoke_api_key),
        )
        .route(
            "/v1/operator/merchants/{id}/terminals",
            post(register_terminal),
        )
        .route(paths::LINKED_MERCHANTS, get(linked_merchants))
        .route("/v1/merchants/{id}/link", post(link).delete(unlink))
        .route("/v1/merchants/{id}/report-spam", post(report_spam))
}

/// Label of the derivation that makes an API key's secret from its id.
const API_KEY_LABEL: &str = "clink merchant api key v1";

/// A merchant as the rest of the server needs it.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub id: String,
    pub account_id: i64,
    pub display_name: String,
    pub category_code: String,
}

impl Merchant {
    pub fn summary(&self) -> MerchantSummary {
        MerchantSummary {
            merchant_id: self.id.clone(),
            display_name: self.display_name.clone(),
            category_code: self.category_code.clone(),
        }
    }
}

const MERCHANT_COLUMNS: &str = "id, account_id, display_name, category_code";

fn merchant_from_row(row: &sqlx::any::AnyRow) -> AppResult<Merchant> {
    Ok(Merchant {
        id: row.try_get(0)?,
        account_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        category_code: row.try_get(3)?,
    })
}

pub async fn merchant_by_id<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    id: &str,
) -> AppResult<Option<Merchant>> {
    let row = sqlx::query(&format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(merchant_from_row).transpose()
}

async fn merchant_by_account(state: &AppState, account: i64) -> AppResult<Option<Merchant>> {
    let row = sqlx::query(&format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE account_id = $1"
    ))
    .bind(account)
    .fetch_optional(&state.db.pool)
    .await?;
    row.as_ref().map(merchant_from_row).transpose()
}

fn unknown_merchant(id: &str) -> AppError {
    AppError::new(
        ErrorCode::UnknownMerchant,
        format!("there is no merchant {id:?}"),
    )
}

// ------------------------------------------------------ merchant callers

/// How a merchant's request reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A POS or vending machine, signing with its device key.
    Terminal,
    /// A web shop's server, signing with an API key.
    WebShop,
}

/// A request from a merchant's terminal or web shop, authenticated.
pub struct MerchantCaller {
    pub merchant: Merchant,
    pub channel: Channel,
    pub body: Bytes,
    /// A terminal's signed request, whose nonce the job records; web shops
    /// are protected from replays by the order id (every write) instead.
    pub signed: Option<Signed>,
}

impl MerchantCaller {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> AppResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            AppError::new(
                ErrorCode::MalformedJson,
                format!("the request body is not valid: {e}"),
            )
        })
    }
}

impl FromRequest<Arc<AppState>> for MerchantCaller {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> AppResult<MerchantCaller> {
        if req.headers().contains_key(merchant_signing::HEADER_KEY_ID) {
            return web_shop(req, state).await;
        }
        let caller = Caller::from_request(req, state).await?;
        let Some(merchant) = merchant_by_account(state, caller.account_id).await? else {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "this device is not a merchant's terminal",
            ));
        };
        Ok(MerchantCaller {
            merchant,
            channel: Channel::Terminal,
            body: caller.signed.body.clone(),
            signed: Some(caller.signed),
        })
    }
}

fn header<'a>(req: &'a Request, name: &str) -> AppResult<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::Unauthenticated,
                format!("missing or unreadable {name} header"),
            )
        })
}

async fn web_shop(req: Request, state: &Arc<AppState>) -> AppResult<MerchantCaller> {
    let key_id = header(&req, merchant_signing::HEADER_KEY_ID)?.to_string();
    let signature = header(&req, merchant_signing::HEADER_SIGNATURE)?.to_string();
    let timestamp: i64 = header(&req, signing::HEADER_TIMESTAMP)?
        .parse()
        .map_err(|_| {
            AppError::new(
                ErrorCode::Unauthenticated,
                "x-clink-timestamp must be Unix milliseconds",
            )
        })?;
    if (now_ms() - timestamp).abs() > MAX_CLOCK_SKEW_MS {
        return Err(AppError::new(
            ErrorCode::StaleTimestamp,
            "the request's timestamp is more than 300 s away from the server's clock",
        ));
    }
    let method = req.method().as_str().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let limit = crate::http_limits::body_limit(req.uri().path());
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {limit} bytes"),
            )
        })?;
    let row = sqlx::query(&format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = (SELECT merchant_id FROM merchant_api_keys WHERE key_id = $1 AND revoked_at IS NULL)"
    ))
    .bind(&key_id)
    .fetch_optional(&state.db.pool)
    .await?;
    // An unknown, revoked or wrong key get one answer: nothing to probe.
    let refused = || AppError::new(ErrorCode::BadSignature, "unknown API key or bad signature");
    let Some(row) = row else {
        return Err(refused());
    };
    let secret = api_key_secret(state, &key_id);
    if !merchant_signing::verify(&secret, &signature, timestamp, &method, &path, &body) {
        return Err(refused());
    }
    Ok(MerchantCaller {
        merchant: merchant_from_row(&row)?,
        channel: Channel::WebShop,
        body,
        signed: None,
    })
}

fn api_key_secret(state: &AppState, key_id: &str) -> String {
    format!("sk_{}", state.secret.hash(API_KEY_LABEL, key_id))
}

// ------------------------------------------------------------- operator

fn check_category_code(code: &str) -> AppResult<()> {
    if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            "category_code must be an ISO 18245 merchant category code: four digits",
        ));
    }
    Ok(())
}

async fn create_merchant(
    State(state): St,
    _operator: Operator,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: CreateMerchantRequest = json_body(body)?;
    let display_name = ledger::check_display_name(&req.display_name)?;
    check_category_code(&req.category_code)?;
    let id = format!("m_{}", random_hex(&state.rng, 8));
    let view = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(
                    async {
                        let now = now_ms();
                        let account: i64 = sqlx::query(
                            "INSERT INTO accounts (kind, balance, created_at) VALUES ('user', 0, $1) RETURNING id",
                        )
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get(0)?;
                        sqlx::query("INSERT INTO merchants (id, account_id, display_name, category_code, created_at) VALUES ($1, $2, $3, $4, $5)")
                            .bind(&id)
                            .bind(account)
                            .bind(&display_name)
                            .bind(&req.category_code)
                            .bind(now)
                            .execute(&mut *conn)
                            .await?;
                        Ok(MerchantView {
                            merchant_id: id,
                            display_name,
                            category_code: req.category_code,
                            balance: 0,
                            created_at_ms: now,
                        })
                    }
                    .await,
                )
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn merchant(
    State(state): St,
    _operator: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<MerchantView>> {
    let row = sqlx::query(
        "SELECT m.id, m.display_name, m.category_code, a.balance, m.created_at FROM merchants m JOIN accounts a ON a.id = m.account_id WHERE m.id = $1",
    )
    .bind(&id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        return Err(unknown_merchant(&id));
    };
    Ok(Json(MerchantView {
        merchant_id: row.try_get(0)?,
        display_name: row.try_get(1)?,
        category_code: row.try_get(2)?,
        balance: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
    }))
}

async fn create_api_key(
    State(state): St,
    _operator: Operator,
    Path(id): Path<String>,
) -> AppResult<Response> {
    if merchant_by_id(&state.db.pool, &id).await?.is_none() {
        return Err(unknown_merchant(&id));
    }
    let key_id = format!("key_{}", random_hex(&state.rng, 12));
    let secret = api_key_secret(&state, &key_id);
    let stored_id = key_id.clone();
    state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(
                    sqlx::query(
                        "INSERT INTO merchant_api_keys (key_id, merchant_id, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(&stored_id)
                    .bind(&id)
                    .bind(now_ms())
                    .execute(conn)
                    .await
                    .map(|_| ())
                    .map_err(AppError::from),
                )
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { key_id, secret })).into_response())
}

async fn revoke_api_key(
    State(state): St,
    _operator: Operator,
    Path((id, key_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let revoked = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(
                    sqlx::query(
                        "UPDATE merchant_api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE key_id = $2 AND merchant_id = $3",
                    )
                    .bind(now_ms())
                    .bind(&key_id)
                    .bind(&id)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(AppError::from),
                )
            })
        })
        .await?;
    if revoked == 0 {
        return Err(AppError::new(
            ErrorCode::NotFound,
            "this merchant has no such API key",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn register_terminal(
    State(state): St,
    _operator: Operator,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: RegisterTerminalRequest = json_body(body)?;
    signing::decode_public_key(&req.public_key)
        .map_err(|e| AppError::new(ErrorCode::InvalidRequest, format!("public_key: {e}")))?;
    let Some(merchant) = merchant_by_id(&state.db.pool, &id).await? else {
        return Err(unknown_merchant(&id));
    };
    let summary = merchant.summary();
    state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(
                    async {
                        // A key belongs to one account for ever (the device cache relies on it).
                        let inserted = sqlx::query(
                            "INSERT INTO devices (public_key, account_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (public_key) DO NOTHING",
                        )
                        .bind(&req.public_key)
                        .bind(merchant.account_id)
                        .bind(now_ms())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        if inserted == 0 {
                            return Err(AppError::new(
                                ErrorCode::AlreadyRegistered,
                                "this key is already registered",
                            ));
                        }
                        Ok(())
                    }
                    .await,
                )
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

// ------------------------------------------------------------ customers

async fn linked_merchants(State(state): St, caller: Caller) -> AppResult<Json<LinkedMerchants>> {
    crate::request::consume_nonce(&state, caller.signed).await?;
    Ok(Json(linked(&state, caller.account_id).await?))
}

async fn linked(state: &AppState, account: i64) -> AppResult<LinkedMerchants> {
    let rows = sqlx::query(
        "SELECT m.id, m.account_id, m.display_name, m.category_code FROM merchant_links l JOIN merchants m ON m.id = l.merchant_id WHERE l.account_id = $1 ORDER BY l.linked_at, m.id",
    )
    .bind(account)
    .fetch_all(&state.db.pool)
    .await?;
    let merchants = rows
        .iter()
        .map(|row| merchant_from_row(row).map(|m| m.summary()))
        .collect::<AppResult<_>>()?;
    Ok(LinkedMerchants { merchants })
}

async fn link(
    State(state): St,
    Path(id): Path<String>,
    caller: Caller,
) -> AppResult<Json<MerchantSummary>> {
    let me = caller.account_id;
    let summary = write_signed(&state, caller.signed, move |_, conn| {
        Box::pin(async move {
            Outcome::from_result(
                async {
                    let Some(merchant) = merchant_by_id(&mut *conn, &id).await? else {
                        return Err(unknown_merchant(&id));
                    };
                    sqlx::query(
                        "INSERT INTO merchant_links (account_id, merchant_id, linked_at) VALUES ($1, $2, $3) ON CONFLICT (account_id, merchant_id) DO NOTHING",
                    )
                    .bind(me)
                    .bind(&merchant.id)
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await?;
                    Ok(merchant.summary())
                }
                .await,
            )
        })
    })
    .await?;
    Ok(Json(summary))
}

async fn unlink(
    State(state): St,
    Path(id): Path<String>,
    caller: Caller,
) -> AppResult<Json<LinkedMerchants>> {
    let me = caller.account_id;
    write_signed(&state, caller.signed, move |_, conn| {
        Box::pin(async move {
            Outcome::from_result(
                sqlx::query(
                    "DELETE FROM merchant_links WHERE account_id = $1 AND merchant_id = $2",
                )
                .bind(me)
                .bind(&id)
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(AppError::from),
            )
        })
    })
    .await?;
    Ok(Json(linked(&state, me).await?))
}

/// Reporting a merchant as spam unlinks it, declines every request of its
/// still waiting for this customer, and counts against the merchant.
async fn report_spam(
    State(state): St,
    Path(id): Path<String>,
    caller: Caller,
) -> AppResult<Json<LinkedMerchants>> {
    let me = caller.account_id;
    write_signed(&state, caller.signed, move |_, conn| {
        Box::pin(async move {
            outcome(
                async {
                    if merchant_by_id(&mut *conn, &id).await?.is_none() {
                        return Err(unknown_merchant(&id).into());
                    }
                    let now = now_ms();
                    sqlx::query("DELETE FROM merchant_links WHERE account_id = $1 AND merchant_id = $2")
                        .bind(me)
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("INSERT INTO spam_reports (account_id, merchant_id, reported_at) VALUES ($1, $2, $3)")
                        .bind(me)
                        .bind(&id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    crate::shops::decline_all_pending(conn, &id, me, now).await?;
                    Ok(())
                }
                .await,
            )
        })
    })
    .await?;
    Ok(Json(linked(&state, me).await?))
}
