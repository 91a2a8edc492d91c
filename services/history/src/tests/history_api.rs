//! GetWorkflowExecutionHistory: pages and their tokens, the close-event filter, and the
//! wait-for-new-events long poll with its timeout.

use temper_proto::temporal::api::enums::v1::{EventType, HistoryEventFilterType};
use tonic::Code;

use super::*;

fn request(workflow_id: &str, run_id: &str) -> ws::GetWorkflowExecutionHistoryRequest {
    ws::GetWorkflowExecutionHistoryRequest {
        namespace: NS.into(),
        execution: execution(workflow_id, run_id),
        ..Default::default()
    }
}

fn ids(events: &[HistoryEvent]) -> Vec<i64> {
    events.iter().map(|e| e.event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_their_tokens_to_the_end() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    for i in 0..5 {
        signal(&engine, "wf", &format!("s{i}"))
            .await
            .expect("signal");
    }

    let mut pages = Vec::new();
    let mut token = Vec::new();
    loop {
        let r = get_history(
            &engine,
            ws::GetWorkflowExecutionHistoryRequest {
                maximum_page_size: 3,
                next_page_token: token,
                ..request("wf", &run)
            },
            0,
        )
        .await
        .expect("page");
        pages.push(ids(&r.history.unwrap_or_default().events));
        token = r.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
    // Every page together is the whole history, in order.
    assert_eq!(
        ids(&api_history(&engine, "wf", &run).await),
        (1..=7).collect::<Vec<_>>()
    );

    let err = get_history(
        &engine,
        ws::GetWorkflowExecutionHistoryRequest {
            next_page_token: b"not a token".to_vec(),
            ..request("wf", &run)
        },
        0,
    )
    .await
    .expect_err("a garbage token");
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_close_event_returns_only_it_once_the_run_closes() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let shard = shard_of(&engine, "wf");

    let poll = {
        let engine = engine.clone();
        let run = run.clone();
        tokio::spawn(async move {
            get_history(
                &engine,
                ws::GetWorkflowExecutionHistoryRequest {
                    wait_new_event: true,
                    history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
                    ..request("wf", &run)
                },
                10_000,
            )
            .await
        })
    };
    let k = key("wf", &run);
    eventually("the long poll waits", || async {
        (shard.entry(&k).changes.receiver_count() > 0).then_some(())
    })
    .await;
    // A new event that is not the close event does not answer the poll.
    signal(&engine, "wf", "sig").await.expect("signal");
    assert!(!poll.is_finished());

    let terminator = {
        let engine = engine.clone();
        tokio::spawn(async move { terminate(&engine, "wf").await })
    };
    let r = poll.await.expect("poll task").expect("poll");
    terminator
        .await
        .expect("terminate task")
        .expect("terminate");
    let events = r.history.unwrap_or_default().events;
    assert_eq!(types(&events), vec![EventType::WorkflowExecutionTerminated]);
    assert_eq!(
        events[0].event_id, 4,
        "started, task scheduled, signaled, terminated"
    );
    assert!(
        r.next_page_token.is_empty(),
        "nothing follows the close event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_that_times_out_returns_an_empty_page_and_a_token() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let wait =
        |token: Vec<u8>, filter: HistoryEventFilterType| ws::GetWorkflowExecutionHistoryRequest {
            wait_new_event: true,
            next_page_token: token,
            history_event_filter_type: filter as i32,
            ..request("wf", &run)
        };

    // A running workflow's first page comes with a token to wait for what follows.
    let first = get_history(
        &engine,
        wait(Vec::new(), HistoryEventFilterType::AllEvent),
        300,
    )
    .await
    .expect("first page");
    assert_eq!(ids(&first.history.unwrap_or_default().events), vec![1, 2]);
    assert!(!first.next_page_token.is_empty());

    for (token, filter) in [
        (
            first.next_page_token.clone(),
            HistoryEventFilterType::AllEvent,
        ),
        (Vec::new(), HistoryEventFilterType::CloseEvent),
    ] {
        let t0 = std::time::Instant::now();
        let r = get_history(&engine, wait(token, filter), 300)
            .await
            .expect("timed-out poll");
        assert!(t0.elapsed() >= Duration::from_millis(300), "{filter:?}");
        assert!(
            r.history.unwrap_or_default().events.is_empty(),
            "{filter:?}"
        );
        assert!(
            !r.next_page_token.is_empty(),
            "{filter:?}: poll again with this"
        );
    }

    // The timed-out token still works: the next poll returns the next event.
    let timed_out = get_history(
        &engine,
        wait(first.next_page_token, HistoryEventFilterType::AllEvent),
        300,
    )
    .await
    .expect("timed-out poll");
    let poll = {
        let engine = engine.clone();
        let request = wait(timed_out.next_page_token, HistoryEventFilterType::AllEvent);
        tokio::spawn(async move { get_history(&engine, request, 10_000).await })
    };
    signal(&engine, "wf", "sig").await.expect("signal");
    let r = poll.await.expect("poll task").expect("poll");
    let events = r.history.unwrap_or_default().events;
    assert_eq!(ids(&events), vec![3]);
    assert_eq!(types(&events), vec![EventType::WorkflowExecutionSignaled]);
    assert!(!r.next_page_token.is_empty());
}
