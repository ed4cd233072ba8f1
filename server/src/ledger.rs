//! The money rules. Every function here runs inside a ledger-writer job (one
//! savepoint of a group-committed transaction), so each operation is atomic:
//! its nonce, its PIN bookkeeping, its transfer, its entries, its notifications
//! and its idempotency record stand or fall together.

use clink_protocol::wire::{
    Counterpart, Direction, ErrorCode, NotificationKind, TransferKind, TransferState, TransferView,
    VoidReason, text,
};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Executor, Row};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::writer::Outcome;

/// Accounts that stand for money entering and leaving Clink. Their balances
/// mirror the users' so that all balances always sum to zero.
#[derive(Clone, Copy, Debug)]
pub struct SystemAccounts {
    pub cash_in: i64,
    pub cash_out: i64,
}

impl SystemAccounts {
    pub async fn load(pool: &AnyPool) -> Result<SystemAccounts, sqlx::Error> {
        let id = |kind: &'static str| async move {
            sqlx::query("SELECT id FROM accounts WHERE kind = $1")
                .bind(kind)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>(0)
        };
        Ok(SystemAccounts {
            cash_in: id("cash_in").await?,
            cash_out: id("cash_out").await?,
        })
    }

    fn contains(&self, account: i64) -> bool {
        account == self.cash_in || account == self.cash_out
    }
}

/// A failure inside a job, and whether the job's writes must stand anyway
/// (a wrong PIN is counted even though the payment is refused).
pub struct Failure {
    pub error: AppError,
    pub keep_writes: bool,
}

impl From<AppError> for Failure {
    fn from(error: AppError) -> Self {
        Failure {
            error,
            keep_writes: false,
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        AppError::from(e).into()
    }
}

pub fn outcome<T>(result: Result<T, Failure>) -> Outcome<T> {
    match result {
        Ok(v) => Outcome {
            keep_writes: true,
            reply: Ok(v),
        },
        Err(f) => Outcome {
            keep_writes: f.keep_writes,
            reply: Err(f.error),
        },
    }
}

/// A response exactly as sent, so an idempotent replay is byte-identical.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

impl StoredResponse {
    pub fn json(status: u16, value: &impl Serialize) -> StoredResponse {
        StoredResponse {
            status,
            body: serde_json::to_string(value).expect("wire types serialise"),
        }
    }
}

fn bad(code: ErrorCode, message: impl Into<String>) -> AppError {
    AppError::new(code, message)
}

// ---------------------------------------------------------------- validation

pub fn check_amount(amount: i64, max_amount: i64) -> AppResult<()> {
    if amount <= 0 {
        return Err(bad(
            ErrorCode::InvalidAmount,
            format!("the amount must be positive, got {amount}"),
        ));
    }
    if amount > max_amount {
        return Err(bad(
            ErrorCode::AmountTooLarge,
            format!("the amount {amount} is above the largest allowed transfer, {max_amount}"),
        ));
    }
    Ok(())
}

/// A memo as it will be stored (NFC), or `invalid_memo` naming what is
/// wrong (rules shared with the phone: `clink_protocol::wire::text`).
pub fn check_memo(memo: &str) -> AppResult<String> {
    text::check_memo(memo).map_err(|e| AppError(e.into()))
}

/// A display name as it will be stored (NFC), or `invalid_display_name`.
pub fn check_display_name(name: &str) -> AppResult<String> {
    text::check_display_name(name).map_err(|e| AppError(e.into()))
}

pub fn check_pin_format(pin: &str) -> AppResult<()> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(ErrorCode::InvalidPin, "a PIN is 4 to 12 digits"));
    }
    Ok(())
}

pub fn check_idempotency_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            ErrorCode::InvalidRequest,
            "the idempotency key must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(())
}

// ------------------------------------------------------------- idempotency

/// What identifies "the same request": the path and the body's fields in a
/// canonical order, without the PIN and second factor (a person may retype
/// the PIN on retry, and a retry needs a fresh challenge).
pub fn fingerprint(path: &str, request: &impl Serialize) -> String {
    let mut value = serde_json::to_value(request).expect("wire types serialise");
    if let Some(map) = value.as_object_mut() {
        for secret in ["pin", "challenge_id", "challenge_response"] {
            map.remove(secret);
        }
    }
    let canonical = format!("{path}\n{value}");
    hex::encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// The stored response for this key, if the request was already done; an
/// error if the key was used for a different request.
pub async fn replay(
    conn: &mut AnyConnection,
    account: i64,
    key: &str,
    fingerprint: &str,
) -> AppResult<Option<StoredResponse>> {
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM idempotency WHERE account_id = $1 AND key = $2",
    )
    .bind(account)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<String, _>(0)? != fingerprint {
        return Err(bad(
            ErrorCode::IdempotencyKeyReused,
            "this idempotency key was already used for a different request; use a new key for a new payment",
        ));
    }
    Ok(Some(StoredResponse {
        status: row.try_get::<i64, _>(1)? as u16,
        body: row.try_get(2)?,
    }))
}

