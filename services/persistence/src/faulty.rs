//! Fault injection at the store boundary, for tests (feature `testing`).
//!
//! [`FaultyStore`] wraps a [`Persistence`] in a [`Decorated`] store whose hook delegates
//! every call, except when a test asked otherwise: the next N calls of an operation can fail
//! with a chosen error, be delayed before reaching the store (a slow request), be delayed
//! after the store applied them (a slow reply: the write is durable but the caller has not
//! heard), or wait while the operation is paused. It also counts calls and records the size
//! of every commit batch, so tests can see what the services did.
//!
//! ```ignore
//! let faulty = FaultyStore::new(SqliteStore::open_in_memory()?.into_persistence());
//! let persistence = faulty.clone().into_persistence(); // hand this to the service
//! faulty.fail_commit(1, CommitError::Store(StoreError::Unavailable("injected".into())));
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::decorator::{Around, Decorated, OpError};
use crate::{CommitError, Persistence, StoreError};

/// One store operation: a method of the store traits.
pub use crate::decorator::Operation as Op;

/// What to do to a call.
#[derive(Debug, Clone)]
enum Action {
    /// Fail without reaching the store.
    Fail(CommitError),
    /// Wait, then call the store.
    DelayRequest(Duration),
    /// Call the store, then wait before answering.
    DelayReply(Duration),
    /// Call the store, then answer with an error whatever it did (a lost reply).
    FailAfter(CommitError),
}

#[derive(Debug)]
struct Rule {
    op: Op,
    remaining: usize,
    action: Action,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: HashMap<Op, u64>,
    commit_sizes: Vec<usize>,
}

/// A store that delegates to another one and fails, delays or pauses calls on request.
///
/// Cheap to clone: clones share the faults and counters, so a test keeps one clone to steer
/// the store while the service uses [`FaultyStore::into_persistence`] of another.
///
/// Each call of an operation takes the oldest rule still armed for that operation (one rule
/// per call), then waits while the operation is paused, then applies the rule.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Persistence,
    faults: Faults,
}

/// The hook: the armed rules, the counters and the paused operations.
#[derive(Clone)]
struct Faults {
    state: Arc<Mutex<State>>,
    paused: Arc<watch::Sender<HashSet<Op>>>,
    /// Have the services append history apart from the commit, as on Cassandra.
    history_apart: Arc<AtomicBool>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("state", &self.faults.state)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wrap `inner`; no faults armed.
    pub fn new(inner: Persistence) -> Self {
        Self {
            inner,
            faults: Faults {
                state: Arc::default(),
                paused: Arc::new(watch::channel(HashSet::new()).0),
                history_apart: Arc::default(),
            },
        }
    }

    /// This store as the services' bundle of trait objects.
    pub fn into_persistence(self) -> Persistence {
        Decorated::new(self.inner, self.faults).into_persistence()
    }

    /// Answer false to `commits_history` whatever the wrapped store can do: the history
    /// writer then appends history nodes with their own call before each commit, as it does
    /// on a store that keeps history apart (Cassandra).
    pub fn keep_history_apart(&self) {
        self.faults.history_apart.store(true, Ordering::Relaxed);
    }

    /// The wrapped store, to read or write behind the service's back.
    pub fn inner(&self) -> &Persistence {
        &self.inner
    }

    fn arm(&self, op: Op, times: usize, action: Action) {
        if times > 0 {
            self.faults.lock().rules.push(Rule {
                op,
                remaining: times,
                action,
            });
        }
    }

    /// Fail the next `times` calls of `op` with `error`, without reaching the store.
    /// For [`Op::Commit`] the error arrives as [`CommitError::Store`].
    pub fn fail(&self, op: Op, times: usize, error: StoreError) {
        self.arm(op, times, Action::Fail(CommitError::Store(error)));
    }

    /// Fail the next `times` commits with `error` (a conflict, ownership loss...), without
    /// reaching the store.
    pub fn fail_commit(&self, times: usize, error: CommitError) {
        self.arm(Op::Commit, times, Action::Fail(error));
    }

    /// Let the next `times` calls of `op` reach the store, then answer `error` whatever
    /// happened: a write whose reply was lost.
    pub fn fail_after_applying(&self, op: Op, times: usize, error: StoreError) {
        self.arm(op, times, Action::FailAfter(CommitError::Store(error)));
    }

