//! What the bump and sound flows share once a request exists.

use std::time::Duration;

use super::{Wallet, WalletError};
use crate::wire::{ErrorCode, TransferState, VoidReason};

/// How often a payee's flow looks at its request while the payer decides.
const DECISION_POLL: Duration = Duration::from_millis(300);

/// What the payer did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Paid,
    Declined,
    Expired,
    /// The server withdrew a bump's request before it was paid (another
    /// phone reported the same bump late).
    Withdrawn,
}

/// Whether a refusal means the request can no longer be decided.
pub(super) fn is_expired(e: &WalletError) -> bool {
    matches!(
        e,
        WalletError::Refused {
            code: ErrorCode::ClaimExpired,
            ..
        }
    )
}

/// Whether a refusal means the server withdrew the request (bump again).
pub(super) fn is_withdrawn(e: &WalletError) -> bool {
    matches!(
        e,
        WalletError::Refused {
            code: ErrorCode::PairingWithdrawn,
            ..
        }
    )
}

/// Polls the request `request_id` until the payer decided it, or
/// `timeout_ms` passed (`None`).
pub(super) async fn wait_for_decision(
    wallet: &Wallet,
    request_id: &str,
    timeout_ms: u64,
) -> Result<Option<Decision>, WalletError> {
    let client = wallet.registered_client()?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let view = client.transfer(request_id).await?;
        let decision = match (view.state, view.void_reason) {
            (TransferState::Pending, _) => None,
            (TransferState::Posted, _) => Some(Decision::Paid),
            (TransferState::Voided, Some(VoidReason::Declined)) => Some(Decision::Declined),
            (TransferState::Voided, Some(VoidReason::Withdrawn)) => Some(Decision::Withdrawn),
            (TransferState::Voided, _) => Some(Decision::Expired),
        };
        if decision.is_some() {
            wallet.store().request_decided(&view)?;
            return Ok(decision);
        }
        if tokio::time::Instant::now() + DECISION_POLL > deadline {
            return Ok(None);
        }
        tokio::time::sleep(DECISION_POLL).await;
    }
}
