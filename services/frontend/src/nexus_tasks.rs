//! The Nexus handler's side of the WorkflowService: PollNexusTaskQueue,
//! RespondNexusTaskCompleted and RespondNexusTaskFailed. Matching holds each Nexus task in
//! memory for the history call that waits for the handler's answer
//! (`services/matching/src/nexus.rs`); the task token names the task and its queue.

use std::time::Duration;

use prost::Message;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::enums::v1::TaskQueueKind;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_workflow::pb;
use tonic::Status;

use crate::{Frontend, check_identity, check_task_queue};

/// The Nexus task a token names: its namespace id, its id and the queue it was dispatched
/// on. (A Nexus task belongs to no workflow: its token names none.)
fn task_of(task_token: &[u8]) -> Result<(String, String, TaskQueue), Status> {
    if task_token.is_empty() {
        return Err(Status::invalid_argument("Task token not set on request."));
    }
    let t = pb::TaskToken::decode(task_token)
        .map_err(|_| Status::invalid_argument("Error deserializing task token."))?;
    if t.namespace_id.is_empty() || t.nexus_task_id.is_empty() || t.task_queue.is_empty() {
        return Err(Status::invalid_argument("Error deserializing task token."));
    }
    Ok((
        t.namespace_id,
        t.nexus_task_id,
        TaskQueue {
            name: t.task_queue,
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        },
    ))
}

impl Frontend {
    pub(crate) async fn nexus_poll(
        &self,
        r: ws::PollNexusTaskQueueRequest,
        budget: Duration,
    ) -> Result<ws::PollNexusTaskQueueResponse, Status> {
        check_task_queue(&r.task_queue)?;
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id_long_poll(&r.namespace).await?;
        let matching = &self.matching;
        temper_client::call!(matching => poll_nexus_task_queue(internal::PollNexusTaskQueueRequest {
            namespace_id,
            poller_id: uuid::Uuid::new_v4().to_string(),
            request: Some(r),
            long_poll_timeout_ms: budget.as_millis() as i64,
        }))
    }

    pub(crate) async fn nexus_completed(
        &self,
        r: ws::RespondNexusTaskCompletedRequest,
    ) -> Result<ws::RespondNexusTaskCompletedResponse, Status> {
        check_identity(&r.identity)?;
        let (token_namespace_id, task_id, task_queue) = task_of(&r.task_token)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        if token_namespace_id != namespace_id {
            return Err(Status::invalid_argument(
                "Operation requested with a token from a different namespace.",
            ));
        }
        if r.response.is_none() {
            return Err(Status::invalid_argument("Response is not set on request."));
        }
        let matching = &self.matching;
        temper_client::call!(matching => respond_nexus_task_completed(
            internal::RespondNexusTaskCompletedRequest {
                namespace_id,
                task_queue: Some(task_queue),
                task_id,
                request: Some(r),
            }
        ))?;
        Ok(ws::RespondNexusTaskCompletedResponse::default())
    }

    pub(crate) async fn nexus_failed(
        &self,
        r: ws::RespondNexusTaskFailedRequest,
    ) -> Result<ws::RespondNexusTaskFailedResponse, Status> {
        check_identity(&r.identity)?;
        let (token_namespace_id, task_id, task_queue) = task_of(&r.task_token)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        if token_namespace_id != namespace_id {
            return Err(Status::invalid_argument(
                "Operation requested with a token from a different namespace.",
            ));
        }
        #[allow(deprecated)]
        if r.failure.is_none() && r.error.is_none() {
            return Err(Status::invalid_argument("Failure is not set on request."));
        }
        let matching = &self.matching;
        temper_client::call!(matching => respond_nexus_task_failed(
            internal::RespondNexusTaskFailedRequest {
                namespace_id,
                task_queue: Some(task_queue),
                task_id,
                request: Some(r),
            }
        ))?;
        Ok(ws::RespondNexusTaskFailedResponse::default())
    }
}
