//! A real server on a loopback port, on a fresh SQLite file or a fresh
//! PostgreSQL database, and users registered through the real API.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clink_core::http_client::{ApiClient, ClientError};
use clink_core::wire::signing::DeviceKey;
use clink_core::wire::*;
use clink_server::config::BearerToken;
use clink_server::{CapturingOtpSender, Config, RunningServer};
use ring::rand::SystemRandom;
use sqlx::{Connection, Executor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub server: RunningServer,
    pub otp: Arc<CapturingOtpSender>,
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

/// The operator's credential on every test server: money enters a balance
/// only through the operator's cash-in.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// The PostgreSQL server tests use, e.g. `postgres://postgres@127.0.0.1:55432/postgres`.
const POSTGRES_ENV: &str = "CLINK_TEST_POSTGRES_URL";

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique() -> u64 {
    let pid = std::process::id() as u64;
    (pid % 10_000) * 100_000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh, valid Japanese mobile number in local form (090-1xxx-xxxx…).
pub fn fresh_phone() -> String {
    let n = unique();
    format!(
        "090-{}{:03}-{:04}",
        1 + n % 9,
        (n / 10_000) % 1000,
        n % 10_000
    )
}

impl TestServer {
    /// Starts a server; `None` (after saying so) when the backend is not
    /// available here — unless CLINK_REQUIRE_POSTGRES=1, which makes that a failure.
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite:{}", dir.path().join("clink.db").display()),
            Backend::Postgres => match std::env::var(POSTGRES_ENV) {
                Ok(base) => fresh_postgres_database(&base).await,
                Err(_) => {
                    if std::env::var("CLINK_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                        panic!("{POSTGRES_ENV} is not set but CLINK_REQUIRE_POSTGRES=1");
                    }
                    eprintln!("SKIPPED: set {POSTGRES_ENV} to run the PostgreSQL variant");
                    return None;
                }
            },
        };
        let mut config = Config::with_database(url);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.pin_secret_file = Some(dir.path().join("pin-secret"));
        config.operator_token = Some(BearerToken::new(OPERATOR_TOKEN).unwrap());
        tweak(&mut config);
        let otp = Arc::new(CapturingOtpSender::default());
        let server = clink_server::start(config, otp.clone())
            .await
            .expect("server starts");
        Some(TestServer {
            server,
            otp,
            backend,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A second server instance on this one's database, as when several
    /// instances run behind a load balancer. With `same_secret` false it
    /// has a server secret of its own (another deployment's keys).
    pub async fn another_instance(&self, same_secret: bool) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let first = &self.server.state.config;
        let mut config = first.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        if !same_secret {
            config.pin_secret_file = Some(dir.path().join("pin-secret"));
        }
        let otp = Arc::new(CapturingOtpSender::default());
        let server = clink_server::start(config, otp.clone())
            .await
            .expect("second instance starts");
        TestServer {
            server,
            otp,
            backend: self.backend,
            _dir: dir,
        }
    }

    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.server.state.db.pool
    }

    /// Registers a user through the API and returns a signed client for it.
    pub async fn user(&self, name: &str, pin: &str) -> User {
        let phone = fresh_phone();
        let (key, _) = DeviceKey::generate(&SystemRandom::new()).unwrap();
        let key = Arc::new(key);
        let client = ApiClient::new(&self.url()).with_key(key.clone());
        let registered = client.register(&phone).await.expect("register");
        let code = self
            .otp
            .last_code(registered.phone.as_e164())
            .expect("a code was sent");
        let account = client
            .verify(&VerifyRequest {
                phone: phone.clone(),
                code,
                display_name: name.into(),
                pin: pin.into(),
            })
            .await
            .expect("verify");
        assert_eq!(account.balance, 0);
        User {
            client,
            key,
            phone,
            e164: account.phone.as_e164().to_string(),
            name: name.into(),
            pin: pin.into(),
        }
    }

    /// Sum of all balances, system accounts included: always zero.
    pub async fn sum_of_balances(&self) -> i64 {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts")
            .fetch_one(self.pool())
            .await
            .unwrap();
        sqlx::Row::get(&row, 0)
    }
}

async fn fresh_postgres_database(base: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!(
        "clink_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::AnyConnection::connect(base)
        .await
        .expect("connect to the test PostgreSQL");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let (prefix, _) = base.rsplit_once('/').expect("a URL with a database name");
    format!("{prefix}/{name}")
}

pub struct User {
    pub client: ApiClient,
    pub key: Arc<DeviceKey>,
    /// As the user typed it (local form).
    pub phone: String,
    pub e164: String,
    pub name: String,
    pub pin: String,
}

pub fn key() -> String {
    format!("k-{}", unique())
}

impl User {
    pub async fn balance(&self) -> i64 {
        self.client.me().await.unwrap().balance
    }

    /// Money in for this user through the operator's cash-in.
    pub async fn cash_in(&self, amount: i64) -> CashInResponse {
        let response = operator_cash_in(
            self.client.base_url(),
            OPERATOR_TOKEN,
            &CashInRequest {
                idempotency_key: key(),
                phone: self.phone.clone(),
                amount,
                reference: "test desk".into(),
            },
        )
        .await;
        assert_eq!(response.status(), 201, "cash-in refused");
        response.json().await.unwrap()
    }

    pub async fn send(&self, to: &User, amount: i64) -> Result<TransferView, ClientError> {
        self.client
            .send(&SendRequest {
                idempotency_key: key(),
                payee: to.phone.clone(),
                amount,
                memo: "test".into(),
                pin: self.pin.clone(),
                challenge_id: None,
                challenge_response: None,
            })
            .await
    }

    pub async fn claim(&self, from: &User, amount: i64, memo: &str) -> TransferView {
        self.client
            .claim(&ClaimRequest {
                idempotency_key: key(),
                payer: from.phone.clone(),
                amount,
                memo: memo.into(),
            })
            .await
            .unwrap()
    }
}

pub fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ApiError {
    match result {
        Err(ClientError::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Runs each scenario against SQLite and PostgreSQL.
// `crate::common` is meant: the macro is used only by the test crate that
// declares `mod common`.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// `POST /v1/operator/cash-in` with a bearer token, as the back office sends it.
pub async fn operator_cash_in(
    base_url: &str,
    token: &str,
    request: &CashInRequest,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base_url}{}", paths::OPERATOR_CASH_IN))
        .bearer_auth(token)
        .json(request)
        .send()
        .await
        .unwrap()
}

/// Sends a request signed by `key` exactly as given (any method, path and
/// body bytes) and returns the status and the parsed JSON body.
pub async fn signed_raw(
    base_url: &str,
    key: &DeviceKey,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let nonce = clink_core::wire::signing::new_nonce(&SystemRandom::new());
    let mut req =
        reqwest::Client::new().request(method.parse().unwrap(), format!("{base_url}{path}"));
    for (name, value) in key.sign(method, path, body, clink_server::now_ms(), &nonce) {
        req = req.header(name, value);
    }
    let resp = req
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// `len` bytes that pass for a PNG (its signature, then a fixed pattern):
/// the server checks the signature and the size, not the pixels.
pub fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(8)).map(|i| (i % 61) as u8));
    bytes
}
