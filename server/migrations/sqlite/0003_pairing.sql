-- Pairing by bump and by sound, SQLite flavour. Keep in step with
-- ../postgres/0003_pairing.sql: the two differ only in how auto-increment
-- keys are spelled.

-- Bump reports. Every server instance inserts here, and a decision flips
-- rows with a state guard (`WHERE state = 'pending'`), so two instances can
-- never both decide the same report. Decided rows are deleted by the
-- sweeper a minute later; pending ones are decided within seconds.
CREATE TABLE bump_reports (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT    NOT NULL UNIQUE,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    role            TEXT    NOT NULL CHECK (role IN ('payer', 'payee')),
    amount          BIGINT  CHECK (amount > 0),
    memo            TEXT    NOT NULL,
    instant_ms      BIGINT  NOT NULL,
    -- The report as sent (JSON): impulse, fingerprint, location.
    report          TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'matched', 'ambiguous', 'expired')),
    transfer_seq    BIGINT  REFERENCES transfers (seq),
    received_at     BIGINT  NOT NULL,
    decided_at      BIGINT
);
CREATE INDEX bump_reports_pending ON bump_reports (state, instant_ms);
CREATE INDEX bump_reports_decided ON bump_reports (decided_at);

-- Sound tokens: the token's expiry and random part (hex); its MAC is never
-- stored, so the table alone cannot mint a redeemable token. used_at is set
-- once, in the writer job that creates the request.
CREATE TABLE sound_tokens (
    id              TEXT    PRIMARY KEY,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    memo            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    redeemed_by     BIGINT  REFERENCES accounts (id),
    transfer_seq    BIGINT  REFERENCES transfers (seq),
    used_at         BIGINT
);
CREATE INDEX sound_tokens_expiry ON sound_tokens (expires_at);

-- Transfers whose parties found each other by bump or sound: their views
-- show the counterpart's display name only, never the phone number.
CREATE TABLE paired_transfers (
    transfer_seq    BIGINT  PRIMARY KEY REFERENCES transfers (seq),
    method          TEXT    NOT NULL CHECK (method IN ('bump', 'sound'))
);
