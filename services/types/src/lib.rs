//! Identifiers shared by every temper crate, the shard routing hash, task queue partition
//! names, and the clock.
//!
//! Everything here is plain data: no IO, no async.

mod clock;
mod ids;
mod partition;
mod routing;

pub use clock::{Clock, ManualClock, SystemClock, wall_clock_millis};
pub use ids::{
    NamespaceId, RangeExhausted, RangeId, ShardId, TASK_ID_SEQ_BITS, TaskId, TaskIdAllocator,
    new_run_id,
};
pub use partition::{
    FORWARDED_FROM_HEADER, PARTITION_PREFIX, PartitionConfig, parse_partition, partition_name,
    routing_key,
};
pub use routing::{
    SCHEDULER_WORKFLOW_ID_PREFIX, STANDALONE_ACTIVITY_WORKFLOW_ID_PREFIX,
    STANDALONE_NEXUS_OPERATION_WORKFLOW_ID_PREFIX, scheduler_workflow_id, shard_for_workflow,
    standalone_activity_workflow_id, standalone_nexus_operation_workflow_id,
};
