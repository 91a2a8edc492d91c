//! One store decorator: [`Decorated`] implements every store trait by handing each call to
//! an inner [`Persistence`] through a single hook, [`Around::around`], which sees the
//! operation and can time, delay or fail the call. The metrics store
//! ([`crate::instrumented`]) and the fault-injecting store (`faulty`, feature `testing`) are
//! such hooks, so a new store method is forwarded once, here, and every hook sees it.
//!
//! ```ignore
//! struct Log;
//! impl Around for Log {
//!     async fn around<T: Send, E: OpError, F>(&self, op: Operation, _: Option<usize>, call: F)
//!         -> Result<T, E>
//!     where F: Future<Output = Result<T, E>> + Send {
//!         let r = call.await;
//!         tracing::debug!(op = op.name(), ok = r.is_ok());
//!         r
//!     }
//! }
//! let logged = Decorated::new(persistence, Log).into_persistence();
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use temper_types::{NamespaceId, RangeId, ShardId, TaskId};

use crate::{
    BranchId, ClusterMetadata, ClusterMetadataStore, CommitError, CurrentExecution, ExecutionKey,
    ExecutionRecord, ExecutionStore, ExecutionWrite, HistoryNode, HistoryStore, MemberRow,
    MembershipStore, NamespaceRecord, NamespaceStore, NexusEndpointRecord, NexusEndpointStore,
    Persistence, QueueTask, ShardRecord, StatusCounts, StoreError, TaskCategory, TaskKey,
    TaskQueueKey, TaskQueueLease, TaskQueueStore, TaskRecord, VisibilityCursor, VisibilityFilter,
    VisibilityRecord, VisibilityStore,
};

/// One store operation: a method of the store traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    InitClusterMetadata,
    GetOrCreateShard,
    UpdateShard,
    GetCurrentExecution,
    GetExecution,
    Commit,
    DeleteExecution,
    GetTasks,
    DeleteTask,
    DeleteTasksBefore,
    AppendHistoryNode,
    AppendHistoryNodes,
    ReadHistoryNodes,
    DeleteHistoryBranch,
    LeaseTaskQueue,
    UpdateTaskQueue,
    CreateQueueTasks,
    GetQueueTasks,
    DeleteQueueTask,
    DeleteQueueTasksThrough,
    CreateNamespace,
    GetNamespaceByName,
    GetNamespaceById,
    UpdateNamespace,
    ListNamespaces,
    HeartbeatMember,
    LiveMembers,
    ListVisibility,
    CountVisibility,
    CountVisibilityByStatus,
    GetVisibility,
    DeleteVisibility,
    CreateNexusEndpoint,
    UpdateNexusEndpoint,
    DeleteNexusEndpoint,
    GetNexusEndpoint,
    ListNexusEndpoints,
}

impl Operation {
    /// The trait method's name, e.g. `"get_namespace_by_id"` (the metrics' `operation` label).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::InitClusterMetadata => "init_cluster_metadata",
            Operation::GetOrCreateShard => "get_or_create_shard",
            Operation::UpdateShard => "update_shard",
            Operation::GetCurrentExecution => "get_current_execution",
            Operation::GetExecution => "get_execution",
            Operation::Commit => "commit",
            Operation::DeleteExecution => "delete_execution",
            Operation::GetTasks => "get_tasks",
            Operation::DeleteTask => "delete_task",
            Operation::DeleteTasksBefore => "delete_tasks_before",
            Operation::AppendHistoryNode => "append_history_node",
            Operation::AppendHistoryNodes => "append_history_nodes",
            Operation::ReadHistoryNodes => "read_history_nodes",
            Operation::DeleteHistoryBranch => "delete_history_branch",
            Operation::LeaseTaskQueue => "lease_task_queue",
            Operation::UpdateTaskQueue => "update_task_queue",
            Operation::CreateQueueTasks => "create_queue_tasks",
            Operation::GetQueueTasks => "get_queue_tasks",
            Operation::DeleteQueueTask => "delete_queue_task",
            Operation::DeleteQueueTasksThrough => "delete_queue_tasks_through",
            Operation::CreateNamespace => "create_namespace",
            Operation::GetNamespaceByName => "get_namespace_by_name",
            Operation::GetNamespaceById => "get_namespace_by_id",
            Operation::UpdateNamespace => "update_namespace",
            Operation::ListNamespaces => "list_namespaces",
            Operation::HeartbeatMember => "heartbeat_member",
            Operation::LiveMembers => "live_members",
            Operation::ListVisibility => "list_visibility",
            Operation::CountVisibility => "count_visibility",
            Operation::CountVisibilityByStatus => "count_visibility_by_status",
            Operation::GetVisibility => "get_visibility",
            Operation::DeleteVisibility => "delete_visibility",
            Operation::CreateNexusEndpoint => "create_nexus_endpoint",
            Operation::UpdateNexusEndpoint => "update_nexus_endpoint",
            Operation::DeleteNexusEndpoint => "delete_nexus_endpoint",
            Operation::GetNexusEndpoint => "get_nexus_endpoint",
            Operation::ListNexusEndpoints => "list_nexus_endpoints",
        }
    }
}

