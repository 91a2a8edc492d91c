//! Visibility on Cassandra: List, Count and Scan of workflow runs from tables laid out for
//! the common query shapes, kept consistent with the commits that change runs.
//!
//! Write path. A commit's conditional batch can only touch the shard's partition, so the
//! records it carries go into the shard's visibility outbox inside the batch (`outbox.rs`),
//! and right after the batch applied, before `commit` returns, they are written to the
//! visibility tables (`layout.rs`). A List issued after the RPC returned therefore reads
//! them (both at the configured quorum). Every visibility write is stamped with the
//! record's version, so replays and late writes never move a run backwards. If that second
//! step fails, the commit still succeeds (the workflow changed) and the outbox row is
//! replayed at the shard's next flush or acquisition; until then List lags.
//!
//! Read path: `planner.rs`. Counts walk the same partitions as a listing of every match.

mod layout;
mod outbox;
mod planner;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::future::try_join_all;
use scylla::response::PagingState;
use temper_persistence::{
    ExecutionKey, StatusCounts, StoreError, TaskKey, VisibilityCursor, VisibilityFilter,
    VisibilityRecord, VisibilityStore,
};
use temper_types::{NamespaceId, ShardId};

pub(crate) use layout::NullableValues;
pub(crate) use outbox::Outbox;
pub use planner::VisibilityReadStats;

use crate::errors::{Op, store_error};
use crate::executions::{RowKey, row_type};
use crate::rows::{ENCODING, Rows, bigint, int, text};
use crate::statements::Stmt;
use crate::{CassandraStore, executions};

/// Partitions one visibility query read (histogram, label `query`: `list` or `count`).
pub const PARTITIONS_READ: &str = "temper_visibility_partitions_read";
/// Rows one visibility query read before the in-memory filter (histogram, label `query`).
pub const ROWS_READ: &str = "temper_visibility_rows_read";

/// What visibility reads cost since the store was created, for benchmarks and metrics.
#[derive(Debug, Default)]
pub(crate) struct ReadCounters {
    queries: AtomicU64,
    partitions: AtomicU64,
    pages: AtomicU64,
    rows: AtomicU64,
}

/// Totals of every visibility query a store answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisibilityReadTotals {
    pub queries: u64,
    pub reads: VisibilityReadStats,
}

/// The directory entries this process knows are stored, so each hour's entry is written
/// once per process rather than with every close. An entry counts only once its write
/// succeeded: until then every close of that hour writes it too (it is idempotent), so a
/// commit never returns before the directory points at its closed rows.
#[derive(Debug, Default)]
pub(crate) struct WrittenBuckets(
    std::sync::Mutex<std::collections::HashSet<(String, String, i64)>>,
);

impl WrittenBuckets {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<(String, String, i64)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the entry may be missing from the store.
    fn needs(&self, entry: &(String, String, i64)) -> bool {
        !self.set().contains(entry)
    }

    /// These entries are stored.
    fn stored(&self, entries: Vec<(String, String, i64)>) {
        let mut set = self.set();
        if set.len() > 10_000 {
            set.clear();
        }
        set.extend(entries);
    }
}

/// The outbox row of a commit's visibility record.
pub(crate) fn outbox_row(
    shard: i32,
    key: TaskKey,
    record: &VisibilityRecord,
) -> (Stmt, crate::rows::Values) {
    (
        Stmt::InsertTask,
        RowKey::visibility_outbox(shard, key)
            .values_then([crate::rows::blob(&outbox::encode(record)), text(ENCODING)]),
    )
}

impl CassandraStore {
    /// Run one visibility statement whose values may hold nulls.
    async fn execute_nullable(
        &self,
        what: &str,
        stmt: Stmt,
        values: &NullableValues,
    ) -> Result<Rows, StoreError> {
        let prepared = self.inner.prepared.get(stmt);
        let result = self
            .inner
            .session
            .execute_unpaged(prepared, values)
            .await
            .map_err(|e| store_error(what, Op::Idempotent, &e))?;
        Rows::from_result(result)
    }

    /// One page of a visibility read.
    pub(crate) async fn visibility_page(
        &self,
        stmt: Stmt,
        values: &NullableValues,
        paging: PagingState,
        page_size: i32,
    ) -> Result<(Rows, Option<PagingState>), StoreError> {
        let mut prepared = self.inner.prepared.get(stmt).clone();
        prepared.set_page_size(page_size);
        let (result, next) = self
            .inner
            .session
            .execute_single_page(&prepared, values, paging)
            .await
            .map_err(|e| store_error("reading visibility records", Op::Idempotent, &e))?;
        let next = match next.into_paging_control_flow() {
            ControlFlow::Break(()) => None,
            ControlFlow::Continue(state) => Some(state),
        };
        Ok((Rows::from_result(result)?, next))
    }

