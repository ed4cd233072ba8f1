//! The wallet's local store: one SQLite file in the wallet's data directory
//! (WAL, `synchronous=FULL`, so whatever a call returned survives an app
//! kill or a power cut). It holds drafts, the outbox, the cached balance,
//! history, incoming requests, known payees and the inbox cursor. Secrets
//! never go here: the device key lives in the `SecretStore`, and outbox items
//! (which carry the PIN) are stored sealed.
//!
//! Amounts are integer minor units; times are Unix milliseconds handed in by
//! the caller.

mod migrations;
pub mod outbox;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::wire::{ApiError, ErrorCode, Inbox, TransferView};
pub use outbox::{IllegalTransition, OutboxEvent, OutboxState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("local database error while {context}: {detail}")]
    Sqlite {
        context: &'static str,
        detail: String,
    },
    #[error("no draft {id}")]
    DraftNotFound { id: i64 },
    #[error("no outbox item {id}")]
    OutboxItemNotFound { id: i64 },
    #[error("outbox item {id}: {transition}")]
    IllegalTransition {
        id: i64,
        transition: IllegalTransition,
    },
    #[error("the local database holds an unreadable {what}")]
    Corrupt { what: &'static str },
}

type Result<T> = std::result::Result<T, StoreError>;

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Sqlite {
        context,
        detail: e.to_string(),
    }
}

/// Whether a draft pays someone or asks someone for money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum DraftKind {
    /// Pay someone.
    Send,
    /// Ask someone for money (a claim on the server).
    Request,
}

impl DraftKind {
    fn as_str(self) -> &'static str {
        match self {
            DraftKind::Send => "send",
            DraftKind::Request => "request",
        }
    }

    fn parse(text: &str) -> Result<DraftKind> {
        match text {
            "send" => Ok(DraftKind::Send),
            "request" => Ok(DraftKind::Request),
            _ => Err(StoreError::Corrupt { what: "draft kind" }),
        }
    }
}

/// An editable, deletable remittance not yet confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Draft {
    pub id: i64,
    pub kind: DraftKind,
    /// The payee (send) or payer (request), as the user typed the number.
    pub counterparty: String,
    pub amount: i64,
    pub memo: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Why the server refused an outbox item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Reason {
    pub code: ErrorCode,
    pub message: String,
}

impl From<ApiError> for Reason {
    fn from(e: ApiError) -> Self {
        Reason {
            code: e.code,
            message: e.message,
        }
    }
}

/// A confirmed remittance and where it is on its way to the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct OutboxItem {
    pub id: i64,
    pub kind: DraftKind,
    pub counterparty: String,
    pub amount: i64,
    pub memo: String,
    /// Fixed when the item was queued; every retry uses it.
    pub idempotency_key: String,
    pub state: OutboxState,
    /// Set when the item is rejected or needs action.
    pub reason: Option<Reason>,
    /// The server's transfer, once accepted.
    pub transfer_id: Option<String>,
    pub queued_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Someone this wallet has paid, so the quick form can name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KnownPayee {
    /// E.164.
    pub phone: String,
    pub display_name: String,
}

/// What the phone makes of the server's answer to one item.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemAnswer {
    Accepted(TransferView),
    Rejected(Reason),
    NeedsAction(Reason),
    /// A passing failure: the item stays `sending` and goes again next sync.
    Retry,
}

impl ItemAnswer {
    /// Sorts a refusal into final, fixable by the user, or passing.
    pub fn from_error(e: ApiError) -> ItemAnswer {
        use ErrorCode::*;
        match e.code {
            Unavailable | Internal => ItemAnswer::Retry,
            WrongPin | AccountLocked | StaleTimestamp | SecondFactorRequired | BadSignature => {
                ItemAnswer::NeedsAction(e.into())
            }
            // A second factor that did not pass (only items sent online carry
            // one): the user can register the key or try again.
            OcraKeyNotRegistered
            | WrongChallengeResponse
            | ChallengeExpired
            | ChallengeUsed
            | ChallengeNotFound => ItemAnswer::NeedsAction(e.into()),
            _ => ItemAnswer::Rejected(e.into()),
        }
    }
}

/// What a recorded sync changed, for the wallet's events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    pub changed: Vec<(i64, OutboxState)>,
    pub new_requests: Vec<TransferView>,
    pub balance_changed: Option<i64>,
}

