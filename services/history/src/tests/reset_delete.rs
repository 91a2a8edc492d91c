//! DeleteWorkflowExecution, retention and ResetWorkflowExecution through the engine: a
//! deleted run leaves nothing behind (state, current-run pointer, history, cache), deleting
//! is idempotent and survives a crash half-way, the run's leftover tasks do nothing, closed
//! runs are kept for the namespace's retention; a reset is idempotent by request id and keeps
//! the signals buffered in the run it terminates.

use prost::Message;
use temper_persistence::faulty::Op;
use temper_persistence::{NamespaceRecord, StoreError};
use temper_proto::temporal::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use temper_proto::temporal::api::history::v1::history_event::Attributes;
use temper_proto::temporal::api::namespace::v1::NamespaceConfig;
use tonic::Code;

use super::*;
use crate::writer::branch_of;

async fn delete(engine: &HistoryEngine, workflow_id: &str, run_id: &str) -> Result<(), Status> {
    engine
        .delete_workflow_execution(Request::new(internal::DeleteWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(ws::DeleteWorkflowExecutionRequest {
                namespace: NS.into(),
                workflow_execution: execution(workflow_id, run_id),
            }),
        }))
        .await
        .map(|_| ())
}

async fn describe(engine: &HistoryEngine, workflow_id: &str, run_id: &str) -> Result<i32, Status> {
    engine
        .describe_workflow_execution(Request::new(internal::DescribeWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(ws::DescribeWorkflowExecutionRequest {
                namespace: NS.into(),
                execution: execution(workflow_id, run_id),
            }),
        }))
        .await
        .map(|r| {
            r.into_inner()
                .workflow_execution_info
                .map(|i| i.status)
                .unwrap_or_default()
        })
}

/// Wait until describing the run answers NOT_FOUND.
async fn gone(engine: &HistoryEngine, workflow_id: &str, run_id: &str) {
    eventually("the run is deleted", || async {
        matches!(describe(engine, workflow_id, run_id).await, Err(s) if s.code() == Code::NotFound)
            .then_some(())
    })
    .await;
}

/// How many history nodes the store keeps for a run.
async fn history_nodes(p: &Persistence, run_id: &str) -> usize {
    p.history
        .read_history_nodes(&branch_of(&key("wf", run_id)), 1, i64::MAX, None, 1000)
        .await
        .expect("read history nodes")
        .len()
}

