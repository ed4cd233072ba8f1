//! Routes and handlers. Handlers validate input, then hand the money rules in
//! `ledger` to the writer as one job; they never touch balances themselves.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use clink_core::phone::PhoneNumber;
use clink_core::wire::*;
use serde::Deserialize;
use sqlx::{AnyConnection, Row};

use crate::auth::{Caller, MAX_BODY_BYTES, Signed};
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, Failure, NewTransfer, StoredResponse, outcome};
use crate::second_factor::{self, Proof};
use crate::secrets::{random_digits, random_hex};
use crate::writer::Outcome;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route(paths::HEALTH, get(health))
        .route(paths::TIME, get(time))
        .route(paths::REGISTER, post(register))
        .route(paths::REGISTER_VERIFY, post(verify))
        .route(paths::ME, get(me))
        .route(paths::POLICY, put(update_policy))
        .route(paths::SEND, post(send))
        .route(paths::WITHDRAW, post(withdraw))
        .route("/v1/transfers/deposit", any(self_deposit_is_gone))
        .route("/v1/transfers/{id}", get(transfer))
        .route(paths::CLAIMS, post(create_claim))
        .route("/v1/claims/{id}/{action}", post(decide_claim))
        .route(paths::HISTORY, get(history))
        .route(paths::INBOX, get(inbox))
        .merge(crate::second_factor::routes())
        .merge(crate::gateway::routes())
        .merge(crate::operator::routes())
        .merge(crate::pairing::routes())
        .route(paths::SYNC, post(crate::sync::sync))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Fallbacks, limits and the one error shape for every answer.
    crate::http_errors::finish(routes).with_state(state)
}

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
    state
        .writer
        .run(move |conn| {
            Box::pin(async move { Outcome::from_result(signed.record_nonce(conn).await) })
        })
        .await
}

// ------------------------------------------------------------------ public

async fn health(State(state): St) -> Response {
    match sqlx::query("SELECT 1").fetch_one(&state.db.pool).await {
        Ok(_) => Json(HealthResponse {
            status: "ok".into(),
            database: state.db.backend.name().into(),
        })
        .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

async fn time() -> Json<TimeResponse> {
    Json(TimeResponse {
        server_time_ms: now_ms(),
    })
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

// ------------------------------------------------------------ registration

async fn register(State(state): St, body: Result<Bytes, BytesRejection>) -> AppResult<Response> {
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

async fn verify(State(state): St, signed: Signed) -> AppResult<Response> {
    let req: VerifyRequest = signed.json()?;
    let phone = parse_phone(&state, &req.phone)?;
    let display_name = ledger::check_display_name(&req.display_name)?;
    ledger::check_pin_format(&req.pin)?;
    let st = state.clone();
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                outcome(verify_job(&st, conn, signed, phone, req, display_name).await)
            })
        })
        .await?;
    Ok(respond(response))
}

async fn verify_job(
    state: &AppState,
    conn: &mut AnyConnection,
    signed: Signed,
    phone: PhoneNumber,
    req: VerifyRequest,
    display_name: String,
) -> Result<StoredResponse, Failure> {
    signed.record_nonce(conn).await?;
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
    if row.try_get::<String, _>(0)? != signed.public_key {
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
        &registration_salt(&phone, &signed.public_key),
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
        .bind(&signed.public_key)
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

async fn me(State(state): St, caller: Caller) -> AppResult<Json<AccountView>> {
    consume_nonce(&state, caller.signed).await?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(Json(
        account_view(&state, &mut conn, caller.account_id).await?,
    ))
}

async fn update_policy(State(state): St, caller: Caller) -> AppResult<Response> {
    let req: UpdatePolicyRequest = caller.signed.json()?;
    if req.second_factor_above.is_some_and(|limit| limit < 0) {
        return Err(AppError::new(
            ErrorCode::InvalidAmount,
            "the second-factor threshold cannot be negative",
        ));
    }
    ledger::check_pin_format(&req.pin)?;
    let st = state.clone();
    let account = caller.account_id;
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                outcome(
                    async {
                        caller.signed.record_nonce(conn).await?;
                        ledger::verify_pin(&st, conn, account, &req.pin, now_ms()).await?;
                        sqlx::query(
                            "UPDATE users SET second_factor_above = $1 WHERE account_id = $2",
                        )
                        .bind(req.second_factor_above)
                        .bind(account)
                        .execute(&mut *conn)
                        .await?;
                        Ok(StoredResponse::json(
                            200,
                            &account_view(&st, conn, account).await?,
                        ))
                    }
                    .await,
                )
            })
        })
        .await?;
    Ok(respond(response))
}

