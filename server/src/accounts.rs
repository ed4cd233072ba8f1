//! Accounts: registration (a code by text, then the device key, name and
//! PIN), the account's own view, its security policy and its avatar.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clink_protocol::phone::PhoneNumber;
use clink_protocol::wire::*;
use sqlx::{AnyConnection, Row};

use crate::auth::{Caller, Signed};
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Failure, StoredResponse, outcome};
use crate::request::{consume_nonce, json_body, parse_phone, respond, user_by_phone, write_signed};
use crate::secrets::{random_digits, random_hex};
use crate::writer::Outcome;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub(crate) async fn register(
    State(state): St,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: RegisterRequest = json_body(body)?;
    let phone = parse_phone(&state, &req.phone)?;
    signing::decode_public_key(&req.public_key)
        .map_err(|e| AppError::new(ErrorCode::InvalidRequest, format!("public_key: {e}")))?;
    if user_by_phone(&state, &phone).await?.is_some() {
        return Err(AppError::new(
            ErrorCode::AlreadyRegistered,
            "this number already has a Clink account",
        ));
    }
    let code = random_digits(&state.rng, 6);
    let code_hash = state
        .secret
        .hash(&registration_salt(&phone, &req.public_key), &code);
    let now = now_ms();
    let expires_at = now + state.config.otp_ttl_secs as i64 * 1000;
    let limits = CodeLimits::of(&state.config);
    let (phone_text, key) = (phone.as_e164().to_string(), req.public_key.clone());
    state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                Outcome::from_result(
                    store_code(conn, &phone_text, &key, &code_hash, expires_at, now, limits).await,
                )
            })
        })
        .await?;
    state.otp.send(&phone, &code);
    Ok((
        StatusCode::ACCEPTED,
        Json(RegisterResponse {
            phone,
            code_expires_at_ms: expires_at,
        }),
    )
        .into_response())
}

/// How often codes may go to one number: every text costs money and each
/// new code is a fresh set of guesses, so neither may be had at will.
#[derive(Clone, Copy)]
struct CodeLimits {
    resend_ms: i64,
    max_per_hour: i64,
}

const HOUR_MS: i64 = 3_600_000;

impl CodeLimits {
    fn of(config: &crate::config::Config) -> Self {
        CodeLimits {
            resend_ms: config.otp_resend_secs as i64 * 1000,
            max_per_hour: config.otp_max_per_hour as i64,
        }
    }
}