/// The keys among `keys` that already have a stored response. Read outside
/// the writer, so that only requests likely to be retries pay for a replay
/// look-up inside it; [`remember`] catches the rest.
pub async fn keys_seen<'e, E: Executor<'e, Database = sqlx::Any>>(
    db: E,
    account: i64,
    keys: &[&str],
) -> AppResult<std::collections::HashSet<String>> {
    if keys.is_empty() {
        return Ok(Default::default());
    }
    let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT key FROM idempotency WHERE account_id = $1 AND key IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(account);
    for key in keys {
        query = query.bind(*key);
    }
    let rows = query.fetch_all(db).await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<String, _>(0)?))
        .collect()
}

/// Remembers a successful response. Failures are not stored: a refused
/// request may be corrected and sent again under the same key. Returns false
/// when the key already has a response: a duplicate of this request was
/// done first, and its answer stands.
pub async fn remember(
    conn: &mut AnyConnection,
    account: i64,
    key: &str,
    fingerprint: &str,
    response: &StoredResponse,
    now: i64,
) -> AppResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency (account_id, key, request_hash, response_status, response_body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(account)
    .bind(key)
    .bind(fingerprint)
    .bind(response.status as i64)
    .bind(&response.body)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

// --------------------------------------------------------------------- PIN

/// Checks the PIN and the lockout. A wrong PIN is counted (and may lock the
/// account); that bookkeeping must be committed even though the request fails.
/// A right PIN clears the count.
pub async fn verify_pin(
    state: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    pin: &str,
    now: i64,
) -> Result<(), Failure> {
    if check_pin(state, conn, account, pin, now)
        .await?
        .wrong_before
        != 0
    {
        clear_wrong_attempts(conn, account).await?;
    }
    Ok(())
}

/// What a right PIN tells the rest of the request, read in the same
/// statement as the PIN so a payment costs one look-up of its user.
#[derive(Clone, Copy, Debug, Default)]
pub struct PinCheck {
    /// Wrong PINs and challenge responses counted before this one.
    pub wrong_before: i64,
    /// The amount above which the user's policy wants a second factor.
    pub second_factor_above: Option<i64>,
}

/// Like [`verify_pin`], but a right PIN leaves the count alone: for requests
/// that check a second factor after the PIN, so that a right PIN cannot wipe
/// out wrong challenge responses (nor the reverse). They call
/// [`clear_wrong_attempts`] once every factor has passed.
pub async fn check_pin(
    state: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    pin: &str,
    now: i64,
) -> Result<PinCheck, Failure> {
    let row = sqlx::query(
        "SELECT pin_salt, pin_hash, failed_pins, locked_until, second_factor_above FROM users WHERE account_id = $1",
    )
    .bind(account)
    .fetch_one(&mut *conn)
    .await?;
    let (salt, hash): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let failed: i64 = row.try_get(2)?;
    let locked_until: i64 = row.try_get(3)?;
    if locked_until > now {
        return Err(locked(locked_until).into());
    }
    if state.secret.verify(&salt, pin, &hash) {
        return Ok(PinCheck {
            wrong_before: failed,
            second_factor_above: row.try_get(4)?,
        });
    }
    let error = count_wrong_attempt(
        state,
        conn,
        account,
        failed,
        now,
        ErrorCode::WrongPin,
        "wrong PIN",
    )
    .await?;
    Err(Failure {
        error,
        keep_writes: true,
    })
}

/// The user's PIN salt and keyed hash, read outside the writer for checks
/// that only sort requests (the writer's [`check_pin`] decides).
pub async fn pin_hash<'e, E: Executor<'e, Database = sqlx::Any>>(
    db: E,
    account: i64,
) -> AppResult<Option<(String, String)>> {
    let row = sqlx::query("SELECT pin_salt, pin_hash FROM users WHERE account_id = $1")
        .bind(account)
        .fetch_optional(db)
        .await?;
    Ok(match row {
        Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
        None => None,
    })
}

/// What never changes about a registered user, kept in memory because
/// every send needs it: the account and display name behind a number, the
/// PIN salt and keyed hash of an account. A user is never deleted and these
/// are never updated, so an entry can never be stale (the writer checks the
/// PIN hash it is given against the row anyway); the day they can change,
/// changing them must remove the entry (on every instance).
#[derive(Default)]
pub struct UserCache {
    by_phone: std::sync::Mutex<std::collections::HashMap<String, (i64, String)>>,
    pins: std::sync::Mutex<std::collections::HashMap<i64, (String, String)>>,
}

impl UserCache {
    /// Most entries of each kind; past it a map starts again empty.
    const CAPACITY: usize = 100_000;

    fn put<K: std::hash::Hash + Eq, V>(
        map: &std::sync::Mutex<std::collections::HashMap<K, V>>,
        key: K,
        value: V,
    ) {
        let mut map = map.lock().unwrap();
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(key, value);
    }

    /// The account and display name registered for an E.164 number.
    pub async fn by_phone<'e, E: Executor<'e, Database = sqlx::Any>>(
        &self,
        db: E,
        e164: &str,
    ) -> AppResult<Option<(i64, String)>> {
        if let Some(found) = self.by_phone.lock().unwrap().get(e164) {
            return Ok(Some(found.clone()));
        }
        let row = sqlx::query("SELECT account_id, display_name FROM users WHERE phone = $1")
            .bind(e164)
            .fetch_optional(db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let found: (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        Self::put(&self.by_phone, e164.to_string(), found.clone());
        Ok(Some(found))
    }

    /// The PIN salt and keyed hash of an account ([`pin_hash`], cached).
    pub async fn pin_hash<'e, E: Executor<'e, Database = sqlx::Any>>(
        &self,
        db: E,
        account: i64,
    ) -> AppResult<Option<(String, String)>> {
        if let Some(found) = self.pins.lock().unwrap().get(&account) {
            return Ok(Some(found.clone()));
        }
        let found = pin_hash(db, account).await?;
        if let Some(found) = &found {
            Self::put(&self.pins, account, found.clone());
        }
        Ok(found)
    }
}

/// Forgets earlier wrong PINs and challenge responses.
pub async fn clear_wrong_attempts(conn: &mut AnyConnection, account: i64) -> AppResult<()> {
    sqlx::query("UPDATE users SET failed_pins = 0 WHERE account_id = $1")
        .bind(account)
        .execute(conn)
        .await?;
    Ok(())
}

/// Refuses while payments are locked; otherwise returns how many wrong PINs
/// or challenge responses are counted so far.
pub async fn check_not_locked(conn: &mut AnyConnection, account: i64, now: i64) -> AppResult<i64> {
    let row = sqlx::query("SELECT failed_pins, locked_until FROM users WHERE account_id = $1")
        .bind(account)
        .fetch_one(conn)
        .await?;
    let (failed, locked_until): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if locked_until > now {
        return Err(locked(locked_until));
    }
    Ok(failed)
}

/// Counts one more wrong PIN or challenge response (they share one counter,
/// `failed_pins`) after `failed` earlier ones, and returns the error to send:
/// `code` with the attempts remaining, or `account_locked` once none remain.
/// The caller must keep its writes although the request fails.
pub async fn count_wrong_attempt(
    state: &AppState,
    conn: &mut AnyConnection,
    account: i64,
    failed: i64,
    now: i64,
    code: ErrorCode,
    what: &str,
) -> AppResult<AppError> {
    let failed = failed + 1;
    let max = state.config.pin_max_attempts as i64;
    if failed >= max {
        let until = now + state.config.lockout_secs as i64 * 1000;
        sqlx::query("UPDATE users SET failed_pins = 0, locked_until = $1 WHERE account_id = $2")
            .bind(until)
            .bind(account)
            .execute(conn)
            .await?;
        return Ok(locked(until));
    }
    sqlx::query("UPDATE users SET failed_pins = $1 WHERE account_id = $2")
        .bind(failed)
        .bind(account)
        .execute(conn)
        .await?;
    let remaining = (max - failed) as u32;
    let mut e = bad(
        code,
        format!(
            "{what}; {remaining} more wrong attempt(s) lock payments for {} minutes",
            state.config.lockout_secs / 60
        ),
    );
    e.0.attempts_remaining = Some(remaining);
    Ok(e)
}

fn locked(until: i64) -> AppError {
    let mut e = bad(
        ErrorCode::AccountLocked,
        "payments are locked after too many wrong PINs or challenge responses; try again later",
    );
    e.0.locked_until_ms = Some(until);
    e
}

// --------------------------------------------------------------- transfers

pub struct NewTransfer<'a> {
    pub id: &'a str,
    pub kind: TransferKind,
    pub debit: i64,
    pub credit: i64,
    pub amount: i64,
    pub memo: &'a str,
    pub expires_at: Option<i64>,
}

/// Writes a pending transfer; no money moves until it is posted.
pub async fn insert_pending(
    conn: &mut AnyConnection,
    t: &NewTransfer<'_>,
    now: i64,
) -> AppResult<i64> {
    insert_transfer(conn, t, TransferState::Pending, now).await
}

/// The view of a transfer just posted by `viewer`'s own request, built
/// without reading it back.
pub fn posted_view(
    t: &NewTransfer<'_>,
    viewer: i64,
    counterpart: Counterpart,
    now: i64,
) -> TransferView {
    TransferView {
        id: t.id.to_string(),
        kind: t.kind,
        state: TransferState::Posted,
        void_reason: None,
        direction: if t.debit == viewer {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        amount: t.amount,
        counterpart,
        memo: t.memo.to_string(),
        created_at_ms: now,
        decided_at_ms: Some(now),
        expires_at_ms: t.expires_at,
    }
}

pub fn system_counterpart(kind: TransferKind) -> Counterpart {
    Counterpart {
        display_name: system_name(kind).to_string(),
        phone: None,
    }
}

/// Moves the money and writes a posted transfer with its two entries.
pub async fn insert_posted(
    conn: &mut AnyConnection,
    system: &SystemAccounts,
    t: &NewTransfer<'_>,
    now: i64,
) -> AppResult<i64> {
    move_money(conn, system, t.debit, t.credit, t.amount).await?;
    let seq = insert_transfer(conn, t, TransferState::Posted, now).await?;
    write_entries(conn, seq, t.debit, t.credit, t.amount).await?;
    Ok(seq)
}

async fn insert_transfer(
    conn: &mut AnyConnection,
    t: &NewTransfer<'_>,
    state: TransferState,
    now: i64,
) -> AppResult<i64> {
    let decided_at = (state == TransferState::Posted).then_some(now);
    let row = sqlx::query(
        "INSERT INTO transfers (id, kind, state, debit_account, credit_account, amount, memo, created_at, decided_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
    )
    .bind(t.id)
    .bind(kind_str(t.kind))
    .bind(state_str(state))
    .bind(t.debit)
    .bind(t.credit)
    .bind(t.amount)
    .bind(t.memo)
    .bind(now)
    .bind(decided_at)
    .bind(t.expires_at)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get(0)?)
}

/// A send whose checks are all expected to pass: the typed PIN matched the
/// stored hash when the request arrived, and its key had no answer then.
pub struct DirectSend<'a> {
    /// The device key and nonce of the signed request, when the job must
    /// record them (a sync item's nonce is its batch's).
    pub nonce: Option<(&'a str, &'a str)>,
    /// The stored PIN hash the typed PIN matched.
    pub pin_hash: &'a str,
    pub transfer: &'a NewTransfer<'a>,
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub response: &'a StoredResponse,
    pub now: i64,
}

/// Posts a send in one round trip to the database: its nonce, transfer,
/// balances, entries, notification and idempotency record. Every write is
/// conditional on one read of every rule (nonce unused, key unanswered, the
/// PIN hash unchanged, no wrong attempts counted, not locked, no second
/// factor needed, funds available), so when a rule does not hold nothing is
/// written and `Ok(false)` sends the caller to the step-by-step path, which
/// says which rule failed (and counts a wrong PIN). Writes that went only
/// part of the way (another server instance raced it on PostgreSQL) are
/// undone back to the start of the job, also `Ok(false)`.
pub async fn post_send_directly(
    conn: &mut AnyConnection,
    backend: crate::db::Backend,
    s: &DirectSend<'_>,
) -> AppResult<bool> {
    Ok(send_directly(conn, backend, s).await? == Direct::Posted)
}

/// What [`send_directly`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direct {
    Posted,
    /// A rule did not hold; nothing was written.
    NotPosted,
    /// It wrote part of the way and was undone back to the job's savepoint
    /// (with whatever else the job wrote since).
    Undone,
}

