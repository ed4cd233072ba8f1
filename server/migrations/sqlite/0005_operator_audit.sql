-- Operator actions that move money (cash-in), one row each, never updated
-- or deleted: which credential, when, whom, how much and the real-world
-- reference behind it. The row also keeps the idempotency key and the exact
-- answer, for ever, so an operator's retry never pays twice however late it
-- comes. Keep in step with ../postgres/0005_operator_audit.sql.
CREATE TABLE operator_audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      BIGINT  NOT NULL,
    credential      TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('cash_in')),
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    reference       TEXT    NOT NULL,
    transfer_id     TEXT    NOT NULL REFERENCES transfers (id),
    response_status BIGINT  NOT NULL,
    response_body   TEXT    NOT NULL,
    UNIQUE (action, idempotency_key)
);
CREATE INDEX operator_audit_account ON operator_audit (account_id, created_at);
