//! Query tasks: handed to the next poller ahead of other tasks, answered by task token,
//! never stored; sticky queues without a live worker refuse them; unanswered queries time
//! out, or fail early when nobody polls the queue.

use std::time::Duration;

use prost::Message;
use temper_client::status;
use temper_proto::internal::v1::{
    QueryWorkflowRequest, QueryWorkflowResponse, RespondQueryTaskCompletedRequest,
};
use temper_proto::persistence::v1::TaskToken;
use temper_proto::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temper_proto::temporal::api::enums::v1::QueryResultType;
use temper_proto::temporal::api::history::v1::History;
use temper_proto::temporal::api::query::v1::WorkflowQuery;
use temper_proto::temporal::api::workflowservice::v1::RespondQueryTaskCompletedRequest as Answer;
use tokio::task::JoinHandle;
use tonic::Code;

use super::*;
use crate::query::{NO_RECENT_POLLER, QUERY_TIMED_OUT};

pub(super) fn query_request(
    tq: TaskQueueRef,
    workflow_id: &str,
    timeout_ms: i64,
) -> QueryWorkflowRequest {
    QueryWorkflowRequest {
        directive: None,
        namespace_id: NS.to_owned(),
        task_queue: Some(tq),
        task: Some(PollWorkflowTaskQueueResponse {
            workflow_execution: Some(execution(workflow_id)),
            workflow_type: Some(WorkflowType {
                name: "Orders".to_owned(),
            }),
            previous_started_event_id: 3,
            attempt: 1,
            history: Some(History::default()),
            query: Some(WorkflowQuery {
                query_type: "state".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        timeout_ms,
    }
}

fn query(
    h: &Harness,
    tq: TaskQueueRef,
    workflow_id: &str,
    timeout_ms: i64,
) -> JoinHandle<Result<QueryWorkflowResponse, Status>> {
    let engine = h.engine.clone();
    let req = query_request(tq, workflow_id, timeout_ms);
    tokio::spawn(async move {
        engine
            .query_workflow(Request::new(req))
            .await
            .map(tonic::Response::into_inner)
    })
}

pub(super) fn answer_request(task_token: &[u8], text: &str) -> RespondQueryTaskCompletedRequest {
    let t = TaskToken::decode(task_token).expect("a query task token");
    RespondQueryTaskCompletedRequest {
        namespace_id: t.namespace_id,
        task_queue: Some(normal(&t.task_queue)),
        query_task_id: t.query_task_id,
        request: Some(Answer {
            task_token: task_token.to_vec(),
            completed_type: QueryResultType::Answered as i32,
            query_result: Some(Payloads {
                payloads: vec![Payload {
                    data: text.as_bytes().to_vec(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
    }
}

async fn answer(h: &Harness, task_token: &[u8], text: &str) -> Result<(), Status> {
    h.engine
        .respond_query_task_completed(Request::new(answer_request(task_token, text)))
        .await
        .map(|_| ())
}

pub(super) fn answered_text(r: QueryWorkflowResponse) -> String {
    let completed = r.completed.expect("completed");
    assert_eq!(completed.completed_type, QueryResultType::Answered as i32);
    let payload = &completed.query_result.expect("result").payloads[0];
    String::from_utf8(payload.data.clone()).expect("utf8")
}

#[tokio::test]
async fn a_waiting_poller_gets_the_query_and_its_answer_completes_the_call() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;
    let call = query(&h, normal("orders"), "wf-1", 10_000);

    let task = poll.await.expect("poll task").expect("poll");
    assert_eq!(
        task.query.as_ref().map(|q| q.query_type.as_str()),
        Some("state")
    );
    assert_eq!(task.workflow_execution, Some(execution("wf-1")));
    assert_eq!(task.previous_started_event_id, 3);
    let t = TaskToken::decode(task.task_token.as_slice()).expect("token");
    assert_eq!(t.namespace_id, NS);
    assert_eq!(
        (t.workflow_id.as_str(), t.run_id.as_str()),
        ("wf-1", "wf-1-run")
    );
    assert_eq!(t.task_queue, "orders");
    assert!(!t.query_task_id.is_empty());
    assert_eq!(t.workflow_type, "Orders");
    assert!(
        h.history.calls().is_empty(),
        "a query task starts nothing in history"
    );

    answer(&h, &task.task_token, "42").await.expect("answer");
    let r = call.await.expect("query task").expect("answered");
    assert_eq!(answered_text(r), "42");
    assert_eq!(h.engine.core.queries.len(), 0);
    // Answering twice finds nobody waiting.
    let err = answer(&h, &task.task_token, "43")
        .await
        .expect_err("already answered");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "query task not found, or already expired");
}

#[tokio::test]
async fn failed_answers_are_passed_back_as_they_are() {
    let h = Harness::new();
    let call = query(&h, normal("orders"), "wf-1", 10_000);
    let task = h
        .poll_workflow("orders", "worker-1", 10_000)
        .await
        .expect("poll");
    let mut req = answer_request(&task.task_token, "");
    if let Some(a) = req.request.as_mut() {
        a.completed_type = QueryResultType::Failed as i32;
        a.query_result = None;
        a.error_message = "no handler".to_owned();
    }
    h.engine
        .respond_query_task_completed(Request::new(req))
        .await
        .expect("answer");
    let completed = call
        .await
        .expect("task")
        .expect("call")
        .completed
        .expect("completed");
    assert_eq!(completed.completed_type, QueryResultType::Failed as i32);
    assert_eq!(completed.error_message, "no handler");
}

#[tokio::test]
async fn queries_go_to_the_next_poller_ahead_of_backlog_tasks_and_are_never_stored() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-backlog", 2)
        .await
        .expect("add");
    let first = query(&h, normal("orders"), "wf-1", 10_000);
    eventually("the first query is queued", || {
        h.engine.core.queries.len() == 1
    })
    .await;
    let second = query(&h, normal("orders"), "wf-2", 10_000);
    eventually("both queries are queued", || {
        h.engine.core.queries.len() == 2
    })
    .await;
    assert_eq!(
        h.store.task_ids(&k.store_key()).len(),
        1,
        "only the workflow task is stored"
    );

    let a = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(
        a.workflow_execution,
        Some(execution("wf-1")),
        "queries first, oldest first"
    );
    let b = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(b.workflow_execution, Some(execution("wf-2")));
    let c = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(c.task_token, token("wf-backlog", 2), "then the backlog");

    answer(&h, &b.task_token, "b").await.expect("answer b");
    answer(&h, &a.task_token, "a").await.expect("answer a");
    assert_eq!(answered_text(first.await.expect("task").expect("a")), "a");
    assert_eq!(answered_text(second.await.expect("task").expect("b")), "b");
}

#[tokio::test(start_paused = true)]
async fn sticky_queries_need_a_live_sticky_worker() {
    let h = Harness::new();
    let err = query(&h, sticky("worker-1-sticky"), "wf-1", 10_000)
        .await
        .expect("task")
        .expect_err("nobody ever polled the sticky queue");
    assert!(status::is_sticky_worker_unavailable(&err), "{err:?}");
    assert!(
        h.engine
            .core
            .loaded(&key(
                "worker-1-sticky",
                QueueType::Workflow,
                QueueKind::Sticky
            ))
            .is_none(),
        "a query does not create a sticky queue"
    );

    // The worker polled a moment ago: its next poll gets the query.
    poll_workflow(&h.engine, sticky("worker-1-sticky"), "worker-1", 10)
        .await
        .expect("poll");
    let call = query(&h, sticky("worker-1-sticky"), "wf-1", 10_000);
    let task = poll_workflow(&h.engine, sticky("worker-1-sticky"), "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(
        task.history,
        Some(History::default()),
        "no history on the sticky queue"
    );
    assert_eq!(
        TaskToken::decode(task.task_token.as_slice())
            .expect("token")
            .task_queue,
        "worker-1-sticky"
    );
    answer(&h, &task.task_token, "cached")
        .await
        .expect("answer");
    assert_eq!(
        answered_text(call.await.expect("task").expect("call")),
        "cached"
    );

    // Quiet for longer than the sticky window: unavailable again.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let err = query(&h, sticky("worker-1-sticky"), "wf-1", 10_000)
        .await
        .expect("task")
        .expect_err("the worker went quiet");
    assert!(status::is_sticky_worker_unavailable(&err), "{err:?}");
}

#[tokio::test]
async fn a_sticky_worker_shutting_down_fails_its_waiting_query_at_once() {
    let h = Harness::new();
    poll_workflow(&h.engine, sticky("s"), "worker-1", 10)
        .await
        .expect("poll");
    let call = query(&h, sticky("s"), "wf-1", 60_000);
    eventually("the query is queued", || h.engine.core.queries.len() == 1).await;
    h.engine
        .shutdown_worker(Request::new(
            temper_proto::internal::v1::ShutdownWorkerRequest {
                namespace_id: NS.to_owned(),
                request: Some(
                    temper_proto::temporal::api::workflowservice::v1::ShutdownWorkerRequest {
                        namespace: "default".to_owned(),
                        sticky_task_queue: "s".to_owned(),
                        ..Default::default()
                    },
                ),
            },
        ))
        .await
        .expect("shutdown worker");
    let err = call.await.expect("task").expect_err("undeliverable");
    assert!(status::is_sticky_worker_unavailable(&err), "{err:?}");
    assert_eq!(h.engine.core.queries.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_query_times_out_and_is_not_handed_out_later() {
    let h = Harness::new();
    // A worker polled just now, so the queue is not considered dead.
    h.poll_workflow("orders", "worker-1", 10)
        .await
        .expect("poll");
    let started = tokio::time::Instant::now();
    let err = query(&h, normal("orders"), "wf-1", 5_000)
        .await
        .expect("task")
        .expect_err("nobody answers");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(err.message(), QUERY_TIMED_OUT);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(h.engine.core.queries.len(), 0);

    // The abandoned task is skipped: the next poll waits for real work.
    let resp = h
        .poll_workflow("orders", "worker-1", 100)
        .await
        .expect("poll");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());
}

#[tokio::test(start_paused = true)]
async fn a_taken_but_unanswered_query_times_out_too() {
    let h = Harness::new();
    let call = query(&h, normal("orders"), "wf-1", 5_000);
    let task = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert!(task.query.is_some());
    let err = call.await.expect("task").expect_err("never answered");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let err = answer(&h, &task.task_token, "late")
        .await
        .expect_err("too late");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(start_paused = true)]
async fn a_queue_nobody_polls_fails_the_query_a_second_before_its_deadline() {
    let h = Harness::new();
    let started = tokio::time::Instant::now();
    let err = query(&h, normal("orders"), "wf-1", 5_000)
        .await
        .expect("task")
        .expect_err("no worker");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), NO_RECENT_POLLER);
    assert_eq!(started.elapsed(), Duration::from_secs(4));

    // A poll 25 s ago is not recent either.
    h.poll_workflow("orders", "worker-1", 10)
        .await
        .expect("poll");
    tokio::time::sleep(Duration::from_secs(25)).await;
    let err = query(&h, normal("orders"), "wf-1", 5_000)
        .await
        .expect("task")
        .expect_err("worker gone");
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn bad_requests() {
    let h = Harness::new();
    let mut req = query_request(normal("orders"), "wf-1", 1_000);
    req.task = None;
    let err = h
        .engine
        .query_workflow(Request::new(req))
        .await
        .expect_err("no task");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h
        .engine
        .query_workflow(Request::new(query_request(normal(""), "wf-1", 1_000)))
        .await
        .expect_err("no queue");
    assert_eq!(err.message(), "TaskQueue is not set on request.");

    let mut req = answer_request(
        &TaskToken {
            namespace_id: NS.to_owned(),
            workflow_id: "wf".to_owned(),
            run_id: "r".to_owned(),
            query_task_id: "q".to_owned(),
            task_queue: "orders".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        "x",
    );
    let err = h
        .engine
        .respond_query_task_completed(Request::new(req.clone()))
        .await
        .expect_err("unknown query task");
    assert_eq!(err.code(), Code::NotFound);
    req.query_task_id.clear();
    let err = h
        .engine
        .respond_query_task_completed(Request::new(req))
        .await
        .expect_err("no query task id");
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(start_paused = true)]
async fn a_sticky_query_nobody_takes_times_out_for_the_fallback() {
    let h = Harness::new();
    poll_workflow(&h.engine, sticky("s"), "worker-1", 10)
        .await
        .expect("poll");
    // The worker dies; its sticky queue looks alive for a while. However long the sticky
    // timeout, the query ends as a timeout (the caller then tries the normal queue), not as
    // "no recent poller".
    let started = tokio::time::Instant::now();
    let err = query(&h, sticky("s"), "wf-1", 30_000)
        .await
        .expect("task")
        .expect_err("nobody takes it");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}
