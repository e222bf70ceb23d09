-- Alerts (issue #16): each time a watched condition of an endpoint fired, and when it
-- resolved. One evaluator per deployment writes them (it holds a session advisory
-- lock); the partial unique index is what makes "fire" safe anyway: a second
-- evaluator (a lock handed over mid-interval) inserting the same firing alert gets
-- ON CONFLICT DO NOTHING and sends nothing.
--
-- Rows go with their endpoint (ON DELETE CASCADE): a deleted endpoint's open alerts
-- vanish without a "resolved" notification. A condition removed from the settings
-- is resolved quietly by the evaluator (resolved_at set, nobody notified).
CREATE TABLE alerts (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      bigint      NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    condition        text        NOT NULL,
    state            text        NOT NULL DEFAULT 'firing'
        CHECK (state IN ('firing', 'resolved')),
    fired_at         timestamptz NOT NULL,
    resolved_at      timestamptz,
    last_notified_at timestamptz,
    sentence         text        NOT NULL,
    value            double precision,
    threshold        double precision,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);

CREATE UNIQUE INDEX alerts_one_firing ON alerts (endpoint_id, condition)
    WHERE state = 'firing';
CREATE INDEX alerts_endpoint_newest ON alerts (endpoint_id, id DESC);
