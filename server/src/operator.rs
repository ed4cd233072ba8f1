//! The operator's back office: how money enters Clink from outside.
//!
//! No request of a user can raise that user's balance except a transfer from
//! another account; money that arrives outside Clink (cash at a desk, a bank
//! transfer the operator checked) is credited here, by the operator, with:
//!
//! - a shared bearer credential (`--operator-token`), never a device key, so
//!   no phone can reach these endpoints; without a token they do not exist;
//! - an idempotency key per real-world cash-in, kept for ever in the audit
//!   record (not the 48 h of users' keys): a desk's retry a week later still
//!   gets the first answer instead of paying twice;
//! - an audit record in the same transaction as the money: which credential,
//!   when, whom, how much, and the reference (receipt or slip number).
//!
//! The credit comes from the `cash_in` system account, so the books still sum
//! to zero. Funding sources (banks, carriers) come later, on the same path.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::post;
use clink_protocol::wire::*;
use sqlx::{AnyConnection, Row};

use crate::auth::check_bearer;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Failure, NewTransfer, StoredResponse};
use crate::request::{counterpart_by_phone, json_body, new_transfer_id, parse_phone, respond};
use crate::writer::Outcome;
use crate::{AppState, now_ms};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(paths::OPERATOR_CASH_IN, post(cash_in))
}

/// Longest reference the audit record keeps.
pub const MAX_REFERENCE_CHARS: usize = 64;

/// Proof that a request comes from the operator, and which credential it
/// used, as the audit record names it.
pub struct Operator {
    credential: String,
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> AppResult<Operator> {
        let Some(token) = &state.config.operator_token else {
            return Err(AppError::new(
                ErrorCode::NotFound,
                "operator endpoints are disabled on this server (no operator token is configured)",
            ));
        };
        check_bearer(parts, token, "operator")?;
        // The audit record names the credential by a digest prefix: enough to
        // tell rotated tokens apart, useless to anyone reading the database.
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_str().as_bytes());
        Ok(Operator {
            credential: format!("operator-token:{}", hex::encode(&digest.as_ref()[..6])),
        })
    }
}

async fn cash_in(
    State(state): State<Arc<AppState>>,
    operator: Operator,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: CashInRequest = json_body(body)?;
    ledger::check_idempotency_key(&req.idempotency_key)?;
    ledger::check_amount(req.amount, state.config.max_amount)?;
    let reference = check_reference(&req.reference)?;
    let phone = parse_phone(&state, &req.phone)?;
    let Some((account, counterpart)) = counterpart_by_phone(&state, &phone).await? else {
        return Err(AppError::new(
            ErrorCode::UnknownPayee,
            format!("{} has no Clink account", phone.as_e164()),
        ));
    };
    let fingerprint = ledger::fingerprint(paths::OPERATOR_CASH_IN, &req);
    let transfer_id = new_transfer_id(&state);
    let st = state.clone();
    let response = state
        .writer
        .run(move |conn| {
            Box::pin(async move {
                let plan = CashIn {
                    credential: &operator.credential,
                    key: &req.idempotency_key,
                    fingerprint: &fingerprint,
                    account,
                    answer: CashInResponse {
                        transfer_id,
                        phone: phone.as_e164().to_string(),
                        display_name: counterpart.display_name,
                        amount: req.amount,
                        reference,
                        created_at_ms: now_ms(),
                    },
                };
                cash_in_job(&st, conn, plan).await
            })
        })
        .await?;
    Ok(respond(response))
}

/// The reference as stored (NFC). It becomes the memo the user sees on the
/// transfer, so it gets the memo rules too (no bidi controls, invisible or
/// control characters).
fn check_reference(reference: &str) -> AppResult<String> {
    let chars = reference.chars().count();
    if chars == 0 || chars > MAX_REFERENCE_CHARS {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the reference (the receipt or slip number) must be 1 to {MAX_REFERENCE_CHARS} characters"
            ),
        ));
    }
    clink_protocol::wire::text::check_memo(reference).map_err(|e| {
        AppError::new(
            ErrorCode::InvalidRequest,
            format!("the reference is shown to the user as the transfer's memo: {e}"),
        )
    })
}

