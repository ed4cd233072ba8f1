use serde::{Deserialize, Serialize};

/// What went wrong, in a form a program can act on. Serialised in snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ErrorCode {
    // The request itself.
    MalformedJson,
    InvalidRequest,
    InvalidPhoneNumber,
    InvalidAmount,
    AmountTooLarge,
    InvalidPin,
    /// A display name that could mislead (see `wire::text`): invisible or
    /// direction-changing characters, mixed scripts, stray spaces.
    InvalidDisplayName,
    /// A memo with invisible, direction-changing or control characters, or
    /// too long (see `wire::text`).
    InvalidMemo,
    /// An avatar emoji that is not one emoji (see `wire::avatar`).
    InvalidAvatarEmoji,
    /// An avatar picture that is not PNG or JPEG (or not base64).
    InvalidAvatarPicture,
    /// An avatar picture over `wire::avatar::MAX_PICTURE_BYTES` (413).
    AvatarPictureTooLarge,
    NotFound,
    // Authentication of the device.
    Unauthenticated,
    BadSignature,
    StaleTimestamp,
    ReplayedNonce,
    // Registration.
    RegistrationNotFound,
    WrongCode,
    CodeExpired,
    AlreadyRegistered,
    /// Too many registration codes asked for one number; see `retry_after_ms`.
    TooManyRequests,
    // Money.
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
    // Challenge-response (OCRA) second factor.
    OcraKeyNotRegistered,
    ChallengeNotFound,
    ChallengeUsed,
    ChallengeExpired,
    WrongChallengeResponse,
    // The telephone gateway.
    InvalidDialString,
    UnknownCaller,
    OriginatorNotCaller,
    // Pairing by bump and by sound.
    /// The bump report came too late, from the future, or when the server
    /// was full: bump again.
    BumpRejected,
    /// The request a bump created was withdrawn (another phone reported the
    /// same bump late): bump again.
    PairingWithdrawn,
    /// A sound token this server never issued (forged, garbled, or from
    /// another server).
    TokenUnknown,
    TokenUsed,
    TokenExpired,
    // Shops.
    /// An order's id or item lines are malformed (the message names the line).
    InvalidOrder,
    /// The item lines do not add up to the amount.
    ItemsDoNotAddUp,
    UnknownMerchant,
    /// A web shop charged a number whose owner has not linked that merchant.
    MerchantNotLinked,
    /// The shop's and the customer's statements of an order differ (the
    /// message names the field).
    OrderMismatch,
    // The HTTP request itself, refused before any handler reads it.
    /// The endpoint exists but not with this HTTP method (405; `Allow` lists
    /// the methods it takes).
    MethodNotAllowed,
    /// The body is larger than the endpoint accepts (413).
    PayloadTooLarge,
    /// The path and query are longer than the server reads (414).
    UriTooLong,
    /// The body is not JSON: its `Content-Type` names another format (415).
    UnsupportedMediaType,
    /// The header section is too large or has too many fields (431).
    HeadersTooLarge,
    // The server.
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code travels with.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson | InvalidRequest | InvalidPhoneNumber | InvalidAmount
            | AmountTooLarge | InvalidPin | InvalidDialString => 400,
            InvalidDisplayName | InvalidMemo => 400,
            InvalidAvatarEmoji | InvalidAvatarPicture => 400,
            AvatarPictureTooLarge => 413,
            Unauthenticated | BadSignature | StaleTimestamp | ReplayedNonce => 401,
            WrongPin => 403,
            Forbidden | SecondFactorRequired => 403,
            WrongChallengeResponse | OriginatorNotCaller => 403,
            NotFound | RegistrationNotFound | UnknownPayee => 404,
            ChallengeNotFound | UnknownCaller => 404,
            AlreadyRegistered | IdempotencyKeyReused | ClaimNotPending => 409,
            OcraKeyNotRegistered | ChallengeUsed => 409,
            CodeExpired | ClaimExpired | ChallengeExpired => 410,
            TokenUnknown => 404,
            TokenUsed | PairingWithdrawn => 409,
            TokenExpired => 410,
            InvalidOrder => 400,
            ItemsDoNotAddUp => 422,
            UnknownMerchant => 404,
            MerchantNotLinked => 403,
            OrderMismatch => 409,
            BumpRejected => 422,
            WrongCode | SelfTransfer | InsufficientFunds => 422,
            AccountLocked => 423,
            TooManyRequests => 429,
            MethodNotAllowed => 405,
            PayloadTooLarge => 413,
            UriTooLong => 414,
            UnsupportedMediaType => 415,
            HeadersTooLarge => 431,
            Unavailable => 503,
            Internal => 500,
        }
    }

    /// Whether the same request may succeed if simply sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Internal)
    }
}

/// The body of every error response: `{"code": "...", "message": "..."}`,
/// plus fields that only some codes carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// With `wrong_pin` or `wrong_challenge_response`: how many more wrong
    /// PINs or challenge responses lock the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// With `account_locked`: when payments unlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until_ms: Option<i64>,
    /// With `invalid_dial_string`: the 0-based character index in the dialed
    /// string where it went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// With `too_many_requests`: when the same request can succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            attempts_remaining: None,
            locked_until_ms: None,
            position: None,
            retry_after_ms: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.code.http_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_level_codes_travel_in_snake_case_with_their_own_status() {
        for (code, name, status) in [
            (ErrorCode::MethodNotAllowed, "method_not_allowed", 405),
            (ErrorCode::PayloadTooLarge, "payload_too_large", 413),
            (ErrorCode::UriTooLong, "uri_too_long", 414),
            (
                ErrorCode::UnsupportedMediaType,
                "unsupported_media_type",
                415,
            ),
            (ErrorCode::HeadersTooLarge, "headers_too_large", 431),
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), name);
            assert_eq!(code.http_status(), status, "{name}");
            assert!(!code.is_retryable(), "{name}: the same request fails again");
        }
    }
}
