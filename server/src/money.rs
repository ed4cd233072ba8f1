//! The request flow every money operation shares: validation
//! ([`MoneyRequest`]), then one writer job that replays a known key's answer,
//! checks the PIN and policy, runs the operation's own writes and remembers
//! the answer. Used by the send, claim and withdrawal handlers and by
//! `POST /v1/sync`.

use std::sync::Arc;

use axum::response::Response;
use clink_protocol::phone::PhoneNumber;
use clink_protocol::wire::*;
use sqlx::{AnyConnection, Executor};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Failure, NewTransfer, StoredResponse, outcome};
use crate::request::{counterpart_by_phone, new_transfer_id, parse_phone, respond, write_signed};
use crate::second_factor::{self, Proof};
use crate::writer::Outcome;
use crate::{AppState, now_ms};

/// A request that moves money, validated and ready for the writer.
pub(crate) struct MoneyRequest {
    key: String,
    fingerprint: String,
    pub(crate) amount: i64,
    pub(crate) memo: String,
    pin: Option<String>,
    /// The key already had a response when the request arrived: most
    /// likely a retry, so the writer looks up its answer first.
    pub(crate) seen_before: bool,
    /// A send whose PIN matched on arrival: the writer tries it in one
    /// statement first (`ledger::post_send_directly`).
    direct: Option<DirectSend>,
}

/// What a send needs to be posted in one statement.
struct DirectSend {
    id: String,
    payee: i64,
    payee_view: Counterpart,
    /// The stored PIN hash the typed PIN matched.
    pin_hash: String,
}

impl MoneyRequest {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn pin(&self) -> Option<&str> {
        self.pin.as_deref()
    }

    pub(crate) fn new(
        state: &AppState,
        path: &str,
        body: &impl serde::Serialize,
        key: &str,
        amount: i64,
        memo: &str,
        pin: Option<&str>,
    ) -> AppResult<Self> {
        ledger::check_idempotency_key(key)?;
        ledger::check_amount(amount, state.config.max_amount)?;
        let memo = ledger::check_memo(memo)?;
        if let Some(pin) = pin {
            ledger::check_pin_format(pin)?;
        }
        Ok(MoneyRequest {
            key: key.to_string(),
            fingerprint: ledger::fingerprint(path, body),
            amount,
            memo,
            pin: pin.map(str::to_string),
            seen_before: false,
            direct: None,
        })
    }
}

/// Runs one money operation: nonce, idempotent replay, PIN, then `post`.
pub(crate) async fn run_money<F>(
    state: &Arc<AppState>,
    caller: Caller,
    mut req: MoneyRequest,
    post: F,
) -> AppResult<Response>
where
    F: for<'c> FnOnce(
            &'c AppState,
            &'c mut AnyConnection,
            i64,
            &'c MoneyRequest,
            JobContext,
        ) -> ledger_future::Fut<'c>
        + Send
        + 'static,
{
    // A send tried in one statement finds an answered key there itself.
    if req.direct.is_none() {
        req.seen_before = !ledger::keys_seen(&state.db.pool, caller.account_id, &[&req.key])
            .await?
            .is_empty();
    }
    let account = caller.account_id;
    let response = write_signed(state, caller.signed, move |st, conn| {
        Box::pin(async move { money_job(st, conn, account, &req, post).await })
    })
    .await?;
    Ok(respond(response))
}

/// What a money job knows when `post` runs: its clock, and what the PIN
/// check read about the payer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JobContext {
    pub now: i64,
    pub pin: ledger::PinCheck,
}