/// Items taken for one sync request, marked `sending`.
#[derive(Debug)]
pub struct Dispatched {
    /// Each item with its sealed, signed form.
    pub items: Vec<(OutboxItem, Vec<u8>)>,
    /// The items this dispatch took from `queued`: no request has carried
    /// them yet, so they may go back with [`Store::not_sent`].
    pub fresh: Vec<i64>,
}

const OUTBOX_COLUMNS: &str = "id, kind, counterparty, amount, memo, idempotency_key, state, reason_code, reason_message, transfer_id, queued_at, updated_at";

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path).map_err(sql("opening the wallet database"))?;
        // WAL + FULL: a returned write is on disk; readers never block the writer.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(sql("configuring the wallet database"))?;
        migrations::migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Sqlite {
                context: "migrating the wallet database",
                detail: e.to_string(),
            })?;
        Ok(Store { conn })
    }

    // ------------------------------------------------------------ meta

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql("reading wallet settings"))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        set_meta(&self.conn, key, value)
    }

    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])
            .map_err(sql("saving wallet settings"))?;
        Ok(())
    }

    pub fn meta_i64(&self, key: &str) -> Result<Option<i64>> {
        match self.meta(key)? {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| StoreError::Corrupt {
                what: "number setting",
            }),
        }
    }

    // ---------------------------------------------------------- drafts

    pub fn insert_draft(
        &self,
        kind: DraftKind,
        counterparty: &str,
        amount: i64,
        memo: &str,
        now_ms: i64,
    ) -> Result<Draft> {
        self.conn
            .execute(
                "INSERT INTO drafts (kind, counterparty, amount, memo, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![kind.as_str(), counterparty, amount, memo, now_ms],
            )
            .map_err(sql("saving a draft"))?;
        self.draft(self.conn.last_insert_rowid())
    }

    pub fn update_draft(
        &self,
        id: i64,
        counterparty: &str,
        amount: i64,
        memo: &str,
        now_ms: i64,
    ) -> Result<Draft> {
        let changed = self
            .conn
            .execute(
                "UPDATE drafts SET counterparty = ?2, amount = ?3, memo = ?4, updated_at = ?5 WHERE id = ?1",
                params![id, counterparty, amount, memo, now_ms],
            )
            .map_err(sql("editing a draft"))?;
        if changed == 0 {
            return Err(StoreError::DraftNotFound { id });
        }
        self.draft(id)
    }

    pub fn delete_draft(&self, id: i64) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM drafts WHERE id = ?1", [id])
            .map_err(sql("deleting a draft"))?;
        if changed == 0 {
            return Err(StoreError::DraftNotFound { id });
        }
        Ok(())
    }

    pub fn draft(&self, id: i64) -> Result<Draft> {
        self.conn
            .query_row(
                "SELECT id, kind, counterparty, amount, memo, created_at, updated_at FROM drafts WHERE id = ?1",
                [id],
                draft_row,
            )
            .optional()
            .map_err(sql("reading a draft"))?
            .ok_or(StoreError::DraftNotFound { id })?
    }

    pub fn drafts(&self) -> Result<Vec<Draft>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, counterparty, amount, memo, created_at, updated_at FROM drafts ORDER BY id")
            .map_err(sql("listing drafts"))?;
        let rows = stmt
            .query_map([], draft_row)
            .map_err(sql("listing drafts"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sql("listing drafts"))?;
        rows.into_iter().collect()
    }

    // ---------------------------------------------------------- outbox

    /// Moves drafts into the outbox in one transaction: each draft is gone
    /// and its item queued, or nothing changed. `seal` turns a draft and its
    /// idempotency key into the sealed, signed item.
    pub fn queue_drafts(
        &mut self,
        queued: &[(Draft, String, Vec<u8>)],
        now_ms: i64,
    ) -> Result<Vec<OutboxItem>> {
        let tx = self.conn.transaction().map_err(sql("queueing drafts"))?;
        let mut ids = Vec::with_capacity(queued.len());
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM drafts WHERE id = ?1")
                .map_err(sql("queueing drafts"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO outbox (kind, counterparty, amount, memo, idempotency_key, state, sealed, queued_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?7)",
                )
                .map_err(sql("queueing drafts"))?;
            for (draft, key, sealed) in queued {
                if delete.execute([draft.id]).map_err(sql("queueing drafts"))? == 0 {
                    return Err(StoreError::DraftNotFound { id: draft.id });
                }
                insert
                    .execute(params![
                        draft.kind.as_str(),
                        draft.counterparty,
                        draft.amount,
                        draft.memo,
                        key,
                        sealed,
                        now_ms
                    ])
                    .map_err(sql("queueing drafts"))?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(sql("queueing drafts"))?;
        ids.into_iter().map(|id| self.outbox_item(id)).collect()
    }

    pub fn outbox_item(&self, id: i64) -> Result<OutboxItem> {
        self.conn
            .query_row(
                &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"),
                [id],
                outbox_row,
            )
            .optional()
            .map_err(sql("reading an outbox item"))?
            .ok_or(StoreError::OutboxItemNotFound { id })?
    }

    pub fn sealed_item(&self, id: i64) -> Result<Vec<u8>> {
        self.conn
            .query_row("SELECT sealed FROM outbox WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql("reading an outbox item"))?
            .ok_or(StoreError::OutboxItemNotFound { id })
    }

    /// The outbox, oldest first; `states` empty means all.
    pub fn outbox(&self, states: &[OutboxState]) -> Result<Vec<OutboxItem>> {
        let filter = if states.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
            format!(" WHERE state IN ({})", names.join(", "))
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox{filter} ORDER BY id"
            ))
            .map_err(sql("listing the outbox"))?;
        let rows = stmt
            .query_map([], outbox_row)
            .map_err(sql("listing the outbox"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sql("listing the outbox"))?;
        rows.into_iter().collect()
    }

    /// The next items to send (queued, or sending from an interrupted sync),
    /// after `after_id`, at most `limit`; marks them `sending` before
    /// returning, so the mark is on disk before anything leaves the phone.
    pub fn dispatch(&mut self, after_id: i64, limit: usize, now_ms: i64) -> Result<Dispatched> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("dispatching the outbox"))?;
        let mut picked = Vec::new();
        let mut fresh = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {OUTBOX_COLUMNS}, sealed FROM outbox WHERE state IN ('queued', 'sending') AND id > ?1 ORDER BY id LIMIT ?2"
                ))
                .map_err(sql("dispatching the outbox"))?;
            let mut rows = stmt
                .query(params![after_id, limit as i64])
                .map_err(sql("dispatching the outbox"))?;
            while let Some(row) = rows.next().map_err(sql("dispatching the outbox"))? {
                let item = outbox_row(row).map_err(sql("dispatching the outbox"))??;
                let sealed: Vec<u8> = row.get(12).map_err(sql("dispatching the outbox"))?;
                picked.push((item, sealed));
            }
            for (item, _) in picked.iter_mut() {
                let next = transition(item.id, item.state, OutboxEvent::Dispatch)?;
                if next != item.state {
                    fresh.push(item.id);
                    item.state = next;
                    item.updated_at_ms = now_ms;
                }
            }
        }
        // Every queued item up to the last one picked was picked (they are
        // taken in id order): one statement marks them all.
        if let (Some(&last), false) = (picked.last().map(|(item, _)| &item.id), fresh.is_empty()) {
            let marked = tx
                .prepare_cached(
                    "UPDATE outbox SET state = ?3, updated_at = ?4 WHERE state = ?5 AND id > ?1 AND id <= ?2",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        after_id,
                        last,
                        OutboxState::Sending.as_str(),
                        now_ms,
                        OutboxState::Queued.as_str()
                    ])
                })
                .map_err(sql("dispatching the outbox"))?;
            if marked != fresh.len() {
                return Err(StoreError::Corrupt {
                    what: "outbox state",
                });
            }
        }
        tx.commit().map_err(sql("dispatching the outbox"))?;
        Ok(Dispatched {
            items: picked,
            fresh,
        })
    }

    /// Puts items back in the queue when the request that was to carry them
    /// could not connect: nothing left the phone. `ids` must be the
    /// [`Dispatched::fresh`] items of that request, never items an earlier
    /// sync sent. Returns the items it moved.
    pub fn not_sent(&mut self, ids: &[i64], now_ms: i64) -> Result<Vec<i64>> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("requeueing unsent items"))?;
        let mut moved = Vec::with_capacity(ids.len());
        for id in ids {
            let state: Option<String> = tx
                .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(sql("requeueing unsent items"))?;
            let from = state
                .as_deref()
                .map(|s| {
                    OutboxState::parse(s).ok_or(StoreError::Corrupt {
                        what: "outbox state",
                    })
                })
                .transpose()?
                .ok_or(StoreError::OutboxItemNotFound { id: *id })?;
            let to = transition(*id, from, OutboxEvent::NotSent)?;
            tx.prepare_cached("UPDATE outbox SET state = ?2, updated_at = ?3 WHERE id = ?1")
                .and_then(|mut st| st.execute(params![id, to.as_str(), now_ms]))
                .map_err(sql("requeueing unsent items"))?;
            moved.push(*id);
        }
        tx.commit().map_err(sql("requeueing unsent items"))?;
        Ok(moved)
    }

    /// Replaces an item's sealed form and puts it back in the queue (after
    /// the user confirmed again).
    pub fn requeue(&mut self, id: i64, sealed: &[u8], now_ms: i64) -> Result<OutboxItem> {
        let item = self.outbox_item(id)?;
        let next = transition(id, item.state, OutboxEvent::Requeue)?;
        self.conn
            .execute(
                "UPDATE outbox SET state = ?2, sealed = ?3, reason_code = NULL, reason_message = NULL, updated_at = ?4 WHERE id = ?1",
                params![id, next.as_str(), sealed, now_ms],
            )
            .map_err(sql("requeueing an item"))?;
        self.outbox_item(id)
    }

    /// Marks one item `sending` for an online send (from `queued`, or again
    /// from `sending` after an answer was lost), on disk before the request
    /// leaves; returns it with its sealed form.
    pub fn dispatch_one(&mut self, id: i64, now_ms: i64) -> Result<(OutboxItem, Vec<u8>)> {
        let mut item = self.outbox_item(id)?;
        let next = transition(id, item.state, OutboxEvent::Dispatch)?;
        if next != item.state {
            self.conn
                .execute(
                    "UPDATE outbox SET state = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, next.as_str(), now_ms],
                )
                .map_err(sql("sending an item"))?;
            item.state = next;
            item.updated_at_ms = now_ms;
        }
        let sealed = self.sealed_item(id)?;
        Ok((item, sealed))
    }

    /// Records the answer to one item sent on its own (not in a sync), in
    /// one transaction: its new state and, once accepted, its history entry
    /// and payee. `None` for a passing failure: the item stays `sending`.
    pub fn record_answer(
        &mut self,
        id: i64,
        answer: &ItemAnswer,
        now_ms: i64,
    ) -> Result<Option<OutboxState>> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("recording an answer"))?;
        let to = write_answer(&tx, id, answer, now_ms)?;
        if let (Some(_), ItemAnswer::Accepted(view)) = (to, answer)
            && let Some((phone, name)) = payee_of(view)
        {
            put_payee(&tx, phone, name, now_ms)?;
        }
        tx.commit().map_err(sql("recording an answer"))?;
        Ok(to)
    }

    /// Records one sync answer in one transaction: each item's new state, new
    /// history and known payees, and, when `account` is given, the inbox
    /// page, its cursor (which only moves forward) and the balance.
    /// `after_each` runs after each item is written (inside the transaction).
    pub fn record_sync(
        &mut self,
        answers: &[(i64, ItemAnswer)],
        account: Option<(&Inbox, i64)>,
        now_ms: i64,
        after_each: &dyn Fn(usize),
    ) -> Result<Recorded> {
        let tx = self.conn.transaction().map_err(sql("recording a sync"))?;
        let mut recorded = Recorded::default();
        // A batch mostly pays the same few people: each payee is written
        // once, with the name of its last transfer.
        let mut payees = std::collections::HashMap::new();
        for (i, (id, answer)) in answers.iter().enumerate() {
            let Some(to) = write_answer(&tx, *id, answer, now_ms)? else {
                continue;
            };
            if let ItemAnswer::Accepted(view) = answer
                && let Some((phone, name)) = payee_of(view)
            {
                payees.insert(phone, name);
            }
            recorded.changed.push((*id, to));
            after_each(i);
        }
        for (phone, name) in payees {
            put_payee(&tx, phone, name, now_ms)?;
        }
        if let Some((inbox, balance)) = account {
            record_account(&tx, inbox, balance, &mut recorded)?;
        }
        tx.commit().map_err(sql("recording a sync"))?;
        Ok(recorded)
    }

    /// Stores a page of the server's history (newest first) in one
    /// transaction. Returns whether every transfer on it was already stored
    /// exactly so: then older pages hold nothing new either.
    pub fn merge_history(&mut self, page: &[TransferView]) -> Result<bool> {
        let tx = self.conn.transaction().map_err(sql("writing history"))?;
        let mut all_known = true;
        for view in page {
            let stored: Option<String> = tx
                .prepare_cached("SELECT view FROM history WHERE transfer_id = ?1")
                .and_then(|mut st| st.query_row([&view.id], |r| r.get(0)).optional())
                .map_err(sql("writing history"))?;
            let same = match stored {
                Some(json) => from_json(&json, "history entry").ok().as_ref() == Some(view),
                None => false,
            };
            if !same {
                all_known = false;
                put_history(&tx, view)?;
            }
        }
        tx.commit().map_err(sql("writing history"))?;
        Ok(all_known)
    }

    // ------------------------------------------- history, requests, payees

    pub fn put_history(&self, view: &TransferView) -> Result<()> {
        put_history(&self.conn, view)
    }

    /// History, newest first, strictly before `before_ms` if given.
    pub fn history(&self, before_ms: Option<i64>, limit: u32) -> Result<Vec<TransferView>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT view FROM history WHERE created_at < ?1 ORDER BY created_at DESC, transfer_id DESC LIMIT ?2",
            )
            .map_err(sql("reading history"))?;
        let rows = stmt
            .query_map(params![before_ms.unwrap_or(i64::MAX), limit], |r| {
                r.get::<_, String>(0)
            })
            .map_err(sql("reading history"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sql("reading history"))?;
        rows.iter()
            .map(|json| from_json(json, "history entry"))
            .collect()
    }

    pub fn incoming_requests(&self) -> Result<Vec<TransferView>> {
        let mut stmt = self
            .conn
            .prepare("SELECT view FROM incoming_requests ORDER BY created_at, transfer_id")
            .map_err(sql("reading requests"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sql("reading requests"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sql("reading requests"))?;
        rows.iter()
            .map(|json| from_json(json, "incoming request"))
            .collect()
    }

    /// Forgets a request the user decided, and keeps its outcome in history.
    pub fn request_decided(&self, view: &TransferView) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM incoming_requests WHERE transfer_id = ?1",
                [&view.id],
            )
            .map_err(sql("recording a decision"))?;
        put_history(&self.conn, view)
    }

    pub fn known_payees(&self) -> Result<Vec<KnownPayee>> {
        let mut stmt = self
            .conn
            .prepare("SELECT phone, display_name FROM payees ORDER BY display_name, phone")
            .map_err(sql("reading payees"))?;
        stmt.query_map([], |r| {
            Ok(KnownPayee {
                phone: r.get(0)?,
                display_name: r.get(1)?,
            })
        })
        .map_err(sql("reading payees"))?
        .collect::<std::result::Result<_, _>>()
        .map_err(sql("reading payees"))
    }

    /// Bulk history rows for benchmarks and tests, in one transaction.
    pub fn put_history_many(&mut self, views: &[TransferView]) -> Result<()> {
        let tx = self.conn.transaction().map_err(sql("writing history"))?;
        for v in views {
            put_history(&tx, v)?;
        }
        tx.commit().map_err(sql("writing history"))
    }
}

