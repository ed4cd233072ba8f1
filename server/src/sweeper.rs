//! Housekeeping on a timer: expires claims nobody answered and forgets
//! nonces, idempotency records and registrations that can no longer matter,
//! so no table grows without bound.

use std::sync::Arc;
use std::time::Duration;

use clink_protocol::wire::signing::MAX_CLOCK_SKEW_MS;
use clink_protocol::wire::{NotificationKind, VoidReason};
use sqlx::{AnyConnection, Row};

use crate::config::IDEMPOTENCY_RETENTION;
use crate::error::AppResult;
use crate::writer::Outcome;
use crate::{AppState, ledger, now_ms};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Claims expired per sweep; the rest wait for the next one.
const EXPIRE_BATCH: i64 = 500;

pub fn spawn(state: Arc<AppState>) {
    let weak = Arc::downgrade(&state);
    let period = Duration::from_secs(state.config.sweep_secs.max(1));
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            let result = state
                .writer
                .run(|conn| {
                    Box::pin(async move { Outcome::from_result(sweep(conn, now_ms()).await) })
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = ?e, "sweep failed; will retry");
            }
        }
    });
}

/// One sweep; returns how many claims it expired.
pub async fn sweep(conn: &mut AnyConnection, now: i64) -> AppResult<usize> {
    let due = sqlx::query(
        "SELECT seq, credit_account FROM transfers WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(EXPIRE_BATCH)
    .fetch_all(&mut *conn)
    .await?;
    for row in &due {
        let (seq, requester): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        ledger::void_pending(conn, seq, VoidReason::Expired, now).await?;
        crate::shops::on_claim_settled(
            conn,
            seq,
            crate::shops::ClaimOutcome::Voided(VoidReason::Expired),
            now,
        )
        .await?;
        ledger::notify(conn, requester, NotificationKind::ClaimExpired, seq, now).await?;
    }
    // A nonce older than twice the allowed skew can never be accepted again anyway.
    sqlx::query("DELETE FROM nonces WHERE seen_at < $1")
        .bind(now - 2 * MAX_CLOCK_SKEW_MS)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
        .bind(now - IDEMPOTENCY_RETENTION.as_millis() as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM registrations WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    crate::shops::expire_untaken(conn, now).await?;
    crate::customer_codes::forget_old(conn, now).await?;
    // Delivered webhook events are kept a week for support questions; given
    // up ones a month, listed for the merchant until then.
    sqlx::query("DELETE FROM webhook_events WHERE (delivered_at < $1) OR (failed_at < $2)")
        .bind(now - 7 * DAY_MS)
        .bind(now - 30 * DAY_MS)
        .execute(&mut *conn)
        .await?;
    crate::second_factor::forget_old_challenges(conn, now).await?;
    crate::pairing::forget_old(conn, now).await?;
    Ok(due.len())
}
