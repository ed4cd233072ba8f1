use serde::{Deserialize, Serialize};

use crate::phone::PhoneNumber;

/// An amount in integer minor units of the server's currency.
pub type Amount = i64;
/// Unix time in milliseconds.
pub type Millis = i64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeResponse {
    pub server_time_ms: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    pub database: String,
}

/// Step 1 of registration: a phone number and the device's Ed25519 public key
/// (32 bytes, base64url without padding). A one-time code goes to the phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub phone: String,
    pub public_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The number as the server understood it, in E.164.
    pub phone: PhoneNumber,
    pub code_expires_at_ms: Millis,
}

/// Step 2: the code, and who the user is. Must be signed with the key
/// registered in step 1, which proves the device holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub phone: String,
    pub code: String,
    pub display_name: String,
    pub pin: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency {
    /// ISO 4217 code, e.g. "JPY".
    pub code: String,
    /// Digits after the decimal point: 0 for JPY, 2 for EUR.
    pub exponent: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub phone: PhoneNumber,
    pub display_name: String,
    pub balance: Amount,
    pub currency: Currency,
    pub policy: SecurityPolicy,
}

/// What a user's payments must be confirmed with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Sends and approvals above this amount need a second factor as well as
    /// the PIN. `None`: the PIN alone is enough.
    #[serde(default)]
    pub second_factor_above: Option<Amount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Chosen by the phone when the user commits; a retry reuses it.
    pub idempotency_key: String,
    pub payee: String,
    pub amount: Amount,
    #[serde(default)]
    pub memo: String,
    pub pin: String,
    /// With `challenge_response`: the second factor, when the security policy
    /// asks for one (see `POST /v1/challenges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// The 8-digit OCRA answer to `challenge_id`'s challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_response: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub idempotency_key: String,
    /// Who is asked to pay.
    pub payer: String,
    pub amount: Amount,
    #[serde(default)]
    pub memo: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveClaimRequest {
    pub pin: String,
    /// The second factor, as in [`SendRequest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_response: Option<String>,
}

/// `POST /v1/operator/cash-in`: the operator credits a user with money it
/// received outside Clink (cash at a desk, a bank transfer it checked). The
/// only way money enters a balance other than a transfer from another user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashInRequest {
    /// Chosen by the operator's system once per real-world cash-in; a retry
    /// with the same key and body gets the same answer, at any later time.
    pub idempotency_key: String,
    /// The user's number, as typed.
    pub phone: String,
    pub amount: Amount,
    /// What the money is (a receipt or slip number): kept in the audit record.
    pub reference: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashInResponse {
    pub transfer_id: String,
    /// E.164.
    pub phone: String,
    /// The name the user registered, for the desk to check with the customer.
    pub display_name: String,
    pub amount: Amount,
    pub reference: String,
    pub created_at_ms: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    pub idempotency_key: String,
    pub amount: Amount,
    pub pin: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum TransferKind {
    Send,
    Claim,
    Deposit,
    Withdrawal,
    /// A merchant paying back (part of) a shop payment.
    Refund,
}

/// `pending → posted | voided`; a posted transfer never changes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum TransferState {
    Pending,
    Posted,
    Voided,
}

/// Why a pending transfer was voided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum VoidReason {
    Declined,
    Cancelled,
    Expired,
    /// The server withdrew a request made by pairing before it was paid:
    /// another phone's report of the same bump arrived after the match, so
    /// the match was a guess. Both phones bump again.
    Withdrawn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Direction {
    /// Money comes to the viewer.
    Incoming,
    /// Money leaves the viewer.
    Outgoing,
}

/// The other side of a transfer as the viewer may see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterpart {
    pub display_name: String,
    /// Absent where the viewer must not learn the number (system accounts;
    /// later, payments paired by bump or sound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
}

/// A transfer as one of its parties sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferView {
    pub id: String,
    pub kind: TransferKind,
    pub state: TransferState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub void_reason: Option<VoidReason>,
    pub direction: Direction,
    pub amount: Amount,
    pub counterpart: Counterpart,
    pub memo: String,
    pub created_at_ms: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<Millis>,
}

/// One page of history, newest first. Pass `next_before` back as `before`
/// for the next page; `None` means this was the last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub items: Vec<TransferView>,
    pub next_before: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    PaymentReceived,
    ClaimReceived,
    ClaimApproved,
    ClaimDeclined,
    ClaimCancelled,
    ClaimExpired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Increases with every notification; the inbox cursor.
    pub id: i64,
    pub kind: NotificationKind,
    pub transfer: TransferView,
    pub created_at_ms: Millis,
}

/// Claims waiting for the viewer's decision, and notifications after the
/// cursor the phone sent (one page of them). Send `cursor` back as `after`
/// next time; `has_more` says more notifications are waiting after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    pub pending_claims: Vec<TransferView>,
    pub notifications: Vec<Notification>,
    pub cursor: i64,
    /// Added after the first release: servers that predate it never send it
    /// (read as `false`), and clients that predate it ignore it.
    #[serde(default)]
    pub has_more: bool,
}

/// Changes the security policy; needs the PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicyRequest {
    #[serde(default)]
    pub second_factor_above: Option<Amount>,
    pub pin: String,
}
