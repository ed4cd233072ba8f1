//! Bump reports in the database, and the decisions about them.
//!
//! The rules are `matching`'s (plausibility by time, fingerprint, location
//! and impulse; a group of three or more plausible reports is ambiguous at
//! once, and so is a report plausible with one already told to bump again;
//! a pair is matched only when both reports have settled, so no rival can
//! still arrive); the state lives in `bump_reports` so that any number
//! of server instances can share it:
//!
//! - every instance inserts the reports it receives, in a writer job;
//! - a decision is one writer job that flips the rows of a group with a
//!   state guard (`… WHERE state = 'pending'`). On PostgreSQL the second of
//!   two concurrent deciders waits for the first one's row locks, then
//!   finds the rows decided and changes nothing; on SQLite writers are
//!   serialised (`BEGIN IMMEDIATE`). A match creates its claim in the same
//!   job, so there is never a match without its claim, nor two claims;
//! - each instance runs a decider every [`TICK`]: a cheap read, and a writer
//!   job only when some pending report is due;
//! - a report committed after a plausible partner of it was matched
//!   withdraws that match while it is unpaid (everyone bumps again), so a
//!   slow commit can delay a decision's undoing but never make a guess
//!   stand.
//!
//! State is bounded: a report is decided within [`MatcherConfig::settle_ms`]
//! plus [`COMMIT_MARGIN_MS`] of its knock (reports arriving later are
//! refused), decided rows are deleted after [`DECIDED_RETENTION_MS`], and at
//! most [`MatcherConfig::capacity`] reports are pending at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clink_protocol::wire::{
    BumpOutcome, BumpReport, BumpReportView, BumpRole, ErrorCode, NotificationKind,
    SubmitBumpRequest, VoidReason,
};
use serde::Deserialize;
use sqlx::{AnyConnection, Executor, Row};

use super::{Method, PairedRequest, Viewer};
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, outcome};
use crate::request::{consume_nonce, write_signed};
use crate::secrets::random_hex;
use crate::writer::Outcome;
use crate::{AppState, now_ms};
use clink_protocol::matching::{self, MatcherConfig, Pending, SubmitError};

/// How often each instance looks for reports due for a decision.
pub const TICK: Duration = Duration::from_millis(200);
/// Extra wait after a report settles before it is decided: time for a rival
/// accepted just in time to be committed, by this or another instance. A
/// writer commits at most `MAX_BATCH_WORK` after it ran a job, so the margin
/// covers that and a slow flush. Correctness does not rest on it (a rival
/// committed later still withdraws the match, see
/// [`withdraw_outrun_matches`]); it keeps withdrawals rare.
pub const COMMIT_MARGIN_MS: i64 = 500;
const _: () = assert!(
    COMMIT_MARGIN_MS >= 4 * crate::writer::MAX_BATCH_WORK.as_millis() as i64,
    "a rival's commit should land well within the decision margin"
);
/// Decided reports are kept this long so both phones can read the outcome.
pub const DECIDED_RETENTION_MS: i64 = 60_000;
/// Longest long-poll of a report's status.
pub const MAX_WAIT_MS: u64 = 5_000;
/// A group this large is ambiguous whatever else joins it; stop exploring.
const MAX_GROUP: usize = 16;
/// Reports decided per job.
const DECIDE_BATCH: i64 = 100;
/// Most pending reports looked at around one instant.
const MAX_NEIGHBOURS: i64 = 64;

fn rules() -> MatcherConfig {
    MatcherConfig::default()
}

/// The earliest server time at which a report with this instant is decided.
pub fn decide_after_ms(instant_ms: i64) -> i64 {
    instant_ms + rules().settle_ms() + COMMIT_MARGIN_MS
}

fn refused(e: SubmitError) -> AppError {
    let code = match e {
        SubmitError::TooLate { .. }
        | SubmitError::FromTheFuture { .. }
        | SubmitError::Full { .. } => ErrorCode::BumpRejected,
        _ => ErrorCode::InvalidRequest,
    };
    let advice = if code == ErrorCode::BumpRejected {
        "; bump again"
    } else {
        ""
    };
    AppError::new(code, format!("bump report refused: {e}{advice}"))
}

