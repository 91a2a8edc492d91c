//! Shard rows, executions, current-run pointers and the shard's tasks: everything Cassandra
//! keeps in the shard's partition, and the conditional commit batch over it.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use temper_persistence::{
    BranchId, ClusterMetadata, ClusterMetadataStore, CommitError, ConflictKind, CurrentExecution,
    CurrentRunCondition, ExecutionKey, ExecutionRecord, ExecutionStore, ExecutionWrite,
    HistoryNode, ShardRecord, StoreError, TaskCategory, TaskKey, TaskRecord,
};
use temper_types::{NamespaceId, RangeId, ShardId};

use crate::{SqliteStore, sql_limit};

/// The stored range id of a shard, read inside the caller's transaction.
pub(crate) fn shard_range(
    conn: &Connection,
    shard_id: ShardId,
) -> rusqlite::Result<Option<RangeId>> {
    conn.prepare_cached("SELECT range_id FROM shards WHERE shard_id = ?1")?
        .query_row([i64::from(shard_id.0)], |row| row.get(0).map(RangeId))
        .optional()
}

/// `Ok(())` if the shard's range id is `held`; otherwise the error to return.
fn check_range(
    conn: &Connection,
    shard_id: ShardId,
    held: RangeId,
) -> rusqlite::Result<Result<(), StoreError>> {
    Ok(match shard_range(conn, shard_id)? {
        Some(actual) if actual == held => Ok(()),
        Some(actual) => Err(StoreError::OwnershipLost { held, actual }),
        None => Err(StoreError::NotFound(format!(
            "shard {shard_id} has no row; it must be acquired (get_or_create_shard, update_shard) before writing"
        ))),
    })
}

fn read_shard(conn: &Connection, shard_id: ShardId) -> rusqlite::Result<Option<ShardRecord>> {
    conn.prepare_cached("SELECT range_id, info FROM shards WHERE shard_id = ?1")?
        .query_row([i64::from(shard_id.0)], |row| {
            Ok(ShardRecord {
                shard_id,
                range_id: RangeId(row.get(0)?),
                info: row.get(1)?,
            })
        })
        .optional()
}

fn read_version(
    conn: &Connection,
    shard: i64,
    key: &ExecutionKey,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT db_record_version FROM executions
         WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4",
    )?
    .query_row(
        (
            shard,
            key.namespace_id.as_str(),
            &key.workflow_id,
            &key.run_id,
        ),
        |row| row.get(0),
    )
    .optional()
}

fn read_current(
    conn: &Connection,
    shard: i64,
    namespace_id: &str,
    workflow_id: &str,
) -> rusqlite::Result<Option<CurrentExecution>> {
    conn.prepare_cached(
        "SELECT run_id, create_request_id, state, status, start_time_ms FROM current_executions
         WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3",
    )?
    .query_row((shard, namespace_id, workflow_id), |row| {
        Ok(CurrentExecution {
            run_id: row.get(0)?,
            create_request_id: row.get(1)?,
            state: row.get(2)?,
            status: row.get(3)?,
            start_time_ms: row.get(4)?,
        })
    })
    .optional()
}

/// The first condition of `write` that does not hold, if any.
fn check_write(
    conn: &Connection,
    shard: i64,
    write: &ExecutionWrite,
) -> rusqlite::Result<Option<ConflictKind>> {
    let actual = read_version(conn, shard, &write.key)?;
    if actual != write.expected_version {
        return Ok(Some(ConflictKind::VersionMismatch {
            expected: write.expected_version,
            actual,
        }));
    }
    let Some(current) = &write.current else {
        return Ok(None);
    };
    let actual = read_current(
        conn,
        shard,
        write.key.namespace_id.as_str(),
        &write.key.workflow_id,
    )?;
    let holds = match (&current.condition, &actual) {
        (CurrentRunCondition::MustNotExist, None) => true,
        (CurrentRunCondition::RunIdIs(run_id), Some(stored)) => *run_id == stored.run_id,
        _ => false,
    };
    Ok((!holds).then_some(ConflictKind::CurrentRunMismatch { actual }))
}

