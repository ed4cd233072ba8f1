//! Wire types of the challenge-response second factor and of the telephone
//! gateway.
//!
//! Each install registers its own OCRA key (`PUT /v1/ocra-key`). The server
//! then proves a caller is a genuine install by asking for
//! `OCRA(key, challenge)` under [`CLINK_SUITE`](crate::challenge::CLINK_SUITE):
//! through the app (`POST /v1/challenges`, answered in a send or a claim
//! approval) or through a phone call, where a voice gateway plays the
//! challenge as DTMF and collects the answer.

use serde::{Deserialize, Serialize};

use super::types::{Amount, Counterpart, Millis, TransferView};

/// Registers (or replaces) the calling install's OCRA key. Needs the PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterOcraKeyRequest {
    /// The 32 key bytes, base64url without padding.
    pub ocra_key: String,
    pub pin: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcraKeyRegistered {
    /// The OCRA suite the server will ask this key to answer.
    pub suite: String,
    pub registered_at_ms: Millis,
}

/// The body of `POST /v1/challenges`: an empty object, `{}`. It has no
/// options yet; a body that is not one is refused, so a client cannot
/// believe the server honoured a field it sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueChallengeRequest {}

/// A single-use challenge for the calling install, from `POST /v1/challenges`.
/// Answer it with `challenge_id` and `challenge_response` in the payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedChallenge {
    pub challenge_id: String,
    /// The numeric challenge (8 digits) to answer with the install's key.
    pub challenge: String,
    pub suite: String,
    pub expires_at_ms: Millis,
}

/// From the gateway when a call arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayCallRequest {
    /// The caller's number as the network reports it (E.164 or national
    /// digits); trusted as caller ID is.
    pub caller: String,
    /// The digits the caller dialed after the service number: a dial string
    /// (see `clink_protocol::dialstring`).
    pub dialed: String,
}

/// What the call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayCallKind {
    /// The caller pays the counterpart.
    Send,
    /// The caller asks the counterpart to pay (a claim in their inbox).
    Request,
}

/// The server's answer to a new call: play `challenge` as DTMF, collect
/// `collect_digits` digits, and send them back before `expires_at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCall {
    pub call_id: String,
    pub challenge: String,
    pub collect_digits: u32,
    pub expires_at_ms: Millis,
    pub kind: GatewayCallKind,
    pub amount: Amount,
    /// Who the caller pays or asks, for the gateway to announce.
    pub counterpart: Counterpart,
}

/// The digits the caller keyed in answer to the challenge. A trailing `#`
/// (the usual end-of-input key) is ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteCallRequest {
    pub digits: String,
}

/// A call that did what it asked: a posted send, or a pending claim in the
/// payer's inbox. `transfer` is as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCall {
    pub call_id: String,
    pub transfer: TransferView,
}

#[cfg(test)]
mod tests {
    use super::super::types::{ApproveClaimRequest, SendRequest};
    use super::*;

    #[test]
    fn payments_without_a_second_factor_keep_their_old_shape() {
        // What clients from before the second factor send still parses...
        let old = r#"{"idempotency_key":"k","payee":"090","amount":5,"memo":"","pin":"1234"}"#;
        let send: SendRequest = serde_json::from_str(old).unwrap();
        assert_eq!(
            (&send.challenge_id, &send.challenge_response),
            (&None, &None)
        );
        // ...and a request without one serialises exactly as before.
        assert_eq!(serde_json::to_string(&send).unwrap(), old);
        let approve: ApproveClaimRequest = serde_json::from_str(r#"{"pin":"1234"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&approve).unwrap(),
            r#"{"pin":"1234"}"#
        );
    }

    #[test]
    fn second_factor_fields_travel_with_the_payment() {
        let json = r#"{"pin":"1234","challenge_id":"ch_1","challenge_response":"01234567"}"#;
        let approve: ApproveClaimRequest = serde_json::from_str(json).unwrap();
        assert_eq!(
            (
                approve.challenge_id.as_deref(),
                approve.challenge_response.as_deref()
            ),
            (Some("ch_1"), Some("01234567"))
        );
        assert!(serde_json::from_str::<ApproveClaimRequest>(r#"{"pin":"1","x":1}"#).is_err());
    }

    #[test]
    fn call_kinds_are_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&GatewayCallKind::Request).unwrap(),
            r#""request""#
        );
    }
}
