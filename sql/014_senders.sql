-- Known senders per endpoint (issue #17 item 4): who sends, learned by the writer.
--
-- endpoint_senders holds one row per source network (IPv4 /24, IPv6 /48) that has
-- sent a non-test hit; endpoint_param_shapes one row per set of parameter names.
-- Both are upserted in the writer's batch transaction (one statement per table per
-- batch, keys sorted so concurrent batches lock rows in the same order), so what is
-- learned survives restarts and is shared by every process and machine.
--
-- after_learning is decided once, when the row is inserted: true when the endpoint's
-- learning period was already over. A hit from a network with after_learning and
-- not accepted is flagged new_sender; accepting sets accepted (and accepted_at) and
-- leaves the hits already flagged as they are. A shape first seen after learning
-- flags the hit that brought it (param_shape_changed).
CREATE TABLE endpoint_senders (
    endpoint_id    bigint      NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    network        cidr        NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    hits           bigint      NOT NULL,
    user_agent     text,
    after_learning boolean     NOT NULL,
    accepted       boolean     NOT NULL DEFAULT false,
    accepted_at    timestamptz,
    PRIMARY KEY (endpoint_id, network)
);

-- shape_hash: sha256 (hex) of the sorted names, so the key stays small however long
-- the names are; names keeps them for display and for the added/removed details.
CREATE TABLE endpoint_param_shapes (
    endpoint_id    bigint      NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    shape_hash     text        NOT NULL,
    names          text[]      NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    hits           bigint      NOT NULL,
    after_learning boolean     NOT NULL,
    PRIMARY KEY (endpoint_id, shape_hash)
);
