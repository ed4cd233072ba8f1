-- One-time codes a customer's phone shows and a terminal scans, each
-- holding the customer's own statement of the order, approved with the PIN.
-- Single use (`used_at`, set by a conditional update), good for 60 s. Keep
-- in step with ../sqlite/0009_customer_codes.sql (the same text).
CREATE TABLE customer_codes (
    code            TEXT    PRIMARY KEY,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    statement       TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    used_at         BIGINT
);
CREATE INDEX customer_codes_age ON customer_codes (expires_at);
