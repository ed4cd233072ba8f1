//! The wire format between a Clink phone and the server.
//!
//! The server depends on this module, so both sides compile the same request,
//! response and error definitions and the format cannot drift. Amounts are
//! always integer minor units of the server's currency; times are Unix
//! milliseconds.

pub mod avatar;
mod bump;
mod error;
mod gateway;
mod pairing;
mod shop;
pub mod signing;
mod sync;
pub mod text;
mod types;

pub use avatar::{Avatar, SetAvatarRequest};
pub use bump::{BumpReport, BumpRole, CoarseLocation, ImpulseFeatures};
pub use error::{ApiError, ErrorCode};
pub use gateway::*;
pub use pairing::*;
pub use shop::*;
pub use sync::*;
pub use types::*;

/// Paths of the HTTP API, shared so client and server agree on them.
pub mod paths {
    pub const HEALTH: &str = "/health";
    pub const TIME: &str = "/v1/time";
    pub const REGISTER: &str = "/v1/register";
    pub const REGISTER_VERIFY: &str = "/v1/register/verify";
    pub const ME: &str = "/v1/me";
    pub const SEND: &str = "/v1/transfers/send";
    pub const WITHDRAW: &str = "/v1/transfers/withdraw";
    pub const HISTORY: &str = "/v1/history";
    pub const CLAIMS: &str = "/v1/claims";
    pub const INBOX: &str = "/v1/inbox";
    pub const POLICY: &str = "/v1/policy";
    /// The caller's avatar: `GET`, `PUT` (replace), `DELETE` (clear).
    pub const AVATAR: &str = "/v1/avatar";
    pub const OCRA_KEY: &str = "/v1/ocra-key";
    pub const CHALLENGES: &str = "/v1/challenges";
    pub const GATEWAY_CALLS: &str = "/v1/gateway/calls";
    pub const OPERATOR_CASH_IN: &str = "/v1/operator/cash-in";
    pub const SYNC: &str = "/v1/sync";
    pub const BUMPS: &str = "/v1/bumps";
    pub const SOUND_TOKENS: &str = "/v1/sound-tokens";
    pub const SOUND_TOKEN_REDEEM: &str = "/v1/sound-tokens/redeem";
    pub const MERCHANT_PAYMENTS: &str = "/v1/merchant/payments";
    pub const LINKED_MERCHANTS: &str = "/v1/merchants/linked";
    pub const OPERATOR_MERCHANTS: &str = "/v1/operator/merchants";

    /// A shop's payment request, by the shop's own order id.
    pub fn merchant_payment(merchant_order_id: &str) -> String {
        format!("{MERCHANT_PAYMENTS}/{merchant_order_id}")
    }

    pub const CHARGES: &str = "/v1/charges";
    pub const CUSTOMER_CODES: &str = "/v1/customer-codes";
    pub const MERCHANT_UNDELIVERED_EVENTS: &str = "/v1/merchant/events/undelivered";

    pub fn operator_webhook(merchant_id: &str) -> String {
        format!("{OPERATOR_MERCHANTS}/{merchant_id}/webhook")
    }

    pub fn operator_webhook_rotate(merchant_id: &str) -> String {
        format!("{OPERATOR_MERCHANTS}/{merchant_id}/webhook/rotate")
    }

    pub fn merchant_payment_refunds(merchant_order_id: &str) -> String {
        format!("{MERCHANT_PAYMENTS}/{merchant_order_id}/refunds")
    }

    pub fn merchant_payment_cancel(merchant_order_id: &str) -> String {
        format!("{MERCHANT_PAYMENTS}/{merchant_order_id}/cancel")
    }

    /// A shop's payment request as the customer sees it, by its claim id.
    pub fn charge(claim_id: &str) -> String {
        format!("/v1/charges/{claim_id}")
    }

    /// `POST` links the merchant (it may then charge the number), `DELETE`
    /// unlinks it.
    pub fn merchant_link(merchant_id: &str) -> String {
        format!("/v1/merchants/{merchant_id}/link")
    }

    pub fn merchant_spam_report(merchant_id: &str) -> String {
        format!("/v1/merchants/{merchant_id}/report-spam")
    }

    pub fn operator_merchant(merchant_id: &str) -> String {
        format!("{OPERATOR_MERCHANTS}/{merchant_id}")
    }

    pub fn operator_api_keys(merchant_id: &str) -> String {
        format!("{OPERATOR_MERCHANTS}/{merchant_id}/api-keys")
    }

    pub fn operator_api_key(merchant_id: &str, key_id: &str) -> String {
        format!("{OPERATOR_MERCHANTS}/{merchant_id}/api-keys/{key_id}")
    }

    pub fn operator_terminals(merchant_id: &str) -> String {
        format!("{OPERATOR_MERCHANTS}/{merchant_id}/terminals")
    }

    /// A bump report's status; `wait_ms` (at most 5,000) long-polls until it
    /// is decided.
    pub fn bump_report(report_id: &str, wait_ms: u32) -> String {
        format!("{BUMPS}/{report_id}?wait_ms={wait_ms}")
    }

    pub fn sound_token(token: &str) -> String {
        format!("{SOUND_TOKENS}/{token}")
    }

    pub fn claim_action(claim_id: &str, action: &str) -> String {
        format!("{CLAIMS}/{claim_id}/{action}")
    }

    pub fn gateway_call_completion(call_id: &str) -> String {
        format!("{GATEWAY_CALLS}/{call_id}/complete")
    }
}