/// The error of a store operation ([`StoreError`], or [`CommitError`] for commits), as a
/// hook sees it.
pub trait OpError: Send + 'static {
    /// The error's kind, as the metrics' `kind` label shows it.
    fn kind(&self) -> &'static str;

    /// `e` as this operation's error, for hooks that make errors up. A [`StoreError`] keeps
    /// only [`CommitError::Store`]'s error; other commit errors become
    /// [`StoreError::Internal`].
    fn from_commit_error(e: CommitError) -> Self;
}

impl OpError for StoreError {
    fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::OutcomeUnknown(_) => "outcome_unknown",
            StoreError::NotFound(_) => "not_found",
            StoreError::AlreadyExists(_) => "already_exists",
            StoreError::OwnershipLost { .. } => "ownership_lost",
            StoreError::ConditionFailed(_) => "condition_failed",
            StoreError::Invalid(_) => "invalid",
            StoreError::Unsupported(_) => "unsupported",
            StoreError::Internal(_) => "internal",
        }
    }

    fn from_commit_error(e: CommitError) -> Self {
        match e {
            CommitError::Store(s) => s,
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl OpError for CommitError {
    fn kind(&self) -> &'static str {
        match self {
            CommitError::ShardOwnershipLost { .. } => "shard_ownership_lost",
            CommitError::Conflict { .. } => "conflict",
            CommitError::Store(e) => e.kind(),
        }
    }

    fn from_commit_error(e: CommitError) -> Self {
        e
    }
}

/// What a [`Decorated`] store does around every call.
pub trait Around: Send + Sync + 'static {
    /// Whether `append_history_nodes` reaches the hook as one [`Operation::AppendHistoryNode`]
    /// call per node (each forwarded on its own) instead of one
    /// [`Operation::AppendHistoryNodes`] call forwarded as the inner store's batched write.
    const SPLIT_HISTORY_BATCHES: bool = false;

    /// What the decorated store answers to `commits_history`, given the inner store's
    /// answer: a hook may make the services append history apart, as on a store that
    /// keeps it apart.
    fn commits_history(&self, inner: bool) -> bool {
        inner
    }

    /// Run `call`, the inner store's answer to `op`, and return what the caller gets.
    /// `batch` is the number of items a batched write carries (commit writes, history
    /// nodes, queue tasks), `None` for the other operations. A hook may skip `call` (it
    /// then never reaches the store).
    fn around<T, E, F>(
        &self,
        op: Operation,
        batch: Option<usize>,
        call: F,
    ) -> impl Future<Output = Result<T, E>> + Send
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send;
}

/// A store that forwards every call to `inner` through `hook`.
#[derive(Clone)]
pub struct Decorated<H> {
    inner: Persistence,
    hook: H,
}

impl<H: Around> Decorated<H> {
    pub fn new(inner: Persistence, hook: H) -> Self {
        Self { inner, hook }
    }

    /// This store as the services' bundle of trait objects.
    pub fn into_persistence(self) -> Persistence {
        Persistence::from_backend(Arc::new(self))
    }

    async fn call<T, E, F>(&self, op: Operation, call: F) -> Result<T, E>
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send,
    {
        self.hook.around(op, None, call).await
    }

