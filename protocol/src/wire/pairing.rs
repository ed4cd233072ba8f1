//! Pairing: paying a person found by a bump or by sound instead of by phone
//! number.
//!
//! Either way the server ends with an ordinary claim (a pending transfer from
//! the payer to the payee) that the payer approves with the PIN or declines.
//! What the phones see of each other is the payee's display name and
//! avatar, never a phone number: [`PairingRequestView`] has no field for one.
//!
//! - **Bump**: each phone posts its [`BumpReport`] ([`SubmitBumpRequest`]) and
//!   polls [`BumpReportView`] until the server has decided.
//! - **Sound**: the payee asks for a [`SoundTokenIssued`] token (16 bytes,
//!   single use, valid about a minute) and plays it; the payer's phone
//!   decodes it and redeems it ([`RedeemSoundTokenRequest`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::avatar::Avatar;
use super::bump::BumpReport;
use super::types::{Amount, Millis};

/// Bytes of a sound token (the acoustic modem's payload).
pub const SOUND_TOKEN_LEN: usize = 16;

/// `POST /v1/bumps`: one phone's report of a bump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBumpRequest {
    pub report: BumpReport,
    /// What the payment is for; only the payee's counts.
    #[serde(default)]
    pub memo: String,
}

/// A request for money made by pairing, as its two phones may see it: the
/// payee's display name, never a phone number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequestView {
    /// The claim's transfer id: approve or decline it like any claim
    /// (`POST /v1/claims/{request_id}/approve`).
    pub request_id: String,
    pub payee_display_name: String,
    /// The payee's avatar, where the payee set one: what the payer checks
    /// beside the name before the PIN. The picture only in the payer's view
    /// (`Confirm`, the redeem answer); the payee's own views carry the emoji
    /// alone. Absent from servers that predate avatars.
    #[serde(default, skip_serializing_if = "Avatar::is_empty")]
    pub payee_avatar: Avatar,
    pub amount: Amount,
    pub memo: String,
    /// After this the request can no longer be approved.
    pub expires_at_ms: Millis,
}

/// Where a bump report stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BumpOutcome {
    /// Waiting for the other phone, or for rival reports that could still
    /// arrive; not decided before `decide_after_ms` (server time).
    Pending { decide_after_ms: Millis },
    /// Payer: matched; approve or decline this request.
    Confirm { request: PairingRequestView },
    /// Payee: matched; the request waits for the payer's approval.
    RequestSent { request: PairingRequestView },
    /// Several phones bumped nearby at the same moment: bump again.
    BumpAgain,
    /// No other phone reported the same bump in time.
    Expired,
}

/// `POST /v1/bumps` answers with the new report's view; `GET
/// /v1/bumps/{report_id}?wait_ms=…` with its current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BumpReportView {
    pub report_id: String,
    pub outcome: BumpOutcome,
}

/// `POST /v1/sound-tokens`: the payee asks for a token to play.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueSoundTokenRequest {
    pub amount: Amount,
    #[serde(default)]
    pub memo: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoundTokenIssued {
    /// The 16 token bytes, base64url without padding (see [`encode_token`]).
    pub token: String,
    pub amount: Amount,
    pub memo: String,
    pub expires_at_ms: Millis,
}

/// `POST /v1/sound-tokens/redeem`: the payer's phone heard a token. The
/// answer is the [`PairingRequestView`] to confirm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemSoundTokenRequest {
    pub token: String,
}

/// `GET /v1/sound-tokens/{token}`: what became of a token, for its payee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SoundTokenStatus {
    /// Nobody redeemed it yet.
    Waiting { expires_at_ms: Millis },
    /// Redeemed: the request waits for (or got) the payer's decision.
    Redeemed { request: PairingRequestView },
    /// Expired unredeemed.
    Expired,
}

pub fn encode_token(token: &[u8; SOUND_TOKEN_LEN]) -> String {
    URL_SAFE_NO_PAD.encode(token)
}

/// The token bytes of [`encode_token`]'s text; `None` if it is not 16 bytes
/// of base64url.
pub fn decode_token(text: &str) -> Option<[u8; SOUND_TOKEN_LEN]> {
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_text_round_trips_and_rejects_other_lengths() {
        let token: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        let text = encode_token(&token);
        assert_eq!(text.len(), 22);
        assert_eq!(decode_token(&text), Some(token));
        assert_eq!(decode_token(&text[..20]), None);
        assert_eq!(decode_token("not base64!"), None);
    }

    #[test]
    fn outcomes_are_tagged_by_status() {
        let view = BumpReportView {
            report_id: "b_1".into(),
            outcome: BumpOutcome::Pending { decide_after_ms: 5 },
        };
        let json = serde_json::to_string(&view).unwrap();
        assert_eq!(
            json,
            r#"{"report_id":"b_1","outcome":{"status":"pending","decide_after_ms":5}}"#
        );
        assert_eq!(serde_json::from_str::<BumpReportView>(&json).unwrap(), view);
        let again: BumpOutcome = serde_json::from_str(r#"{"status":"bump_again"}"#).unwrap();
        assert_eq!(again, BumpOutcome::BumpAgain);
    }
}