/// The money rules of one operation inside a writer job, after its nonce:
/// idempotent replay, PIN and policy, `post`, then remembering the answer.
/// Shared by the single-request handlers and `POST /v1/sync`.
///
/// A key that has a response always gets that response, byte for byte. The
/// look-up costs a statement in the one writer every payment queues for, so
/// it runs up front only for keys seen before the job was queued
/// (`seen_before`) and after a one-statement send wrote nothing; a
/// duplicate that overtook this request while it was on
/// its way is caught when the answer is remembered (or when the request
/// fails), and then this job's writes are undone and the earlier answer
/// sent.
pub(crate) async fn money_job<F>(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    post: F,
) -> Outcome<StoredResponse>
where
    F: for<'c> FnOnce(
        &'c AppState,
        &'c mut AnyConnection,
        i64,
        &'c MoneyRequest,
        JobContext,
    ) -> ledger_future::Fut<'c>,
{
    // A send expected to pass goes to the ledger in one statement; when a
    // rule does not hold, nothing of it was written, and the steps below run
    // and say which rule failed.
    let mut look_up_first = req.seen_before;
    if let (Some(direct), false) = (&req.direct, req.seen_before) {
        match post_directly(st, conn, account, req, direct).await {
            Ok(Posted::Yes(response)) => return outcome(Ok(response)),
            // Its key may have an answer: look it up before the steps.
            Ok(Posted::No | Posted::Undone) => look_up_first = true,
            Err(e) => return outcome(Err(e.into())),
        }
    }
    if look_up_first {
        match ledger::replay(conn, account, &req.key, &req.fingerprint).await {
            Ok(Some(stored)) => return outcome(Ok(stored)),
            Ok(None) => {}
            Err(e) => return outcome(Err(e.into())),
        }
    }
    match apply_money(st, conn, account, req, post).await {
        Ok(Some(response)) => outcome(Ok(response)),
        Ok(None) => earlier_answer(conn, account, req, None).await,
        Err(failure) => earlier_answer(conn, account, req, Some(failure)).await,
    }
}

/// Several money operations of one account in one writer job, in order, as
/// if each had a job of its own: each gets its own reply, and an item that
/// fails undoes none of the others.
///
/// A send expected to pass ([`MoneyRequest`]'s `direct`) costs one round trip
/// to the database: its one statement writes everything or nothing, so
/// consecutive ones share one savepoint (named like the writer's, so
/// [`crate::writer::undo_job`] goes back to it). Only a statement that wrote
/// part of the way and was undone takes the others since that savepoint with
/// it: those are run again, and from there on every item runs [`money_job`]
/// in a savepoint of its own, as do items that need the step-by-step path (a
/// rule did not hold, a claim, a key seen before). A failing savepoint
/// statement (the connection broke) fails the whole job; its writes are then
/// undone and no item is answered as done.
pub(crate) async fn money_jobs(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    items: Vec<PreparedMoney>,
) -> Outcome<Vec<Result<StoredResponse, AppError>>> {
    match run_items(st, conn, account, items).await {
        Ok(replies) => outcome(Ok(replies)),
        Err(e) => outcome(Err(e.into())),
    }
}

async fn run_items(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    items: Vec<PreparedMoney>,
) -> AppResult<Vec<Result<StoredResponse, AppError>>> {
    let n = items.len();
    let mut items: Vec<Option<PreparedMoney>> = items.into_iter().map(Some).collect();
    let mut replies: Vec<Option<Result<StoredResponse, AppError>>> = (0..n).map(|_| None).collect();
    // The savepoint the direct sends since `shared_from` share.
    conn.execute("SAVEPOINT job").await?;
    let mut shared_from = 0;
    let mut each_its_own = false;
    let mut i = 0;
    while i < n {
        let item = items[i].as_mut().expect("an item runs once");
        if !each_its_own && !item.req.seen_before {
            if let Some(direct) = &item.req.direct {
                match post_directly(st, conn, account, &item.req, direct).await? {
                    Posted::Yes(response) => {
                        replies[i] = Some(Ok(response));
                        i += 1;
                        continue;
                    }
                    // Nothing written: the steps below say which rule failed.
                    Posted::No => {
                        item.req.direct = None;
                        item.req.seen_before = true;
                    }
                    Posted::Undone => {
                        for reply in &mut replies[shared_from..i] {
                            *reply = None;
                        }
                        i = shared_from;
                        each_its_own = true;
                        continue;
                    }
                }
            }
        }
        let item = items[i].take().expect("an item runs once");
        conn.execute("SAVEPOINT job").await?;
        let done = money_job(st, conn, account, &item.req, item.post).await;
        // Its own savepoint, then the shared one (this item cannot be run
        // again), and a new shared one for the items after it.
        conn.execute(if done.keep_writes {
            "RELEASE SAVEPOINT job; RELEASE SAVEPOINT job; SAVEPOINT job"
        } else {
            "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job; RELEASE SAVEPOINT job; SAVEPOINT job"
        })
        .await?;
        replies[i] = Some(done.reply);
        i += 1;
        shared_from = i;
    }
    conn.execute("RELEASE SAVEPOINT job").await?;
    Ok(replies
        .into_iter()
        .map(|reply| reply.expect("every item ran"))
        .collect())
}

