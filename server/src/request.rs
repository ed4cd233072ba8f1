//! What every handler shares: reading a JSON body, answering with a stored
//! response, phone numbers and accounts, and the one shape of a signed
//! write ([`write_signed`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clink_protocol::phone::PhoneNumber;
use clink_protocol::wire::*;
use sqlx::AnyConnection;

use crate::AppState;
use crate::auth::Signed;
use crate::error::{AppError, AppResult};
use crate::ledger::StoredResponse;
use crate::secrets::random_hex;
use crate::writer::{BoxFuture, Outcome};

pub(crate) fn respond(r: StoredResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], r.body).into_response()
}

pub(crate) fn parse_phone(state: &AppState, input: &str) -> AppResult<PhoneNumber> {
    PhoneNumber::parse(input, state.config.default_region)
        .map_err(|e| AppError::new(ErrorCode::InvalidPhoneNumber, e.to_string()))
}

pub(crate) async fn user_by_phone(state: &AppState, phone: &PhoneNumber) -> AppResult<Option<i64>> {
    Ok(counterpart_by_phone(state, phone)
        .await?
        .map(|(account, _)| account))
}

/// The account of a registered number, and how its owner appears to others.
pub(crate) async fn counterpart_by_phone(
    state: &AppState,
    phone: &PhoneNumber,
) -> AppResult<Option<(i64, Counterpart)>> {
    let found = state
        .users
        .by_phone(&state.db.pool, phone.as_e164())
        .await?;
    let Some((account, display_name)) = found else {
        return Ok(None);
    };
    let counterpart = Counterpart {
        display_name,
        phone: Some(phone.clone()),
    };
    Ok(Some((account, counterpart)))
}

pub(crate) fn new_transfer_id(state: &AppState) -> String {
    format!("t_{}", random_hex(&state.rng, 16))
}

/// Records the request's nonce in a job of its own (for reads).
pub(crate) async fn consume_nonce(state: &Arc<AppState>, signed: Signed) -> AppResult<()> {
    write_signed(state, signed, |_, _| {
        Box::pin(async { Outcome::from_result(Ok(())) })
    })
    .await
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> AppResult<T> {
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidRequest
        };
        AppError::new(code, e.body_text())
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        AppError::new(
            ErrorCode::MalformedJson,
            format!("the request body is not valid: {e}"),
        )
    })
}

/// The one shape of a signed write: a writer job that first records the
/// request's nonce (a replayed request is refused and writes nothing), then
/// runs `work`; the answer goes out once the job's batch is committed.
pub(crate) async fn write_signed<T, F>(
    state: &Arc<AppState>,
    signed: Signed,
    work: F,
) -> AppResult<T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c AppState, &'c mut AnyConnection) -> BoxFuture<'c, Outcome<T>>
        + Send
        + 'static,
{
    write_job(state, Some(signed), work).await
}

/// [`write_signed`] for callers that may not sign with a device key (a web
/// shop's HMAC-signed request has no nonce: its order id makes every write
/// idempotent instead).
pub(crate) async fn write_job<T, F>(
    state: &Arc<AppState>,
    signed: Option<Signed>,
    work: F,
) -> AppResult<T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c AppState, &'c mut AnyConnection) -> BoxFuture<'c, Outcome<T>>
        + Send
        + 'static,
{
    let st = state.clone();
    state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                if let Some(signed) = signed {
                    if let Err(e) = signed.record_nonce(conn).await {
                        return Outcome::from_result(Err(e));
                    }
                }
                work(&st, conn).await
            })
        })
        .await
}
