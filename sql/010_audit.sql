-- The audit log: every management action (who, what, when, before/after).
--
-- No foreign keys: an entry outlives the token that acted and the endpoint it
-- names (a deleted endpoint's entries say it was deleted). Secrets are never
-- stored: the web layer redacts before/after before they get here. Numbered 010
-- and independent of 009: it creates only its own table.

CREATE TABLE audit_log (
    id             bigserial   PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text        NOT NULL,
    actor_token_id bigint,
    action         text        NOT NULL,
    endpoint_id    bigint,
    target         text,
    before         jsonb,
    after          jsonb,
    request_id     text,
    remote         text
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_endpoint ON audit_log (endpoint_id, id);