// ------------------------------------------------------------------ submit

pub async fn submit(State(state): State<Arc<AppState>>, caller: Caller) -> AppResult<Response> {
    let mut req: SubmitBumpRequest = caller.signed.json()?;
    matching::candidate(&req.report).map_err(refused)?;
    if let Some(amount) = req.report.amount {
        ledger::check_amount(amount, state.config.max_amount)?;
    }
    req.memo = ledger::check_memo(&req.memo)?;
    let public_id = format!("b_{}", random_hex(&state.rng, 16));
    let view = write_signed(&state, caller.signed, move |_st, conn| {
        Box::pin(async move {
            outcome(
                async {
                    let now = now_ms();
                    submit_job(conn, caller.account_id, &public_id, &req, now).await?;
                    Ok(read_view(&mut *conn, &public_id, caller.account_id).await?)
                }
                .await,
            )
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn submit_job(
    conn: &mut AnyConnection,
    account: i64,
    public_id: &str,
    req: &SubmitBumpRequest,
    now: i64,
) -> AppResult<()> {
    let rules = rules();
    // Timing is judged inside the job, at the time the row is written.
    matching::check_timing(&rules, &req.report, now).map_err(refused)?;
    let pending: i64 = sqlx::query("SELECT COUNT(*) FROM bump_reports WHERE state = 'pending'")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if pending >= rules.capacity as i64 {
        return Err(refused(SubmitError::Full {
            capacity: rules.capacity,
        }));
    }
    // One bump at a time per phone: a new report replaces the account's
    // pending ones, so a retried report cannot compete with itself.
    sqlx::query(
        "UPDATE bump_reports SET state = 'expired', decided_at = $1 WHERE account_id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(account)
    .execute(&mut *conn)
    .await?;
    let report = &req.report;
    let id: i64 = sqlx::query(
        "INSERT INTO bump_reports (public_id, account_id, role, amount, memo, instant_ms, report, state, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) RETURNING id",
    )
    .bind(public_id)
    .bind(account)
    .bind(role_str(report.role))
    .bind(report.amount)
    .bind(&req.memo)
    .bind(report.instant_ms)
    .bind(serde_json::to_string(report).expect("wire types serialise"))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    // A new report can only add links, so a group of three is ambiguous now.
    let me = StoredReport::load(&mut *conn, id).await?;
    let group = group_of(conn, &rules, me).await?;
    if group.len() >= 3 || rival_of_told_again(conn, &rules, &group).await? {
        flip(conn, &group, "ambiguous", now).await?;
    }
    withdraw_outrun_matches(conn, &rules, &group[0], now).await
}

/// Whether a report of `group` is a plausible partner of a report already
/// told to bump again (the matcher's rule: such phones stay visible to
/// rivals until they settle, and a rival bumps again too; with one of them
/// out of the picture, two leftovers could look like each other's only
/// candidate). Only reports within `max_time_diff_ms` are read, so a phone's
/// own earlier bump never counts.
async fn rival_of_told_again(
    conn: &mut AnyConnection,
    rules: &MatcherConfig,
    group: &[StoredReport],
) -> AppResult<bool> {
    for member in group {
        let told_again =
            reports_near(conn, rules, "ambiguous", member.candidate.instant_ms()).await?;
        if told_again.iter().any(|other| {
            other.account != member.account
                && matching::plausible(rules, &member.candidate, &other.candidate).is_some()
        }) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A report that reaches the database after a plausible partner of it was
/// already matched (its commit was slow, on this instance or another) makes
/// that match a guess: the match is withdrawn while its request is still
/// unpaid, and every phone involved bumps again.
///
/// This is what keeps decisions right whatever the timing. Whichever of
/// this job and the deciding job commits first, the other one sees it: a
/// decision committed before this job's reads shows here as `matched` rows;
/// one still uncommitted holds locks on the rows this job's `flip` changes
/// (PostgreSQL) or the write lock (SQLite), so this job waits and then reads
/// it; and a decision that starts after this job committed sees this report.
/// (`COMMIT_MARGIN_MS` only makes withdrawals rare.)
async fn withdraw_outrun_matches(
    conn: &mut AnyConnection,
    rules: &MatcherConfig,
    late: &StoredReport,
    now: i64,
) -> AppResult<()> {
    let mut withdrawn: Vec<i64> = Vec::new();
    let mut outrun = false;
    let matched = reports_near(conn, rules, "matched", late.candidate.instant_ms()).await?;
    for report in matched {
        if matching::plausible(rules, &late.candidate, &report.candidate).is_none() {
            continue;
        }
        let parties = sqlx::query(
            "SELECT t.seq, t.debit_account, t.credit_account
             FROM bump_reports b JOIN transfers t ON t.seq = b.transfer_seq WHERE b.id = $1",
        )
        .bind(report.id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::Internal, "a matched bump report has no claim"))?;
        let (seq, payer, payee): (i64, i64, i64) = (
            parties.try_get(0)?,
            parties.try_get(1)?,
            parties.try_get(2)?,
        );
        if late.account == payer || late.account == payee {
            // A phone of the match reporting its bump again is no rival.
            continue;
        }
        outrun = true;
        // Both reports of a match may lie near; withdraw it once.
        if !withdrawn.contains(&seq) {
            withdrawn.push(seq);
            withdraw_match(conn, seq, payer, now).await?;
        }
    }
    if outrun {
        flip(conn, std::slice::from_ref(late), "ambiguous", now).await?;
    }
    Ok(())
}

/// Voids the request a match created, if the payer has not paid it yet,
/// and tells both phones to bump again. A paid request stands: the payer
/// confirmed the payee's name and amount on the phone.
async fn withdraw_match(conn: &mut AnyConnection, seq: i64, payer: i64, now: i64) -> AppResult<()> {
    if !ledger::void_if_pending(conn, seq, VoidReason::Withdrawn, now).await? {
        return Ok(());
    }
    sqlx::query(
        "UPDATE bump_reports SET state = 'ambiguous', decided_at = $1 WHERE transfer_seq = $2 AND state = 'matched'",
    )
    .bind(now)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    ledger::notify(conn, payer, NotificationKind::ClaimCancelled, seq, now).await
}

// ------------------------------------------------------------------ status

#[derive(Deserialize)]
pub struct StatusQuery {
    wait_ms: Option<u64>,
}

/// A report's outcome; with `wait_ms`, waits up to that long (at most
/// [`MAX_WAIT_MS`]) while it is pending.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<StatusQuery>, QueryRejection>,
    caller: Caller,
) -> AppResult<Json<BumpReportView>> {
    let Query(q) = query.map_err(|e| AppError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let deadline = Instant::now() + Duration::from_millis(q.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    let me = caller.account_id;
    consume_nonce(&state, caller.signed).await?;
    loop {
        // A connection only for the read: waiting phones must not hold the
        // read pool.
        let view = read_view(&mut *state.db.pool.acquire().await?, &id, me).await?;
        let pending = matches!(view.outcome, BumpOutcome::Pending { .. });
        if !pending || Instant::now() >= deadline {
            return Ok(Json(view));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_view(
    conn: &mut AnyConnection,
    public_id: &str,
    account: i64,
) -> AppResult<BumpReportView> {
    let row = sqlx::query(
        "SELECT role, state, instant_ms, transfer_seq FROM bump_reports WHERE public_id = $1 AND account_id = $2",
    )
    .bind(public_id)
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        AppError::new(
            ErrorCode::NotFound,
            format!("no bump report {public_id:?} of yours (decided reports are kept a minute)"),
        )
    })?;
    let role = parse_role(&row.try_get::<String, _>(0)?)?;
    let state: String = row.try_get(1)?;
    let outcome = match state.as_str() {
        "pending" => BumpOutcome::Pending {
            decide_after_ms: decide_after_ms(row.try_get(2)?),
        },
        "matched" => {
            let seq: i64 = row.try_get::<Option<i64>, _>(3)?.ok_or_else(|| {
                AppError::new(ErrorCode::Internal, "a matched bump report has no claim")
            })?;
            match role {
                BumpRole::Payer => BumpOutcome::Confirm {
                    request: super::request_view(&mut *conn, seq, Viewer::Payer).await?,
                },
                BumpRole::Payee => BumpOutcome::RequestSent {
                    request: super::request_view(&mut *conn, seq, Viewer::Payee).await?,
                },
            }
        }
        "ambiguous" => BumpOutcome::BumpAgain,
        _ => BumpOutcome::Expired,
    };
    Ok(BumpReportView {
        report_id: public_id.to_string(),
        outcome,
    })
}

// ---------------------------------------------------------------- deciding

/// A pending report as stored, decoded for comparison.
struct StoredReport {
    id: i64,
    account: i64,
    memo: String,
    candidate: Pending,
}

impl StoredReport {
    const COLUMNS: &'static str = "id, account_id, memo, report";

    fn from_row(row: &sqlx::any::AnyRow) -> AppResult<StoredReport> {
        let text: String = row.try_get(3)?;
        let report: BumpReport = serde_json::from_str(&text).map_err(|e| {
            AppError::new(ErrorCode::Internal, format!("a stored bump report: {e}"))
        })?;
        let candidate = matching::candidate(&report).map_err(|e| {
            AppError::new(ErrorCode::Internal, format!("a stored bump report: {e}"))
        })?;
        Ok(StoredReport {
            id: row.try_get(0)?,
            account: row.try_get(1)?,
            memo: row.try_get(2)?,
            candidate,
        })
    }

    async fn load(conn: &mut AnyConnection, id: i64) -> AppResult<StoredReport> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM bump_reports WHERE id = $1",
            Self::COLUMNS
        ))
        .bind(id)
        .fetch_one(conn)
        .await?;
        Self::from_row(&row)
    }
}

/// Reports in `state` whose instants lie within `rules.max_time_diff_ms` of
/// `instant_ms`.
async fn reports_near(
    conn: &mut AnyConnection,
    rules: &MatcherConfig,
    state: &str,
    instant_ms: i64,
) -> AppResult<Vec<StoredReport>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM bump_reports WHERE state = $1 AND instant_ms >= $2 AND instant_ms <= $3
         ORDER BY id LIMIT $4",
        StoredReport::COLUMNS
    ))
    .bind(state)
    .bind(instant_ms - rules.max_time_diff_ms)
    .bind(instant_ms + rules.max_time_diff_ms)
    .bind(MAX_NEIGHBOURS)
    .fetch_all(conn)
    .await?;
    rows.iter().map(StoredReport::from_row).collect()
}

/// Every pending report linked to `start` through plausible partners
/// (reports of one account never pair), `start` first.
async fn group_of(
    conn: &mut AnyConnection,
    rules: &MatcherConfig,
    start: StoredReport,
) -> AppResult<Vec<StoredReport>> {
    let mut group = vec![start];
    let mut next = 0;
    while next < group.len() && group.len() < MAX_GROUP {
        let instant = group[next].candidate.instant_ms();
        let near = reports_near(conn, rules, "pending", instant).await?;
        for other in near {
            let member = &group[next];
            let linked = other.account != member.account
                && !group.iter().any(|g| g.id == other.id)
                && matching::plausible(rules, &member.candidate, &other.candidate).is_some();
            if linked {
                group.push(other);
            }
        }
        next += 1;
    }
    Ok(group)
}

/// Moves the still-pending reports among `reports` to `to`; returns how many
/// changed. The state guard is what makes a decision happen once.
async fn flip(
    conn: &mut AnyConnection,
    reports: &[StoredReport],
    to: &str,
    now: i64,
) -> AppResult<u64> {
    // Rows are locked in id order, so two overlapping jobs never deadlock.
    let mut ids: Vec<i64> = reports.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let mut changed = 0;
    for id in ids {
        changed += sqlx::query(
            "UPDATE bump_reports SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'pending'",
        )
        .bind(to)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(changed)
}

/// Decides every report settled by `now`: expires those with no partner,
/// matches settled pairs (creating the claim), and declares larger groups
/// ambiguous. Returns how many reports it decided.
pub async fn decide_due(state: &AppState, conn: &mut AnyConnection, now: i64) -> AppResult<usize> {
    let rules = rules();
    let cutoff = now - rules.settle_ms() - COMMIT_MARGIN_MS;
    let rows = sqlx::query(&format!(
        "SELECT {} FROM bump_reports WHERE state = 'pending' AND instant_ms <= $1 ORDER BY instant_ms LIMIT $2",
        StoredReport::COLUMNS
    ))
    .bind(cutoff)
    .bind(DECIDE_BATCH)
    .fetch_all(&mut *conn)
    .await?;
    let mut decided = 0;
    for row in &rows {
        let report = StoredReport::from_row(row)?;
        let still_pending =
            sqlx::query("SELECT 1 FROM bump_reports WHERE id = $1 AND state = 'pending'")
                .bind(report.id)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
        if !still_pending {
            continue; // decided with a partner earlier in this loop
        }
        let group = group_of(conn, &rules, report).await?;
        decided += match group.len() {
            1 => flip(conn, &group, "expired", now).await? as usize,
            2 if group.iter().all(|r| r.candidate.instant_ms() <= cutoff) => {
                match_pair(state, conn, &group, now).await?
            }
            2 => 0, // the partner may still get a rival
            _ => flip(conn, &group, "ambiguous", now).await? as usize,
        };
    }
    Ok(decided)
}

/// Flips a payer and a payee to `matched` and creates the claim, or does
/// nothing if another decider got there first.
async fn match_pair(
    state: &AppState,
    conn: &mut AnyConnection,
    pair: &[StoredReport],
    now: i64,
) -> AppResult<usize> {
    let (payer, payee) = match pair[0].candidate.role() {
        BumpRole::Payer => (&pair[0], &pair[1]),
        BumpRole::Payee => (&pair[1], &pair[0]),
    };
    let amount = payee
        .candidate
        .amount()
        .ok_or_else(|| AppError::new(ErrorCode::Internal, "a payee report without amount"))?;
    conn.execute("SAVEPOINT bump_match").await?;
    if flip(conn, pair, "matched", now).await? != 2 {
        conn.execute("ROLLBACK TO SAVEPOINT bump_match; RELEASE SAVEPOINT bump_match")
            .await?;
        return Ok(0);
    }
    let request = PairedRequest {
        payer: payer.account,
        payee: payee.account,
        amount,
        memo: &payee.memo,
        method: Method::Bump,
    };
    let seq = super::create_request(state, conn, &request, now).await?;
    sqlx::query("UPDATE bump_reports SET transfer_seq = $1 WHERE id = $2 OR id = $3")
        .bind(seq)
        .bind(payer.id)
        .bind(payee.id)
        .execute(&mut *conn)
        .await?;
    conn.execute("RELEASE SAVEPOINT bump_match").await?;
    Ok(2)
}

/// Runs [`decide_due`] every [`TICK`] while the server runs. Each instance
/// runs its own; the state guards make their decisions agree.
pub fn spawn_decider(state: Arc<AppState>) {
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            let cutoff = now_ms() - rules().settle_ms() - COMMIT_MARGIN_MS;
            let due = sqlx::query(
                "SELECT 1 FROM bump_reports WHERE state = 'pending' AND instant_ms <= $1 LIMIT 1",
            )
            .bind(cutoff)
            .fetch_optional(&state.db.pool)
            .await;
            match due {
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "bump decider cannot read; will retry");
                    continue;
                }
            }
            let st = state.clone();
            let result = state
                .writer
                .run(move |conn| {
                    Box::pin(
                        async move { Outcome::from_result(decide_due(&st, conn, now_ms()).await) },
                    )
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = ?e, "bump decisions failed; will retry");
            }
        }
    });
}

pub(super) async fn forget_decided(conn: &mut AnyConnection, now: i64) -> AppResult<()> {
    sqlx::query("DELETE FROM bump_reports WHERE state <> 'pending' AND decided_at < $1")
        .bind(now - DECIDED_RETENTION_MS)
        .execute(conn)
        .await?;
    Ok(())
}

fn role_str(role: BumpRole) -> &'static str {
    match role {
        BumpRole::Payer => "payer",
        BumpRole::Payee => "payee",
    }
}

fn parse_role(text: &str) -> AppResult<BumpRole> {
    match text {
        "payer" => Ok(BumpRole::Payer),
        "payee" => Ok(BumpRole::Payee),
        other => Err(AppError::new(
            ErrorCode::Internal,
            format!("unknown bump role {other:?} in the database"),
        )),
    }
}
