//! A poll whose caller goes away never loses a task.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::fakes::Reply;
use super::*;

#[tokio::test]
async fn a_cancelled_waiting_poll_is_not_handed_tasks() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;
    poll.abort();
    assert!(poll.await.expect_err("aborted").is_cancelled());
    assert_eq!(h.waiting(&k), 0, "the dropped poll left the queue");

    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    assert_eq!(
        h.store.task_ids(&k.store_key()).len(),
        1,
        "stored, not lost"
    );
    let resp = h
        .poll_workflow("orders", "worker-2", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
}

#[tokio::test]
async fn a_poll_cancelled_during_a_sync_match_sends_the_task_to_the_backlog() {
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
    eventually("the poller is starting the task", || {
        h.history.calls().len() == 1
    })
    .await;
    poll.abort();
    assert!(poll.await.expect_err("aborted").is_cancelled());

    add.await
        .expect("add task")
        .expect("add falls back to the backlog");
    assert_eq!(h.store.task_ids(&k.store_key()).len(), 1);
    let resp = h
        .poll_workflow("orders", "worker-2", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
    drop(gate);
}

#[tokio::test]
async fn a_poll_cancelled_while_starting_a_backlog_task_puts_it_back() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    h.add_workflow("orders", "wf-2", 2).await.expect("add");

    let gate = Arc::new(Semaphore::new(0));
    h.history.push(Reply::Gate(gate.clone()));
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller is starting the task", || {
        h.history.calls().len() == 1
    })
    .await;
    poll.abort();
    assert!(poll.await.expect_err("aborted").is_cancelled());

    let resp = h
        .poll_workflow("orders", "worker-2", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2), "back at the front");
    let resp = h
        .poll_workflow("orders", "worker-2", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-2", 2));
    eventually("both tasks are deleted", || {
        h.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_held_sticky_task_survives_a_cancelled_poll() {
    let h = Harness::new();
    poll_workflow(&h.engine, sticky("s"), "worker-1", 10)
        .await
        .expect("poll");
    add_workflow(&h.engine, sticky("s"), "wf-1", 2)
        .await
        .expect("held");

    let gate = Arc::new(Semaphore::new(0));
    h.history.push(Reply::Gate(gate.clone()));
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, sticky("s"), "worker-1", 60_000).await }
    });
    eventually("the poller is starting the task", || {
        h.history.calls().len() == 1
    })
    .await;
    poll.abort();
    assert!(poll.await.expect_err("aborted").is_cancelled());

    let resp = poll_workflow(&h.engine, sticky("s"), "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
}
