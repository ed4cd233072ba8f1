//! Opening the database: one code path (sqlx's `Any` driver) for SQLite and
//! PostgreSQL. Queries use `$1` placeholders, which both accept; the schema
//! differs only in how auto-increment keys are spelled, so each backend has
//! its own copy of the migrations.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Backend, sqlx::Error> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(sqlx::Error::Configuration(
                format!("database URL must start with sqlite: or postgres:, got {url:?}").into(),
            ))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Starts the ledger writer's transaction. SQLite takes the write lock
    /// up front so a second process cannot deadlock it.
    pub fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

/// SQLite settings on every connection: WAL so readers never block the
/// writer, and `synchronous=FULL` so a committed transfer survives power loss.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

pub struct Database {
    pub backend: Backend,
    /// For reads; SQLite readers see the last commit and never wait for the writer.
    pub pool: AnyPool,
    url: String,
}

impl Database {
    /// Connects, creating the SQLite file if needed, and applies migrations.
    pub async fn open(url: &str) -> Result<Database, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Database { backend, pool, url })
    }

    /// What the ledger writer needs to open (and reopen) its own connection.
    pub fn writer_connector(&self) -> WriterConnector {
        WriterConnector {
            url: self.url.clone(),
            backend: self.backend,
        }
    }
}

/// Opens the ledger writer's connection, on the writer's own runtime.
#[derive(Clone)]
pub struct WriterConnector {
    url: String,
    pub backend: Backend,
}

/// How the writer's connection names itself to PostgreSQL, for operators
/// (and tests) looking at `pg_stat_activity`.
pub const WRITER_APPLICATION_NAME: &str = "clink-ledger-writer";

impl WriterConnector {
    pub async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let url = match self.backend {
            Backend::Postgres => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!(
                    "{}{sep}application_name={WRITER_APPLICATION_NAME}",
                    self.url
                )
            }
            Backend::Sqlite => self.url.clone(),
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let mut conn = AnyConnection::connect_with(&options).await?;
        if self.backend == Backend::Sqlite {
            conn.execute(SQLITE_PRAGMAS).await?;
        }
        Ok(conn)
    }
}
