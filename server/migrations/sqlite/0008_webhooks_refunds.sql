-- Merchant notifications, SQLite flavour. Keep in step with
-- ../postgres/0008_webhooks_refunds.sql: the two differ only in how auto-increment
-- keys are spelled.

-- Where a merchant's events go, and which signing secrets are live. A
-- secret is an HMAC of (merchant id, generation) under the server secret,
-- so none is stored; while a merchant rotates, the previous generation
-- signs too until `webhook_previous_until`.
ALTER TABLE merchants ADD COLUMN webhook_url TEXT;
ALTER TABLE merchants ADD COLUMN webhook_generation BIGINT NOT NULL DEFAULT 1;
ALTER TABLE merchants ADD COLUMN webhook_previous_until BIGINT;

-- The outbox: an event is written in the same transaction as the change it
-- reports, then delivered at least once, oldest first per payment request,
-- with retries and backoff until it is delivered or 24 h have passed.
CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    shop_payment_id TEXT    NOT NULL REFERENCES shop_payments (id),
    version         BIGINT  NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    delivered_at    BIGINT,
    failed_at       BIGINT,
    last_error      TEXT
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_events_payment ON webhook_events (shop_payment_id, id);
CREATE INDEX webhook_events_merchant ON webhook_events (merchant_id, id);

-- Refunds of completed shop payments: each its own transfer merchant ->
-- customer, citing the payment; `refund_id` is the shop's idempotency key.
ALTER TABLE shop_payments ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0;
CREATE TABLE shop_refunds (
    shop_payment_id TEXT    NOT NULL REFERENCES shop_payments (id),
    refund_id       TEXT    NOT NULL,
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    transfer_seq    BIGINT  NOT NULL UNIQUE REFERENCES transfers (seq),
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (shop_payment_id, refund_id)
);
