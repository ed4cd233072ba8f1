//! A real Clink server on a loopback port (SQLite in a temporary
//! directory), and wallets registered against it through the Wallet API.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clink_core::secrets::SecretStore;
use clink_core::wallet::{FileSecretStore, Wallet};
use clink_server::config::BearerToken;
use clink_server::{CapturingOtpSender, Config, RunningServer};
use sqlx::Row;

pub const PIN: &str = "2468";

/// The operator's credential on test servers: money enters a balance only
/// through the operator's cash-in.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub otp: Arc<CapturingOtpSender>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh, valid Japanese mobile number in local form.
pub fn fresh_phone() -> String {
    let n = (std::process::id() as u64 % 10_000) * 1_000 + NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "090-{}{:03}-{:04}",
        1 + n % 9,
        (n / 10_000) % 1000,
        n % 10_000
    )
}

/// A loopback address nobody listens on (yet).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_at(free_addr(), tempfile::tempdir().unwrap()).await
    }

    /// Starts a server with its configuration adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_tweaked(free_addr(), tempfile::tempdir().unwrap(), tweak).await
    }

    /// Starts (or restarts) a server on `addr` over the database in `dir`.
    pub async fn start_at(addr: SocketAddr, dir: tempfile::TempDir) -> TestServer {
        Self::start_tweaked(addr, dir, |_| {}).await
    }

    async fn start_tweaked(
        addr: SocketAddr,
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config =
            Config::with_database(format!("sqlite:{}", dir.path().join("clink.db").display()));
        config.listen = addr;
        config.pin_secret_file = Some(dir.path().join("pin-secret"));
        config.operator_token = Some(BearerToken::new(OPERATOR_TOKEN).unwrap());
        tweak(&mut config);
        let otp = Arc::new(CapturingOtpSender::default());
        let server = clink_server::start(config, otp.clone())
            .await
            .expect("server starts");
        TestServer {
            addr: server.addr,
            server: Some(server),
            otp,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; returns the database directory for a restart.
    pub async fn stop(mut self) -> (SocketAddr, tempfile::TempDir) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        (self.addr, self.dir)
    }

    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.server.as_ref().unwrap().state.db.pool
    }

    /// Sends posted on the server's ledger from `payer_e164`, and their sum.
    pub async fn posted_sends_from(&self, payer_e164: &str) -> (i64, i64) {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM transfers t JOIN users u ON u.account_id = t.debit_account
             WHERE u.phone = $1 AND t.kind = 'send' AND t.state = 'posted'",
        )
        .bind(payer_e164)
        .fetch_one(self.pool())
        .await
        .unwrap();
        (row.get(0), row.get(1))
    }

    pub async fn claims_from(&self, requester_e164: &str) -> i64 {
        sqlx::query(
            "SELECT COUNT(*) FROM transfers t JOIN users u ON u.account_id = t.credit_account WHERE u.phone = $1 AND t.kind = 'claim'",
        )
        .bind(requester_e164)
        .fetch_one(self.pool())
        .await
        .unwrap()
        .get(0)
    }

    pub async fn balance_of(&self, e164: &str) -> i64 {
        sqlx::query("SELECT a.balance FROM accounts a JOIN users u ON u.account_id = a.id WHERE u.phone = $1")
            .bind(e164)
            .fetch_one(self.pool())
            .await
            .unwrap()
            .get(0)
    }

    /// Money in for the user `e164` through the operator's cash-in.
    pub async fn cash_in(&self, e164: &str, amount: i64) {
        static KEYS: AtomicU64 = AtomicU64::new(0);
        let request = clink_core::wire::CashInRequest {
            idempotency_key: format!("cash-in-{}", KEYS.fetch_add(1, Ordering::Relaxed)),
            phone: e164.into(),
            amount,
            reference: "test desk".into(),
        };
        let response = reqwest::Client::new()
            .post(format!(
                "{}{}",
                self.url(),
                clink_core::wire::paths::OPERATOR_CASH_IN
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "cash-in refused");
    }

    /// Cashes in for a wallet's user, then syncs the wallet so it sees it.
    pub async fn fund(&self, wallet: &Wallet, e164: &str, amount: i64) {
        self.cash_in(e164, amount).await;
        wallet.sync_now().await.expect("sync after the cash-in");
    }

    /// Ids of every transfer `e164` is a party to, on the server's ledger.
    pub async fn transfer_ids_of(&self, e164: &str) -> std::collections::BTreeSet<String> {
        sqlx::query(
            "SELECT t.id FROM transfers t JOIN users u ON u.account_id IN (t.debit_account, t.credit_account) WHERE u.phone = $1",
        )
        .bind(e164)
        .fetch_all(self.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// Ids of the claims waiting for `e164` to pay them.
    pub async fn pending_claims_of(&self, e164: &str) -> std::collections::BTreeSet<String> {
        sqlx::query(
            "SELECT t.id FROM transfers t JOIN users u ON u.account_id = t.debit_account WHERE u.phone = $1 AND t.kind = 'claim' AND t.state = 'pending'",
        )
        .bind(e164)
        .fetch_all(self.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    pub async fn sum_of_balances(&self) -> i64 {
        sqlx::query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts")
            .fetch_one(self.pool())
            .await
            .unwrap()
            .get(0)
    }
}

/// Where a test wallet keeps its data and its secrets.
pub struct WalletHome {
    pub dir: tempfile::TempDir,
}

impl WalletHome {
    pub fn new() -> WalletHome {
        WalletHome {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn open(&self, url: &str) -> Wallet {
        open_wallet(self.dir.path(), url)
    }
}

/// Opens the wallet kept under `home` (data and file-backed secrets).
pub fn open_wallet(home: &Path, url: &str) -> Wallet {
    let secrets: Arc<dyn SecretStore> =
        Arc::new(FileSecretStore::new(home.join("secrets").to_str().unwrap()).unwrap());
    Wallet::open(home.join("data").to_str().unwrap(), url, secrets).unwrap()
}

/// Registers and verifies a wallet; returns it with its E.164 number.
pub async fn registered(server: &TestServer, home: &WalletHome, name: &str) -> (Wallet, String) {
    let wallet = home.open(&server.url());
    let started = wallet.register(&fresh_phone()).await.expect("register");
    let code = server
        .otp
        .last_code(&started.phone)
        .expect("a code was sent");
    let account = wallet.verify(&code, name, PIN).await.expect("verify");
    assert_eq!(account.phone, started.phone);
    (wallet, started.phone)
}

/// A TCP proxy on a loopback port in front of `upstream`, whose uploads
/// (phone to server) go at `bytes_per_sec`, as on a slow mobile uplink;
/// answers come back at full speed. A big batch then takes longer to
/// arrive than a small request sent after it. Runs until the runtime stops.
pub async fn slow_uplink(upstream: SocketAddr, bytes_per_sec: usize) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                        let secs = n as f64 / bytes_per_sec as f64;
                        tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    let _ = to_client.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}
