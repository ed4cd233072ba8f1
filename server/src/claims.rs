//! Claims (requests for money): asking, and the payer approving or
//! declining, or the requester cancelling.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use clink_protocol::wire::*;
use sqlx::AnyConnection;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::http_errors::Path;
use crate::ledger::{self, Failure, StoredResponse, outcome};
use crate::money::{Counterparts, prepare_claim, run_money};
use crate::request::{respond, write_signed};
use crate::second_factor::{self, Proof};
use crate::shops::{self, ClaimOutcome::*};
use crate::{AppState, now_ms};

type St = State<Arc<AppState>>;

pub(crate) async fn create_claim(State(state): St, caller: Caller) -> AppResult<Response> {
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

pub(crate) async fn decide_claim(
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
    let (me, device) = (caller.account_id, caller.signed.public_key.clone());
    let response = write_signed(&state, caller.signed, move |st, conn| {
        Box::pin(async move {
            outcome(decide_claim_job(st, conn, me, &device, &id, action, approval).await)
        })
    })
    .await?;
    Ok(respond(response))
}

async fn decide_claim_job(
    state: &AppState,
    conn: &mut AnyConnection,
    me: i64,
    device: &str,
    id: &str,
    action: ClaimAction,
    approval: Option<ApproveClaimRequest>,
) -> Result<StoredResponse, Failure> {
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
        shops::on_claim_settled(conn, claim.seq, Voided(VoidReason::Expired), now).await?;
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
            shops::on_claim_settled(conn, claim.seq, Paid, now).await?;
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
            shops::on_claim_settled(conn, claim.seq, Voided(VoidReason::Declined), now).await?;
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
            shops::on_claim_settled(conn, claim.seq, Voided(VoidReason::Cancelled), now).await?;
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
