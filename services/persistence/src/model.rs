//! Rows as the services see them. Blobs are protobuf bytes owned by the services.

use temper_types::{NamespaceId, RangeId, ShardId, TaskId};

/// The shard row: its fencing token and an opaque info blob (queue ack levels, owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRecord {
    pub shard_id: ShardId,
    pub range_id: RangeId,
    /// Encoded `temper.persistence.v1.ShardInfo`.
    pub info: Vec<u8>,
}

/// A Nexus endpoint as stored: its id and name (both unique), its version (bumped by every
/// update) and the rest as an encoded `temporal.api.nexus.v1.Endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexusEndpointRecord {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub data: Vec<u8>,
}

/// Identifies one run of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionKey {
    pub namespace_id: NamespaceId,
    pub workflow_id: String,
    pub run_id: String,
}

/// Run states kept on the current-run pointer (values of Temporal's WorkflowExecutionState).
pub mod run_state {
    pub const CREATED: i32 = 1;
    pub const RUNNING: i32 = 2;
    pub const COMPLETED: i32 = 3;
}

/// The current-run pointer of a workflow id: which run is the latest and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentExecution {
    pub run_id: String,
    /// The request id that started this run (for start idempotency).
    pub create_request_id: String,
    /// One of [`run_state`].
    pub state: i32,
    /// Temporal `WorkflowExecutionStatus` value.
    pub status: i32,
    /// Start time in milliseconds since the epoch.
    pub start_time_ms: i64,
}

/// A stored execution: its mutable-state blob and the version the next write must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    /// Encoded `temper.persistence.v1.MutableState`.
    pub state: Vec<u8>,
    pub db_record_version: i64,
}

/// Condition on the current-run pointer for a write that changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentRunCondition {
    /// There must be no current run for this workflow id (a brand-new workflow id).
    MustNotExist,
    /// The current run must be this run id (replacing a closed run, or updating this run).
    RunIdIs(String),
}

/// Write the current-run pointer under a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRunWrite {
    pub condition: CurrentRunCondition,
    pub record: CurrentExecution,
}

/// The three task queues a shard keeps (the transactional outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskCategory {
    /// Immediate work: hand tasks to matching, close-time cleanup. Ordered by task id.
    Transfer,
    /// Work due at a time. Ordered by (fire time, task id).
    Timer,
    /// Visibility record updates. Ordered by task id.
    Visibility,
}

impl TaskCategory {
    pub const ALL: [TaskCategory; 3] = [Self::Transfer, Self::Timer, Self::Visibility];

    pub fn as_i32(self) -> i32 {
        match self {
            Self::Transfer => 1,
            Self::Timer => 2,
            Self::Visibility => 3,
        }
    }
}

/// Where a task sits in its queue: `(fire_time_ms, task_id)`. For transfer and visibility
/// tasks `fire_time_ms` is always 0, so the order is by task id alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    pub fire_time_ms: i64,
    pub task_id: TaskId,
}

impl TaskKey {
    pub const MIN: TaskKey = TaskKey {
        fire_time_ms: i64::MIN,
        task_id: i64::MIN,
    };
    pub const MAX: TaskKey = TaskKey {
        fire_time_ms: i64::MAX,
        task_id: i64::MAX,
    };

    pub fn immediate(task_id: TaskId) -> Self {
        Self {
            fire_time_ms: 0,
            task_id,
        }
    }
}

/// A task of a shard queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub category: TaskCategory,
    pub key: TaskKey,
    /// Encoded `temper.persistence.v1.{Transfer,Timer,Visibility}Task`.
    pub data: Vec<u8>,
}

/// One execution's part of a commit batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionWrite {
    pub key: ExecutionKey,
    /// `None`: the row must not exist (creation). `Some(v)`: its version must be `v`.
    pub expected_version: Option<i64>,
    /// The version stored by this write; must be greater than `expected_version`.
    pub new_version: i64,
    /// Encoded mutable state.
    pub state: Vec<u8>,
    /// Change the current-run pointer too, under a condition.
    pub current: Option<CurrentRunWrite>,
    /// New tasks for the shard's queues (the outbox), written atomically with the state.
    pub tasks: Vec<TaskRecord>,
    /// The run's visibility record, when what List shows of it changed. Written with the
    /// state (read-your-writes), unless the stored record has a higher version. Stores
    /// without visibility ignore it.
    pub visibility: Option<crate::VisibilityRecord>,
}

/// Identifies a history branch. Today one branch per run (`tree_id == branch_id == run id`);
/// resets fork new branches of the same tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchId {
    pub tree_id: String,
    pub branch_id: String,
}

/// One appended batch of history events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryNode {
    /// The first event id of the batch.
    pub node_id: i64,
    /// Transaction id of the write; for one `node_id` the highest wins.
    pub txn_id: i64,
    /// Encoded `temporal.api.history.v1.History` holding the batch's events.
    pub events: Vec<u8>,
}

/// A task queue partition: namespace, name, type (workflow=1 / activity=2), partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskQueueKey {
    pub namespace_id: NamespaceId,
    pub name: String,
    /// Temporal `TaskQueueType` value.
    pub task_type: i32,
    pub partition: u32,
}

/// The lease row of a task queue partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQueueLease {
    pub range_id: RangeId,
    /// Tasks with ids up to and including this are done.
    pub ack_level: TaskId,
}

/// One persisted matching task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTask {
    pub task_id: TaskId,
    /// The task's priority level (Temporal's priority key: 1 is the highest,
    /// [`QueueTask::DEFAULT_PRIORITY`] the default). A partition's backlog is read one level
    /// at a time, in task id order within a level.
    pub priority: u8,
    /// Encoded `temper.persistence.v1.MatchingTask`.
    pub data: Vec<u8>,
}

impl QueueTask {
    /// The level of tasks with no priority, and of every task stored before levels existed.
    pub const DEFAULT_PRIORITY: u8 = 3;
}

/// A stored namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    pub id: NamespaceId,
    pub name: String,
    /// Encoded `temper.persistence.v1.NamespaceDetail`.
    pub detail: Vec<u8>,
    /// Bumped by every update; updates are conditional on it.
    pub notification_version: i64,
}

/// Facts fixed when the cluster is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_name: String,
    pub num_shards: u32,
}

/// One node's announcement in the membership table, refreshed as a heartbeat: a node that
/// stops refreshing its row drops out of [`crate::MembershipStore::live_members`] by itself.
/// Gossip seeds from the live rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// The node's name (unique in the cluster).
    pub host_id: String,
    /// The role this row announces (`frontend`, `history`, `matching`, `worker`); a node
    /// with several roles writes one row per role.
    pub role: String,
    /// `host:port` of the node's gossip endpoint.
    pub rpc_address: String,
    /// When the process started, in ms since the epoch (its generation).
    pub session_start_ms: i64,
    /// When this row was last written, in ms since the epoch.
    pub last_heartbeat_ms: i64,
}