// ----------------------------------------------------------------- money

/// A request that moves money, validated and ready for the writer.
pub(crate) struct MoneyRequest {
    key: String,
    fingerprint: String,
    amount: i64,
    memo: String,
    pin: Option<String>,
    /// The key already had a response when the request arrived: most
    /// likely a retry, so the writer looks up its answer first.
    pub(crate) seen_before: bool,
    /// A send whose PIN matched on arrival: the writer tries it in one
    /// statement first (`ledger::post_send_directly`).
    direct: Option<DirectSend>,
}

/// What a send needs to be posted in one statement.
struct DirectSend {
    id: String,
    payee: i64,
    payee_view: Counterpart,
    /// The stored PIN hash the typed PIN matched.
    pin_hash: String,
}

impl MoneyRequest {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn pin(&self) -> Option<&str> {
        self.pin.as_deref()
    }

    fn new(
        state: &AppState,
        path: &str,
        body: &impl serde::Serialize,
        key: &str,
        amount: i64,
        memo: &str,
        pin: Option<&str>,
    ) -> AppResult<Self> {
        ledger::check_idempotency_key(key)?;
        ledger::check_amount(amount, state.config.max_amount)?;
        let memo = ledger::check_memo(memo)?;
        if let Some(pin) = pin {
            ledger::check_pin_format(pin)?;
        }
        Ok(MoneyRequest {
            key: key.to_string(),
            fingerprint: ledger::fingerprint(path, body),
            amount,
            memo,
            pin: pin.map(str::to_string),
            seen_before: false,
            direct: None,
        })
    }
}

/// Runs one money operation: nonce, idempotent replay, PIN, then `post`.
async fn run_money<F>(
    state: &Arc<AppState>,
    caller: Caller,
    mut req: MoneyRequest,
    post: F,
) -> AppResult<Response>
where
    F: for<'c> FnOnce(
            &'c AppState,
            &'c mut AnyConnection,
            i64,
            &'c MoneyRequest,
            JobContext,
        ) -> ledger_future::Fut<'c>
        + Send
        + 'static,
{
    // A send tried in one statement finds an answered key there itself.
    if req.direct.is_none() {
        req.seen_before = !ledger::keys_seen(&state.db.pool, caller.account_id, &[&req.key])
            .await?
            .is_empty();
    }
    let st = state.clone();
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                let nonce = Some(&caller.signed);
                money_job_recording(&st, conn, caller.account_id, &req, nonce, post).await
            })
        })
        .await?;
    Ok(respond(response))
}

/// What a money job knows when `post` runs: its clock, and what the PIN
/// check read about the payer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JobContext {
    pub now: i64,
    pub pin: ledger::PinCheck,
}

/// The money rules of one operation inside a writer job, after its nonce:
/// idempotent replay, PIN and policy, `post`, then remembering the answer.
/// Shared by the single-request handlers and `POST /v1/sync`.
///
/// A key that has a response always gets that response, byte for byte. The
/// look-up costs a statement in the one writer every payment queues for, so
/// it runs up front only for keys seen before the job was queued
/// (`seen_before`) and after a one-statement send wrote nothing; a duplicate that overtook this request while it was on
/// its way is caught when the answer is remembered (or when the request
/// fails), and then this job's writes are undone and the earlier answer
/// sent.
pub(crate) async fn money_job<F>(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    post: F,
) -> Outcome<StoredResponse>
where
    F: for<'c> FnOnce(
        &'c AppState,
        &'c mut AnyConnection,
        i64,
        &'c MoneyRequest,
        JobContext,
    ) -> ledger_future::Fut<'c>,
{
    money_job_recording(st, conn, account, req, None, post).await
}

