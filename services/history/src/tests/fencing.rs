//! Fencing: once another owner bumped the shard's range id, this node's next commit fails,
//! the shard stops, and nothing of the refused writes becomes visible.

use temper_persistence::ShardRecord;
use temper_persistence::faulty::Op;
use temper_proto::temporal::api::enums::v1::EventType;
use temper_types::{Clock, RangeId};
use tonic::Code;

use super::*;

/// Another node takes the shard: the same CAS `acquire_shard` does.
async fn steal_shard(p: &Persistence, shard: ShardId) -> RangeId {
    let rec = p
        .executions
        .get_or_create_shard(shard, &[])
        .await
        .expect("shard row");
    let next = RangeId(rec.range_id.0 + 1);
    p.executions
        .update_shard(
            rec.range_id,
            &ShardRecord {
                shard_id: shard,
                range_id: next,
                info: rec.info,
            },
        )
        .await
        .expect("steal shard");
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_shard_stops_and_writes_nothing() {
    let store = store();
    let p = store.inner().clone();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&engine, "fenced", Duration::ZERO).await;
    let key = key("fenced", &run);
    let shard = shard_of(&engine, "fenced");
    let (before, version) = stored_state(&p, ShardId(1), &key).await;
    let history_before = stored_history(&p, ShardId(1), &key).await;

    steal_shard(&p, ShardId(1)).await;
    let err = signal(&engine, "fenced", "too-late")
        .await
        .expect_err("a fenced commit must fail");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    eventually("the shard stops", || async {
        shard.cancel.is_cancelled().then_some(())
    })
    .await;

    let (after, version_after) = stored_state(&p, ShardId(1), &key).await;
    assert_eq!(version_after, version);
    assert_eq!(after, before);
    let history = stored_history(&p, ShardId(1), &key).await;
    assert_eq!(history, history_before);
    assert_eq!(count_of(&history, EventType::WorkflowExecutionSignaled), 0);
    // The stopped shard refuses further work instead of writing under a stale range.
    let later = shard
        .transact(&key, |txn| {
            temper_workflow::close::terminate(txn, "later", None, "test")
        })
        .await;
    assert!(later.is_err());
    assert_eq!(stored_state(&p, ShardId(1), &key).await.1, version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_fenced_batch_fails() {
    let store = store();
    let p = store.inner().clone();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let mut keys = Vec::new();
    for wf in ["f-0", "f-1", "f-2"] {
        let run = start(&engine, wf, Duration::ZERO).await;
        keys.push(key(wf, &run));
    }
    let shard = shard_of(&engine, "f-0");

    // One commit in flight, two queued behind it; then another node takes the shard.
    store.pause(Op::Commit);
    let calls = store.calls(Op::Commit);
    let spawn_signal = |wf: &'static str| {
        let engine = engine.clone();
        tokio::spawn(async move { signal(&engine, wf, "sig").await })
    };
    let mut handles = vec![spawn_signal("f-0")];
    eventually("the first commit is in flight", || async {
        (store.calls(Op::Commit) > calls).then_some(())
    })
    .await;
    handles.push(spawn_signal("f-1"));
    handles.push(spawn_signal("f-2"));
    eventually("two commits queued", || async {
        (shard.queued_commits() == 2).then_some(())
    })
    .await;
    steal_shard(&p, ShardId(1)).await;
    store.resume(Op::Commit);

    for h in handles {
        let r = h.await.expect("signal task");
        assert_eq!(r.expect_err("fenced").code(), Code::Unavailable);
    }
    eventually("the shard stops", || async {
        shard.cancel.is_cancelled().then_some(())
    })
    .await;
    for key in &keys {
        assert_eq!(stored_state(&p, ShardId(1), key).await.1, 1);
        let history = stored_history(&p, ShardId(1), key).await;
        assert_eq!(count_of(&history, EventType::WorkflowExecutionSignaled), 0);
    }
}

/// Partition tests lost timers this way: a stale owner's acker deleted every timer of the
/// shard below its lowest outstanding one, including the earlier timers the new owner had
/// written meanwhile. Deletion is fenced now: the stale owner's is refused and it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_never_deletes_the_timers_the_new_owner_wrote() {
    let store = store();
    let p = store.inner().clone();
    let old = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    // A timer that fires at 0.8 s without writing (its run is closed by then), and one at
    // 1.8 s that stays outstanding: when the first is done, the old owner's acker moves
    // its deletion bound up to the second.
    start(&old, "moot", Duration::from_millis(800)).await;
    terminate(&old, "moot").await.expect("terminate");
    start(&old, "outstanding", Duration::from_millis(1800)).await;
    let shard = shard_of(&old, "outstanding");

    // Another node takes the shard and writes a timer due at 1.2 s, between the two.
    let new_range = steal_shard(&p, ShardId(1)).await;
    let due = temper_workflow::time::millis(SystemClock.now() + Duration::from_millis(1200));
    let theirs = TaskRecord {
        category: TaskCategory::Timer,
        key: TaskKey {
            fire_time_ms: due,
            task_id: (new_range.0 << 20) + 1,
        },
        data: pb::TimerTask::default().encode_to_vec(),
    };
    p.executions
        .commit(
            ShardId(1),
            new_range,
            &[temper_persistence::ExecutionWrite {
                key: key("new-owner", "run"),
                expected_version: None,
                new_version: 1,
                state: pb::MutableState::default().encode_to_vec(),
                current: None,
                tasks: vec![theirs.clone()],
                visibility: None,
            }],
        )
        .await
        .expect("the new owner commits");

    // The moot timer fires (0.8 s) and its acknowledgement reaches the store (every 0.5 s).
    eventually(
        "the old owner's deletion is refused and its shard stops",
        || async { shard.cancel.is_cancelled().then_some(()) },
    )
    .await;
    let timers = stored_tasks(&p, ShardId(1), TaskCategory::Timer).await;
    assert!(
        timers.iter().any(|t| t.key == theirs.key),
        "the new owner's timer was deleted: {timers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_renewed_here_during_the_ownership_check_does_not_stop_the_shard() {
    // Found by a one-hour soak: the shard writer renews the range id itself (a CAS, then it
    // stores the new id in the context); a check whose store read saw the CAS but had loaded
    // the old id stopped a single node's shard as if another node had taken it.
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let ctx = engine
        .shards
        .read()
        .expect("shard map")
        .get(&ShardId(1))
        .cloned()
        .expect("running");
    // The check's reads are slow; the renewal's CAS lands before the first one answers and
    // the writer stores the new id while it is on its way.
    store.delay(Op::GetOrCreateShard, 2, Duration::from_millis(300));
    let renewed = steal_shard(store.inner(), ShardId(1)).await;
    let range = ctx.range.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        range.store(renewed.0, std::sync::atomic::Ordering::Release);
    });
    engine.stop_stale_shards(Duration::from_secs(60)).await;
    assert!(!ctx.cancel.is_cancelled(), "the shard keeps running");

    // Another node's CAS (the context never holds that id) still stops it.
    steal_shard(store.inner(), ShardId(1)).await;
    engine.stop_stale_shards(Duration::from_secs(60)).await;
    assert!(ctx.cancel.is_cancelled(), "the shard is stopped");
}
