//! The challenge-response second factor: OCRA (RFC 6287, suite
//! `OCRA-1:HOTP-SHA256-8:QN08`) keyed with a key unique to each install.
//!
//! * `PUT /v1/ocra-key` registers the calling install's key (PIN required).
//!   Keys are stored sealed with AES-256-GCM under a key derived from the
//!   server secret (see [`crate::secrets`]), which lives outside the database:
//!   a leaked database alone cannot answer challenges.
//! * `POST /v1/challenges` issues a single-use 8-digit challenge bound to the
//!   calling device. A send or claim approval above the user's
//!   `second_factor_above` must carry it with the answer; [`enforce_policy`]
//!   consumes it inside the payment's writer job.
//!
//! A wrong answer counts toward the same lockout as a wrong PIN.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clink_protocol::challenge::{self, CLINK_SUITE, OcraKey};
use clink_protocol::wire::*;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::{AnyConnection, Row};
use zeroize::Zeroize;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Failure, outcome};
use crate::request::write_signed;
use crate::secrets::{ServerSecret, random_hex};
use crate::{AppState, now_ms};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::OCRA_KEY, put(register_key))
        .route(paths::CHALLENGES, post(issue_challenge))
}

// ------------------------------------------------------------ key storage

/// Label of the key-sealing key derived from the server secret; a new label
/// (v2) would be how keys are migrated to a new derivation.
const SEALING_KEY_LABEL: &str = "clink ocra-key sealing v1";

/// The AES-256-GCM key that seals OCRA keys: HMAC-SHA256 of a fixed label
/// under the server secret (HMAC is a PRF, so the output is a uniform key and
/// unrelated to the PIN hashes the same secret keys).
fn sealing_key(secret: &ServerSecret) -> LessSafeKey {
    let derived = hex::decode(secret.hash(SEALING_KEY_LABEL, "")).expect("the hash is hex");
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &derived).expect("SHA-256 gives 32 bytes"))
}

