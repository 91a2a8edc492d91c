//! The shard partition of the `executions` table: the shard row, executions, current-run
//! pointers and the shard's tasks, and the cluster metadata row.

use async_trait::async_trait;
use temper_persistence::{
    ClusterMetadata, ClusterMetadataStore, CommitError, CurrentExecution, ExecutionKey,
    ExecutionRecord, ExecutionStore, ExecutionWrite, ShardRecord, StoreError, TaskCategory,
    TaskKey, TaskRecord,
};
use temper_types::{NamespaceId, RangeId, ShardId};

use crate::commit::{self, Failure};
use crate::rows::{ENCODING, RowView, Values, bigint, blob, int, limit, text};
use crate::statements::Stmt;
use crate::{CassandraStore, Rows};

/// What each row of a shard partition is (the `row_type` clustering column).
pub(crate) mod row_type {
    pub const SHARD: i32 = 0;
    pub const EXECUTION: i32 = 1;
    pub const CURRENT: i32 = 2;
    pub const TRANSFER: i32 = 3;
    pub const TIMER: i32 = 4;
    pub const VISIBILITY: i32 = 5;
    /// A commit's visibility record waiting to be written to the visibility tables
    /// (`visibility/outbox.rs`); keyed like a transfer task.
    pub const VISIBILITY_OUTBOX: i32 = 6;
}

/// The value of text key columns a row type does not use.
pub(crate) const UNUSED: &str = "-";

pub(crate) fn task_row_type(category: TaskCategory) -> i32 {
    match category {
        TaskCategory::Transfer => row_type::TRANSFER,
        TaskCategory::Timer => row_type::TIMER,
        TaskCategory::Visibility => row_type::VISIBILITY,
    }
}

/// The `int` partition key of a shard.
pub(crate) fn shard_key(shard_id: ShardId) -> Result<i32, StoreError> {
    i32::try_from(shard_id.0)
        .map_err(|_| StoreError::Invalid(format!("shard id {shard_id} does not fit an int")))
}

/// The primary key of one row of a shard partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowKey<'a> {
    pub shard: i32,
    pub row_type: i32,
    pub namespace_id: &'a str,
    pub workflow_id: &'a str,
    pub run_id: &'a str,
    pub fire_time_ms: i64,
    pub task_id: i64,
}

impl<'a> RowKey<'a> {
    pub(crate) fn shard_row(shard: i32) -> Self {
        Self {
            shard,
            row_type: row_type::SHARD,
            namespace_id: UNUSED,
            workflow_id: UNUSED,
            run_id: UNUSED,
            fire_time_ms: 0,
            task_id: 0,
        }
    }

    pub(crate) fn execution(shard: i32, key: &'a ExecutionKey) -> Self {
        Self {
            shard,
            row_type: row_type::EXECUTION,
            namespace_id: key.namespace_id.as_str(),
            workflow_id: &key.workflow_id,
            run_id: &key.run_id,
            fire_time_ms: 0,
            task_id: 0,
        }
    }

    pub(crate) fn current(shard: i32, namespace_id: &'a str, workflow_id: &'a str) -> Self {
        Self {
            shard,
            row_type: row_type::CURRENT,
            namespace_id,
            workflow_id,
            run_id: UNUSED,
            fire_time_ms: 0,
            task_id: 0,
        }
    }

    pub(crate) fn task(shard: i32, category: TaskCategory, key: TaskKey) -> Self {
        Self {
            shard,
            row_type: task_row_type(category),
            namespace_id: UNUSED,
            workflow_id: UNUSED,
            run_id: UNUSED,
            fire_time_ms: key.fire_time_ms,
            task_id: key.task_id,
        }
    }

    pub(crate) fn visibility_outbox(shard: i32, key: TaskKey) -> Self {
        Self {
            row_type: row_type::VISIBILITY_OUTBOX,
            ..Self::task(shard, TaskCategory::Visibility, key)
        }
    }

    /// The key as bind values, in primary key order.
    pub(crate) fn values(&self) -> Values {
        vec![
            int(self.shard),
            int(self.row_type),
            text(self.namespace_id),
            text(self.workflow_id),
            text(self.run_id),
            bigint(self.fire_time_ms),
            bigint(self.task_id),
        ]
    }

