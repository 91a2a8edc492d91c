//! Matching backlog: a partition per task queue partition, holding its lease row and its
//! tasks, so that writing tasks under the lease is one conditional batch.

use async_trait::async_trait;
use scylla::value::CqlValue;
use temper_persistence::{QueueTask, StoreError, TaskQueueKey, TaskQueueLease, TaskQueueStore};
use temper_types::{RangeId, TaskId};

use crate::CassandraStore;
use crate::rows::{ENCODING, RowView, Values, bigint, blob, int, limit, text};
use crate::statements::Stmt;

/// The lease row's clustering key.
const LEASE_ROW: i32 = 0;
const LEASE_TASK_ID: i64 = 0;
/// The `row_type` of tasks of the default priority level (and of every task stored before
/// levels existed). Tasks of another level `p` have `row_type` [`LEVEL_ROW_BASE`] `+ p`, so
/// each level is a run of its own in the partition, in task id order.
const TASK_ROW: i32 = 1;
const LEVEL_ROW_BASE: i32 = 10;
/// Compare-and-set rounds `lease_task_queue` makes before giving up under contention.
const MAX_LEASE_ATTEMPTS: usize = 64;
/// Pause after a lease attempt timed out (Paxos contention), before reading again.
const CONTENTION_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// The partition key as bind values.
pub(crate) fn partition(key: &TaskQueueKey) -> Values {
    vec![
        text(key.namespace_id.as_str()),
        text(&key.name),
        int(key.task_type),
        bigint(i64::from(key.partition)),
    ]
}

/// The lease row's key: partition, row type, task id.
fn lease_key(key: &TaskQueueKey) -> Values {
    let mut v = partition(key);
    v.extend([int(LEASE_ROW), bigint(LEASE_TASK_ID)]);
    v
}

/// The `row_type` of tasks of priority level `priority`.
fn task_row(priority: u8) -> i32 {
    if priority == QueueTask::DEFAULT_PRIORITY {
        TASK_ROW
    } else {
        LEVEL_ROW_BASE + i32::from(priority)
    }
}

fn with(mut front: Values, more: impl IntoIterator<Item = CqlValue>) -> Values {
    front.extend(more);
    front
}

/// The lease's `(range_id, ack_level)` from a row, if the row has them.
pub(crate) fn decode_lease(row: &RowView<'_>) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(
        match (row.opt_bigint("range_id")?, row.opt_bigint("ack_level")?) {
            (Some(range), Some(ack)) => Some((range, ack)),
            _ => None,
        },
    )
}

/// The next step of a lease attempt, from what the store has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseStep {
    /// No row: create it with range 1.
    Create,
    /// Bump `range` to `range + 1`, expecting `ack`.
    Bump { range: i64, ack: i64 },
}

pub(crate) fn lease_statement(key: &TaskQueueKey, step: &LeaseStep) -> (Stmt, Values) {
    match step {
        LeaseStep::Create => (
            Stmt::InsertTaskQueue,
            with(lease_key(key), [bigint(1), bigint(0)]),
        ),
        LeaseStep::Bump { range, ack } => (
            Stmt::LeaseTaskQueue,
            with(
                vec![bigint(range + 1)],
                with(lease_key(key), [bigint(*range), bigint(*ack)]),
            ),
        ),
    }
}

/// The statements that write `tasks` under the lease `held`: the fence first.
pub(crate) fn create_statements(
    key: &TaskQueueKey,
    held: RangeId,
    tasks: &[QueueTask],
) -> Vec<(Stmt, Values)> {
    let mut out = Vec::with_capacity(tasks.len() + 1);
    out.push((
        Stmt::FenceTaskQueue,
        with(vec![bigint(held.0)], with(lease_key(key), [bigint(held.0)])),
    ));
    for task in tasks {
        out.push((
            Stmt::InsertQueueTask,
            with(
                partition(key),
                [
                    int(task_row(task.priority)),
                    bigint(task.task_id),
                    blob(&task.data),
                    text(ENCODING),
                ],
            ),
        ));
    }
    out
}

pub(crate) fn select_lease(key: &TaskQueueKey) -> (Stmt, Values) {
    (Stmt::SelectTaskQueue, lease_key(key))
}

/// Save the ack level if the lease is still `held`.
pub(crate) fn update_ack(key: &TaskQueueKey, held: RangeId, ack_level: TaskId) -> (Stmt, Values) {
    (
        Stmt::UpdateTaskQueueAck,
        with(
            vec![bigint(ack_level)],
            with(lease_key(key), [bigint(held.0)]),
        ),
    )
}

pub(crate) fn select_tasks(
    key: &TaskQueueKey,
    priority: u8,
    exclusive_min: TaskId,
    max: usize,
) -> (Stmt, Values) {
    (
        Stmt::SelectQueueTasks,
        with(
            partition(key),
            [int(task_row(priority)), bigint(exclusive_min), limit(max)],
        ),
    )
}

