//! `WalletError` (Kotlin `WalletException`): the core's `WalletError` sorted
//! into the cases an app handles differently. Every variant carries
//! `description`, the core's sentence for people and logs.
//!
//! A field the wallet checks locally and the server checks again (phone
//! number, amount, PIN, memo, display name) is one variant whichever side
//! refused it, so the app shows the same message for both.

use clink_core::wallet as core;
use clink_core::wallet::{
    FIELD_AVATAR_EMOJI, FIELD_AVATAR_PICTURE, FIELD_DISPLAY_NAME, FIELD_MEMO,
};
use clink_core::wire::ErrorCode;

/// The field names the core's `WalletError::InvalidInput` uses.
const FIELD_PHONE: &str = "phone number";
const FIELD_AMOUNT: &str = "amount";
const FIELD_PIN: &str = "PIN";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum WalletError {
    /// Not a phone number (refused by the wallet or by the server).
    #[error("{description}")]
    InvalidPhoneNumber { reason: String, description: String },
    /// Not a positive amount (refused by the wallet or by the server).
    #[error("{description}")]
    InvalidAmount { reason: String, description: String },
    /// Not 4 to 12 digits (refused by the wallet or by the server).
    #[error("{description}")]
    InvalidPin { reason: String, description: String },
    /// A memo with invisible, direction-changing or control characters, or
    /// too long (refused by the wallet or by the server); `reason` names the
    /// character and its position.
    #[error("{description}")]
    InvalidMemo { reason: String, description: String },
    /// A display name that could mislead: invisible or direction-changing
    /// characters, mixed scripts, stray spaces (refused by the wallet or by
    /// the server).
    #[error("{description}")]
    InvalidDisplayName { reason: String, description: String },
    /// An avatar emoji that is not one emoji, or a picture that is not PNG
    /// or JPEG or is over 32 KiB (refused by the wallet or by the server);
    /// `field` is "avatar emoji" or "avatar picture".
    #[error("{description}")]
    InvalidAvatar {
        field: String,
        reason: String,
        description: String,
    },
    /// Any other field refused by the wallet (e.g. a sample rate).
    #[error("{description}")]
    InvalidInput {
        field: String,
        reason: String,
        description: String,
    },
    /// The PIN was wrong; this many more wrong PINs lock payments.
    #[error("{description}")]
    WrongPin {
        attempts_remaining: Option<u32>,
        description: String,
    },
    /// Too many wrong PINs: payments are locked until then.
    #[error("{description}")]
    Locked {
        locked_until_ms: Option<i64>,
        description: String,
    },
    #[error("{description}")]
    InsufficientFunds { description: String },
    /// The second-factor answer was wrong; wrong answers and wrong PINs
    /// share one lockout counter.
    #[error("{description}")]
    WrongChallengeResponse {
        attempts_remaining: Option<u32>,
        description: String,
    },
    /// The payment needs the second factor and this install has no key
    /// registered: `register_second_factor` with the PIN, then confirm again.
    #[error("{description}")]
    SecondFactorNotRegistered { description: String },
    /// A withdrawal of `amount` has no answer yet: withdraw that amount again
    /// to finish it before a new one.
    #[error("{description}")]
    WithdrawalPending { amount: i64, description: String },
    /// No such request (or transfer) for this user: e.g. cancelling a
    /// request someone else made.
    #[error("{description}")]
    NotFound { description: String },
    /// The request was already paid, declined or cancelled.
    #[error("{description}")]
    RequestNotPending { description: String },
    /// The sound token was redeemed already (by this payer or another).
    #[error("{description}")]
    TokenUsed { description: String },
    /// The sound token is too old: the payee asks again.
    #[error("{description}")]
    TokenExpired { description: String },
    /// Not a token this server issued (garbled, forged, or another
    /// server's).
    #[error("{description}")]
    TokenUnknown { description: String },
    /// The bump's report came too late (or from a clock far ahead): bump
    /// again.
    #[error("{description}")]
    BumpRejected { description: String },
    /// Any other refusal by the server, with its code.
    #[error("{description}")]
    Refused {
        code: ErrorCode,
        /// The server's own words.
        reason: String,
        description: String,
    },
    /// The server cannot be reached; everything queued is kept.
    #[error("{description}")]
    Offline { detail: String, description: String },
    /// Register and verify a phone number first.
    #[error("{description}")]
    NotRegistered { description: String },
    /// `verify` before `register`.
    #[error("{description}")]
    NoPendingRegistration { description: String },
    #[error("{description}")]
    DraftNotFound { id: i64, description: String },
    #[error("{description}")]
    OutboxItemNotFound { id: i64, description: String },
    /// The outbox item is not in a state that allows this (e.g. `requeue` of
    /// an item that does not need action).
    #[error("{description}")]
    WrongItemState {
        id: i64,
        detail: String,
        description: String,
    },
    /// The wallet's local database failed.
    #[error("{description}")]
    Storage { detail: String, description: String },
    /// The app's secret store failed, or a sealed item could not be opened.
    #[error("{description}")]
    Secrets { detail: String, description: String },
    /// The server's answer was not understood.
    #[error("{description}")]
    Protocol { detail: String, description: String },
}