    /// The key's columns followed by `more`.
    pub(crate) fn values_then(
        &self,
        more: impl IntoIterator<Item = scylla::value::CqlValue>,
    ) -> Values {
        let mut v = self.values();
        v.extend(more);
        v
    }

    /// `more` followed by the key's columns (UPDATE ... SET ... WHERE <key>).
    pub(crate) fn after(&self, more: impl IntoIterator<Item = scylla::value::CqlValue>) -> Values {
        let mut v: Values = more.into_iter().collect();
        v.extend(self.values());
        v
    }

    /// Whether `row` (from a conditional batch's result) is this row. Rows of statements
    /// whose row does not exist come back with null keys (older ScyllaDB) or not at all.
    pub(crate) fn is(&self, row: &RowView<'_>) -> Result<bool, StoreError> {
        Ok(row.opt_int("shard_id")? == Some(self.shard)
            && row.opt_int("row_type")? == Some(self.row_type)
            && row.opt_text("namespace_id")? == Some(self.namespace_id)
            && row.opt_text("workflow_id")? == Some(self.workflow_id)
            && row.opt_text("run_id")? == Some(self.run_id)
            && row.opt_bigint("fire_time_ms")? == Some(self.fire_time_ms)
            && row.opt_bigint("task_id")? == Some(self.task_id))
    }
}

pub(crate) fn decode_shard(
    shard_id: ShardId,
    row: &RowView<'_>,
) -> Result<ShardRecord, StoreError> {
    Ok(ShardRecord {
        shard_id,
        range_id: RangeId(row.bigint("range_id")?),
        info: row.encoded_blob("shard_info", "shard_info_encoding")?,
    })
}

/// A current-run pointer, if the row carries all of it (a failed `IF current_run_id = ?`
/// returns only the run id).
pub(crate) fn decode_current(row: &RowView<'_>) -> Result<Option<CurrentExecution>, StoreError> {
    let (Some(run_id), Some(create_request_id), Some(state), Some(status), Some(start)) = (
        row.opt_text("current_run_id")?,
        row.opt_text("create_request_id")?,
        row.opt_int("run_state")?,
        row.opt_int("run_status")?,
        row.opt_bigint("start_time_ms")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(CurrentExecution {
        run_id: run_id.to_owned(),
        create_request_id: create_request_id.to_owned(),
        state,
        status,
        start_time_ms: start,
    }))
}

pub(crate) fn decode_execution(row: &RowView<'_>) -> Result<ExecutionRecord, StoreError> {
    Ok(ExecutionRecord {
        state: row.encoded_blob("state", "state_encoding")?,
        db_record_version: row.bigint("db_record_version")?,
    })
}

pub(crate) fn decode_task(
    category: TaskCategory,
    row: &RowView<'_>,
) -> Result<TaskRecord, StoreError> {
    Ok(TaskRecord {
        category,
        key: TaskKey {
            fire_time_ms: row.bigint("fire_time_ms")?,
            task_id: row.bigint("task_id")?,
        },
        data: row.encoded_blob("data", "data_encoding")?,
    })
}

/// Values of `SelectTasks`: the category's rows with `min < (fire time, id) < max`.
pub(crate) fn select_tasks_values(
    shard: i32,
    category: TaskCategory,
    exclusive_min: TaskKey,
    exclusive_max: TaskKey,
    max_rows: usize,
) -> Values {
    let mut values = vec![int(shard)];
    // Whole-clustering-key bounds: the task row keys of the two bounds (same leading
    // columns).
    values.extend(
        RowKey::task(shard, category, exclusive_min)
            .values()
            .into_iter()
            .skip(1),
    );
    values.extend(
        RowKey::task(shard, category, exclusive_max)
            .values()
            .into_iter()
            .skip(1),
    );
    values.push(limit(max_rows));
    values
}

