-- Statuses (issue #17): each hit's status in the common vocabulary, and what each
-- click has seen so far, so the lifecycle flags are settled by the database in
-- arrival order, across processes and restarts, like duplicates (click_keys).
--
-- Numbered 011 and independent of 009 and 012: it adds one column to hits and
-- creates only its own table.

-- lead, sale, pending, approved, rejected, reversal, rebill or test
-- (monitor/rules/statuses.py); NULL when the value is unknown or absent, and for
-- hits stored before this migration.
ALTER TABLE hits ADD COLUMN status text;

-- One row per (endpoint, click id) whose hits carried a status other than test.
-- The writer upserts a batch's clicks in one statement (keys sorted, so concurrent
-- writers lock them in one order); prev_* keep the row as it was before that
-- statement, which RETURNING hands back so the batch's flags are judged against
-- what every earlier commit left. No foreign keys, as for click_keys: deleting or
-- clearing an endpoint deletes its rows, deleting a hit rebuilds its click's row.
CREATE TABLE click_lifecycle (
    endpoint_id          bigint      NOT NULL,
    click_id             text        NOT NULL,
    -- the last of lead, pending, sale, approved, and the hit that brought it
    last_status          text,
    last_hit_id          uuid,
    -- a conversion (lead, sale, approved, pending or rebill) was seen
    converted            boolean     NOT NULL DEFAULT false,
    -- the first reversal or rejection
    reversed_hit_id      uuid,
    last_seen_at         timestamptz NOT NULL,
    prev_last_status     text,
    prev_last_hit_id     uuid,
    prev_converted       boolean     NOT NULL DEFAULT false,
    prev_reversed_hit_id uuid,
    PRIMARY KEY (endpoint_id, click_id)
);
