//! The persisted backlog: tasks nobody waits for are stored, served in order, deleted when
//! started or obsolete, and survive a restart.

use std::time::{Duration, SystemTime};

use temper_client::status;
use temper_types::ManualClock;

use super::fakes::Reply;
use super::*;

#[tokio::test]
async fn without_a_poller_the_task_is_stored_then_served_and_deleted() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    let stored = h.store.task_ids(&k.store_key());
    assert_eq!(stored.len(), 1, "the add returns once the task is stored");
    let range = h.store.range_id(&k.store_key());
    assert_eq!(
        stored[0] >> 20,
        range,
        "task ids come from the lease's range"
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
async fn backlog_tasks_are_served_in_order() {
    let h = Harness::new();
    for i in 0..5 {
        h.add_workflow("orders", &format!("wf-{i}"), 2)
            .await
            .expect("add");
    }
    for i in 0..5 {
        let resp = h
            .poll_workflow("orders", "worker-1", 1_000)
            .await
            .expect("poll");
        assert_eq!(resp.task_token, token(&format!("wf-{i}"), 2));
    }
}

#[tokio::test]
async fn concurrent_adds_are_all_stored() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let mut adds = Vec::new();
    for i in 0..50 {
        let engine = h.engine.clone();
        adds.push(tokio::spawn(async move {
            add_workflow(&engine, normal("orders"), &format!("wf-{i}"), 2).await
        }));
    }
    for add in adds {
        add.await.expect("add task").expect("add");
    }
    assert_eq!(h.store.task_ids(&k.store_key()).len(), 50);
    assert!(h.store.creates() <= 50);
}

#[tokio::test]
async fn a_restarted_engine_serves_the_stored_backlog() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    for i in 0..3 {
        h.add_workflow("orders", &format!("wf-{i}"), 2)
            .await
            .expect("add");
    }
    let h2 = h.restart();
    h.engine.wait_stopped().await;
    for i in 0..3 {
        let resp = h2
            .poll_workflow("orders", "worker-1", 1_000)
            .await
            .expect("poll");
        assert_eq!(resp.task_token, token(&format!("wf-{i}"), 2));
    }
    eventually("started tasks are deleted", || {
        h2.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
    assert_eq!(
        h2.store.range_id(&k.store_key()),
        2,
        "the new engine took the lease"
    );
}

#[tokio::test]
async fn a_backlog_larger_than_a_read_page_is_read_page_by_page() {
    let config = MatchingConfig {
        backlog_read_batch_size: 2,
        ..MatchingConfig::default()
    };
    let h = Harness::with_config(config.clone());
    for i in 0..5 {
        h.add_workflow("orders", &format!("wf-{i}"), 2)
            .await
            .expect("add");
    }
    h.engine.shutdown();
    let engine = MatchingEngine::new(h.store.clone(), h.history.clone(), config);
    // Interleave new adds with the reads: they must come after the older backlog.
    for i in 0..5 {
        let resp = poll_workflow(&engine, normal("orders"), "w", 1_000)
            .await
            .expect("poll");
        assert_eq!(resp.task_token, token(&format!("wf-{i}"), 2));
        if i == 1 {
            add_workflow(&engine, normal("orders"), "wf-late", 2)
                .await
                .expect("add");
        }
    }
    let resp = poll_workflow(&engine, normal("orders"), "w", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-late", 2));
}

#[tokio::test]
async fn memory_holds_one_page_and_the_rest_is_read_back_in_order() {
    let h = Harness::with_config(MatchingConfig {
        backlog_read_batch_size: 2,
        ..MatchingConfig::default()
    });
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    for i in 0..7 {
        h.add_workflow("orders", &format!("wf-{i}"), 2)
            .await
            .expect("add");
    }
    assert_eq!(h.store.task_ids(&k.store_key()).len(), 7);
    for i in 0..7 {
        let resp = h.poll_workflow("orders", "w", 1_000).await.expect("poll");
        assert_eq!(resp.task_token, token(&format!("wf-{i}"), 2));
    }
    let resp = h.poll_workflow("orders", "w", 10).await.expect("poll");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());
    eventually("every task is deleted", || {
        h.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn obsolete_backlog_tasks_are_dropped_and_the_poll_goes_on() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-done", 2).await.expect("add");
    h.add_workflow("orders", "wf-live", 2).await.expect("add");
    h.history
        .push(Reply::Err(status::task_obsolete("workflow completed")));
    let resp = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-live", 2));
    eventually("both tasks are deleted", || {
        h.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn transient_record_failure_puts_the_backlog_task_back() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    h.add_workflow("orders", "wf-2", 2).await.expect("add");
    h.history
        .push(Reply::Err(Status::unavailable("history busy")));
    let err = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect_err("history failed");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(h.store.task_ids(&k.store_key()).len(), 2, "nothing deleted");

    let resp = h
        .poll_workflow("orders", "worker-1", 1_000)
        .await
        .expect("poll");
    assert_eq!(
        resp.task_token,
        token("wf-1", 2),
        "the failed task is first again"
    );
}

#[tokio::test]
async fn expired_backlog_tasks_are_dropped() {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    let store = Arc::new(fakes::FakeStore::default());
    let history = Arc::new(fakes::FakeHistory::default());
    let engine = MatchingEngine::with_clock(
        store.clone(),
        history.clone(),
        MatchingConfig::default(),
        clock.clone(),
    );
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let mut req = add_workflow_request(normal("orders"), "wf-1", 2);
    req.schedule_to_start_timeout = Some(temper_proto::wkt::Duration {
        seconds: 5,
        nanos: 0,
    });
    engine
        .add_workflow_task(Request::new(req))
        .await
        .expect("add");
    assert_eq!(store.task_ids(&k.store_key()).len(), 1);

    clock.advance(Duration::from_secs(6));
    let resp = poll_workflow(&engine, normal("orders"), "w", 50)
        .await
        .expect("poll");
    assert_eq!(
        resp,
        PollWorkflowTaskQueueResponse::default(),
        "expired: not handed out"
    );
    assert!(history.calls().is_empty());
    eventually("the expired task is deleted", || {
        store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_answers_empty_after_its_timeout() {
    let h = Harness::new();
    let start = tokio::time::Instant::now();
    let resp = h
        .poll_workflow("orders", "worker-1", 0)
        .await
        .expect("poll");
    assert_eq!(resp, PollWorkflowTaskQueueResponse::default());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
        "the default long poll is 60 s, waited {waited:?}"
    );

    let start = tokio::time::Instant::now();
    let resp = poll_activity(&h.engine, "orders", "worker-1", 2_500)
        .await
        .expect("poll");
    assert_eq!(resp, PollActivityTaskQueueResponse::default());
    assert!(start.elapsed() >= Duration::from_millis(2_500));
}
