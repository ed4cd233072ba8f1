//! Clink's server: the ledger every payment ends in.
//!
//! Requests arrive through `routes` (every path and its handler; handlers in a
//! module per resource: `accounts`, `transfers`, `claims`, `inbox`, `sync`,
//! `pairing`, `second_factor`, `gateway`, `operator`, `status`), are
//! authenticated by `auth` (device signatures and nonces), and change the
//! database only through the `writer` (group commit): a signed write is one
//! job that records the nonce, then does its work (`request::write_signed`);
//! money moves by the rules in `ledger`, through the flow in `money`.
//! `http_serve`, `http_limits` and `http_errors` sit in front of `routes`: the
//! connection loop, the limits every request meets, and the one shape of
//! every refusal.

pub mod accounts;
pub mod auth;
pub mod claims;
pub mod config;
pub mod customer_codes;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http_errors;
pub mod http_limits;
pub mod http_serve;
pub mod inbox;
pub mod ledger;
pub mod merchants;
/// The bump matching rules live in the protocol crate (pure, shared with the
/// phone's tools); re-exported under their old name.
pub use clink_protocol::matching;
pub mod money;
pub mod operator;
pub mod otp;
pub mod pairing;
pub mod request;
pub mod routes;
pub mod second_factor;
pub mod secrets;
pub mod shops;
pub mod status;
pub mod sweeper;
pub mod sync;
pub mod transfers;
pub mod webhooks;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use ring::rand::SystemRandom;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;
use db::Database;
use ledger::SystemAccounts;
pub use otp::{CapturingOtpSender, FileOtpSender, LogOtpSender, OtpSender};
use secrets::ServerSecret;
use writer::Writer;

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub db: Database,
    pub writer: Writer,
    pub secret: ServerSecret,
    pub otp: Arc<dyn OtpSender>,
    pub rng: SystemRandom,
    pub system: SystemAccounts,
    pub devices: auth::DeviceCache,
    pub users: ledger::UserCache,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("PIN secret file: {0}")]
    Secret(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
}

/// A server running on a socket; dropping it does not stop it, `shutdown` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
    pub state: Arc<AppState>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for those in flight.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Opens the database (creating and migrating it), binds the listen address
/// and serves until shut down.
pub async fn start(config: Config, otp: Arc<dyn OtpSender>) -> Result<RunningServer, StartError> {
    if config.max_amount <= 0 {
        return Err(StartError::Config("max amount must be positive".into()));
    }
    if config.pin_max_attempts == 0 {
        return Err(StartError::Config("PIN attempts must be at least 1".into()));
    }
    if config.operator_token.is_some() && config.operator_token == config.gateway_token {
        // The gateway moves money between users; the operator creates it.
        return Err(StartError::Config(
            "the operator token must differ from the gateway token".into(),
        ));
    }
    let rng = SystemRandom::new();
    let secret = ServerSecret::load_or_create(&config.pin_secret_path(), &rng)
        .map_err(StartError::Secret)?;
    let db = Database::open(&config.database_url).await?;
    let system = SystemAccounts::load(&db.pool).await?;
    let writer = Writer::spawn(&db, config.max_batch).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let state = Arc::new(AppState {
        config,
        db,
        writer,
        secret,
        otp,
        rng,
        system,
        devices: Default::default(),
        users: Default::default(),
    });
    sweeper::spawn(state.clone());
    webhooks::spawn(state.clone());
    pairing::bump::spawn_decider(state.clone());
    let app = routes::router(state.clone());
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(http_serve::serve(listener, app, async {
        let _ = stop.await;
    }));
    tracing::info!(%addr, backend = state.db.backend.name(), "clink-server listening");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
        state,
    })
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
