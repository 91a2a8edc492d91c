//! Queries: QueryWorkflow hands a query task (built by history) to the next poller of a
//! workflow queue, ahead of every other task, and waits for the worker's answer, which
//! RespondQueryTaskCompleted delivers by query task id. Query tasks live in memory only, as
//! long as the call that waits for them.
//!
//! Failures follow Temporal's matching: a sticky queue without a live worker answers
//! `sticky worker unavailable` at once (the caller falls back to the normal queue); a query
//! no poller took a second before its deadline fails with FailedPrecondition when nobody
//! polled the (normal) queue recently (the worker is probably down); otherwise it times out.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prost::Message;
use temper_client::status;
use temper_proto::internal::v1::{
    QueryWorkflowRequest, QueryWorkflowResponse, RespondQueryTaskCompletedRequest,
};
use temper_proto::persistence::v1::TaskToken;
use temper_proto::temporal::api::workflowservice::v1::RespondQueryTaskCompletedRequest as Answer;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::Status;

use crate::engine::Core;
use crate::error::MatchingError;
use crate::key::{QueueKey, QueueKind, QueueType};
use crate::queue::TaskQueue;
use crate::task::{Origin, QueryOffer, Task, TaskInfo};

/// A query without a timeout waits this long (Temporal's default for internal calls).
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long before its deadline an untaken query checks for a recent poller.
const NO_POLLER_CHECK_BEFORE_DEADLINE: Duration = Duration::from_secs(1);

/// Temporal's message for a query that reached no worker in time.
pub(crate) const QUERY_TIMED_OUT: &str = "query timed out before a worker could process it";
/// Temporal's message for a query on a queue nobody polls.
pub(crate) const NO_RECENT_POLLER: &str =
    "no poller seen for task queue recently, worker may be down";

/// Calls waiting for a worker's answer (QueryWorkflow, DispatchNexusTask), by task id.
pub(crate) struct PendingAnswers<T> {
    waiting: Mutex<HashMap<String, oneshot::Sender<T>>>,
}

impl<T> Default for PendingAnswers<T> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

/// QueryWorkflow calls waiting for an answer, by query task id.
pub(crate) type PendingQueries = PendingAnswers<Answer>;

impl<T> PendingAnswers<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<T>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, id: &str, tx: oneshot::Sender<T>) -> Registration<'_, T> {
        self.lock().insert(id.to_owned(), tx);
        Registration {
            pending: self,
            id: id.to_owned(),
        }
    }

    pub(crate) fn take(&self, id: &str) -> Option<oneshot::Sender<T>> {
        self.lock().remove(id)
    }

    /// How many calls are waiting (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Forgets a waiting call however it ends (answered, timed out, or its future dropped).
pub(crate) struct Registration<'a, T> {
    pending: &'a PendingAnswers<T>,
    id: String,
}

impl<T> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        self.pending.take(&self.id);
    }
}

fn invalid(message: &str) -> Status {
    Status::invalid_argument(message.to_owned())
}

/// The task could not reach a poller: the queue was closed (a sticky worker shut down) or
/// lost its lease.
pub(crate) fn undeliverable(key: &QueueKey) -> Status {
    match key.kind {
        QueueKind::Sticky => status::sticky_worker_unavailable(&key.name),
        QueueKind::Normal => MatchingError::OwnershipLost(key.name.clone()).into(),
    }
}

