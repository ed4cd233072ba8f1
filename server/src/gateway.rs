//! The telephone gateway: what a voice/SMS gateway calls when someone dials
//! a Clink dial string (see `clink_protocol::dialstring`).
//!
//! 1. `POST /v1/gateway/calls` with the caller's number (caller ID, trusted
//!    as the network's) and the dialed digits. The server parses the dial
//!    string, maps caller and counterpart to users, and answers with a call id
//!    and an OCRA challenge for the gateway to play as DTMF.
//! 2. `POST /v1/gateway/calls/{id}/complete` with the digits the caller's app
//!    keyed back. The server checks them with the caller's install key and
//!    makes the send (posted) or the request (a claim in the payer's inbox).
//!
//! A call is answered once, whatever the outcome: its challenge cannot be
//! replayed, and completing the same call twice never moves money twice.
//! The gateway authenticates with a shared bearer token, not as a device;
//! without a configured token these endpoints do not exist.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::post;
use clink_protocol::challenge::CLINK_CHALLENGE_DIGITS;
use clink_protocol::dialstring::{self, DialCommand, DialError, PhoneDigits};
use clink_protocol::phone::PhoneNumber;
use clink_protocol::wire::*;
use sqlx::{AnyConnection, Executor, Row};

use crate::auth::check_bearer;
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, Failure, NewTransfer, StoredResponse, outcome};
use crate::request::{json_body, new_transfer_id, parse_phone, respond, user_by_phone};
use crate::second_factor::{self, new_challenge};
use crate::secrets::random_hex;
use crate::{AppState, now_ms};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::GATEWAY_CALLS, post(start_call))
        .route("/v1/gateway/calls/{id}/complete", post(complete_call))
}

/// Memo of transfers made by phone, so both parties can tell them apart.
const CALL_MEMO: &str = "by phone";

/// Most digits a completion may carry; more is not an answer to a challenge.
const MAX_ANSWER_DIGITS: usize = 32;

// ------------------------------------------------------------ authentication

/// Proof that a request comes from the gateway.
pub struct Gateway;

impl FromRequestParts<Arc<AppState>> for Gateway {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> AppResult<Gateway> {
        let Some(token) = &state.config.gateway_token else {
            return Err(AppError::new(
                ErrorCode::NotFound,
                "the telephone gateway is disabled on this server (no gateway token is configured)",
            ));
        };
        check_bearer(parts, token, "gateway")?;
        Ok(Gateway)
    }
}

// ---------------------------------------------------------------- new call

/// What a call will do once the challenge is answered.
struct CallPlan {
    caller: i64,
    kind: GatewayCallKind,
    counterpart: i64,
    counterpart_phone: PhoneNumber,
    amount: i64,
}

async fn start_call(
    State(state): State<Arc<AppState>>,
    _gateway: Gateway,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: GatewayCallRequest = json_body(body)?;
    let caller_phone = parse_phone(&state, &req.caller).map_err(|e| {
        AppError::new(
            ErrorCode::InvalidPhoneNumber,
            format!("caller: {}", e.0.message),
        )
    })?;
    let caller = user_by_phone(&state, &caller_phone).await?.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownCaller,
            format!("the caller {caller_phone} has no Clink account"),
        )
    })?;
    let dialed = dialstring::parse(&req.dialed).map_err(dial_error)?;
    // Kept in Clink's checked form, whatever form the caller typed.
    let canonical = dialed.command.to_dial_string();
    let plan = plan_call(&state, caller, &caller_phone, dialed.command).await?;
    let challenge = new_challenge(&state.rng)?;
    let call_id = format!("c_{}", random_hex(&state.rng, 16));
    let ttl_ms = state.config.challenge_ttl().as_millis() as i64;
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                outcome(open_call(conn, &call_id, &canonical, &challenge, plan, ttl_ms).await)
            })
        })
        .await?;
    Ok(respond(response))
}

