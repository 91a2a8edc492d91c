//! The generator's Nexus worker: long polls on each namespace's Nexus task queue, answering
//! what [`scenario::nexus::answer`] decides. The workflow-backed operation starts its handler
//! workflow here (with the completion callback the request asks for) before answering.

use std::sync::Arc;

use temporalio_protos::temporal::api::enums::v1::NexusHandlerErrorRetryBehavior;
use temporalio_protos::temporal::api::failure::v1::{Failure, NexusHandlerFailureInfo, failure};
use temporalio_protos::temporal::api::nexus::v1::{self as nexus, Response};
use temporalio_protos::temporal::api::workflowservice::v1::{
    PollNexusTaskQueueRequest, PollNexusTaskQueueResponse, RespondNexusTaskCompletedRequest,
    RespondNexusTaskFailedRequest, StartWorkflowExecutionRequest,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{POLL_TIMEOUT, is_transient, req, retry, status_reason, with_timeout};
use crate::scenario::nexus::{self as handler, Answer, HandlerFailure};
use crate::scenario::normal_queue;
use crate::shared::Shared;
use crate::worker::poll_loop;

/// Nexus tasks being answered at once, per namespace.
const MAX_NEXUS_TASKS_IN_HAND: usize = 512;

/// Start the Nexus poll loops for every namespace of the run.
pub fn spawn(
    shared: &Arc<Shared>,
    pollers: usize,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) {
    for ns in shared.plan.namespace_names() {
        let ns: Arc<str> = Arc::from(ns);
        let slots = Arc::new(Semaphore::new(MAX_NEXUS_TASKS_IN_HAND));
        for _ in 0..pollers {
            tasks.spawn(nexus_poller(
                shared.clone(),
                ns.clone(),
                slots.clone(),
                tasks.clone(),
                cancel.clone(),
            ));
        }
    }
}

async fn nexus_poller(
    shared: Arc<Shared>,
    ns: Arc<str>,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let identity = shared.identity.clone();
    let queue = normal_queue(&handler::task_queue(&shared.task_queue));
    let on_task = (shared.clone(), ns.clone());
    poll_loop(
        &shared,
        slots,
        tasks,
        cancel,
        move |mut client| {
            let request = PollNexusTaskQueueRequest {
                namespace: ns.to_string(),
                task_queue: Some(queue.clone()),
                identity: identity.clone(),
                ..Default::default()
            };
            async move {
                let r = client
                    .poll_nexus_task_queue(with_timeout(request, POLL_TIMEOUT))
                    .await?;
                Ok(Some(r.into_inner()).filter(|t| !t.task_token.is_empty()))
            }
        },
        move |task| {
            let (shared, ns) = on_task.clone();
            async move { handle_nexus_task(&shared, &ns, task).await }
        },
    )
    .await;
}

async fn handle_nexus_task(shared: &Shared, ns: &str, task: PollNexusTaskQueueResponse) {
    let temporal_failures = task
        .request
        .as_ref()
        .and_then(|r| r.capabilities.as_ref())
        .is_some_and(|c| c.temporal_failure_responses);
    let answer = handler::answer(
        ns,
        &shared.task_queue,
        &shared.identity,
        task.request.as_ref(),
    );
    let outcome = match answer {
        Answer::Respond(r) => Ok(*r),
        Answer::Fail(f) => Err(f),
        Answer::StartWorkflow(start) => start_handler_workflow(shared, &start).await,
    };
    let responded = match outcome {
        Ok(response) => {
            let request = RespondNexusTaskCompletedRequest {
                namespace: ns.to_string(),
                identity: shared.identity.clone(),
                task_token: task.task_token,
                response: Some(response),
                ..Default::default()
            };
            retry(|| {
                let mut c = shared.clients.get();
                let r = req(request.clone());
                async move { c.respond_nexus_task_completed(r).await }
            })
            .await
            .map(drop)
        }
        Err(f) => {
            let request =
                failed_request(ns, &shared.identity, task.task_token, &f, temporal_failures);
            retry(|| {
                let mut c = shared.clients.get();
                let r = req(request.clone());
                async move { c.respond_nexus_task_failed(r).await }
            })
            .await
            .map(drop)
        }
    };
    // An answer the server did not take (the request timed out meanwhile, say) leaves the
    // operation to the server's retry of the start request.
    if responded.is_err() {
        shared.metrics.poll_error();
    }
}

/// Start the handler workflow; its asynchronous answer, or the handler error to fail with.
async fn start_handler_workflow(
    shared: &Shared,
    start: &StartWorkflowExecutionRequest,
) -> Result<Response, HandlerFailure> {
    let started = retry(|| {
        let mut c = shared.clients.get();
        let r = req(start.clone());
        async move { c.start_workflow_execution(r).await }
    })
    .await;
    match started {
        Ok(r) => {
            let r = r.into_inner();
            Ok(handler::async_started(start, &r.run_id, r.link.as_ref()))
        }
        Err(s) => Err(HandlerFailure {
            error_type: if is_transient(&s) {
                "UNAVAILABLE"
            } else {
                "INTERNAL"
            },
            message: format!(
                "starting handler workflow {}: {}",
                start.workflow_id,
                status_reason(&s)
            ),
            // The server sends the request again (same request id, so at most one run);
            // the operation's schedule-to-close timeout bounds the tries.
            retryable: true,
        }),
    }
}

/// A failed Nexus task, in the form the request's capabilities allow: a Temporal failure with
/// `NexusHandlerFailureInfo`, or else the older Nexus handler error.
fn failed_request(
    ns: &str,
    identity: &str,
    task_token: Vec<u8>,
    f: &HandlerFailure,
    temporal_failures: bool,
) -> RespondNexusTaskFailedRequest {
    let retry_behavior = if f.retryable {
        NexusHandlerErrorRetryBehavior::Retryable
    } else {
        NexusHandlerErrorRetryBehavior::NonRetryable
    } as i32;
    let mut request = RespondNexusTaskFailedRequest {
        namespace: ns.to_string(),
        identity: identity.to_string(),
        task_token,
        ..Default::default()
    };
    if temporal_failures {
        request.failure = Some(Failure {
            message: f.message.clone(),
            source: "temper-loadtest".to_string(),
            failure_info: Some(failure::FailureInfo::NexusHandlerFailureInfo(
                NexusHandlerFailureInfo {
                    r#type: f.error_type.to_string(),
                    retry_behavior,
                },
            )),
            ..Default::default()
        });
    } else {
        #[allow(deprecated)]
        {
            request.error = Some(nexus::HandlerError {
                error_type: f.error_type.to_string(),
                failure: Some(nexus::Failure {
                    message: f.message.clone(),
                    ..Default::default()
                }),
                retry_behavior,
            });
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_take_the_form_the_server_asked_for() {
        let f = HandlerFailure {
            error_type: "BAD_REQUEST",
            message: "no input".to_string(),
            retryable: false,
        };
        let modern = failed_request("ns", "me", b"tok".to_vec(), &f, true);
        let failure = modern.failure.expect("a Temporal failure");
        assert_eq!(failure.message, "no input");
        match failure.failure_info {
            Some(failure::FailureInfo::NexusHandlerFailureInfo(i)) => {
                assert_eq!(i.r#type, "BAD_REQUEST");
                assert_eq!(
                    i.retry_behavior,
                    NexusHandlerErrorRetryBehavior::NonRetryable as i32
                );
            }
            other => panic!("{other:?}"),
        }
        #[allow(deprecated)]
        {
            assert!(modern.error.is_none());
            let old = failed_request("ns", "me", b"tok".to_vec(), &f, false);
            assert!(old.failure.is_none());
            let e = old.error.expect("a handler error");
            assert_eq!(e.error_type, "BAD_REQUEST");
            assert_eq!(e.failure.map(|f| f.message).as_deref(), Some("no input"));
            assert_eq!(old.task_token, b"tok");
        }
    }
}
