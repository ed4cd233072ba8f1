//! Pay by bump and by sound: two phones that never learn each other's number
//! end with a claim (a pending transfer) from the payer to the payee, which
//! the payer approves with the PIN or declines like any other claim.
//!
//! - [`bump`]: reports are rows in `bump_reports`; the decision (match,
//!   ambiguity, expiry) flips rows with a state guard inside a writer job,
//!   so it is made once even when several server instances share the
//!   database.
//! - [`sound`]: single-use tokens, unforgeable and bound to this server's
//!   secret, redeemed once.
//!
//! Transfers made this way are recorded in `paired_transfers`; their views
//! show the counterpart's display name and never the phone number (history
//! included, for both parties).

pub mod bump;
pub mod sound;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use clink_protocol::wire::{NotificationKind, PairingRequestView, TransferKind, paths};
use sqlx::{AnyConnection, Row};

use crate::AppState;
use crate::error::AppResult;
use crate::ledger::{self, NewTransfer};
use crate::request::new_transfer_id;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::BUMPS, post(bump::submit))
        .route("/v1/bumps/{id}", get(bump::status))
        .route(paths::SOUND_TOKENS, post(sound::issue))
        .route(paths::SOUND_TOKEN_REDEEM, post(sound::redeem))
        .route("/v1/sound-tokens/{token}", get(sound::status))
}

/// How the two phones found each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Bump,
    Sound,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Bump => "bump",
            Method::Sound => "sound",
        }
    }
}

/// A request for money found by pairing: who pays whom, how much, for what.
pub(crate) struct PairedRequest<'a> {
    pub payer: i64,
    pub payee: i64,
    pub amount: i64,
    pub memo: &'a str,
    pub method: Method,
}

/// Writes the claim a pairing creates (payee asks, payer approves) and tells
/// the payer through the inbox. Runs inside the writer job that decided the
/// pairing, so the pairing and its claim stand or fall together.
pub(crate) async fn create_request(
    state: &AppState,
    conn: &mut AnyConnection,
    r: &PairedRequest<'_>,
    now: i64,
) -> AppResult<i64> {
    let id = new_transfer_id(state);
    let t = NewTransfer {
        id: &id,
        kind: TransferKind::Claim,
        debit: r.payer,
        credit: r.payee,
        amount: r.amount,
        memo: r.memo,
        expires_at: Some(now + state.config.pairing_request_ttl_secs as i64 * 1000),
    };
    let seq = ledger::insert_pending(conn, &t, now).await?;
    sqlx::query("INSERT INTO paired_transfers (transfer_seq, method) VALUES ($1, $2)")
        .bind(seq)
        .bind(r.method.as_str())
        .execute(&mut *conn)
        .await?;
    ledger::notify(conn, r.payer, NotificationKind::ClaimReceived, seq, now).await?;
    Ok(seq)
}

/// Who is looking at a pairing request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Viewer {
    /// Sees the payee's picture too, to confirm the person before the PIN.
    Payer,
    /// Knows its own picture: the emoji alone.
    Payee,
}

/// The request behind transfer `seq`, as `viewer` sees it: the payee's
/// display name and avatar, never a phone number.
pub(crate) async fn request_view(
    conn: &mut AnyConnection,
    seq: i64,
    viewer: Viewer,
) -> AppResult<PairingRequestView> {
    let row = sqlx::query(
        "SELECT t.id, t.amount, t.memo, t.expires_at, u.display_name, t.credit_account
         FROM transfers t JOIN users u ON u.account_id = t.credit_account WHERE t.seq = $1",
    )
    .bind(seq)
    .fetch_one(&mut *conn)
    .await?;
    let payee: i64 = row.try_get(5)?;
    Ok(PairingRequestView {
        request_id: row.try_get(0)?,
        amount: row.try_get(1)?,
        memo: row.try_get(2)?,
        expires_at_ms: row.try_get::<Option<i64>, _>(3)?.unwrap_or_default(),
        payee_display_name: row.try_get(4)?,
        payee_avatar: crate::accounts::read_avatar(&mut *conn, payee, viewer == Viewer::Payer)
            .await?,
    })
}

/// Forgets decided bump reports and old sound tokens (called by the sweeper).
pub async fn forget_old(conn: &mut AnyConnection, now: i64) -> AppResult<()> {
    bump::forget_decided(conn, now).await?;
    sound::forget_expired(conn, now).await
}
