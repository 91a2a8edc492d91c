//! Which shard a workflow lives on. The hash must never change once a cluster holds data.

use crate::{NamespaceId, ShardId};

/// `hash(namespace_id, workflow_id) % num_shards + 1`, with a stable 64-bit xxh3 hash.
pub fn shard_for_workflow(
    namespace_id: &NamespaceId,
    workflow_id: &str,
    num_shards: u32,
) -> ShardId {
    assert!(
        num_shards > 0,
        "num_shards is validated to be positive at start-up"
    );
    let mut key = Vec::with_capacity(namespace_id.0.len() + 1 + workflow_id.len());
    key.extend_from_slice(namespace_id.0.as_bytes());
    key.push(b'_');
    key.extend_from_slice(workflow_id.as_bytes());
    let h = xxhash_rust::xxh3::xxh3_64(&key);
    ShardId((h % u64::from(num_shards)) as u32 + 1)
}

/// Workflow ids of schedule runs start with this (Temporal's prefix for its scheduler
/// workflows): a schedule lives on the shard of its run.
pub const SCHEDULER_WORKFLOW_ID_PREFIX: &str = "temporal-sys-scheduler:";

/// The workflow id of the run that holds schedule `schedule_id`.
pub fn scheduler_workflow_id(schedule_id: &str) -> String {
    format!("{SCHEDULER_WORKFLOW_ID_PREFIX}{schedule_id}")
}

/// Workflow ids of the runs that hold standalone activities (StartActivityExecution) start
/// with this: an activity's run lives on the shard of `<prefix><activity id>`, apart from any
/// workflow of the same id.
pub const STANDALONE_ACTIVITY_WORKFLOW_ID_PREFIX: &str = "temporal-sys-activity:";

/// The workflow id of the run that holds standalone activity `activity_id`.
pub fn standalone_activity_workflow_id(activity_id: &str) -> String {
    format!("{STANDALONE_ACTIVITY_WORKFLOW_ID_PREFIX}{activity_id}")
}

/// Workflow ids of the runs that hold standalone Nexus operations
/// (StartNexusOperationExecution) start with this.
pub const STANDALONE_NEXUS_OPERATION_WORKFLOW_ID_PREFIX: &str = "temporal-sys-nexus-operation:";

/// The workflow id of the run that holds standalone Nexus operation `operation_id`.
pub fn standalone_nexus_operation_workflow_id(operation_id: &str) -> String {
    format!("{STANDALONE_NEXUS_OPERATION_WORKFLOW_ID_PREFIX}{operation_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        let ns = NamespaceId("0b4b8b8e-0000-0000-0000-000000000000".into());
        let s = shard_for_workflow(&ns, "wf-1", 4);
        assert_eq!(s, shard_for_workflow(&ns, "wf-1", 4));
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let s = shard_for_workflow(&ns, &format!("wf-{i}"), 4);
            assert!((1..=4).contains(&s.0));
            seen.insert(s);
        }
        assert_eq!(seen.len(), 4, "a thousand ids spread over every shard");
    }
}