fn apply_write(conn: &Connection, shard: i64, write: &ExecutionWrite) -> rusqlite::Result<()> {
    let key = &write.key;
    let ns = key.namespace_id.as_str();
    if write.expected_version.is_some() {
        conn.prepare_cached(
            "UPDATE executions SET db_record_version = ?5, state = ?6
             WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4",
        )?
        .execute((
            shard,
            ns,
            &key.workflow_id,
            &key.run_id,
            write.new_version,
            &write.state,
        ))?;
    } else {
        conn.prepare_cached(
            "INSERT INTO executions
             (shard_id, namespace_id, workflow_id, run_id, db_record_version, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute((
            shard,
            ns,
            &key.workflow_id,
            &key.run_id,
            write.new_version,
            &write.state,
        ))?;
    }
    if let Some(current) = &write.current {
        let r = &current.record;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO current_executions
             (shard_id, namespace_id, workflow_id, run_id, create_request_id, state, status,
              start_time_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute((
            shard,
            ns,
            &key.workflow_id,
            &r.run_id,
            &r.create_request_id,
            r.state,
            r.status,
            r.start_time_ms,
        ))?;
    }
    if let Some(record) = &write.visibility {
        crate::visibility::upsert(conn, record)?;
    }
    if !write.tasks.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT OR REPLACE INTO tasks (shard_id, category, fire_time_ms, task_id, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for task in &write.tasks {
            insert.execute((
                shard,
                task.category.as_i32(),
                task.key.fire_time_ms,
                task.key.task_id,
                &task.data,
            ))?;
        }
    }
    Ok(())
}

/// The whole batch in one savepoint of the writer's immediate transaction (see `pool`).
/// Conditions are all checked against the state before the batch (as a Cassandra
/// conditional batch does), then everything is applied; an early return drops the
/// savepoint, which rolls the batch back (the history `nodes` with it).
fn commit_batch(
    conn: &mut Connection,
    shard_id: ShardId,
    held: RangeId,
    nodes: &[(BranchId, HistoryNode)],
    writes: &[ExecutionWrite],
) -> rusqlite::Result<Result<(), CommitError>> {
    let shard = i64::from(shard_id.0);
    let tx = conn.savepoint()?;
    match check_range(&tx, shard_id, held)? {
        Ok(()) => {}
        Err(StoreError::OwnershipLost { held, actual }) => {
            return Ok(Err(CommitError::ShardOwnershipLost { held, actual }));
        }
        Err(other) => return Ok(Err(CommitError::Store(other))),
    }
    for (index, write) in writes.iter().enumerate() {
        if let Some(kind) = check_write(&tx, shard, write)? {
            return Ok(Err(CommitError::Conflict { index, kind }));
        }
    }
    crate::history::insert_nodes(&tx, nodes)?;
    for write in writes {
        apply_write(&tx, shard, write)?;
    }
    tx.commit()?;
    Ok(Ok(()))
}

fn validate(writes: &[ExecutionWrite]) -> Result<(), StoreError> {
    for (index, write) in writes.iter().enumerate() {
        if let Some(expected) = write.expected_version
            && write.new_version <= expected
        {
            return Err(StoreError::Invalid(format!(
                "write {index} of the batch: new version {} must be greater than the expected version {expected}",
                write.new_version
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl ExecutionStore for SqliteStore {
    async fn get_or_create_shard(
        &self,
        shard_id: ShardId,
        initial_info: &[u8],
    ) -> Result<ShardRecord, StoreError> {
        // Shards exist after their first acquisition: try the cheap read first.
        if let Some(row) = self.read(move |c| read_shard(c, shard_id)).await? {
            return Ok(row);
        }
        let info = initial_info.to_vec();
        let row = self
            .write(move |c| {
                c.prepare_cached(
                    "INSERT OR IGNORE INTO shards (shard_id, range_id, info) VALUES (?1, 0, ?2)",
                )?
                .execute((i64::from(shard_id.0), &info))?;
                read_shard(c, shard_id)
            })
            .await?;
        row.ok_or_else(|| {
            StoreError::Internal(format!(
                "shard {shard_id} vanished right after its creation"
            ))
        })
    }

    async fn update_shard(
        &self,
        expected_range_id: RangeId,
        record: &ShardRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            if let Err(e) = check_range(&tx, record.shard_id, expected_range_id)? {
                return Ok(Err(e));
            }
            tx.prepare_cached("UPDATE shards SET range_id = ?2, info = ?3 WHERE shard_id = ?1")?
                .execute((
                    i64::from(record.shard_id.0),
                    record.range_id.0,
                    &record.info,
                ))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn get_current_execution(
        &self,
        shard_id: ShardId,
        namespace_id: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecution>, StoreError> {
        let ns = namespace_id.0.clone();
        let wf = workflow_id.to_owned();
        self.read(move |c| read_current(c, i64::from(shard_id.0), &ns, &wf))
            .await
    }

    async fn get_execution(
        &self,
        shard_id: ShardId,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let key = key.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT state, db_record_version FROM executions
                 WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4",
            )?
            .query_row(
                (
                    i64::from(shard_id.0),
                    key.namespace_id.as_str(),
                    &key.workflow_id,
                    &key.run_id,
                ),
                |row| {
                    Ok(ExecutionRecord {
                        state: row.get(0)?,
                        db_record_version: row.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn commit(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        self.commit_with_history(shard_id, range_id, &[], writes)
            .await
    }

    fn commits_history(&self) -> bool {
        true
    }

    async fn commit_with_history(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        nodes: &[(BranchId, HistoryNode)],
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        validate(writes)?;
        let writes = writes.to_vec();
        let nodes = nodes.to_vec();
        self.write(move |c| commit_batch(c, shard_id, range_id, &nodes, &writes))
            .await?
    }

    async fn delete_execution(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        key: &ExecutionKey,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| {
            let shard = i64::from(shard_id.0);
            let tx = c.savepoint()?;
            if let Err(e) = check_range(&tx, shard_id, range_id)? {
                return Ok(Err(e));
            }
            let ns = key.namespace_id.as_str();
            tx.prepare_cached(
                "DELETE FROM executions
                 WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4",
            )?
            .execute((shard, ns, &key.workflow_id, &key.run_id))?;
            tx.prepare_cached(
                "DELETE FROM current_executions
                 WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4",
            )?
            .execute((shard, ns, &key.workflow_id, &key.run_id))?;
            crate::visibility::delete(&tx, &key)?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn get_tasks(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_min: TaskKey,
        exclusive_max: TaskKey,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(move |c| {
            // The plain column bounds let the planner seek the primary key on fire time;
            // the row-value comparisons make both ends exclusive on the pair.
            let mut stmt = c.prepare_cached(
                "SELECT fire_time_ms, task_id, data FROM tasks
                 WHERE shard_id = ?1 AND category = ?2
                   AND fire_time_ms >= ?3 AND fire_time_ms <= ?5
                   AND (fire_time_ms, task_id) > (?3, ?4)
                   AND (fire_time_ms, task_id) < (?5, ?6)
                 ORDER BY fire_time_ms, task_id
                 LIMIT ?7",
            )?;
            let rows = stmt.query_map(
                (
                    i64::from(shard_id.0),
                    category.as_i32(),
                    exclusive_min.fire_time_ms,
                    exclusive_min.task_id,
                    exclusive_max.fire_time_ms,
                    exclusive_max.task_id,
                    sql_limit(limit),
                ),
                |row| {
                    Ok(TaskRecord {
                        category,
                        key: TaskKey {
                            fire_time_ms: row.get(0)?,
                            task_id: row.get(1)?,
                        },
                        data: row.get(2)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn delete_task(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        key: TaskKey,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM tasks
                 WHERE shard_id = ?1 AND category = ?2 AND fire_time_ms = ?3 AND task_id = ?4",
            )?
            .execute((
                i64::from(shard_id.0),
                category.as_i32(),
                key.fire_time_ms,
                key.task_id,
            ))?;
            Ok(())
        })
        .await
    }

    async fn delete_tasks_before(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        category: TaskCategory,
        exclusive_max: TaskKey,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let tx = c.savepoint()?;
            if let Err(e) = check_range(&tx, shard_id, range_id)? {
                return Ok(Err(e));
            }
            tx.prepare_cached(
                "DELETE FROM tasks
                 WHERE shard_id = ?1 AND category = ?2
                   AND fire_time_ms <= ?3 AND (fire_time_ms, task_id) < (?3, ?4)",
            )?
            .execute((
                i64::from(shard_id.0),
                category.as_i32(),
                exclusive_max.fire_time_ms,
                exclusive_max.task_id,
            ))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }
}

#[async_trait]
impl ClusterMetadataStore for SqliteStore {
    async fn init_cluster_metadata(
        &self,
        proposed: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError> {
        let proposed = proposed.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO cluster_metadata (id, cluster_name, num_shards)
                 VALUES (1, ?1, ?2)",
            )?
            .execute((&proposed.cluster_name, proposed.num_shards))?;
            let stored = tx
                .prepare_cached(
                    "SELECT cluster_name, num_shards FROM cluster_metadata WHERE id = 1",
                )?
                .query_row([], |row| {
                    Ok(ClusterMetadata {
                        cluster_name: row.get(0)?,
                        num_shards: row.get(1)?,
                    })
                })?;
            tx.commit()?;
            Ok(stored)
        })
        .await
    }
}
