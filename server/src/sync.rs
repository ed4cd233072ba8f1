//! `POST /v1/sync`: a phone's outbox in one request (wire format in
//! `clink_protocol::wire::sync`).
//!
//! Each item was signed by the device key when the user confirmed it, so its
//! signature is checked here without the five-minute window of fresh
//! requests (items may have been drafted offline hours ago); an age limit
//! below the idempotency retention keeps a replayed item from ever running
//! twice. Items then go through exactly the money rules of
//! `POST /v1/transfers/send` and `POST /v1/claims` (`money::prepare_*`,
//! `money::money_jobs`), up to `ITEMS_PER_JOB` to a writer job, all queued at once so they share group commits. A refused item is reported and the others go on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use clink_protocol::wire::signing::{self, MAX_CLOCK_SKEW_MS};
use clink_protocol::wire::*;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, StoredResponse};
use crate::money::{self, Counterparts, PreparedMoney};
use crate::{AppState, now_ms};
use crate::{inbox, request};

// A replayed item must always meet its stored result.
const _: () = assert!(
    MAX_ITEM_AGE_MS < crate::config::IDEMPOTENCY_RETENTION.as_millis() as i64,
    "items must expire before their idempotency records"
);

type Reply = Result<StoredResponse, AppError>;
/// One writer job of a sync: its items' replies, once committed.
type Pending = Pin<Box<dyn Future<Output = Result<Vec<Reply>, AppError>> + Send>>;

/// Most items in one writer job. One job per item would cost each item a
/// trip through the writer's queue and a wake-up of this handler; one job
/// for a whole batch would hold every other request behind it for as long
/// as the batch takes, past the writer's `MAX_BATCH_WORK`.
const ITEMS_PER_JOB: usize = 100;

pub async fn sync(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> AppResult<Json<SyncResponse>> {
    let started = Instant::now();
    let answer = handle(state, caller).await;
    profile::add(profile::Phase::Handler, started.elapsed());
    answer
}

async fn handle(state: Arc<AppState>, caller: Caller) -> AppResult<Json<SyncResponse>> {
    let mut clock = profile::Clock::start();
    let request: SyncRequest = caller.signed.json()?;
    if request.items.len() > MAX_SYNC_ITEMS {
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            format!(
                "a sync carries at most {MAX_SYNC_ITEMS} items, this one has {}; send the rest in another request",
                request.items.len()
            ),
        ));
    }
    let account = caller.account_id;
    let public_key = signing::decode_public_key(&caller.signed.public_key)
        .map_err(|e| AppError::new(ErrorCode::Unauthenticated, e.to_string()))?;
    clock.lap(profile::Phase::Parse);
    // The request's own nonce first: a replayed sync request is refused
    // whole, before any item reaches the ledger. Its writer job waits behind
    // the jobs already queued (an earlier batch's items), so the items are
    // checked meanwhile; that only reads.
    let nonce = request::consume_nonce(&state, caller.signed);
    let checks = async {
        let now = now_ms();
        // Signatures and bodies are plain CPU work: on a blocking thread,
        // they do not hold up the tasks of the runtime (the ledger writer's
        // among them) for the length of a batch.
        let checked = tokio::task::spawn_blocking(move || {
            request
                .items
                .iter()
                .map(|item| check(&public_key, item, now))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("checking items failed: {e}")))?;
        let mut counterparts = Counterparts::new();
        let mut prepared_items = Vec::with_capacity(checked.len());
        for item in checked {
            prepared_items.push(match item {
                Ok((key, body)) => {
                    prepare(&state, account, &public_key, key, body, &mut counterparts).await
                }
                Err(refused) => Err(refused),
            });
        }
        // One look-up for the whole batch tells which items are retries.
        let keys: Vec<&str> = prepared_items
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|(key, _)| key.as_str()))
            .collect();
        let seen = ledger::keys_seen(&state.db.pool, account, &keys).await?;
        let pins = PinsOfThisSync::load(&state, account).await?;
        AppResult::Ok((prepared_items, seen, pins))
    };
    let (nonce, checks) = tokio::join!(nonce, checks);
    nonce?;
    let (prepared_items, seen, mut pins) = checks?;
    clock.lap(profile::Phase::Prepare);
    // Items refused while being checked keep their place; the others go to
    // the writer in jobs of up to `ITEMS_PER_JOB`, in the order queued.
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(prepared_items.len());
    let mut keys = Vec::with_capacity(prepared_items.len());
    let mut jobs: Vec<(Vec<usize>, Vec<PreparedMoney>)> = Vec::new();
    for prepared in prepared_items {
        let (key, mut prepared) = match prepared {
            Ok(ready) => ready,
            Err((key, error)) => {
                keys.push(key);
                replies.push(Some(Err(error)));
                continue;
            }
        };
        if let Some(error) = pins.refuse_repeat(&state, prepared.req.pin()) {
            keys.push(key);
            replies.push(Some(Err(error)));
            continue;
        }
        prepared.req.seen_before = seen.contains(&key);
        if jobs
            .last()
            .is_none_or(|(slots, _)| slots.len() >= ITEMS_PER_JOB)
        {
            jobs.push((
                Vec::with_capacity(ITEMS_PER_JOB),
                Vec::with_capacity(ITEMS_PER_JOB),
            ));
        }
        let (slots, job) = jobs.last_mut().expect("a job was just added");
        slots.push(keys.len());
        job.push(prepared);
        keys.push(key);
        replies.push(None);
    }
    let (slots, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
    let jobs = jobs
        .into_iter()
        .map(|job| {
            let st = state.clone();
            Box::pin(async move {
                st.clone()
                    .writer
                    .run(move |conn| {
                        Box::pin(async move {
                            let started = Instant::now();
                            let done = money::money_jobs(&st, conn, account, job).await;
                            profile::add(profile::Phase::Jobs, started.elapsed());
                            done
                        })
                    })
                    .await
            }) as Pending
        })
        .collect();
    for (slots, answer) in slots.into_iter().zip(run_in_order(jobs).await) {
        match answer {
            Ok(answers) => {
                for (slot, reply) in slots.into_iter().zip(answers) {
                    replies[slot] = Some(reply);
                }
            }
            Err(e) => {
                for slot in slots {
                    replies[slot] = Some(Err(e.clone()));
                }
            }
        }
    }
    let results = keys
        .into_iter()
        .zip(replies)
        .map(|(idempotency_key, reply)| SyncItemResult {
            idempotency_key,
            outcome: match reply
                .expect("every item was answered")
                .and_then(|stored| transfer_of(&stored))
            {
                Ok(transfer) => SyncOutcome::Accepted { transfer },
                Err(e) => SyncOutcome::Rejected { error: e.0 },
            },
        })
        .collect();
    clock.lap(profile::Phase::Writer);
    let inbox = inbox::read_inbox(&state, account, request.inbox_after).await?;
    let balance = ledger::balance(&state.db.pool, account).await?;
    clock.lap(profile::Phase::Account);
    Ok(Json(SyncResponse {
        results,
        inbox,
        balance,
    }))
}

