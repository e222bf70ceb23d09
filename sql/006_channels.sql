-- Notification channels (issue #16): where alerts go, and a log of every delivery
-- attempt. A channel's config holds its secrets (a webhook signing secret, a bot
-- token, an SMTP password); the API and the pages show them masked.
CREATE TABLE channels (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    kind       text        NOT NULL
        CHECK (kind IN ('webhook', 'slack', 'telegram', 'discord', 'email')),
    config     jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per attempt; every attempt of one notification shares its message_id (the
-- webhook-id header), so a receiver's duplicates can be matched to the log. Rows go
-- with their channel.
CREATE TABLE channel_deliveries (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id  bigint      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    message_id  text        NOT NULL,
    summary     text        NOT NULL,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    ok          boolean     NOT NULL,
    status      integer,
    error       text,
    latency_ms  double precision
);

CREATE INDEX channel_deliveries_newest ON channel_deliveries (channel_id, id DESC);
