-- Reconciliation (issue #15): a network's conversion report matched against the hits
-- captured for a set of endpoints in a time window.
--
-- hits keep the amount and currency their endpoint's rules read at capture (the
-- exact decimal sent; NULL when absent or invalid, and for hits stored before this
-- migration), so a report is compared in SQL without parsing params per hit.
ALTER TABLE hits ADD COLUMN amount numeric, ADD COLUMN currency text;

-- One run: its inputs, progress while running and its summary once done. status is
-- running until the worker ends it; a server that dies mid-run leaves it running,
-- and the next startup marks it failed ("interrupted").
CREATE TABLE reconciliations (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'failed')),
    error         text,
    endpoint_ids  bigint[]    NOT NULL,
    since         timestamptz,
    until         timestamptz,
    options       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    layout        jsonb,
    summary       jsonb,
    rows_read     bigint      NOT NULL DEFAULT 0,
    bytes_read    bigint      NOT NULL DEFAULT 0,
    bytes_total   bigint      NOT NULL DEFAULT 0
);

-- What a run found: one row per discrepancy (kind), and the report lines that could
-- not be read (kind unparsed_row). seq orders them (in the order a run inserts them:
-- by kind, then report line or capture time) for cursor paging and export.
CREATE TABLE reconciliation_items (
    run_id    bigint NOT NULL,
    seq       bigint GENERATED ALWAYS AS IDENTITY,
    kind      text   NOT NULL,
    click_id  text,
    event     text,
    report    jsonb,
    captured  jsonb  NOT NULL DEFAULT '[]'::jsonb,
    hit_ids   uuid[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX reconciliation_items_kind ON reconciliation_items (run_id, kind, seq);

-- The report's rows while a run works on them: COPY'd in, joined to hits, deleted
-- when the run ends. UNLOGGED: a crash loses only the rows of a run that is then
-- marked failed anyway.
CREATE UNLOGGED TABLE reconciliation_rows (
    run_id    bigint      NOT NULL,
    line      bigint      NOT NULL,
    click_id  text        NOT NULL,
    event     text,
    amount    numeric,
    currency  text,
    time      timestamptz
);
CREATE INDEX reconciliation_rows_run ON reconciliation_rows (run_id);