/// The two range deletes that remove every task with key `< exclusive_max`: all earlier
/// fire times, then the earlier ids at the bound's fire time. (CQL range deletes take
/// single-column slices; a tuple slice is not portable across Cassandra and ScyllaDB.)
pub(crate) fn delete_tasks_before_statements(
    shard: i32,
    category: TaskCategory,
    exclusive_max: TaskKey,
) -> [(Stmt, Values); 2] {
    let t = task_row_type(category);
    let prefix = || vec![int(shard), int(t), text(UNUSED), text(UNUSED), text(UNUSED)];
    let mut before_time = prefix();
    before_time.push(bigint(exclusive_max.fire_time_ms));
    let mut at_time = prefix();
    at_time.push(bigint(exclusive_max.fire_time_ms));
    at_time.push(bigint(exclusive_max.task_id));
    [
        (Stmt::DeleteTasksBeforeTime, before_time),
        (Stmt::DeleteTasksAtTimeBefore, at_time),
    ]
}

/// Create a shard row with range 0 if there is none.
pub(crate) fn insert_shard(shard: i32, info: &[u8]) -> (Stmt, Values) {
    (
        Stmt::InsertShard,
        RowKey::shard_row(shard).values_then([bigint(0), blob(info), text(ENCODING)]),
    )
}

/// Replace the shard row if its range id is still `expected`.
pub(crate) fn update_shard(shard: i32, expected: RangeId, record: &ShardRecord) -> (Stmt, Values) {
    let mut values = RowKey::shard_row(shard).after([
        bigint(record.range_id.0),
        blob(&record.info),
        text(ENCODING),
    ]);
    values.push(bigint(expected.0));
    (Stmt::UpdateShard, values)
}

impl CassandraStore {
    /// A commit timed out: read its first execution row linearizably and report what that
    /// proves (see [`commit::resolve_unknown`]); otherwise the outcome stays unknown.
    async fn resolve_unknown_commit(
        &self,
        shard_id: ShardId,
        shard: i32,
        writes: &[ExecutionWrite],
        message: String,
    ) -> Result<(), CommitError> {
        let unknown = || CommitError::Store(StoreError::Unavailable(message.clone()));
        let Some(first) = writes.first() else {
            return Err(unknown());
        };
        let observed = match self
            .read_serial(
                &format!("resolving a commit to shard {shard_id}"),
                Stmt::SelectExecution,
                RowKey::execution(shard, &first.key).values(),
            )
            .await
        {
            Ok(rows) => match rows.first().map(|row| decode_execution(&row)).transpose() {
                Ok(observed) => observed,
                Err(_) => return Err(unknown()),
            },
            Err(_) => return Err(unknown()),
        };
        match commit::resolve_unknown(first, observed.as_ref()) {
            commit::Resolution::Applied => {
                tracing::info!(%shard_id, "a commit that timed out turned out applied");
                Ok(())
            }
            commit::Resolution::Lost(err) => Err(err),
            commit::Resolution::Unknown => Err(unknown()),
        }
    }
}

