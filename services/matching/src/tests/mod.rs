//! Engine tests against an in-memory task queue store and a scripted history service.

mod backlog;
mod cancel;
mod concurrency;
mod describe;
mod fakes;
mod lease;
mod nexus;
mod partitions;
mod priority;
mod query;
mod queue_config;
mod sticky;
mod sync_match;

use std::sync::Arc;
use std::time::Duration;

use temper_proto::internal::v1::{
    AddActivityTaskRequest, AddWorkflowTaskRequest, PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
};
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::TaskQueueKind;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue as TaskQueueRef;
use temper_proto::temporal::api::workflowservice::v1::{
    PollActivityTaskQueueRequest as ApiPollActivity, PollActivityTaskQueueResponse,
    PollWorkflowTaskQueueRequest as ApiPollWorkflow, PollWorkflowTaskQueueResponse,
};
use temper_types::NamespaceId;
use tonic::{Request, Status};

use crate::{MatchingConfig, MatchingEngine, QueueKey, QueueKind, QueueType};
use fakes::{FakeHistory, FakeStore};

pub(crate) use temper_client::MatchingService;

const NS: &str = "ns-1";

/// What a test works with.
pub(crate) struct Harness {
    pub store: Arc<FakeStore>,
    pub history: Arc<FakeHistory>,
    pub engine: Arc<MatchingEngine>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(MatchingConfig::default())
    }

    pub fn with_config(config: MatchingConfig) -> Self {
        let store = Arc::new(FakeStore::default());
        let history = Arc::new(FakeHistory::default());
        let engine = Arc::new(MatchingEngine::new(store.clone(), history.clone(), config));
        Self {
            store,
            history,
            engine,
        }
    }

    /// A second engine over the same store and history (a restarted node).
    pub fn restart(&self) -> Self {
        self.engine.shutdown();
        let engine = Arc::new(MatchingEngine::new(
            self.store.clone(),
            self.history.clone(),
            MatchingConfig::default(),
        ));
        Self {
            store: self.store.clone(),
            history: self.history.clone(),
            engine,
        }
    }

    /// Pollers waiting on a queue right now (0 if it is not loaded).
    pub fn waiting(&self, key: &QueueKey) -> usize {
        self.engine
            .core
            .loaded(key)
            .map_or(0, |q| q.waiting_pollers())
    }

    pub async fn add_workflow(
        &self,
        queue: &str,
        workflow_id: &str,
        event_id: i64,
    ) -> Result<(), Status> {
        add_workflow(&self.engine, normal(queue), workflow_id, event_id).await
    }

    pub async fn poll_workflow(
        &self,
        queue: &str,
        identity: &str,
        timeout_ms: i64,
    ) -> Result<PollWorkflowTaskQueueResponse, Status> {
        poll_workflow(&self.engine, normal(queue), identity, timeout_ms).await
    }
}

pub(crate) fn normal(name: &str) -> TaskQueueRef {
    TaskQueueRef {
        name: name.to_owned(),
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    }
}

pub(crate) fn sticky(name: &str) -> TaskQueueRef {
    TaskQueueRef {
        name: name.to_owned(),
        kind: TaskQueueKind::Sticky as i32,
        normal_name: "orders".to_owned(),
    }
}

pub(crate) fn key(name: &str, task_type: QueueType, kind: QueueKind) -> QueueKey {
    QueueKey::new(NamespaceId(NS.to_owned()), name, task_type, kind)
}

pub(crate) fn execution(workflow_id: &str) -> WorkflowExecution {
    WorkflowExecution {
        workflow_id: workflow_id.to_owned(),
        run_id: format!("{workflow_id}-run"),
    }
}

pub(crate) fn add_workflow_request(
    tq: TaskQueueRef,
    workflow_id: &str,
    event_id: i64,
) -> AddWorkflowTaskRequest {
    AddWorkflowTaskRequest {
        directive: None,
        namespace_id: NS.to_owned(),
        execution: Some(execution(workflow_id)),
        task_queue: Some(tq),
        scheduled_event_id: event_id,
        schedule_to_start_timeout: None,
        attempt: 1,
        priority: None,
    }
}