    async fn batch<T, E, F>(&self, op: Operation, items: usize, call: F) -> Result<T, E>
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send,
    {
        self.hook.around(op, Some(items), call).await
    }
}

#[async_trait]
impl<H: Around> ClusterMetadataStore for Decorated<H> {
    async fn init_cluster_metadata(
        &self,
        proposed: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError> {
        let call = self.inner.cluster.init_cluster_metadata(proposed);
        self.call(Operation::InitClusterMetadata, call).await
    }
}

#[async_trait]
impl<H: Around> ExecutionStore for Decorated<H> {
    async fn get_or_create_shard(
        &self,
        shard_id: ShardId,
        initial_info: &[u8],
    ) -> Result<ShardRecord, StoreError> {
        let call = self
            .inner
            .executions
            .get_or_create_shard(shard_id, initial_info);
        self.call(Operation::GetOrCreateShard, call).await
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
        self.call(Operation::UpdateShard, call).await
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
        self.call(Operation::GetCurrentExecution, call).await
    }

    async fn get_execution(
        &self,
        shard_id: ShardId,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let call = self.inner.executions.get_execution(shard_id, key);
        self.call(Operation::GetExecution, call).await
    }

    async fn commit(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        let call = self.inner.executions.commit(shard_id, range_id, writes);
        self.batch(Operation::Commit, writes.len(), call).await
    }

    fn commits_history(&self) -> bool {
        self.hook
            .commits_history(self.inner.executions.commits_history())
    }

    /// Seen by the hook as a commit: it is one, carrying its history nodes.
    async fn commit_with_history(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        nodes: &[(BranchId, HistoryNode)],
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        let call = self
            .inner
            .executions
            .commit_with_history(shard_id, range_id, nodes, writes);
        self.batch(Operation::Commit, writes.len(), call).await
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
        self.call(Operation::DeleteExecution, call).await
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
        self.call(Operation::GetTasks, call).await
    }

    async fn delete_task(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        key: TaskKey,
    ) -> Result<(), StoreError> {
        let call = self.inner.executions.delete_task(shard_id, category, key);
        self.call(Operation::DeleteTask, call).await
    }

    async fn delete_tasks_before(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        category: TaskCategory,
        exclusive_max: TaskKey,
    ) -> Result<(), StoreError> {
        let call =
            self.inner
                .executions
                .delete_tasks_before(shard_id, range_id, category, exclusive_max);
        self.call(Operation::DeleteTasksBefore, call).await
    }
}

#[async_trait]
impl<H: Around> HistoryStore for Decorated<H> {
    async fn append_history_node(
        &self,
        branch: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError> {
        let call = self.inner.history.append_history_node(branch, node);
        self.call(Operation::AppendHistoryNode, call).await
    }

    async fn append_history_nodes(
        &self,
        nodes: &[(BranchId, HistoryNode)],
    ) -> Result<(), StoreError> {
        if H::SPLIT_HISTORY_BATCHES {
            for (branch, node) in nodes {
                self.append_history_node(branch, node).await?;
            }
            return Ok(());
        }
        // Forwarded as one call, so a backend's batched write stays batched.
        let call = self.inner.history.append_history_nodes(nodes);
        self.batch(Operation::AppendHistoryNodes, nodes.len(), call)
            .await
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
        self.call(Operation::ReadHistoryNodes, call).await
    }

    async fn delete_history_branch(&self, branch: &BranchId) -> Result<(), StoreError> {
        let call = self.inner.history.delete_history_branch(branch);
        self.call(Operation::DeleteHistoryBranch, call).await
    }
}

#[async_trait]
impl<H: Around> TaskQueueStore for Decorated<H> {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        let call = self.inner.task_queues.lease_task_queue(key);
        self.call(Operation::LeaseTaskQueue, call).await
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
        self.call(Operation::UpdateTaskQueue, call).await
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
        self.batch(Operation::CreateQueueTasks, tasks.len(), call)
            .await
    }

    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        exclusive_min: TaskId,
        limit: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        let call = self
            .inner
            .task_queues
            .get_queue_tasks(key, priority, exclusive_min, limit);
        self.call(Operation::GetQueueTasks, call).await
    }

    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        task_id: TaskId,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .task_queues
            .delete_queue_task(key, priority, task_id);
        self.call(Operation::DeleteQueueTask, call).await
    }

    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .task_queues
            .delete_queue_tasks_through(key, priority, inclusive_max);
        self.call(Operation::DeleteQueueTasksThrough, call).await
    }
}