/// [`money_job`], recording the signed request's nonce first when given.
/// A send expected to pass goes to the ledger in one statement; when a rule
/// does not hold, nothing of it was written, and the steps below run and
/// say which rule failed.
async fn money_job_recording<F>(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    nonce: Option<&Signed>,
    post: F,
) -> Outcome<StoredResponse>
where
    F: for<'c> FnOnce(
        &'c AppState,
        &'c mut AnyConnection,
        i64,
        &'c MoneyRequest,
        JobContext,
    ) -> ledger_future::Fut<'c>,
{
    let mut look_up_first = req.seen_before;
    if let (Some(direct), false) = (&req.direct, req.seen_before) {
        match post_directly(st, conn, account, req, direct, nonce).await {
            Ok(Some(response)) => return outcome(Ok(response)),
            // Its key may have an answer: look it up before the steps.
            Ok(None) => look_up_first = true,
            Err(e) => return outcome(Err(e.into())),
        }
    }
    if let Some(signed) = nonce {
        if let Err(e) = signed.record_nonce(conn).await {
            return Outcome::from_result(Err(e));
        }
    }
    if look_up_first {
        match ledger::replay(conn, account, &req.key, &req.fingerprint).await {
            Ok(Some(stored)) => return outcome(Ok(stored)),
            Ok(None) => {}
            Err(e) => return outcome(Err(e.into())),
        }
    }
    match apply_money(st, conn, account, req, post).await {
        Ok(Some(response)) => outcome(Ok(response)),
        Ok(None) => earlier_answer(conn, account, req, None).await,
        Err(failure) => earlier_answer(conn, account, req, Some(failure)).await,
    }
}

/// The send in one statement; `None` if a rule did not hold (nothing written).
async fn post_directly(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    direct: &DirectSend,
    nonce: Option<&Signed>,
) -> AppResult<Option<StoredResponse>> {
    let now = now_ms();
    let t = NewTransfer {
        id: &direct.id,
        kind: TransferKind::Send,
        debit: account,
        credit: direct.payee,
        amount: req.amount,
        memo: &req.memo,
        expires_at: None,
    };
    let view = ledger::posted_view(&t, account, direct.payee_view.clone(), now);
    let response = StoredResponse::json(201, &view);
    let send = ledger::DirectSend {
        nonce: nonce.map(|s| (s.public_key.as_str(), s.nonce.as_str())),
        pin_hash: &direct.pin_hash,
        transfer: &t,
        key: &req.key,
        fingerprint: &req.fingerprint,
        response: &response,
        now,
    };
    let posted = ledger::post_send_directly(conn, st.db.backend, &send).await?;
    Ok(posted.then_some(response))
}

/// PIN, policy and `post`, then the answer remembered under the request's
/// key; `None` if the key turned out to have an answer already.
async fn apply_money<F>(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    post: F,
) -> Result<Option<StoredResponse>, Failure>
where
    F: for<'c> FnOnce(
        &'c AppState,
        &'c mut AnyConnection,
        i64,
        &'c MoneyRequest,
        JobContext,
    ) -> ledger_future::Fut<'c>,
{
    let now = now_ms();
    let pin = match &req.pin {
        Some(pin) => ledger::check_pin(st, conn, account, pin, now).await?,
        None => ledger::PinCheck::default(),
    };
    // `post` may check a second factor; the count of wrong attempts clears
    // only when every factor has passed.
    let response = post(st, conn, account, req, JobContext { now, pin }).await?;
    if pin.wrong_before != 0 {
        ledger::clear_wrong_attempts(conn, account).await?;
    }
    let remembered =
        ledger::remember(conn, account, &req.key, &req.fingerprint, &response, now).await?;
    Ok(remembered.then_some(response))
}

