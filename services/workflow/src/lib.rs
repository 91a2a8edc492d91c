//! Temporal's workflow semantics as plain synchronous code.
//!
//! A [`Txn`] wraps one execution's mutable state for one transaction: the functions of this
//! crate apply an input (start, a workflow task completion and its commands, an activity
//! result, a timer firing...) and collect what must be persisted atomically: the new history
//! events and the new transfer, timer and visibility tasks ([`Mutation`]). No IO, no clock:
//! the caller supplies `now` and commits the result.
//!
//! Event order follows the Temporal server, because the SDKs replay histories strictly:
//! events that arrive while a workflow task is running are buffered and written after that
//! task's completion and the events of its commands.

pub mod activity;
pub mod activity_ops;
pub mod callbacks;
pub mod child;
pub mod close;
pub mod commands;
pub mod completion;
pub mod continuation;
pub mod cron;
mod error;
mod events;
pub mod external;
pub mod nexus;
pub mod priority;
pub mod properties;
pub mod rebuild;
pub mod reset;
pub mod retry;
pub mod schedule;
pub mod signal;
pub mod signal_with_start;
pub mod speculative;
pub mod standalone;
pub mod standalone_nexus;
pub mod start;
mod state;
pub mod system_nexus;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_presence;
#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_rebuild;
#[cfg(test)]
mod tests_relations;
pub mod time;
pub mod timer;
pub mod token;
pub mod transaction;
pub mod update;
#[cfg(test)]
mod update_tests;
pub mod versioning;
pub mod workflow_task;

pub use error::{BadCommand, WorkflowError};
pub use events::is_close_event;
pub use state::{
    Limits, Mutation, NewRunState, RESERVED_PREFIX, RESERVED_TASK_QUEUE, STATE_COMPLETED,
    STATE_RUNNING, Txn,
};

pub use temper_proto::persistence::v1 as pb;
pub use temper_proto::temporal::api as tapi;
