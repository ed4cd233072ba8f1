//! Sound tokens: the payee's phone plays a 16-byte token, the payer's phone
//! decodes and redeems it.
//!
//! A token is `expiry (6 bytes, Unix ms) ‖ random (4 bytes) ‖ tag (6
//! bytes)`, the tag a truncated HMAC-SHA256 of the first ten bytes under a
//! key derived from the server secret. So a token this server did not issue
//! (random, garbled, forged, or minted by another server with another
//! secret) is refused as unknown without a database read, and an old one as
//! expired even after its row is gone. A 48-bit tag leaves an attacker one
//! chance in 2^48 per guess, and every guess is a signed request. The row
//! (keyed by the first ten bytes) is what makes a token single-use: it is
//! flipped once, with a guard, in the writer job that creates the request.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clink_protocol::wire::{
    ErrorCode, IssueSoundTokenRequest, PairingRequestView, RedeemSoundTokenRequest,
    SOUND_TOKEN_LEN, SoundTokenIssued, SoundTokenStatus, decode_token, encode_token,
};
use ring::hmac;
use ring::rand::SecureRandom;
use sqlx::{AnyConnection, Row};
use subtle::ConstantTimeEq;

use super::{Method, PairedRequest, Viewer};
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, Failure, outcome};
use crate::request::{consume_nonce, write_signed};
use crate::secrets::ServerSecret;
use crate::{AppState, now_ms};

/// Label of the token key derived from the server secret.
const TOKEN_KEY_LABEL: &str = "clink sound-token v1";
const EXPIRY_BYTES: usize = 6;
const RANDOM_BYTES: usize = 4;
const BODY_BYTES: usize = EXPIRY_BYTES + RANDOM_BYTES;
const TAG_BYTES: usize = SOUND_TOKEN_LEN - BODY_BYTES;
/// Expired tokens' rows are kept this long (for the payee's status), then
/// deleted; the token itself still reads as expired.
const EXPIRED_RETENTION_MS: i64 = 10 * 60_000;

/// Mints and checks this server's tokens.
pub struct TokenKey {
    key: hmac::Key,
}

/// What a token says, once its tag is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedToken {
    /// The row's key: hex of expiry and random bytes.
    pub id: String,
    pub expires_at_ms: i64,
}

impl TokenKey {
    pub fn new(secret: &ServerSecret) -> TokenKey {
        let derived = hex::decode(secret.hash(TOKEN_KEY_LABEL, "")).expect("the hash is hex");
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &derived),
        }
    }

    pub fn mint(&self, expires_at_ms: i64, random: [u8; RANDOM_BYTES]) -> [u8; SOUND_TOKEN_LEN] {
        let mut token = [0u8; SOUND_TOKEN_LEN];
        token[..EXPIRY_BYTES].copy_from_slice(&expires_at_ms.to_be_bytes()[8 - EXPIRY_BYTES..]);
        token[EXPIRY_BYTES..BODY_BYTES].copy_from_slice(&random);
        let tag = hmac::sign(&self.key, &token[..BODY_BYTES]);
        token[BODY_BYTES..].copy_from_slice(&tag.as_ref()[..TAG_BYTES]);
        token
    }

    /// The token's contents if this key made it; `None` otherwise.
    pub fn open(&self, token: &[u8; SOUND_TOKEN_LEN]) -> Option<OpenedToken> {
        let tag = hmac::sign(&self.key, &token[..BODY_BYTES]);
        if !bool::from(tag.as_ref()[..TAG_BYTES].ct_eq(&token[BODY_BYTES..])) {
            return None;
        }
        let mut expiry = [0u8; 8];
        expiry[8 - EXPIRY_BYTES..].copy_from_slice(&token[..EXPIRY_BYTES]);
        Some(OpenedToken {
            id: hex::encode(&token[..BODY_BYTES]),
            expires_at_ms: i64::from_be_bytes(expiry),
        })
    }
}

fn unknown() -> AppError {
    AppError::new(
        ErrorCode::TokenUnknown,
        "this is not a token issued by this server; ask the payee to play it again",
    )
}

fn expired() -> AppError {
    AppError::new(
        ErrorCode::TokenExpired,
        "this token has expired; the payee must ask for a new one",
    )
}

/// Checks a token's text and tag (no database read).
fn open_text(state: &AppState, text: &str) -> AppResult<OpenedToken> {
    let bytes = decode_token(text).ok_or_else(unknown)?;
    TokenKey::new(&state.secret)
        .open(&bytes)
        .ok_or_else(unknown)
}

// ------------------------------------------------------------------- issue

