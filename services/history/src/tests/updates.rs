//! Workflow updates through the history API against the store: a rejected update (and the
//! speculative workflow task that carried it) writes nothing, an accepted one is found by id
//! after the node restarts.

use prost::Message as _;
use temper_proto::temporal::api::command::v1::{
    Command, ProtocolMessageCommandAttributes, command,
};
use temper_proto::temporal::api::enums::v1::{EventType, UpdateWorkflowExecutionLifecycleStage};
use temper_proto::temporal::api::protocol::v1::Message;
use temper_proto::temporal::api::update::v1::{
    Acceptance, Input, Meta, Outcome, Rejection, Request as UpdateRequest,
    Response as UpdateResponse, WaitPolicy, outcome,
};
use temper_proto::wkt::Any;

use super::*;

fn pack<M: prost::Name>(m: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{}", M::full_name()),
        value: m.encode_to_vec(),
    }
}

fn update_request(workflow_id: &str, update_id: &str) -> internal::UpdateWorkflowExecutionRequest {
    internal::UpdateWorkflowExecutionRequest {
        namespace_id: NS.into(),
        request: Some(ws::UpdateWorkflowExecutionRequest {
            namespace: NS.into(),
            workflow_execution: execution(workflow_id, ""),
            request: Some(UpdateRequest {
                meta: Some(Meta {
                    update_id: update_id.into(),
                    identity: "client".into(),
                }),
                input: Some(Input {
                    name: "u".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            wait_policy: Some(WaitPolicy {
                lifecycle_stage: UpdateWorkflowExecutionLifecycleStage::Completed as i32,
            }),
            ..Default::default()
        }),
    }
}

/// Send update `update_id` to workflow "wf" in the background (the call answers once the
/// update completes).
fn send_update(
    engine: &Arc<HistoryEngine>,
    update_id: &str,
) -> tokio::task::JoinHandle<Result<tonic::Response<ws::UpdateWorkflowExecutionResponse>, Status>> {
    let engine = engine.clone();
    let request = update_request("wf", update_id);
    tokio::spawn(async move {
        engine
            .update_workflow_execution(Request::new(request))
            .await
    })
}

/// Take the next workflow task matching was handed for `run` (the `n`th one) and start it.
async fn take_task(
    engine: &HistoryEngine,
    matching: &FakeMatching,
    run: &str,
    n: usize,
) -> ws::PollWorkflowTaskQueueResponse {
    let task = eventually("a workflow task for matching", || async {
        matching.workflow_tasks_of(run).into_iter().nth(n)
    })
    .await;
    engine
        .record_workflow_task_started(Request::new(internal::RecordWorkflowTaskStartedRequest {
            target_deployment_version: None,
            namespace_id: NS.into(),
            execution: execution("wf", run),
            scheduled_event_id: task.scheduled_event_id,
            request_id: format!("poll-{n}"),
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

async fn complete(
    engine: &HistoryEngine,
    task: &ws::PollWorkflowTaskQueueResponse,
    commands: Vec<Command>,
    messages: Vec<Message>,
) -> ws::RespondWorkflowTaskCompletedResponse {
    engine
        .respond_workflow_task_completed(Request::new(
            internal::RespondWorkflowTaskCompletedRequest {
                namespace_id: NS.into(),
                search_attributes: None,
                request: Some(ws::RespondWorkflowTaskCompletedRequest {
                    task_token: task.task_token.clone(),
                    identity: "worker".into(),
                    namespace: NS.into(),
                    commands,
                    messages,
                    capabilities: Some(ws::respond_workflow_task_completed_request::Capabilities {
                        discard_speculative_workflow_task_with_events: true,
                    }),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("complete workflow task")
        .into_inner()
}

fn protocol(message_id: &str) -> Command {
    Command {
        attributes: Some(command::Attributes::ProtocolMessageCommandAttributes(
            ProtocolMessageCommandAttributes {
                message_id: message_id.into(),
            },
        )),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_update_writes_nothing_to_the_store() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let first = take_task(&engine, &matching, &run, 0).await;
    complete(&engine, &first, vec![], vec![]).await;
    let key = key("wf", &run);
    let (state_before, version_before) = stored_state(store.inner(), ShardId(1), &key).await;
    let history_before = stored_history(store.inner(), ShardId(1), &key).await;
    let transfer_before = stored_tasks(store.inner(), ShardId(1), TaskCategory::Transfer).await;

    let call = send_update(&engine, "u1");
    // The speculative task goes to matching directly and carries the update.
    let task = take_task(&engine, &matching, &run, 1).await;
    assert_eq!(task.messages.len(), 1);
    assert_eq!(task.messages[0].protocol_instance_id, "u1");
    let events = task.history.clone().unwrap_or_default().events;
    assert_eq!(
        types(&events[events.len() - 2..]),
        vec![
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted
        ]
    );
    assert_eq!(events.last().map(|e| e.event_id), Some(6));

    let rejection = Message {
        id: "u1/reject".into(),
        protocol_instance_id: "u1".into(),
        body: Some(pack(&Rejection {
            rejected_request_message_id: "u1/request".into(),
            failure: Some(Default::default()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let resp = complete(&engine, &task, vec![], vec![rejection]).await;
    assert_eq!(resp.reset_history_event_id, 3);
    let answer = call
        .await
        .expect("join")
        .expect("update answered")
        .into_inner();
    assert!(matches!(
        answer.outcome.and_then(|o| o.value),
        Some(outcome::Value::Failure(_))
    ));

    let (state_after, version_after) = stored_state(store.inner(), ShardId(1), &key).await;
    assert_eq!(version_after, version_before, "no commit");
    assert_eq!(state_after, state_before);
    assert_eq!(
        stored_history(store.inner(), ShardId(1), &key).await,
        history_before
    );
    assert_eq!(
        stored_tasks(store.inner(), ShardId(1), TaskCategory::Transfer)
            .await
            .len(),
        transfer_before.len()
    );
    assert_eq!(
        count_of(
            &api_history(&engine, "wf", &run).await,
            EventType::WorkflowTaskScheduled
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_update_is_found_by_id_after_a_restart() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let first_node = engine(&store, 1, matching.clone()).await;
    let run = start(&first_node, "wf", Duration::ZERO).await;
    let first = take_task(&first_node, &matching, &run, 0).await;
    complete(&first_node, &first, vec![], vec![]).await;
    let call = send_update(&first_node, "u1");
    let task = take_task(&first_node, &matching, &run, 1).await;
    let request = task.messages[0]
        .body
        .as_ref()
        .map(|b| UpdateRequest::decode(b.value.as_slice()).expect("request"))
        .expect("body");
    let accept = Message {
        id: "u1/accept".into(),
        protocol_instance_id: "u1".into(),
        body: Some(pack(&Acceptance {
            accepted_request_message_id: "u1/request".into(),
            accepted_request_sequencing_event_id: 5,
            accepted_request: Some(request),
        })),
        ..Default::default()
    };
    let success = Outcome {
        value: Some(outcome::Value::Success(Default::default())),
    };
    let respond = Message {
        id: "u1/complete".into(),
        protocol_instance_id: "u1".into(),
        body: Some(pack(&UpdateResponse {
            meta: Some(Meta {
                update_id: "u1".into(),
                identity: "worker".into(),
            }),
            outcome: Some(success.clone()),
        })),
        ..Default::default()
    };
    complete(
        &first_node,
        &task,
        vec![protocol("u1/accept"), protocol("u1/complete")],
        vec![accept, respond],
    )
    .await;
    let answer = call.await.expect("join").expect("answered").into_inner();
    assert_eq!(answer.outcome, Some(success.clone()));
    first_node.shutdown().await;
    drop(first_node);

    let second_node = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let again = second_node
        .update_workflow_execution(Request::new(update_request("wf", "u1")))
        .await
        .expect("the same update")
        .into_inner();
    assert_eq!(again.outcome, Some(success.clone()));
    assert_eq!(
        again.stage,
        UpdateWorkflowExecutionLifecycleStage::Completed as i32
    );
    let polled = second_node
        .poll_workflow_execution_update(Request::new(
            internal::PollWorkflowExecutionUpdateRequest {
                namespace_id: NS.into(),
                request: Some(ws::PollWorkflowExecutionUpdateRequest {
                    namespace: NS.into(),
                    update_ref: Some(temper_proto::temporal::api::update::v1::UpdateRef {
                        workflow_execution: execution("wf", ""),
                        update_id: "u1".into(),
                    }),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("poll")
        .into_inner();
    assert_eq!(polled.outcome, Some(success));
    let unknown = second_node
        .poll_workflow_execution_update(Request::new(
            internal::PollWorkflowExecutionUpdateRequest {
                namespace_id: NS.into(),
                request: Some(ws::PollWorkflowExecutionUpdateRequest {
                    namespace: NS.into(),
                    update_ref: Some(temper_proto::temporal::api::update::v1::UpdateRef {
                        workflow_execution: execution("wf", ""),
                        update_id: "nope".into(),
                    }),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect_err("unknown update");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// A signal that lands between a speculative task starting and the poll response being read
/// stores the task's events (it becomes a normal task). The response must carry them once:
/// a worker that sees them twice treats the update as replayed and answers with an
/// acceptance command but no acceptance message, which fails the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_a_speculative_poll_does_not_repeat_its_events() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let first = take_task(&engine, &matching, &run, 0).await;
    complete(&engine, &first, vec![], vec![]).await;

    let _call = send_update(&engine, "u1");
    let task = take_task(&engine, &matching, &run, 1).await;
    let key = key("wf", &run);
    let shard = engine
        .shard(&NamespaceId(NS.into()), "wf")
        .expect("shard owned");
    // The state as the task started: speculative, its events unstored.
    let at_start = shard.snapshot(&key).await.expect("state");
    assert!(temper_workflow::speculative::pending(&at_start).is_some());

    signal(&engine, "wf", "late").await.expect("signal");

    let response = crate::api::workflow_task::poll_response(
        &shard,
        &key,
        &at_start,
        false,
        task.messages.clone(),
    )
    .await
    .expect("poll response");
    let events = response.history.unwrap_or_default().events;
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        (1..=task.started_event_id).collect::<Vec<_>>(),
        "each event once, in order, up to the task's start"
    );
    let before = task.history.unwrap_or_default().events;
    assert_eq!(
        types(&before),
        types(&events),
        "the same history the worker got before the signal"
    );
}
