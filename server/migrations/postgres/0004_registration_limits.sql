-- How many registration codes went to a number, for the resend and hourly
-- limits (see `store_code` in the API).
ALTER TABLE registrations ADD COLUMN codes_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE registrations ADD COLUMN window_started_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE registrations ADD COLUMN last_sent_at BIGINT NOT NULL DEFAULT 0;