/// Stores a new code for `phone` unless the limits forbid sending one now.
/// One guarded statement, so server instances sharing the database cannot
/// both slip under a limit.
async fn store_code(
    conn: &mut AnyConnection,
    phone: &str,
    public_key: &str,
    code_hash: &str,
    expires_at: i64,
    now: i64,
    limits: CodeLimits,
) -> AppResult<()> {
    let stored = sqlx::query(
        "INSERT INTO registrations (phone, public_key, code_hash, attempts, expires_at, codes_sent, window_started_at, last_sent_at)
         VALUES ($1, $2, $3, 0, $4, 1, $5, $5)
         ON CONFLICT (phone) DO UPDATE SET public_key = excluded.public_key,
            code_hash = excluded.code_hash, attempts = 0, expires_at = excluded.expires_at,
            codes_sent = CASE WHEN registrations.window_started_at <= $6 THEN 1 ELSE registrations.codes_sent + 1 END,
            window_started_at = CASE WHEN registrations.window_started_at <= $6 THEN excluded.window_started_at ELSE registrations.window_started_at END,
            last_sent_at = excluded.last_sent_at
         WHERE registrations.last_sent_at <= $7
            AND (registrations.window_started_at <= $6 OR registrations.codes_sent < $8)",
    )
    .bind(phone)
    .bind(public_key)
    .bind(code_hash)
    .bind(expires_at)
    .bind(now)
    .bind(now - HOUR_MS)
    .bind(now - limits.resend_ms)
    .bind(limits.max_per_hour)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if stored == 1 {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT codes_sent, window_started_at, last_sent_at FROM registrations WHERE phone = $1",
    )
    .bind(phone)
    .fetch_one(conn)
    .await?;
    let (sent, window_start, last): (i64, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let (retry_at, why) = if sent >= limits.max_per_hour && window_start > now - HOUR_MS {
        (
            window_start + HOUR_MS,
            format!("{sent} codes went to this number in the last hour"),
        )
    } else {
        (
            last + limits.resend_ms,
            "a code went to this number moments ago".to_string(),
        )
    };
    let wait_s = ((retry_at - now).max(0) + 999) / 1000;
    let mut e = AppError::new(
        ErrorCode::TooManyRequests,
        format!("{why}; ask for a new one in {wait_s} s"),
    );
    e.0.retry_after_ms = Some(retry_at);
    Err(e)
}

fn registration_salt(phone: &PhoneNumber, public_key: &str) -> String {
    format!("{}|{}", phone.as_e164(), public_key)
}

/// Wrong codes allowed for one registration before it must start again.
const MAX_CODE_ATTEMPTS: i64 = 5;

pub(crate) async fn verify(State(state): St, signed: Signed) -> AppResult<Response> {
    let req: VerifyRequest = signed.json()?;
    let phone = parse_phone(&state, &req.phone)?;
    let display_name = ledger::check_display_name(&req.display_name)?;
    ledger::check_pin_format(&req.pin)?;
    let public_key = signed.public_key.clone();
    let response = write_signed(&state, signed, move |st, conn| {
        Box::pin(async move {
            outcome(verify_job(st, conn, &public_key, phone, req, display_name).await)
        })
    })
    .await?;
    Ok(respond(response))
}

async fn verify_job(
    state: &AppState,
    conn: &mut AnyConnection,
    public_key: &str,
    phone: PhoneNumber,
    req: VerifyRequest,
    display_name: String,
) -> Result<StoredResponse, Failure> {
    let now = now_ms();
    let row = sqlx::query(
        "SELECT public_key, code_hash, attempts, expires_at FROM registrations WHERE phone = $1",
    )
    .bind(phone.as_e164())
    .fetch_optional(&mut *conn)
    .await?;
    let not_found = || {
        AppError::new(
            ErrorCode::RegistrationNotFound,
            "no registration is waiting for this number and device; register first",
        )
    };
    let Some(row) = row else {
        return Err(not_found().into());
    };
    if row.try_get::<String, _>(0)? != public_key {
        return Err(not_found().into());
    }
    let (code_hash, attempts, expires_at): (String, i64, i64) =
        (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
    let forget = "DELETE FROM registrations WHERE phone = $1";
    if expires_at <= now {
        sqlx::query(forget)
            .bind(phone.as_e164())
            .execute(&mut *conn)
            .await?;
        let error = AppError::new(
            ErrorCode::CodeExpired,
            "the code has expired; register again for a new one",
        );
        return Err(Failure {
            error,
            keep_writes: true,
        });
    }
    if !state.secret.verify(
        &registration_salt(&phone, &public_key),
        req.code.trim(),
        &code_hash,
    ) {
        let attempts = attempts + 1;
        let remaining = MAX_CODE_ATTEMPTS - attempts;
        if remaining <= 0 {
            sqlx::query(forget)
                .bind(phone.as_e164())
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::query("UPDATE registrations SET attempts = $1 WHERE phone = $2")
                .bind(attempts)
                .bind(phone.as_e164())
                .execute(&mut *conn)
                .await?;
        }
        let mut error = AppError::new(
            ErrorCode::WrongCode,
            if remaining > 0 {
                format!("wrong code; {remaining} attempt(s) left")
            } else {
                "wrong code; register again for a new one".into()
            },
        );
        error.0.attempts_remaining = Some(remaining.max(0) as u32);
        return Err(Failure {
            error,
            keep_writes: true,
        });
    }
    let exists = sqlx::query("SELECT 1 FROM users WHERE phone = $1")
        .bind(phone.as_e164())
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Err(AppError::new(
            ErrorCode::AlreadyRegistered,
            "this number already has a Clink account",
        )
        .into());
    }
    let account: i64 = sqlx::query(
        "INSERT INTO accounts (kind, balance, created_at) VALUES ('user', 0, $1) RETURNING id",
    )
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let salt = random_hex(&state.rng, 16);
    sqlx::query(
        "INSERT INTO users (account_id, phone, display_name, pin_salt, pin_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(account)
    .bind(phone.as_e164())
    .bind(&display_name)
    .bind(&salt)
    .bind(state.secret.hash(&salt, &req.pin))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO devices (public_key, account_id, created_at) VALUES ($1, $2, $3)")
        .bind(&public_key)
        .bind(account)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(forget)
        .bind(phone.as_e164())
        .execute(&mut *conn)
        .await?;
    let view = account_view(state, conn, account).await?;
    Ok(StoredResponse::json(201, &view))
}

async fn account_view(
    state: &AppState,
    conn: &mut AnyConnection,
    account: i64,
) -> AppResult<AccountView> {
    let row = sqlx::query(
        "SELECT u.phone, u.display_name, a.balance, u.second_factor_above FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.account_id = $1",
    )
    .bind(account)
    .fetch_one(conn)
    .await?;
    Ok(AccountView {
        phone: row.try_get::<String, _>(0)?.try_into().map_err(|_| {
            AppError::new(ErrorCode::Internal, "a stored phone number is not E.164")
        })?,
        display_name: row.try_get(1)?,
        balance: row.try_get(2)?,
        currency: state.config.currency(),
        policy: SecurityPolicy {
            second_factor_above: row.try_get(3)?,
        },
    })
}

// ---------------------------------------------------------------- account

pub(crate) async fn me(State(state): St, caller: Caller) -> AppResult<Json<AccountView>> {
    consume_nonce(&state, caller.signed).await?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(
        account_view(&state, &mut conn, caller.account_id).await?,
    ))
}

pub(crate) async fn update_policy(State(state): St, caller: Caller) -> AppResult<Response> {
    let req: UpdatePolicyRequest = caller.signed.json()?;
    if req.second_factor_above.is_some_and(|limit| limit < 0) {
        return Err(AppError::new(
            ErrorCode::InvalidAmount,
            "the second-factor threshold cannot be negative",
        ));
    }
    ledger::check_pin_format(&req.pin)?;
    let account = caller.account_id;
    let response = write_signed(&state, caller.signed, move |st, conn| {
        Box::pin(async move {
            outcome(
                async {
                    ledger::verify_pin(st, conn, account, &req.pin, now_ms()).await?;
                    sqlx::query("UPDATE users SET second_factor_above = $1 WHERE account_id = $2")
                        .bind(req.second_factor_above)
                        .bind(account)
                        .execute(&mut *conn)
                        .await?;
                    Ok(StoredResponse::json(
                        200,
                        &account_view(st, conn, account).await?,
                    ))
                }
                .await,
            )
        })
    })
    .await?;
    Ok(respond(response))
}

// ----------------------------------------------------------------- avatar

/// The avatar of `account`; with `picture` false, the emoji alone (the
/// picture stays in the database).
pub(crate) async fn read_avatar<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    account: i64,
    picture: bool,
) -> AppResult<Avatar> {
    let query = if picture {
        "SELECT emoji, picture FROM avatars WHERE account_id = $1"
    } else {
        "SELECT emoji FROM avatars WHERE account_id = $1"
    };
    let Some(row) = sqlx::query(query)
        .bind(account)
        .fetch_optional(executor)
        .await?
    else {
        return Ok(Avatar::default());
    };
    let picture = if picture {
        row.try_get::<Option<Vec<u8>>, _>(1)?
            .map(|bytes| avatar::encode_picture(&bytes))
    } else {
        None
    };
    Ok(Avatar {
        emoji: row.try_get(0)?,
        picture,
    })
}

