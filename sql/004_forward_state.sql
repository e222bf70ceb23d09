-- The hit list's forward-state filter (issue #14 item 10): "the failed forwards of
-- endpoint 7" is found from the outbox rows in that state, then each hit by its key,
-- instead of walking every outbox row of the endpoint. Only the rare states: nearly
-- every row ends delivered, and pending rows have forward_outbox_due already.
CREATE INDEX forward_outbox_gave_up ON forward_outbox (endpoint_id, state)
    WHERE state IN ('failed', 'cancelled');
