//! Identifiers shared by every temper crate, the shard routing hash, and the clock.
//!
//! Everything here is plain data: no IO, no async.

mod clock;
mod ids;
mod routing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{
    NamespaceId, RangeExhausted, RangeId, ShardId, TASK_ID_SEQ_BITS, TaskId, TaskIdAllocator,
};
pub use routing::shard_for_workflow;
