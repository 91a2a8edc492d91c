//! The store traits. Backends implement all of them; the services hold them as trait objects
//! bundled in [`Persistence`].
//!
//! Every method is async and must not block the caller's thread: backends with blocking
//! drivers move the work off the async threads.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use temper_types::{NamespaceId, RangeId, ShardId, TaskId};

use crate::{
    BranchId, ClusterMetadata, CommitError, CurrentExecution, ExecutionKey, ExecutionRecord,
    ExecutionWrite, HistoryNode, MemberRow, NamespaceRecord, NexusEndpointRecord, QueueTask,
    ShardRecord, StatusCounts, StoreError, TaskCategory, TaskKey, TaskQueueKey, TaskQueueLease,
    TaskRecord, VisibilityCursor, VisibilityFilter, VisibilityRecord,
};

/// Facts fixed at cluster creation.
#[async_trait]
pub trait ClusterMetadataStore: Send + Sync {
    /// Store `proposed` if no metadata exists yet; return what is stored (which may differ
    /// from `proposed`: the caller compares, e.g. to refuse a changed shard count).
    async fn init_cluster_metadata(
        &self,
        proposed: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError>;
}

/// The shard rows and everything that lives in a shard's partition.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Read the shard row, creating it with `range_id` 0 and `initial_info` if it is missing.
    async fn get_or_create_shard(
        &self,
        shard_id: ShardId,
        initial_info: &[u8],
    ) -> Result<ShardRecord, StoreError>;

    /// Replace the shard row if its `range_id` is still `expected`. This is how a node
    /// acquires a shard (`record.range_id = expected + 1`) and how it saves queue positions
    /// (`record.range_id == expected`). Fails with [`StoreError::OwnershipLost`] (carrying the
    /// stored range id) otherwise, changing nothing.
    async fn update_shard(
        &self,
        expected_range_id: RangeId,
        record: &ShardRecord,
    ) -> Result<(), StoreError>;

