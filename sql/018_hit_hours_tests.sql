-- The endpoint page's stats and the endpoints page's counters read hit_hours too, so
-- their closed hours are not counted from hits on every read (10 M hits: 3.4–5.3 s
-- for the endpoints page). They show test postbacks apart (test_hits, test_24h), and
-- the rollup held only non-test hits: `tests` is the hour's test hits, filled by
-- monitor.storage.charts with the other columns.
--
-- Rows counted before this migration never counted their test hits, and a default
-- of 0 would pass them off as hours with none: they are deleted here, and each is
-- counted again from hits on its next read (or the hourly sweep). No default either:
-- a process of the previous release still running fails to store a row rather than
-- store one whose test count is wrong.
DELETE FROM hit_hours;
ALTER TABLE hit_hours ADD COLUMN tests integer NOT NULL;
