-- OCRA challenge-response, SQLite flavour. Keep in step with
-- ../postgres/0002_challenges.sql (the two are the same).

-- One OCRA key per install (device key). The key is sealed with AES-256-GCM
-- under a key derived from the server secret, which is kept outside the
-- database: a leaked database alone cannot answer challenges. The device's
-- public key is the associated data, so a sealed key cannot be moved to
-- another device's row.
CREATE TABLE ocra_keys (
    public_key  TEXT    PRIMARY KEY REFERENCES devices (public_key),
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    sealed_key  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX ocra_keys_account ON ocra_keys (account_id, created_at);

-- Challenges for the app's second factor, bound to one device; used_at is
-- set once, in the writer job of the payment that consumes it.
CREATE TABLE challenges (
    id          TEXT    PRIMARY KEY,
    public_key  TEXT    NOT NULL REFERENCES devices (public_key),
    challenge   TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT
);
CREATE INDEX challenges_expiry ON challenges (expires_at);

-- Telephone calls through the gateway: what the dial string asked for, the
-- challenge played and the install whose key must answer it. A call is
-- answered once: state goes open -> completed | refused, and outcome says
-- what happened (the transfer id, or the refusal's error code).
CREATE TABLE calls (
    id              TEXT    PRIMARY KEY,
    caller_account  BIGINT  NOT NULL REFERENCES accounts (id),
    public_key      TEXT    NOT NULL REFERENCES devices (public_key),
    kind            TEXT    NOT NULL CHECK (kind IN ('send', 'request')),
    counterpart     BIGINT  NOT NULL REFERENCES accounts (id),
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    dialed          TEXT    NOT NULL,
    challenge       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('open', 'completed', 'refused')),
    outcome         TEXT,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    answered_at     BIGINT
);
CREATE INDEX calls_expiry ON calls (state, expires_at);
