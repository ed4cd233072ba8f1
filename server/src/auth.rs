//! Device authentication: every request but registration's first step and the
//! public clock is signed by the device key (scheme in
//! `clink_protocol::wire::signing`). Signatures and timestamps are checked here;
//! nonces are recorded by the ledger writer in the same transaction as the
//! request's own writes, so a replay can never slip between check and use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use clink_protocol::wire::ErrorCode;
use clink_protocol::wire::signing::{self, MAX_CLOCK_SKEW_MS, SigningError};
use serde::de::DeserializeOwned;
use sqlx::{AnyConnection, Row};

use crate::config::BearerToken;
use crate::error::{AppError, AppResult};
use crate::{AppState, now_ms};

/// A request whose signature and timestamp are good; its key may not yet
/// belong to a user (registration's second step).
pub struct Signed {
    pub public_key: String,
    pub nonce: String,
    pub body: Bytes,
}

/// A signed request from a registered device.
pub struct Caller {
    pub account_id: i64,
    pub signed: Signed,
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

impl FromRequest<Arc<AppState>> for Signed {
    type Rejection = AppError;

    async fn from_request(req: Request, _state: &Arc<AppState>) -> AppResult<Signed> {
        let public_key = header(&req, signing::HEADER_KEY)?.to_string();
        let nonce = header(&req, signing::HEADER_NONCE)?.to_string();
        let signature = header(&req, signing::HEADER_SIGNATURE)?.to_string();
        let timestamp: i64 = header(&req, signing::HEADER_TIMESTAMP)?
            .parse()
            .map_err(|_| {
                AppError::new(
                    ErrorCode::Unauthenticated,
                    "x-clink-timestamp must be Unix milliseconds",
                )
            })?;
        let skew = (now_ms() - timestamp).abs();
        if skew > MAX_CLOCK_SKEW_MS {
            return Err(AppError::new(
                ErrorCode::StaleTimestamp,
                format!(
                    "the request's timestamp is {} s away from the server's clock (limit 300 s); check the device clock",
                    skew / 1000
                ),
            ));
        }
        let method = req.method().as_str().to_string();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let key_bytes = signing::decode_public_key(&public_key).map_err(signing_error)?;
        // `http_limits` has read the body already; this only takes it.
        let limit = crate::http_limits::body_limit(req.uri().path());
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                AppError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {limit} bytes"),
                )
            })?;
        signing::verify(
            &key_bytes, &signature, &method, &path, &body, timestamp, &nonce,
        )
        .map_err(signing_error)?;
        Ok(Signed {
            public_key,
            nonce,
            body,
        })
    }
}

impl FromRequest<Arc<AppState>> for Caller {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> AppResult<Caller> {
        let signed = Signed::from_request(req, state).await?;
        if let Some(account_id) = state.devices.get(&signed.public_key) {
            return Ok(Caller { account_id, signed });
        }
        let row = sqlx::query("SELECT account_id FROM devices WHERE public_key = $1")
            .bind(&signed.public_key)
            .fetch_optional(&state.db.pool)
            .await?;
        let Some(row) = row else {
            return Err(AppError::new(
                ErrorCode::Unauthenticated,
                "this device key is not registered; register first",
            ));
        };
        let account_id = row.try_get(0)?;
        state.devices.insert(&signed.public_key, account_id);
        Ok(Caller { account_id, signed })
    }
}

/// Registered device keys and their accounts, kept in memory because every
/// signed request needs one. A key is registered once and never moves to
/// another account, so an entry can never be stale; the day devices can be
/// revoked, revoking must remove its entry (on every instance).
#[derive(Default)]
pub struct DeviceCache {
    accounts: Mutex<HashMap<String, i64>>,
}

impl DeviceCache {
    /// Most keys held; past it the cache starts again empty, which costs a
    /// look-up per key and keeps memory bounded.
    const CAPACITY: usize = 100_000;

    fn get(&self, public_key: &str) -> Option<i64> {
        self.accounts.lock().unwrap().get(public_key).copied()
    }

    fn insert(&self, public_key: &str, account_id: i64) {
        let mut accounts = self.accounts.lock().unwrap();
        if accounts.len() >= Self::CAPACITY {
            accounts.clear();
        }
        accounts.insert(public_key.to_string(), account_id);
    }
}

fn signing_error(e: SigningError) -> AppError {
    let code = match e {
        SigningError::BadSignature => ErrorCode::BadSignature,
        _ => ErrorCode::Unauthenticated,
    };
    AppError::new(code, e.to_string())
}

impl Signed {
    /// The body as JSON of type `T`, or a `malformed_json` error saying why not.
    pub fn json<T: DeserializeOwned>(&self) -> AppResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            AppError::new(
                ErrorCode::MalformedJson,
                format!("the request body is not valid: {e}"),
            )
        })
    }

    /// Records the nonce; fails if this device used it before. Call inside a
    /// writer job, before the request's own writes.
    pub async fn record_nonce(&self, conn: &mut AnyConnection) -> AppResult<()> {
        let inserted = sqlx::query(
            "INSERT INTO nonces (public_key, nonce, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&self.public_key)
        .bind(&self.nonce)
        .bind(now_ms())
        .execute(conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(AppError::new(
                ErrorCode::ReplayedNonce,
                "this request was already received (nonce reused)",
            ));
        }
        Ok(())
    }
}

/// Checks `Authorization: Bearer <token>` against a configured shared
/// credential (the gateway's, the operator's); `who` names it in errors.
pub fn check_bearer(
    parts: &axum::http::request::Parts,
    expected: &BearerToken,
    who: &str,
) -> AppResult<()> {
    let presented = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::Unauthenticated,
                format!("{who} endpoints need the header Authorization: Bearer <{who} token>"),
            )
        })?;
    if !tokens_match(expected.as_str(), presented) {
        return Err(AppError::new(
            ErrorCode::Unauthenticated,
            format!("the {who} token is wrong"),
        ));
    }
    Ok(())
}

/// Compares digests in constant time, so neither the token's bytes nor its
/// length leak through timing.
fn tokens_match(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    bool::from(digest(expected).as_ref().ct_eq(digest(presented).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        assert!(tokens_match("a-long-gateway-token", "a-long-gateway-token"));
        assert!(!tokens_match(
            "a-long-gateway-token",
            "a-long-gateway-tokeN"
        ));
        assert!(!tokens_match(
            "a-long-gateway-token",
            "a-long-gateway-token "
        ));
        assert!(!tokens_match("a-long-gateway-token", ""));
    }
}
