//! Fault injection at the store boundary, for tests (feature `testing`).
//!
//! [`FaultyStore`] wraps a [`Persistence`] and implements every store trait by delegating to
//! it, except when a test asked otherwise: the next N calls of an operation can fail with a
//! chosen error, be delayed before reaching the store (a slow request), be delayed after the
//! store applied them (a slow reply: the write is durable but the caller has not heard), or
//! wait while the operation is paused. It also counts calls and records the size of every
//! commit batch, so tests can see what the services did.
//!
//! ```ignore
//! let faulty = FaultyStore::new(SqliteStore::open_in_memory()?.into_persistence());
//! let persistence = faulty.clone().into_persistence(); // hand this to the service
//! faulty.fail_commit(1, CommitError::Store(StoreError::Unavailable("injected".into())));
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use temper_types::{NamespaceId, RangeId, ShardId, TaskId};
use tokio::sync::watch;

use crate::{
    BranchId, ClusterMetadata, ClusterMetadataStore, CommitError, CurrentExecution, ExecutionKey,
    ExecutionRecord, ExecutionStore, ExecutionWrite, HistoryNode, HistoryStore, MemberRow,
    MembershipStore, NamespaceRecord, NamespaceStore, Persistence, QueueTask, ShardRecord,
    StoreError, TaskCategory, TaskKey, TaskQueueKey, TaskQueueLease, TaskQueueStore, TaskRecord,
};

/// One store operation: a method of the store traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    InitClusterMetadata,
    GetOrCreateShard,
    UpdateShard,
    GetCurrentExecution,
    GetExecution,
    Commit,
    DeleteExecution,
    GetTasks,
    DeleteTask,
    DeleteTasksBefore,
    AppendHistoryNode,
    ReadHistoryNodes,
    DeleteHistoryBranch,
    LeaseTaskQueue,
    UpdateTaskQueue,
    CreateQueueTasks,
    GetQueueTasks,
    DeleteQueueTask,
    DeleteQueueTasksThrough,
    CreateNamespace,
    GetNamespaceByName,
    GetNamespaceById,
    UpdateNamespace,
    ListNamespaces,
    HeartbeatMember,
    LiveMembers,
}

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
    state: Arc<Mutex<State>>,
    paused: Arc<watch::Sender<HashSet<Op>>>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Errors a rule can produce for any operation.
trait Injected: From<StoreError> {
    fn injected(e: CommitError) -> Self;
}