/// The dial string's fields as users: the originator (or requester) must be
/// the caller; the other party must have an account.
async fn plan_call(
    state: &AppState,
    caller: i64,
    caller_phone: &PhoneNumber,
    command: DialCommand,
) -> AppResult<CallPlan> {
    let (kind, own, other, amount) = match command {
        DialCommand::Send(s) => (GatewayCallKind::Send, Some(s.originator), s.payee, s.amount),
        DialCommand::Request(r) => (
            GatewayCallKind::Request,
            Some(r.requester),
            r.payer,
            r.amount,
        ),
        DialCommand::QuickSend(q) => (GatewayCallKind::Send, None, q.payee, q.amount),
    };
    let (own_role, other_role) = match kind {
        GatewayCallKind::Send => ("originator", "payee"),
        GatewayCallKind::Request => ("requester", "payer"),
    };
    if let Some(own) = own
        && resolve(state, &own).await?.map(|(account, _)| account) != Some(caller)
    {
        return Err(AppError::new(
            ErrorCode::OriginatorNotCaller,
            format!(
                "the {own_role} {own} in the dial string is not the caller {caller_phone}; a call can only pay or ask for money for its caller"
            ),
        ));
    }
    let (counterpart, counterpart_phone) = resolve(state, &other).await?.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownPayee,
            format!("the {other_role} {other} has no Clink account"),
        )
    })?;
    if counterpart == caller {
        return Err(AppError::new(
            ErrorCode::SelfTransfer,
            format!("the {other_role} is the caller"),
        ));
    }
    let amount = i64::try_from(amount.minor_units()).unwrap_or(i64::MAX);
    ledger::check_amount(amount, state.config.max_amount)?;
    Ok(CallPlan {
        caller,
        kind,
        counterpart,
        counterpart_phone,
        amount,
    })
}

/// The user a dial-string phone field names. Fields hold digits as typed:
/// national digits of the default region, or international digits without
/// the `+` (as `PhoneNumber::digits` writes them); national is tried first.
async fn resolve(state: &AppState, digits: &PhoneDigits) -> AppResult<Option<(i64, PhoneNumber)>> {
    let region = state.config.default_region;
    let candidates = [
        PhoneNumber::parse(digits.as_str(), region),
        PhoneNumber::parse(&format!("+{digits}"), region),
    ];
    for phone in candidates.into_iter().flatten() {
        if let Some(account) = user_by_phone(state, &phone).await? {
            return Ok(Some((account, phone)));
        }
    }
    Ok(None)
}

/// A parser error as a refusal that names where the dial string went wrong.
fn dial_error(e: DialError) -> AppError {
    use DialError::*;
    let position = match &e {
        Empty => None,
        UnexpectedChar { position, .. }
        | TooLong { position, .. }
        | EmptyField { position, .. }
        | TooFewFields { position, .. }
        | TooManyFields { position, .. }
        | UnknownKind { position, .. }
        | QuickSendPrefixMissing { position }
        | PhoneTooLong { position, .. }
        | AmountZero { position }
        | AmountLeadingZero { position }
        | AmountTooLarge { position, .. }
        | MalformedCheckDigit { position }
        | CheckDigitWrong { position } => Some(*position),
    };
    let mut error = AppError::new(
        ErrorCode::InvalidDialString,
        format!("the dialed string is not valid: {e}"),
    );
    error.0.position = position;
    error
}

async fn open_call(
    conn: &mut AnyConnection,
    call_id: &str,
    dialed: &str,
    challenge: &str,
    plan: CallPlan,
    ttl_ms: i64,
) -> Result<StoredResponse, Failure> {
    let now = now_ms();
    ledger::check_not_locked(conn, plan.caller, now).await?;
    // The install that answers is the caller's most recently keyed one.
    let install = sqlx::query(
        "SELECT public_key FROM ocra_keys WHERE account_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(plan.caller)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        AppError::new(
            ErrorCode::OcraKeyNotRegistered,
            "the caller has no Clink install with a registered OCRA key, so the call cannot be checked",
        )
    })?;
    let install: String = install.try_get(0)?;
    let expires_at = now + ttl_ms;
    sqlx::query(
        "INSERT INTO calls (id, caller_account, public_key, kind, counterpart, amount, dialed, challenge, state, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)",
    )
    .bind(call_id)
    .bind(plan.caller)
    .bind(&install)
    .bind(kind_str(plan.kind))
    .bind(plan.counterpart)
    .bind(plan.amount)
    .bind(dialed)
    .bind(challenge)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    let name: String = sqlx::query("SELECT display_name FROM users WHERE account_id = $1")
        .bind(plan.counterpart)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(StoredResponse::json(
        201,
        &GatewayCall {
            call_id: call_id.to_string(),
            challenge: challenge.to_string(),
            collect_digits: CLINK_CHALLENGE_DIGITS as u32,
            expires_at_ms: expires_at,
            kind: plan.kind,
            amount: plan.amount,
            counterpart: Counterpart {
                display_name: name,
                phone: Some(plan.counterpart_phone),
            },
        },
    ))
}

