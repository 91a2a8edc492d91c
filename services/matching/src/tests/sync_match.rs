//! Sync match: a new task goes straight to a waiting poller, and the add waits for history.

use std::sync::Arc;

use temper_client::status;
use tokio::sync::Semaphore;

use super::fakes::Reply;
use super::*;

#[tokio::test]
async fn sync_match_hands_the_task_to_a_waiting_poller_and_add_waits_for_the_start() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;

    let gate = Arc::new(Semaphore::new(0));
    h.history.push(Reply::Gate(gate.clone()));
    let add = tokio::spawn({
        let engine = h.engine.clone();
        async move { add_workflow(&engine, normal("orders"), "wf-1", 2).await }
    });
    eventually("history is asked to start the task", || {
        h.history.calls().len() == 1
    })
    .await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !add.is_finished(),
        "the add returns only once history recorded the start"
    );

    gate.add_permits(1);
    add.await.expect("add task").expect("add");
    let resp = poll.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));

    let calls = h.history.calls();
    assert_eq!(calls[0].workflow_id, "wf-1");
    assert_eq!(calls[0].scheduled_event_id, 2);
    assert_eq!(calls[0].identity, "worker-1");
    assert!(
        calls[0].request_id.starts_with("poll-"),
        "request id is the poller id"
    );
    assert!(
        h.store.task_ids(&k.store_key()).is_empty(),
        "a sync-matched task is never written"
    );
}

#[tokio::test]
async fn sync_match_to_an_obsolete_task_drops_it_and_the_poller_keeps_waiting() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;

    h.history
        .push(Reply::Err(status::task_obsolete("workflow closed")));
    h.add_workflow("orders", "wf-old", 2)
        .await
        .expect("obsolete add is fine");
    assert!(
        h.store.task_ids(&k.store_key()).is_empty(),
        "dropped, not stored"
    );

    eventually("the poller waits again", || h.waiting(&k) == 1).await;
    h.add_workflow("orders", "wf-new", 5).await.expect("add");
    let resp = poll.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-new", 5));
}

#[tokio::test]
async fn transient_failure_in_sync_match_persists_the_task_and_fails_the_poll() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;

    h.history
        .push(Reply::Err(Status::unavailable("shard moving")));
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    let err = poll.await.expect("poll task").expect_err("history failed");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(
        h.store.task_ids(&k.store_key()).len(),
        1,
        "the task was persisted"
    );

    let resp = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
    eventually("the started task is deleted", || {
        h.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn activity_tasks_match_activity_pollers() {
    let h = Harness::new();
    let k = key("orders", QueueType::Activity, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_activity(&engine, "orders", "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;
    add_activity(&h.engine, "orders", "wf-1", 7)
        .await
        .expect("add");
    let resp = poll.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 7));
    assert_eq!(resp.activity_id, "7");
    assert!(h.history.calls()[0].activity);
}
