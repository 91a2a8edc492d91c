//! PrepareQueryTask: the query task goes to the sticky queue without history, or to the
//! normal queue with the full history; it waits for the first workflow task; closed runs are
//! rejected or not ready as in Temporal.

use temper_proto::temporal::api::enums::v1::{
    EventType, QueryRejectCondition, TaskQueueKind, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::query::v1::WorkflowQuery;
use temper_proto::temporal::api::taskqueue::v1::StickyExecutionAttributes;
use tonic::Code;

use super::*;

fn query_request(workflow_id: &str, reject: QueryRejectCondition) -> ws::QueryWorkflowRequest {
    ws::QueryWorkflowRequest {
        namespace: NS.into(),
        execution: execution(workflow_id, ""),
        query: Some(WorkflowQuery {
            query_type: "state".into(),
            ..Default::default()
        }),
        query_reject_condition: reject as i32,
    }
}

async fn prepare(
    engine: &HistoryEngine,
    request: ws::QueryWorkflowRequest,
    skip_sticky: bool,
    wait_ms: i64,
) -> Result<internal::PrepareQueryTaskResponse, Status> {
    engine
        .prepare_query_task(Request::new(internal::PrepareQueryTaskRequest {
            namespace_id: NS.into(),
            request: Some(request),
            skip_sticky,
            wait_timeout_ms: wait_ms,
        }))
        .await
        .map(Response::into_inner)
}

/// Run the pending workflow task of `run` to completion as a worker with sticky queue
/// `sticky-1` (no commands).
async fn complete_workflow_task(engine: &HistoryEngine, matching: &FakeMatching, run: &str) {
    let started = start_workflow_task(engine, matching, "wf", run).await;
    engine
        .respond_workflow_task_completed(Request::new(
            internal::RespondWorkflowTaskCompletedRequest {
                namespace_id: NS.into(),
                search_attributes: None,
                request: Some(ws::RespondWorkflowTaskCompletedRequest {
                    task_token: started.task_token,
                    identity: "worker".into(),
                    namespace: NS.into(),
                    sticky_attributes: Some(StickyExecutionAttributes {
                        worker_task_queue: Some(TaskQueue {
                            name: "sticky-1".into(),
                            kind: TaskQueueKind::Sticky as i32,
                            normal_name: QUEUE.into(),
                        }),
                        schedule_to_start_timeout: temper_workflow::time::dur(Duration::from_secs(
                            7,
                        )),
                    }),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("complete workflow task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_task_has_no_history_and_the_normal_one_has_all_of_it() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    complete_workflow_task(&engine, &matching, &run).await;
    signal(&engine, "wf", "s").await.expect("signal");
    // The signal's workflow task is pending: the query waits for it (read-after-write).
    let err = prepare(
        &engine,
        query_request("wf", QueryRejectCondition::None),
        false,
        50,
    )
    .await
    .expect_err("a workflow task is in flight");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    complete_workflow_task(&engine, &matching, &run).await;

    let sticky = prepare(
        &engine,
        query_request("wf", QueryRejectCondition::None),
        false,
        1000,
    )
    .await
    .expect("prepare");
    assert_eq!(sticky.query_rejected, None);
    let q = sticky.task_queue.expect("queue");
    assert_eq!(
        (q.name.as_str(), q.kind),
        ("sticky-1", TaskQueueKind::Sticky as i32)
    );
    assert_eq!(q.normal_name, QUEUE);
    assert_eq!(
        sticky.sticky_schedule_to_start_timeout,
        temper_workflow::time::dur(Duration::from_secs(7))
    );
    assert_eq!(sticky.status, WorkflowExecutionStatus::Running as i32);
    let task = sticky.task.expect("task");
    assert_eq!(task.history.expect("history").events, vec![]);
    assert_eq!(task.previous_started_event_id, 7);
    assert_eq!(task.started_event_id, 0);
    assert_eq!(task.attempt, 1);
    assert_eq!(task.query.expect("query").query_type, "state");
    assert_eq!(task.workflow_execution, execution("wf", &run));
    assert_eq!(task.workflow_type.expect("type").name, "wf");
    assert!(task.task_token.is_empty(), "matching adds the token");

    let normal = prepare(
        &engine,
        query_request("wf", QueryRejectCondition::None),
        true,
        1000,
    )
    .await
    .expect("prepare");
    let q = normal.task_queue.expect("queue");
    assert_eq!(
        (q.name.as_str(), q.kind),
        (QUEUE, TaskQueueKind::Normal as i32)
    );
    assert_eq!(normal.sticky_schedule_to_start_timeout, None);
    let task = normal.task.expect("task");
    let events = task.history.expect("history").events;
    // Started, WFT scheduled/started/completed, the signal and the WFT that took it.
    assert_eq!(
        types(&events),
        vec![
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
        ]
    );
    assert!(task.next_page_token.is_empty());
    assert_eq!(task.previous_started_event_id, 7);
    assert_eq!(
        task.workflow_execution_task_queue.expect("queue").name,
        QUEUE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_first_workflow_task_to_complete() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;

    let err = prepare(
        &engine,
        query_request("wf", QueryRejectCondition::None),
        false,
        50,
    )
    .await
    .expect_err("no workflow task completed yet");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(
        err.message(),
        "query timed out before a worker could process it"
    );

    let waiting = tokio::spawn({
        let engine = engine.clone();
        async move {
            prepare(
                &engine,
                query_request("wf", QueryRejectCondition::None),
                false,
                10_000,
            )
            .await
        }
    });
    complete_workflow_task(&engine, &matching, &run).await;
    let prepared = waiting
        .await
        .expect("task")
        .expect("prepared once the task completed");
    assert_eq!(
        prepared.task_queue.expect("queue").kind,
        TaskQueueKind::Sticky as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_runs_are_rejected_or_not_ready() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;

    // Closed before any workflow task: nobody can answer.
    start(&engine, "early", Duration::ZERO).await;
    terminate(&engine, "early").await.expect("terminate");
    let err = prepare(
        &engine,
        query_request("early", QueryRejectCondition::None),
        false,
        1000,
    )
    .await
    .expect_err("not ready");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "Workflow execution closed before WorkflowTaskStarted event"
    );
    let rejected = prepare(
        &engine,
        query_request("early", QueryRejectCondition::NotOpen),
        false,
        1000,
    )
    .await
    .expect("rejected");
    assert_eq!(
        rejected.query_rejected.expect("rejected").status,
        WorkflowExecutionStatus::Terminated as i32
    );
    assert_eq!(rejected.task, None);

    let run = start(&engine, "wf", Duration::ZERO).await;
    complete_workflow_task(&engine, &matching, &run).await;
    terminate(&engine, "wf").await.expect("terminate");
    let rejected = prepare(
        &engine,
        query_request("wf", QueryRejectCondition::NotCompletedCleanly),
        false,
        1000,
    )
    .await
    .expect("rejected");
    assert_eq!(
        rejected.query_rejected.expect("rejected").status,
        WorkflowExecutionStatus::Terminated as i32
    );
    // Without a reject condition a closed run is queryable.
    let prepared = prepare(
        &engine,
        query_request("wf", QueryRejectCondition::None),
        false,
        1000,
    )
    .await
    .expect("prepared");
    assert_eq!(prepared.status, WorkflowExecutionStatus::Terminated as i32);
    assert!(prepared.task.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workflows_and_bad_queries() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let err = prepare(
        &engine,
        query_request("nope", QueryRejectCondition::None),
        false,
        1000,
    )
    .await
    .expect_err("unknown workflow");
    assert_eq!(err.code(), Code::NotFound);

    start(&engine, "wf", Duration::ZERO).await;
    let mut r = query_request("wf", QueryRejectCondition::None);
    r.query = Some(WorkflowQuery::default());
    let err = prepare(&engine, r, false, 1000)
        .await
        .expect_err("no query type");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "QueryType is not set on request.");
}