/// What [`post_directly`] did.
enum Posted {
    Yes(StoredResponse),
    /// A rule did not hold; nothing was written.
    No,
    /// It wrote part of the way and was undone back to the job's
    /// (innermost) savepoint.
    Undone,
}

/// The send in one statement.
async fn post_directly(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    direct: &DirectSend,
) -> AppResult<Posted> {
    let now = now_ms();
    let t = NewTransfer {
        id: &direct.id,
        kind: TransferKind::Send,
        debit: account,
        credit: direct.payee,
        amount: req.amount,
        memo: &req.memo,
        expires_at: None,
    };
    let view = ledger::posted_view(&t, account, direct.payee_view.clone(), now);
    let response = StoredResponse::json(201, &view);
    // The nonce is already recorded (`write_signed`; a sync's own nonce).
    let send = ledger::DirectSend {
        nonce: None,
        pin_hash: &direct.pin_hash,
        transfer: &t,
        key: &req.key,
        fingerprint: &req.fingerprint,
        response: &response,
        now,
    };
    Ok(
        match ledger::send_directly(conn, st.db.backend, &send).await? {
            ledger::Direct::Posted => Posted::Yes(response),
            ledger::Direct::NotPosted => Posted::No,
            ledger::Direct::Undone => Posted::Undone,
        },
    )
}

/// PIN, policy and `post`, then the answer remembered under the request's
/// key; `None` if the key turned out to have an answer already.
async fn apply_money<F>(
    st: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    post: F,
) -> Result<Option<StoredResponse>, Failure>
where
    F: for<'c> FnOnce(
        &'c AppState,
        &'c mut AnyConnection,
        i64,
        &'c MoneyRequest,
        JobContext,
    ) -> ledger_future::Fut<'c>,
{
    let now = now_ms();
    let pin = match &req.pin {
        Some(pin) => ledger::check_pin(st, conn, account, pin, now).await?,
        None => ledger::PinCheck::default(),
    };
    // `post` may check a second factor; the count of wrong attempts clears
    // only when every factor has passed.
    let response = post(st, conn, account, req, JobContext { now, pin }).await?;
    if pin.wrong_before != 0 {
        ledger::clear_wrong_attempts(conn, account).await?;
    }
    let remembered =
        ledger::remember(conn, account, &req.key, &req.fingerprint, &response, now).await?;
    Ok(remembered.then_some(response))
}

/// The answer for a request whose own run did not stand: the stored answer
/// of a duplicate done before it (this run's writes, even a counted wrong
/// PIN, are undone: the same key with the same body carries the same PIN),
/// or else its own `failure`.
async fn earlier_answer(
    conn: &mut AnyConnection,
    account: i64,
    req: &MoneyRequest,
    failure: Option<Failure>,
) -> Outcome<StoredResponse> {
    match ledger::replay(conn, account, &req.key, &req.fingerprint).await {
        Ok(Some(stored)) => Outcome {
            keep_writes: false,
            reply: Ok(stored),
        },
        Ok(None) => match failure {
            Some(failure) => outcome(Err(failure)),
            None => outcome(Err(AppError::new(
                ErrorCode::Internal,
                "an idempotency record vanished while its request was answered",
            )
            .into())),
        },
        Err(e) => outcome(Err(e.into())),
    }
}

pub(crate) mod ledger_future {
    use super::*;
    pub type Fut<'c> = crate::writer::BoxFuture<'c, Result<StoredResponse, Failure>>;
    /// What a money operation writes once its PIN and policy passed.
    pub type Post = Box<
        dyn for<'c> FnOnce(
                &'c AppState,
                &'c mut AnyConnection,
                i64,
                &'c MoneyRequest,
                JobContext,
            ) -> Fut<'c>
            + Send,
    >;
}

/// A send or claim, validated and with its counterpart resolved.
pub(crate) struct PreparedMoney {
    pub req: MoneyRequest,
    pub post: ledger_future::Post,
}

/// Counterparts already looked up (the number parsed, and its account), by
/// the number as the client wrote it: a sync's items mostly name the same
/// few, and parsing a number costs more than the rest of an item's checks.
pub(crate) type Counterparts =
    std::collections::HashMap<String, (PhoneNumber, Option<(i64, Counterpart)>)>;

