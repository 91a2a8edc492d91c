//! Matching backlog: a lease row per task queue partition and its tasks.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use temper_persistence::{QueueTask, StoreError, TaskQueueKey, TaskQueueLease, TaskQueueStore};
use temper_types::{RangeId, TaskId};

use crate::{SqliteStore, sql_limit};

/// The key columns as parameters ?1 to ?4 (a macro so statements stay `&'static str`).
macro_rules! key_where {
    () => {
        "namespace_id = ?1 AND name = ?2 AND task_type = ?3 AND partition_id = ?4"
    };
}

type KeyParams<'a> = (&'a str, &'a str, i32, u32);

fn params(key: &TaskQueueKey) -> KeyParams<'_> {
    (
        key.namespace_id.as_str(),
        &key.name,
        key.task_type,
        key.partition,
    )
}

/// `Ok(())` if the lease is still `held`; otherwise the error to return.
fn check_lease(
    conn: &Connection,
    key: &TaskQueueKey,
    held: RangeId,
) -> rusqlite::Result<Result<(), StoreError>> {
    let actual: Option<i64> = conn
        .prepare_cached(concat!(
            "SELECT range_id FROM task_queues WHERE ",
            key_where!()
        ))?
        .query_row(params(key), |row| row.get(0))
        .optional()?;
    Ok(match actual.map(RangeId) {
        Some(actual) if actual == held => Ok(()),
        Some(actual) => Err(StoreError::OwnershipLost { held, actual }),
        None => Err(StoreError::NotFound(format!(
            "task queue {key:?} has no lease row; lease it before writing"
        ))),
    })
}

#[async_trait]
impl TaskQueueStore for SqliteStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        let key = key.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            let (ns, name, task_type, partition) = params(&key);
            tx.prepare_cached(
                "INSERT OR IGNORE INTO task_queues
                 (namespace_id, name, task_type, partition_id, range_id, ack_level)
                 VALUES (?1, ?2, ?3, ?4, 0, 0)",
            )?
            .execute((ns, name, task_type, partition))?;
            let lease = tx
                .prepare_cached(concat!(
                    "UPDATE task_queues SET range_id = range_id + 1 WHERE ",
                    key_where!(),
                    " RETURNING range_id, ack_level"
                ))?
                .query_row(params(&key), |row| {
                    Ok(TaskQueueLease {
                        range_id: RangeId(row.get(0)?),
                        ack_level: row.get(1)?,
                    })
                })?;
            tx.commit()?;
            Ok(lease)
        })
        .await
    }

    async fn update_task_queue(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        ack_level: TaskId,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            if let Err(e) = check_lease(&tx, &key, range_id)? {
                return Ok(Err(e));
            }
            let (ns, name, task_type, partition) = params(&key);
            tx.prepare_cached(concat!(
                "UPDATE task_queues SET ack_level = ?5 WHERE ",
                key_where!()
            ))?
            .execute((ns, name, task_type, partition, ack_level))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn create_queue_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        tasks: &[QueueTask],
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let tasks = tasks.to_vec();
        self.write(move |c| {
            let tx = c.savepoint()?;
            if let Err(e) = check_lease(&tx, &key, range_id)? {
                return Ok(Err(e));
            }
            {
                let (ns, name, task_type, partition) = params(&key);
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO queue_tasks
                     (namespace_id, name, task_type, partition_id, priority, task_id, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for task in &tasks {
                    insert.execute((
                        ns,
                        name,
                        task_type,
                        partition,
                        task.priority,
                        task.task_id,
                        &task.data,
                    ))?;
                }
            }
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        exclusive_min: TaskId,
        limit: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        let key = key.clone();
        self.read(move |c| {
            let (ns, name, task_type, partition) = params(&key);
            let mut stmt = c.prepare_cached(concat!(
                "SELECT task_id, data FROM queue_tasks WHERE ",
                key_where!(),
                " AND priority = ?5 AND task_id > ?6
                 ORDER BY task_id LIMIT ?7"
            ))?;
            let rows = stmt.query_map(
                (
                    ns,
                    name,
                    task_type,
                    partition,
                    priority,
                    exclusive_min,
                    sql_limit(limit),
                ),
                |row| {
                    Ok(QueueTask {
                        task_id: row.get(0)?,
                        priority,
                        data: row.get(1)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        task_id: TaskId,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| {
            let (ns, name, task_type, partition) = params(&key);
            c.prepare_cached(concat!(
                "DELETE FROM queue_tasks WHERE ",
                key_where!(),
                " AND priority = ?5 AND task_id = ?6"
            ))?
            .execute((ns, name, task_type, partition, priority, task_id))?;
            Ok(())
        })
        .await
    }

    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| {
            let (ns, name, task_type, partition) = params(&key);
            c.prepare_cached(concat!(
                "DELETE FROM queue_tasks WHERE ",
                key_where!(),
                " AND priority = ?5 AND task_id <= ?6"
            ))?
            .execute((ns, name, task_type, partition, priority, inclusive_max))?;
            Ok(())
        })
        .await
    }
}
