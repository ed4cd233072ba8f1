-- Paying at shops, SQLite flavour. Keep in step with ../postgres/0007_shops.sql:
-- the two differ only in how auto-increment keys are spelled.

-- A merchant owns one ledger account, of kind 'user': like a person's, its
-- balance never goes below zero (refunds come out of it). It has no phone
-- number; people see its display name.
CREATE TABLE merchants (
    id              TEXT    PRIMARY KEY,
    account_id      BIGINT  NOT NULL UNIQUE REFERENCES accounts (id),
    display_name    TEXT    NOT NULL,
    category_code   TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL
);

-- A web shop's API keys. The secret is not stored: it is an HMAC of the key
-- id under the server secret, recomputed to check a request, so a leaked
-- database reveals no secret. Several keys are live while a shop rotates.
CREATE TABLE merchant_api_keys (
    key_id          TEXT    PRIMARY KEY,
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    created_at      BIGINT  NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX merchant_api_keys_merchant ON merchant_api_keys (merchant_id);

-- Merchants a customer allows to charge their number (web shops); consent
-- is revocable, and reporting spam revokes it too.
CREATE TABLE merchant_links (
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    linked_at       BIGINT  NOT NULL,
    PRIMARY KEY (account_id, merchant_id)
);

CREATE TABLE spam_reports (
    id              INTEGER PRIMARY KEY,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    reported_at     BIGINT  NOT NULL
);
CREATE INDEX spam_reports_merchant ON spam_reports (merchant_id, reported_at);

-- The one payment-request object of every shop flow. Its money is the
-- pending transfer (a claim customer -> merchant) it names once a customer
-- is known; every change of state is a state-guarded update in the same
-- transaction as the transfer's, and bumps `version`.
CREATE TABLE shop_payments (
    id                  TEXT    PRIMARY KEY,
    merchant_id         TEXT    NOT NULL REFERENCES merchants (id),
    merchant_order_id   TEXT    NOT NULL,
    request_hash        TEXT    NOT NULL,
    customer_account    BIGINT  REFERENCES accounts (id),
    transfer_seq        BIGINT  UNIQUE REFERENCES transfers (seq),
    amount              BIGINT  NOT NULL CHECK (amount > 0),
    items               TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('created', 'pending_approval', 'completed', 'declined', 'cancelled', 'expired')),
    version             BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    expires_at          BIGINT  NOT NULL,
    decided_at          BIGINT,
    UNIQUE (merchant_id, merchant_order_id)
);
CREATE INDEX shop_payments_customer ON shop_payments (customer_account, merchant_id, state);
