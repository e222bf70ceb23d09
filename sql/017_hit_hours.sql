-- Charts (issue #20): per endpoint and closed UTC hour, the non-test hits, the flagged
-- ones, hits per flag name and payout per currency. Filled on read by
-- monitor.storage.charts for hours that ended before the writer could still commit
-- into them, never by the writer (capture pays nothing); a row is deleted when hits
-- of its hour are deleted (one hit, a clear, an endpoint, retention, a spool replay
-- into a closed hour) and made again from hits on the next read. Rows of an hour
-- with no hits are kept too: they say the hour was counted, so silence costs no scan.
CREATE TABLE hit_hours (
    endpoint_id bigint      NOT NULL,
    hour        timestamptz NOT NULL,
    hits        integer     NOT NULL,
    flagged     integer     NOT NULL,
    by_flag     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- {"USD": "12.50"}: exact sums as text ("" = hits with an amount and no currency).
    payouts     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (endpoint_id, hour)
);