/// Records the inbox page and the balance one server answer saw.
fn record_account(
    tx: &Connection,
    inbox: &Inbox,
    balance: i64,
    recorded: &mut Recorded,
) -> Result<()> {
    for n in &inbox.notifications {
        put_history(tx, &n.transfer)?;
    }
    let known: std::collections::HashSet<String> = {
        let mut stmt = tx
            .prepare("SELECT transfer_id FROM incoming_requests")
            .map_err(sql("recording a sync"))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(sql("recording a sync"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(sql("recording a sync"))?
    };
    tx.execute("DELETE FROM incoming_requests", [])
        .map_err(sql("recording a sync"))?;
    for claim in &inbox.pending_claims {
        tx.execute(
            "INSERT INTO incoming_requests (transfer_id, created_at, view) VALUES (?1, ?2, ?3)",
            params![claim.id, claim.created_at_ms, to_json(claim)],
        )
        .map_err(sql("recording a sync"))?;
        if !known.contains(&claim.id) {
            recorded.new_requests.push(claim.clone());
        }
    }
    let old_cursor = meta_in(tx, META_INBOX_CURSOR)?
        .and_then(|c| c.parse::<i64>().ok())
        .unwrap_or(0);
    set_meta(
        tx,
        META_INBOX_CURSOR,
        &old_cursor.max(inbox.cursor).to_string(),
    )?;
    let old_balance = meta_in(tx, META_BALANCE)?;
    if old_balance.as_deref() != Some(balance.to_string().as_str()) {
        set_meta(tx, META_BALANCE, &balance.to_string())?;
        recorded.balance_changed = Some(balance);
    }
    Ok(())
}

fn meta_in(conn: &Connection, key: &str) -> Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(sql("reading wallet settings"))
}

/// Writes one item's answer inside a transaction: its new state and, once
/// accepted, its history entry (the caller writes the payee, see
/// [`payee_of`]). `None` for a passing failure: the item stays as it is.
///
/// An answer is legal only for a `sending` item (see `outbox`): the update
/// says so in its condition, so a legal answer costs one statement; the
/// state is read only to name what is wrong with an illegal one.
fn write_answer(
    conn: &Connection,
    id: i64,
    answer: &ItemAnswer,
    now_ms: i64,
) -> Result<Option<OutboxState>> {
    let (event, reason, transfer) = match answer {
        ItemAnswer::Accepted(view) => (OutboxEvent::Accept, None, Some(view)),
        ItemAnswer::Rejected(r) => (OutboxEvent::Reject, Some(r), None),
        ItemAnswer::NeedsAction(r) => (OutboxEvent::NeedAction, Some(r), None),
        ItemAnswer::Retry => return Ok(None),
    };
    const FROM: OutboxState = OutboxState::Sending;
    let to = transition(id, FROM, event)?;
    let changed = conn
        .prepare_cached(
            "UPDATE outbox SET state = ?2, reason_code = ?3, reason_message = ?4, transfer_id = ?5, updated_at = ?6 WHERE id = ?1 AND state = ?7",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                to.as_str(),
                reason.map(|r| code_text(r.code)),
                reason.map(|r| r.message.as_str()),
                transfer.map(|t| t.id.as_str()),
                now_ms,
                FROM.as_str()
            ])
        })
        .map_err(sql("recording an answer"))?;
    if changed == 0 {
        let state: String = conn
            .prepare_cached("SELECT state FROM outbox WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map_err(sql("recording an answer"))?
            .ok_or(StoreError::OutboxItemNotFound { id })?;
        let from = OutboxState::parse(&state).ok_or(StoreError::Corrupt {
            what: "outbox state",
        })?;
        transition(id, from, event)?;
        // Legal from its state, yet the update found it in another one.
        return Err(StoreError::Corrupt {
            what: "outbox state",
        });
    }
    if let Some(view) = transfer {
        put_history(conn, view)?;
    }
    Ok(Some(to))
}

