//! Tests of the history engine against the embedded store: group commit, fencing, the
//! transfer and timer queues across restarts, store failures, history paging and long polls,
//! and the history read rule. They use real time with short durations and poll with a
//! deadline; a `FaultyStore` between the engine and SQLite injects failures, delays and
//! pauses, and a fake matching service records what the transfer queue hands it.

mod fencing;
mod group_commit;
mod handover;
mod history_api;
mod query;
mod queues;
mod read_rule;
mod reset_delete;
mod start;
mod store_failures;
mod updates;
mod workflow_tasks;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use temper_client::{HistoryService, MatchingService};
use temper_persistence::faulty::FaultyStore;
use temper_persistence::{ExecutionKey, Persistence, TaskCategory, TaskKey, TaskRecord};
use temper_persistence_sqlite::SqliteStore;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
use temper_proto::temporal::api::enums::v1::EventType;
use temper_proto::temporal::api::history::v1::HistoryEvent;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::{NamespaceId, ShardId, SystemClock, shard_for_workflow};
use temper_workflow::{Limits, pb};
use tonic::{Request, Response, Status};

use crate::{HistoryConfig, HistoryEngine, ShardContext};

pub(crate) const NS: &str = "ns-1";
pub(crate) const QUEUE: &str = "q-1";
/// Longest a test waits for something that should happen within milliseconds.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// A matching service that records the tasks history hands it, and can refuse them.
#[derive(Default)]
pub(crate) struct FakeMatching {
    pub workflow_tasks: Mutex<Vec<internal::AddWorkflowTaskRequest>>,
    pub activity_tasks: Mutex<Vec<internal::AddActivityTaskRequest>>,
    /// Answer AddWorkflowTask with `unavailable` (and record nothing) while set.
    pub refuse: AtomicBool,
    /// Every AddWorkflowTask call, refused ones included.
    pub workflow_task_calls: AtomicUsize,
}

impl FakeMatching {
    pub fn refusing() -> Arc<Self> {
        let m = Self::default();
        m.refuse.store(true, Ordering::SeqCst);
        Arc::new(m)
    }

    pub fn workflow_tasks(&self) -> Vec<internal::AddWorkflowTaskRequest> {
        self.workflow_tasks.lock().expect("fake matching").clone()
    }

    /// The workflow tasks handed over for one run.
    pub fn workflow_tasks_of(&self, run_id: &str) -> Vec<internal::AddWorkflowTaskRequest> {
        self.workflow_tasks()
            .into_iter()
            .filter(|t| t.execution.as_ref().is_some_and(|e| e.run_id == run_id))
            .collect()
    }
}

#[tonic::async_trait]
impl MatchingService for FakeMatching {
    async fn add_workflow_task(
        &self,
        request: Request<internal::AddWorkflowTaskRequest>,
    ) -> Result<Response<internal::AddWorkflowTaskResponse>, Status> {
        self.workflow_task_calls.fetch_add(1, Ordering::SeqCst);
        if self.refuse.load(Ordering::SeqCst) {
            return Err(Status::unavailable("fake matching refuses"));
        }
        self.workflow_tasks
            .lock()
            .expect("fake matching")
            .push(request.into_inner());
        Ok(Response::new(internal::AddWorkflowTaskResponse {}))
    }

    async fn add_activity_task(
        &self,
        request: Request<internal::AddActivityTaskRequest>,
    ) -> Result<Response<internal::AddActivityTaskResponse>, Status> {
        self.activity_tasks
            .lock()
            .expect("fake matching")
            .push(request.into_inner());
        Ok(Response::new(internal::AddActivityTaskResponse {}))
    }
}

/// A fresh in-memory store behind a fault injector.
pub(crate) fn store() -> FaultyStore {
    FaultyStore::new(
        SqliteStore::open_in_memory()
            .expect("in-memory sqlite")
            .into_persistence(),
    )
}

/// A history node over `store` owning all `num_shards` shards, talking to `matching`.
pub(crate) async fn engine(
    store: &FaultyStore,
    num_shards: u32,
    matching: Arc<FakeMatching>,
) -> Arc<HistoryEngine> {
    engine_with(store, num_shards, matching, Default::default()).await
}

/// [`engine`] with these memory settings.
pub(crate) async fn engine_with(
    store: &FaultyStore,
    num_shards: u32,
    matching: Arc<FakeMatching>,
    memory: crate::MemoryConfig,
) -> Arc<HistoryEngine> {
    let engine = HistoryEngine::new(
        HistoryConfig {
            num_shards,
            owner: "test-node".into(),
            limits: Limits::default(),
            memory,
        },
        store.clone().into_persistence(),
        Arc::new(SystemClock),
    );
    engine
        .acquire_all_shards(matching)
        .await
        .expect("acquire shards");
    engine
}

pub(crate) fn ns() -> NamespaceId {
    NamespaceId(NS.into())
}

pub(crate) fn key(workflow_id: &str, run_id: &str) -> ExecutionKey {
    ExecutionKey {
        namespace_id: ns(),
        workflow_id: workflow_id.into(),
        run_id: run_id.into(),
    }
}

pub(crate) fn execution(workflow_id: &str, run_id: &str) -> Option<WorkflowExecution> {
    Some(WorkflowExecution {
        workflow_id: workflow_id.into(),
        run_id: run_id.into(),
    })
}

/// A start request; `run_timeout` of zero means none.
pub(crate) fn start_request(
    workflow_id: &str,
    run_timeout: Duration,
) -> ws::StartWorkflowExecutionRequest {
    ws::StartWorkflowExecutionRequest {
        namespace: NS.into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: "wf".into() }),
        task_queue: Some(TaskQueue {
            name: QUEUE.into(),
            ..Default::default()
        }),
        workflow_run_timeout: temper_workflow::time::dur(run_timeout)
            .filter(|_| !run_timeout.is_zero()),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