#[async_trait]
impl<H: Around> NexusEndpointStore for Decorated<H> {
    async fn create_nexus_endpoint(&self, record: &NexusEndpointRecord) -> Result<(), StoreError> {
        let call = self.inner.nexus_endpoints.create_nexus_endpoint(record);
        self.call(Operation::CreateNexusEndpoint, call).await
    }

    async fn update_nexus_endpoint(
        &self,
        expected_version: i64,
        record: &NexusEndpointRecord,
    ) -> Result<(), StoreError> {
        let call = self
            .inner
            .nexus_endpoints
            .update_nexus_endpoint(expected_version, record);
        self.call(Operation::UpdateNexusEndpoint, call).await
    }

    async fn delete_nexus_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let call = self.inner.nexus_endpoints.delete_nexus_endpoint(id);
        self.call(Operation::DeleteNexusEndpoint, call).await
    }

    async fn get_nexus_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<NexusEndpointRecord>, StoreError> {
        let call = self.inner.nexus_endpoints.get_nexus_endpoint(id);
        self.call(Operation::GetNexusEndpoint, call).await
    }

    async fn list_nexus_endpoints(&self) -> Result<Vec<NexusEndpointRecord>, StoreError> {
        let call = self.inner.nexus_endpoints.list_nexus_endpoints();
        self.call(Operation::ListNexusEndpoints, call).await
    }
}

#[async_trait]
impl<H: Around> NamespaceStore for Decorated<H> {
    async fn create_namespace(&self, record: &NamespaceRecord) -> Result<(), StoreError> {
        let call = self.inner.namespaces.create_namespace(record);
        self.call(Operation::CreateNamespace, call).await
    }

    async fn get_namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let call = self.inner.namespaces.get_namespace_by_name(name);
        self.call(Operation::GetNamespaceByName, call).await
    }

    async fn get_namespace_by_id(
        &self,
        id: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let call = self.inner.namespaces.get_namespace_by_id(id);
        self.call(Operation::GetNamespaceById, call).await
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
        self.call(Operation::UpdateNamespace, call).await
    }

    async fn list_namespaces(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let call = self.inner.namespaces.list_namespaces(after_name, limit);
        self.call(Operation::ListNamespaces, call).await
    }
}

#[async_trait]
impl<H: Around> MembershipStore for Decorated<H> {
    async fn heartbeat_member(&self, row: &MemberRow, ttl: Duration) -> Result<(), StoreError> {
        let call = self.inner.membership.heartbeat_member(row, ttl);
        self.call(Operation::HeartbeatMember, call).await
    }

    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
        let call = self.inner.membership.live_members();
        self.call(Operation::LiveMembers, call).await
    }
}

#[async_trait]
impl<H: Around> VisibilityStore for Decorated<H> {
    async fn list_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRecord>, StoreError> {
        let call = self
            .inner
            .visibility
            .list_visibility(namespace_id, filter, after, limit);
        self.call(Operation::ListVisibility, call).await
    }

    async fn count_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<u64, StoreError> {
        let call = self.inner.visibility.count_visibility(namespace_id, filter);
        self.call(Operation::CountVisibility, call).await
    }

    async fn count_visibility_by_status(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<StatusCounts, StoreError> {
        let call = self
            .inner
            .visibility
            .count_visibility_by_status(namespace_id, filter);
        self.call(Operation::CountVisibilityByStatus, call).await
    }

    async fn get_visibility(
        &self,
        key: &ExecutionKey,
    ) -> Result<Option<VisibilityRecord>, StoreError> {
        let call = self.inner.visibility.get_visibility(key);
        self.call(Operation::GetVisibility, call).await
    }

    async fn delete_visibility(&self, key: &ExecutionKey) -> Result<(), StoreError> {
        let call = self.inner.visibility.delete_visibility(key);
        self.call(Operation::DeleteVisibility, call).await
    }

    fn filters_keywords(&self) -> bool {
        self.inner.visibility.filters_keywords()
    }
}

#[cfg(test)]
mod tests;
