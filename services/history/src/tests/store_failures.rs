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
