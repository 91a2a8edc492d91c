//! Test doubles for the store traits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use temper_types::{NamespaceId, RangeId, ShardId, TaskId};

use crate::{
    BranchId, ClusterMetadata, ClusterMetadataStore, CommitError, CurrentExecution, ExecutionKey,
    ExecutionRecord, ExecutionStore, ExecutionWrite, HistoryNode, HistoryStore, MemberRow,
    MembershipStore, NamespaceRecord, NamespaceStore, Persistence, QueueTask, ShardRecord,
    StoreError, TaskCategory, TaskKey, TaskQueueKey, TaskQueueLease, TaskQueueStore, TaskRecord,
};

/// Every store `Unused`, except the execution store given.
pub(crate) fn with_executions(executions: Arc<dyn ExecutionStore>) -> Persistence {
    Persistence {
        cluster: Arc::new(Unused),
        executions,
        history: Arc::new(Unused),
        task_queues: Arc::new(Unused),
        namespaces: Arc::new(Unused),
        membership: Arc::new(Unused),
        visibility: Arc::new(Unused),
        nexus_endpoints: Arc::new(Unused),
    }
}

/// A store whose every call fails with `StoreError::Internal("unused")` (Nexus endpoint
/// calls: the trait's `Unsupported`).
pub(crate) struct Unused;

impl crate::NexusEndpointStore for Unused {}

#[async_trait]
impl ClusterMetadataStore for Unused {
    async fn init_cluster_metadata(
        &self,
        _: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}

#[async_trait]
impl HistoryStore for Unused {
    async fn append_history_node(&self, _: &BranchId, _: &HistoryNode) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn read_history_nodes(
        &self,
        _: &BranchId,
        _: i64,
        _: i64,
        _: Option<(i64, i64)>,
        _: usize,
    ) -> Result<Vec<HistoryNode>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn delete_history_branch(&self, _: &BranchId) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}

#[async_trait]
impl TaskQueueStore for Unused {
    async fn lease_task_queue(&self, _: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn update_task_queue(
        &self,
        _: &TaskQueueKey,
        _: RangeId,
        _: TaskId,
    ) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn create_queue_tasks(
        &self,
        _: &TaskQueueKey,
        _: RangeId,
        _: &[QueueTask],
    ) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_queue_tasks(
        &self,
        _: &TaskQueueKey,
        _: u8,
        _: TaskId,
        _: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn delete_queue_task(
        &self,
        _: &TaskQueueKey,
        _: u8,
        _: TaskId,
    ) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn delete_queue_tasks_through(
        &self,
        _: &TaskQueueKey,
        _: u8,
        _: TaskId,
    ) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}

#[async_trait]
impl crate::VisibilityStore for Unused {
    async fn list_visibility(
        &self,
        _: &NamespaceId,
        _: &crate::VisibilityFilter,
        _: Option<&crate::VisibilityCursor>,
        _: usize,
    ) -> Result<Vec<crate::VisibilityRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn count_visibility(
        &self,
        _: &NamespaceId,
        _: &crate::VisibilityFilter,
    ) -> Result<u64, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn count_visibility_by_status(
        &self,
        _: &NamespaceId,
        _: &crate::VisibilityFilter,
    ) -> Result<crate::StatusCounts, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_visibility(
        &self,
        _: &ExecutionKey,
    ) -> Result<Option<crate::VisibilityRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn delete_visibility(&self, _: &ExecutionKey) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}

#[async_trait]
impl MembershipStore for Unused {
    async fn heartbeat_member(&self, _: &MemberRow, _: Duration) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}

#[async_trait]
impl NamespaceStore for Unused {
    async fn create_namespace(&self, _: &NamespaceRecord) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_namespace_by_name(&self, _: &str) -> Result<Option<NamespaceRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_namespace_by_id(
        &self,
        _: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn update_namespace(&self, _: i64, _: &NamespaceRecord) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn list_namespaces(
        &self,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}

#[async_trait]
impl ExecutionStore for Unused {
    async fn get_or_create_shard(&self, _: ShardId, _: &[u8]) -> Result<ShardRecord, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn update_shard(&self, _: RangeId, _: &ShardRecord) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_current_execution(
        &self,
        _: ShardId,
        _: &NamespaceId,
        _: &str,
    ) -> Result<Option<CurrentExecution>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_execution(
        &self,
        _: ShardId,
        _: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn commit(
        &self,
        _: ShardId,
        _: RangeId,
        _: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        Err(CommitError::Store(StoreError::Internal("unused".into())))
    }
    async fn delete_execution(
        &self,
        _: ShardId,
        _: RangeId,
        _: &ExecutionKey,
    ) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn get_tasks(
        &self,
        _: ShardId,
        _: TaskCategory,
        _: TaskKey,
        _: TaskKey,
        _: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn delete_task(&self, _: ShardId, _: TaskCategory, _: TaskKey) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
    async fn delete_tasks_before(
        &self,
        _: ShardId,
        _: RangeId,
        _: TaskCategory,
        _: TaskKey,
    ) -> Result<(), StoreError> {
        Err(StoreError::Internal("unused".into()))
    }
}
