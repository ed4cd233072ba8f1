-- Clink ledger, SQLite flavour. Keep in step with ../postgres/0001_ledger.sql:
-- the two differ only in how auto-increment keys are spelled.

-- Every balance lives in an account. User accounts never go below zero;
-- system accounts (cash_in, cash_out) mirror money entering and leaving, so
-- the sum of all balances is always zero.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'cash_in', 'cash_out')),
    balance     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    CHECK (kind <> 'user' OR balance >= 0)
);
INSERT INTO accounts (kind, balance, created_at) VALUES ('cash_in', 0, 0);
INSERT INTO accounts (kind, balance, created_at) VALUES ('cash_out', 0, 0);

CREATE TABLE users (
    account_id          BIGINT  PRIMARY KEY REFERENCES accounts (id),
    phone               TEXT    NOT NULL UNIQUE,
    display_name        TEXT    NOT NULL,
    pin_salt            TEXT    NOT NULL,
    pin_hash            TEXT    NOT NULL,
    failed_pins         BIGINT  NOT NULL DEFAULT 0,
    locked_until        BIGINT  NOT NULL DEFAULT 0,
    second_factor_above BIGINT,
    created_at          BIGINT  NOT NULL
);

CREATE TABLE devices (
    public_key  TEXT    PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    created_at  BIGINT  NOT NULL
);

CREATE TABLE registrations (
    phone       TEXT    PRIMARY KEY,
    public_key  TEXT    NOT NULL,
    code_hash   TEXT    NOT NULL,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    expires_at  BIGINT  NOT NULL
);

-- A transfer moves `amount` from debit_account to credit_account. It is
-- written pending or posted; pending becomes posted or voided, once.
CREATE TABLE transfers (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    void_reason     TEXT,
    debit_account   BIGINT  NOT NULL REFERENCES accounts (id),
    credit_account  BIGINT  NOT NULL REFERENCES accounts (id),
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    memo            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    decided_at      BIGINT,
    expires_at      BIGINT,
    CHECK (debit_account <> credit_account)
);
CREATE INDEX transfers_debit ON transfers (debit_account, seq);
CREATE INDEX transfers_credit ON transfers (credit_account, seq);
CREATE INDEX transfers_pending_expiry ON transfers (state, expires_at);

-- Double entry: a posted transfer has exactly two entries, -amount on the
-- debit account and +amount on the credit account.
CREATE TABLE entries (
    id          INTEGER PRIMARY KEY,
    transfer_seq BIGINT NOT NULL REFERENCES transfers (seq),
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    amount      BIGINT  NOT NULL,
    UNIQUE (transfer_seq, account_id)
);
CREATE INDEX entries_account ON entries (account_id);

CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    kind        TEXT    NOT NULL,
    transfer_seq BIGINT NOT NULL REFERENCES transfers (seq),
    created_at  BIGINT  NOT NULL
);
CREATE INDEX notifications_account ON notifications (account_id, id);

-- Responses to requests that carried an idempotency key, replayed on retry.
CREATE TABLE idempotency (
    account_id      BIGINT  NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    response_status BIGINT  NOT NULL,
    response_body   TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_age ON idempotency (created_at);

-- Nonces of signed requests, kept while their timestamps are acceptable.
CREATE TABLE nonces (
    public_key  TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    seen_at     BIGINT  NOT NULL,
    PRIMARY KEY (public_key, nonce)
);
CREATE INDEX nonces_age ON nonces (seen_at);