/// Checks one item's body, signature and age. On failure, returns the
/// item's key (if readable) with the reason.
fn check(
    public_key: &[u8; 32],
    item: &SyncItem,
    now: i64,
) -> Result<(String, ItemBody), (String, AppError)> {
    let unreadable = |e: serde_json::Error| {
        (
            String::new(),
            AppError::new(
                ErrorCode::MalformedJson,
                format!(
                    "the item's body is not a valid {:?} request: {e}",
                    item.kind
                ),
            ),
        )
    };
    let (key, body) = match item.kind {
        SyncItemKind::Send => {
            let body: SendRequest = serde_json::from_str(&item.body).map_err(unreadable)?;
            (body.idempotency_key.clone(), ItemBody::Send(body))
        }
        SyncItemKind::Claim => {
            let body: ClaimRequest = serde_json::from_str(&item.body).map_err(unreadable)?;
            (body.idempotency_key.clone(), ItemBody::Claim(body))
        }
    };
    let fail = |e: AppError| (key.clone(), e);
    signing::verify(
        public_key,
        &item.signature,
        "POST",
        item.kind.path(),
        item.body.as_bytes(),
        item.signed_at_ms,
        &key,
    )
    .map_err(|e| {
        fail(AppError::new(
            ErrorCode::BadSignature,
            format!("the item's signature does not hold: {e}"),
        ))
    })?;
    let age_ms = now - item.signed_at_ms;
    if !(-MAX_CLOCK_SKEW_MS..=MAX_ITEM_AGE_MS).contains(&age_ms) {
        return Err(fail(AppError::new(
            ErrorCode::StaleTimestamp,
            format!(
                "the item was signed {} min from now; items must be confirmed again after {} h",
                -age_ms / 60_000,
                MAX_ITEM_AGE_MS / 3_600_000
            ),
        )));
    }
    Ok((key, body))
}

/// Prepares the money operation of a checked item.
async fn prepare(
    state: &AppState,
    account: i64,
    public_key: &[u8; 32],
    key: String,
    body: ItemBody,
    counterparts: &mut Counterparts,
) -> Result<(String, PreparedMoney), (String, AppError)> {
    let prepared = match &body {
        ItemBody::Send(b) => {
            let device = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                public_key,
            );
            money::prepare_send(state, account, &device, b, counterparts).await
        }
        ItemBody::Claim(b) => money::prepare_claim(state, account, b, counterparts).await,
    };
    match prepared {
        Ok(prepared) => {
            debug_assert_eq!(prepared.req.key(), key);
            Ok((key, prepared))
        }
        Err(e) => Err((key, e)),
    }
}

