-- keyledger schema version 2: the nodes serving the log, and how far each has applied it.
--
-- Every node (`keyledger serve --database-url`) writes its row every quarter of
-- --node-timeout-ms and right after it applies records it tailed. A mutation that removes
-- access returns once every node seen within --node-timeout-ms has applied it. Times are
-- the database's clock, so that nodes' clocks need not agree.
CREATE TABLE nodes (
    node_id text PRIMARY KEY CHECK (length(node_id) BETWEEN 1 AND 128),
    applied_position bigint NOT NULL CHECK (applied_position >= 0),
    last_seen timestamptz NOT NULL DEFAULT now()
);
