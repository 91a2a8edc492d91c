//! The queue lease: lost ownership drops the queue, and the next use re-leases it.

use temper_persistence::StoreError;
use temper_types::RangeId;

use super::*;

#[tokio::test]
async fn a_stolen_lease_makes_the_next_add_re_lease_the_queue() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    assert_eq!(h.store.range_id(&k.store_key()), 1);
    assert_eq!(h.store.leases(), 1);

    h.store.steal_lease(&k.store_key());
    h.add_workflow("orders", "wf-2", 2)
        .await
        .expect("add after re-lease");
    assert_eq!(h.store.leases(), 2, "the queue was leased again");
    let range = h.store.range_id(&k.store_key());
    assert_eq!(range, 3);
    let ids = h.store.task_ids(&k.store_key());
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1] >> 20, range, "written under the new lease");

    // The re-created queue loaded the first task from the store.
    for wf in ["wf-1", "wf-2"] {
        let resp = h
            .poll_workflow("orders", "worker-1", 1_000)
            .await
            .expect("poll");
        assert_eq!(resp.task_token, token(wf, 2));
    }
}

#[tokio::test]
async fn ownership_lost_on_create_re_leases_and_retries() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    h.store.fail_next_create(StoreError::OwnershipLost {
        held: RangeId(1),
        actual: RangeId(1),
    });
    h.add_workflow("orders", "wf-2", 2)
        .await
        .expect("retried under a new lease");
    assert_eq!(h.store.leases(), 2);
    assert_eq!(h.store.task_ids(&k.store_key()).len(), 2);
}

#[tokio::test]
async fn other_store_failures_fail_the_add() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    h.store
        .fail_next_create(StoreError::Unavailable("cassandra timeout".to_owned()));
    let err = h
        .add_workflow("orders", "wf-1", 2)
        .await
        .expect_err("store down");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(h.store.task_ids(&k.store_key()).is_empty());
    h.add_workflow("orders", "wf-1", 2)
        .await
        .expect("store back");
    assert_eq!(
        h.store.leases(),
        1,
        "a failed write does not give up the lease"
    );
}

#[tokio::test]
async fn pollers_of_a_queue_that_lost_its_lease_move_to_the_new_queue() {
    let h = Harness::new();
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_workflow(&engine, normal("orders"), "worker-1", 60_000).await }
    });
    eventually("the poller waits", || h.waiting(&k) == 1).await;
    let old = h.engine.core.loaded(&k).expect("queue loaded");
    // Another node takes the lease; this queue learns it from a failed store write.
    h.store.steal_lease(&k.store_key());
    old.mark_lost_for_test();
    eventually("the poller waits on the re-created queue", || {
        h.engine
            .core
            .loaded(&k)
            .is_some_and(|q| !Arc::ptr_eq(&q, &old) && q.waiting_pollers() == 1)
    })
    .await;
    h.add_workflow("orders", "wf-1", 2).await.expect("add");
    let resp = poll.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
}
