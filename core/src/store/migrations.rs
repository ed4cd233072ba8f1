//! The local schema, as an ordered list: a migration, once released, never
//! changes; a change is a new entry at the end.

use rusqlite_migration::{M, Migrations};

pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE drafts (
             id INTEGER PRIMARY KEY,
             kind TEXT NOT NULL CHECK (kind IN ('send', 'request')),
             counterparty TEXT NOT NULL,
             amount INTEGER NOT NULL,
             memo TEXT NOT NULL,
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL);
         CREATE TABLE outbox (
             id INTEGER PRIMARY KEY,
             kind TEXT NOT NULL CHECK (kind IN ('send', 'request')),
             counterparty TEXT NOT NULL,
             amount INTEGER NOT NULL,
             memo TEXT NOT NULL,
             idempotency_key TEXT NOT NULL UNIQUE,
             state TEXT NOT NULL,
             reason_code TEXT,
             reason_message TEXT,
             transfer_id TEXT,
             -- the signed item, sealed with the outbox key (it holds the PIN)
             sealed BLOB NOT NULL,
             queued_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL);
         CREATE INDEX outbox_by_state ON outbox (state, id);
         CREATE TABLE history (
             transfer_id TEXT PRIMARY KEY,
             created_at INTEGER NOT NULL,
             view TEXT NOT NULL);
         CREATE INDEX history_by_time ON history (created_at, transfer_id);
         CREATE TABLE incoming_requests (
             transfer_id TEXT PRIMARY KEY,
             created_at INTEGER NOT NULL,
             view TEXT NOT NULL);
         CREATE TABLE payees (
             phone TEXT PRIMARY KEY,
             display_name TEXT NOT NULL,
             first_paid_at INTEGER NOT NULL);",
    )])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }
}