impl Injected for StoreError {
    fn injected(e: CommitError) -> Self {
        match e {
            CommitError::Store(s) => s,
            // Only `fail_commit` arms commit-shaped errors, and only for commits.
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl Injected for CommitError {
    fn injected(e: CommitError) -> Self {
        e
    }
}

impl FaultyStore {
    /// Wrap `inner`; no faults armed.
    pub fn new(inner: Persistence) -> Self {
        Self {
            inner,
            state: Arc::default(),
            paused: Arc::new(watch::channel(HashSet::new()).0),
        }
    }

    /// This store as the services' bundle of trait objects.
    pub fn into_persistence(self) -> Persistence {
        Persistence::from_backend(Arc::new(self))
    }

    /// The wrapped store, to read or write behind the service's back.
    pub fn inner(&self) -> &Persistence {
        &self.inner
    }

    fn arm(&self, op: Op, times: usize, action: Action) {
        if times > 0 {
            self.lock().rules.push(Rule {
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
        self.paused.send_modify(|p| {
            p.insert(op);
        });
    }

    /// Release the calls of `op` held by [`Self::pause`].
    pub fn resume(&self, op: Op) {
        self.paused.send_modify(|p| {
            p.remove(&op);
        });
    }

    /// Disarm every rule and resume every paused operation.
    pub fn clear(&self) {
        self.lock().rules.clear();
        self.paused.send_modify(HashSet::clear);
    }

    /// How many calls of `op` were made so far (failed and delayed ones included).
    pub fn calls(&self, op: Op) -> u64 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// The number of writes of every commit call so far, in call order.
    pub fn commit_sizes(&self) -> Vec<usize> {
        self.lock().commit_sizes.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count the call, take its rule, wait while paused, then apply the rule around `call`.
    async fn run<T, E, F>(&self, op: Op, call: F) -> Result<T, E>
    where
        E: Injected,
        F: Future<Output = Result<T, E>>,
    {
        let action = {
            let mut state = self.lock();
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
            Some(Action::Fail(e)) => Err(E::injected(e)),
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
                Err(E::injected(e))
            }
        }
    }
}

#[async_trait]
impl ClusterMetadataStore for FaultyStore {
    async fn init_cluster_metadata(
        &self,
        proposed: &ClusterMetadata,
    ) -> Result<ClusterMetadata, StoreError> {
        self.run(
            Op::InitClusterMetadata,
            self.inner.cluster.init_cluster_metadata(proposed),
        )
        .await
    }
}

#[async_trait]
impl ExecutionStore for FaultyStore {
    async fn get_or_create_shard(
        &self,
        shard_id: ShardId,
        initial_info: &[u8],
    ) -> Result<ShardRecord, StoreError> {
        self.run(
            Op::GetOrCreateShard,
            self.inner
                .executions
                .get_or_create_shard(shard_id, initial_info),
        )
        .await
    }

    async fn update_shard(
        &self,
        expected_range_id: RangeId,
        record: &ShardRecord,
    ) -> Result<(), StoreError> {
        self.run(
            Op::UpdateShard,
            self.inner
                .executions
                .update_shard(expected_range_id, record),
        )
        .await
    }

    async fn get_current_execution(
        &self,
        shard_id: ShardId,
        namespace_id: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecution>, StoreError> {
        self.run(
            Op::GetCurrentExecution,
            self.inner
                .executions
                .get_current_execution(shard_id, namespace_id, workflow_id),
        )
        .await
    }

    async fn get_execution(
        &self,
        shard_id: ShardId,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.run(
            Op::GetExecution,
            self.inner.executions.get_execution(shard_id, key),
        )
        .await
    }

    async fn commit(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        writes: &[ExecutionWrite],
    ) -> Result<(), CommitError> {
        self.lock().commit_sizes.push(writes.len());
        self.run(
            Op::Commit,
            self.inner.executions.commit(shard_id, range_id, writes),
        )
        .await
    }

    async fn delete_execution(
        &self,
        shard_id: ShardId,
        range_id: RangeId,
        key: &ExecutionKey,
    ) -> Result<(), StoreError> {
        self.run(
            Op::DeleteExecution,
            self.inner
                .executions
                .delete_execution(shard_id, range_id, key),
        )
        .await
    }

    async fn get_tasks(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_min: TaskKey,
        exclusive_max: TaskKey,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.run(
            Op::GetTasks,
            self.inner.executions.get_tasks(
                shard_id,
                category,
                exclusive_min,
                exclusive_max,
                limit,
            ),
        )
        .await
    }

    async fn delete_task(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        key: TaskKey,
    ) -> Result<(), StoreError> {
        self.run(
            Op::DeleteTask,
            self.inner.executions.delete_task(shard_id, category, key),
        )
        .await
    }

    async fn delete_tasks_before(
        &self,
        shard_id: ShardId,
        category: TaskCategory,
        exclusive_max: TaskKey,
    ) -> Result<(), StoreError> {
        self.run(
            Op::DeleteTasksBefore,
            self.inner
                .executions
                .delete_tasks_before(shard_id, category, exclusive_max),
        )
        .await
    }
}

#[async_trait]
impl HistoryStore for FaultyStore {
    async fn append_history_node(
        &self,
        branch: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError> {
        self.run(
            Op::AppendHistoryNode,
            self.inner.history.append_history_node(branch, node),
        )
        .await
    }

    async fn read_history_nodes(
        &self,
        branch: &BranchId,
        min_node_id: i64,
        max_node_id: i64,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<HistoryNode>, StoreError> {
        self.run(
            Op::ReadHistoryNodes,
            self.inner
                .history
                .read_history_nodes(branch, min_node_id, max_node_id, after, limit),
        )
        .await
    }

    async fn delete_history_branch(&self, branch: &BranchId) -> Result<(), StoreError> {
        self.run(
            Op::DeleteHistoryBranch,
            self.inner.history.delete_history_branch(branch),
        )
        .await
    }
}

#[async_trait]
impl TaskQueueStore for FaultyStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        self.run(
            Op::LeaseTaskQueue,
            self.inner.task_queues.lease_task_queue(key),
        )
        .await
    }

    async fn update_task_queue(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        ack_level: TaskId,
    ) -> Result<(), StoreError> {
        self.run(
            Op::UpdateTaskQueue,
            self.inner
                .task_queues
                .update_task_queue(key, range_id, ack_level),
        )
        .await
    }

    async fn create_queue_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        tasks: &[QueueTask],
    ) -> Result<(), StoreError> {
        self.run(
            Op::CreateQueueTasks,
            self.inner
                .task_queues
                .create_queue_tasks(key, range_id, tasks),
        )
        .await
    }

    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        exclusive_min: TaskId,
        limit: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        self.run(
            Op::GetQueueTasks,
            self.inner
                .task_queues
                .get_queue_tasks(key, exclusive_min, limit),
        )
        .await
    }

    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        task_id: TaskId,
    ) -> Result<(), StoreError> {
        self.run(
            Op::DeleteQueueTask,
            self.inner.task_queues.delete_queue_task(key, task_id),
        )
        .await
    }

    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError> {
        self.run(
            Op::DeleteQueueTasksThrough,
            self.inner
                .task_queues
                .delete_queue_tasks_through(key, inclusive_max),
        )
        .await
    }
}

#[async_trait]
impl NamespaceStore for FaultyStore {
    async fn create_namespace(&self, record: &NamespaceRecord) -> Result<(), StoreError> {
        self.run(
            Op::CreateNamespace,
            self.inner.namespaces.create_namespace(record),
        )
        .await
    }

    async fn get_namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.run(
            Op::GetNamespaceByName,
            self.inner.namespaces.get_namespace_by_name(name),
        )
        .await
    }

    async fn get_namespace_by_id(
        &self,
        id: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.run(
            Op::GetNamespaceById,
            self.inner.namespaces.get_namespace_by_id(id),
        )
        .await
    }

    async fn update_namespace(
        &self,
        expected_version: i64,
        record: &NamespaceRecord,
    ) -> Result<(), StoreError> {
        self.run(
            Op::UpdateNamespace,
            self.inner
                .namespaces
                .update_namespace(expected_version, record),
        )
        .await
    }

    async fn list_namespaces(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        self.run(
            Op::ListNamespaces,
            self.inner.namespaces.list_namespaces(after_name, limit),
        )
        .await
    }
}

#[async_trait]
impl MembershipStore for FaultyStore {
    async fn heartbeat_member(&self, row: &MemberRow, ttl: Duration) -> Result<(), StoreError> {
        self.run(
            Op::HeartbeatMember,
            self.inner.membership.heartbeat_member(row, ttl),
        )
        .await
    }

    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
        self.run(Op::LiveMembers, self.inner.membership.live_members())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            _: TaskCategory,
            _: TaskKey,
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// Only the execution store is exercised; the others are never called here.
    fn wrap(counting: Arc<Counting>) -> FaultyStore {
        FaultyStore::new(Persistence {
            cluster: Arc::new(Unused),
            executions: counting,
            history: Arc::new(Unused),
            task_queues: Arc::new(Unused),
            namespaces: Arc::new(Unused),
            membership: Arc::new(Unused),
        })
    }

    struct Unused;

    #[async_trait]
    impl ClusterMetadataStore for Unused {
        async fn init_cluster_metadata(
            &self,
            _: &ClusterMetadata,
        ) -> Result<ClusterMetadata, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
    }

    #[async_trait]
    impl HistoryStore for Unused {
        async fn append_history_node(
            &self,
            _: &BranchId,
            _: &HistoryNode,
        ) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn read_history_nodes(
            &self,
            _: &BranchId,
            _: i64,
            _: i64,
            _: Option<(i64, i64)>,
            _: usize,
        ) -> Result<Vec<HistoryNode>, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn delete_history_branch(&self, _: &BranchId) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
    }

    #[async_trait]
    impl TaskQueueStore for Unused {
        async fn lease_task_queue(&self, _: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn update_task_queue(
            &self,
            _: &TaskQueueKey,
            _: RangeId,
            _: TaskId,
        ) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn create_queue_tasks(
            &self,
            _: &TaskQueueKey,
            _: RangeId,
            _: &[QueueTask],
        ) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn get_queue_tasks(
            &self,
            _: &TaskQueueKey,
            _: TaskId,
            _: usize,
        ) -> Result<Vec<QueueTask>, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn delete_queue_task(&self, _: &TaskQueueKey, _: TaskId) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn delete_queue_tasks_through(
            &self,
            _: &TaskQueueKey,
            _: TaskId,
        ) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
    }

    #[async_trait]
    impl MembershipStore for Unused {
        async fn heartbeat_member(&self, _: &MemberRow, _: Duration) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
    }

    #[async_trait]
    impl NamespaceStore for Unused {
        async fn create_namespace(&self, _: &NamespaceRecord) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn get_namespace_by_name(
            &self,
            _: &str,
        ) -> Result<Option<NamespaceRecord>, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn get_namespace_by_id(
            &self,
            _: &NamespaceId,
        ) -> Result<Option<NamespaceRecord>, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn update_namespace(&self, _: i64, _: &NamespaceRecord) -> Result<(), StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
        async fn list_namespaces(
            &self,
            _: Option<&str>,
            _: usize,
        ) -> Result<Vec<NamespaceRecord>, StoreError> {
            Err(StoreError::Internal("unused".into()))
        }
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