impl CassandraStore {
    /// Send a commit's batch and decode what happened.
    async fn commit_batch(
        &self,
        shard_id: ShardId,
        shard: i32,
        range_id: RangeId,
        writes: &[ExecutionWrite],
        statements: Vec<(Stmt, Values)>,
    ) -> Result<(), CommitError> {
        let rows = match self
            .batch(&format!("commit to shard {shard_id}"), statements)
            .await
        {
            Ok(rows) => rows,
            Err(StoreError::OutcomeUnknown(message)) => {
                return self
                    .resolve_unknown_commit(shard_id, shard, writes, message)
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        if rows.applied()? {
            return Ok(());
        }
        match commit::decode_failure(shard_id, shard, range_id, writes, &rows)? {
            Failure::Decided(err) => Err(err),
            Failure::CurrentRunMismatch { index } => {
                // The failed condition returned only the pointer's run id: report it whole.
                let write = &writes[index];
                let actual = self
                    .get_current_execution(
                        shard_id,
                        &write.key.namespace_id,
                        &write.key.workflow_id,
                    )
                    .await?;
                Err(CommitError::Conflict {
                    index,
                    kind: temper_persistence::ConflictKind::CurrentRunMismatch { actual },
                })
            }
        }
    }

    /// Delete the execution row (and its pointer if it is at this run), fenced.
    async fn delete_execution_row(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        key: &ExecutionKey,
    ) -> Result<(), StoreError> {
        let shard = shard_key(shard_id)?;
        let what = format!("deleting execution {}/{}", key.workflow_id, key.run_id);
        // The pointer goes only if it is at this run; that is a condition of its own, so a
        // pointer that moves between the read and the batch makes us read again.
        for _ in 0..commit::MAX_DELETE_ATTEMPTS {
            let current = self
                .get_current_execution(shard_id, &key.namespace_id, &key.workflow_id)
                .await?;
            let with_pointer = current.is_some_and(|c| c.run_id == key.run_id);
            let statements = commit::delete_statements(shard, range_id, key, with_pointer);
            let rows = self.batch(&what, statements).await?;
            if rows.applied()? {
                return Ok(());
            }
            if let Some(err) = shard_refusal(&rows, shard_id, range_id)? {
                return Err(err);
            }
            // The shard condition held: the pointer moved. Try again.
        }
        Err(StoreError::Unavailable(format!(
            "{what}: the current-run pointer kept changing; try again"
        )))
    }
}

#[async_trait]
impl ExecutionStore for CassandraStore {
    async fn get_or_create_shard(
        &self,
        shard_id: ShardId,
        initial_info: &[u8],
    ) -> Result<ShardRecord, StoreError> {
        let shard = shard_key(shard_id)?;
        let key = RowKey::shard_row(shard);
        let what = format!("reading shard {shard_id}");
        // Linearizable: the range id read here is what the acquiring CAS will compare.
        let rows = self
            .read_serial(&what, Stmt::SelectShard, key.values())
            .await?;
        if let Some(row) = rows.first() {
            return decode_shard(shard_id, &row);
        }
        let (stmt, values) = insert_shard(shard, initial_info);
        let rows = self
            .execute(&format!("creating shard {shard_id}"), stmt, values)
            .await?;
        if rows.applied()? {
            return Ok(ShardRecord {
                shard_id,
                range_id: RangeId(0),
                info: initial_info.to_vec(),
            });
        }
        // Someone else created it in between: read what they wrote.
        let rows = self
            .read_serial(&what, Stmt::SelectShard, key.values())
            .await?;
        match rows.first() {
            Some(row) => decode_shard(shard_id, &row),
            None => Err(StoreError::Internal(format!(
                "shard {shard_id} exists according to INSERT IF NOT EXISTS but cannot be read"
            ))),
        }
    }

    async fn update_shard(
        &self,
        expected_range_id: RangeId,
        record: &ShardRecord,
    ) -> Result<(), StoreError> {
        let shard = shard_key(record.shard_id)?;
        let (stmt, values) = update_shard(shard, expected_range_id, record);
        let rows = self
            .execute(&format!("updating shard {}", record.shard_id), stmt, values)
            .await?;
        if rows.applied()? {
            // Saved under the range we hold: a good moment to replay and trim the outbox
            // (before the first commit of a new owner, when it acquires the shard).
            self.tidy_outbox(record.shard_id, record.range_id != expected_range_id)
                .await;
            return Ok(());
        }
        Err(
            commit::shard_condition(record.shard_id, expected_range_id, rows.first().as_ref())?
                .unwrap_or_else(|| {
                    StoreError::ConditionFailed(format!(
                        "updating shard {}: not applied although its range id is {expected_range_id}",
                        record.shard_id
                    ))
                }),
        )
    }

    async fn get_current_execution(
        &self,
        shard_id: ShardId,
        namespace_id: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecution>, StoreError> {
        let shard = shard_key(shard_id)?;
        let key = RowKey::current(shard, namespace_id.as_str(), workflow_id);
        let rows = self
            .execute(
                &format!("reading the current run of {workflow_id}"),
                Stmt::SelectCurrent,
                key.values(),
            )
            .await?;
        match rows.first() {
            Some(row) => decode_current(&row)?.map(Some).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "the current-run row of {workflow_id} in shard {shard_id} is incomplete"
                ))
            }),
            None => Ok(None),
        }
    }

    async fn get_execution(
        &self,
        shard_id: ShardId,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let shard = shard_key(shard_id)?;
        let rows = self
            .execute(
                &format!("reading execution {}/{}", key.workflow_id, key.run_id),
                Stmt::SelectExecution,
                RowKey::execution(shard, key).values(),
            )
            .await?;
        rows.first().map(|row| decode_execution(&row)).transpose()
    }

    async fn commit(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        commit::validate(writes)?;
        if let Some(conflict) = commit::same_row_conflict(writes) {
            return Err(conflict);
        }
        let shard = shard_key(shard_id)?;
        let records: Vec<&temper_persistence::VisibilityRecord> = writes
            .iter()
            .filter_map(|w| w.visibility.as_ref())
            .collect();
        let keys = self.inner.outbox.reserve(shard, records.len());
        let mut statements = commit::statements(shard, range_id, writes);
        statements.extend(
            keys.iter()
                .zip(&records)
                .map(|(key, record)| crate::visibility::outbox_row(shard, *key, record)),
        );
        let result = self
            .commit_batch(shard_id, shard, range_id, writes, statements)
            .await;
        match &result {
            Ok(()) => self.after_commit(shard, &keys, &records).await,
            // Not applied, certainly.
            Err(CommitError::Conflict { .. } | CommitError::ShardOwnershipLost { .. }) => {
                self.inner.outbox.finish(shard, &keys);
            }
            // Perhaps applied: replay at the next flush.
            Err(CommitError::Store(_)) => self.inner.outbox.fail(shard, &keys),
        }
        result
    }

    async fn delete_execution(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        key: &ExecutionKey,
    ) -> Result<(), StoreError> {
        self.delete_execution_row(shard_id, range_id, key).await?;
        self.retire_visibility(key).await
    }
    async fn get_tasks(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_min: TaskKey,
        exclusive_max: TaskKey,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        if exclusive_min >= exclusive_max || limit == 0 {
            return Ok(Vec::new());
        }
        let shard = shard_key(shard_id)?;
        let rows = self
            .select_paged(
                &format!("reading {category:?} tasks of shard {shard_id}"),
                Stmt::SelectTasks,
                select_tasks_values(shard, category, exclusive_min, exclusive_max, limit),
                limit,
            )
            .await?;
        rows.iter().map(|row| decode_task(category, &row)).collect()
    }

    async fn delete_task(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        key: TaskKey,
    ) -> Result<(), StoreError> {
        let shard = shard_key(shard_id)?;
        self.execute(
            &format!("deleting a {category:?} task of shard {shard_id}"),
            Stmt::DeleteTask,
            RowKey::task(shard, category, key).values(),
        )
        .await
        .map(drop)
    }

    async fn delete_tasks_before(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        category: TaskCategory,
        exclusive_max: TaskKey,
    ) -> Result<(), StoreError> {
        let shard = shard_key(shard_id)?;
        let what = format!("deleting acknowledged {category:?} tasks of shard {shard_id}");
        // One conditional batch on the shard's partition: the fence, then the range deletes.
        let mut statements = vec![commit::fence(shard, range_id)];
        statements.extend(delete_tasks_before_statements(
            shard,
            category,
            exclusive_max,
        ));
        let rows = self.batch(&what, statements).await?;
        if rows.applied()? {
            return Ok(());
        }
        Err(shard_refusal(&rows, shard_id, range_id)?
            .unwrap_or_else(|| StoreError::Internal(format!("{what}: the batch was not applied"))))
    }
}

