-- Citus-ready keys (issue #18 item 3): every unique key of a table that Citus would
-- distribute by endpoint_id must contain endpoint_id, since a shard can enforce
-- uniqueness only among its own rows. hits was the one exception: its key was
-- (id, received_at). docs/scaling.md has the whole plan.
--
-- The new key keeps id first: a lookup by id alone (the hit page, GET and DELETE
-- /api/hits/{id}) still descends it, and with the endpoint and the time it is an
-- exact probe. received_at must stay in it (a unique key of a partitioned table
-- holds the partition key). Dropping the old key and building the new one rebuilds
-- one index per partition under an ACCESS EXCLUSIVE lock on hits: writers wait and
-- spool meanwhile (docs/scaling.md says what it took at 10 M hits).
ALTER TABLE hits DROP CONSTRAINT hits_pkey;
ALTER TABLE hits ADD PRIMARY KEY (id, received_at, endpoint_id);

-- A hit's attempts are read by (endpoint, hit), so the read is routed to one shard.
DROP INDEX forward_attempts_hit;
CREATE INDEX forward_attempts_hit ON forward_attempts (endpoint_id, hit_id, started_at);
