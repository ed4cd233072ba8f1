//! The HTTP client for Clink's server API: signs every request with the
//! device key and turns error bodies back into typed [`ApiError`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ring::rand::SystemRandom;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::challenge::OcraKey;
use crate::wallet::profile::{self, Phase};
use crate::wire::signing::{self, DeviceKey};
use crate::wire::*;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("server refused: {0}")]
    Api(ApiError),
    /// No connection could be made (refused, no route, name not found): the
    /// request never left, so the server cannot have processed it.
    #[error("cannot connect: {0}")]
    Unreachable(String),
    /// The connection broke or timed out after the request may have left;
    /// it may or may not have been processed.
    #[error("network: {0}")]
    Transport(String),
    /// The server's answer was not what this client understands.
    #[error("unexpected response (HTTP {status}): {detail}")]
    Decode { status: u16, detail: String },
    #[error("this client has no device key; register first")]
    NoKey,
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A signed, typed client of one server.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    key: Option<Arc<DeviceKey>>,
    rng: Arc<SystemRandom>,
    /// Server time minus local time, ms: added to every signed timestamp so
    /// that a phone whose clock is off still signs requests the server
    /// accepts. Shared, so a new estimate reaches every copy of the client.
    clock_offset_ms: Arc<AtomicI64>,
}

impl ApiClient {
    pub fn new(base_url: &str) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_string(),
            key: None,
            rng: Arc::new(SystemRandom::new()),
            clock_offset_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Signs with the server's time as `offset_ms` (server minus local) says.
    pub fn with_clock_offset(mut self, offset_ms: Arc<AtomicI64>) -> ApiClient {
        self.clock_offset_ms = offset_ms;
        self
    }