/// The error a refused conditional batch on a shard's partition gets from the shard row's
/// fence (the shard's range moved on, or it has no row); `None` if the fence held and another
/// condition refused the batch.
fn shard_refusal(
    rows: &Rows,
    shard_id: ShardId,
    range_id: RangeId,
) -> Result<Option<StoreError>, StoreError> {
    let shard = shard_key(shard_id)?;
    let shard_row = rows
        .iter()
        .find(|row| RowKey::shard_row(shard).is(row).unwrap_or(false));
    commit::shard_condition(shard_id, range_id, shard_row.as_ref())
}

/// The cluster metadata row's partition key.
const METADATA_PARTITION: i32 = 0;

pub(crate) fn select_cluster_metadata() -> (Stmt, Values) {
    (Stmt::SelectClusterMetadata, vec![int(METADATA_PARTITION)])
}

pub(crate) fn insert_cluster_metadata(
    proposed: &ClusterMetadata,
) -> Result<(Stmt, Values), StoreError> {
    let num_shards = i32::try_from(proposed.num_shards).map_err(|_| {
        StoreError::Invalid(format!("{} shards do not fit an int", proposed.num_shards))
    })?;
    Ok((
        Stmt::InsertClusterMetadata,
        vec![
            int(METADATA_PARTITION),
            text(&proposed.cluster_name),
            int(num_shards),
        ],
    ))
}

