//! Group commit: updates of different executions that queue up while a commit is in flight
//! go to the store as one batch; a write whose condition fails is dropped from the batch,
//! the others commit, and the dropped one reloads, re-runs and commits exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use temper_persistence::faulty::{FaultyStore, Op};
use temper_persistence::{CommitError, ConflictKind, ExecutionKey, ExecutionWrite};
use temper_proto::temporal::api::common::v1::{Memo, Payload};
use temper_proto::temporal::api::enums::v1::EventType;
use temper_workflow::signal::{Signal, signal};
use tokio::task::JoinHandle;

use super::*;
use crate::HistoryError;
use crate::writer::branch_of;

const N: usize = 5;

struct Setup {
    store: FaultyStore,
    p: Persistence,
    shard: Arc<ShardContext>,
    keys: Vec<ExecutionKey>,
    runs: Vec<Arc<AtomicUsize>>,
    /// Commit calls made before the test's own.
    base: usize,
    _engine: Arc<HistoryEngine>,
}

/// One shard holding `N` fresh workflows, their states cached.
async fn setup() -> Setup {
    setup_with(store()).await
}

/// [`setup`] on `store` (e.g. one that keeps history apart).
async fn setup_with(store: FaultyStore) -> Setup {
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let mut keys = Vec::new();
    for i in 0..N {
        let wf = format!("gc-{i}");
        let run = start(&engine, &wf, Duration::ZERO).await;
        keys.push(key(&wf, &run));
    }
    Setup {
        p: store.inner().clone(),
        shard: shard_of(&engine, "gc-0"),
        base: store.commit_sizes().len(),
        runs: (0..N).map(|_| Arc::new(AtomicUsize::new(0))).collect(),
        store,
        keys,
        _engine: engine,
    }
}