    pub fn with_key(mut self, key: Arc<DeviceKey>) -> ApiClient {
        self.key = Some(key);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Sends one request; signs it when `signed`. Returns the decoded body.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&impl Serialize>,
        signed: bool,
    ) -> Result<T, ClientError> {
        let encoding = std::time::Instant::now();
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Decode {
                status: 0,
                detail: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path_and_query}", self.base_url));
        if signed {
            let key = self.key.as_ref().ok_or(ClientError::NoKey)?;
            let nonce = signing::new_nonce(self.rng.as_ref());
            for (name, value) in key.sign(
                method.as_str(),
                path_and_query,
                &body,
                Self::now_ms() + self.clock_offset_ms.load(Ordering::Relaxed),
                &nonce,
            ) {
                request = request.header(name, value);
            }
        }
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        profile::add(Phase::Encode, encoding.elapsed());
        let travelling = std::time::Instant::now();
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::Unreachable(e.to_string())
            } else {
                ClientError::Transport(e.to_string())
            }
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        profile::add(Phase::RoundTrip, travelling.elapsed());
        if (200..300).contains(&status) {
            profile::time(Phase::Decode, || {
                serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                    status,
                    detail: e.to_string(),
                })
            })
        } else {
            match serde_json::from_slice::<ApiError>(&bytes) {
                Ok(e) => Err(ClientError::Api(e)),
                Err(_) => Err(ClientError::Decode {
                    status,
                    detail: String::from_utf8_lossy(&bytes).into_owned(),
                }),
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(reqwest::Method::GET, path, None::<&()>, true)
            .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(reqwest::Method::POST, path, Some(body), true)
            .await
    }

    pub async fn time(&self) -> Result<TimeResponse, ClientError> {
        self.call(reqwest::Method::GET, paths::TIME, None::<&()>, false)
            .await
    }

    pub async fn register(&self, phone: &str) -> Result<RegisterResponse, ClientError> {
        let key = self.key.as_ref().ok_or(ClientError::NoKey)?;
        let body = RegisterRequest {
            phone: phone.to_string(),
            public_key: key.public_key_b64(),
        };
        self.call(reqwest::Method::POST, paths::REGISTER, Some(&body), false)
            .await
    }

    pub async fn verify(&self, request: &VerifyRequest) -> Result<AccountView, ClientError> {
        self.post(paths::REGISTER_VERIFY, request).await
    }

    pub async fn me(&self) -> Result<AccountView, ClientError> {
        self.get(paths::ME).await
    }

    pub async fn send(&self, request: &SendRequest) -> Result<TransferView, ClientError> {
        self.post(paths::SEND, request).await
    }

    pub async fn withdraw(&self, request: &WithdrawRequest) -> Result<TransferView, ClientError> {
        self.post(paths::WITHDRAW, request).await
    }

    pub async fn claim(&self, request: &ClaimRequest) -> Result<TransferView, ClientError> {
        self.post(paths::CLAIMS, request).await
    }

    pub async fn approve_claim(
        &self,
        claim_id: &str,
        pin: &str,
    ) -> Result<TransferView, ClientError> {
        self.approve_claim_with(
            claim_id,
            &ApproveClaimRequest {
                pin: pin.to_string(),
                challenge_id: None,
                challenge_response: None,
            },
        )
        .await
    }

    /// Approves a claim with the full request, e.g. with a second factor.
    pub async fn approve_claim_with(
        &self,
        claim_id: &str,
        request: &ApproveClaimRequest,
    ) -> Result<TransferView, ClientError> {
        self.post(&paths::claim_action(claim_id, "approve"), request)
            .await
    }

    pub async fn decline_claim(&self, claim_id: &str) -> Result<TransferView, ClientError> {
        self.post(
            &paths::claim_action(claim_id, "decline"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn cancel_claim(&self, claim_id: &str) -> Result<TransferView, ClientError> {
        self.post(
            &paths::claim_action(claim_id, "cancel"),
            &serde_json::json!({}),
        )
        .await
    }

    // ------------------------------------------------------------ shops

    /// Takes a request a shop's terminal presented (its QR).
    pub async fn take_charge(&self, payment_id: &str) -> Result<ChargeView, ClientError> {
        let request = TakeChargeRequest {
            payment_id: payment_id.to_string(),
        };
        self.post(paths::CHARGES, &request).await
    }

    /// A shop's request addressed to this phone: merchant, lines, total.
    pub async fn charge(&self, claim_id: &str) -> Result<ChargeView, ClientError> {
        self.get(&paths::charge(claim_id)).await
    }

    pub async fn link_merchant(&self, merchant_id: &str) -> Result<MerchantSummary, ClientError> {
        self.post(&paths::merchant_link(merchant_id), &serde_json::json!({}))
            .await
    }

    pub async fn unlink_merchant(&self, merchant_id: &str) -> Result<LinkedMerchants, ClientError> {
        self.call(
            reqwest::Method::DELETE,
            &paths::merchant_link(merchant_id),
            None::<&()>,
            true,
        )
        .await
    }

    pub async fn linked_merchants(&self) -> Result<LinkedMerchants, ClientError> {
        self.get(paths::LINKED_MERCHANTS).await
    }

    pub async fn report_merchant_spam(
        &self,
        merchant_id: &str,
    ) -> Result<LinkedMerchants, ClientError> {
        self.post(
            &paths::merchant_spam_report(merchant_id),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn transfer(&self, id: &str) -> Result<TransferView, ClientError> {
        self.get(&format!("/v1/transfers/{id}")).await
    }

    pub async fn history(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        let mut path = format!("{}?limit={limit}", paths::HISTORY);
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        self.get(&path).await
    }

    pub async fn inbox(&self, after: i64) -> Result<Inbox, ClientError> {
        self.get(&format!("{}?after={after}", paths::INBOX)).await
    }

    pub async fn update_policy(
        &self,
        request: &UpdatePolicyRequest,
    ) -> Result<AccountView, ClientError> {
        self.call(reqwest::Method::PUT, paths::POLICY, Some(request), true)
            .await
    }

    /// The caller's avatar, picture included.
    pub async fn avatar(&self) -> Result<Avatar, ClientError> {
        self.get(paths::AVATAR).await
    }

    /// Replaces the caller's avatar; answers with it as stored.
    pub async fn set_avatar(&self, request: &SetAvatarRequest) -> Result<Avatar, ClientError> {
        self.call(reqwest::Method::PUT, paths::AVATAR, Some(request), true)
            .await
    }

    /// Clears the caller's avatar.
    pub async fn clear_avatar(&self) -> Result<Avatar, ClientError> {
        self.call(reqwest::Method::DELETE, paths::AVATAR, None::<&()>, true)
            .await
    }

    /// Registers this install's OCRA key, replacing any earlier one.
    pub async fn register_ocra_key(
        &self,
        key: &OcraKey,
        pin: &str,
    ) -> Result<OcraKeyRegistered, ClientError> {
        use base64::Engine;
        let request = RegisterOcraKeyRequest {
            ocra_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes()),
            pin: pin.to_string(),
        };
        self.call(reqwest::Method::PUT, paths::OCRA_KEY, Some(&request), true)
            .await
    }

    /// A fresh single-use challenge for a payment's second factor.
    pub async fn new_challenge(&self) -> Result<IssuedChallenge, ClientError> {
        self.post(paths::CHALLENGES, &IssueChallengeRequest {})
            .await
    }

    // ------------------------------------------------------------ pairing

    /// Posts a bump report; the answer names it for [`bump_status`](Self::bump_status).
    pub async fn submit_bump(
        &self,
        request: &SubmitBumpRequest,
    ) -> Result<BumpReportView, ClientError> {
        self.post(paths::BUMPS, request).await
    }

    /// A bump report's outcome, waiting up to `wait_ms` while it is pending.
    pub async fn bump_status(
        &self,
        report_id: &str,
        wait_ms: u32,
    ) -> Result<BumpReportView, ClientError> {
        self.get(&paths::bump_report(report_id, wait_ms)).await
    }

    pub async fn issue_sound_token(
        &self,
        request: &IssueSoundTokenRequest,
    ) -> Result<SoundTokenIssued, ClientError> {
        self.post(paths::SOUND_TOKENS, request).await
    }

    pub async fn redeem_sound_token(
        &self,
        token: &[u8; SOUND_TOKEN_LEN],
    ) -> Result<PairingRequestView, ClientError> {
        let request = RedeemSoundTokenRequest {
            token: encode_token(token),
        };
        self.post(paths::SOUND_TOKEN_REDEEM, &request).await
    }

    pub async fn sound_token_status(
        &self,
        token: &[u8; SOUND_TOKEN_LEN],
    ) -> Result<SoundTokenStatus, ClientError> {
        self.get(&paths::sound_token(&encode_token(token))).await
    }
}