/// [`post_send_directly`], saying whether an undo happened.
pub async fn send_directly(
    conn: &mut AnyConnection,
    backend: crate::db::Backend,
    s: &DirectSend<'_>,
) -> AppResult<Direct> {
    let t = s.transfer;
    debug_assert_eq!(t.kind, TransferKind::Send);
    let sql = match (backend, s.nonce.is_some()) {
        (crate::db::Backend::Sqlite, true) => DIRECT_SEND_SQLITE_NONCE,
        (crate::db::Backend::Sqlite, false) => DIRECT_SEND_SQLITE,
        (crate::db::Backend::Postgres, true) => DIRECT_SEND_POSTGRES_NONCE,
        (crate::db::Backend::Postgres, false) => DIRECT_SEND_POSTGRES,
    };
    let mut query = sqlx::query(sql)
        .bind(s.now)
        .bind(t.debit)
        .bind(s.pin_hash)
        .bind(t.credit)
        .bind(t.amount)
        .bind(t.id)
        .bind(t.memo)
        .bind(s.key)
        .bind(s.fingerprint)
        .bind(&s.response.body)
        .bind(s.response.status as i64);
    if let Some((device, nonce)) = s.nonce {
        query = query.bind(device).bind(nonce);
    }
    // Rows written when every rule held: the transfer, two balances, two
    // entries, the notification, the idempotency record (and the nonce).
    let complete = if s.nonce.is_some() { 8 } else { 7 };
    let written = match backend {
        crate::db::Backend::Sqlite => query.execute(&mut *conn).await.map(|r| r.rows_affected()),
        crate::db::Backend::Postgres => query
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| row.try_get::<i64, _>(0))
            .map(|n| n as u64),
    };
    match written {
        Ok(n) if n == complete => Ok(Direct::Posted),
        Ok(0) => Ok(Direct::NotPosted),
        Ok(_) | Err(_) => {
            crate::writer::undo_job(conn).await?;
            Ok(Direct::Undone)
        }
    }
}

