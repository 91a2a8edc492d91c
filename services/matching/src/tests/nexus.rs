//! Nexus tasks: DispatchNexusTask hands the request to the next poller of the Nexus queue
//! and waits; the handler's response or failure, delivered by task id, completes the call.
//! Nothing is stored, and nothing reaches history.

use std::time::Duration;

use prost::Message;
use temper_proto::internal::v1::{
    DispatchNexusTaskRequest, DispatchNexusTaskResponse, PollNexusTaskQueueRequest,
    RespondNexusTaskCompletedRequest, RespondNexusTaskFailedRequest,
    dispatch_nexus_task_response::Outcome,
};
use temper_proto::persistence::v1::TaskToken;
use temper_proto::temporal::api::nexus::v1::{
    HandlerError, Request as NexusRequest, Response as NexusResponse, StartOperationRequest,
    StartOperationResponse, response, start_operation_response,
};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use tokio::task::JoinHandle;
use tonic::Code;

use super::*;

fn dispatch(
    h: &Harness,
    queue: &str,
    operation: &str,
    timeout_ms: i64,
) -> JoinHandle<Result<DispatchNexusTaskResponse, Status>> {
    let engine = h.engine.clone();
    let req = DispatchNexusTaskRequest {
        namespace_id: NS.to_owned(),
        task_queue: Some(normal(queue)),
        request: Some(NexusRequest {
            variant: Some(
                temper_proto::temporal::api::nexus::v1::request::Variant::StartOperation(
                    StartOperationRequest {
                        service: "svc".to_owned(),
                        operation: operation.to_owned(),
                        request_id: "req-1".to_owned(),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        timeout_ms,
    };
    tokio::spawn(async move {
        engine
            .dispatch_nexus_task(Request::new(req))
            .await
            .map(tonic::Response::into_inner)
    })
}

async fn poll_nexus(h: &Harness, queue: &str, timeout_ms: i64) -> ws::PollNexusTaskQueueResponse {
    h.engine
        .poll_nexus_task_queue(Request::new(PollNexusTaskQueueRequest {
            namespace_id: NS.to_owned(),
            poller_id: "p".to_owned(),
            request: Some(ws::PollNexusTaskQueueRequest {
                namespace: "default".to_owned(),
                task_queue: Some(normal(queue)),
                identity: "handler".to_owned(),
                ..Default::default()
            }),
            long_poll_timeout_ms: timeout_ms,
        }))
        .await
        .expect("poll")
        .into_inner()
}

fn sync_result(data: &[u8]) -> NexusResponse {
    NexusResponse {
        variant: Some(response::Variant::StartOperation(StartOperationResponse {
            variant: Some(start_operation_response::Variant::SyncSuccess(
                start_operation_response::Sync {
                    payload: Some(temper_proto::temporal::api::common::v1::Payload {
                        data: data.to_vec(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
        })),
    }
}

#[tokio::test]
async fn a_poller_gets_the_request_and_its_response_completes_the_dispatch() {
    let h = Harness::new();
    let call = dispatch(&h, "nexus-q", "echo", 10_000);
    let task = poll_nexus(&h, "nexus-q", 10_000).await;
    let start = match task.request.and_then(|r| r.variant) {
        Some(temper_proto::temporal::api::nexus::v1::request::Variant::StartOperation(s)) => s,
        other => panic!("a start request, got {other:?}"),
    };
    assert_eq!(start.operation, "echo");
    let t = TaskToken::decode(task.task_token.as_slice()).expect("token");
    assert_eq!(
        (t.namespace_id.as_str(), t.task_queue.as_str()),
        (NS, "nexus-q")
    );
    assert!(!t.nexus_task_id.is_empty());
    assert!(h.history.calls().is_empty(), "nothing reaches history");

    let answer = |task_id: String| RespondNexusTaskCompletedRequest {
        namespace_id: NS.to_owned(),
        task_queue: Some(normal("nexus-q")),
        task_id,
        request: Some(ws::RespondNexusTaskCompletedRequest {
            response: Some(sync_result(b"hi")),
            ..Default::default()
        }),
    };
    h.engine
        .respond_nexus_task_completed(Request::new(answer(t.nexus_task_id.clone())))
        .await
        .expect("delivered");
    let done = call.await.expect("dispatch task").expect("answered");
    assert_eq!(done.outcome, Some(Outcome::Response(sync_result(b"hi"))));
    // Answering twice finds nobody waiting.
    let err = h
        .engine
        .respond_nexus_task_completed(Request::new(answer(t.nexus_task_id)))
        .await
        .expect_err("already answered");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn a_handler_failure_is_passed_back() {
    let h = Harness::new();
    let call = dispatch(&h, "nexus-f", "boom", 10_000);
    let task = poll_nexus(&h, "nexus-f", 10_000).await;
    let t = TaskToken::decode(task.task_token.as_slice()).expect("token");
    let error = HandlerError {
        error_type: "BAD_REQUEST".to_owned(),
        ..Default::default()
    };
    #[allow(deprecated)]
    let failed = RespondNexusTaskFailedRequest {
        namespace_id: NS.to_owned(),
        task_queue: Some(normal("nexus-f")),
        task_id: t.nexus_task_id,
        request: Some(ws::RespondNexusTaskFailedRequest {
            error: Some(error.clone()),
            ..Default::default()
        }),
    };
    h.engine
        .respond_nexus_task_failed(Request::new(failed))
        .await
        .expect("delivered");
    let done = call.await.expect("dispatch task").expect("answered");
    assert_eq!(done.outcome, Some(Outcome::HandlerError(error)));
}

#[tokio::test]
async fn a_request_nobody_takes_times_out_and_is_never_handed_out_later() {
    let h = Harness::new();
    let err = dispatch(&h, "nexus-idle", "late", 300)
        .await
        .expect("dispatch task")
        .expect_err("nobody polled");
    assert!(
        matches!(
            err.code(),
            Code::DeadlineExceeded | Code::FailedPrecondition
        ),
        "{err:?}"
    );
    assert_eq!(h.engine.core.nexus.len(), 0, "the waiter is gone");
    let task = tokio::time::timeout(Duration::from_secs(5), poll_nexus(&h, "nexus-idle", 200))
        .await
        .expect("the poll ends");
    assert!(
        task.task_token.is_empty(),
        "the expired request is not handed out"
    );
}
