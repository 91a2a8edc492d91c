//! Sticky queues: memory only, refused without a recent poller, shut down by their worker.

use std::time::Duration;

use temper_client::status;
use temper_proto::internal::v1::ShutdownWorkerRequest;
use temper_proto::temporal::api::workflowservice::v1::ShutdownWorkerRequest as ApiShutdownWorker;

use super::*;

fn shutdown_request(sticky_queue: &str) -> ShutdownWorkerRequest {
    ShutdownWorkerRequest {
        namespace_id: NS.to_owned(),
        request: Some(ApiShutdownWorker {
            namespace: "default".to_owned(),
            sticky_task_queue: sticky_queue.to_owned(),
            identity: "worker-1".to_owned(),
            reason: "graceful shutdown".to_owned(),
            ..Default::default()
        }),
    }
}

#[tokio::test(start_paused = true)]
async fn sticky_add_needs_a_poll_in_the_last_ten_seconds() {
    let h = Harness::new();
    let k = key("worker-1-sticky", QueueType::Workflow, QueueKind::Sticky);

    let err = add_workflow(&h.engine, sticky("worker-1-sticky"), "wf-1", 2)
        .await
        .expect_err("nobody ever polled");
    assert!(status::is_sticky_worker_unavailable(&err), "{err:?}");

    let resp = poll_workflow(&h.engine, sticky("worker-1-sticky"), "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());

    // Polled a moment ago: the task is held in memory for the worker's next poll.
    add_workflow(&h.engine, sticky("worker-1-sticky"), "wf-1", 2)
        .await
        .expect("recent poller");
    let resp = poll_workflow(&h.engine, sticky("worker-1-sticky"), "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
    assert!(
        h.store.task_ids(&k.store_key()).is_empty() && h.store.leases() == 0,
        "sticky queues never touch the store"
    );

    tokio::time::sleep(Duration::from_secs(11)).await;
    let err = add_workflow(&h.engine, sticky("worker-1-sticky"), "wf-1", 6)
        .await
        .expect_err("the worker went quiet");
    assert!(status::is_sticky_worker_unavailable(&err), "{err:?}");
    assert!(err.message().contains("worker-1-sticky"));
}

#[tokio::test]
async fn sticky_add_sync_matches_a_waiting_sticky_poller() {
    let h = Harness::new();
    let k = key("worker-1-sticky", QueueType::Workflow, QueueKind::Sticky);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, sticky("worker-1-sticky"), "worker-1", 60_000).await }
    });
    eventually("the sticky poller waits", || h.waiting(&k) == 1).await;
    add_workflow(&h.engine, sticky("worker-1-sticky"), "wf-1", 2)
        .await
        .expect("add");
    let resp = poll.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
}

#[tokio::test]
async fn shutdown_worker_wakes_sticky_pollers_and_refuses_later_adds() {
    let h = Harness::new();
    let k = key("worker-1-sticky", QueueType::Workflow, QueueKind::Sticky);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, sticky("worker-1-sticky"), "worker-1", 60_000).await }
    });
    eventually("the sticky poller waits", || h.waiting(&k) == 1).await;

    h.engine
        .shutdown_worker(Request::new(shutdown_request("worker-1-sticky")))
        .await
        .expect("shutdown worker");
    let resp = poll.await.expect("poll task").expect("woken empty");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());

    let err = add_workflow(&h.engine, sticky("worker-1-sticky"), "wf-1", 2)
        .await
        .expect_err("worker shut down");
    assert!(status::is_sticky_worker_unavailable(&err), "{err:?}");
}

#[tokio::test]
async fn shutdown_worker_drops_held_sticky_tasks() {
    let h = Harness::new();
    poll_workflow(&h.engine, sticky("s"), "worker-1", 10)
        .await
        .expect("poll");
    add_workflow(&h.engine, sticky("s"), "wf-1", 2)
        .await
        .expect("held");
    h.engine
        .shutdown_worker(Request::new(shutdown_request("s")))
        .await
        .expect("shutdown worker");
    // A new poll (a new worker reusing the name) does not see the old task.
    let resp = poll_workflow(&h.engine, sticky("s"), "worker-2", 10)
        .await
        .expect("poll");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());
    assert!(h.history.calls().is_empty());
}

#[tokio::test]
async fn shutdown_worker_ends_that_workers_polls_on_the_normal_queue() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let mine = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    let other = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-2", 60_000).await }
    });
    eventually("both pollers wait", || h.waiting(&k) == 2).await;

    let mut req = shutdown_request("");
    if let Some(r) = req.request.as_mut() {
        r.task_queue = "orders".to_owned();
        r.worker_instance_key = "worker-1-instance".to_owned();
    }
    h.engine
        .shutdown_worker(Request::new(req))
        .await
        .expect("shutdown worker");
    let resp = mine.await.expect("poll task").expect("woken empty");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());
    assert_eq!(h.waiting(&k), 1, "the other worker keeps polling");

    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    let resp = other.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
}