/// The rules a direct send checks, on the state before it writes (`$2`
/// payer, `$3` PIN hash, `$5` amount, `$1` now, `$8` key).
macro_rules! direct_send_rules {
    () => {
        "EXISTS (SELECT 1 FROM users WHERE account_id = $2 AND pin_hash = $3 AND failed_pins = 0
             AND locked_until <= $1 AND (second_factor_above IS NULL OR second_factor_above >= $5))
         AND EXISTS (SELECT 1 FROM accounts WHERE id = $2 AND balance >= $5)
         AND NOT EXISTS (SELECT 1 FROM idempotency WHERE account_id = $2 AND key = $8)"
    };
}

/// SQLite: statements run in order in one call; the first writes the
/// transfer only if the rules hold, the rest write only if it did.
macro_rules! direct_send_sqlite {
    ($nonce_rule:literal, $nonce_write:literal) => {
        concat!(
            "INSERT INTO transfers (id, kind, state, debit_account, credit_account, amount, memo, created_at, decided_at)
             SELECT $6, 'send', 'posted', $2, $4, $5, $7, $1, $1 WHERE ",
            direct_send_rules!(),
            $nonce_rule,
            ";
            UPDATE accounts SET balance = CASE WHEN id = $2 THEN balance - $5 ELSE balance + $5 END
             WHERE (id = $2 OR id = $4) AND EXISTS (SELECT 1 FROM transfers WHERE id = $6);
            INSERT INTO entries (transfer_seq, account_id, amount)
             SELECT seq, $2, -$5 FROM transfers WHERE id = $6
             UNION ALL SELECT seq, $4, $5 FROM transfers WHERE id = $6;
            INSERT INTO notifications (account_id, kind, transfer_seq, created_at)
             SELECT $4, 'payment_received', seq, $1 FROM transfers WHERE id = $6;
            INSERT INTO idempotency (account_id, key, request_hash, response_status, response_body, created_at)
             SELECT $2, $8, $9, $11, $10, $1 FROM transfers WHERE id = $6;",
            $nonce_write
        )
    };
}

