//! `POST /v1/sync`: a phone's outbox in one request (wire format in
//! `clink_protocol::wire::sync`).
//!
//! Each item was signed by the device key when the user confirmed it, so its
//! signature is checked here without the five-minute window of fresh
//! requests (items may have been drafted offline hours ago); an age limit
//! below the idempotency retention keeps a replayed item from ever running
//! twice. Items then go through exactly the money rules of
//! `POST /v1/transfers/send` and `POST /v1/claims` (`money::prepare_*`,
//! `money::money_job`), one writer job each, all queued at once so they share
//! group commits. A refused item is reported and the others go on.

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
type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// One item on its way: refused while being checked, or a queued writer job.
enum Item {
    Refused(String, AppError),
    Queued(String, Pending),
}

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
    let mut items = Vec::with_capacity(prepared_items.len());
    for prepared in prepared_items {
        let (key, mut prepared) = match prepared {
            Ok(ready) => ready,
            Err((key, error)) => {
                items.push(Item::Refused(key, error));
                continue;
            }
        };
        if let Some(error) = pins.refuse_repeat(&state, prepared.req.pin()) {
            items.push(Item::Refused(key, error));
            continue;
        }
        prepared.req.seen_before = seen.contains(&key);
        let st = state.clone();
        let job = async move {
            st.clone()
                .writer
                .run(move |conn| {
                    Box::pin(async move {
                        money::money_job(&st, conn, account, &prepared.req, prepared.post).await
                    })
                })
                .await
        };
        items.push(Item::Queued(key, Box::pin(job)));
    }

    let results = run_in_order(items)
        .await
        .into_iter()
        .map(|(idempotency_key, reply)| SyncItemResult {
            idempotency_key,
            outcome: match reply.and_then(|stored| transfer_of(&stored)) {
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

/// Drives all queued jobs to completion and returns their replies in order.
///
/// The jobs are first polled in item order, which is the order they enter the
/// writer's queue (its channel is FIFO), so items run in the order the user
/// queued them: with too little money, the later items are the ones refused.
/// `futures::join_all` would do the driving but does not promise that order.
async fn run_in_order(items: Vec<Item>) -> Vec<(String, Reply)> {
    let mut keys = Vec::with_capacity(items.len());
    let mut slots: Vec<(Option<Pending>, Option<Reply>)> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Refused(key, error) => {
                keys.push(key);
                slots.push((None, Some(Err(error))));
            }
            Item::Queued(key, job) => {
                keys.push(key);
                slots.push((Some(job), None));
            }
        }
    }
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (job, reply) in slots.iter_mut() {
            if let Some(fut) = job {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(r) => {
                        *reply = Some(r);
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
    keys.into_iter()
        .zip(slots)
        .map(|(key, (_, reply))| (key, reply.expect("every job finished")))
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
        /// The inbox page and the balance.
        Account,
    }

    pub const PHASES: [Phase; 5] = [
        Phase::Handler,
        Phase::Parse,
        Phase::Prepare,
        Phase::Writer,
        Phase::Account,
    ];

    impl Phase {
        pub fn name(self) -> &'static str {
            match self {
                Phase::Handler => "server: sync handler",
                Phase::Parse => "server: parse body",
                Phase::Prepare => "server: nonce | verify + prepare",
                Phase::Writer => "server: ledger jobs + commit",
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
