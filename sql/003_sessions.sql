-- Web sign-in sessions, so that signing out (or changing the admin token) ends a
-- session at once, in every process.
--
-- The browser's cookie carries a random id; only its SHA-256 is kept here, so a copy
-- of this table signs nobody in. token_tag is a keyed hash of the admin token the
-- session was made under: a session of another token is refused and pruned.

CREATE TABLE web_sessions (
    id_hash    bytea       PRIMARY KEY,
    token_tag  bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