/// The payee an accepted answer makes known: the counterpart of a send.
fn payee_of(view: &TransferView) -> Option<(&str, &str)> {
    match (&view.counterpart.phone, view.kind) {
        (Some(phone), crate::wire::TransferKind::Send) => {
            Some((phone.as_e164(), view.counterpart.display_name.as_str()))
        }
        _ => None,
    }
}

fn put_payee(conn: &Connection, phone: &str, display_name: &str, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO payees (phone, display_name, first_paid_at) VALUES (?1, ?2, ?3) ON CONFLICT (phone) DO UPDATE SET display_name = excluded.display_name",
    )
    .and_then(|mut s| s.execute(params![phone, display_name, now_ms]))
    .map_err(sql("recording an answer"))?;
    Ok(())
}

fn transition(id: i64, from: OutboxState, event: OutboxEvent) -> Result<OutboxState> {
    from.apply(event)
        .map_err(|transition| StoreError::IllegalTransition { id, transition })
}

pub const META_INBOX_CURSOR: &str = "inbox_cursor";
pub const META_BALANCE: &str = "balance";

fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![key, value]))
    .map_err(sql("saving wallet settings"))?;
    Ok(())
}

fn put_history(conn: &Connection, view: &TransferView) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (transfer_id, created_at, view) VALUES (?1, ?2, ?3)
         ON CONFLICT (transfer_id) DO UPDATE SET view = excluded.view",
    )
    .and_then(|mut s| s.execute(params![view.id, view.created_at_ms, to_json(view)]))
    .map_err(sql("writing history"))?;
    Ok(())
}

