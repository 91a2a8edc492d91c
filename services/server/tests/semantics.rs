//! Server semantics driven through the raw WorkflowService API, with whole nodes built
//! in-process over SQLite: sticky-queue fallback, stale-owner fencing, and bad input.

use std::sync::Arc;

use prost::Message;
use temper_persistence::Persistence;
use temper_persistence_sqlite::SqliteStore;
use temper_proto::api::workflowservice::v1::workflow_service_server::WorkflowService;
use temper_proto::temporal::api::command::v1::{Command, StartTimerCommandAttributes, command};
use temper_proto::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType};
use temper_proto::temporal::api::enums::v1::{EventType, TaskQueueKind, TimeoutType};
use temper_proto::temporal::api::errordetails::v1::NamespaceNotFoundFailure;
use temper_proto::temporal::api::history::v1::history_event::Attributes;
use temper_proto::temporal::api::taskqueue::v1::{StickyExecutionAttributes, TaskQueue};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_server::node::{Node, NodeConfig};
use tonic::{Code, Request};

fn queue(name: &str, kind: TaskQueueKind) -> Option<TaskQueue> {
    Some(TaskQueue {
        name: name.into(),
        kind: kind as i32,
        normal_name: String::new(),
    })
}

fn with_timeout<T>(msg: T, timeout: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("grpc-timeout", timeout.parse().expect("valid header value"));
    r
}

async fn node_over(p: Persistence, owner: &str) -> Node {
    Node::start(p, NodeConfig::dev(4, owner))
        .await
        .expect("node starts")
}

async fn start(node: &Node, id: &str, tq: &str) -> String {
    node.frontend
        .start_workflow_execution(Request::new(ws::StartWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_id: id.into(),
            workflow_type: Some(WorkflowType { name: "W".into() }),
            task_queue: queue(tq, TaskQueueKind::Normal),
            request_id: format!("req-{id}"),
            ..Default::default()
        }))
        .await
        .expect("start succeeds")
        .into_inner()
        .run_id
}

async fn poll(
    node: &Node,
    tq: &str,
    kind: TaskQueueKind,
    timeout: &str,
) -> ws::PollWorkflowTaskQueueResponse {
    node.frontend
        .poll_workflow_task_queue(with_timeout(
            ws::PollWorkflowTaskQueueRequest {
                namespace: "default".into(),
                task_queue: queue(tq, kind),
                identity: "test-worker".into(),
                ..Default::default()
            },
            timeout,
        ))
        .await
        .expect("poll succeeds")
        .into_inner()
}

