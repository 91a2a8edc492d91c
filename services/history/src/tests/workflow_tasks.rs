//! RespondWorkflowTaskCompleted answers as Temporal does when the task fails on the server.

use temper_proto::temporal::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, command::Attributes,
};
use temper_proto::temporal::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use tonic::Code;

use super::*;

/// A close refused because a signal arrived while the task ran is INVALID_ARGUMENT
/// "UnhandledCommand": sdk-core evicts the run on exactly that and replays it with the
/// signal. Answering OK let a worker keep the refused run in its cache and send the same
/// close again without the signal (a lost signal in a continue-as-new chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_refused_for_new_events_is_unhandled_command() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let started = start_workflow_task(&engine, &matching, "wf", &run).await;
    signal(&engine, "wf", "arrives-meanwhile")
        .await
        .expect("signal");

    let err = engine
        .respond_workflow_task_completed(Request::new(
            internal::RespondWorkflowTaskCompletedRequest {
                namespace_id: NS.into(),
                search_attributes: None,
                request: Some(ws::RespondWorkflowTaskCompletedRequest {
                    task_token: started.task_token,
                    identity: "worker".into(),
                    namespace: NS.into(),
                    commands: vec![Command {
                        attributes: Some(Attributes::CompleteWorkflowExecutionCommandAttributes(
                            CompleteWorkflowExecutionCommandAttributes::default(),
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect_err("the close is refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "UnhandledCommand");

    // The failure is stored, the signal after it, and a new task for the worker to see it.
    let shard = shard_id("wf", 1);
    let history = stored_history(store.inner(), shard, &key("wf", &run)).await;
    assert_eq!(
        types(&history)[3..],
        [
            EventType::WorkflowTaskFailed,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
        ]
    );
    let failed = history[3].attributes.clone();
    assert!(matches!(
        failed,
        Some(temper_proto::temporal::api::history::v1::history_event::Attributes::WorkflowTaskFailedEventAttributes(a))
            if a.cause == WorkflowTaskFailedCause::UnhandledCommand as i32
    ));
}
