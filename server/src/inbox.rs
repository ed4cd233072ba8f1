//! The inbox: claims waiting for the caller and notifications after a
//! cursor. `POST /v1/sync` answers with the same inbox.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use clink_protocol::wire::*;
use serde::Deserialize;
use sqlx::Row;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ledger::{self};
use crate::request::consume_nonce;
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

#[derive(Deserialize)]
pub(crate) struct InboxQuery {
    after: Option<i64>,
}

const INBOX_PAGE: i64 = 200;

pub(crate) async fn inbox(
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