impl Core {
    /// Dispatch a query task and wait for the worker's answer.
    /// A query named to a child partition (not itself forwarded) goes to the root, whose
    /// waiting polls include those the children forwarded.
    pub(crate) async fn dispatch_query(
        &self,
        req: QueryWorkflowRequest,
        forwarded: bool,
    ) -> Result<QueryWorkflowResponse, Status> {
        if req.namespace_id.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        let tq = match req.task_queue {
            Some(tq) if !tq.name.is_empty() => tq,
            _ => return Err(invalid("TaskQueue is not set on request.")),
        };
        let mut response = req
            .task
            .ok_or_else(|| invalid("Query task is not set on request."))?;
        let execution = response
            .workflow_execution
            .clone()
            .filter(|e| !e.workflow_id.is_empty() && !e.run_id.is_empty())
            .ok_or_else(|| invalid("Execution is not set on request."))?;
        let timeout = if req.timeout_ms > 0 {
            Duration::from_millis(req.timeout_ms.unsigned_abs())
        } else {
            DEFAULT_QUERY_TIMEOUT
        };
        let deadline = Instant::now() + timeout;
        let ns = temper_types::NamespaceId(req.namespace_id.clone());
        let kind = QueueKind::from_i32(tq.kind);
        let key = QueueKey::from_name(ns, &tq.name, QueueType::Workflow, kind);
        let key = self
            .route_task(
                key,
                req.directive.as_ref(),
                &execution.workflow_id,
                forwarded,
            )
            .await?;
        if key.is_child() && !forwarded {
            let req = QueryWorkflowRequest {
                directive: Some(temper_proto::internal::v1::VersionDirective {
                    pinned: crate::versioning::tag_version(&key.version),
                    ..req.directive.clone().unwrap_or_default()
                }),
                task_queue: Some(tq),
                task: Some(response),
                ..req
            };
            return self.forward_query(&key, req).await;
        }
        let queue = match kind {
            // A sticky queue nobody polls is not created for a query.
            QueueKind::Sticky => match self.loaded(&key) {
                Some(q) if q.has_live_poller(Instant::now()) => q,
                _ => return Err(status::sticky_worker_unavailable(&key.name)),
            },
            QueueKind::Normal => self.queue(&key).await?,
        };

        let id = uuid::Uuid::new_v4().to_string();
        let (answer_tx, answer_rx) = oneshot::channel();
        let _registration = self.queries.register(&id, answer_tx);
        response.task_token = TaskToken {
            namespace_id: req.namespace_id.clone(),
            workflow_id: execution.workflow_id.clone(),
            run_id: execution.run_id.clone(),
            workflow_type: response
                .workflow_type
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            query_task_id: id.clone(),
            task_queue: tq.name.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let task = Task {
            info: TaskInfo {
                namespace_id: req.namespace_id,
                execution,
                scheduled_event_id: 0,
                attempt: 1,
                create_time: self.clock().now(),
                expiry_time: None,
                directive: req.directive.clone().map(Box::new),
                priority: crate::priority::TaskPriority::default(),
            },
            origin: Origin::Query(Box::new(QueryOffer {
                response: crate::engine::PollResponse::Workflow(response),
                delivered: delivered_tx,
            })),
        };
        if !queue.add_query(task) {
            return Err(undeliverable(&key));
        }
        tracing::debug!(queue = %key, query_task_id = %id, "query task dispatched");
        let answer = self
            .await_answer(&queue, answer_rx, delivered_rx, deadline)
            .await?;
        Ok(QueryWorkflowResponse {
            completed: Some(answer),
        })
    }

    /// Wait for the answer to a task handed to `queue` (a query or a Nexus task), failing as
    /// Temporal's matching does when no worker takes it in time.
    pub(crate) async fn await_answer<T>(
        &self,
        queue: &TaskQueue,
        mut answer_rx: oneshot::Receiver<T>,
        mut delivered_rx: oneshot::Receiver<()>,
        deadline: Instant,
    ) -> Result<T, Status> {
        let check_at = deadline.checked_sub(NO_POLLER_CHECK_BEFORE_DEADLINE);
        // On a sticky queue the caller falls back to the normal queue when the query times
        // out; failing early there would end the query instead.
        let mut checked =
            queue.key().kind == QueueKind::Sticky || check_at.is_none_or(|t| t <= Instant::now());
        let check_at = check_at.unwrap_or(deadline);
        let mut delivered = false;
        let shutdown = self.shutdown_token();
        loop {
            tokio::select! {
                answer = &mut answer_rx => {
                    return answer.map_err(|_| Status::internal("the worker's answer was lost"));
                }
                d = &mut delivered_rx, if !delivered => match d {
                    Ok(()) => delivered = true,
                    Err(_) => return Err(undeliverable(queue.key())),
                },
                () = tokio::time::sleep_until(check_at), if !delivered && !checked => {
                    checked = true;
                    let window = self.config().query_poller_unavailable_window;
                    if !queue.polled_within(Instant::now(), window) {
                        return Err(Status::failed_precondition(NO_RECENT_POLLER));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Status::deadline_exceeded(QUERY_TIMED_OUT));
                }
                () = shutdown.cancelled() => return Err(MatchingError::ShuttingDown.into()),
            }
        }
    }

    /// Deliver a worker's answer to the QueryWorkflow call waiting for it.
    pub(crate) fn deliver_query_answer(
        &self,
        req: RespondQueryTaskCompletedRequest,
    ) -> Result<(), Status> {
        if req.namespace_id.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        let answer = req.request.ok_or_else(|| invalid("Request is nil."))?;
        if req.query_task_id.is_empty() {
            return Err(invalid("Invalid TaskToken."));
        }
        let gone = || temper_client::status::not_found("query task not found, or already expired");
        let tx = self.queries.take(&req.query_task_id).ok_or_else(gone)?;
        tx.send(answer).map_err(|_| gone())
    }
}