/// `GET /v1/avatar`: the caller's avatar, picture included.
pub(crate) async fn get_avatar(State(state): St, caller: Caller) -> AppResult<Json<Avatar>> {
    consume_nonce(&state, caller.signed).await?;
    Ok(Json(
        read_avatar(&state.db.pool, caller.account_id, true).await?,
    ))
}

/// `PUT /v1/avatar`: replaces the caller's avatar (emoji, picture or both)
/// and answers with it as stored.
pub(crate) async fn set_avatar(State(state): St, caller: Caller) -> AppResult<Json<Avatar>> {
    let req: SetAvatarRequest = caller.signed.json()?;
    let (emoji, picture) = req.check().map_err(|e| AppError(e.into()))?;
    let account = caller.account_id;
    let avatar = Avatar {
        emoji: emoji.clone(),
        picture: picture.as_deref().map(avatar::encode_picture),
    };
    write_signed(&state, caller.signed, move |_st, conn| {
        Box::pin(async move {
            Outcome::from_result(
                sqlx::query(
                    "INSERT INTO avatars (account_id, emoji, picture, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (account_id) DO UPDATE SET emoji = excluded.emoji,
                        picture = excluded.picture, updated_at = excluded.updated_at",
                )
                .bind(account)
                .bind(emoji)
                .bind(picture)
                .bind(now_ms())
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(AppError::from),
            )
        })
    })
    .await?;
    Ok(Json(avatar))
}

/// `DELETE /v1/avatar`: clears the caller's avatar (done or not, the same
/// answer: the empty avatar).
pub(crate) async fn clear_avatar(State(state): St, caller: Caller) -> AppResult<Json<Avatar>> {
    let account = caller.account_id;
    write_signed(&state, caller.signed, move |_st, conn| {
        Box::pin(async move {
            Outcome::from_result(
                sqlx::query("DELETE FROM avatars WHERE account_id = $1")
                    .bind(account)
                    .execute(conn)
                    .await
                    .map(|_| ())
                    .map_err(AppError::from),
            )
        })
    })
    .await?;
    Ok(Json(Avatar::default()))
}
