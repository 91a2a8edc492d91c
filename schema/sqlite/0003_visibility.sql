-- temper's SQLite schema, version 3: visibility records.
--
-- One row per run, written in the commit that changes what List shows of the run. Times are
-- nanoseconds since the Unix epoch; close_sort is the close time, or the largest integer
-- while the run is open, so the default order (running first, then close time and start
-- time newest first, then run id) is one index scan. A write only replaces a row with a
-- lower version.

CREATE TABLE visibility (
    namespace_id           TEXT    NOT NULL,
    workflow_id            TEXT    NOT NULL,
    run_id                 TEXT    NOT NULL,
    workflow_type          TEXT    NOT NULL,
    task_queue             TEXT    NOT NULL,
    status                 INTEGER NOT NULL,
    start_time_ns          INTEGER NOT NULL,
    execution_time_ns      INTEGER NOT NULL,
    close_time_ns          INTEGER,
    close_sort             INTEGER NOT NULL,
    history_length         INTEGER NOT NULL,
    history_size_bytes     INTEGER NOT NULL,
    state_transition_count INTEGER NOT NULL,
    parent_workflow_id     TEXT,
    parent_run_id          TEXT,
    root_workflow_id       TEXT    NOT NULL,
    root_run_id            TEXT    NOT NULL,
    namespace_division     TEXT,
    memo                   BLOB    NOT NULL,
    search_attributes      BLOB    NOT NULL,
    version                INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, workflow_id, run_id)
);

CREATE INDEX visibility_by_order
    ON visibility (namespace_id, close_sort DESC, start_time_ns DESC, run_id);
CREATE INDEX visibility_by_status
    ON visibility (namespace_id, status, close_sort DESC, start_time_ns DESC, run_id);
CREATE INDEX visibility_by_type
    ON visibility (namespace_id, workflow_type, close_sort DESC, start_time_ns DESC, run_id);
CREATE INDEX visibility_by_start
    ON visibility (namespace_id, start_time_ns);
