-- temper's SQLite schema, version 4: leaner visibility indexes, exact per-status counts
-- and an index of keyword values.
--
-- Every query List and Count answer for users carries the implicit
-- `TemporalNamespaceDivision IS NULL`, so the indexes that serve them are partial indexes on
-- exactly that condition: a query can then be answered from the index alone, and the runs of
-- system workflows (schedulers, batches) never enter them. Those runs have their own small
-- index by division. The status index is gone: running runs come first in the default
-- order anyway, and counting by status reads `visibility_counts`, which triggers keep exact
-- in the same transaction as every visibility write.

DROP INDEX visibility_by_order;
DROP INDEX visibility_by_status;
DROP INDEX visibility_by_type;
DROP INDEX visibility_by_start;

CREATE INDEX visibility_by_order
    ON visibility (namespace_id, close_sort DESC, start_time_ns DESC, run_id)
    WHERE namespace_division IS NULL;
CREATE INDEX visibility_by_type
    ON visibility (namespace_id, workflow_type, close_sort DESC, start_time_ns DESC, run_id)
    WHERE namespace_division IS NULL;
CREATE INDEX visibility_by_start
    ON visibility (namespace_id, start_time_ns)
    WHERE namespace_division IS NULL;
CREATE INDEX visibility_divided
    ON visibility (namespace_id, namespace_division, close_sort DESC, start_time_ns DESC, run_id)
    WHERE namespace_division IS NOT NULL;

-- Runs without a namespace division, per namespace and status. A row may reach zero.
CREATE TABLE visibility_counts (
    namespace_id TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    runs         INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, status)
) WITHOUT ROWID;

INSERT INTO visibility_counts (namespace_id, status, runs)
    SELECT namespace_id, status, COUNT(*) FROM visibility
    WHERE namespace_division IS NULL
    GROUP BY namespace_id, status;

CREATE TRIGGER visibility_counts_insert AFTER INSERT ON visibility
    WHEN NEW.namespace_division IS NULL
BEGIN
    INSERT INTO visibility_counts (namespace_id, status, runs)
        VALUES (NEW.namespace_id, NEW.status, 1)
        ON CONFLICT (namespace_id, status) DO UPDATE SET runs = runs + 1;
END;

CREATE TRIGGER visibility_counts_delete AFTER DELETE ON visibility
    WHEN OLD.namespace_division IS NULL
BEGIN
    UPDATE visibility_counts SET runs = runs - 1
        WHERE namespace_id = OLD.namespace_id AND status = OLD.status;
END;

CREATE TRIGGER visibility_counts_update AFTER UPDATE OF status, namespace_division ON visibility
    WHEN OLD.status IS NOT NEW.status
        OR OLD.namespace_division IS NOT NEW.namespace_division
BEGIN
    UPDATE visibility_counts SET runs = runs - 1
        WHERE OLD.namespace_division IS NULL
            AND namespace_id = OLD.namespace_id AND status = OLD.status;
    INSERT INTO visibility_counts (namespace_id, status, runs)
        SELECT NEW.namespace_id, NEW.status, 1 WHERE NEW.namespace_division IS NULL
        ON CONFLICT (namespace_id, status) DO UPDATE SET runs = runs + 1;
END;

-- The string values of each run's search attributes (each element of a list), so that
-- equality on Keyword and KeywordList attributes reads an index instead of every run. The
-- key holds the run's place in the default order after the value, so the first page of
-- `Attr = 'value'` reads a page of entries however rare the value; the entries of a run are
-- rewritten when it closes. `visibility.keywords` holds the same pairs encoded
-- (temper_persistence::encode_keywords); it is NULL for the runs written before this
-- version, and while a namespace has any of those, queries on keywords check every run.
ALTER TABLE visibility ADD COLUMN keywords BLOB;

CREATE INDEX visibility_unindexed ON visibility (namespace_id) WHERE keywords IS NULL;

CREATE TABLE visibility_keywords (
    namespace_id  TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    close_sort    INTEGER NOT NULL,
    start_time_ns INTEGER NOT NULL,
    run_id        TEXT    NOT NULL,
    workflow_id   TEXT    NOT NULL,
    PRIMARY KEY (namespace_id, name, value, close_sort DESC, start_time_ns DESC, run_id,
        workflow_id)
) WITHOUT ROWID;

CREATE INDEX visibility_keywords_by_run
    ON visibility_keywords (namespace_id, workflow_id, run_id);