/// Seals `key` for the device `device_key` (its public key is the associated
/// data). Returns base64url of nonce ‖ ciphertext ‖ tag. Nonces are random:
/// with 96 bits they stay unique far beyond the number of keys a server seals.
pub fn seal(
    secret: &ServerSecret,
    rng: &SystemRandom,
    device_key: &str,
    key: &OcraKey,
) -> AppResult<String> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| AppError::unavailable("no system randomness; retry"))?;
    let mut sealed = key.as_bytes().to_vec();
    sealing_key(secret)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(device_key.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| AppError::new(ErrorCode::Internal, "could not seal the OCRA key"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] wrote for the same device under the same secret.
pub fn open(secret: &ServerSecret, device_key: &str, sealed_b64: &str) -> AppResult<OcraKey> {
    let unreadable = || {
        // A changed secret file or a tampered row; the details are for the log.
        tracing::error!(device = device_key, "a stored OCRA key cannot be opened");
        AppError::new(
            ErrorCode::Internal,
            "this install's OCRA key cannot be read; register it again",
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(sealed_b64)
        .map_err(|_| unreadable())?;
    if bytes.len() < NONCE_LEN {
        return Err(unreadable());
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
    let mut sealed = sealed.to_vec();
    let plain = sealing_key(secret)
        .open_in_place(nonce, Aad::from(device_key.as_bytes()), &mut sealed)
        .map_err(|_| unreadable())?;
    let key = OcraKey::from_bytes(plain).map_err(|_| unreadable());
    // The buffer now holds the key in the clear; OcraKey wipes its own copy.
    sealed.zeroize();
    key
}

/// The OCRA key of the install `device_key`, if it registered one.
pub async fn load_key(
    state: &AppState,
    conn: &mut AnyConnection,
    device_key: &str,
) -> AppResult<Option<OcraKey>> {
    let row = sqlx::query("SELECT sealed_key FROM ocra_keys WHERE public_key = $1")
        .bind(device_key)
        .fetch_optional(conn)
        .await?;
    row.map(|r| open(&state.secret, device_key, &r.try_get::<String, _>(0)?))
        .transpose()
}

fn decode_ocra_key(b64: &str) -> AppResult<OcraKey> {
    let bad = |why: String| AppError::new(ErrorCode::InvalidRequest, format!("ocra_key: {why}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| bad("not base64url without padding".into()))?;
    OcraKey::from_bytes(&bytes).map_err(|e| bad(e.to_string()))
}

async fn register_key(State(state): State<Arc<AppState>>, caller: Caller) -> AppResult<Response> {
    let req: RegisterOcraKeyRequest = caller.signed.json()?;
    let key = decode_ocra_key(&req.ocra_key)?;
    ledger::check_pin_format(&req.pin)?;
    let device = caller.signed.public_key.clone();
    let sealed = seal(&state.secret, &state.rng, &device, &key)?;
    let registered = write_signed(&state, caller.signed, move |st, conn| {
            Box::pin(async move {
                outcome(
                    async {
                        let now = now_ms();
                        let account = caller.account_id;
                        ledger::verify_pin(st, conn, account, &req.pin, now).await?;
                        sqlx::query(
                            "INSERT INTO ocra_keys (public_key, account_id, sealed_key, created_at) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (public_key) DO UPDATE SET sealed_key = excluded.sealed_key, created_at = excluded.created_at",
                        )
                        .bind(&device)
                        .bind(account)
                        .bind(&sealed)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                        Ok(OcraKeyRegistered {
                            suite: CLINK_SUITE.to_string(),
                            registered_at_ms: now,
                        })
                    }
                    .await,
                )
            })
        })
        .await?;
    Ok(Json(registered).into_response())
}

// -------------------------------------------------------------- challenges

/// A fresh challenge from the server's randomness.
pub fn new_challenge(rng: &SystemRandom) -> AppResult<String> {
    challenge::new_clink_challenge(rng)
        .map_err(|_| AppError::unavailable("no system randomness; retry"))
}

async fn issue_challenge(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> AppResult<Response> {
    // The body must be `{}` (see `IssueChallengeRequest`).
    let IssueChallengeRequest {} = caller.signed.json()?;
    let digits = new_challenge(&state.rng)?;
    let id = format!("ch_{}", random_hex(&state.rng, 16));
    let ttl_ms = state.config.challenge_ttl().as_millis() as i64;
    let device = caller.signed.public_key.clone();
    let issued = write_signed(&state, caller.signed, move |_st, conn| {
            Box::pin(async move {
                outcome(
                    async {
                        let now = now_ms();
                        ledger::check_not_locked(conn, caller.account_id, now).await?;
                        require_key_registered(conn, &device).await?;
                        let expires_at = now + ttl_ms;
                        sqlx::query(
                            "INSERT INTO challenges (id, public_key, challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&id)
                        .bind(&device)
                        .bind(&digits)
                        .bind(now)
                        .bind(expires_at)
                        .execute(&mut *conn)
                        .await?;
                        Ok::<_, Failure>(IssuedChallenge {
                            challenge_id: id,
                            challenge: digits,
                            suite: CLINK_SUITE.to_string(),
                            expires_at_ms: expires_at,
                        })
                    }
                    .await,
                )
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn require_key_registered(conn: &mut AnyConnection, device_key: &str) -> AppResult<()> {
    let found = sqlx::query("SELECT 1 FROM ocra_keys WHERE public_key = $1")
        .bind(device_key)
        .fetch_optional(conn)
        .await?;
    if found.is_none() {
        return Err(AppError::new(
            ErrorCode::OcraKeyNotRegistered,
            "this install has no OCRA key; register one with PUT /v1/ocra-key first",
        ));
    }
    Ok(())
}

/// Checks `response` against `challenge` under `key`. A wrong answer is
/// counted toward the lockout (the caller must keep its writes). A right one
/// leaves the count alone: the caller clears it once every factor it asks
/// for has passed ([`ledger::clear_wrong_attempts`]).
pub async fn check_response(
    state: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    key: &OcraKey,
    challenge_digits: &str,
    response: &str,
    now: i64,
) -> Result<(), Failure> {
    let failed = ledger::check_not_locked(conn, account, now).await?;
    // A stored challenge is always valid for the suite, so an error here is
    // the server's fault, not the caller's.
    let right = challenge::verify_clink_response(key, challenge_digits, response.trim())
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("OCRA: {e}")))?;
    if right {
        return Ok(());
    }
    let error = ledger::count_wrong_attempt(
        state,
        conn,
        account,
        failed,
        now,
        ErrorCode::WrongChallengeResponse,
        "wrong challenge response",
    )
    .await?;
    Err(Failure {
        error,
        keep_writes: true,
    })
}

/// The second factor a payment request carried, if any.
#[derive(Clone, Debug, Default)]
pub struct Proof {
    pub challenge_id: Option<String>,
    pub response: Option<String>,
}

/// Enforces the user's security policy on a payment of `amount` by the
/// device `device_key`: above `second_factor_above` (read with the PIN, see
/// [`ledger::PinCheck`]) the payment must carry a
/// challenge issued to this device and its right answer. The challenge is
/// used up here, in the payment's own writer job, so it stands or falls with
/// the payment, except that a wrong answer is counted and uses it up anyway.
#[allow(clippy::too_many_arguments)] // each is one fact about the payment; a struct would only rename them
pub async fn enforce_policy(
    state: &AppState,
    conn: &mut AnyConnection,
    device_key: &str,
    account: i64,
    amount: i64,
    second_factor_above: Option<i64>,
    proof: &Proof,
    now: i64,
) -> Result<(), Failure> {
    let Some(limit) = second_factor_above else {
        return Ok(());
    };
    if amount <= limit {
        return Ok(());
    }
    let (Some(id), Some(response)) = (&proof.challenge_id, &proof.response) else {
        return Err(AppError::new(
            ErrorCode::SecondFactorRequired,
            format!(
                "your security policy requires a second factor above {limit}: request a challenge \
                 (POST {}) and send challenge_id and challenge_response with the payment",
                paths::CHALLENGES
            ),
        )
        .into());
    };
    let row = sqlx::query(
        "SELECT public_key, challenge, expires_at, used_at FROM challenges WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.filter(|r| r.try_get::<String, _>(0).is_ok_and(|k| k == device_key));
    let Some(row) = row else {
        return Err(AppError::new(
            ErrorCode::ChallengeNotFound,
            format!("no challenge {id:?} was issued to this device; request a new one"),
        )
        .into());
    };
    let (digits, expires_at): (String, i64) = (row.try_get(1)?, row.try_get(2)?);
    if row.try_get::<Option<i64>, _>(3)?.is_some() {
        return Err(used(id).into());
    }
    if expires_at <= now {
        return Err(AppError::new(
            ErrorCode::ChallengeExpired,
            format!(
                "challenge {id:?} expired {} s ago; request a new one",
                (now - expires_at) / 1000
            ),
        )
        .into());
    }
    // The guard on used_at makes the challenge single-use even if two
    // server instances race for it.
    let claimed =
        sqlx::query("UPDATE challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if claimed != 1 {
        return Err(used(id).into());
    }
    let key = load_key(state, conn, device_key).await?.ok_or_else(|| {
        AppError::new(
            ErrorCode::OcraKeyNotRegistered,
            "this install has no OCRA key; register one with PUT /v1/ocra-key first",
        )
    })?;
    check_response(state, conn, account, &key, &digits, response, now).await
}

/// Challenges and calls are kept this long after they expire, so that a late
/// replay is still told "already used" rather than "not found".
pub const CHALLENGE_RETENTION_MS: i64 = 48 * 3600 * 1000;

/// Deletes challenges and calls past [`CHALLENGE_RETENTION_MS`] (the sweeper's job).
pub async fn forget_old_challenges(conn: &mut AnyConnection, now: i64) -> AppResult<()> {
    for table in ["challenges", "calls"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
            .bind(now - CHALLENGE_RETENTION_MS)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn used(id: &str) -> AppError {
    AppError::new(
        ErrorCode::ChallengeUsed,
        format!("challenge {id:?} was already used; request a new one"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(dir: &tempfile::TempDir, name: &str) -> ServerSecret {
        ServerSecret::load_or_create(&dir.path().join(name), &SystemRandom::new()).unwrap()
    }

    #[test]
    fn sealed_key_opens_only_for_its_device_and_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (secret(&dir, "a"), secret(&dir, "b"));
        let rng = SystemRandom::new();
        let key = OcraKey::generate(&rng).unwrap();
        let sealed = seal(&a, &rng, "device-1", &key).unwrap();
        assert_eq!(open(&a, "device-1", &sealed).unwrap(), key);
        // The row is not the key: it does not contain the key's bytes.
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        assert!(!raw.windows(32).any(|w| w == key.as_bytes()));
        assert_eq!(
            open(&a, "device-2", &sealed).unwrap_err().code(),
            ErrorCode::Internal
        );
        assert_eq!(
            open(&b, "device-1", &sealed).unwrap_err().code(),
            ErrorCode::Internal
        );
        assert!(open(&a, "device-1", "!!").is_err());
        assert!(open(&a, "device-1", "AAAA").is_err());
    }

    #[test]
    fn sealing_twice_gives_different_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(&dir, "a");
        let rng = SystemRandom::new();
        let key = OcraKey::generate(&rng).unwrap();
        assert_ne!(
            seal(&s, &rng, "d", &key).unwrap(),
            seal(&s, &rng, "d", &key).unwrap()
        );
    }

    #[test]
    fn ocra_keys_of_the_wrong_size_are_refused() {
        assert_eq!(
            decode_ocra_key(&URL_SAFE_NO_PAD.encode([0u8; 16]))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidRequest
        );
        assert!(decode_ocra_key("not base64!").is_err());
        assert!(decode_ocra_key(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
    }
}
