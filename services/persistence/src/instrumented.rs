//! Store metrics: [`Instrumented`] wraps a [`Persistence`] and times every call.
//!
//! Every method of the store traits records, under `operation` (the method's name):
//! `temper_persistence_requests_total`, `temper_persistence_latency_seconds` (a histogram), and
//! on failure `temper_persistence_errors_total` with the error's `kind`. Labels are static
//! strings, so a call allocates nothing for its metrics; with no recorder installed (tests,
//! a node without a metrics endpoint) the `metrics` macros do nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use temper_types::{NamespaceId, RangeId, ShardId, TaskId};

use crate::{
    BranchId, ClusterMetadata, ClusterMetadataStore, CommitError, CurrentExecution, ExecutionKey,
    ExecutionRecord, ExecutionStore, ExecutionWrite, HistoryNode, HistoryStore, MemberRow,
    MembershipStore, NamespaceRecord, NamespaceStore, Persistence, QueueTask, ShardRecord,
    StoreError, TaskCategory, TaskKey, TaskQueueKey, TaskQueueLease, TaskQueueStore, TaskRecord,
};

/// Requests per operation.
pub const REQUESTS: &str = "temper_persistence_requests_total";
/// Failed requests per operation and error kind.
pub const ERRORS: &str = "temper_persistence_errors_total";
/// Latency per operation, in seconds.
pub const LATENCY: &str = "temper_persistence_latency_seconds";

/// A store error's kind, as the `kind` label shows it.
pub trait ErrorKind {
    fn kind(&self) -> &'static str;
}

impl ErrorKind for StoreError {
    fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::OutcomeUnknown(_) => "outcome_unknown",
            StoreError::NotFound(_) => "not_found",
            StoreError::AlreadyExists(_) => "already_exists",
            StoreError::OwnershipLost { .. } => "ownership_lost",
            StoreError::ConditionFailed(_) => "condition_failed",
            StoreError::Invalid(_) => "invalid",
            StoreError::Internal(_) => "internal",
        }
    }
}

impl ErrorKind for CommitError {
    fn kind(&self) -> &'static str {
        match self {
            CommitError::ShardOwnershipLost { .. } => "shard_ownership_lost",
            CommitError::Conflict { .. } => "conflict",
            CommitError::Store(e) => e.kind(),
        }
    }
}

/// Record one finished call of `operation`.
fn record<E: ErrorKind>(operation: &'static str, took: Duration, error: Option<&E>) {
    metrics::counter!(REQUESTS, "operation" => operation).increment(1);
    metrics::histogram!(LATENCY, "operation" => operation).record(took.as_secs_f64());
    if let Some(e) = error {
        metrics::counter!(ERRORS, "operation" => operation, "kind" => e.kind()).increment(1);
    }
}

/// Time `call` and record it under `operation`.
async fn timed<T, E, F>(operation: &'static str, call: F) -> Result<T, E>
where
    E: ErrorKind,
    F: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let result = call.await;
    record(operation, start.elapsed(), result.as_ref().err());
    result
}

/// A store that delegates every call to another one and records its metrics.
#[derive(Clone)]
pub struct Instrumented {
    inner: Persistence,
}

impl Persistence {
    /// This store with every call timed and counted (see [`crate::instrumented`]).
    pub fn instrumented(self) -> Persistence {
        Persistence::from_backend(Arc::new(Instrumented { inner: self }))
    }
}

#[async_trait]
impl ClusterMetadataStore for Instrumented {
    async fn init_cluster_metadata(
        &self,
        proposed: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError> {
        timed(
            "init_cluster_metadata",
            self.inner.cluster.init_cluster_metadata(proposed),
        )
        .await
    }
}

#[async_trait]
impl ExecutionStore for Instrumented {
    async fn get_or_create_shard(
        &self,
        shard_id: ShardId,
        initial_info: &[u8],
    ) -> Result<ShardRecord, StoreError> {
        let call = self
            .inner
            .executions
            .get_or_create_shard(shard_id, initial_info);
        timed("get_or_create_shard", call).await
    }

    async fn update_shard(
        &self,
        expected_range_id: RangeId,
        record: &ShardRecord,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .executions
            .update_shard(expected_range_id, record);
        timed("update_shard", call).await
    }