pub(crate) fn delete_task(key: &TaskQueueKey, priority: u8, task_id: TaskId) -> (Stmt, Values) {
    (
        Stmt::DeleteQueueTask,
        with(partition(key), [int(task_row(priority)), bigint(task_id)]),
    )
}

/// Range delete of every task of one level with `task_id <= inclusive_max`.
pub(crate) fn delete_tasks_through(
    key: &TaskQueueKey,
    priority: u8,
    inclusive_max: TaskId,
) -> (Stmt, Values) {
    (
        Stmt::DeleteQueueTasksThrough,
        with(
            partition(key),
            [int(task_row(priority)), bigint(inclusive_max)],
        ),
    )
}

/// The error for a failed `IF range_id = <held>` on the lease row (`row`: the result's row,
/// if any).
pub(crate) fn lease_condition(
    key: &TaskQueueKey,
    held: RangeId,
    row: Option<&RowView<'_>>,
) -> Result<StoreError, StoreError> {
    let actual = match row {
        Some(row) => row.opt_bigint("range_id")?,
        None => None,
    };
    Ok(match actual {
        None => StoreError::NotFound(format!(
            "task queue {key:?} has no lease row; lease it before writing"
        )),
        Some(actual) if actual != held.0 => StoreError::OwnershipLost {
            held,
            actual: RangeId(actual),
        },
        Some(_) => StoreError::ConditionFailed(format!(
            "task queue {key:?}: write under lease {held} was not applied although the lease \
             is unchanged; retry"
        )),
    })
}

/// A task row read from the run of level `priority`.
pub(crate) fn decode_task(row: &RowView<'_>, priority: u8) -> Result<QueueTask, StoreError> {
    Ok(QueueTask {
        task_id: row.bigint("task_id")?,
        priority,
        data: row.encoded_blob("data", "data_encoding")?,
    })
}

