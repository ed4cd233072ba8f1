//! The records and enums the `Wallet` hands out (see `clink_core::wallet`).
//!
//! Core types made only of FFI-ready fields are exported as they are, with
//! `#[uniffi::remote]`: the declarations below restate them, and the build
//! fails if they ever differ from the core's. Types that hold a core
//! `PhoneNumber` (a transfer's counterpart) are mirrored, with the number as
//! its E.164 string.

use clink_core::wallet as core;
pub use clink_core::wallet::{
    AccountSummary, ClockOffset, Draft, DraftKind, KnownPayee, OutboxItem, OutboxState,
    PendingWithdrawal, Reason, RegistrationStarted, SyncReport,
};
use clink_core::wire;
pub use clink_core::wire::{Direction, ErrorCode, TransferKind, TransferState, VoidReason};

/// What went wrong on the server, in a form a program can act on.
#[uniffi::remote(Enum)]
pub enum ErrorCode {
    MalformedJson,
    InvalidRequest,
    InvalidPhoneNumber,
    InvalidAmount,
    AmountTooLarge,
    InvalidPin,
    InvalidDisplayName,
    InvalidMemo,
    InvalidAvatarEmoji,
    InvalidAvatarPicture,
    AvatarPictureTooLarge,
    NotFound,
    Unauthenticated,
    BadSignature,
    StaleTimestamp,
    ReplayedNonce,
    RegistrationNotFound,
    WrongCode,
    CodeExpired,
    AlreadyRegistered,
    TooManyRequests,
    UnknownPayee,
    SelfTransfer,
    InsufficientFunds,
    WrongPin,
    AccountLocked,
    SecondFactorRequired,
    ClaimNotPending,
    ClaimExpired,
    Forbidden,
    IdempotencyKeyReused,
    OcraKeyNotRegistered,
    ChallengeNotFound,
    ChallengeUsed,
    ChallengeExpired,
    WrongChallengeResponse,
    InvalidDialString,
    UnknownCaller,
    OriginatorNotCaller,
    BumpRejected,
    PairingWithdrawn,
    TokenUnknown,
    TokenUsed,
    TokenExpired,
    InvalidOrder,
    ItemsDoNotAddUp,
    UnknownMerchant,
    MerchantNotLinked,
    MethodNotAllowed,
    PayloadTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    HeadersTooLarge,
    Unavailable,
    Internal,
}

/// Whether a draft pays someone or asks someone for money.
#[uniffi::remote(Enum)]
pub enum DraftKind {
    /// Pay someone.
    Send,
    /// Ask someone for money (a claim on the server).
    Request,
}

/// An editable, deletable remittance not yet confirmed.
#[uniffi::remote(Record)]
pub struct Draft {
    pub id: i64,
    pub kind: DraftKind,
    /// The payee (send) or payer (request), as the user typed the number.
    pub counterparty: String,
    pub amount: i64,
    pub memo: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Where a confirmed remittance is on its way to the server:
/// `queued → sending → accepted | rejected | needs_action`, and
/// `needs_action → queued` when the user confirms it again.
#[uniffi::remote(Enum)]
pub enum OutboxState {
    /// Confirmed by the user, waiting for a connection.
    Queued,
    /// Handed to the network at least once; the answer is not recorded yet.
    Sending,
    /// The server posted it (or recorded the request).
    Accepted,
    /// The server refused it for good; the reason is kept with the item.
    Rejected,
    /// Refused for a reason the user can fix (wrong PIN, locked account,
    /// confirmation too old): `requeue` it with the PIN.
    NeedsAction,
}

/// Why the server refused an outbox item.
#[uniffi::remote(Record)]
pub struct Reason {
    pub code: ErrorCode,
    pub message: String,
}

/// A confirmed remittance and where it is on its way to the server.
#[uniffi::remote(Record)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: DraftKind,
    pub counterparty: String,
    pub amount: i64,
    pub memo: String,
    /// Fixed when the item was queued; every retry uses it.
    pub idempotency_key: String,
    pub state: OutboxState,
    /// Set when the item is rejected or needs action.
    pub reason: Option<Reason>,
    /// The server's transfer, once accepted.
    pub transfer_id: Option<String>,
    pub queued_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Someone this wallet has paid.
#[uniffi::remote(Record)]
pub struct KnownPayee {
    /// E.164.
    pub phone: String,
    pub display_name: String,
}

/// Who this wallet is, as last confirmed by the server.
#[uniffi::remote(Record)]
pub struct AccountSummary {
    /// E.164.
    pub phone: String,
    pub display_name: String,
    /// As of the last sync, in minor units.
    pub balance: i64,
    pub currency_code: String,
    pub currency_exponent: u8,
    /// Sends and approvals above this amount need the second factor as well
    /// as the PIN; null: the PIN alone.
    pub second_factor_above: Option<i64>,
    /// Whether this install's second-factor key is registered with the server.
    pub second_factor_registered: bool,
}

/// A withdrawal the user confirmed that has no answer from the server yet:
/// `withdraw` the same amount again to finish it (it is done once).
#[uniffi::remote(Record)]
pub struct PendingWithdrawal {
    pub amount: i64,
    /// Fixed when the user confirmed; every retry uses it.
    pub idempotency_key: String,
    pub committed_at_ms: i64,
}

/// A registration code is on its way to the phone.
#[uniffi::remote(Record)]
pub struct RegistrationStarted {
    /// The number as the server understood it (E.164).
    pub phone: String,
    pub code_expires_at_ms: i64,
}

/// What one `sync_now` did.
#[uniffi::remote(Record)]
pub struct SyncReport {
    pub accepted: u32,
    pub rejected: u32,
    pub needs_action: u32,
    /// Sent but not answered for good; they go again next sync.
    pub still_sending: u32,
    pub new_requests: u32,
    pub balance: i64,
}

/// Server time minus local time, and the round trip it was measured over
/// (the error is at most half of it).
#[uniffi::remote(Record)]
pub struct ClockOffset {
    pub offset_ms: i64,
    pub round_trip_ms: i64,
}

#[uniffi::remote(Enum)]
pub enum TransferKind {
    Send,
    Claim,
    Deposit,
    Withdrawal,
    Refund,
}

/// `pending → posted | voided`; a posted transfer never changes again.
#[uniffi::remote(Enum)]
pub enum TransferState {
    Pending,
    Posted,
    Voided,
}

/// Why a pending transfer (a request) was voided.
#[uniffi::remote(Enum)]
pub enum VoidReason {
    Declined,
    Cancelled,
    Expired,
    /// Another phone reported the same bump late: bump again.
    Withdrawn,
}

#[uniffi::remote(Enum)]
pub enum Direction {
    /// Money comes to the viewer.
    Incoming,
    /// Money leaves the viewer.
    Outgoing,
}

/// The other side of a transfer as the viewer may see it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Counterpart {
    pub display_name: String,
    /// E.164; absent where the viewer must not learn the number.
    pub phone: Option<String>,
}

/// A transfer (or a request) as one of its parties sees it.
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
