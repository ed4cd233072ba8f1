//! Money for the CLI tests' wallets: the operator's cash-in, the only way
//! money enters a balance from outside.
#![allow(dead_code)]

use clink_core::wire::{CashInRequest, paths};
use clink_server::Config;
use clink_server::config::BearerToken;

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// Turns the operator's endpoints on in a test server's configuration.
pub fn enable(config: &mut Config) {
    config.operator_token = Some(BearerToken::new(OPERATOR_TOKEN).unwrap());
}

/// Credits `amount` to the user of `phone` (as typed); call from a blocking
/// thread of the test's runtime (the CLI steps run in `spawn_blocking`).
pub fn cash_in(url: &str, phone: &str, amount: i64) {
    static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request = CashInRequest {
        idempotency_key: format!("cli-test-{}-{key}", std::process::id()),
        phone: phone.into(),
        amount,
        reference: "test desk".into(),
    };
    let status = tokio::runtime::Handle::current().block_on(async {
        reqwest::Client::new()
            .post(format!("{url}{}", paths::OPERATOR_CASH_IN))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&request)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 201, "cash-in refused");
}
