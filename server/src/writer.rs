//! The ledger writer: every change to the database goes through one task that
//! commits many requests in one transaction (group commit). A durable commit
//! costs a disk flush; sharing it between the requests that arrived meanwhile
//! is what lets one SQLite file post thousands of transfers a second.
//!
//! Each request runs inside its own savepoint, so a request that fails rolls
//! back only its own writes. Replies are sent only after the commit, so a
//! client never hears "done" for something that could still be lost.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Backend, Database, WriterConnector};
use crate::error::AppError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a job decided: whether its writes stand, and its reply (sent after commit).
pub struct Outcome<T> {
    pub keep_writes: bool,
    pub reply: Result<T, AppError>,
}

impl<T> Outcome<T> {
    /// Writes stand exactly when the job succeeded.
    pub fn from_result(reply: Result<T, AppError>) -> Self {
        Outcome {
            keep_writes: reply.is_ok(),
            reply,
        }
    }
}

type Deliver = Box<dyn FnOnce(Result<(), AppError>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, (bool, Deliver)> + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer with its own connection.
    ///
    /// A job waits on the database once per statement, so what a payment
    /// costs the one task every payment goes through is mostly those
    /// wake-ups, and where the task runs decides their price (load
    /// benchmark, 64 clients, 2 cores): PostgreSQL's writer on a thread and
    /// runtime of its own posts 3,100–3,500 sends/s, on the shared runtime
    /// 1,200–1,300 (its socket's wake-ups queue behind the HTTP tasks);
    /// SQLite's, whose statements already run on sqlx's worker thread, posts
    /// 3,300–3,500 on the shared runtime and 1,600–2,100 on a thread of its
    /// own (two threads handing every statement back and forth). The
    /// PostgreSQL connection is made on the writer's runtime: a socket
    /// belongs to the runtime that opened it.
    pub async fn spawn(db: &Database, max_batch: usize) -> Result<Writer, sqlx::Error> {
        let max_batch = max_batch.max(1);
        let (jobs, rx) = mpsc::channel::<Job>(max_batch * 4);
        let connector = db.writer_connector();
        if connector.backend == Backend::Sqlite {
            let conn = connector.connect().await?;
            tokio::spawn(run(connector, conn, rx, max_batch));
            return Ok(Writer { jobs });
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("clink-ledger-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(sqlx::Error::Io(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match connector.connect().await {
                        Ok(conn) => {
                            let _ = ready_tx.send(Ok(()));
                            run(connector, conn, rx, max_batch).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(sqlx::Error::Io)?;
        ready_rx.await.map_err(|_| sqlx::Error::PoolClosed)??;
        Ok(Writer { jobs })
    }

    /// Runs `job` in the next batch and returns its reply once the batch is
    /// durably committed.
    pub async fn run<T, F>(&self, job: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Outcome<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, AppError>>();
        let wrapped: Job = Box::new(move |conn| {
            Box::pin(async move {
                let outcome = job(conn).await;
                let reply = outcome.reply;
                let deliver: Deliver = Box::new(move |committed| {
                    let _ = tx.send(committed.and(reply));
                });
                (outcome.keep_writes, deliver)
            })
        });
        self.jobs
            .send(wrapped)
            .await
            .map_err(|_| AppError::unavailable("the ledger is shutting down"))?;
        rx.await
            .map_err(|_| AppError::unavailable("the ledger writer stopped"))?
    }
}

async fn run(
    connector: WriterConnector,
    mut conn: AnyConnection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut received = Vec::with_capacity(max_batch);
    let mut queue = VecDeque::with_capacity(max_batch);
    while rx.recv_many(&mut received, max_batch).await > 0 {
        queue.extend(received.drain(..));
        while !queue.is_empty() {
            let mut delivers = Vec::with_capacity(queue.len());
            let committed =
                run_batch(&mut conn, connector.backend, &mut queue, &mut delivers).await;
            if let Err(e) = &committed {
                tracing::error!(error = %e, "ledger batch failed; rolled back");
                let _ = conn.execute("ROLLBACK").await;
            }
            // Answers first: a caller whose batch failed may retry at once
            // (its idempotency key makes that safe, even if the commit did
            // happen and only its acknowledgement was lost).
            for deliver in delivers {
                deliver(committed.clone());
            }
            if committed.is_err() && conn.ping().await.is_err() {
                conn = reconnect(&connector).await;
            }
        }
    }
}

/// A new connection for the writer after the old one broke (the database
/// restarted, a network blip to PostgreSQL). Jobs wait in the queue
/// meanwhile; retries back off up to [`MAX_RECONNECT_DELAY`].
async fn reconnect(connector: &WriterConnector) -> AnyConnection {
    let mut delay = Duration::from_millis(50);
    loop {
        match connector.connect().await {
            Ok(conn) => {
                tracing::warn!("ledger writer reconnected");
                return conn;
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?delay, "ledger writer cannot reconnect");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        }
    }
}

const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Undoes everything the running job wrote so far (back to the savepoint
/// the writer opened for it); the job may then write again.
pub async fn undo_job(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("ROLLBACK TO SAVEPOINT job").await?;
    Ok(())
}

/// Most time one transaction spends running jobs before it commits, even
/// with more jobs waiting. It bounds how long a job's writes stay invisible
/// to other connections (pairing decisions on other instances count on it,
/// see `pairing::bump::COMMIT_MARGIN_MS`) and how long a reply waits on
/// other requests' work.
pub const MAX_BATCH_WORK: Duration = Duration::from_millis(100);

/// Runs jobs from the front of `queue` in one transaction, until the queue
/// is empty or [`MAX_BATCH_WORK`] has passed, and commits them. Jobs not
/// reached stay queued for the next transaction, also when this one fails.
async fn run_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    queue: &mut VecDeque<Job>,
    delivers: &mut Vec<Deliver>,
) -> Result<(), AppError> {
    let started = Instant::now();
    // Savepoint bookkeeping shares one round trip with its neighbours:
    // each `execute` of plain SQL may hold several statements.
    let mut next = format!("{}; SAVEPOINT job", backend.begin_write());
    while let Some(job) = queue.pop_front() {
        conn.execute(next.as_str()).await?;
        let (keep, deliver) = job(conn).await;
        delivers.push(deliver);
        next = String::from(if keep {
            "RELEASE SAVEPOINT job"
        } else {
            "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job"
        });
        if queue.is_empty() || started.elapsed() >= MAX_BATCH_WORK {
            break;
        }
        next.push_str("; SAVEPOINT job");
    }
    next.push_str("; COMMIT");
    conn.execute(next.as_str()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A job that ran past `MAX_BATCH_WORK` is committed and answered
    /// before the jobs queued behind it run: its writes are visible to
    /// other connections within that bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_job_is_committed_and_answered_before_later_jobs_run() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("w.db").display());
        let db = Database::open(&url).await.unwrap();
        let writer = Writer::spawn(&db, 64).await.unwrap();
        let log = Arc::new(Mutex::new(Vec::<&str>::new()));

        // Hold the writer so that the next two jobs arrive together.
        let (release, held) = oneshot::channel::<()>();
        let holding = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |_conn| {
                        Box::pin(async move {
                            let _ = held.await;
                            Outcome::from_result(Ok(()))
                        })
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let slow = {
            let (writer, log) = (writer.clone(), log.clone());
            tokio::spawn(async move {
                writer
                    .run(move |_conn| {
                        Box::pin(async move {
                            tokio::time::sleep(MAX_BATCH_WORK + Duration::from_millis(50)).await;
                            Outcome::from_result(Ok(()))
                        })
                    })
                    .await
                    .unwrap();
                log.lock().unwrap().push("slow job answered");
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = {
            let (writer, log) = (writer.clone(), log.clone());
            tokio::spawn(async move {
                writer
                    .run(move |_conn| {
                        Box::pin(async move {
                            // Give a delivered answer time to be logged.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            log.lock().unwrap().push("next job ran");
                            Outcome::from_result(Ok(()))
                        })
                    })
                    .await
                    .unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        slow.await.unwrap();
        next.await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            vec!["slow job answered", "next job ran"]
        );
    }
}
