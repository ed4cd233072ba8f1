//! `POST /v1/sync`: a phone's outbox in one request.
//!
//! Each item is a send or a claim that the device signed when the user
//! confirmed it (possibly hours earlier, offline). The sync request itself is
//! signed as usual (fresh timestamp and nonce); each item carries its own
//! signature over the canonical message of the single request it stands for
//! (`POST` to [`paths::SEND`](super::paths::SEND) or
//! [`paths::CLAIMS`](super::paths::CLAIMS), with `body` as the body bytes,
//! `signed_at_ms` as the timestamp and the idempotency key as the nonce). So
//! the server can tell the user confirmed that exact item, with that key,
//! without the five-minute window that a fresh request must meet.

use serde::{Deserialize, Serialize};

use super::{ApiError, Inbox, Millis, TransferView};

/// Most items one sync request may carry.
pub const MAX_SYNC_ITEMS: usize = 500;

/// How old an item's signature may be. Shorter than the server's idempotency
/// retention (48 h), so a replayed item always meets its stored result and
/// can never be executed twice.
pub const MAX_ITEM_AGE_MS: i64 = 24 * 3600 * 1000;

/// What an item asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncItemKind {
    /// Body is a [`SendRequest`](super::SendRequest).
    Send,
    /// Body is a [`ClaimRequest`](super::ClaimRequest).
    Claim,
}

impl SyncItemKind {
    /// The path of the single request an item stands for; part of what is signed.
    pub fn path(self) -> &'static str {
        match self {
            SyncItemKind::Send => super::paths::SEND,
            SyncItemKind::Claim => super::paths::CLAIMS,
        }
    }
}

/// One queued remittance, signed at queue time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncItem {
    pub kind: SyncItemKind,
    /// The exact JSON body of the single request, as signed.
    pub body: String,
    pub signed_at_ms: Millis,
    /// Ed25519 signature (base64url) by the device key; see the module docs.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Inbox notifications after this cursor come back with the answer.
    pub inbox_after: i64,
    /// At most [`MAX_SYNC_ITEMS`].
    pub items: Vec<SyncItem>,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Done now or earlier (the same view either way).
    Accepted { transfer: TransferView },
    /// Refused; the error says why (`insufficient_funds`, `wrong_pin`, …).
    Rejected { error: ApiError },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncItemResult {
    /// The item's idempotency key, or `""` when its body could not be read.
    pub idempotency_key: String,
    #[serde(flatten)]
    pub outcome: SyncOutcome,
}

/// One result per item, in the request's order, then the inbox and balance
/// after every item ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub results: Vec<SyncItemResult>,
    pub inbox: Inbox,
    pub balance: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorCode;

    #[test]
    fn results_round_trip_through_json_with_their_outcome_tag() {
        let rejected = SyncItemResult {
            idempotency_key: "k1".into(),
            outcome: SyncOutcome::Rejected {
                error: ApiError::new(ErrorCode::InsufficientFunds, "no money"),
            },
        };
        let json = serde_json::to_value(&rejected).unwrap();
        assert_eq!(json["outcome"], "rejected");
        assert_eq!(json["error"]["code"], "insufficient_funds");
        let back: SyncItemResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, rejected);
    }

    #[test]
    fn item_paths_are_the_single_request_paths() {
        assert_eq!(SyncItemKind::Send.path(), "/v1/transfers/send");
        assert_eq!(SyncItemKind::Claim.path(), "/v1/claims");
    }
}
