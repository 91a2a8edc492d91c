//! Transient store failures: the caller gets an error, nothing partial is visible (not in
//! the store, not in the shard's cache), the shard keeps running, and the next call works.

use temper_persistence::StoreError;
use temper_persistence::faulty::Op;
use temper_proto::temporal::api::enums::v1::EventType;
use tonic::Code;

use super::*;

fn unavailable() -> StoreError {
    StoreError::Unavailable("injected".into())
}

/// Signal once with `op` failing once: the signal must fail cleanly, then succeed.
async fn fail_once_then_succeed(op: Op) {
    let store = store();
    if op == Op::AppendHistoryNode {
        // SQLite writes history nodes in the commit's transaction; an append of its own
        // happens only on a store that keeps history apart.
        store.keep_history_apart();
    }
    let p = store.inner().clone();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    // Let the transfer queue hand out the first workflow task, so that only the test's
    // own calls meet the injected faults.
    eventually("the workflow task reaches matching", || async {
        (matching.workflow_tasks().len() == 1).then_some(())
    })
    .await;
    let key = key("wf", &run);
    let shard = shard_of(&engine, "wf");
    let (state_before, version) = stored_state(&p, ShardId(1), &key).await;

    store.fail(op, 1, unavailable());
    let err = signal(&engine, "wf", "sig")
        .await
        .expect_err("injected failure");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    assert_eq!(
        stored_state(&p, ShardId(1), &key).await,
        (state_before, version)
    );
    let stored = stored_history(&p, ShardId(1), &key).await;
    assert_eq!(count_of(&stored, EventType::WorkflowExecutionSignaled), 0);
    let seen = api_history(&engine, "wf", &run).await;
    assert_eq!(
        seen, stored,
        "the API shows what the store has, nothing more"
    );
    assert!(
        !shard.cancel.is_cancelled(),
        "a transient failure must not stop the shard"
    );

    signal(&engine, "wf", "sig")
        .await
        .expect("the next call succeeds");
    let (ms, v) = stored_state(&p, ShardId(1), &key).await;
    assert_eq!(v, version + 1);
    assert_eq!(ms.execution_info.expect("info").signal_count, 1);
    let stored = stored_history(&p, ShardId(1), &key).await;
    assert_eq!(count_of(&stored, EventType::WorkflowExecutionSignaled), 1);
    assert_eq!(api_history(&engine, "wf", &run).await, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_leaves_no_partial_state() {
    fail_once_then_succeed(Op::Commit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_history_append_leaves_no_partial_state() {
    fail_once_then_succeed(Op::AppendHistoryNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reload_after_a_failed_commit_is_also_transient() {
    let store = store();
    let p = store.inner().clone();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    // Let the transfer queue hand out the first workflow task, so that only the test's
    // own calls meet the injected faults.
    eventually("the workflow task reaches matching", || async {
        (matching.workflow_tasks().len() == 1).then_some(())
    })
    .await;
    let key = key("wf", &run);

    // The failed commit drops the cached state, so the next call must load it again...
    store.fail(Op::Commit, 1, unavailable());
    signal(&engine, "wf", "sig")
        .await
        .expect_err("injected commit failure");
    // ...and that load fails too.
    let loads = store.calls(Op::GetExecution);
    store.fail(Op::GetExecution, 1, unavailable());
    let err = signal(&engine, "wf", "sig")
        .await
        .expect_err("injected load failure");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(store.calls(Op::GetExecution), loads + 1);
    assert_eq!(stored_state(&p, ShardId(1), &key).await.1, 1);

    signal(&engine, "wf", "sig")
        .await
        .expect("the store is back");
    let stored = stored_history(&p, ShardId(1), &key).await;
    assert_eq!(count_of(&stored, EventType::WorkflowExecutionSignaled), 1);
    assert_eq!(stored_state(&p, ShardId(1), &key).await.1, 2);
}

/// A node that cannot reach the store cannot tell whether another node took its shards:
/// once their ownership has gone unconfirmed for `unconfirmed_limit`, it stops them (so it
/// never runs their queues on a stale view when the store comes back), and takes them again
/// once the store answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_whose_ownership_goes_unconfirmed_stop_and_are_taken_again() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    start(&engine, "wf", Duration::ZERO).await;
    let first = shard_of(&engine, "wf");
    let control = crate::ShardControl::every(Duration::from_millis(100));
    assert_eq!(control.unconfirmed_limit, Duration::from_millis(500));
    // The ownership checks (and re-acquisitions) fail for about 1.5 s.
    store.fail(Op::GetOrCreateShard, 15, unavailable());
    let failing = std::time::Instant::now();
    engine.start_shard_controller(matching, control);
    eventually("the unconfirmed shard stops", || async {
        first.cancel.is_cancelled().then_some(())
    })
    .await;
    let stopped_after = failing.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(400),
        "stopped after {stopped_after:?}, before the limit"
    );
    let second = eventually("the shard runs again once the store answers", || async {
        engine
            .shard(&ns(), "wf")
            .ok()
            .filter(|s| !s.cancel.is_cancelled() && !Arc::ptr_eq(s, &first))
    })
    .await;
    assert!(
        second.range.load(std::sync::atomic::Ordering::Acquire)
            > first.range.load(std::sync::atomic::Ordering::Acquire)
    );
    signal(&engine, "wf", "after").await.expect("serves again");
}
