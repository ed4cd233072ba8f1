//! Transfers: sending and withdrawing money, one transfer, the history.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use clink_protocol::wire::*;
use serde::Deserialize;
use sqlx::Row;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, NewTransfer, StoredResponse};
use crate::money::{Counterparts, MoneyRequest, prepare_send, run_money};
use crate::request::{consume_nonce, new_transfer_id};

type St = State<Arc<AppState>>;

pub(crate) async fn send(State(state): St, caller: Caller) -> AppResult<Response> {
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
pub(crate) async fn self_deposit_is_gone() -> AppError {
    AppError::new(
        ErrorCode::NotFound,
        "there is no self-deposit: money enters a balance only as a transfer from another user or through the operator's cash-in",
    )
}

pub(crate) async fn withdraw(State(state): St, caller: Caller) -> AppResult<Response> {
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

pub(crate) async fn transfer(
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
pub(crate) struct HistoryQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

const MAX_PAGE: i64 = 200;

pub(crate) async fn history(
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