impl Setup {
    /// Signal execution `i` through `ShardContext::transact`, counting how often the
    /// transaction runs.
    fn transact(&self, i: usize) -> JoinHandle<Result<(), HistoryError>> {
        let (shard, key, runs) = (
            self.shard.clone(),
            self.keys[i].clone(),
            self.runs[i].clone(),
        );
        let request_id = uuid::Uuid::new_v4().to_string();
        tokio::spawn(async move {
            shard
                .transact(&key, |txn| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    signal(
                        txn,
                        Signal {
                            name: "sig",
                            input: None,
                            identity: "test",
                            header: None,
                            request_id: &request_id,
                            external_execution: None,
                            links: Vec::new(),
                        },
                    )
                })
                .await
                .map(|_| ())
        })
    }

    /// Run one update while the store holds commits, queue the other `N - 1` behind it,
    /// call `meanwhile`, then let everything through and wait for all updates.
    async fn group(&self, meanwhile: impl FnOnce()) -> Vec<Result<(), HistoryError>> {
        self.store.pause(Op::Commit);
        let calls = self.store.calls(Op::Commit);
        let mut handles = vec![self.transact(0)];
        eventually("the first commit is in flight", || async {
            (self.store.calls(Op::Commit) > calls).then_some(())
        })
        .await;
        handles.extend((1..N).map(|i| self.transact(i)));
        eventually("the other updates are queued at the writer", || async {
            (self.shard.queued_commits() == N - 1).then_some(())
        })
        .await;
        meanwhile();
        self.store.resume(Op::Commit);
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("update task"));
        }
        out
    }

    fn batches(&self) -> Vec<usize> {
        self.store.commit_sizes()[self.base..].to_vec()
    }

    fn runs(&self) -> Vec<usize> {
        self.runs.iter().map(|r| r.load(Ordering::SeqCst)).collect()
    }

    async fn signals(&self, i: usize) -> usize {
        let events = stored_history(&self.p, ShardId(1), &self.keys[i]).await;
        count_of(&events, EventType::WorkflowExecutionSignaled)
    }

    async fn version(&self, i: usize) -> i64 {
        stored_state(&self.p, ShardId(1), &self.keys[i]).await.1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_queued_behind_a_commit_go_out_as_one_batch() {
    let s = setup().await;
    let results = s.group(|| {}).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(s.batches(), vec![1, N - 1]);
    assert_eq!(s.runs(), vec![1; N]);
    for i in 0..N {
        assert_eq!(s.signals(i).await, 1, "execution {i}");
        assert_eq!(s.version(i).await, 2, "execution {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_is_retried_alone_on_the_reloaded_state() {
    let s = setup().await;
    // Another writer changes execution 2 behind the cache's back: the cache still has
    // version 1, the store has version 2 with a memo the retry must keep.
    let stale = 2;
    let (mut ms, version) = stored_state(&s.p, ShardId(1), &s.keys[stale]).await;
    assert_eq!(version, 1);
    let info = ms.execution_info.get_or_insert_with(Default::default);
    info.memo = Some(Memo {
        fields: [("marker".to_string(), Payload::default())].into(),
    });
    let range =
        s.p.executions
            .get_or_create_shard(ShardId(1), &[])
            .await
            .expect("shard row")
            .range_id;
    s.p.executions
        .commit(
            ShardId(1),
            range,
            &[ExecutionWrite {
                key: s.keys[stale].clone(),
                expected_version: Some(1),
                new_version: 2,
                state: ms.encode_to_vec(),
                current: None,
                tasks: Vec::new(),
                visibility: None,
            }],
        )
        .await
        .expect("write behind the cache's back");

    let results = s.group(|| {}).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // The batch of four hits the conflict, goes again without execution 2, then the
    // reloaded execution 2 commits on its own.
    assert_eq!(s.batches(), vec![1, N - 1, N - 2, 1]);
    let mut expected_runs = vec![1; N];
    expected_runs[stale] = 2;
    assert_eq!(s.runs(), expected_runs);
    for i in 0..N {
        assert_eq!(s.signals(i).await, 1, "execution {i}");
        let expected_version = if i == stale { 3 } else { 2 };
        assert_eq!(s.version(i).await, expected_version, "execution {i}");
    }
    let (ms, _) = stored_state(&s.p, ShardId(1), &s.keys[stale]).await;
    let info = ms.execution_info.expect("info");
    assert!(
        info.memo.is_some_and(|m| m.fields.contains_key("marker")),
        "the retry ran on the cached state instead of the stored one"
    );
    assert_eq!(info.signal_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_conflict_drops_one_write_and_it_is_applied_exactly_once() {
    // SQLite writes the nodes in the commit: the dropped attempt wrote nothing.
    injected_conflict(store(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_conflict_with_history_apart_leaves_an_orphan_node_that_loses() {
    // A store that keeps history apart got the dropped attempt's node before the commit.
    let store = store();
    store.keep_history_apart();
    injected_conflict(store, 2).await;
}

/// `nodes`: how many versions of the retried update's history node the store holds.
async fn injected_conflict(store: FaultyStore, nodes: usize) {
    let s = setup_with(store).await;
    let results = s
        .group(|| {
            s.store.fail_commit(
                1,
                CommitError::Conflict {
                    index: 1,
                    kind: ConflictKind::VersionMismatch {
                        expected: Some(1),
                        actual: Some(2),
                    },
                },
            )
        })
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(s.batches(), vec![1, N - 1, N - 2, 1]);
    let runs = s.runs();
    assert_eq!(runs[0], 1, "the first commit was alone and fine");
    assert_eq!(runs.iter().sum::<usize>(), N + 1, "{runs:?}");
    let retried = runs
        .iter()
        .position(|&r| r == 2)
        .expect("one update re-ran");
    for i in 0..N {
        assert_eq!(s.signals(i).await, 1, "execution {i}");
        assert_eq!(s.version(i).await, 2, "execution {i}");
        // Each kept its own history node: dropping one write dropped only its node.
        let events = stored_history(&s.p, ShardId(1), &s.keys[i]).await;
        assert_eq!(events.len(), 3, "execution {i}: {events:?}");
    }
    // With history apart, the dropped attempt left its history node behind; the retry's
    // node, with a higher transaction id, is the one that counts.
    let stored =
        s.p.history
            .read_history_nodes(&branch_of(&s.keys[retried]), 3, 4, None, 10)
            .await
            .expect("read nodes");
    assert_eq!(stored.len(), nodes, "versions of node 3: {stored:?}");
    assert!(stored.windows(2).all(|w| w[0].txn_id > w[1].txn_id));
    let nodes = stored;
    let events = stored_history(&s.p, ShardId(1), &s.keys[retried]).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].task_id, nodes[0].txn_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_workflow_id_never_share_a_batch() {
    let s = setup().await;
    // Two runs of one workflow id: the first closed, the second current.
    let engine = &s._engine;
    let first = start(engine, "dup", Duration::ZERO).await;
    terminate(engine, "dup").await.expect("terminate");
    let second = start(engine, "dup", Duration::ZERO).await;
    let runs = [key("dup", &first), key("dup", &second)];
    let base = s.store.commit_sizes().len();
    let touch = |k: ExecutionKey| {
        let shard = shard_of(engine, "dup");
        tokio::spawn(async move {
            shard
                .transact(&k, |txn| {
                    txn.info_mut().memo = Some(Memo {
                        fields: [("n".to_string(), Payload::default())].into(),
                    });
                    Ok(())
                })
                .await
                .map(|_| ())
        })
    };
    s.store.pause(Op::Commit);
    let calls = s.store.calls(Op::Commit);
    let mut handles = vec![s.transact(0)];
    eventually("the first commit is in flight", || async {
        (s.store.calls(Op::Commit) > calls).then_some(())
    })
    .await;
    handles.push(touch(runs[0].clone()));
    handles.push(touch(runs[1].clone()));
    eventually("both runs' commits are queued", || async {
        (s.shard.queued_commits() == 2).then_some(())
    })
    .await;
    s.store.resume(Op::Commit);
    for h in handles {
        h.await.expect("task").expect("update");
    }
    assert_eq!(s.store.commit_sizes()[base..].to_vec(), vec![1, 1, 1]);
}

/// Big states split a group commit: a batch carries at most `MAX_BATCH_BYTES` of state (a
/// Cassandra mutation has a size limit), and a commit over the cap still goes alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_states_split_a_batch() {
    let s = setup().await;
    let big = |n: usize| {
        let shard = s.shard.clone();
        let k = s.keys[n].clone();
        tokio::spawn(async move {
            shard
                .transact(&k, |txn| {
                    txn.info_mut().memo = Some(Memo {
                        fields: [(
                            "blob".to_string(),
                            Payload {
                                data: vec![7; 1_500_000],
                                ..Default::default()
                            },
                        )]
                        .into(),
                    });
                    Ok(())
                })
                .await
                .map(|_| ())
        })
    };
    let base = s.store.commit_sizes().len();
    s.store.pause(Op::Commit);
    let calls = s.store.calls(Op::Commit);
    let mut handles = vec![s.transact(0)];
    eventually("the first commit is in flight", || async {
        (s.store.calls(Op::Commit) > calls).then_some(())
    })
    .await;
    handles.extend((1..N).map(big));
    eventually("the big commits are queued", || async {
        (s.shard.queued_commits() == N - 1).then_some(())
    })
    .await;
    s.store.resume(Op::Commit);
    for h in handles {
        h.await.expect("task").expect("update");
    }
    // Four states of 1.5 MB behind the first commit: two per 4 MiB batch.
    assert_eq!(s.store.commit_sizes()[base..].to_vec(), vec![1, 2, 2]);
}