/// The PIN is typed once when drafts are queued and travels with each of
/// them. A wrong one must count as one wrong attempt, not one per item (five
/// queued items would lock the account): the first item carrying it goes to
/// the ledger and is counted there; later items with the same PIN are
/// refused here, uncounted. Checked against the stored hash read once per
/// sync; the ledger still checks every PIN it is given.
struct PinsOfThisSync {
    stored: Option<(String, String)>,
    wrong_seen: std::collections::HashSet<String>,
}

impl PinsOfThisSync {
    async fn load(state: &AppState, account: i64) -> AppResult<Self> {
        Ok(PinsOfThisSync {
            stored: ledger::pin_hash(&state.db.pool, account).await?,
            wrong_seen: Default::default(),
        })
    }

    fn refuse_repeat(&mut self, state: &AppState, pin: Option<&str>) -> Option<AppError> {
        let (pin, (salt, hash)) = (pin?, self.stored.as_ref()?);
        if state.secret.verify(salt, pin, hash) || self.wrong_seen.insert(pin.to_string()) {
            return None;
        }
        Some(AppError::new(
            ErrorCode::WrongPin,
            "wrong PIN (the same one as an earlier item of this sync, counted once); queue the item again with the right PIN",
        ))
    }
}

enum ItemBody {
    Send(SendRequest),
    Claim(ClaimRequest),
}

/// Decodes the transfer view of a successful (or replayed) item.
fn transfer_of(stored: &StoredResponse) -> AppResult<TransferView> {
    serde_json::from_str(&stored.body).map_err(|e| {
        AppError::new(
            ErrorCode::Internal,
            format!("a stored response is not a transfer view: {e}"),
        )
    })
}

/// Drives a sync's writer jobs to completion and returns their answers in
/// order.
///
/// The jobs are first polled in order, which is the order they enter the
/// writer's queue (its channel is FIFO), so items run in the order the user
/// queued them: with too little money, the later items are the ones refused.
/// `futures::join_all` would do the driving but does not promise that order.
async fn run_in_order(jobs: Vec<Pending>) -> Vec<Result<Vec<Reply>, AppError>> {
    let mut slots: Vec<(Option<Pending>, Option<Result<Vec<Reply>, AppError>>)> =
        jobs.into_iter().map(|job| (Some(job), None)).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (job, answer) in slots.iter_mut() {
            if let Some(fut) = job {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(r) => {
                        *answer = Some(r);
                        *job = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    slots
        .into_iter()
        .map(|(_, answer)| answer.expect("every job finished"))
        .collect()
}

/// Where `POST /v1/sync` spends its time, for the wallet benchmark (the
/// server runs in the benchmark's process): process-wide totals per phase,
/// taken and reset with [`take`](profile::take).
#[doc(hidden)]
pub mod profile {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Phase {
        /// The whole handler (after the request's signature was checked).
        Handler,
        /// Parsing the request body.
        Parse,
        /// Each item's body, signature and counterpart; the batch's
        /// idempotency and PIN look-ups; meanwhile the request's nonce (one
        /// writer job, queued behind the jobs already waiting).
        Prepare,
        /// The items' writer jobs, up to their durable commit.
        Writer,
        /// Inside the items' writer jobs (the rest of `Writer` is waiting
        /// in the writer's queue and for the commit).
        Jobs,
        /// The inbox page and the balance.
        Account,
    }

    pub const PHASES: [Phase; 6] = [
        Phase::Handler,
        Phase::Parse,
        Phase::Prepare,
        Phase::Writer,
        Phase::Jobs,
        Phase::Account,
    ];

    impl Phase {
        pub fn name(self) -> &'static str {
            match self {
                Phase::Handler => "server: sync handler",
                Phase::Parse => "server: parse body",
                Phase::Prepare => "server: nonce | verify + prepare",
                Phase::Writer => "server: ledger jobs + commit",
                Phase::Jobs => "server:   inside the jobs",
                Phase::Account => "server: inbox + balance",
            }
        }
    }

    static NANOS: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];
    static COUNTS: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];

    pub(crate) fn add(phase: Phase, took: Duration) {
        NANOS[phase as usize].fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        COUNTS[phase as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Times consecutive phases of one request.
    pub(crate) struct Clock(Instant);

    impl Clock {
        pub(crate) fn start() -> Clock {
            Clock(Instant::now())
        }

        pub(crate) fn lap(&mut self, phase: Phase) {
            let now = Instant::now();
            add(phase, now - self.0);
            self.0 = now;
        }
    }

    /// Every phase's total time and how many requests ran it since the last
    /// `take`; resets them.
    pub fn take() -> Vec<(Phase, Duration, u64)> {
        PHASES
            .iter()
            .map(|&phase| {
                let nanos = NANOS[phase as usize].swap(0, Ordering::Relaxed);
                let count = COUNTS[phase as usize].swap(0, Ordering::Relaxed);
                (phase, Duration::from_nanos(nanos), count)
            })
            .collect()
    }
}