/// PostgreSQL: one statement; every write reads the rules' row, so all
/// happen or none. It returns the rows written.
macro_rules! direct_send_postgres {
    ($nonce_rule:literal, $nonce_write:literal, $nonce_count:literal) => {
        concat!(
            "WITH ok AS (SELECT 1 AS one WHERE ",
            direct_send_rules!(),
            $nonce_rule,
            "), moved AS (
                UPDATE accounts SET balance = CASE WHEN id = $2 THEN balance - $5 ELSE balance + $5 END
                 WHERE ((id = $2 AND balance >= $5) OR id = $4) AND EXISTS (SELECT 1 FROM ok)
                 RETURNING id
            ), t AS (
                INSERT INTO transfers (id, kind, state, debit_account, credit_account, amount, memo, created_at, decided_at)
                SELECT $6, 'send', 'posted', $2, $4, $5, $7, $1, $1 FROM ok RETURNING seq
            ), e AS (
                INSERT INTO entries (transfer_seq, account_id, amount)
                SELECT seq, $2, -$5 FROM t UNION ALL SELECT seq, $4, $5 FROM t RETURNING 1
            ), n AS (
                INSERT INTO notifications (account_id, kind, transfer_seq, created_at)
                SELECT $4, 'payment_received', seq, $1 FROM t RETURNING 1
            ), i AS (
                INSERT INTO idempotency (account_id, key, request_hash, response_status, response_body, created_at)
                SELECT $2, $8, $9, $11, $10, $1 FROM ok ON CONFLICT DO NOTHING RETURNING 1
            )",
            $nonce_write,
            " SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM t) + (SELECT count(*) FROM e)
                + (SELECT count(*) FROM n) + (SELECT count(*) FROM i)",
            $nonce_count
        )
    };
}