impl From<core::WalletError> for WalletError {
    fn from(error: core::WalletError) -> Self {
        use core::WalletError as E;
        let description = error.to_string();
        match error {
            E::InvalidInput { field, reason } => match field.as_str() {
                FIELD_PHONE => WalletError::InvalidPhoneNumber {
                    reason,
                    description,
                },
                FIELD_AMOUNT => WalletError::InvalidAmount {
                    reason,
                    description,
                },
                FIELD_PIN => WalletError::InvalidPin {
                    reason,
                    description,
                },
                FIELD_MEMO => WalletError::InvalidMemo {
                    reason,
                    description,
                },
                FIELD_DISPLAY_NAME => WalletError::InvalidDisplayName {
                    reason,
                    description,
                },
                FIELD_AVATAR_EMOJI | FIELD_AVATAR_PICTURE => WalletError::InvalidAvatar {
                    field,
                    reason,
                    description,
                },
                _ => WalletError::InvalidInput {
                    field,
                    reason,
                    description,
                },
            },
            E::Refused {
                code,
                message,
                attempts_remaining,
                locked_until_ms,
            } => match code {
                ErrorCode::InvalidPhoneNumber => WalletError::InvalidPhoneNumber {
                    reason: message,
                    description,
                },
                ErrorCode::InvalidAmount => WalletError::InvalidAmount {
                    reason: message,
                    description,
                },
                ErrorCode::InvalidPin => WalletError::InvalidPin {
                    reason: message,
                    description,
                },
                ErrorCode::InvalidMemo => WalletError::InvalidMemo {
                    reason: message,
                    description,
                },
                ErrorCode::InvalidDisplayName => WalletError::InvalidDisplayName {
                    reason: message,
                    description,
                },
                ErrorCode::InvalidAvatarEmoji => WalletError::InvalidAvatar {
                    field: FIELD_AVATAR_EMOJI.into(),
                    reason: message,
                    description,
                },
                ErrorCode::InvalidAvatarPicture | ErrorCode::AvatarPictureTooLarge => {
                    WalletError::InvalidAvatar {
                        field: FIELD_AVATAR_PICTURE.into(),
                        reason: message,
                        description,
                    }
                }
                ErrorCode::WrongPin => WalletError::WrongPin {
                    attempts_remaining,
                    description,
                },
                ErrorCode::AccountLocked => WalletError::Locked {
                    locked_until_ms,
                    description,
                },
                ErrorCode::InsufficientFunds => WalletError::InsufficientFunds { description },
                ErrorCode::WrongChallengeResponse => WalletError::WrongChallengeResponse {
                    attempts_remaining,
                    description,
                },
                ErrorCode::OcraKeyNotRegistered => {
                    WalletError::SecondFactorNotRegistered { description }
                }
                ErrorCode::NotFound => WalletError::NotFound { description },
                ErrorCode::ClaimNotPending => WalletError::RequestNotPending { description },
                ErrorCode::TokenUsed => WalletError::TokenUsed { description },
                ErrorCode::TokenExpired => WalletError::TokenExpired { description },
                ErrorCode::TokenUnknown => WalletError::TokenUnknown { description },
                ErrorCode::BumpRejected => WalletError::BumpRejected { description },
                code => WalletError::Refused {
                    code,
                    reason: message,
                    description,
                },
            },
            E::Offline { detail } => WalletError::Offline {
                detail,
                description,
            },
            E::NotRegistered => WalletError::NotRegistered { description },
            E::NoPendingRegistration => WalletError::NoPendingRegistration { description },
            E::DraftNotFound { id } => WalletError::DraftNotFound { id, description },
            E::OutboxItemNotFound { id } => WalletError::OutboxItemNotFound { id, description },
            E::WrongItemState { id, detail } => WalletError::WrongItemState {
                id,
                detail,
                description,
            },
            E::Storage { detail } => WalletError::Storage {
                detail,
                description,
            },
            E::Secrets { detail } => WalletError::Secrets {
                detail,
                description,
            },
            E::Protocol { detail } => WalletError::Protocol {
                detail,
                description,
            },
            E::SecondFactorNotRegistered => WalletError::SecondFactorNotRegistered { description },
            E::WithdrawalPending { amount } => WalletError::WithdrawalPending {
                amount,
                description,
            },
        }
    }
}