fn kind_str(kind: GatewayCallKind) -> &'static str {
    match kind {
        GatewayCallKind::Send => "send",
        GatewayCallKind::Request => "request",
    }
}

// ---------------------------------------------------------- completed call

async fn complete_call(
    State(state): State<Arc<AppState>>,
    _gateway: Gateway,
    Path(call_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: CompleteCallRequest = json_body(body)?;
    let digits = req
        .digits
        .strip_suffix('#')
        .unwrap_or(&req.digits)
        .to_string();
    if digits.is_empty()
        || digits.len() > MAX_ANSWER_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!(
                "digits must be 1 to {MAX_ANSWER_DIGITS} DTMF digits 0-9 as keyed, optionally ended by '#'"
            ),
        ));
    }
    let transfer_id = new_transfer_id(&state);
    let st = state.clone();
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                outcome(answer_call(&st, conn, &call_id, &digits, &transfer_id).await)
            })
        })
        .await?;
    Ok(respond(response))
}

/// A call being answered, as stored when it was opened.
struct OpenCall {
    caller: i64,
    install: String,
    kind: GatewayCallKind,
    counterpart: i64,
    amount: i64,
    challenge: String,
    expires_at: i64,
}

/// Answers a call once. The call is marked answered first; a refusal after
/// that (expired, locked, wrong digits, no funds) keeps it answered and moves
/// no money. Only a failure of the server itself leaves it open.
async fn answer_call(
    state: &AppState,
    conn: &mut AnyConnection,
    call_id: &str,
    digits: &str,
    transfer_id: &str,
) -> Result<StoredResponse, Failure> {
    let now = now_ms();
    let row = sqlx::query(
        "SELECT caller_account, public_key, kind, counterpart, amount, challenge, expires_at, outcome FROM calls WHERE id = $1",
    )
    .bind(call_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no call {call_id:?}")))?;
    let call = OpenCall {
        caller: row.try_get(0)?,
        install: row.try_get(1)?,
        kind: parse_kind(&row.try_get::<String, _>(2)?)?,
        counterpart: row.try_get(3)?,
        amount: row.try_get(4)?,
        challenge: row.try_get(5)?,
        expires_at: row.try_get(6)?,
    };
    // The state guard makes a call answered exactly once, even if two server
    // instances race for it.
    let claimed = sqlx::query(
        "UPDATE calls SET state = 'refused', answered_at = $1 WHERE id = $2 AND state = 'open'",
    )
    .bind(now)
    .bind(call_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if claimed != 1 {
        let earlier = row.try_get::<Option<String>, _>(7)?.unwrap_or_default();
        return Err(AppError::new(
            ErrorCode::ChallengeUsed,
            format!(
                "call {call_id:?} was already answered ({earlier}); nothing was done again, the caller must call again"
            ),
        )
        .into());
    }
    match run_call(state, conn, call_id, &call, digits, transfer_id, now).await {
        Ok(seq) => {
            finish(
                conn,
                call_id,
                "completed",
                &format!("made transfer {transfer_id}"),
            )
            .await?;
            Ok(StoredResponse::json(
                201,
                &CompletedCall {
                    call_id: call_id.to_string(),
                    transfer: ledger::view(&mut *conn, seq, call.caller).await?,
                },
            ))
        }
        Err(failure) if failure.error.code().is_retryable() => Err(Failure {
            error: failure.error,
            keep_writes: false,
        }),
        Err(failure) => {
            let why = format!("refused: {}", code_name(failure.error.code()));
            finish(conn, call_id, "refused", &why).await?;
            Err(Failure {
                error: failure.error,
                keep_writes: true,
            })
        }
    }
}

/// Checks the answer and makes the transfer; returns its sequence number.
async fn run_call(
    state: &AppState,
    conn: &mut AnyConnection,
    call_id: &str,
    call: &OpenCall,
    digits: &str,
    transfer_id: &str,
    now: i64,
) -> Result<i64, Failure> {
    if call.expires_at <= now {
        return Err(AppError::new(
            ErrorCode::ChallengeExpired,
            format!(
                "the challenge of call {call_id:?} expired {} s ago; nothing was done, the caller must call again",
                (now - call.expires_at) / 1000
            ),
        )
        .into());
    }
    let key = second_factor::load_key(state, conn, &call.install)
        .await?
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::OcraKeyNotRegistered,
                "the caller's install no longer has an OCRA key",
            )
        })?;
    second_factor::check_response(state, conn, call.caller, &key, &call.challenge, digits, now)
        .await?;
    // The answer is the call's only factor.
    ledger::clear_wrong_attempts(conn, call.caller).await?;
    // A refused transfer must undo its own writes but keep the call answered
    // and the attempt counted, so it gets a savepoint inside the job's.
    conn.execute("SAVEPOINT call_transfer").await?;
    let made = make_transfer(state, conn, call, transfer_id, now).await;
    if made.is_err() {
        conn.execute("ROLLBACK TO SAVEPOINT call_transfer").await?;
    }
    conn.execute("RELEASE SAVEPOINT call_transfer").await?;
    Ok(made?)
}