/// Nothing of the run is left in the store.
async fn nothing_left(p: &Persistence, workflow_id: &str, run_id: &str) {
    let shard = shard_id(workflow_id, 1);
    let k = key(workflow_id, run_id);
    assert_eq!(
        p.executions.get_execution(shard, &k).await.expect("get"),
        None
    );
    assert_eq!(
        p.executions
            .get_current_execution(shard, &ns(), workflow_id)
            .await
            .expect("get current"),
        None
    );
    // The delete task removes the state first and the history branch after it, so a
    // describe can answer NotFound a moment before the branch is gone.
    eventually("the run's history is deleted", || async {
        (history_nodes(p, run_id).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_closed_run_leaves_nothing_and_frees_its_id() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    terminate(&engine, "wf").await.expect("terminate");
    assert!(history_nodes(store.inner(), &run).await > 0);

    delete(&engine, "wf", &run).await.expect("delete");
    gone(&engine, "wf", &run).await;
    nothing_left(store.inner(), "wf", &run).await;
    let err = delete(&engine, "wf", &run).await.expect_err("deleted");
    assert_eq!(err.code(), Code::NotFound);
    let err = describe(&engine, "wf", "")
        .await
        .expect_err("no current run");
    assert_eq!(err.code(), Code::NotFound);

    let again = start(&engine, "wf", Duration::ZERO).await;
    assert_ne!(again, run);
    assert!(describe(&engine, "wf", "").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_run_terminates_it_and_its_tasks_do_nothing() {
    let store = store();
    // Matching refuses the run's first workflow task, so its transfer task is still being
    // retried when the run is deleted; a run timeout is still pending too.
    let matching = FakeMatching::refusing();
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::from_millis(800)).await;
    eventually("matching was tried", || async {
        (matching.workflow_task_calls.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;

    delete(&engine, "wf", "")
        .await
        .expect("delete the current run");
    gone(&engine, "wf", &run).await;
    nothing_left(store.inner(), "wf", &run).await;

    matching.refuse.store(false, Ordering::SeqCst);
    eventually("the leftover tasks are done and gone", || async {
        let transfer = stored_tasks(store.inner(), ShardId(1), TaskCategory::Transfer).await;
        // All but the retention delete of the terminated run, due in a day (it will find
        // nothing to delete).
        let timers: Vec<pb::TimerTask> =
            stored_tasks(store.inner(), ShardId(1), TaskCategory::Timer)
                .await
                .iter()
                .filter_map(|t| pb::TimerTask::decode(t.data.as_slice()).ok())
                .filter(|t| t.kind != pb::TimerTaskKind::DeleteHistory as i32)
                .collect();
        (transfer.is_empty() && timers.is_empty()).then_some(())
    })
    .await;
    assert!(
        matching.workflow_tasks_of(&run).is_empty(),
        "a deleted run's workflow task never reaches matching"
    );
    nothing_left(store.inner(), "wf", &run).await;
    assert!(!shard_of(&engine, "wf").cancel.is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_cut_short_by_a_crash_is_finished_by_the_next_owner() {
    let store = store();
    let first = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&first, "wf", Duration::ZERO).await;
    terminate(&first, "wf").await.expect("terminate");
    // The state goes, then deleting the history keeps failing until the node stops.
    store.fail(
        Op::DeleteHistoryBranch,
        usize::MAX,
        StoreError::Unavailable("injected".into()),
    );
    delete(&first, "wf", &run).await.expect("delete");
    eventually("the state is deleted", || async {
        store
            .inner()
            .executions
            .get_execution(ShardId(1), &key("wf", &run))
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    eventually("the history deletion was tried", || async {
        (store.calls(Op::DeleteHistoryBranch) > 0).then_some(())
    })
    .await;
    first.shutdown().await;
    drop(first);
    assert!(history_nodes(store.inner(), &run).await > 0, "history left");

    store.clear();
    let _second = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    eventually("the next owner deletes the history", || async {
        (history_nodes(store.inner(), &run).await == 0).then_some(())
    })
    .await;
    nothing_left(store.inner(), "wf", &run).await;
}

/// Register namespace `NS` in the store with `retention`.
async fn namespace_with_retention(p: &Persistence, retention: Duration) {
    let detail = pb::NamespaceDetail {
        config: Some(NamespaceConfig {
            workflow_execution_retention_ttl: temper_workflow::time::dur(retention),
            ..Default::default()
        }),
        ..Default::default()
    };
    p.namespaces
        .create_namespace(&NamespaceRecord {
            id: ns(),
            name: "ns-name".into(),
            detail: detail.encode_to_vec(),
            notification_version: 1,
        })
        .await
        .expect("create namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_run_is_kept_for_the_namespace_retention_then_deleted() {
    let store = store();
    namespace_with_retention(store.inner(), Duration::from_millis(1500)).await;
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let closed_at = temper_types::Clock::now(&temper_types::SystemClock);
    terminate(&engine, "wf").await.expect("terminate");

    let retention_timers: Vec<TaskKey> =
        stored_tasks(store.inner(), ShardId(1), TaskCategory::Timer)
            .await
            .into_iter()
            .filter(|t| {
                pb::TimerTask::decode(t.data.as_slice()).is_ok_and(|t| {
                    t.kind == pb::TimerTaskKind::DeleteHistory as i32 && t.run_id == run
                })
            })
            .map(|t| t.key)
            .collect();
    assert_eq!(
        retention_timers.len(),
        1,
        "one retention delete per closed run"
    );
    let due = crate::writer::fire_time(&retention_timers[0]);
    let expected = closed_at + Duration::from_millis(1500);
    let slack = Duration::from_millis(500);
    assert!(
        due + slack > expected && due < expected + slack,
        "due {due:?}, expected about {expected:?}"
    );
    // Readable until then.
    assert!(describe(&engine, "wf", &run).await.is_ok());
    assert!(!api_history(&engine, "wf", &run).await.is_empty());

    gone(&engine, "wf", &run).await;
    assert!(
        temper_types::Clock::now(&temper_types::SystemClock)
            >= expected - Duration::from_millis(100)
    );
    nothing_left(store.inner(), "wf", &run).await;
}

// ---------------------------------------------------------------------------- reset

async fn reset(
    engine: &HistoryEngine,
    run_id: &str,
    event_id: i64,
    request_id: &str,
) -> Result<String, Status> {
    engine
        .reset_workflow_execution(Request::new(internal::ResetWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(ws::ResetWorkflowExecutionRequest {
                namespace: NS.into(),
                workflow_execution: execution("wf", run_id),
                reason: "again".into(),
                workflow_task_finish_event_id: event_id,
                request_id: request_id.into(),
                ..Default::default()
            }),
        }))
        .await
        .map(|r| r.into_inner().run_id)
}

/// Start the pending workflow task of the current run; returns its task token.
async fn start_workflow_task(engine: &HistoryEngine, run: &str) -> Vec<u8> {
    let ms = shard_of(engine, "wf")
        .snapshot(&key("wf", run))
        .await
        .expect("state");
    let wt = ms.workflow_task.expect("a workflow task is pending");
    engine
        .record_workflow_task_started(Request::new(internal::RecordWorkflowTaskStartedRequest {
            target_deployment_version: None,
            namespace_id: NS.into(),
            execution: execution("wf", run),
            scheduled_event_id: wt.scheduled_event_id,
            request_id: uuid::Uuid::new_v4().to_string(),
            poll_request: Some(ws::PollWorkflowTaskQueueRequest {
                namespace: NS.into(),
                identity: "worker".into(),
                ..Default::default()
            }),
        }))
        .await
        .expect("record started")
        .into_inner()
        .response
        .expect("poll response")
        .task_token
}

async fn complete_workflow_task(engine: &HistoryEngine, run: &str) {
    let token = start_workflow_task(engine, run).await;
    engine
        .respond_workflow_task_completed(Request::new(
            internal::RespondWorkflowTaskCompletedRequest {
                namespace_id: NS.into(),
                search_attributes: None,
                request: Some(ws::RespondWorkflowTaskCompletedRequest {
                    task_token: token,
                    identity: "worker".into(),
                    namespace: NS.into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("complete workflow task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_idempotent_by_request_id_and_keeps_buffered_signals() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    complete_workflow_task(&engine, &run).await; // events 3, 4
    signal(&engine, "wf", "first").await.expect("signal"); // 5, and a task at 6
    start_workflow_task(&engine, &run).await; // 7: in flight
    signal(&engine, "wf", "second").await.expect("signal"); // buffered

    let new_run = reset(&engine, &run, 4, "reset-1").await.expect("reset");
    assert_ne!(new_run, run);
    assert_eq!(
        reset(&engine, &run, 4, "reset-1").await.expect("repeat"),
        new_run,
        "the same request id answers with the same run"
    );

    let old = api_history(&engine, "wf", &run).await;
    assert_eq!(
        types(&old)[6..],
        [
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowExecutionTerminated,
        ],
        "the buffered signal is written when the old run ends"
    );
    let new = api_history(&engine, "wf", &new_run).await;
    assert_eq!(
        types(&new),
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
        ]
    );
    let names: Vec<String> = new
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) => {
                Some(a.signal_name.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(names, ["first", "second"]);
    match &new[3].attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
            assert_eq!(a.cause, WorkflowTaskFailedCause::ResetWorkflow as i32);
            assert_eq!(
                (a.base_run_id.as_str(), a.new_run_id.as_str()),
                (run.as_str(), new_run.as_str())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let current = store
        .inner()
        .executions
        .get_current_execution(ShardId(1), &ns(), "wf")
        .await
        .expect("current")
        .expect("a current run");
    assert_eq!(current.run_id, new_run);
    assert_eq!(current.state, temper_persistence::run_state::RUNNING);

    // The new run goes on: its workflow task can be started and completed.
    complete_workflow_task(&engine, &new_run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_refuses_bad_event_ids_and_unknown_runs() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    complete_workflow_task(&engine, &run).await;
    for bad in [0, 1, 5, 99] {
        let err = reset(&engine, &run, bad, &format!("r-{bad}"))
            .await
            .expect_err("bad event id");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    let err = reset(&engine, "no-such-run", 4, "r")
        .await
        .expect_err("unknown run");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        describe(&engine, "wf", &run).await.expect("still there"),
        temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus::Running as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_delete_past_the_timer_window_waits_in_the_store() {
    let store = store();
    let first = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    // A timer inside the window that fires and is acknowledged, and a closed run whose
    // retention delete (the default day) lies past the window: held by the store alone.
    let short = start(&first, "short", Duration::from_millis(200)).await;
    let run = start(&first, "wf", Duration::ZERO).await;
    terminate(&first, "wf").await.expect("terminate");
    let retention_timers = |p: Persistence| async move {
        stored_tasks(&p, ShardId(1), TaskCategory::Timer)
            .await
            .iter()
            .filter_map(|t| pb::TimerTask::decode(t.data.as_slice()).ok())
            .filter(|t| t.kind == pb::TimerTaskKind::DeleteHistory as i32)
            .map(|t| t.run_id)
            .collect::<Vec<_>>()
    };
    eventually(
        "the short run's timer is acknowledged and deleted",
        || async {
            let left: Vec<pb::TimerTask> =
                stored_tasks(store.inner(), ShardId(1), TaskCategory::Timer)
                    .await
                    .iter()
                    .filter_map(|t| pb::TimerTask::decode(t.data.as_slice()).ok())
                    .filter(|t| {
                        t.run_id == short && t.kind != pb::TimerTaskKind::DeleteHistory as i32
                    })
                    .collect();
            left.is_empty().then_some(())
        },
    )
    .await;
    let mut expected = vec![short.clone(), run.clone()];
    expected.sort();
    let mut stored = retention_timers(store.inner().clone()).await;
    stored.sort();
    assert_eq!(
        stored, expected,
        "acknowledging never deletes past the window"
    );

    first.shutdown().await;
    drop(first);
    let second = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut stored = retention_timers(store.inner().clone()).await;
    stored.sort();
    assert_eq!(stored, expected, "nor does a new owner");
    assert!(
        describe(&second, "wf", &run).await.is_ok(),
        "kept until its retention"
    );
}
