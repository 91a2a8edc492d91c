//! Nexus tasks: DispatchNexusTask (from history, for a Nexus operation's start or cancel
//! request) hands the request to the next poller of the endpoint's Nexus queue and waits for
//! the handler's answer, which RespondNexusTaskCompleted / RespondNexusTaskFailed deliver
//! by Nexus task id. As with query tasks (`query.rs`, whose offer and wait this shares),
//! nothing is stored: a task lives as long as the call that waits for it, and history
//! retries a request that got no answer.

use std::time::Duration;

use prost::Message;
use temper_proto::internal::v1::{
    DispatchNexusTaskRequest, DispatchNexusTaskResponse, RespondNexusTaskCompletedRequest,
    RespondNexusTaskFailedRequest, dispatch_nexus_task_response::Outcome,
};
use temper_proto::persistence::v1::TaskToken;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::workflowservice::v1::PollNexusTaskQueueResponse;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::Status;

use crate::engine::{Core, PollResponse};
use crate::key::{QueueKey, QueueKind, QueueType};
use crate::query::{PendingAnswers, undeliverable};
use crate::task::{Origin, QueryOffer, Task, TaskInfo};

/// A dispatch without a timeout waits this long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// DispatchNexusTask calls waiting for the handler's answer, by Nexus task id.
pub(crate) type PendingNexusTasks = PendingAnswers<Outcome>;

fn invalid(message: &str) -> Status {
    Status::invalid_argument(message.to_owned())
}

fn gone() -> Status {
    temper_client::status::not_found("nexus task not found, or already expired")
}

impl Core {
    /// Hand a Nexus request to a poller of its queue and wait for the handler's answer.
    pub(crate) async fn dispatch_nexus(
        &self,
        req: DispatchNexusTaskRequest,
    ) -> Result<DispatchNexusTaskResponse, Status> {
        if req.namespace_id.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        let tq = match req.task_queue {
            Some(tq) if !tq.name.is_empty() => tq,
            _ => return Err(invalid("TaskQueue is not set on request.")),
        };
        let request = req
            .request
            .ok_or_else(|| invalid("Nexus request is not set on request."))?;
        let timeout = if req.timeout_ms > 0 {
            Duration::from_millis(req.timeout_ms.unsigned_abs())
        } else {
            DEFAULT_TIMEOUT
        };
        let deadline = Instant::now() + timeout;
        let ns = temper_types::NamespaceId(req.namespace_id.clone());
        // The root partition: child partitions forward their polls to it.
        let key = QueueKey::from_name(ns, &tq.name, QueueType::Nexus, QueueKind::Normal)
            .with_partition(0);
        let queue = self.queue(&key).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let (answer_tx, answer_rx) = oneshot::channel();
        let _registration = self.nexus.register(&id, answer_tx);
        let response = PollNexusTaskQueueResponse {
            task_token: TaskToken {
                namespace_id: req.namespace_id.clone(),
                nexus_task_id: id.clone(),
                task_queue: key.name.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            request: Some(request),
            ..Default::default()
        };
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let task = Task {
            info: TaskInfo {
                namespace_id: req.namespace_id,
                execution: WorkflowExecution::default(),
                scheduled_event_id: 0,
                attempt: 1,
                create_time: self.clock().now(),
                expiry_time: None,
                directive: None,
                priority: crate::priority::TaskPriority::default(),
            },
            origin: Origin::Query(Box::new(QueryOffer {
                response: PollResponse::Nexus(response),
                delivered: delivered_tx,
            })),
        };
        if !queue.add_query(task) {
            return Err(undeliverable(&key));
        }
        tracing::debug!(queue = %key, nexus_task_id = %id, "nexus task dispatched");
        let outcome = self
            .await_answer(&queue, answer_rx, delivered_rx, deadline)
            .await?;
        Ok(DispatchNexusTaskResponse {
            outcome: Some(outcome),
        })
    }

    /// Deliver a handler's response to the DispatchNexusTask call waiting for it.
    pub(crate) fn deliver_nexus_completed(
        &self,
        req: RespondNexusTaskCompletedRequest,
    ) -> Result<(), Status> {
        let response = req
            .request
            .and_then(|r| r.response)
            .ok_or_else(|| invalid("Response is not set on request."))?;
        self.deliver_nexus(&req.task_id, Outcome::Response(response))
    }

    /// Deliver a handler's failure to the DispatchNexusTask call waiting for it.
    pub(crate) fn deliver_nexus_failed(
        &self,
        req: RespondNexusTaskFailedRequest,
    ) -> Result<(), Status> {
        let r = req
            .request
            .ok_or_else(|| invalid("Request is not set on request."))?;
        #[allow(deprecated)]
        let outcome = match (r.failure, r.error) {
            (Some(failure), _) => Outcome::Failure(failure),
            (None, Some(error)) => Outcome::HandlerError(error),
            (None, None) => return Err(invalid("Failure is not set on request.")),
        };
        self.deliver_nexus(&req.task_id, outcome)
    }

    fn deliver_nexus(&self, task_id: &str, outcome: Outcome) -> Result<(), Status> {
        if task_id.is_empty() {
            return Err(invalid("Invalid TaskToken."));
        }
        let tx = self.nexus.take(task_id).ok_or_else(gone)?;
        tx.send(outcome).map_err(|_| gone())
    }
}
