-- keyledger schema version 1: the log, its Merkle tree, its head and its checkpoints.
--
-- Applied by `keyledger serve --migrate` (or `init --migrate`, or `keyledger migrate`)
-- in one transaction, which also records the version in schema_version.

-- The log's head: exactly one row. An append moves it with
-- `UPDATE head SET position = $new WHERE position = $expected`, so two appends at the same
-- position cannot both commit. Positions are never taken from a sequence: a sequence hands
-- out numbers in one order and its transactions commit in another.
CREATE TABLE head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position bigint NOT NULL CHECK (position >= 0)
);
INSERT INTO head (singleton, position) VALUES (true, 0);

-- The records exactly as encoded (log/record.rs), numbered from 1 without gaps.
CREATE TABLE records (
    seq bigint PRIMARY KEY CHECK (seq >= 1),
    bytes bytea NOT NULL
);

-- The Merkle tree's complete subtrees (merkle::NodeId: level 0 is a leaf), written in the
-- transaction of the records that complete them.
CREATE TABLE tree_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    node_index bigint NOT NULL CHECK (node_index >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
);

-- Signed checkpoints, each the exact line checkpoints.jsonl would hold.
CREATE TABLE checkpoints (
    size bigint PRIMARY KEY CHECK (size >= 1),
    line text NOT NULL
);
