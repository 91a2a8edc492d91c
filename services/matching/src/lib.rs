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
//! Layout: `engine` owns the queues and implements the service; `queue` holds one task
//! queue partition in memory (waiting pollers, ready tasks) and its store IO (lease, batched
//! writes, paged reads, deletes); `pollers` remembers who polled, for DescribeTaskQueue;
//! `query` dispatches query tasks and waits for their answers.

mod config;
mod engine;
mod error;
mod key;
mod pollers;
mod query;
mod queue;
mod rate;
mod service;
mod task;

#[cfg(test)]
mod tests;

pub use config::MatchingConfig;
pub use engine::MatchingEngine;
pub use error::MatchingError;
pub use key::{QueueKey, QueueKind, QueueType};