async fn lookup_counterpart(
    state: &AppState,
    known: &mut Counterparts,
    input: &str,
) -> AppResult<(PhoneNumber, Option<(i64, Counterpart)>)> {
    if let Some(found) = known.get(input) {
        return Ok(found.clone());
    }
    let phone = parse_phone(state, input)?;
    let found = counterpart_by_phone(state, &phone).await?;
    known.insert(input.to_string(), (phone.clone(), found.clone()));
    Ok((phone, found))
}

pub(crate) async fn prepare_send(
    state: &AppState,
    account: i64,
    device: &str,
    body: &SendRequest,
    known: &mut Counterparts,
) -> AppResult<PreparedMoney> {
    let mut req = MoneyRequest::new(
        state,
        paths::SEND,
        body,
        &body.idempotency_key,
        body.amount,
        &body.memo,
        Some(&body.pin),
    )?;
    let (payee_phone, found) = lookup_counterpart(state, known, &body.payee).await?;
    let (payee, payee_view) = found.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownPayee,
            format!("{payee_phone} has no Clink account"),
        )
    })?;
    if payee == account {
        return Err(AppError::new(
            ErrorCode::SelfTransfer,
            "you cannot pay yourself",
        ));
    }
    let id = new_transfer_id(state);
    if let Some((salt, hash)) = state.users.pin_hash(&state.db.pool, account).await? {
        if state.secret.verify(&salt, &body.pin, &hash) {
            req.direct = Some(DirectSend {
                id: id.clone(),
                payee,
                payee_view: payee_view.clone(),
                pin_hash: hash,
            });
        }
    }
    let device = device.to_string();
    let proof = Proof {
        challenge_id: body.challenge_id.clone(),
        response: body.challenge_response.clone(),
    };
    let post: ledger_future::Post = Box::new(move |st, conn, account, req, job| {
        Box::pin(async move {
            let now = job.now;
            let limit = job.pin.second_factor_above;
            second_factor::enforce_policy(
                st, conn, &device, account, req.amount, limit, &proof, now,
            )
            .await?;
            let t = NewTransfer {
                id: &id,
                kind: TransferKind::Send,
                debit: account,
                credit: payee,
                amount: req.amount,
                memo: &req.memo,
                expires_at: None,
            };
            let seq = ledger::insert_posted(conn, &st.system, &t, now).await?;
            ledger::notify(conn, payee, NotificationKind::PaymentReceived, seq, now).await?;
            Ok(StoredResponse::json(
                201,
                &ledger::posted_view(&t, account, payee_view, now),
            ))
        })
    });
    Ok(PreparedMoney { req, post })
}

pub(crate) async fn prepare_claim(
    state: &AppState,
    account: i64,
    body: &ClaimRequest,
    known: &mut Counterparts,
) -> AppResult<PreparedMoney> {
    let req = MoneyRequest::new(
        state,
        paths::CLAIMS,
        body,
        &body.idempotency_key,
        body.amount,
        &body.memo,
        None,
    )?;
    let (payer_phone, found) = lookup_counterpart(state, known, &body.payer).await?;
    let (payer, _) = found.ok_or_else(|| {
        AppError::new(
            ErrorCode::UnknownPayee,
            format!("{payer_phone} has no Clink account"),
        )
    })?;
    if payer == account {
        return Err(AppError::new(
            ErrorCode::SelfTransfer,
            "you cannot ask yourself for money",
        ));
    }
    let id = new_transfer_id(state);
    let ttl_ms = state.config.claim_ttl().as_millis() as i64;
    let post: ledger_future::Post = Box::new(move |_st, conn, account, req, job| {
        Box::pin(async move {
            let now = job.now;
            let t = NewTransfer {
                id: &id,
                kind: TransferKind::Claim,
                debit: payer,
                credit: account,
                amount: req.amount,
                memo: &req.memo,
                expires_at: Some(now + ttl_ms),
            };
            let seq = ledger::insert_pending(conn, &t, now).await?;
            ledger::notify(conn, payer, NotificationKind::ClaimReceived, seq, now).await?;
            Ok(StoredResponse::json(
                201,
                &ledger::view(&mut *conn, seq, account).await?,
            ))
        })
    });
    Ok(PreparedMoney { req, post })
}