/// The answer for a request whose own run did not stand: the stored answer
/// of a duplicate done before it (this run's writes, even a counted wrong
/// PIN, are undone: the same key with the same body carries the same PIN),
/// or else its own `failure`.
async fn earlier_answer(
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    failure: Option<Failure>,
) -> Outcome<StoredResponse> {
    match ledger::replay(conn, account, &req.key, &req.fingerprint).await {
        Ok(Some(stored)) => Outcome {
            keep_writes: false,
            reply: Ok(stored),
        },
        Ok(None) => match failure {
            Some(failure) => outcome(Err(failure)),
            None => outcome(Err(AppError::new(
                ErrorCode::Internal,
                "an idempotency record vanished while its request was answered",
            )
            .into())),
        },
        Err(e) => outcome(Err(e.into())),
    }
}

pub(crate) mod ledger_future {
    use super::*;
    pub type Fut<'c> = crate::writer::BoxFuture<'c, Result<StoredResponse, Failure>>;
    /// What a money operation writes once its PIN and policy passed.
    pub type Post = Box<
        dyn for<'c> FnOnce(
                &'c AppState,
                &'c mut AnyConnection,
                i64,
                &'c MoneyRequest,
                JobContext,
            ) -> Fut<'c>
            + Send,
    >;
}

/// A send or claim, validated and with its counterpart resolved.
pub(crate) struct PreparedMoney {
    pub req: MoneyRequest,
    pub post: ledger_future::Post,
}

/// Counterparts already looked up, by the number as the client wrote it.
pub(crate) type Counterparts = std::collections::HashMap<String, Option<(i64, Counterpart)>>;

async fn lookup_counterpart(
    state: &AppState,
    known: &mut Counterparts,
    input: &str,
) -> AppResult<(PhoneNumber, Option<(i64, Counterpart)>)> {
    let phone = parse_phone(state, input)?;
    if let Some(found) = known.get(input) {
        return Ok((phone, found.clone()));
    }
    let found = counterpart_by_phone(state, &phone).await?;
    known.insert(input.to_string(), found.clone());
    Ok((phone, found))
}

pub(crate) async fn prepare_send(
    state: &AppState,
    account: i64,
    device: &str,
    body: &SendRequest,
    known: &mut Counterparts,
) -> AppResult<PreparedMoney> {
    let mut req = MoneyRequest::new(
        state,
        paths::SEND,
        body,
        &body.idempotency_key,
        body.amount,
        &body.memo,
        Some(&body.pin),
    )?;
    let (payee_phone, found) = lookup_counterpart(state, known, &body.payee).await?;
    let (payee, payee_view) = found.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownPayee,
            format!("{payee_phone} has no Clink account"),
        )
    })?;
    if payee == account {
        return Err(AppError::new(
            ErrorCode::SelfTransfer,
            "you cannot pay yourself",
        ));
    }
    let id = new_transfer_id(state);
    if let Some((salt, hash)) = state.users.pin_hash(&state.db.pool, account).await? {
        if state.secret.verify(&salt, &body.pin, &hash) {
            req.direct = Some(DirectSend {
                id: id.clone(),
                payee,
                payee_view: payee_view.clone(),
                pin_hash: hash,
            });
        }
    }
    let device = device.to_string();
    let proof = Proof {
        challenge_id: body.challenge_id.clone(),
        response: body.challenge_response.clone(),
    };
    let post: ledger_future::Post = Box::new(move |st, conn, account, req, job| {
        Box::pin(async move {
            let now = job.now;
            let limit = job.pin.second_factor_above;
            second_factor::enforce_policy(
                st, conn, &device, account, req.amount, limit, &proof, now,
            )
            .await?;
            let t = NewTransfer {
                id: &id,
                kind: TransferKind::Send,
                debit: account,
                credit: payee,
                amount: req.amount,
                memo: &req.memo,
                expires_at: None,
            };
            let seq = ledger::insert_posted(conn, &st.system, &t, now).await?;
            ledger::notify(conn, payee, NotificationKind::PaymentReceived, seq, now).await?;
            Ok(StoredResponse::json(
                201,
                &ledger::posted_view(&t, account, payee_view, now),
            ))
        })
    });
    Ok(PreparedMoney { req, post })
}