/// One cash-in, ready for the writer.
struct CashIn<'a> {
    credential: &'a str,
    key: &'a str,
    fingerprint: &'a str,
    account: i64,
    answer: CashInResponse,
}

/// Inside the writer: replay a key already answered; otherwise post the
/// transfer from `cash_in`, notify the user and write the audit record. The
/// audit record's unique key is the last word: if another instance recorded
/// the same key first, this run's writes are undone and its answer sent.
async fn cash_in_job(
    st: &AppState,
    conn: &mut AnyConnection,
    plan: CashIn<'_>,
) -> Outcome<StoredResponse> {
    match earlier_answer(conn, plan.key, plan.fingerprint).await {
        Ok(Some(stored)) => return ledger::outcome(Ok(stored)),
        Ok(None) => {}
        Err(e) => return ledger::outcome(Err(e.into())),
    }
    match post_cash_in(st, conn, &plan).await {
        Ok(Some(stored)) => ledger::outcome(Ok(stored)),
        Ok(None) => match earlier_answer(conn, plan.key, plan.fingerprint).await {
            Ok(Some(stored)) => Outcome {
                keep_writes: false,
                reply: Ok(stored),
            },
            Ok(None) => ledger::outcome(Err(AppError::new(
                ErrorCode::Internal,
                "a cash-in audit record vanished while its request was answered",
            )
            .into())),
            Err(e) => ledger::outcome(Err(e.into())),
        },
        Err(failure) => ledger::outcome(Err(failure)),
    }
}

/// The money, the notification and the audit record; `None` when the audit
/// record's key was taken meanwhile (a concurrent duplicate won).
async fn post_cash_in(
    st: &AppState,
    conn: &mut AnyConnection,
    plan: &CashIn<'_>,
) -> Result<Option<StoredResponse>, Failure> {
    let now = plan.answer.created_at_ms;
    let t = NewTransfer {
        id: &plan.answer.transfer_id,
        kind: TransferKind::Deposit,
        debit: st.system.cash_in,
        credit: plan.account,
        amount: plan.answer.amount,
        memo: &plan.answer.reference,
        expires_at: None,
    };
    let seq = ledger::insert_posted(conn, &st.system, &t, now).await?;
    ledger::notify(
        conn,
        plan.account,
        NotificationKind::PaymentReceived,
        seq,
        now,
    )
    .await?;
    let response = StoredResponse::json(201, &plan.answer);
    let inserted = sqlx::query(
        "INSERT INTO operator_audit
             (created_at, credential, action, idempotency_key, request_hash, account_id, amount,
              reference, transfer_id, response_status, response_body)
         VALUES ($1, $2, 'cash_in', $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING",
    )
    .bind(now)
    .bind(plan.credential)
    .bind(plan.key)
    .bind(plan.fingerprint)
    .bind(plan.account)
    .bind(plan.answer.amount)
    .bind(&plan.answer.reference)
    .bind(&plan.answer.transfer_id)
    .bind(i64::from(response.status))
    .bind(&response.body)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(response))
}

/// The answer already given for this key, or an error if the key was used
/// for a different cash-in.
async fn earlier_answer(
    conn: &mut AnyConnection,
    key: &str,
    fingerprint: &str,
) -> AppResult<Option<StoredResponse>> {
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM operator_audit
         WHERE action = 'cash_in' AND idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<String, _>(0)? != fingerprint {
        return Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            "this idempotency key was already used for a different cash-in; use a new key for a new cash-in",
        ));
    }
    Ok(Some(StoredResponse {
        status: row.try_get::<i64, _>(1)? as u16,
        body: row.try_get(2)?,
    }))
}
