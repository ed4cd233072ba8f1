//! Server configuration, from the command line or `CLINK_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clink_protocol::phone::Region;
use clink_protocol::wire::Currency;

#[derive(Debug, Clone, Parser)]
#[command(name = "clink-server", about = "Clink's ledger and matching server")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLINK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// `sqlite:<file>` (created and migrated on first start) or `postgres://…`.
    #[arg(long, env = "CLINK_DATABASE_URL", default_value = "sqlite:clink.db")]
    pub database_url: String,

    /// File holding the secret that keys PIN hashes; created with fresh random
    /// bytes if missing. Keep it apart from the database and its backups.
    /// Default: `<database file>.pin-secret` for SQLite, `clink.pin-secret` otherwise.
    #[arg(long, env = "CLINK_PIN_SECRET_FILE")]
    pub pin_secret_file: Option<PathBuf>,

    /// ISO 4217 code of the one currency this ledger keeps.
    #[arg(long, env = "CLINK_CURRENCY", default_value = "JPY")]
    pub currency: String,

    /// Minor-unit digits of the currency (0 for JPY, 2 for EUR).
    #[arg(long, env = "CLINK_CURRENCY_EXPONENT", default_value_t = 0)]
    pub currency_exponent: u8,

    /// Region for phone numbers typed without a country code.
    #[arg(long, env = "CLINK_DEFAULT_REGION", default_value = "JP", value_parser = parse_region)]
    pub default_region: Region,

    /// Largest amount of one transfer, in minor units.
    #[arg(long, env = "CLINK_MAX_AMOUNT", default_value_t = 1_000_000)]
    pub max_amount: i64,

    /// How long a claim waits for the payer before it expires.
    #[arg(long, env = "CLINK_CLAIM_TTL_SECS", default_value_t = 24 * 3600)]
    pub claim_ttl_secs: u64,

    /// Wrong PINs in a row that lock payments.
    #[arg(long, env = "CLINK_PIN_MAX_ATTEMPTS", default_value_t = 5)]
    pub pin_max_attempts: u32,

    /// How long payments stay locked after too many wrong PINs.
    #[arg(long, env = "CLINK_LOCKOUT_SECS", default_value_t = 15 * 60)]
    pub lockout_secs: u64,

    /// How long a registration code is valid.
    #[arg(long, env = "CLINK_OTP_TTL_SECS", default_value_t = 10 * 60)]
    pub otp_ttl_secs: u64,

    /// Least time between two registration codes to one number.
    #[arg(long, env = "CLINK_OTP_RESEND_SECS", default_value_t = 30)]
    pub otp_resend_secs: u64,

    /// Most registration codes sent to one number in an hour.
    #[arg(long, env = "CLINK_OTP_MAX_PER_HOUR", default_value_t = 5)]
    pub otp_max_per_hour: u32,

    /// How often expired claims, nonces and idempotency records are swept.
    #[arg(long, env = "CLINK_SWEEP_SECS", default_value_t = 5)]
    pub sweep_secs: u64,

    /// Most requests the ledger writer commits together (group commit).
    #[arg(long, env = "CLINK_MAX_BATCH", default_value_t = 512)]
    pub max_batch: usize,

    /// How long an OCRA challenge (app second factor or phone call) may be
    /// answered.
    #[arg(long, env = "CLINK_CHALLENGE_TTL_SECS", default_value_t = 120)]
    pub challenge_ttl_secs: u64,

    /// Shared credential of the telephone gateway (`Authorization: Bearer …`,
    /// at least 16 characters). Without it the gateway endpoints are disabled.
    #[arg(long, env = "CLINK_GATEWAY_TOKEN", value_parser = parse_bearer_token)]
    pub gateway_token: Option<BearerToken>,

    /// Credential of the operator's back office (`Authorization: Bearer …`, at
    /// least 16 characters): the only way money enters a user's balance from
    /// outside (cash-in). Without it the operator endpoints are disabled.
    #[arg(long, env = "CLINK_OPERATOR_TOKEN", value_parser = parse_bearer_token)]
    pub operator_token: Option<BearerToken>,

    /// Development only: also append each registration code, as `<e164>
    /// <code>` lines, to this file (the code is logged either way).
    #[arg(long, env = "CLINK_DEV_OTP_FILE")]
    pub dev_otp_file: Option<PathBuf>,

    /// How long a sound token may be redeemed after it was issued.
    #[arg(long, env = "CLINK_SOUND_TOKEN_TTL_SECS", default_value_t = 60)]
    pub sound_token_ttl_secs: u64,

    /// How long a request made by a bump or a sound token waits for the
    /// payer's approval (the payer is standing next to the payee).
    #[arg(long, env = "CLINK_PAIRING_REQUEST_TTL_SECS", default_value_t = 300)]
    pub pairing_request_ttl_secs: u64,

    /// How often the webhook outbox is checked for events due.
    #[arg(long, env = "CLINK_WEBHOOK_POLL_MS", default_value_t = 1_000)]
    pub webhook_poll_ms: u64,

    /// How long a merchant's endpoint may take to answer one event.
    #[arg(long, env = "CLINK_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// The wait after a failed delivery, doubled per further failure (at
    /// most an hour).
    #[arg(long, env = "CLINK_WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000)]
    pub webhook_retry_base_ms: u64,

    /// How long an event is retried before it is given up (it stays listed).
    #[arg(long, env = "CLINK_WEBHOOK_GIVE_UP_SECS", default_value_t = 24 * 3600)]
    pub webhook_give_up_secs: u64,
}

/// A shared bearer credential (the gateway's, the operator's); `Debug` does
/// not show it, so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

/// Shortest bearer token accepted: guessing one must be hopeless.
pub const MIN_BEARER_TOKEN_CHARS: usize = 16;

impl BearerToken {
    pub fn new(token: &str) -> Result<BearerToken, String> {
        if token.chars().count() < MIN_BEARER_TOKEN_CHARS
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "a bearer token must be at least {MIN_BEARER_TOKEN_CHARS} printable ASCII characters without spaces"
            ));
        }
        Ok(BearerToken(token.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

fn parse_bearer_token(s: &str) -> Result<BearerToken, String> {
    BearerToken::new(s)
}

fn parse_region(s: &str) -> Result<Region, String> {
    s.parse()
        .map_err(|e: clink_protocol::phone::PhoneError| e.to_string())
}

/// Idempotency records are kept at least this long.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(48 * 3600);

impl Config {
    /// The configuration with all defaults, for tests and embedding.
    pub fn with_database(database_url: impl Into<String>) -> Config {
        let mut config = Config::parse_from(["clink-server"]);
        config.database_url = database_url.into();
        config
    }

    pub fn currency(&self) -> Currency {
        Currency {
            code: self.currency.clone(),
            exponent: self.currency_exponent,
        }
    }

    pub fn claim_ttl(&self) -> Duration {
        Duration::from_secs(self.claim_ttl_secs)
    }

    pub fn challenge_ttl(&self) -> Duration {
        Duration::from_secs(self.challenge_ttl_secs)
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn pin_secret_path(&self) -> PathBuf {
        if let Some(path) = &self.pin_secret_file {
            return path.clone();
        }
        match self.database_url.strip_prefix("sqlite:") {
            Some(rest) => {
                let file = rest
                    .trim_start_matches("//")
                    .split('?')
                    .next()
                    .unwrap_or("clink.db");
                PathBuf::from(format!("{file}.pin-secret"))
            }
            None => PathBuf::from("clink.pin-secret"),
        }
    }
}