pub(crate) async fn prepare_claim(
    state: &AppState,
    account: i64,
    body: &ClaimRequest,
    known: &mut Counterparts,
) -> AppResult<PreparedMoney> {
    let req = MoneyRequest::new(
        state,
        paths::CLAIMS,
        body,
        &body.idempotency_key,
        body.amount,
        &body.memo,
        None,
    )?;
    let (payer_phone, found) = lookup_counterpart(state, known, &body.payer).await?;
    let (payer, _) = found.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownPayee,
            format!("{payer_phone} has no Clink account"),
        )
    })?;
    if payer == account {
        return Err(AppError::new(
            ErrorCode::SelfTransfer,
            "you cannot ask yourself for money",
        ));
    }
    let id = new_transfer_id(state);
    let ttl_ms = state.config.claim_ttl().as_millis() as i64;
    let post: ledger_future::Post = Box::new(move |_st, conn, account, req, job| {
        Box::pin(async move {
            let now = job.now;
            let t = NewTransfer {
                id: &id,
                kind: TransferKind::Claim,
                debit: payer,
                credit: account,
                amount: req.amount,
                memo: &req.memo,
                expires_at: Some(now + ttl_ms),
            };
            let seq = ledger::insert_pending(conn, &t, now).await?;
            ledger::notify(conn, payer, NotificationKind::ClaimReceived, seq, now).await?;
            Ok(StoredResponse::json(
                201,
                &ledger::view(&mut *conn, seq, account).await?,
            ))
        })
    });
    Ok(PreparedMoney { req, post })
}

async fn send(State(state): St, caller: Caller) -> AppResult<Response> {
    let body: SendRequest = caller.signed.json()?;
    let prepared = prepare_send(
        &state,
        caller.account_id,
        &caller.signed.public_key,
        &body,
        &mut Counterparts::new(),
    )
    .await?;
    run_money(&state, caller, prepared.req, prepared.post).await
}

/// The self-deposit of early builds, answered for old clients: a user cannot
/// raise their own balance (see `operator` for how money enters).
async fn self_deposit_is_gone() -> AppError {
    AppError::new(
        ErrorCode::NotFound,
        "there is no self-deposit: money enters a balance only as a transfer from another user or through the operator's cash-in",
    )
}

async fn withdraw(State(state): St, caller: Caller) -> AppResult<Response> {
    let body: WithdrawRequest = caller.signed.json()?;
    let req = MoneyRequest::new(
        &state,
        paths::WITHDRAW,
        &body,
        &body.idempotency_key,
        body.amount,
        "",
        Some(&body.pin),
    )?;
    post_withdrawal(&state, caller, req).await
}

/// A withdrawal: money out to `cash_out`, the system account that mirrors
/// money leaving Clink. (Money comes in only through the operator's cash-in,
/// see `operator`.)
async fn post_withdrawal(
    state: &Arc<AppState>,
    caller: Caller,
    req: MoneyRequest,
) -> AppResult<Response> {
    let kind = TransferKind::Withdrawal;
    let id = new_transfer_id(state);
    run_money(state, caller, req, move |st, conn, account, req, job| {
        Box::pin(async move {
            let now = job.now;
            let t = NewTransfer {
                id: &id,
                kind,
                debit: account,
                credit: st.system.cash_out,
                amount: req.amount,
                memo: "",
                expires_at: None,
            };
            ledger::insert_posted(conn, &st.system, &t, now).await?;
            let counterpart = ledger::system_counterpart(kind);
            Ok(StoredResponse::json(
                201,
                &ledger::posted_view(&t, account, counterpart, now),
            ))
        })
    })
    .await
}

async fn create_claim(State(state): St, caller: Caller) -> AppResult<Response> {
    let body: ClaimRequest = caller.signed.json()?;
    let prepared =
        prepare_claim(&state, caller.account_id, &body, &mut Counterparts::new()).await?;
    run_money(&state, caller, prepared.req, prepared.post).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClaimAction {
    Approve,
    Decline,
    Cancel,
}

async fn decide_claim(
    State(state): St,
    Path((id, action)): Path<(String, String)>,
    caller: Caller,
) -> AppResult<Response> {
    let action = match action.as_str() {
        "approve" => ClaimAction::Approve,
        "decline" => ClaimAction::Decline,
        "cancel" => ClaimAction::Cancel,
        _ => {
            return Err(AppError::new(
                ErrorCode::NotFound,
                "a claim can be approved, declined or cancelled",
            ));
        }
    };
    let approval = if action == ClaimAction::Approve {
        let body: ApproveClaimRequest = caller.signed.json()?;
        ledger::check_pin_format(&body.pin)?;
        Some(body)
    } else {
        None
    };
    let st = state.clone();
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                outcome(decide_claim_job(&st, conn, caller, &id, action, approval).await)
            })
        })
        .await?;
    Ok(respond(response))
}