const DIRECT_SEND_SQLITE: &str = direct_send_sqlite!("", "");
const DIRECT_SEND_SQLITE_NONCE: &str = direct_send_sqlite!(
    " AND NOT EXISTS (SELECT 1 FROM nonces WHERE public_key = $12 AND nonce = $13)",
    "
    INSERT INTO nonces (public_key, nonce, seen_at) SELECT $12, $13, $1 FROM transfers WHERE id = $6;"
);
const DIRECT_SEND_POSTGRES: &str = direct_send_postgres!("", "", "");
const DIRECT_SEND_POSTGRES_NONCE: &str = direct_send_postgres!(
    " AND NOT EXISTS (SELECT 1 FROM nonces WHERE public_key = $12 AND nonce = $13)",
    ", nn AS (
        INSERT INTO nonces (public_key, nonce, seen_at) SELECT $12, $13, $1 FROM ok
        ON CONFLICT DO NOTHING RETURNING 1
    )",
    " + (SELECT count(*) FROM nn)"
);

/// Debits and credits balances in one statement. A user account is debited
/// only if it holds the amount (the statement then changes one row, not two);
/// one statement also locks both rows in one order, so concurrent writers on
/// several server instances cannot deadlock.
async fn move_money(
    conn: &mut AnyConnection,
    system: &SystemAccounts,
    debit: i64,
    credit: i64,
    amount: i64,
) -> AppResult<()> {
    let sql = if system.contains(debit) {
        "UPDATE accounts SET balance = CASE WHEN id = $1 THEN balance - $3 ELSE balance + $3 END
         WHERE id = $1 OR id = $2"
    } else {
        "UPDATE accounts SET balance = CASE WHEN id = $1 THEN balance - $3 ELSE balance + $3 END
         WHERE (id = $1 AND balance >= $3) OR id = $2"
    };
    let changed = sqlx::query(sql)
        .bind(debit)
        .bind(credit)
        .bind(amount)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if changed != 2 {
        // The caller's savepoint undoes the credit that did happen.
        let available = balance(&mut *conn, debit).await?;
        return Err(bad(
            ErrorCode::InsufficientFunds,
            format!("insufficient funds: the balance {available} does not cover {amount}"),
        ));
    }
    Ok(())
}

