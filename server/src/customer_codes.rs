//! The customer's side of "both sides agree": the phone states the order
//! (merchant, order id, amount, every line) and approves it with the PIN
//! (and the second factor where the policy asks); the server keeps that
//! statement under a one-time code (`CL` + 15 random digits + a Damm check
//! digit, good for 60 s, single use) that the phone shows and the terminal
//! scans. The terminal then sends its own statement with the code
//! (`shops`), and money moves only if the two match.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clink_protocol::one_time_code::{self, OneTimeCode};
use clink_protocol::wire::*;
use ring::rand::SecureRandom;
use sqlx::{AnyConnection, Row};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Failure, outcome};
use crate::request::write_signed;
use crate::second_factor::{self, Proof};
use crate::{AppState, now_ms};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(paths::CUSTOMER_CODES, post(issue))
}

fn order_error(e: OrderError) -> AppError {
    AppError::new(e.error_code(), e.to_string())
}

async fn issue(State(state): State<Arc<AppState>>, caller: Caller) -> AppResult<Response> {
    let req: IssueCustomerCodeRequest = caller.signed.json()?;
    check_order_id(&req.order.merchant_order_id).map_err(order_error)?;
    ledger::check_amount(req.order.amount, state.config.max_amount)?;
    let items = check_items(&req.order.items, req.order.amount).map_err(order_error)?;
    ledger::check_pin_format(&req.pin)?;
    let code = draw_code(&state)?;
    let statement = CustomerOrder { items, ..req.order };
    let (me, device) = (caller.account_id, caller.signed.public_key.clone());
    let proof = Proof {
        challenge_id: req.challenge_id,
        response: req.challenge_response,
    };
    let pin = req.pin;
    let view = write_signed(&state, caller.signed, move |st, conn| {
        Box::pin(async move {
            outcome(issue_job(st, conn, me, &device, &pin, &proof, &statement, code).await)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// 15 uniformly random digits (rejection sampling keeps them uniform).
fn draw_code(state: &AppState) -> AppResult<OneTimeCode> {
    loop {
        let mut bytes = [0u8; 8];
        state
            .rng
            .fill(&mut bytes)
            .map_err(|_| AppError::unavailable("no system randomness; retry"))?;
        // 2^50 > 10^15: draw 50 bits, keep those below the limit (89 %).
        let body = u64::from_le_bytes(bytes) >> 14;
        if let Some(code) = OneTimeCode::from_body(body) {
            return Ok(code);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn issue_job(
    state: &AppState,
    conn: &mut AnyConnection,
    me: i64,
    device: &str,
    pin: &str,
    proof: &Proof,
    statement: &CustomerOrder,
    code: OneTimeCode,
) -> Result<CustomerCodeView, Failure> {
    let now = now_ms();
    if crate::merchants::merchant_by_id(&mut *conn, &statement.merchant_id)
        .await?
        .is_none()
    {
        return Err(AppError::new(
            ErrorCode::UnknownMerchant,
            format!("there is no merchant {:?}", statement.merchant_id),
        )
        .into());
    }
    let pin = ledger::check_pin(state, conn, me, pin, now).await?;
    second_factor::enforce_policy(
        state,
        conn,
        device,
        me,
        statement.amount,
        pin.second_factor_above,
        proof,
        now,
    )
    .await?;
    if pin.wrong_before != 0 {
        ledger::clear_wrong_attempts(conn, me).await?;
    }
    let expires_at = now + one_time_code::LIFETIME_MS;
    sqlx::query(
        "INSERT INTO customer_codes (code, account_id, merchant_id, statement, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(code.digits())
    .bind(me)
    .bind(&statement.merchant_id)
    .bind(serde_json::to_string(statement).expect("statements serialise"))
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(CustomerCodeView {
        code: format!("{}{}", one_time_code::PREFIX, code.digits()),
        grouped: code.grouped(),
        expires_at_ms: expires_at,
    })
}

/// A code's owner and statement, once: the conditional update makes a
/// code usable by one request only, on any number of instances.
pub async fn use_code(
    conn: &mut AnyConnection,
    code: &str,
    merchant_id: &str,
    now: i64,
) -> AppResult<(i64, CustomerOrder)> {
    let parsed = OneTimeCode::parse(code)
        .map_err(|e| AppError::new(ErrorCode::TokenUnknown, format!("not a customer code: {e}")))?;
    let digits = parsed.digits();
    let row = sqlx::query(
        "UPDATE customer_codes SET used_at = $1 WHERE code = $2 AND merchant_id = $3 AND used_at IS NULL AND expires_at > $1 RETURNING account_id, statement",
    )
    .bind(now)
    .bind(&digits)
    .bind(merchant_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        let statement: String = row.try_get(1)?;
        let statement = serde_json::from_str(&statement)
            .map_err(|e| AppError::new(ErrorCode::Internal, format!("stored statement: {e}")))?;
        return Ok((row.try_get(0)?, statement));
    }
    // Say why, without telling another merchant's terminal that the code exists.
    let row = sqlx::query(
        "SELECT used_at, expires_at FROM customer_codes WHERE code = $1 AND merchant_id = $2",
    )
    .bind(&digits)
    .bind(merchant_id)
    .fetch_optional(&mut *conn)
    .await?;
    Err(match row {
        None => AppError::new(
            ErrorCode::TokenUnknown,
            "no such customer code for this shop",
        ),
        Some(row) if row.try_get::<Option<i64>, _>(0)?.is_some() => {
            AppError::new(ErrorCode::TokenUsed, "this customer code was already used")
        }
        Some(_) => AppError::new(ErrorCode::TokenExpired, "this customer code has expired"),
    })
}

/// Forgets codes long past their expiry.
pub async fn forget_old(conn: &mut AnyConnection, now: i64) -> AppResult<()> {
    sqlx::query("DELETE FROM customer_codes WHERE expires_at < $1")
        .bind(now - 24 * 3600 * 1000)
        .execute(conn)
        .await?;
    Ok(())
}