async fn decide_claim_job(
    state: &AppState,
    conn: &mut AnyConnection,
    caller: Caller,
    id: &str,
    action: ClaimAction,
    approval: Option<ApproveClaimRequest>,
) -> Result<StoredResponse, Failure> {
    caller.signed.record_nonce(conn).await?;
    let me = caller.account_id;
    let now = now_ms();
    let not_found = || {
        AppError::new(
            ErrorCode::NotFound,
            format!("no claim {id:?} is addressed to you"),
        )
    };
    let Some(claim) = ledger::load_transfer(conn, id).await? else {
        return Err(not_found().into());
    };
    // The payer approves or declines; the requester (credited) cancels.
    let party = if action == ClaimAction::Cancel {
        claim.credit
    } else {
        claim.debit
    };
    if claim.kind != TransferKind::Claim || party != me {
        return Err(not_found().into());
    }
    let done_already = matches!(
        (action, claim.state, claim.void_reason),
        (ClaimAction::Approve, TransferState::Posted, _)
            | (
                ClaimAction::Decline,
                TransferState::Voided,
                Some(VoidReason::Declined)
            )
            | (
                ClaimAction::Cancel,
                TransferState::Voided,
                Some(VoidReason::Cancelled)
            )
    );
    if done_already {
        // Saying the same thing twice is not an error: the phone may have lost the first answer.
        return Ok(StoredResponse::json(
            200,
            &ledger::view(&mut *conn, claim.seq, me).await?,
        ));
    }
    if claim.state != TransferState::Pending {
        return Err(ledger::already_decided(claim.state, claim.void_reason).into());
    }
    if claim.expires_at.is_some_and(|at| at <= now) {
        ledger::void_pending(conn, claim.seq, VoidReason::Expired, now).await?;
        ledger::notify(
            conn,
            claim.credit,
            NotificationKind::ClaimExpired,
            claim.seq,
            now,
        )
        .await?;
        let error = AppError::new(ErrorCode::ClaimExpired, "this claim has expired");
        return Err(Failure {
            error,
            keep_writes: true,
        });
    }
    match action {
        ClaimAction::Approve => {
            let approval = approval.unwrap_or(ApproveClaimRequest {
                pin: String::new(),
                challenge_id: None,
                challenge_response: None,
            });
            let pin = ledger::check_pin(state, conn, me, &approval.pin, now).await?;
            let proof = Proof {
                challenge_id: approval.challenge_id,
                response: approval.challenge_response,
            };
            let device = &caller.signed.public_key;
            let limit = pin.second_factor_above;
            second_factor::enforce_policy(
                state,
                conn,
                device,
                me,
                claim.amount,
                limit,
                &proof,
                now,
            )
            .await?;
            if pin.wrong_before != 0 {
                ledger::clear_wrong_attempts(conn, me).await?;
            }
            ledger::post_pending(conn, &state.system, &claim, now).await?;
            ledger::notify(
                conn,
                claim.credit,
                NotificationKind::ClaimApproved,
                claim.seq,
                now,
            )
            .await?;
        }
        ClaimAction::Decline => {
            ledger::void_pending(conn, claim.seq, VoidReason::Declined, now).await?;
            ledger::notify(
                conn,
                claim.credit,
                NotificationKind::ClaimDeclined,
                claim.seq,
                now,
            )
            .await?;
        }
        ClaimAction::Cancel => {
            ledger::void_pending(conn, claim.seq, VoidReason::Cancelled, now).await?;
            ledger::notify(
                conn,
                claim.debit,
                NotificationKind::ClaimCancelled,
                claim.seq,
                now,
            )
            .await?;
        }
    }
    Ok(StoredResponse::json(
        200,
        &ledger::view(&mut *conn, claim.seq, me).await?,
    ))
}

