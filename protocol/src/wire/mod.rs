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
pub mod signing;
mod sync;
pub mod text;
mod types;

pub use avatar::{Avatar, SetAvatarRequest};
pub use bump::{BumpReport, BumpRole, CoarseLocation, ImpulseFeatures};
pub use error::{ApiError, ErrorCode};
pub use gateway::*;
pub use pairing::*;
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