impl CassandraStore {
    /// The lease row, linearizably.
    async fn read_lease(&self, key: &TaskQueueKey) -> Result<Option<(i64, i64)>, StoreError> {
        let (stmt, values) = select_lease(key);
        let rows = self
            .read_serial(
                &format!("reading the lease of task queue {:?}", key.name),
                stmt,
                values,
            )
            .await?;
        match rows.first() {
            Some(row) => decode_lease(&row),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl TaskQueueStore for CassandraStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        let what = format!("leasing task queue {:?}", key.name);
        let mut known = self.read_lease(key).await?;
        for _ in 0..MAX_LEASE_ATTEMPTS {
            let step = match known {
                None => LeaseStep::Create,
                Some((range, ack)) => LeaseStep::Bump { range, ack },
            };
            let (stmt, values) = lease_statement(key, &step);
            let rows = match self.execute(&what, stmt, values).await {
                Ok(rows) => rows,
                // An unknown outcome is harmless here: a lease taken twice just skips a range
                // id. Read what is there and go on.
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(CONTENTION_PAUSE).await;
                    known = self.read_lease(key).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if rows.applied()? {
                return Ok(match step {
                    LeaseStep::Create => TaskQueueLease {
                        range_id: RangeId(1),
                        ack_level: 0,
                    },
                    LeaseStep::Bump { range, ack } => TaskQueueLease {
                        range_id: RangeId(range + 1),
                        ack_level: ack,
                    },
                });
            }
            // Someone else won this round; the result carries what they wrote (the condition
            // columns, or the whole row after IF NOT EXISTS).
            known = match rows.first() {
                Some(row) => match decode_lease(&row)? {
                    Some(lease) => Some(lease),
                    None => self.read_lease(key).await?,
                },
                None => self.read_lease(key).await?,
            };
        }
        Err(StoreError::Unavailable(format!(
            "{what}: gave up after {MAX_LEASE_ATTEMPTS} contended attempts"
        )))
    }

    async fn update_task_queue(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        ack_level: TaskId,
    ) -> Result<(), StoreError> {
        let (stmt, values) = update_ack(key, range_id, ack_level);
        let rows = self
            .execute(
                &format!("saving the ack level of task queue {:?}", key.name),
                stmt,
                values,
            )
            .await?;
        if rows.applied()? {
            return Ok(());
        }
        Err(lease_condition(key, range_id, rows.first().as_ref())?)
    }

    async fn create_queue_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        tasks: &[QueueTask],
    ) -> Result<(), StoreError> {
        let what = format!("writing tasks of task queue {:?}", key.name);
        let rows = self
            .batch(&what, create_statements(key, range_id, tasks))
            .await?;
        if rows.applied()? {
            return Ok(());
        }
        // The lease row is the only conditional one: with key columns (a batch) or without
        // (a batch of the fence alone is still a batch), it is the row with a range id.
        let lease_row = rows
            .iter()
            .find(|r| r.opt_bigint("range_id").ok().flatten().is_some());
        Err(lease_condition(key, range_id, lease_row.as_ref())?)
    }

    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        exclusive_min: TaskId,
        max: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        let (stmt, values) = select_tasks(key, priority, exclusive_min, max);
        let rows = self
            .select_paged(
                &format!("reading tasks of task queue {:?}", key.name),
                stmt,
                values,
                max,
            )
            .await?;
        rows.iter().map(|row| decode_task(&row, priority)).collect()
    }

    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        task_id: TaskId,
    ) -> Result<(), StoreError> {
        let (stmt, values) = delete_task(key, priority, task_id);
        self.execute(
            &format!("deleting a task of task queue {:?}", key.name),
            stmt,
            values,
        )
        .await
        .map(drop)
    }

    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError> {
        let (stmt, values) = delete_tasks_through(key, priority, inclusive_max);
        self.execute(
            &format!("deleting acknowledged tasks of task queue {:?}", key.name),
            stmt,
            values,
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use temper_types::NamespaceId;

    use super::*;
    use crate::rows::APPLIED;
    use crate::rows::testing::{row_from_binds, rows};

    fn queue() -> TaskQueueKey {
        TaskQueueKey {
            namespace_id: NamespaceId("ns".into()),
            name: "orders".into(),
            task_type: 2,
            partition: 3,
        }
    }

    #[test]
    fn leases_create_then_bump_expecting_the_ack_level() {
        let q = queue();
        let (stmt, values) = lease_statement(&q, &LeaseStep::Create);
        assert_eq!(stmt, Stmt::InsertTaskQueue);
        assert_eq!(
            values,
            vec![
                text("ns"),
                text("orders"),
                int(2),
                bigint(3),
                int(0),
                bigint(0),
                bigint(1),
                bigint(0)
            ]
        );
        let (stmt, values) = lease_statement(&q, &LeaseStep::Bump { range: 7, ack: 41 });
        assert_eq!(stmt, Stmt::LeaseTaskQueue);
        // SET range_id = 8 WHERE <lease row> IF range_id = 7 AND ack_level = 41
        assert_eq!(values[0], bigint(8));
        assert_eq!(values[1..7], lease_key(&q)[..]);
        assert_eq!(values[7..], [bigint(7), bigint(41)]);
    }

    #[test]
    fn lost_leases_are_decoded_from_the_failed_condition() {
        let q = queue();
        let lost = rows(
            &[APPLIED, "range_id"],
            &[&[(APPLIED, CqlValue::Boolean(false)), ("range_id", bigint(3))]],
        );
        assert_eq!(
            lease_condition(&q, RangeId(2), lost.first().as_ref()).expect("decodable"),
            StoreError::OwnershipLost {
                held: RangeId(2),
                actual: RangeId(3)
            }
        );
        // No lease row: Cassandra returns [applied] alone, ScyllaDB a null range id.
        for missing in [
            rows(&[APPLIED], &[&[(APPLIED, CqlValue::Boolean(false))]]),
            rows(
                &[APPLIED, "range_id"],
                &[&[(APPLIED, CqlValue::Boolean(false))]],
            ),
        ] {
            assert!(matches!(
                lease_condition(&q, RangeId(2), missing.first().as_ref()).expect("decodable"),
                StoreError::NotFound(_)
            ));
        }
        // A losing lease attempt learns the winner's range and ack level.
        let raced = rows(
            &[APPLIED, "range_id", "ack_level"],
            &[&[
                (APPLIED, CqlValue::Boolean(false)),
                ("range_id", bigint(5)),
                ("ack_level", bigint(40)),
            ]],
        );
        assert_eq!(
            decode_lease(&raced.first().expect("row")).expect("decodable"),
            Some((5, 40))
        );
    }

    #[test]
    fn task_writes_are_fenced_by_the_lease() {
        let q = queue();
        let tasks = [
            QueueTask {
                task_id: 10,
                priority: QueueTask::DEFAULT_PRIORITY,
                data: b"a".to_vec(),
            },
            QueueTask {
                task_id: 11,
                priority: 1,
                data: b"b".to_vec(),
            },
        ];
        let stmts = create_statements(&q, RangeId(4), &tasks);
        assert_eq!(stmts.len(), 3);
        assert_eq!(stmts[0].0, Stmt::FenceTaskQueue);
        assert_eq!(stmts[0].1.first(), Some(&bigint(4)));
        assert_eq!(stmts[0].1.last(), Some(&bigint(4)));
        assert_eq!(stmts[2].0, Stmt::InsertQueueTask);
        let back = row_from_binds(
            &[
                "namespace_id",
                "name",
                "task_type",
                "partition_id",
                "row_type",
                "task_id",
                "data",
                "data_encoding",
            ],
            &stmts[2].1,
        );
        assert_eq!(
            decode_task(&back.first().expect("row"), 1).expect("decode"),
            tasks[1]
        );
        // The default level keeps the row type of tasks stored before levels existed.
        assert_eq!(stmts[1].1.get(4), Some(&int(TASK_ROW)));
        assert_eq!(stmts[2].1.get(4), Some(&int(LEVEL_ROW_BASE + 1)));
        assert_eq!(create_statements(&q, RangeId(4), &[]).len(), 1);
    }
}
