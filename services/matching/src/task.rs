//! A task as matching holds it, its stored form, and the guard that gives it back to its
//! queue unless a poller finishes it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use temper_proto::internal::v1::VersionDirective;
use temper_proto::persistence::v1::MatchingTask;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_types::TaskId;
use tokio::sync::oneshot;

use crate::priority::TaskPriority;
use crate::queue::TaskQueue;

/// What history needs to start a task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskInfo {
    pub namespace_id: String,
    pub execution: WorkflowExecution,
    pub scheduled_event_id: i64,
    pub attempt: i32,
    pub create_time: SystemTime,
    /// When the schedule-to-start timeout runs out; `None`: never.
    pub expiry_time: Option<SystemTime>,
    /// Where the run's tasks go (worker versioning). Not stored with a backlog task: the
    /// version queue it waits in decided that already.
    pub directive: Option<Box<VersionDirective>>,
    /// Where the task stands in dispatch order; stored with a backlog task.
    pub priority: TaskPriority,
}

impl TaskInfo {
    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        self.expiry_time.is_some_and(|expiry| expiry <= now)
    }

    /// The backlog blob: an encoded `temper.persistence.v1.MatchingTask`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        MatchingTask {
            namespace_id: self.namespace_id.clone(),
            workflow_id: self.execution.workflow_id.clone(),
            run_id: self.execution.run_id.clone(),
            scheduled_event_id: self.scheduled_event_id,
            create_time: Some(self.create_time.into()),
            expiry_time: self.expiry_time.map(Into::into),
            attempt: self.attempt,
            priority: self.priority.to_proto(),
        }
        .encode_to_vec()
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, String> {
        let task = MatchingTask::decode(data).map_err(|e| format!("bad MatchingTask: {e}"))?;
        let create_time = match task.create_time {
            Some(t) => SystemTime::try_from(t).map_err(|e| format!("bad create_time: {e}"))?,
            None => UNIX_EPOCH,
        };
        let expiry_time = task
            .expiry_time
            .map(SystemTime::try_from)
            .transpose()
            .map_err(|e| format!("bad expiry_time: {e}"))?;
        Ok(Self {
            namespace_id: task.namespace_id,
            execution: WorkflowExecution {
                workflow_id: task.workflow_id,
                run_id: task.run_id,
            },
            scheduled_event_id: task.scheduled_event_id,
            attempt: task.attempt,
            create_time,
            expiry_time,
            directive: None,
            priority: TaskPriority::from_proto(task.priority.as_ref()),
        })
    }
}

/// How a started (or failed) task is reported back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// History recorded the start; the poller got the task.
    Started,
    /// History says the task is done or gone; drop it.
    Obsolete,
    /// Not started (history failed, or the poller went away): the task must be retried.
    Failed,
}

/// Where a task came from, which decides what finishing it means.
#[derive(Debug)]
pub(crate) enum Origin {
    /// Handed straight from an add call, which waits here for the outcome.
    Sync(oneshot::Sender<Outcome>),
    /// Read from or written to the persisted backlog.
    Backlog(TaskId),
    /// Held in memory by a sticky queue.
    Memory,
    /// A query task from a QueryWorkflow call, or a Nexus task from a DispatchNexusTask call:
    /// memory only, handed out before other tasks.
    Query(Box<QueryOffer>),
}

/// A query or Nexus task: the poll response goes to one poller as it is (no history call).
#[derive(Debug)]
pub(crate) struct QueryOffer {
    /// What the worker gets: history's query task (or the Nexus request) with matching's
    /// task token.
    pub response: crate::engine::PollResponse,
    /// Told when a poller took the task. Dropped with an undelivered task (the queue closed),
    /// which the waiting QueryWorkflow call sees; closed when that call has given up.
    pub delivered: oneshot::Sender<()>,
}

#[derive(Debug)]
pub(crate) struct Task {
    pub info: TaskInfo,
    pub origin: Origin,
}

impl Task {
    pub(crate) fn is_query(&self) -> bool {
        matches!(self.origin, Origin::Query(_))
    }

    /// A query task whose QueryWorkflow call has given up: nobody wants its answer.
    pub(crate) fn is_abandoned_query(&self) -> bool {
        matches!(&self.origin, Origin::Query(q) if q.delivered.is_closed())
    }
}

/// A task taken off its queue for one poller. Dropping it without [`Dispatched::finish`]
/// (the poller's future was cancelled, or the task never reached it) counts as
/// [`Outcome::Failed`]: the task goes back to the front of its queue, or back to its add
/// call.
#[derive(Debug)]
pub(crate) struct Dispatched {
    task: Option<Task>,
    queue: Arc<TaskQueue>,
}

impl Dispatched {
    pub(crate) fn new(task: Task, queue: Arc<TaskQueue>) -> Self {
        Self {
            task: Some(task),
            queue,
        }
    }

    pub(crate) fn info(&self) -> Option<&TaskInfo> {
        self.task.as_ref().map(|t| &t.info)
    }

    /// Report what became of the task.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        if let Some(task) = self.task.take() {
            self.queue.complete(task, outcome);
        }
    }

    /// For a query or Nexus task: its poll response, and the task counts as delivered. Any
    /// other task comes back as `Err`.
    // The task itself comes back, not an error: the caller dispatches it another way.
    #[allow(clippy::result_large_err)]
    pub(crate) fn into_query_response(mut self) -> Result<crate::engine::PollResponse, Self> {
        match self.task.take() {
            Some(Task {
                origin: Origin::Query(offer),
                ..
            }) => {
                let QueryOffer {
                    response,
                    delivered,
                } = *offer;
                // The caller may have given up just now; the worker's answer then finds no
                // waiter, as in Temporal.
                let _ = delivered.send(());
                Ok(response)
            }
            other => {
                self.task = other;
                Err(self)
            }
        }
    }

    /// Take the task back out, disarming the guard (a send to a poller that left failed).
    pub(crate) fn into_task(mut self) -> Option<Task> {
        self.task.take()
    }
}

impl Drop for Dispatched {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.queue.complete(task, Outcome::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn blob_round_trips() {
        let info = TaskInfo {
            namespace_id: "ns".into(),
            execution: WorkflowExecution {
                workflow_id: "wf".into(),
                run_id: "run".into(),
            },
            scheduled_event_id: 7,
            attempt: 2,
            create_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            expiry_time: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            directive: None,
            priority: TaskPriority::default(),
        };
        assert_eq!(TaskInfo::decode(&info.encode()), Ok(info.clone()));
        let keyed = TaskInfo {
            priority: TaskPriority {
                level: 1,
                fairness_key: "tenant-a".into(),
                fairness_weight: 3.0,
            },
            ..info
        };
        assert_eq!(TaskInfo::decode(&keyed.encode()), Ok(keyed));
        assert!(TaskInfo::decode(b"\xff\xff\xff").is_err());
    }
}