pub async fn issue(State(state): State<Arc<AppState>>, caller: Caller) -> AppResult<Response> {
    let mut req: IssueSoundTokenRequest = caller.signed.json()?;
    ledger::check_amount(req.amount, state.config.max_amount)?;
    req.memo = ledger::check_memo(&req.memo)?;
    let issued = write_signed(&state, caller.signed, move |st, conn| {
        Box::pin(async move {
            outcome(
                async { Ok(issue_job(st, conn, caller.account_id, &req, now_ms()).await?) }.await,
            )
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn issue_job(
    state: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &IssueSoundTokenRequest,
    now: i64,
) -> AppResult<SoundTokenIssued> {
    let expires_at = now + state.config.sound_token_ttl_secs as i64 * 1000;
    let key = TokenKey::new(&state.secret);
    // Two tokens share a row key only if they expire in the same
    // millisecond with the same 32 random bits: draw again then.
    for _ in 0..4 {
        let mut random = [0u8; RANDOM_BYTES];
        state
            .rng
            .fill(&mut random)
            .map_err(|_| AppError::new(ErrorCode::Internal, "no system randomness"))?;
        let token = key.mint(expires_at, random);
        let id = hex::encode(&token[..BODY_BYTES]);
        let inserted = sqlx::query(
            "INSERT INTO sound_tokens (id, account_id, amount, memo, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(account)
        .bind(req.amount)
        .bind(&req.memo)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(SoundTokenIssued {
                token: encode_token(&token),
                amount: req.amount,
                memo: req.memo.clone(),
                expires_at_ms: expires_at,
            });
        }
    }
    Err(AppError::unavailable(
        "could not draw a fresh token; try again",
    ))
}

// ------------------------------------------------------------------ redeem

pub async fn redeem(State(state): State<Arc<AppState>>, caller: Caller) -> AppResult<Response> {
    let req: RedeemSoundTokenRequest = caller.signed.json()?;
    let opened = open_text(&state, &req.token)?;
    if opened.expires_at_ms <= now_ms() {
        return Err(expired());
    }
    let payer = caller.account_id;
    let (status, view) = write_signed(&state, caller.signed, move |st, conn| {
        Box::pin(async move { outcome(redeem_job(st, conn, payer, &opened, now_ms()).await) })
    })
    .await?;
    Ok((status, Json(view)).into_response())
}

async fn redeem_job(
    state: &AppState,
    conn: &mut AnyConnection,
    payer: i64,
    token: &OpenedToken,
    now: i64,
) -> Result<(StatusCode, PairingRequestView), Failure> {
    let row = sqlx::query(
        "SELECT account_id, amount, memo, expires_at, redeemed_by, transfer_seq FROM sound_tokens WHERE id = $1",
    )
    .bind(&token.id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(unknown)?;
    let (payee, amount, memo): (i64, i64, String) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let (expires_at, redeemed_by, seq): (i64, Option<i64>, Option<i64>) =
        (row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    if payee == payer {
        return Err(AppError::new(
            ErrorCode::SelfTransfer,
            "this is your own token: the other phone must hear it",
        )
        .into());
    }
    if let Some(by) = redeemed_by {
        // The same payer asking again lost the first answer: give it again.
        if let (true, Some(seq)) = (by == payer, seq) {
            return Ok((
                StatusCode::OK,
                super::request_view(&mut *conn, seq, Viewer::Payer).await?,
            ));
        }
        return Err(AppError::new(
            ErrorCode::TokenUsed,
            "this token was already used; the payee must ask for a new one",
        )
        .into());
    }
    if expires_at <= now {
        return Err(expired().into());
    }
    let flipped = sqlx::query(
        "UPDATE sound_tokens SET redeemed_by = $1, used_at = $2 WHERE id = $3 AND used_at IS NULL",
    )
    .bind(payer)
    .bind(now)
    .bind(&token.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if flipped != 1 {
        return Err(AppError::new(ErrorCode::TokenUsed, "this token was already used").into());
    }
    let request = PairedRequest {
        payer,
        payee,
        amount,
        memo: &memo,
        method: Method::Sound,
    };
    let seq = super::create_request(state, conn, &request, now).await?;
    sqlx::query("UPDATE sound_tokens SET transfer_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(&token.id)
        .execute(&mut *conn)
        .await?;
    let view = super::request_view(&mut *conn, seq, Viewer::Payer).await?;
    Ok((StatusCode::CREATED, view))
}

// ------------------------------------------------------------------ status

/// What became of a token, for the payee who asked for it.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(text): Path<String>,
    caller: Caller,
) -> AppResult<Json<SoundTokenStatus>> {
    let opened = open_text(&state, &text)?;
    let me = caller.account_id;
    consume_nonce(&state, caller.signed).await?;
    let mut conn = state.db.pool.acquire().await?;
    let row =
        sqlx::query("SELECT transfer_seq FROM sound_tokens WHERE id = $1 AND account_id = $2")
            .bind(&opened.id)
            .bind(me)
            .fetch_optional(&mut *conn)
            .await?;
    let seq = match row {
        Some(row) => row.try_get::<Option<i64>, _>(0)?,
        None if opened.expires_at_ms <= now_ms() => return Ok(Json(SoundTokenStatus::Expired)),
        None => return Err(unknown()),
    };
    Ok(Json(match seq {
        Some(seq) => SoundTokenStatus::Redeemed {
            request: super::request_view(&mut conn, seq, Viewer::Payee).await?,
        },
        None if opened.expires_at_ms <= now_ms() => SoundTokenStatus::Expired,
        None => SoundTokenStatus::Waiting {
            expires_at_ms: opened.expires_at_ms,
        },
    }))
}

pub(super) async fn forget_expired(conn: &mut AnyConnection, now: i64) -> AppResult<()> {
    sqlx::query("DELETE FROM sound_tokens WHERE expires_at < $1")
        .bind(now - EXPIRED_RETENTION_MS)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    fn key(dir: &tempfile::TempDir, name: &str) -> TokenKey {
        let secret =
            ServerSecret::load_or_create(&dir.path().join(name), &SystemRandom::new()).unwrap();
        TokenKey::new(&secret)
    }

    #[test]
    fn a_token_opens_only_under_the_key_that_minted_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (key(&dir, "a"), key(&dir, "b"));
        let token = ours.mint(1_700_000_060_000, [1, 2, 3, 4]);
        let opened = ours.open(&token).unwrap();
        assert_eq!(opened.expires_at_ms, 1_700_000_060_000);
        assert_eq!(opened.id, hex::encode(&token[..10]));
        assert_eq!(theirs.open(&token), None);
        for byte in 0..SOUND_TOKEN_LEN {
            let mut forged = token;
            forged[byte] ^= 0x01;
            assert_eq!(ours.open(&forged), None, "bit flip in byte {byte} accepted");
        }
        assert_eq!(ours.open(&[0u8; SOUND_TOKEN_LEN]), None);
    }
}