async fn history(
    node: &Node,
    id: &str,
) -> Vec<temper_proto::temporal::api::history::v1::HistoryEvent> {
    node.frontend
        .get_workflow_execution_history(Request::new(ws::GetWorkflowExecutionHistoryRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution {
                workflow_id: id.into(),
                run_id: String::new(),
            }),
            ..Default::default()
        }))
        .await
        .expect("history")
        .into_inner()
        .history
        .unwrap_or_default()
        .events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_task_moves_to_the_normal_queue_after_its_schedule_to_start_timeout() {
    let store = SqliteStore::open_in_memory().expect("store");
    let node = Arc::new(node_over(store.into_persistence(), "a").await);
    start(&node, "sticky-wf", "tq").await;
    let first = poll(&node, "tq", TaskQueueKind::Normal, "10S").await;
    assert!(
        !first.task_token.is_empty(),
        "first workflow task is handed out"
    );

    // The worker polls its sticky queue (so it counts as alive) but never takes the task
    // (2.2 s: Temporal refuses task polls with deadlines under 2 s).
    let empty = poll(&node, "tq-sticky", TaskQueueKind::Sticky, "2200m").await;
    assert!(
        empty.task_token.is_empty(),
        "nothing on the sticky queue yet"
    );
    node.frontend
        .respond_workflow_task_completed(Request::new(ws::RespondWorkflowTaskCompletedRequest {
            namespace: "default".into(),
            task_token: first.task_token.clone(),
            identity: "test-worker".into(),
            sticky_attributes: Some(StickyExecutionAttributes {
                worker_task_queue: queue("tq-sticky", TaskQueueKind::Sticky),
                schedule_to_start_timeout: Some(temper_proto::wkt::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            }),
            commands: vec![Command {
                attributes: Some(command::Attributes::StartTimerCommandAttributes(
                    StartTimerCommandAttributes {
                        timer_id: "t1".into(),
                        start_to_fire_timeout: Some(temper_proto::wkt::Duration {
                            seconds: 0,
                            nanos: 50_000_000,
                        }),
                    },
                )),
                ..Default::default()
            }],
            ..Default::default()
        }))
        .await
        .expect("completion accepted");

    // The timer fires, the next task goes to the sticky queue, nobody takes it, and after a
    // second it must show up on the normal queue with the whole history.
    let next = poll(&node, "tq", TaskQueueKind::Normal, "15S").await;
    assert!(
        !next.task_token.is_empty(),
        "the task came back to the normal queue"
    );
    let events = next.history.unwrap_or_default().events;
    assert_eq!(
        events.first().map(|e| e.event_id),
        Some(1),
        "a normal-queue task carries the full history"
    );
    let timed_out = events
        .iter()
        .find(|e| e.event_type == EventType::WorkflowTaskTimedOut as i32)
        .expect("a WorkflowTaskTimedOut event");
    match &timed_out.attributes {
        Some(Attributes::WorkflowTaskTimedOutEventAttributes(a)) => {
            assert_eq!(a.timeout_type, TimeoutType::ScheduleToStart as i32)
        }
        other => panic!("unexpected attributes {other:?}"),
    }
    node.shutdown().await;
}

async fn terminate(
    node: &Node,
) -> Result<tonic::Response<ws::TerminateWorkflowExecutionResponse>, tonic::Status> {
    node.frontend
        .terminate_workflow_execution(Request::new(ws::TerminateWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: "fenced".into(),
                run_id: String::new(),
            }),
            reason: "test".into(),
            ..Default::default()
        }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_shard_owner_cannot_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("shared.sqlite");
    let a = node_over(
        SqliteStore::open(&file)
            .expect("store a")
            .into_persistence(),
        "node-a",
    )
    .await;
    start(&a, "fenced", "tq").await;
    let before = history(&a, "fenced").await.len();

    // Node B takes every shard (bumping their range ids); A has not noticed.
    let b = node_over(
        SqliteStore::open(&file)
            .expect("store b")
            .into_persistence(),
        "node-b",
    )
    .await;
    let stale = terminate(&a)
        .await
        .expect_err("the stale owner's write is refused");
    assert_eq!(stale.code(), Code::Unavailable, "{stale:?}");
    let after = history(&b, "fenced").await;
    assert_eq!(
        after.len(),
        before,
        "nothing of the stale write reached the store"
    );
    assert!(
        after
            .iter()
            .all(|e| e.event_type != EventType::WorkflowExecutionTerminated as i32)
    );

    // In single-node mode a node re-acquires shards it lost, so stop A before it fights back.
    a.shutdown().await;
    terminate(&b).await.expect("the new owner writes");
    let events = history(&b, "fenced").await;
    assert_eq!(
        events.last().map(|e| e.event_type),
        Some(EventType::WorkflowExecutionTerminated as i32)
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_temporals_status_codes() {
    let node = node_over(
        SqliteStore::open_in_memory()
            .expect("store")
            .into_persistence(),
        "a",
    )
    .await;
    let f = &node.frontend;

    let garbage = f
        .respond_activity_task_completed(Request::new(ws::RespondActivityTaskCompletedRequest {
            namespace: "default".into(),
            task_token: vec![0xff, 0x01, 0x02],
            ..Default::default()
        }))
        .await
        .expect_err("garbage token");
    assert_eq!(garbage.code(), Code::InvalidArgument);

    let big = Payloads {
        payloads: vec![Payload {
            data: vec![7u8; 3 * 1024 * 1024],
            ..Default::default()
        }],
    };
    let oversize = f
        .start_workflow_execution(Request::new(ws::StartWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_id: "big".into(),
            workflow_type: Some(WorkflowType { name: "W".into() }),
            task_queue: queue("tq", TaskQueueKind::Normal),
            input: Some(big),
            ..Default::default()
        }))
        .await
        .expect_err("3 MiB input");
    assert_eq!(oversize.code(), Code::InvalidArgument);
    let missing = f
        .describe_workflow_execution(Request::new(ws::DescribeWorkflowExecutionRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution {
                workflow_id: "big".into(),
                run_id: String::new(),
            }),
        }))
        .await
        .expect_err("nothing was started");
    assert_eq!(missing.code(), Code::NotFound);

    let no_ns = f
        .start_workflow_execution(Request::new(ws::StartWorkflowExecutionRequest {
            namespace: "nope".into(),
            workflow_id: "x".into(),
            workflow_type: Some(WorkflowType { name: "W".into() }),
            task_queue: queue("tq", TaskQueueKind::Normal),
            ..Default::default()
        }))
        .await
        .expect_err("unknown namespace");
    assert_eq!(no_ns.code(), Code::NotFound);
    let details =
        temper_proto::google::rpc::Status::decode(no_ns.details()).expect("status details");
    let failure = NamespaceNotFoundFailure::decode(details.details[0].value.as_slice())
        .expect("namespace failure");
    assert_eq!(failure.namespace, "nope");

    let unimplemented = f
        .list_archived_workflow_executions(Request::new(
            ws::ListArchivedWorkflowExecutionsRequest {
                namespace: "default".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no archival");
    assert_eq!(unimplemented.code(), Code::Unimplemented);

    let empty_queue = f
        .poll_activity_task_queue(Request::new(ws::PollActivityTaskQueueRequest {
            namespace: "default".into(),
            ..Default::default()
        }))
        .await
        .expect_err("no task queue");
    assert_eq!(empty_queue.code(), Code::InvalidArgument);
    node.shutdown().await;
}

/// The per-namespace rate limiters keep a bucket per namespace for good, so they must only
/// ever see names of namespaces that exist: a client sending any string as the namespace
/// (a fuzzer, a typo in a loop) would grow them without bound.
#[tokio::test]
async fn requests_for_namespaces_that_do_not_exist_leave_no_rate_limit_bucket() {
    let store = SqliteStore::open_in_memory().expect("store");
    let mut config = NodeConfig::dev(4, "limits");
    config.rate_limits = temper_frontend::RateLimitConfig {
        namespace_rps: 1_000,
        namespace_visibility_rps: 1_000,
        ..Default::default()
    };
    let node = Node::start(store.into_persistence(), config)
        .await
        .expect("node starts");
    for i in 0..200 {
        let namespace = format!("no-such-namespace-{i}");
        let err = node
            .frontend
            .start_workflow_execution(Request::new(ws::StartWorkflowExecutionRequest {
                namespace: namespace.clone(),
                workflow_id: "w".into(),
                workflow_type: Some(WorkflowType { name: "W".into() }),
                task_queue: queue("tq", TaskQueueKind::Normal),
                request_id: format!("req-{i}"),
                ..Default::default()
            }))
            .await
            .expect_err("no such namespace");
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        let err = node
            .frontend
            .list_workflow_executions(Request::new(ws::ListWorkflowExecutionsRequest {
                namespace,
                ..Default::default()
            }))
            .await
            .expect_err("no such namespace");
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
    assert_eq!(node.frontend.rate_limited_namespaces(), 0);
    start(&node, "limited", "tq").await;
    node.frontend
        .list_workflow_executions(Request::new(ws::ListWorkflowExecutionsRequest {
            namespace: "default".into(),
            ..Default::default()
        }))
        .await
        .expect("list in default");
    assert_eq!(
        node.frontend.rate_limited_namespaces(),
        2,
        "one bucket per limiter"
    );
}
