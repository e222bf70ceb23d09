-- Endpoints, hits and the duplicate ledger.
--
-- hits is range-partitioned by received_at so retention drops whole partitions
-- (partitions are created ahead by monitor.partitions). Every unique key starts
-- with the endpoint id so the schema can be distributed by endpoint. There are no
-- foreign keys to endpoints on purpose: a batch must not fail because an endpoint
-- was deleted while its hits were in flight; deleting an endpoint deletes its rows.

CREATE TABLE endpoints (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    response_status       integer NOT NULL DEFAULT 200,
    response_body         text    NOT NULL DEFAULT 'OK',
    response_content_type text    NOT NULL DEFAULT 'text/plain; charset=utf-8',
    settings      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hits (
    id            uuid        NOT NULL,
    endpoint_id   bigint      NOT NULL,
    received_at   timestamptz NOT NULL,
    method        text        NOT NULL,
    path          text        NOT NULL,
    raw_query     bytea       NOT NULL,
    params        jsonb       NOT NULL,
    body_params   jsonb       NOT NULL DEFAULT '[]'::jsonb,
    headers       jsonb       NOT NULL,
    content_type  text        NOT NULL DEFAULT '',
    body          bytea       NOT NULL,
    body_size     bigint      NOT NULL,
    remote_ip     inet,
    user_agent    text,
    click_id      text,
    event         text,
    flags         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    flagged       boolean     NOT NULL DEFAULT false,
    -- received_at is fixed at capture together with id, so a replayed or retried
    -- batch carries the same key and can never be stored twice.
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- Catches rows outside every dated partition (clock skew) instead of failing them.
CREATE TABLE hits_default PARTITION OF hits DEFAULT;

CREATE INDEX hits_endpoint_newest ON hits (endpoint_id, received_at DESC, id DESC);
CREATE INDEX hits_endpoint_flagged ON hits (endpoint_id, received_at DESC, id DESC) WHERE flagged;
CREATE INDEX hits_endpoint_click ON hits (endpoint_id, click_id) WHERE click_id IS NOT NULL;

-- One row per (endpoint, click id, event) ever seen: the database settles which hit
-- came first, across processes and restarts. event is '' when the scope ignores it.
CREATE TABLE click_keys (
    endpoint_id   bigint      NOT NULL,
    click_id      text        NOT NULL,
    event         text        NOT NULL,
    first_hit_id  uuid        NOT NULL,
    first_seen_at timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, click_id, event)
);