async fn write_entries(
    conn: &mut AnyConnection,
    seq: i64,
    debit: i64,
    credit: i64,
    amount: i64,
) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO entries (transfer_seq, account_id, amount) VALUES ($1, $2, $3), ($1, $4, $5)",
    )
    .bind(seq)
    .bind(debit)
    .bind(-amount)
    .bind(credit)
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn balance<'e, E: Executor<'e, Database = sqlx::Any>>(
    executor: E,
    account: i64,
) -> AppResult<i64> {
    Ok(sqlx::query("SELECT balance FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_one(executor)
        .await?
        .try_get(0)?)
}

/// Posts a pending transfer: moves the money, writes its entries.
pub async fn post_pending(
    conn: &mut AnyConnection,
    system: &SystemAccounts,
    p: &PendingTransfer,
    now: i64,
) -> AppResult<()> {
    move_money(conn, system, p.debit, p.credit, p.amount).await?;
    settle(conn, p.seq, TransferState::Posted, None, now).await?;
    write_entries(conn, p.seq, p.debit, p.credit, p.amount).await
}

/// Voids a pending transfer; no money has moved, none moves.
pub async fn void_pending(
    conn: &mut AnyConnection,
    seq: i64,
    reason: VoidReason,
    now: i64,
) -> AppResult<()> {
    settle(conn, seq, TransferState::Voided, Some(reason), now).await
}

/// Voids the transfer if it is still pending; returns whether it was (a
/// transfer already paid or voided is left as it is).
pub async fn void_if_pending(
    conn: &mut AnyConnection,
    seq: i64,
    reason: VoidReason,
    now: i64,
) -> AppResult<bool> {
    Ok(try_settle(conn, seq, TransferState::Voided, Some(reason), now).await? == 1)
}

async fn settle(
    conn: &mut AnyConnection,
    seq: i64,
    to: TransferState,
    reason: Option<VoidReason>,
    now: i64,
) -> AppResult<()> {
    if try_settle(conn, seq, to, reason, now).await? != 1 {
        // Decided by someone else since it was read (a concurrent approval,
        // expiry or withdrawal): say what happened to it.
        let row = sqlx::query("SELECT state, void_reason FROM transfers WHERE seq = $1")
            .bind(seq)
            .fetch_one(&mut *conn)
            .await?;
        let state = parse_state(&row.try_get::<String, _>(0)?)?;
        let reason = row
            .try_get::<Option<String>, _>(1)?
            .map(|r| parse_void(&r))
            .transpose()?;
        return Err(already_decided(state, reason));
    }
    Ok(())
}

/// The refusal for acting on a claim that is no longer pending.
pub fn already_decided(state: TransferState, reason: Option<VoidReason>) -> AppError {
    let (code, what) = match (state, reason) {
        (_, Some(VoidReason::Declined)) => (ErrorCode::ClaimNotPending, "declined"),
        (_, Some(VoidReason::Cancelled)) => (ErrorCode::ClaimNotPending, "cancelled"),
        (_, Some(VoidReason::Expired)) => (ErrorCode::ClaimExpired, "expired"),
        (_, Some(VoidReason::Withdrawn)) => (
            ErrorCode::PairingWithdrawn,
            "withdrawn: another phone reported the same bump; bump again",
        ),
        (TransferState::Posted, None) => (ErrorCode::ClaimNotPending, "paid"),
        (TransferState::Voided | TransferState::Pending, None) => {
            (ErrorCode::ClaimNotPending, "decided")
        }
    };
    bad(code, format!("this claim was already {what}"))
}

/// Moves a pending transfer to `to`; returns how many rows changed (0 when
/// it was no longer pending).
async fn try_settle(
    conn: &mut AnyConnection,
    seq: i64,
    to: TransferState,
    reason: Option<VoidReason>,
    now: i64,
) -> AppResult<u64> {
    // The state guard makes a pending transfer change exactly once.
    Ok(sqlx::query(
        "UPDATE transfers SET state = $1, void_reason = $2, decided_at = $3 WHERE seq = $4 AND state = 'pending'",
    )
    .bind(state_str(to))
    .bind(reason.map(void_str))
    .bind(now)
    .bind(seq)
    .execute(conn)
    .await?
    .rows_affected())
}

pub async fn notify(
    conn: &mut AnyConnection,
    account: i64,
    kind: NotificationKind,
    seq: i64,
    now: i64,
) -> AppResult<()> {
    sqlx::query("INSERT INTO notifications (account_id, kind, transfer_seq, created_at) VALUES ($1, $2, $3, $4)")
        .bind(account)
        .bind(notification_str(kind))
        .bind(seq)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The fields of a transfer that decide what may happen to it.
pub struct PendingTransfer {
    pub seq: i64,
    pub kind: TransferKind,
    pub state: TransferState,
    pub void_reason: Option<VoidReason>,
    pub debit: i64,
    pub credit: i64,
    pub amount: i64,
    pub expires_at: Option<i64>,
}

const PENDING_COLUMNS: &str =
    "seq, kind, state, void_reason, debit_account, credit_account, amount, expires_at";

pub async fn load_transfer(
    conn: &mut AnyConnection,
    id: &str,
) -> AppResult<Option<PendingTransfer>> {
    let row = sqlx::query(&format!(
        "SELECT {PENDING_COLUMNS} FROM transfers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(pending_from_row).transpose()
}

pub async fn load_transfer_by_seq(
    conn: &mut AnyConnection,
    seq: i64,
) -> AppResult<PendingTransfer> {
    let row = sqlx::query(&format!(
        "SELECT {PENDING_COLUMNS} FROM transfers WHERE seq = $1"
    ))
    .bind(seq)
    .fetch_one(conn)
    .await?;
    pending_from_row(&row)
}

fn pending_from_row(row: &AnyRow) -> AppResult<PendingTransfer> {
    Ok(PendingTransfer {
        seq: row.try_get(0)?,
        kind: parse_kind(&row.try_get::<String, _>(1)?)?,
        state: parse_state(&row.try_get::<String, _>(2)?)?,
        void_reason: row
            .try_get::<Option<String>, _>(3)?
            .as_deref()
            .map(parse_void)
            .transpose()?,
        debit: row.try_get(4)?,
        credit: row.try_get(5)?,
        amount: row.try_get(6)?,
        expires_at: row.try_get(7)?,
    })
}

// ------------------------------------------------------------------- views

/// Columns for [`view_from_row`]; append a WHERE clause.
pub const VIEW_SELECT: &str =
    "SELECT t.seq, t.id, t.kind, t.state, t.void_reason, t.debit_account, t.credit_account,
        t.amount, t.memo, t.created_at, t.decided_at, t.expires_at,
        COALESCE(du.display_name, dm.display_name), du.phone,
        COALESCE(cu.display_name, cm.display_name), cu.phone, pt.method
    FROM transfers t
    LEFT JOIN users du ON du.account_id = t.debit_account
    LEFT JOIN users cu ON cu.account_id = t.credit_account
    LEFT JOIN merchants dm ON dm.account_id = t.debit_account
    LEFT JOIN merchants cm ON cm.account_id = t.credit_account
    LEFT JOIN paired_transfers pt ON pt.transfer_seq = t.seq";

/// A transfer as `viewer` sees it.
pub fn view_from_row(row: &AnyRow, viewer: i64) -> AppResult<TransferView> {
    let kind = parse_kind(&row.try_get::<String, _>(2)?)?;
    let debit: i64 = row.try_get(5)?;
    let outgoing = debit == viewer;
    let (name_col, phone_col) = if outgoing { (14, 15) } else { (12, 13) };
    // Parties paired by bump or sound know each other by display name only.
    let paired = row.try_get::<Option<String>, _>(16)?.is_some();
    let counterpart = match row.try_get::<Option<String>, _>(name_col)? {
        Some(display_name) => Counterpart {
            display_name,
            phone: if paired {
                None
            } else {
                row.try_get::<Option<String>, _>(phone_col)?
                    .and_then(|p| p.try_into().ok())
            },
        },
        None => Counterpart {
            display_name: system_name(kind).to_string(),
            phone: None,
        },
    };
    Ok(TransferView {
        id: row.try_get(1)?,
        kind,
        state: parse_state(&row.try_get::<String, _>(3)?)?,
        void_reason: row
            .try_get::<Option<String>, _>(4)?
            .as_deref()
            .map(parse_void)
            .transpose()?,
        direction: if outgoing {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        amount: row.try_get(7)?,
        counterpart,
        memo: row.try_get(8)?,
        created_at_ms: row.try_get(9)?,
        decided_at_ms: row.try_get(10)?,
        expires_at_ms: row.try_get(11)?,
    })
}

pub async fn view<'e, E: Executor<'e, Database = sqlx::Any>>(
    executor: E,
    seq: i64,
    viewer: i64,
) -> AppResult<TransferView> {
    let row = sqlx::query(&format!("{VIEW_SELECT} WHERE t.seq = $1"))
        .bind(seq)
        .fetch_one(executor)
        .await?;
    view_from_row(&row, viewer)
}

fn system_name(kind: TransferKind) -> &'static str {
    match kind {
        TransferKind::Deposit => "Cash-in",
        TransferKind::Withdrawal => "Withdrawal",
        _ => "Clink",
    }
}

// ----------------------------------------------------------- enum <-> text

macro_rules! text_enum {
    ($to:ident, $from:ident, $ty:ty, { $($variant:path => $text:literal),* $(,)? }) => {
        pub fn $to(v: $ty) -> &'static str {
            match v { $($variant => $text),* }
        }
        pub fn $from(s: &str) -> AppResult<$ty> {
            match s {
                $($text => Ok($variant),)*
                other => Err(AppError::new(ErrorCode::Internal, format!("unknown {} {other:?} in the database", stringify!($ty)))),
            }
        }
    };
}

text_enum!(kind_str, parse_kind, TransferKind, {
    TransferKind::Send => "send", TransferKind::Claim => "claim",
    TransferKind::Deposit => "deposit", TransferKind::Withdrawal => "withdrawal",
    TransferKind::Refund => "refund",
});
text_enum!(state_str, parse_state, TransferState, {
    TransferState::Pending => "pending", TransferState::Posted => "posted", TransferState::Voided => "voided",
});
text_enum!(void_str, parse_void, VoidReason, {
    VoidReason::Declined => "declined", VoidReason::Cancelled => "cancelled", VoidReason::Expired => "expired",
    VoidReason::Withdrawn => "withdrawn",
});
text_enum!(notification_str, parse_notification, NotificationKind, {
    NotificationKind::PaymentReceived => "payment_received", NotificationKind::ClaimReceived => "claim_received",
    NotificationKind::ClaimApproved => "claim_approved", NotificationKind::ClaimDeclined => "claim_declined",
    NotificationKind::ClaimCancelled => "claim_cancelled", NotificationKind::ClaimExpired => "claim_expired",
});