    /// Delay the next `times` calls of `op` by `by` before they reach the store.
    pub fn delay(&self, op: Op, times: usize, by: Duration) {
        self.arm(op, times, Action::DelayRequest(by));
    }

    /// Let the next `times` calls of `op` reach the store, then delay their answer by `by`.
    pub fn delay_reply(&self, op: Op, times: usize, by: Duration) {
        self.arm(op, times, Action::DelayReply(by));
    }

    /// Hold every call of `op` (before it reaches the store) until [`Self::resume`].
    pub fn pause(&self, op: Op) {
        self.faults.paused.send_modify(|p| {
            p.insert(op);
        });
    }

    /// Release the calls of `op` held by [`Self::pause`].
    pub fn resume(&self, op: Op) {
        self.faults.paused.send_modify(|p| {
            p.remove(&op);
        });
    }

    /// Disarm every rule and resume every paused operation.
    pub fn clear(&self) {
        self.faults.lock().rules.clear();
        self.faults.paused.send_modify(HashSet::clear);
    }

    /// How many calls of `op` were made so far (failed and delayed ones included).
    pub fn calls(&self, op: Op) -> u64 {
        self.faults.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// The number of writes of every commit call so far, in call order.
    pub fn commit_sizes(&self) -> Vec<usize> {
        self.faults.lock().commit_sizes.clone()
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Around for Faults {
    // Tests arm faults on single history appends (`Op::AppendHistoryNode`) and count them;
    // the history writer appends in batches.
    const SPLIT_HISTORY_BATCHES: bool = true;

    fn commits_history(&self, inner: bool) -> bool {
        inner && !self.history_apart.load(Ordering::Relaxed)
    }

    /// Count the call, take its rule, wait while paused, then apply the rule around `call`.
    async fn around<T, E, F>(&self, op: Op, batch: Option<usize>, call: F) -> Result<T, E>
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send,
    {
        let action = {
            let mut state = self.lock();
            if op == Op::Commit {
                state.commit_sizes.push(batch.unwrap_or(0));
            }
            *state.calls.entry(op).or_default() += 1;
            let found = state
                .rules
                .iter_mut()
                .position(|r| r.op == op && r.remaining > 0);
            found.map(|i| {
                let rule = &mut state.rules[i];
                rule.remaining -= 1;
                let action = rule.action.clone();
                if rule.remaining == 0 {
                    state.rules.remove(i);
                }
                action
            })
        };
        let mut paused = self.paused.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = paused.wait_for(|p| !p.contains(&op)).await;
        match action {
            None => call.await,
            Some(Action::Fail(e)) => Err(E::from_commit_error(e)),
            Some(Action::DelayRequest(d)) => {
                tokio::time::sleep(d).await;
                call.await
            }
            Some(Action::DelayReply(d)) => {
                let r = call.await;
                tokio::time::sleep(d).await;
                r
            }
            Some(Action::FailAfter(e)) => {
                let _ = call.await;
                Err(E::from_commit_error(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use temper_types::{NamespaceId, RangeId, ShardId};

    use super::*;
    use crate::test_stores;
    use crate::{
        CurrentExecution, ExecutionKey, ExecutionRecord, ExecutionStore, ExecutionWrite,
        ShardRecord, TaskCategory, TaskKey, TaskRecord,
    };

    /// A store that answers every commit with Ok and counts how many reached it.
    #[derive(Default)]
    struct Counting(Mutex<u32>);

    #[async_trait]
    impl ExecutionStore for Counting {
        async fn get_or_create_shard(
            &self,
            _: ShardId,
            _: &[u8],
        ) -> Result<ShardRecord, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn update_shard(&self, _: RangeId, _: &ShardRecord) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get_current_execution(
            &self,
            _: ShardId,
            _: &NamespaceId,
            _: &str,
        ) -> Result<Option<CurrentExecution>, StoreError> {
            Ok(None)
        }
        async fn get_execution(
            &self,
            _: ShardId,
            _: &ExecutionKey,
        ) -> Result<Option<ExecutionRecord>, StoreError> {
            Ok(None)
        }
        async fn commit(
            &self,
            _: ShardId,
            _: RangeId,
            _: &[ExecutionWrite],
        ) -> Result<(), CommitError> {
            *self.0.lock().expect("counter") += 1;
            Ok(())
        }
        async fn delete_execution(
            &self,
            _: ShardId,
            _: RangeId,
            _: &ExecutionKey,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get_tasks(
            &self,
            _: ShardId,
            _: TaskCategory,
            _: TaskKey,
            _: TaskKey,
            _: usize,
        ) -> Result<Vec<TaskRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete_task(
            &self,
            _: ShardId,
            _: TaskCategory,
            _: TaskKey,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn delete_tasks_before(
            &self,
            _: ShardId,
            _: RangeId,
            _: TaskCategory,
            _: TaskKey,
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// Only the execution store is exercised; the others are never called here.
    fn wrap(counting: Arc<Counting>) -> FaultyStore {
        FaultyStore::new(test_stores::with_executions(counting))
    }

    async fn commit(p: &Persistence) -> Result<(), CommitError> {
        p.executions.commit(ShardId(1), RangeId(1), &[]).await
    }

    #[tokio::test]
    async fn armed_faults_apply_to_the_next_calls_in_order_then_stop() {
        let counting = Arc::new(Counting::default());
        let faulty = wrap(counting.clone());
        let p = faulty.clone().into_persistence();
        let unavailable = StoreError::Unavailable("injected".into());
        faulty.fail(Op::Commit, 2, unavailable.clone());
        faulty.fail_commit(
            1,
            CommitError::ShardOwnershipLost {
                held: RangeId(1),
                actual: RangeId(2),
            },
        );
        assert_eq!(
            commit(&p).await,
            Err(CommitError::Store(unavailable.clone()))
        );
        assert_eq!(commit(&p).await, Err(CommitError::Store(unavailable)));
        assert!(matches!(
            commit(&p).await,
            Err(CommitError::ShardOwnershipLost { .. })
        ));
        assert_eq!(commit(&p).await, Ok(()));
        // Failed calls never reached the store; all of them were counted.
        assert_eq!(*counting.0.lock().expect("counter"), 1);
        assert_eq!(faulty.calls(Op::Commit), 4);
        assert_eq!(faulty.calls(Op::GetTasks), 0);
        assert_eq!(faulty.commit_sizes(), vec![0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn faults_of_one_operation_leave_others_alone() {
        let faulty = wrap(Arc::new(Counting::default()));
        let p = faulty.clone().into_persistence();
        faulty.fail(Op::GetTasks, 1, StoreError::Unavailable("injected".into()));
        assert_eq!(commit(&p).await, Ok(()));
        let tasks = p
            .executions
            .get_tasks(
                ShardId(1),
                TaskCategory::Timer,
                TaskKey::MIN,
                TaskKey::MAX,
                10,
            )
            .await;
        assert_eq!(tasks, Err(StoreError::Unavailable("injected".into())));
        faulty.fail(Op::GetTasks, 1, StoreError::Unavailable("again".into()));
        faulty.clear();
        assert_eq!(
            p.executions
                .get_tasks(
                    ShardId(1),
                    TaskCategory::Timer,
                    TaskKey::MIN,
                    TaskKey::MAX,
                    10
                )
                .await,
            Ok(Vec::new())
        );
    }

    #[tokio::test]
    async fn delays_and_pauses_hold_calls() {
        let counting = Arc::new(Counting::default());
        let reached = || *counting.0.lock().expect("counter");
        let faulty = wrap(counting.clone());
        let p = faulty.clone().into_persistence();
        faulty.delay(Op::Commit, 1, Duration::from_millis(100));
        let t0 = std::time::Instant::now();
        assert_eq!(commit(&p).await, Ok(()));
        assert!(t0.elapsed() >= Duration::from_millis(100));

        faulty.delay_reply(Op::Commit, 1, Duration::from_secs(30));
        let p2 = p.clone();
        let slow = tokio::spawn(async move { commit(&p2).await });
        while reached() < 2 {
            tokio::task::yield_now().await;
        }
        // The write reached the store; its answer is still on the way.
        assert!(!slow.is_finished());
        slow.abort();

        faulty.pause(Op::Commit);
        let p3 = p.clone();
        let held = tokio::spawn(async move { commit(&p3).await });
        while faulty.calls(Op::Commit) < 3 {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        assert!(!held.is_finished());
        assert_eq!(reached(), 2);
        faulty.resume(Op::Commit);
        assert_eq!(held.await.expect("task"), Ok(()));
        assert_eq!(reached(), 3);
    }
}