    async fn get_current_execution(
        &self,
        shard_id: ShardId,
        namespace_id: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecution>, StoreError> {
        let call = self
            .inner
            .executions
            .get_current_execution(shard_id, namespace_id, workflow_id);
        timed("get_current_execution", call).await
    }

    async fn get_execution(
        &self,
        shard_id: ShardId,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let call = self.inner.executions.get_execution(shard_id, key);
        timed("get_execution", call).await
    }

    async fn commit(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        let call = self.inner.executions.commit(shard_id, range_id, writes);
        timed("commit", call).await
    }

    async fn delete_execution(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        key: &ExecutionKey,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .executions
            .delete_execution(shard_id, range_id, key);
        timed("delete_execution", call).await
    }

    async fn get_tasks(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_min: TaskKey,
        exclusive_max: TaskKey,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let call = self.inner.executions.get_tasks(
            shard_id,
            category,
            exclusive_min,
            exclusive_max,
            limit,
        );
        timed("get_tasks", call).await
    }

    async fn delete_task(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        key: TaskKey,
    ) -> Result<(), StoreError> {
        let call = self.inner.executions.delete_task(shard_id, category, key);
        timed("delete_task", call).await
    }

    async fn delete_tasks_before(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_max: TaskKey,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .executions
            .delete_tasks_before(shard_id, category, exclusive_max);
        timed("delete_tasks_before", call).await
    }
}

#[async_trait]
impl HistoryStore for Instrumented {
    async fn append_history_node(
        &self,
        branch: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError> {
        let call = self.inner.history.append_history_node(branch, node);
        timed("append_history_node", call).await
    }

    // Delegated as one call, so a backend's batched write stays batched.
    async fn append_history_nodes(
        &self,
        nodes: &[(BranchId, HistoryNode)],
    ) -> Result<(), StoreError> {
        let call = self.inner.history.append_history_nodes(nodes);
        timed("append_history_nodes", call).await
    }

    async fn read_history_nodes(
        &self,
        branch: &BranchId,
        min_node_id: i64,
        max_node_id: i64,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<HistoryNode>, StoreError> {
        let call =
            self.inner
                .history
                .read_history_nodes(branch, min_node_id, max_node_id, after, limit);
        timed("read_history_nodes", call).await
    }

    async fn delete_history_branch(&self, branch: &BranchId) -> Result<(), StoreError> {
        let call = self.inner.history.delete_history_branch(branch);
        timed("delete_history_branch", call).await
    }
}

#[async_trait]
impl TaskQueueStore for Instrumented {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        let call = self.inner.task_queues.lease_task_queue(key);
        timed("lease_task_queue", call).await
    }

    async fn update_task_queue(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        ack_level: TaskId,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .task_queues
            .update_task_queue(key, range_id, ack_level);
        timed("update_task_queue", call).await
    }

    async fn create_queue_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        tasks: &[QueueTask],
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .task_queues
            .create_queue_tasks(key, range_id, tasks);
        timed("create_queue_tasks", call).await
    }

    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        exclusive_min: TaskId,
        limit: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        let call = self
            .inner
            .task_queues
            .get_queue_tasks(key, exclusive_min, limit);
        timed("get_queue_tasks", call).await
    }

    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        task_id: TaskId,
    ) -> Result<(), StoreError> {
        let call = self.inner.task_queues.delete_queue_task(key, task_id);
        timed("delete_queue_task", call).await
    }

    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .task_queues
            .delete_queue_tasks_through(key, inclusive_max);
        timed("delete_queue_tasks_through", call).await
    }
}

#[async_trait]
impl NamespaceStore for Instrumented {
    async fn create_namespace(&self, record: &NamespaceRecord) -> Result<(), StoreError> {
        let call = self.inner.namespaces.create_namespace(record);
        timed("create_namespace", call).await
    }

    async fn get_namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let call = self.inner.namespaces.get_namespace_by_name(name);
        timed("get_namespace_by_name", call).await
    }

    async fn get_namespace_by_id(
        &self,
        id: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let call = self.inner.namespaces.get_namespace_by_id(id);
        timed("get_namespace_by_id", call).await
    }

    async fn update_namespace(
        &self,
        expected_version: i64,
        record: &NamespaceRecord,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .namespaces
            .update_namespace(expected_version, record);
        timed("update_namespace", call).await
    }

    async fn list_namespaces(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let call = self.inner.namespaces.list_namespaces(after_name, limit);
        timed("list_namespaces", call).await
    }
}

#[async_trait]
impl MembershipStore for Instrumented {
    async fn heartbeat_member(&self, row: &MemberRow, ttl: Duration) -> Result<(), StoreError> {
        let call = self.inner.membership.heartbeat_member(row, ttl);
        timed("heartbeat_member", call).await
    }

    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
        timed("live_members", self.inner.membership.live_members()).await
    }
}
