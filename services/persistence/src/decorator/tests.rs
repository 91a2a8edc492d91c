use std::sync::Mutex;

use super::*;
use crate::test_stores::{self, Unused};

/// Operation names and batch sizes, in call order.
type Seen = Vec<(&'static str, Option<usize>)>;

/// Records what it sees and forwards the call.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Seen>>);

impl Recording {
    fn seen(&self) -> Seen {
        self.0.lock().expect("log").clone()
    }
}

impl Around for Recording {
    async fn around<T, E, F>(&self, op: Operation, batch: Option<usize>, call: F) -> Result<T, E>
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send,
    {
        self.0.lock().expect("log").push((op.name(), batch));
        call.await
    }
}

/// [`Recording`], with history batches split into single appends.
#[derive(Clone, Default)]
struct SplitRecording(Recording);

impl Around for SplitRecording {
    const SPLIT_HISTORY_BATCHES: bool = true;

    async fn around<T, E, F>(&self, op: Operation, batch: Option<usize>, call: F) -> Result<T, E>
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send,
    {
        self.0.around(op, batch, call).await
    }
}

fn unused() -> Persistence {
    Persistence::from_backend(Arc::new(Unused))
}

fn branch() -> BranchId {
    BranchId {
        tree_id: "t".into(),
        branch_id: "b".into(),
    }
}

fn node(node_id: i64) -> HistoryNode {
    HistoryNode {
        node_id,
        txn_id: 1,
        events: Vec::new(),
    }
}

fn queue() -> TaskQueueKey {
    TaskQueueKey {
        namespace_id: NamespaceId("ns".into()),
        name: "q".into(),
        task_type: 1,
        partition: 0,
    }
}

fn namespace() -> NamespaceRecord {
    NamespaceRecord {
        id: NamespaceId("ns".into()),
        name: "ns".into(),
        detail: Vec::new(),
        notification_version: 1,
    }
}

fn execution() -> ExecutionKey {
    ExecutionKey {
        namespace_id: NamespaceId("ns".into()),
        workflow_id: "wf".into(),
        run_id: "run".into(),
    }
}

/// Calls every store method once; every call fails (the stores are [`Unused`]).
async fn call_everything(p: &Persistence) {
    let unused = || StoreError::Internal("unused".into());
    let ns = NamespaceId("ns".into());
    let shard = ShardId(1);
    let (min, max) = (TaskKey::MIN, TaskKey::MAX);
    let timer = TaskCategory::Timer;
    let metadata = ClusterMetadata {
        cluster_name: "c".into(),
        num_shards: 1,
    };
    let record = ShardRecord {
        shard_id: shard,
        range_id: RangeId(1),
        info: Vec::new(),
    };
    let row = MemberRow {
        host_id: "a".into(),
        role: "history".into(),
        rpc_address: "127.0.0.1:1".into(),
        session_start_ms: 0,
        last_heartbeat_ms: 0,
    };
    let write = ExecutionWrite {
        visibility: None,
        key: execution(),
        expected_version: None,
        new_version: 1,
        state: Vec::new(),
        current: None,
        tasks: Vec::new(),
    };
    let tasks = [
        QueueTask {
            task_id: 1,
            priority: QueueTask::DEFAULT_PRIORITY,
            data: Vec::new(),
        },
        QueueTask {
            task_id: 2,
            priority: QueueTask::DEFAULT_PRIORITY,
            data: Vec::new(),
        },
    ];
    let e = &p.executions;
    let (h, q, n) = (&p.history, &p.task_queues, &p.namespaces);

    assert_eq!(
        p.cluster.init_cluster_metadata(&metadata).await,
        Err(unused())
    );
    assert_eq!(e.get_or_create_shard(shard, &[]).await, Err(unused()));
    assert_eq!(e.update_shard(RangeId(1), &record).await, Err(unused()));
    assert_eq!(
        e.get_current_execution(shard, &ns, "wf").await,
        Err(unused())
    );
    assert_eq!(e.get_execution(shard, &execution()).await, Err(unused()));
    assert_eq!(
        e.commit(shard, RangeId(1), &[write.clone(), write.clone()])
            .await,
        Err(CommitError::Store(unused())),
        "a commit's error passes through as it is"
    );
    assert!(
        !e.commits_history(),
        "forwarded: the inner store keeps history apart"
    );
    let together = e
        .commit_with_history(
            shard,
            RangeId(1),
            &[(branch(), node(1))],
            &[write.clone(), write],
        )
        .await;
    assert!(
        matches!(together, Err(CommitError::Store(StoreError::Internal(_)))),
        "{together:?}"
    );
    assert_eq!(
        e.delete_execution(shard, RangeId(1), &execution()).await,
        Err(unused())
    );
    assert_eq!(e.get_tasks(shard, timer, min, max, 10).await, Err(unused()));
    assert_eq!(e.delete_task(shard, timer, min).await, Err(unused()));
    assert_eq!(
        e.delete_tasks_before(shard, RangeId(1), timer, max).await,
        Err(unused())
    );
    assert_eq!(
        h.append_history_node(&branch(), &node(1)).await,
        Err(unused())
    );
    assert_eq!(
        h.append_history_nodes(&[(branch(), node(1)), (branch(), node(2))])
            .await,
        Err(unused())
    );
    assert_eq!(
        h.read_history_nodes(&branch(), 1, 10, None, 10).await,
        Err(unused())
    );
    assert_eq!(h.delete_history_branch(&branch()).await, Err(unused()));
    assert_eq!(q.lease_task_queue(&queue()).await, Err(unused()));
    assert_eq!(
        q.update_task_queue(&queue(), RangeId(1), 0).await,
        Err(unused())
    );
    assert_eq!(
        q.create_queue_tasks(&queue(), RangeId(1), &tasks).await,
        Err(unused())
    );
    assert_eq!(q.get_queue_tasks(&queue(), 3, 0, 10).await, Err(unused()));
    assert_eq!(q.delete_queue_task(&queue(), 3, 1).await, Err(unused()));
    assert_eq!(
        q.delete_queue_tasks_through(&queue(), 3, 1).await,
        Err(unused())
    );
    assert_eq!(n.create_namespace(&namespace()).await, Err(unused()));
    assert_eq!(n.get_namespace_by_name("ns").await, Err(unused()));
    assert_eq!(n.get_namespace_by_id(&ns).await, Err(unused()));
    assert_eq!(n.update_namespace(1, &namespace()).await, Err(unused()));
    assert_eq!(n.list_namespaces(None, 10).await, Err(unused()));
    assert_eq!(
        p.membership
            .heartbeat_member(&row, Duration::from_secs(1))
            .await,
        Err(unused())
    );
    assert_eq!(p.membership.live_members().await, Err(unused()));
}

#[tokio::test]
async fn every_store_method_reaches_the_hook_once_under_its_own_name() {
    let hook = Recording::default();
    let p = Decorated::new(unused(), hook.clone()).into_persistence();
    call_everything(&p).await;
    assert_eq!(
        hook.seen(),
        vec![
            ("init_cluster_metadata", None),
            ("get_or_create_shard", None),
            ("update_shard", None),
            ("get_current_execution", None),
            ("get_execution", None),
            ("commit", Some(2)),
            ("commit", Some(2)),
            ("delete_execution", None),
            ("get_tasks", None),
            ("delete_task", None),
            ("delete_tasks_before", None),
            ("append_history_node", None),
            ("append_history_nodes", Some(2)),
            ("read_history_nodes", None),
            ("delete_history_branch", None),
            ("lease_task_queue", None),
            ("update_task_queue", None),
            ("create_queue_tasks", Some(2)),
            ("get_queue_tasks", None),
            ("delete_queue_task", None),
            ("delete_queue_tasks_through", None),
            ("create_namespace", None),
            ("get_namespace_by_name", None),
            ("get_namespace_by_id", None),
            ("update_namespace", None),
            ("list_namespaces", None),
            ("heartbeat_member", None),
            ("live_members", None),
        ]
    );
}

/// A history store that accepts every append and counts them.
#[derive(Default)]
struct Appends(Mutex<Vec<i64>>);

#[async_trait]
impl HistoryStore for Appends {
    async fn append_history_node(
        &self,
        _: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError> {
        self.0.lock().expect("log").push(node.node_id);
        Ok(())
    }
    async fn read_history_nodes(
        &self,
        _: &BranchId,
        _: i64,
        _: i64,
        _: Option<(i64, i64)>,
        _: usize,
    ) -> Result<Vec<HistoryNode>, StoreError> {
        Ok(Vec::new())
    }
    async fn delete_history_branch(&self, _: &BranchId) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_splitting_hook_sees_one_append_per_node_of_a_batch() {
    let appends = Arc::new(Appends::default());
    let mut inner = test_stores::with_executions(Arc::new(Unused));
    inner.history = appends.clone();
    let hook = SplitRecording::default();
    let p = Decorated::new(inner, hook.clone()).into_persistence();
    let batch = [
        (branch(), node(1)),
        (branch(), node(4)),
        (branch(), node(9)),
    ];
    assert_eq!(p.history.append_history_nodes(&batch).await, Ok(()));
    assert_eq!(hook.0.seen(), vec![("append_history_node", None); 3]);
    assert_eq!(*appends.0.lock().expect("log"), vec![1, 4, 9]);
}
