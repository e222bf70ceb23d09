-- Share links: a read-only, expiring, revocable view of one endpoint's hits for
-- someone without an account (a client, a network partner).
--
-- The link's URL carries a random token; only its SHA-256 is kept here, so a copy of
-- this table opens no shared view, and the token is shown once, when made. Revoking
-- deletes the row: the next request with that token finds nothing.
--
-- Unlike hits, this table references endpoints: links are made by the management
-- side, never on the capture path, so the key cannot fail a batch, and deleting an
-- endpoint takes its links with it.

CREATE TABLE share_links (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id    bigint      NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    token_hash     bytea       NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    last_opened_at timestamptz
);

CREATE INDEX share_links_endpoint ON share_links (endpoint_id, created_at DESC);
