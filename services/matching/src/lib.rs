//! The matching service: task queues, long polls, sync match and the persisted backlog.
//!
//! History adds workflow and activity tasks; workers' polls (forwarded by the frontend) take
//! them. A new task goes straight to a waiting poller when there is one (sync match), and the
//! add call returns once history has recorded that poller's start. Otherwise the task is
//! written to the queue's backlog in the store, under the queue's lease, and handed to a
//! later poller. Sticky queues (one per worker process, for the workflows it has cached) live
//! in memory only: history keeps a schedule-to-start timer that moves an unclaimed sticky
//! task back to the normal queue.
//!
//! A task only leaves a queue when a poller is about to ask history to start it; if that
//! poller goes away or history fails, the task goes back to the front of the queue.
//!
//! Query tasks (QueryWorkflow) are different: built by history, held in memory only, handed to
//! the next poller ahead of every other task, and answered by RespondQueryTaskCompleted.
//!
//! A normal queue has one or more partitions (Temporal's names: the queue's own name for
//! partition 0, the root; `/_sys/<name>/<n>` for the others), each served by one node; every
//! call names its partition. Child partitions forward to the root so that a poller on any
//! partition gets work from every partition (see `forward`).
//!
//! Layout: `handle` is the public engine; `engine` owns the queues and runs adds and polls;
//! `service` validates the internal API's requests; `forward` moves polls, tasks and queries
//! from child partitions to the root; `describe` answers DescribeTaskQueue for a partition or
//! a whole queue; `queue` holds one task queue partition in memory (waiting pollers, ready
//! tasks) and its store IO (lease, batched writes, paged reads, deletes); `pollers` remembers
//! who polled, for DescribeTaskQueue; `query` dispatches query tasks and waits for their
//! answers.

mod config;
mod describe;
mod engine;
mod error;
mod forward;
mod handle;
mod key;
pub mod metrics;
mod nexus;
mod pollers;
mod priority;
mod query;
mod queue;
mod rate;
mod service;
mod task;
mod versioning;

#[cfg(test)]
mod tests;

pub use config::MatchingConfig;
pub use error::MatchingError;
pub use handle::MatchingEngine;
pub use key::{QueueKey, QueueKind, QueueType};
