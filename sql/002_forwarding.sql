-- Forwarding: an outbox of hits to relay to the endpoint's forward target, and a log
-- of every outbound attempt (forwards and replays).
--
-- The outbox row is inserted in the writer's transaction together with its hit, so a
-- committed hit that should be forwarded always has one. Workers claim due rows with
-- FOR UPDATE SKIP LOCKED and push next_attempt_at ahead by a lease, so several
-- processes never send the same row at once and a crashed worker's rows come due again.
-- Keys start with the endpoint id, as everywhere else in the schema.

CREATE TABLE forward_outbox (
    endpoint_id     bigint      NOT NULL,
    hit_id          uuid        NOT NULL,
    hit_received_at timestamptz NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, hit_id)
);

CREATE INDEX forward_outbox_due ON forward_outbox (endpoint_id, next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE forward_attempts (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    endpoint_id   bigint      NOT NULL,
    hit_id        uuid        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('forward', 'replay')),
    attempt       integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    method        text        NOT NULL,
    url           text        NOT NULL,
    status        integer,
    latency_ms    double precision,
    response_head text,
    error         text,
    flags         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (endpoint_id, id)
);

CREATE INDEX forward_attempts_hit ON forward_attempts (hit_id, started_at);
