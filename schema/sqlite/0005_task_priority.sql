-- temper's SQLite schema, version 5: task priority levels in the matching backlog.
--
-- Matching reads a partition's backlog one priority level at a time (Temporal's priority
-- key, 1 = highest), so the level is part of the key, ahead of the task id. Tasks stored
-- before levels existed get the default level, 3.

CREATE TABLE queue_tasks_v5 (
    namespace_id TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    task_type    INTEGER NOT NULL,
    partition_id INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    task_id      INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (namespace_id, name, task_type, partition_id, priority, task_id)
) WITHOUT ROWID;

INSERT INTO queue_tasks_v5
    (namespace_id, name, task_type, partition_id, priority, task_id, data)
    SELECT namespace_id, name, task_type, partition_id, 3, task_id, data FROM queue_tasks;

DROP TABLE queue_tasks;
ALTER TABLE queue_tasks_v5 RENAME TO queue_tasks;
