-- Avatars: what a payer sees beside the payee's display name before the
-- PIN. One row per account that set one (an emoji, a PNG or JPEG picture,
-- or both; clearing deletes the row). Kept apart from users so that the
-- rows the ledger reads on every payment stay small. The rules (one emoji,
-- the picture's format and size) are wire::avatar's; the checks below are
-- the last guard. Keep in step with ../postgres/0006_avatars.sql.
CREATE TABLE avatars (
    account_id  BIGINT  PRIMARY KEY REFERENCES accounts (id),
    emoji       TEXT,
    picture     BLOB,
    updated_at  BIGINT  NOT NULL,
    CHECK (emoji IS NOT NULL OR picture IS NOT NULL),
    CHECK (length(picture) <= 32768)
);