/// Start a workflow through the API; returns its run id.
pub(crate) async fn start(
    engine: &HistoryEngine,
    workflow_id: &str,
    run_timeout: Duration,
) -> String {
    engine
        .start_workflow_execution(Request::new(internal::StartWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(start_request(workflow_id, run_timeout)),
            ..Default::default()
        }))
        .await
        .expect("start workflow")
        .into_inner()
        .run_id
}

/// Start the latest workflow task handed to `matching` for run `run` of `workflow_id`, as a
/// worker polling its queue would; returns what the worker's poll gets.
pub(crate) async fn start_workflow_task(
    engine: &HistoryEngine,
    matching: &FakeMatching,
    workflow_id: &str,
    run: &str,
) -> ws::PollWorkflowTaskQueueResponse {
    let task = eventually("a workflow task", || async {
        matching.workflow_tasks_of(run).into_iter().last()
    })
    .await;
    engine
        .record_workflow_task_started(Request::new(internal::RecordWorkflowTaskStartedRequest {
            target_deployment_version: None,
            namespace_id: NS.into(),
            execution: execution(workflow_id, run),
            scheduled_event_id: task.scheduled_event_id,
            request_id: uuid::Uuid::new_v4().to_string(),
            poll_request: Some(ws::PollWorkflowTaskQueueRequest {
                namespace: NS.into(),
                task_queue: task.task_queue.clone(),
                identity: "worker".into(),
                ..Default::default()
            }),
        }))
        .await
        .expect("record started")
        .into_inner()
        .response
        .expect("poll response")
}

pub(crate) async fn signal(
    engine: &HistoryEngine,
    workflow_id: &str,
    name: &str,
) -> Result<(), Status> {
    engine
        .signal_workflow_execution(Request::new(internal::SignalWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(ws::SignalWorkflowExecutionRequest {
                namespace: NS.into(),
                workflow_execution: execution(workflow_id, ""),
                signal_name: name.into(),
                request_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .map(|_| ())
}

pub(crate) async fn terminate(engine: &HistoryEngine, workflow_id: &str) -> Result<(), Status> {
    engine
        .terminate_workflow_execution(Request::new(internal::TerminateWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(ws::TerminateWorkflowExecutionRequest {
                namespace: NS.into(),
                workflow_execution: execution(workflow_id, ""),
                reason: "test".into(),
                ..Default::default()
            }),
        }))
        .await
        .map(|_| ())
}

/// The shard context that owns `workflow_id`.
pub(crate) fn shard_of(engine: &HistoryEngine, workflow_id: &str) -> Arc<ShardContext> {
    engine.shard(&ns(), workflow_id).expect("shard owned")
}

pub(crate) fn shard_id(workflow_id: &str, num_shards: u32) -> ShardId {
    shard_for_workflow(&ns(), workflow_id, num_shards)
}

/// Poll `f` until it returns `Some`, failing the test after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The stored mutable state of a run and its record version, read past every cache.
pub(crate) async fn stored_state(
    p: &Persistence,
    shard: ShardId,
    key: &ExecutionKey,
) -> (pb::MutableState, i64) {
    let rec = p
        .executions
        .get_execution(shard, key)
        .await
        .expect("get execution")
        .expect("execution exists");
    let ms = pb::MutableState::decode(rec.state.as_slice()).expect("decode state");
    (ms, rec.db_record_version)
}

/// The committed history of a run, read from the store with the read rule.
pub(crate) async fn stored_history(
    p: &Persistence,
    shard: ShardId,
    key: &ExecutionKey,
) -> Vec<HistoryEvent> {
    let (ms, _) = stored_state(p, shard, key).await;
    crate::shard::read_history(p, key, ms.next_event_id)
        .await
        .expect("read history")
}

pub(crate) fn count_of(events: &[HistoryEvent], t: EventType) -> usize {
    events.iter().filter(|e| e.event_type == t as i32).count()
}

pub(crate) fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).unwrap_or(EventType::Unspecified))
        .collect()
}

/// Every task of a category the store holds for a shard.
pub(crate) async fn stored_tasks(
    p: &Persistence,
    shard: ShardId,
    category: TaskCategory,
) -> Vec<TaskRecord> {
    p.executions
        .get_tasks(shard, category, TaskKey::MIN, TaskKey::MAX, 10_000)
        .await
        .expect("get tasks")
}

/// GetWorkflowExecutionHistory through the API.
pub(crate) async fn get_history(
    engine: &HistoryEngine,
    request: ws::GetWorkflowExecutionHistoryRequest,
    long_poll_timeout_ms: i64,
) -> Result<ws::GetWorkflowExecutionHistoryResponse, Status> {
    engine
        .get_workflow_execution_history(Request::new(
            internal::GetWorkflowExecutionHistoryRequest {
                namespace_id: NS.into(),
                request: Some(request),
                long_poll_timeout_ms,
            },
        ))
        .await
        .map(Response::into_inner)
}

/// The whole history of a run through the API (one page).
pub(crate) async fn api_history(
    engine: &HistoryEngine,
    workflow_id: &str,
    run_id: &str,
) -> Vec<HistoryEvent> {
    get_history(
        engine,
        ws::GetWorkflowExecutionHistoryRequest {
            namespace: NS.into(),
            execution: execution(workflow_id, run_id),
            ..Default::default()
        },
        0,
    )
    .await
    .expect("get history")
    .history
    .unwrap_or_default()
    .events
}