    /// Write `records` to the visibility tables (all concurrently; each write idempotent).
    pub(crate) async fn write_visibility(
        &self,
        records: &[&VisibilityRecord],
    ) -> Result<(), StoreError> {
        let mut writes: Vec<(Stmt, NullableValues)> = Vec::new();
        let mut entries = Vec::new();
        for r in records {
            writes.extend(layout::write_statements(r));
            for (scope, bucket) in layout::directory_entries(r) {
                let entry = (r.namespace_id.0.clone(), scope, bucket);
                if self.inner.visibility_buckets.needs(&entry) {
                    writes.push((
                        Stmt::InsertVisibilityBucket,
                        vec![
                            Some(text(&entry.0)),
                            Some(text(&entry.1)),
                            Some(bigint(bucket)),
                        ],
                    ));
                    entries.push(entry);
                }
            }
        }
        try_join_all(writes.iter().map(|(stmt, values)| {
            self.execute_nullable("writing a visibility record", *stmt, values)
        }))
        .await?;
        self.inner.visibility_buckets.stored(entries);
        Ok(())
    }

    /// After a commit batch: write its records, then let the outbox forget them. A failure
    /// leaves them for a replay and is only logged: the commit itself is done.
    pub(crate) async fn after_commit(
        &self,
        shard: i32,
        keys: &[TaskKey],
        records: &[&VisibilityRecord],
    ) {
        if keys.is_empty() {
            return;
        }
        match self.write_visibility(records).await {
            Ok(()) => self.inner.outbox.finish(shard, keys),
            Err(e) => {
                tracing::warn!(
                    shard,
                    error = %e,
                    "writing visibility records after a commit failed; they stay in the \
                     shard's outbox and are written at its next flush"
                );
                self.inner.outbox.fail(shard, keys);
            }
        }
    }

    /// Write every record still in `shard_id`'s outbox, then remove the outbox rows that
    /// are written (one range delete). Called when the shard row is saved.
    pub(crate) async fn tidy_outbox(&self, shard_id: ShardId, acquired: bool) {
        let Ok(shard) = executions::shard_key(shard_id) else {
            return;
        };
        if acquired || self.inner.outbox.needs_replay(shard) {
            let started = self.inner.outbox.now_ms();
            match self.replay_outbox(shard, started).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(%shard_id, records = n, "replayed visibility outbox");
                    }
                    self.inner.outbox.replayed(shard, started);
                }
                Err(e) => {
                    tracing::warn!(%shard_id, error = %e, "replaying the visibility outbox failed");
                    return;
                }
            }
        }
        let before = self.inner.outbox.removable_before(shard);
        let values = vec![
            int(shard),
            int(row_type::VISIBILITY_OUTBOX),
            text(executions::UNUSED),
            text(executions::UNUSED),
            text(executions::UNUSED),
            bigint(before),
        ];
        if let Err(e) = self
            .execute(
                "removing written visibility outbox rows",
                Stmt::DeleteTasksBeforeTime,
                values,
            )
            .await
        {
            tracing::warn!(%shard_id, error = %e, "removing visibility outbox rows failed");
        }
    }

    async fn replay_outbox(&self, shard: i32, before_ms: i64) -> Result<usize, StoreError> {
        let rows = self
            .select_all(
                "reading the visibility outbox",
                Stmt::SelectVisibilityOutbox,
                vec![
                    int(shard),
                    int(row_type::VISIBILITY_OUTBOX),
                    text(executions::UNUSED),
                    text(executions::UNUSED),
                    text(executions::UNUSED),
                    bigint(before_ms.saturating_add(1)),
                ],
            )
            .await?;
        let records = rows
            .iter()
            .map(|row| outbox::decode(&row.encoded_blob("data", "data_encoding")?))
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in records.chunks(64) {
            let refs: Vec<&VisibilityRecord> = chunk.iter().collect();
            self.write_visibility(&refs).await?;
        }
        Ok(records.len())
    }

    /// Remove every row of one run's record for good.
    pub(crate) async fn retire_visibility(&self, key: &ExecutionKey) -> Result<(), StoreError> {
        let Some(record) = self.read_visibility(key).await? else {
            return Ok(());
        };
        let deletes = layout::delete_statements(&record);
        try_join_all(deletes.iter().map(|(stmt, values)| {
            self.execute_nullable("deleting a visibility record", *stmt, values)
        }))
        .await
        .map(drop)
    }

    async fn read_visibility(
        &self,
        key: &ExecutionKey,
    ) -> Result<Option<VisibilityRecord>, StoreError> {
        let rows = self
            .execute(
                "reading a visibility record",
                Stmt::SelectVisibilityRun,
                vec![
                    text(key.namespace_id.as_str()),
                    text(&key.workflow_id),
                    text(&key.run_id),
                ],
            )
            .await?;
        rows.first().map(|row| layout::decode(&row)).transpose()
    }

    fn count_reads(&self, what: &'static str, stats: VisibilityReadStats) {
        metrics::histogram!(PARTITIONS_READ, "query" => what).record(stats.partitions as f64);
        metrics::histogram!(ROWS_READ, "query" => what).record(stats.rows as f64);
        let c = &self.inner.visibility_reads;
        c.queries.fetch_add(1, Ordering::Relaxed);
        c.partitions.fetch_add(stats.partitions, Ordering::Relaxed);
        c.pages.fetch_add(stats.pages, Ordering::Relaxed);
        c.rows.fetch_add(stats.rows, Ordering::Relaxed);
        tracing::debug!(
            query = what,
            partitions = stats.partitions,
            pages = stats.pages,
            rows = stats.rows,
            "visibility read"
        );
    }

    /// Totals of every visibility query this store answered (the planner's partition reads
    /// per query are `reads.partitions / queries` between two snapshots).
    pub fn visibility_read_totals(&self) -> VisibilityReadTotals {
        let c = &self.inner.visibility_reads;
        VisibilityReadTotals {
            queries: c.queries.load(Ordering::Relaxed),
            reads: VisibilityReadStats {
                partitions: c.partitions.load(Ordering::Relaxed),
                pages: c.pages.load(Ordering::Relaxed),
                rows: c.rows.load(Ordering::Relaxed),
            },
        }
    }

    async fn count_matching(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<std::collections::BTreeMap<i32, u64>, StoreError> {
        let mut groups = std::collections::BTreeMap::new();
        let stats = self
            .walk_visibility(namespace_id, filter, None, 1000, true, |r| {
                *groups.entry(r.status).or_insert(0) += 1;
                ControlFlow::Continue(())
            })
            .await?;
        self.count_reads("count", stats);
        Ok(groups)
    }
}

