-- temper's SQLite schema, version 1. Applied by temper-persistence-sqlite inside one
-- transaction, which also records the version in schema_version.
--
-- The tables follow the Cassandra layout: everything a shard owns is keyed by shard_id
-- first, and each primary key is the order the queries read in, so reads are index range
-- scans. Tables holding small rows are WITHOUT ROWID (the primary key is the storage
-- order); tables holding large blobs (mutable state, history) keep a rowid and a unique
-- index.

CREATE TABLE schema_version (
    version       INTEGER PRIMARY KEY,
    applied_at_ms INTEGER NOT NULL
);

-- Facts fixed at cluster creation: a single row.
CREATE TABLE cluster_metadata (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    cluster_name TEXT    NOT NULL,
    num_shards   INTEGER NOT NULL
);

-- One row per history shard; range_id is the owner's fencing token.
CREATE TABLE shards (
    shard_id INTEGER PRIMARY KEY,
    range_id INTEGER NOT NULL,
    info     BLOB    NOT NULL
);

-- Mutable state of each run.
CREATE TABLE executions (
    shard_id          INTEGER NOT NULL,
    namespace_id      TEXT    NOT NULL,
    workflow_id       TEXT    NOT NULL,
    run_id            TEXT    NOT NULL,
    db_record_version INTEGER NOT NULL,
    state             BLOB    NOT NULL
);
CREATE UNIQUE INDEX executions_by_key
    ON executions (shard_id, namespace_id, workflow_id, run_id);

-- The current-run pointer of each workflow id.
CREATE TABLE current_executions (
    shard_id          INTEGER NOT NULL,
    namespace_id      TEXT    NOT NULL,
    workflow_id       TEXT    NOT NULL,
    run_id            TEXT    NOT NULL,
    create_request_id TEXT    NOT NULL,
    state             INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    start_time_ms     INTEGER NOT NULL,
    PRIMARY KEY (shard_id, namespace_id, workflow_id)
) WITHOUT ROWID;

-- The shard's outbox: transfer (1), timer (2) and visibility (3) tasks. Transfer and
-- visibility tasks have fire_time_ms = 0, so the key orders them by task id alone.
CREATE TABLE tasks (
    shard_id     INTEGER NOT NULL,
    category     INTEGER NOT NULL,
    fire_time_ms INTEGER NOT NULL,
    task_id      INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (shard_id, category, fire_time_ms, task_id)
) WITHOUT ROWID;

-- History event batches; for one node id the highest txn_id wins (older ones are orphans).
CREATE TABLE history_node (
    tree_id   TEXT    NOT NULL,
    branch_id TEXT    NOT NULL,
    node_id   INTEGER NOT NULL,
    txn_id    INTEGER NOT NULL,
    data      BLOB    NOT NULL
);
CREATE UNIQUE INDEX history_node_by_key
    ON history_node (tree_id, branch_id, node_id, txn_id DESC);

-- Lease rows of task queue partitions.
CREATE TABLE task_queues (
    namespace_id TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    task_type    INTEGER NOT NULL,
    partition_id INTEGER NOT NULL,
    range_id     INTEGER NOT NULL,
    ack_level    INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, name, task_type, partition_id)
) WITHOUT ROWID;

-- Matching backlog, written only under the partition's lease.
CREATE TABLE queue_tasks (
    namespace_id TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    task_type    INTEGER NOT NULL,
    partition_id INTEGER NOT NULL,
    task_id      INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (namespace_id, name, task_type, partition_id, task_id)
) WITHOUT ROWID;

-- Namespaces, unique by id and by name.
CREATE TABLE namespaces (
    id                   TEXT    NOT NULL PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    detail               BLOB    NOT NULL,
    notification_version INTEGER NOT NULL
);