// ------------------------------------------------------------------ reads

async fn transfer(
    State(state): St,
    Path(id): Path<String>,
    caller: Caller,
) -> AppResult<Json<TransferView>> {
    consume_nonce(&state, caller.signed).await?;
    let row = sqlx::query(&format!(
        "{} WHERE t.id = $1 AND (t.debit_account = $2 OR t.credit_account = $2)",
        ledger::VIEW_SELECT
    ))
    .bind(&id)
    .bind(caller.account_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no transfer {id:?} of yours")))?;
    Ok(Json(ledger::view_from_row(&row, caller.account_id)?))
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

const MAX_PAGE: i64 = 200;

async fn history(
    State(state): St,
    query: Result<Query<HistoryQuery>, QueryRejection>,
    caller: Caller,
) -> AppResult<Json<HistoryPage>> {
    let Query(q) = query.map_err(|e| AppError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    consume_nonce(&state, caller.signed).await?;
    let me = caller.account_id;
    let rows = sqlx::query(&format!(
        "{} WHERE t.seq IN (
            SELECT seq FROM transfers WHERE debit_account = $1 AND seq < $2
            UNION ALL SELECT seq FROM transfers WHERE credit_account = $1 AND seq < $2)
         ORDER BY t.seq DESC LIMIT $3",
        ledger::VIEW_SELECT
    ))
    .bind(me)
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(&state.db.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let items = rows
        .iter()
        .map(|r| ledger::view_from_row(r, me))
        .collect::<AppResult<Vec<_>>>()?;
    let next_before = if more {
        rows.last().map(|r| r.try_get::<i64, _>(0)).transpose()?
    } else {
        None
    };
    Ok(Json(HistoryPage { items, next_before }))
}

#[derive(Deserialize)]
struct InboxQuery {
    after: Option<i64>,
}

const INBOX_PAGE: i64 = 200;

async fn inbox(
    State(state): St,
    query: Result<Query<InboxQuery>, QueryRejection>,
    caller: Caller,
) -> AppResult<Json<Inbox>> {
    let Query(q) = query.map_err(|e| AppError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    consume_nonce(&state, caller.signed).await?;
    Ok(Json(
        read_inbox(&state, caller.account_id, q.after.unwrap_or(0)).await?,
    ))
}

/// Claims waiting for `me` and notifications after the cursor `after`.
pub(crate) async fn read_inbox(state: &AppState, me: i64, after: i64) -> AppResult<Inbox> {
    let now = now_ms();
    let pool = &state.db.pool;
    let claims = sqlx::query(&format!(
        "{} WHERE t.debit_account = $1 AND t.kind = 'claim' AND t.state = 'pending' AND t.expires_at > $2 ORDER BY t.seq",
        ledger::VIEW_SELECT
    ))
    .bind(me)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let pending_claims = claims
        .iter()
        .map(|r| ledger::view_from_row(r, me))
        .collect::<AppResult<Vec<_>>>()?;
    let rows = sqlx::query(
        "SELECT id, kind, transfer_seq, created_at FROM notifications WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(me)
    .bind(after)
    .bind(INBOX_PAGE + 1)
    .fetch_all(pool)
    .await?;
    // One row past the page tells whether more are waiting.
    let has_more = rows.len() as i64 > INBOX_PAGE;
    let rows = &rows[..rows.len().min(INBOX_PAGE as usize)];
    let mut notifications = Vec::with_capacity(rows.len());
    for row in rows {
        notifications.push(Notification {
            id: row.try_get(0)?,
            kind: ledger::parse_notification(&row.try_get::<String, _>(1)?)?,
            transfer: ledger::view(pool, row.try_get(2)?, me).await?,
            created_at_ms: row.try_get(3)?,
        });
    }
    let cursor = notifications.last().map_or(after, |n| n.id);
    Ok(Inbox {
        pending_claims,
        notifications,
        cursor,
        has_more,
    })
}
