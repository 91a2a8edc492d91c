//! Which task queue partition a request is about.

use temper_persistence::TaskQueueKey;
use temper_proto::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temper_types::NamespaceId;

/// Workflow or activity tasks (Temporal's `TaskQueueType`; nexus is not served yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueType {
    Workflow,
    Activity,
}

impl QueueType {
    /// The Temporal `TaskQueueType` value.
    pub fn as_i32(self) -> i32 {
        match self {
            Self::Workflow => TaskQueueType::Workflow as i32,
            Self::Activity => TaskQueueType::Activity as i32,
        }
    }

    /// From a Temporal `TaskQueueType` value; `None` for types matching does not serve.
    pub fn from_i32(value: i32) -> Option<Self> {
        match TaskQueueType::try_from(value) {
            Ok(TaskQueueType::Workflow) => Some(Self::Workflow),
            Ok(TaskQueueType::Activity) => Some(Self::Activity),
            _ => None,
        }
    }
}

/// Normal queues are persisted and shared by all workers of a task queue; sticky queues
/// belong to one worker process and live in memory only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueKind {
    Normal,
    Sticky,
}

impl QueueKind {
    /// From a Temporal `TaskQueueKind` value; anything but sticky is normal.
    pub fn from_i32(value: i32) -> Self {
        if value == TaskQueueKind::Sticky as i32 {
            Self::Sticky
        } else {
            Self::Normal
        }
    }
}

/// One task queue partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub namespace_id: NamespaceId,
    pub name: String,
    pub task_type: QueueType,
    pub kind: QueueKind,
    /// Always 0 for now: one partition per queue.
    pub partition: u32,
}

impl QueueKey {
    /// Partition 0 of a queue.
    pub fn new(
        namespace_id: NamespaceId,
        name: &str,
        task_type: QueueType,
        kind: QueueKind,
    ) -> Self {
        Self {
            namespace_id,
            name: name.to_owned(),
            task_type,
            kind,
            partition: 0,
        }
    }

    /// The key of this partition's lease and backlog in the store.
    pub fn store_key(&self) -> TaskQueueKey {
        TaskQueueKey {
            namespace_id: self.namespace_id.clone(),
            name: self.name.clone(),
            task_type: self.task_type.as_i32(),
            partition: self.partition,
        }
    }
}

impl std::fmt::Display for QueueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{:?}/{:?}/{}",
            self.namespace_id, self.name, self.task_type, self.kind, self.partition
        )
    }
}
