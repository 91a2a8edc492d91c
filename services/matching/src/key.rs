//! Which task queue partition a request is about.

use temper_persistence::TaskQueueKey;
use temper_proto::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temper_types::{NamespaceId, parse_partition, partition_name};

/// Workflow, activity or Nexus tasks (Temporal's `TaskQueueType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueType {
    Workflow,
    Activity,
    Nexus,
}

impl QueueType {
    /// The Temporal `TaskQueueType` value.
    pub fn as_i32(self) -> i32 {
        match self {
            Self::Workflow => TaskQueueType::Workflow as i32,
            Self::Activity => TaskQueueType::Activity as i32,
            Self::Nexus => TaskQueueType::Nexus as i32,
        }
    }

    /// From a Temporal `TaskQueueType` value; `None` for types matching does not serve.
    pub fn from_i32(value: i32) -> Option<Self> {
        match TaskQueueType::try_from(value) {
            Ok(TaskQueueType::Workflow) => Some(Self::Workflow),
            Ok(TaskQueueType::Activity) => Some(Self::Activity),
            Ok(TaskQueueType::Nexus) => Some(Self::Nexus),
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

/// One task queue partition: what a matching node loads, leases and serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub namespace_id: NamespaceId,
    /// The queue's own name (for a normal queue: without the `/_sys/…/<n>` of a partition).
    pub name: String,
    pub task_type: QueueType,
    pub kind: QueueKind,
    /// 0 (the root) to the queue's partition count - 1; always 0 for sticky queues.
    pub partition: u32,
    /// The worker deployment version whose workers this partition serves (worker
    /// versioning; [`crate::versioning::version_tag`]); empty: unversioned workers. Each
    /// version has its own backlog, on the node of the unversioned partition.
    pub version: String,
}

impl QueueKey {
    /// The partition a request names: for a normal queue `/_sys/<name>/<n>` is partition `n`
    /// of `<name>`, anything else partition 0; a sticky queue is one partition.
    pub fn from_name(
        namespace_id: NamespaceId,
        name: &str,
        task_type: QueueType,
        kind: QueueKind,
    ) -> Self {
        let (base, partition) = match kind {
            QueueKind::Normal => parse_partition(name),
            QueueKind::Sticky => (name, 0),
        };
        Self {
            namespace_id,
            name: base.to_owned(),
            task_type,
            kind,
            partition,
            version: String::new(),
        }
    }

    /// The name requests use for this partition (Temporal's RPC name).
    pub fn partition_name(&self) -> String {
        match self.kind {
            QueueKind::Normal => partition_name(&self.name, self.partition),
            QueueKind::Sticky => self.name.clone(),
        }
    }

    /// Another partition of the same queue.
    pub fn with_partition(&self, partition: u32) -> Self {
        Self {
            partition,
            ..self.clone()
        }
    }

    /// A non-root partition of a normal queue: it forwards to the root.
    pub fn is_child(&self) -> bool {
        self.kind == QueueKind::Normal && self.partition > 0
    }

    /// The key a router places this partition on the matching ring with.
    pub fn routing_key(&self) -> String {
        temper_types::routing_key(
            &self.namespace_id.0,
            &self.partition_name(),
            self.task_type.as_i32(),
        )
    }

    /// Partition 0 of a queue, named exactly `name`.
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
            version: String::new(),
        }
    }

    /// The same partition, for the workers of a version (`""`: unversioned workers).
    pub fn with_version(&self, version: String) -> Self {
        Self {
            version,
            ..self.clone()
        }
    }

    /// The key of this partition's lease and backlog in the store.
    pub fn store_key(&self) -> TaskQueueKey {
        TaskQueueKey {
            namespace_id: self.namespace_id.clone(),
            name: if self.version.is_empty() {
                self.name.clone()
            } else {
                format!("{}\u{1e}{}", self.name, self.version)
            },
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
        )?;
        if !self.version.is_empty() {
            write!(f, "@{}", self.version.replace('\u{1f}', ":"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_names_carry_their_partition_sticky_names_do_not() {
        let ns = NamespaceId("ns".to_owned());
        let k = QueueKey::from_name(
            ns.clone(),
            "/_sys/orders/3",
            QueueType::Workflow,
            QueueKind::Normal,
        );
        assert_eq!((k.name.as_str(), k.partition), ("orders", 3));
        assert_eq!(k.partition_name(), "/_sys/orders/3");
        assert!(k.is_child());
        assert_eq!(k.with_partition(0).partition_name(), "orders");
        assert!(!k.with_partition(0).is_child());
        assert_eq!(k.store_key().name, "orders");
        assert_eq!(k.store_key().partition, 3);

        let s = QueueKey::from_name(
            ns.clone(),
            "/_sys/orders/3",
            QueueType::Workflow,
            QueueKind::Sticky,
        );
        assert_eq!((s.name.as_str(), s.partition), ("/_sys/orders/3", 0));
        assert!(!s.is_child());

        let odd = QueueKey::from_name(ns, "/_sys/orders/x", QueueType::Activity, QueueKind::Normal);
        assert_eq!((odd.name.as_str(), odd.partition), ("/_sys/orders/x", 0));
    }
}