    /// The current-run pointer of a workflow id, if any.
    async fn get_current_execution(
        &self,
        shard_id: ShardId,
        namespace_id: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecution>, StoreError>;

    /// One execution's stored mutable state.
    async fn get_execution(
        &self,
        shard_id: ShardId,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError>;

    /// Apply every write of `writes` in one conditional batch, only if the shard's range id
    /// is `range_id` and every write's conditions hold. On failure nothing is applied and the
    /// error says which condition failed first.
    async fn commit(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError>;

    /// Whether this store implements [`Self::commit_with_history`]: it keeps history nodes
    /// in the same database as executions and can write both in one transaction. A store
    /// whose history lives apart answers false (the default), and the history writer
    /// appends the nodes first, then commits.
    fn commits_history(&self) -> bool {
        false
    }

    /// [`Self::commit`] together with the history nodes the writes' new events go in, in
    /// one transaction: both are applied or neither, under the same conditions as a
    /// commit. Only called on a store whose [`Self::commits_history`] is true.
    async fn commit_with_history(
        &self,
        _shard_id: ShardId,
        _range_id: RangeId,
        _nodes: &[(BranchId, HistoryNode)],
        _writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        Err(CommitError::Store(StoreError::Internal(
            "this store keeps history apart; append the nodes, then commit".into(),
        )))
    }

    /// Delete an execution row, its visibility record, and its current-run pointer if it
    /// points at this run. Conditional on the shard's range id.
    async fn delete_execution(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        key: &ExecutionKey,
    ) -> Result<(), StoreError>;

    /// Tasks of one category with `min < key < max`, in key order, at most `limit`.
    async fn get_tasks(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_min: TaskKey,
        exclusive_max: TaskKey,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError>;

    /// Delete one task (done).
    async fn delete_task(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        key: TaskKey,
    ) -> Result<(), StoreError>;

    /// Delete every task of a category with `key < exclusive_max` (all acknowledged), if
    /// the shard's range id is still `range_id`; otherwise delete nothing and answer
    /// [`StoreError::OwnershipLost`]. Fenced like a commit: a node that lost the shard
    /// without noticing must not delete tasks the new owner wrote (timers sort by fire
    /// time, so a stale bound can lie past them).
    async fn delete_tasks_before(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        category: TaskCategory,
        exclusive_max: TaskKey,
    ) -> Result<(), StoreError>;
}

/// Append-only history events, a partition per branch.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Write one node. Writing the same `(node_id, txn_id)` twice replaces it.
    async fn append_history_node(
        &self,
        branch: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError>;

    /// Write several nodes (of one or several branches), e.g. everything a group commit
    /// appends. Each node is idempotent as in [`Self::append_history_node`]; on error some
    /// may have been written (orphans until a commit refers to them).
    async fn append_history_nodes(
        &self,
        nodes: &[(BranchId, HistoryNode)],
    ) -> Result<(), StoreError> {
        for (branch, node) in nodes {
            self.append_history_node(branch, node).await?;
        }
        Ok(())
    }

    /// Nodes with `min_node_id <= node_id < max_node_id`, ordered by node id ascending then
    /// txn id descending, at most `limit`, starting after `after` (the `(node_id, txn_id)`
    /// of the last node of the previous page). Every version of a node is returned; see
    /// [`crate::history`] for the reading rule.
    async fn read_history_nodes(
        &self,
        branch: &BranchId,
        min_node_id: i64,
        max_node_id: i64,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<HistoryNode>, StoreError>;

    /// Remove a branch and all its nodes.
    async fn delete_history_branch(&self, branch: &BranchId) -> Result<(), StoreError>;
}

/// Persisted matching backlog, under a lease per task queue partition.
#[async_trait]
pub trait TaskQueueStore: Send + Sync {
    /// Take the lease: create the row if missing, then bump its range id by CAS. Returns
    /// the new lease. Whoever held it before now fails every write with OwnershipLost.
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError>;

    /// Save the ack level, if the lease is still `range_id`.
    async fn update_task_queue(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        ack_level: TaskId,
    ) -> Result<(), StoreError>;

    /// Insert tasks, if the lease is still `range_id`; otherwise OwnershipLost and nothing
    /// is written.
    async fn create_queue_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        tasks: &[QueueTask],
    ) -> Result<(), StoreError>;

    /// Tasks of one priority level with `exclusive_min < task_id`, ascending, at most
    /// `limit`.
    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        exclusive_min: TaskId,
        limit: usize,
    ) -> Result<Vec<QueueTask>, StoreError>;

    /// Delete one task (of priority level `priority`).
    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        task_id: TaskId,
    ) -> Result<(), StoreError>;

    /// Delete every task of one priority level with `task_id <= inclusive_max`.
    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError>;
}

/// Namespaces, unique by id and by name.
#[async_trait]
pub trait NamespaceStore: Send + Sync {
    /// Insert a namespace; [`StoreError::AlreadyExists`] if the name or id is taken.
    async fn create_namespace(&self, record: &NamespaceRecord) -> Result<(), StoreError>;

    async fn get_namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError>;

    async fn get_namespace_by_id(
        &self,
        id: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError>;

    /// Replace a namespace's detail if its notification version is still `expected_version`
    /// (the record carries the new one); [`StoreError::ConditionFailed`] otherwise.
    async fn update_namespace(
        &self,
        expected_version: i64,
        record: &NamespaceRecord,
    ) -> Result<(), StoreError>;

    /// Namespaces ordered by name, after `after_name`, at most `limit`.
    async fn list_namespaces(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError>;
}

/// Nexus endpoints: cluster-wide, unique by id and by name, each with a version that every
/// update bumps (the compare-and-set of UpdateNexusEndpoint). Few rows: listed whole.
#[async_trait]
pub trait NexusEndpointStore: Send + Sync {
    /// Insert an endpoint (`record.version` is 1); [`StoreError::AlreadyExists`] if its id
    /// or its name is taken.
    async fn create_nexus_endpoint(&self, record: &NexusEndpointRecord) -> Result<(), StoreError> {
        let _ = record;
        Err(StoreError::Unsupported(
            "this store does not keep Nexus endpoints".into(),
        ))
    }

    /// Replace endpoint `record.id` if its stored version is still `expected_version`
    /// (`record.version` is the new one): [`StoreError::NotFound`] if there is no such
    /// endpoint, [`StoreError::ConditionFailed`] if its version differs,
    /// [`StoreError::AlreadyExists`] if it is renamed to a name another endpoint has.
    async fn update_nexus_endpoint(
        &self,
        expected_version: i64,
        record: &NexusEndpointRecord,
    ) -> Result<(), StoreError> {
        let _ = (expected_version, record);
        Err(StoreError::Unsupported(
            "this store does not keep Nexus endpoints".into(),
        ))
    }

    /// Delete endpoint `id` (its name is free again); [`StoreError::NotFound`] if none.
    async fn delete_nexus_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let _ = id;
        Err(StoreError::Unsupported(
            "this store does not keep Nexus endpoints".into(),
        ))
    }

    async fn get_nexus_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<NexusEndpointRecord>, StoreError> {
        let _ = id;
        Err(StoreError::Unsupported(
            "this store does not keep Nexus endpoints".into(),
        ))
    }

    /// Every endpoint, ordered by name.
    async fn list_nexus_endpoints(&self) -> Result<Vec<NexusEndpointRecord>, StoreError> {
        Err(StoreError::Unsupported(
            "this store does not keep Nexus endpoints".into(),
        ))
    }
}

/// The membership table: each node heartbeats a row per role; rows that are not refreshed
/// expire, so the live rows are the nodes gossip can seed from.
#[async_trait]
pub trait MembershipStore: Send + Sync {
    /// Insert or refresh this member's row (keyed by `(role, host_id)`); rows not refreshed
    /// within `ttl` are no longer listed. Backends with a TTL in whole seconds round `ttl`
    /// up to at least one second.
    async fn heartbeat_member(&self, row: &MemberRow, ttl: Duration) -> Result<(), StoreError>;

    /// The rows refreshed within their ttl, ordered by role then host id.
    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError>;
}

/// Visibility records, written by [`ExecutionStore::commit`] (see
/// [`ExecutionWrite::visibility`]) and read here. A store without visibility answers
/// [`StoreError::Unsupported`], never an empty list.
#[async_trait]
pub trait VisibilityStore: Send + Sync {
    /// Records of a namespace passing `filter`, in the default order (see
    /// [`crate::VisibilityCursor`]), strictly after `after`, at most `limit`.
    async fn list_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRecord>, StoreError>;

    /// How many records of a namespace pass `filter`.
    async fn count_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<u64, StoreError>;

    /// How many records of a namespace pass `filter`, per status (statuses with none left
    /// out), ordered by status.
    async fn count_visibility_by_status(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<StatusCounts, StoreError>;

    /// One run's record.
    async fn get_visibility(
        &self,
        key: &ExecutionKey,
    ) -> Result<Option<VisibilityRecord>, StoreError>;

    /// Remove one run's record; removing a missing one is not an error.
    async fn delete_visibility(&self, key: &ExecutionKey) -> Result<(), StoreError>;

    /// Whether this store applies [`crate::VisibilityFilter::keywords`] (from an index);
    /// callers give keyword conditions only to stores that do.
    fn filters_keywords(&self) -> bool {
        false
    }
}

/// Every store a node needs, as trait objects.
#[derive(Clone)]
pub struct Persistence {
    pub cluster: Arc<dyn ClusterMetadataStore>,
    pub executions: Arc<dyn ExecutionStore>,
    pub history: Arc<dyn HistoryStore>,
    pub task_queues: Arc<dyn TaskQueueStore>,
    pub namespaces: Arc<dyn NamespaceStore>,
    pub membership: Arc<dyn MembershipStore>,
    pub visibility: Arc<dyn VisibilityStore>,
    pub nexus_endpoints: Arc<dyn NexusEndpointStore>,
}

impl Persistence {
    /// Bundle one backend that implements every trait.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: ClusterMetadataStore
            + ExecutionStore
            + HistoryStore
            + TaskQueueStore
            + NamespaceStore
            + MembershipStore
            + VisibilityStore
            + NexusEndpointStore
            + 'static,
    {
        Self {
            cluster: backend.clone(),
            executions: backend.clone(),
            history: backend.clone(),
            task_queues: backend.clone(),
            namespaces: backend.clone(),
            membership: backend.clone(),
            visibility: backend.clone(),
            nexus_endpoints: backend,
        }
    }
}
