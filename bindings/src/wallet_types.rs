//! The records and enums the `Wallet` hands out (see `clink_core::wallet`).
//!
//! Core and protocol types made only of FFI-ready fields carry their uniffi
//! derives themselves (feature `uniffi` of clink-core and clink-protocol,
//! which this crate turns on) and are re-exported here as they are; the
//! generated code has them in the core's and the protocol's own modules
//! (see bindings/bindgen.toml). Only types that hold a core `PhoneNumber` (a
//! transfer's counterpart, and what holds one) are mirrored here, with the
//! number as its E.164 string.

use clink_core::wallet as core;
pub use clink_core::wallet::{
    AccountSummary, ClockOffset, Draft, DraftKind, KnownPayee, OutboxItem, OutboxState,
    PendingWithdrawal, Reason, RegistrationStarted, SyncReport,
};
use clink_core::wire;
pub use clink_core::wire::{Direction, ErrorCode, TransferKind, TransferState, VoidReason};

/// The other side of a transfer as the viewer may see it.
// A mirror of `wire::Counterpart`: its phone number is a `PhoneNumber`
// there, an E.164 string here.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Counterpart {
    pub display_name: String,
    /// E.164; absent where the viewer must not learn the number.
    pub phone: Option<String>,
}

/// A transfer (or a request) as one of its parties sees it.
// A mirror of `wire::TransferView`, for its `Counterpart`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Transfer {
    pub id: String,
    pub kind: TransferKind,
    pub state: TransferState,
    pub void_reason: Option<VoidReason>,
    pub direction: Direction,
    /// Minor units.
    pub amount: i64,
    pub counterpart: Counterpart,
    pub memo: String,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    /// When a pending request expires.
    pub expires_at_ms: Option<i64>,
}

impl From<wire::TransferView> for Transfer {
    fn from(view: wire::TransferView) -> Self {
        Transfer {
            id: view.id,
            kind: view.kind,
            state: view.state,
            void_reason: view.void_reason,
            direction: view.direction,
            amount: view.amount,
            counterpart: Counterpart {
                display_name: view.counterpart.display_name,
                phone: view.counterpart.phone.map(|p| p.as_e164().to_string()),
            },
            memo: view.memo,
            created_at_ms: view.created_at_ms,
            decided_at_ms: view.decided_at_ms,
            expires_at_ms: view.expires_at_ms,
        }
    }
}

/// Something the UI may want to show at once.
// A mirror of `clink_core::wallet::WalletEvent`, for the `Transfer` a
// received request carries.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum WalletEvent {
    OutboxItemChanged { item_id: i64, state: OutboxState },
    RequestReceived { request: Transfer },
    BalanceChanged { balance: i64 },
}

impl From<core::WalletEvent> for WalletEvent {
    fn from(event: core::WalletEvent) -> Self {
        match event {
            core::WalletEvent::OutboxItemChanged { item_id, state } => {
                WalletEvent::OutboxItemChanged { item_id, state }
            }
            core::WalletEvent::RequestReceived { request } => WalletEvent::RequestReceived {
                request: request.into(),
            },
            core::WalletEvent::BalanceChanged { balance } => {
                WalletEvent::BalanceChanged { balance }
            }
        }
    }
}
