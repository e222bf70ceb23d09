-- Scoped API tokens (issue #16): team members get a token of their own instead of
-- the one admin token, limited to a scope and, if given, to some endpoints.
--
-- Only the SHA-256 of a token is kept (tokens are 256 random bits, so a plain hash is
-- enough): a copy of this table authenticates nobody. Revoking sets revoked_at and
-- deletes the token's web sessions in the same transaction; every request looks the
-- token up, so revocation takes effect at once in every process.

CREATE TABLE api_tokens (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    scope         text        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    -- NULL: every endpoint; else only these (ids of endpoints deleted later stay, inert).
    endpoint_ids  bigint[],
    token_hash    bytea       NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- A session made by signing in with a scoped token (NULL: the admin token); its
-- rights are the token's, and it ends with the token.
ALTER TABLE web_sessions
    ADD COLUMN api_token_id bigint REFERENCES api_tokens (id) ON DELETE CASCADE;
CREATE INDEX web_sessions_api_token ON web_sessions (api_token_id);