async fn make_transfer(
    state: &AppState,
    conn: &mut AnyConnection,
    call: &OpenCall,
    transfer_id: &str,
    now: i64,
) -> AppResult<i64> {
    match call.kind {
        GatewayCallKind::Send => {
            let t = NewTransfer {
                id: transfer_id,
                kind: TransferKind::Send,
                debit: call.caller,
                credit: call.counterpart,
                amount: call.amount,
                memo: CALL_MEMO,
                expires_at: None,
            };
            let seq = ledger::insert_posted(conn, &state.system, &t, now).await?;
            ledger::notify(
                conn,
                call.counterpart,
                NotificationKind::PaymentReceived,
                seq,
                now,
            )
            .await?;
            Ok(seq)
        }
        GatewayCallKind::Request => {
            let t = NewTransfer {
                id: transfer_id,
                kind: TransferKind::Claim,
                debit: call.counterpart,
                credit: call.caller,
                amount: call.amount,
                memo: CALL_MEMO,
                expires_at: Some(now + state.config.claim_ttl().as_millis() as i64),
            };
            let seq = ledger::insert_pending(conn, &t, now).await?;
            ledger::notify(
                conn,
                call.counterpart,
                NotificationKind::ClaimReceived,
                seq,
                now,
            )
            .await?;
            Ok(seq)
        }
    }
}

async fn finish(
    conn: &mut AnyConnection,
    call_id: &str,
    state: &str,
    outcome: &str,
) -> AppResult<()> {
    sqlx::query("UPDATE calls SET state = $1, outcome = $2 WHERE id = $3")
        .bind(state)
        .bind(outcome)
        .bind(call_id)
        .execute(conn)
        .await?;
    Ok(())
}

fn parse_kind(text: &str) -> AppResult<GatewayCallKind> {
    match text {
        "send" => Ok(GatewayCallKind::Send),
        "request" => Ok(GatewayCallKind::Request),
        other => Err(AppError::new(
            ErrorCode::Internal,
            format!("unknown call kind {other:?} in the database"),
        )),
    }
}

/// An error code as it appears on the wire, e.g. `wrong_challenge_response`.
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{code:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_errors_carry_the_parsers_position() {
        let e = dial_error(dialstring::parse("*3*09011111111*600*5#").unwrap_err());
        assert_eq!(
            (e.code(), e.0.position),
            (ErrorCode::InvalidDialString, Some(19))
        );
        assert!(e.0.message.contains("check digit"), "{}", e.0.message);
        let e = dial_error(dialstring::parse("").unwrap_err());
        assert_eq!(
            (e.code(), e.0.position),
            (ErrorCode::InvalidDialString, None)
        );
    }

    #[test]
    fn code_names_are_the_wire_names() {
        assert_eq!(
            code_name(ErrorCode::WrongChallengeResponse),
            "wrong_challenge_response"
        );
    }
}