#[async_trait]
impl VisibilityStore for CassandraStore {
    async fn list_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRecord>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let stats = self
            .walk_visibility(namespace_id, filter, after, limit, false, |r| {
                out.push(r);
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await?;
        self.count_reads("list", stats);
        Ok(out)
    }

    async fn count_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<u64, StoreError> {
        Ok(self
            .count_matching(namespace_id, filter)
            .await?
            .values()
            .sum())
    }

    async fn count_visibility_by_status(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<StatusCounts, StoreError> {
        Ok(self
            .count_matching(namespace_id, filter)
            .await?
            .into_iter()
            .collect())
    }

    async fn get_visibility(
        &self,
        key: &ExecutionKey,
    ) -> Result<Option<VisibilityRecord>, StoreError> {
        self.read_visibility(key).await
    }

    async fn delete_visibility(&self, key: &ExecutionKey) -> Result<(), StoreError> {
        self.retire_visibility(key).await
    }
}

/// Values for every visibility statement, for the schema checks of `statements.rs`.
#[cfg(test)]
pub(crate) fn statement_samples() -> Vec<(Stmt, crate::rows::Values)> {
    let full = VisibilityRecord {
        namespace_id: NamespaceId("ns".into()),
        workflow_id: "wf".into(),
        run_id: "run".into(),
        workflow_type: "type".into(),
        task_queue: "queue".into(),
        status: 2,
        start_time_ns: 1,
        execution_time_ns: 1,
        close_time_ns: Some(2),
        history_length: 3,
        history_size_bytes: 4,
        state_transition_count: 5,
        parent_workflow_id: Some("parent".into()),
        parent_run_id: Some("parent-run".into()),
        root_workflow_id: "wf".into(),
        root_run_id: "run".into(),
        namespace_division: Some("division".into()),
        memo: b"memo".to_vec(),
        search_attributes: b"attrs".to_vec(),
        keywords: Some(vec![("k".into(), "v".into())]),
        version: 7,
    };
    let partition = [text("ns"), text("*"), bigint(0)];
    let mut nullable = layout::write_statements(&full);
    nullable.extend(layout::delete_statements(&full));
    nullable.push(layout::upsert(
        Stmt::UpsertVisibilityOpen,
        &full,
        &partition,
    ));
    let mut out: Vec<(Stmt, crate::rows::Values)> = nullable
        .into_iter()
        .map(|(stmt, values)| {
            let values = values
                .into_iter()
                .map(|v| v.expect("the sample record sets every field"))
                .collect();
            (stmt, values)
        })
        .collect();
    out.push(outbox_row(3, TaskKey::immediate(1), &full));
    out.push((
        Stmt::SelectVisibilityOutbox,
        vec![
            int(3),
            int(row_type::VISIBILITY_OUTBOX),
            text(executions::UNUSED),
            text(executions::UNUSED),
            text(executions::UNUSED),
            bigint(10),
        ],
    ));
    out.push((
        Stmt::InsertVisibilityBucket,
        vec![text("ns"), text("*"), bigint(0)],
    ));
    out.push((
        Stmt::SelectVisibilityBuckets,
        vec![text("ns"), text("*"), bigint(0), bigint(10)],
    ));
    out.push((
        Stmt::SelectVisibilityRun,
        vec![text("ns"), text("wf"), text("run")],
    ));
    out.push((Stmt::SelectVisibilityWorkflow, vec![text("ns"), text("wf")]));
    for stmt in [
        Stmt::SelectVisibilityOpen,
        Stmt::SelectVisibilityClosed,
        Stmt::CountVisibilityOpen,
        Stmt::CountVisibilityClosed,
    ] {
        out.push((
            stmt,
            vec![text("ns"), text("*"), bigint(0), bigint(0), bigint(10)],
        ));
    }
    out
}