fn to_json(view: &TransferView) -> String {
    serde_json::to_string(view).expect("transfer views serialise")
}

fn from_json(json: &str, what: &'static str) -> Result<TransferView> {
    serde_json::from_str(json).map_err(|_| StoreError::Corrupt { what })
}

fn code_text(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_code(text: &str) -> Option<ErrorCode> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

fn draft_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Draft>> {
    let kind: String = r.get(1)?;
    let (id, counterparty, amount, memo, created_at_ms, updated_at_ms) = (
        r.get(0)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    );
    Ok(DraftKind::parse(&kind).map(|kind| Draft {
        id,
        kind,
        counterparty,
        amount,
        memo,
        created_at_ms,
        updated_at_ms,
    }))
}

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxItem>> {
    let kind: String = r.get(1)?;
    let state: String = r.get(6)?;
    let reason_code: Option<String> = r.get(7)?;
    let reason_message: Option<String> = r.get(8)?;
    let item = (|| {
        let kind = DraftKind::parse(&kind)?;
        let state = OutboxState::parse(&state).ok_or(StoreError::Corrupt {
            what: "outbox state",
        })?;
        let reason = match reason_code {
            None => None,
            Some(code) => Some(Reason {
                code: parse_code(&code).ok_or(StoreError::Corrupt {
                    what: "refusal code",
                })?,
                message: reason_message.unwrap_or_default(),
            }),
        };
        Ok((kind, state, reason))
    })();
    let (kind, state, reason) = match item {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(OutboxItem {
        id: r.get(0)?,
        kind,
        counterparty: r.get(2)?,
        amount: r.get(3)?,
        memo: r.get(4)?,
        idempotency_key: r.get(5)?,
        state,
        reason,
        transfer_id: r.get(9)?,
        queued_at_ms: r.get(10)?,
        updated_at_ms: r.get(11)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Counterpart, Direction, TransferKind, TransferState};

    fn view(id: &str) -> TransferView {
        TransferView {
            id: id.into(),
            kind: TransferKind::Send,
            state: TransferState::Posted,
            void_reason: None,
            direction: Direction::Outgoing,
            amount: 5,
            counterpart: Counterpart {
                display_name: "Bob".into(),
                phone: Some("+819011112222".to_string().try_into().unwrap()),
            },
            memo: String::new(),
            created_at_ms: 1,
            decided_at_ms: Some(1),
            expires_at_ms: None,
        }
    }

    fn empty_inbox(cursor: i64) -> Inbox {
        Inbox {
            pending_claims: vec![],
            notifications: vec![],
            cursor,
            has_more: false,
        }
    }

    /// A store with `n` items queued and dispatched.
    fn store_with_sent_items(dir: &tempfile::TempDir, n: usize) -> (Store, Vec<i64>) {
        let mut store = Store::open(&dir.path().join("w.sqlite3")).unwrap();
        let queued: Vec<(Draft, String, Vec<u8>)> = (0..n)
            .map(|i| {
                let d = store
                    .insert_draft(DraftKind::Send, "090", 5, "", 1)
                    .unwrap();
                (d, format!("key-{i}"), vec![1, 2, 3])
            })
            .collect();
        let items = store.queue_drafts(&queued, 2).unwrap();
        assert!(store.drafts().unwrap().is_empty());
        let sent = store.dispatch(0, 100, 3).unwrap();
        assert!(
            sent.items
                .iter()
                .all(|(i, sealed)| i.state == OutboxState::Sending && sealed == &vec![1, 2, 3])
        );
        assert_eq!(sent.fresh.len(), n);
        (store, items.iter().map(|i| i.id).collect())
    }

    #[test]
    fn an_illegal_answer_rolls_back_the_whole_recording() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, ids) = store_with_sent_items(&dir, 2);
        let ok = store
            .record_sync(
                &[(ids[0], ItemAnswer::Accepted(view("t_a")))],
                Some((&empty_inbox(7), 100)),
                4,
                &|_| {},
            )
            .unwrap();
        assert_eq!(ok.changed, vec![(ids[0], OutboxState::Accepted)]);
        assert_eq!(ok.balance_changed, Some(100));
        assert_eq!(store.known_payees().unwrap().len(), 1);
        // Item 1 could be accepted, but item 0 is already final: nothing is written.
        let reason = Reason {
            code: ErrorCode::InsufficientFunds,
            message: "no".into(),
        };
        let err = store
            .record_sync(
                &[
                    (ids[1], ItemAnswer::Accepted(view("t_b"))),
                    (ids[0], ItemAnswer::Rejected(reason)),
                ],
                Some((&empty_inbox(9), 50)),
                5,
                &|_| {},
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::IllegalTransition { id, .. } if id == ids[0]),
            "{err}"
        );
        assert_eq!(
            store.outbox_item(ids[1]).unwrap().state,
            OutboxState::Sending
        );
        assert_eq!(store.meta_i64(META_INBOX_CURSOR).unwrap(), Some(7));
        assert_eq!(store.meta_i64(META_BALANCE).unwrap(), Some(100));
        assert_eq!(store.history(None, 10).unwrap().len(), 1);
    }

    #[test]
    fn only_items_needing_action_are_requeued_and_retries_stay_sending() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, ids) = store_with_sent_items(&dir, 2);
        let locked = ApiError::new(ErrorCode::AccountLocked, "locked");
        let passing = ApiError::new(ErrorCode::Unavailable, "busy");
        store
            .record_sync(
                &[
                    (ids[0], ItemAnswer::from_error(locked)),
                    (ids[1], ItemAnswer::from_error(passing)),
                ],
                Some((&empty_inbox(0), 0)),
                4,
                &|_| {},
            )
            .unwrap();
        let stuck = store.outbox_item(ids[0]).unwrap();
        assert_eq!(stuck.state, OutboxState::NeedsAction);
        assert_eq!(stuck.reason.unwrap().code, ErrorCode::AccountLocked);
        assert_eq!(
            store.outbox_item(ids[1]).unwrap().state,
            OutboxState::Sending
        );
        assert!(matches!(
            store.requeue(ids[1], b"x", 5),
            Err(StoreError::IllegalTransition { .. })
        ));
        let again = store.requeue(ids[0], b"new", 5).unwrap();
        assert_eq!((again.state, again.reason), (OutboxState::Queued, None));
        assert_eq!(store.sealed_item(ids[0]).unwrap(), b"new");
        // Both go in the next dispatch; the sending one again, under its key.
        let next = store.dispatch(0, 10, 6).unwrap();
        assert_eq!(
            next.items.iter().map(|(i, _)| i.id).collect::<Vec<_>>(),
            ids
        );
        // Only the requeued one was taken from the queue.
        assert_eq!(next.fresh, vec![ids[0]]);
    }

    #[test]
    fn items_whose_request_never_left_go_back_to_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, ids) = store_with_sent_items(&dir, 3);
        assert_eq!(store.not_sent(&ids[..2], 7).unwrap(), ids[..2].to_vec());
        let states: Vec<OutboxState> = store.outbox(&[]).unwrap().iter().map(|i| i.state).collect();
        assert_eq!(
            states,
            vec![
                OutboxState::Queued,
                OutboxState::Queued,
                OutboxState::Sending
            ]
        );
        // A queued item was not sent by anyone: nothing to take back, and
        // nothing is changed by the refused call.
        assert!(matches!(
            store.not_sent(&[ids[2], ids[0]], 8),
            Err(StoreError::IllegalTransition { id, .. }) if id == ids[0]
        ));
        assert_eq!(
            store.outbox_item(ids[2]).unwrap().state,
            OutboxState::Sending
        );
        // The next dispatch takes them again, with their keys.
        let again = store.dispatch(0, 10, 9).unwrap();
        assert_eq!(again.fresh, ids[..2].to_vec());
        assert_eq!(again.items[0].0.idempotency_key, "key-0");
    }

    #[test]
    fn the_inbox_cursor_never_moves_back_and_an_answer_without_account_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, ids) = store_with_sent_items(&dir, 2);
        store
            .record_sync(&[], Some((&empty_inbox(40), 10)), 4, &|_| {})
            .unwrap();
        // An older answer (an earlier cursor) does not take the cursor back.
        store
            .record_sync(&[], Some((&empty_inbox(30), 10)), 5, &|_| {})
            .unwrap();
        assert_eq!(store.meta_i64(META_INBOX_CURSOR).unwrap(), Some(40));
        // Items alone: the balance and the cursor stay.
        let recorded = store
            .record_sync(
                &[(ids[0], ItemAnswer::Accepted(view("t_a")))],
                None,
                6,
                &|_| {},
            )
            .unwrap();
        assert_eq!(recorded.balance_changed, None);
        assert_eq!(store.meta_i64(META_BALANCE).unwrap(), Some(10));
        assert_eq!(store.meta_i64(META_INBOX_CURSOR).unwrap(), Some(40));
    }

    #[test]
    fn a_history_page_says_whether_it_held_anything_new() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("w.sqlite3")).unwrap();
        let (a, b) = (view("t_a"), view("t_b"));
        assert!(!store.merge_history(&[a.clone(), b.clone()]).unwrap());
        assert!(store.merge_history(&[a.clone(), b.clone()]).unwrap());
        // A transfer that changed since it was stored counts as new.
        let mut changed = b.clone();
        changed.state = TransferState::Voided;
        assert!(!store.merge_history(&[a, changed.clone()]).unwrap());
        assert_eq!(store.history(None, 10).unwrap().len(), 2);
        assert!(store.history(None, 10).unwrap().contains(&changed));
    }
}