pub(crate) async fn add_workflow(
    engine: &MatchingEngine,
    tq: TaskQueueRef,
    workflow_id: &str,
    event_id: i64,
) -> Result<(), Status> {
    engine
        .add_workflow_task(Request::new(add_workflow_request(
            tq,
            workflow_id,
            event_id,
        )))
        .await
        .map(|_| ())
}

pub(crate) async fn add_activity(
    engine: &MatchingEngine,
    queue: &str,
    workflow_id: &str,
    event_id: i64,
) -> Result<(), Status> {
    engine
        .add_activity_task(Request::new(AddActivityTaskRequest {
            directive: None,
            namespace_id: NS.to_owned(),
            execution: Some(execution(workflow_id)),
            task_queue: Some(normal(queue)),
            scheduled_event_id: event_id,
            schedule_to_start_timeout: None,
            attempt: 1,
            priority: None,
        }))
        .await
        .map(|_| ())
}

pub(crate) async fn poll_workflow(
    engine: &MatchingEngine,
    tq: TaskQueueRef,
    identity: &str,
    timeout_ms: i64,
) -> Result<PollWorkflowTaskQueueResponse, Status> {
    engine
        .poll_workflow_task_queue(Request::new(PollWorkflowTaskQueueRequest {
            namespace_id: NS.to_owned(),
            poller_id: format!("poll-{}", uuid::Uuid::new_v4()),
            request: Some(ApiPollWorkflow {
                namespace: "default".to_owned(),
                task_queue: Some(tq),
                identity: identity.to_owned(),
                worker_instance_key: format!("{identity}-instance"),
                ..Default::default()
            }),
            long_poll_timeout_ms: timeout_ms,
        }))
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) async fn poll_activity(
    engine: &MatchingEngine,
    queue: &str,
    identity: &str,
    timeout_ms: i64,
) -> Result<PollActivityTaskQueueResponse, Status> {
    engine
        .poll_activity_task_queue(Request::new(PollActivityTaskQueueRequest {
            namespace_id: NS.to_owned(),
            poller_id: format!("poll-{}", uuid::Uuid::new_v4()),
            request: Some(ApiPollActivity {
                namespace: "default".to_owned(),
                task_queue: Some(normal(queue)),
                identity: identity.to_owned(),
                ..Default::default()
            }),
            long_poll_timeout_ms: timeout_ms,
            ..Default::default()
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// The task token the fake history hands out for a workflow task.
pub(crate) fn token(workflow_id: &str, event_id: i64) -> Vec<u8> {
    format!("{workflow_id}/{event_id}").into_bytes()
}

/// Wait until `cond` holds, failing the test after a generous deadline.
pub(crate) async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn requests_without_a_task_queue_are_invalid() {
    let h = Harness::new();
    let err = h
        .add_workflow("", "wf", 2)
        .await
        .expect_err("no queue name");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "TaskQueue is not set on request.");

    let err = h
        .poll_workflow("", "worker", 10)
        .await
        .expect_err("no queue name");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "TaskQueue is not set on request.");

    let mut req = add_workflow_request(normal("orders"), "wf", 2);
    req.execution = None;
    let err = h
        .engine
        .add_workflow_task(Request::new(req))
        .await
        .expect_err("no execution");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let mut req = add_workflow_request(normal("orders"), "wf", 2);
    req.namespace_id.clear();
    let err = h
        .engine
        .add_workflow_task(Request::new(req))
        .await
        .expect_err("no namespace");
    assert_eq!(err.message(), "Namespace is not set on request.");

    let err = h
        .engine
        .poll_workflow_task_queue(Request::new(PollWorkflowTaskQueueRequest {
            namespace_id: NS.to_owned(),
            ..Default::default()
        }))
        .await
        .expect_err("no inner request");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn engine_shutdown_wakes_pollers_empty_and_refuses_adds() {
    let h = Harness::new();
    // The engine is what the binary hands out as the matching client.
    let _client: temper_client::MatchingClient = h.engine.clone();
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "w1", 60_000).await }
    });
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    eventually("the poller waits", || h.waiting(&k) == 1).await;
    h.engine.shutdown();
    let resp = poll.await.expect("poll task").expect("empty response");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());
    let err = h
        .add_workflow("orders", "wf", 2)
        .await
        .expect_err("shut down");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    h.engine.wait_stopped().await;
}