pub(crate) fn decode_cluster_metadata(row: &RowView<'_>) -> Result<ClusterMetadata, StoreError> {
    let num_shards = row.int("num_shards")?;
    Ok(ClusterMetadata {
        cluster_name: row.text("cluster_name")?.to_owned(),
        num_shards: u32::try_from(num_shards).map_err(|_| {
            StoreError::Invalid(format!("stored num_shards {num_shards} is negative"))
        })?,
    })
}

#[async_trait]
impl ClusterMetadataStore for CassandraStore {
    async fn init_cluster_metadata(
        &self,
        proposed: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError> {
        let what = "initializing cluster metadata";
        let (stmt, values) = insert_cluster_metadata(proposed)?;
        let rows = self.execute(what, stmt, values).await?;
        if rows.applied()? {
            return Ok(proposed.clone());
        }
        // IF NOT EXISTS returned the existing row (all its columns); read it linearizably if
        // this server version did not.
        if let Some(row) = rows.first()
            && row.opt_text("cluster_name")?.is_some()
        {
            return decode_cluster_metadata(&row);
        }
        let (stmt, values) = select_cluster_metadata();
        let rows = self.read_serial(what, stmt, values).await?;
        match rows.first() {
            Some(row) => decode_cluster_metadata(&row),
            None => Err(StoreError::Internal(
                "cluster metadata exists according to INSERT IF NOT EXISTS but cannot be read"
                    .to_owned(),
            )),
        }
    }
}

#[cfg(test)]
fn first_row(rows: &crate::rows::Rows) -> RowView<'_> {
    rows.first().expect("a row")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::{row_from_binds, rows};

    #[test]
    fn keys_put_unused_columns_to_placeholders() {
        let exec = ExecutionKey {
            namespace_id: NamespaceId("ns".into()),
            workflow_id: "wf".into(),
            run_id: "run".into(),
        };
        assert_eq!(
            RowKey::shard_row(3).values(),
            vec![
                int(3),
                int(0),
                text("-"),
                text("-"),
                text("-"),
                bigint(0),
                bigint(0)
            ]
        );
        assert_eq!(
            RowKey::execution(3, &exec).values(),
            vec![
                int(3),
                int(1),
                text("ns"),
                text("wf"),
                text("run"),
                bigint(0),
                bigint(0)
            ]
        );
        assert_eq!(
            RowKey::current(3, "ns", "wf").values(),
            vec![
                int(3),
                int(2),
                text("ns"),
                text("wf"),
                text("-"),
                bigint(0),
                bigint(0)
            ]
        );
        let timer = TaskKey {
            fire_time_ms: 500,
            task_id: 9,
        };
        assert_eq!(
            RowKey::task(3, TaskCategory::Timer, timer).values(),
            vec![
                int(3),
                int(4),
                text("-"),
                text("-"),
                text("-"),
                bigint(500),
                bigint(9)
            ]
        );
        assert_eq!(
            RowKey::task(3, TaskCategory::Transfer, TaskKey::immediate(9)).row_type,
            row_type::TRANSFER
        );
        assert_eq!(
            RowKey::task(3, TaskCategory::Visibility, TaskKey::immediate(9)).row_type,
            row_type::VISIBILITY
        );
        assert!(shard_key(ShardId(u32::MAX)).is_err());
    }

    /// What a commit writes comes back unchanged through the SELECTs (blob round trips).
    #[test]
    fn shard_execution_current_and_task_rows_round_trip() {
        let shard = RowKey::shard_row(1);
        let written = shard.values_then([bigint(7), blob(b"\x00info\xff"), text(ENCODING)]);
        let back = row_from_binds(
            &[
                "shard_id",
                "row_type",
                "namespace_id",
                "workflow_id",
                "run_id",
                "fire_time_ms",
                "task_id",
                "range_id",
                "shard_info",
                "shard_info_encoding",
            ],
            &written,
        );
        assert_eq!(
            decode_shard(ShardId(1), &first_row(&back)).expect("decode"),
            ShardRecord {
                shard_id: ShardId(1),
                range_id: RangeId(7),
                info: b"\x00info\xff".to_vec(),
            }
        );

        let exec = rows(
            &["state", "state_encoding", "db_record_version"],
            &[&[
                ("state", blob(b"mutable state")),
                ("state_encoding", text(ENCODING)),
                ("db_record_version", bigint(4)),
            ]],
        );
        assert_eq!(
            decode_execution(&first_row(&exec)).expect("decode"),
            ExecutionRecord {
                state: b"mutable state".to_vec(),
                db_record_version: 4,
            }
        );

        let current = rows(
            &[
                "current_run_id",
                "create_request_id",
                "run_state",
                "run_status",
                "start_time_ms",
            ],
            &[&[
                ("current_run_id", text("run")),
                ("create_request_id", text("req")),
                ("run_state", int(2)),
                ("run_status", int(1)),
                ("start_time_ms", bigint(1_700_000_000_000)),
            ]],
        );
        assert_eq!(
            decode_current(&first_row(&current)).expect("decode"),
            Some(CurrentExecution {
                run_id: "run".into(),
                create_request_id: "req".into(),
                state: 2,
                status: 1,
                start_time_ms: 1_700_000_000_000,
            })
        );
        let partial = rows(&["current_run_id"], &[&[("current_run_id", text("run"))]]);
        assert_eq!(decode_current(&first_row(&partial)).expect("decode"), None);

        let task = rows(
            &["fire_time_ms", "task_id", "data", "data_encoding"],
            &[&[
                ("fire_time_ms", bigint(900)),
                ("task_id", bigint(12)),
                ("data", blob(b"timer")),
                ("data_encoding", text(ENCODING)),
            ]],
        );
        assert_eq!(
            decode_task(TaskCategory::Timer, &first_row(&task)).expect("decode"),
            TaskRecord {
                category: TaskCategory::Timer,
                key: TaskKey {
                    fire_time_ms: 900,
                    task_id: 12,
                },
                data: b"timer".to_vec(),
            }
        );

        let metadata = rows(
            &[
                "[applied]",
                "metadata_partition",
                "cluster_name",
                "num_shards",
            ],
            &[&[
                ("[applied]", scylla::value::CqlValue::Boolean(false)),
                ("metadata_partition", int(0)),
                ("cluster_name", text("active")),
                ("num_shards", int(512)),
            ]],
        );
        assert_eq!(
            decode_cluster_metadata(&first_row(&metadata)).expect("decode"),
            ClusterMetadata {
                cluster_name: "active".into(),
                num_shards: 512,
            }
        );
    }

    #[test]
    fn task_reads_and_range_deletes_bind_the_bounds() {
        let min = TaskKey {
            fire_time_ms: 100,
            task_id: 2,
        };
        let max = TaskKey {
            fire_time_ms: 300,
            task_id: 0,
        };
        assert_eq!(
            select_tasks_values(1, TaskCategory::Timer, min, max, 50),
            vec![
                int(1),
                int(row_type::TIMER),
                text("-"),
                text("-"),
                text("-"),
                bigint(100),
                bigint(2),
                int(row_type::TIMER),
                text("-"),
                text("-"),
                text("-"),
                bigint(300),
                bigint(0),
                int(50),
            ]
        );
        let [(s1, v1), (s2, v2)] = delete_tasks_before_statements(1, TaskCategory::Transfer, max);
        assert_eq!(s1, Stmt::DeleteTasksBeforeTime);
        assert_eq!(v1[5..], [bigint(300)]);
        assert_eq!(s2, Stmt::DeleteTasksAtTimeBefore);
        assert_eq!(v2[5..], [bigint(300), bigint(0)]);
        assert_eq!(v2[1], int(row_type::TRANSFER));
    }
}
