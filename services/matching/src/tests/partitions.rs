//! Task queues with several partitions: tasks, backlogs, polls and queries cross partitions
//! through the root, every task reaches exactly one poller, and a node that lets go of a
//! partition hands it over intact. Each scenario runs on one engine that forwards to itself
//! and on two engines over one store that forward to each other through a router.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, Weak};

use async_trait::async_trait;
use prost::Message;
use temper_proto::internal::v1::{
    AddActivityTaskResponse, AddWorkflowTaskResponse, DescribeTaskQueueRequest,
    ForceLoadTaskQueuePartitionRequest, ForceLoadTaskQueuePartitionResponse, QueryWorkflowRequest,
    QueryWorkflowResponse, RespondQueryTaskCompletedRequest, RespondQueryTaskCompletedResponse,
    ShutdownWorkerRequest, ShutdownWorkerResponse,
};
use temper_proto::persistence::v1::TaskToken;
use temper_proto::temporal::api::enums::v1::TaskQueueType;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue as TaskQueueRef;
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeTaskQueueRequest as ApiDescribe, DescribeTaskQueueResponse,
};
use temper_types::{PartitionConfig, parse_partition, partition_name};
use tokio::time::Instant;
use tonic::Response;

use super::query::{answer_request, answered_text, query_request};
use super::*;

const PARTITIONS: u32 = 4;

/// Sends each call to the engine that owns the partition it names (by default partition
/// `n` lives on engine `n % engines`), the way the cluster's routing client does.
struct Router {
    engines: Vec<Weak<MatchingEngine>>,
    moved: Mutex<HashMap<u32, usize>>,
    /// The partitions ForceLoadTaskQueuePartition was routed for, by name.
    force_loads: Mutex<Vec<String>>,
}

impl Router {
    fn owner(&self, partition: u32) -> usize {
        let moved = self.moved.lock().expect("router lock");
        moved
            .get(&partition)
            .copied()
            .unwrap_or(partition as usize % self.engines.len())
    }

    fn pick(&self, tq: Option<&TaskQueueRef>) -> Result<Arc<MatchingEngine>, Status> {
        let tq = tq.ok_or_else(|| Status::invalid_argument("no task queue"))?;
        let partition = if tq.kind == TaskQueueKind::Sticky as i32 {
            0
        } else {
            parse_partition(&tq.name).1
        };
        self.engines[self.owner(partition)]
            .upgrade()
            .ok_or_else(|| Status::unavailable("engine gone"))
    }
}

#[async_trait]
impl MatchingService for Router {
    async fn add_workflow_task(
        &self,
        r: Request<AddWorkflowTaskRequest>,
    ) -> Result<Response<AddWorkflowTaskResponse>, Status> {
        let e = self.pick(r.get_ref().task_queue.as_ref())?;
        e.add_workflow_task(r).await
    }

    async fn add_activity_task(
        &self,
        r: Request<AddActivityTaskRequest>,
    ) -> Result<Response<AddActivityTaskResponse>, Status> {
        let e = self.pick(r.get_ref().task_queue.as_ref())?;
        e.add_activity_task(r).await
    }

    async fn poll_workflow_task_queue(
        &self,
        r: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        let tq = r
            .get_ref()
            .request
            .as_ref()
            .and_then(|p| p.task_queue.as_ref());
        let e = self.pick(tq)?;
        e.poll_workflow_task_queue(r).await
    }

    async fn poll_activity_task_queue(
        &self,
        r: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        let tq = r
            .get_ref()
            .request
            .as_ref()
            .and_then(|p| p.task_queue.as_ref());
        let e = self.pick(tq)?;
        e.poll_activity_task_queue(r).await
    }

    async fn describe_task_queue(
        &self,
        r: Request<DescribeTaskQueueRequest>,
    ) -> Result<Response<DescribeTaskQueueResponse>, Status> {
        let tq = r
            .get_ref()
            .request
            .as_ref()
            .and_then(|p| p.task_queue.as_ref());
        let e = self.pick(tq)?;
        e.describe_task_queue(r).await
    }

    async fn shutdown_worker(
        &self,
        _: Request<ShutdownWorkerRequest>,
    ) -> Result<Response<ShutdownWorkerResponse>, Status> {
        Err(Status::unimplemented("not routed in these tests"))
    }

    async fn query_workflow(
        &self,
        r: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        let e = self.pick(r.get_ref().task_queue.as_ref())?;
        e.query_workflow(r).await
    }

    async fn respond_query_task_completed(
        &self,
        r: Request<RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<RespondQueryTaskCompletedResponse>, Status> {
        let e = self.pick(r.get_ref().task_queue.as_ref())?;
        e.respond_query_task_completed(r).await
    }

    async fn force_load_task_queue_partition(
        &self,
        r: Request<ForceLoadTaskQueuePartitionRequest>,
    ) -> Result<Response<ForceLoadTaskQueuePartitionResponse>, Status> {
        self.force_loads.lock().expect("router lock").push(
            r.get_ref()
                .task_queue
                .as_ref()
                .map(|q| q.name.clone())
                .unwrap_or_default(),
        );
        let e = self.pick(r.get_ref().task_queue.as_ref())?;
        e.force_load_task_queue_partition(r).await
    }
}

/// One or two engines over one store and history, reached through a router.
struct Cluster {
    store: Arc<fakes::FakeStore>,
    history: Arc<fakes::FakeHistory>,
    engines: Vec<Arc<MatchingEngine>>,
    router: Arc<Router>,
}

fn config() -> MatchingConfig {
    MatchingConfig {
        partitions: PartitionConfig::uniform(PARTITIONS),
        ..MatchingConfig::default()
    }
}

impl Cluster {
    /// `engines == 1`: the engine forwards to itself (no forwarder set).
    fn new(engines: usize, config: MatchingConfig) -> Self {
        let store = Arc::new(fakes::FakeStore::default());
        let history = Arc::new(fakes::FakeHistory::default());
        let engines: Vec<Arc<MatchingEngine>> = (0..engines)
            .map(|_| {
                Arc::new(MatchingEngine::new(
                    store.clone(),
                    history.clone(),
                    config.clone(),
                ))
            })
            .collect();
        let router = Arc::new(Router {
            engines: engines.iter().map(Arc::downgrade).collect(),
            moved: Mutex::new(HashMap::new()),
            force_loads: Mutex::new(Vec::new()),
        });
        if engines.len() > 1 {
            for e in &engines {
                e.set_forwarder(router.clone());
            }
        }
        Self {
            store,
            history,
            engines,
            router,
        }
    }

    fn both(config: MatchingConfig) -> [Self; 2] {
        [Self::new(1, config.clone()), Self::new(2, config)]
    }

    fn svc(&self) -> Arc<dyn MatchingService> {
        self.router.clone()
    }

    fn key(&self, task_type: QueueType, partition: u32) -> QueueKey {
        key("orders", task_type, QueueKind::Normal).with_partition(partition)
    }

    /// Polls waiting on a partition, on whichever engine has it loaded.
    fn waiting(&self, task_type: QueueType, partition: u32) -> usize {
        let k = self.key(task_type, partition);
        self.engines
            .iter()
            .filter_map(|e| e.core.loaded(&k))
            .map(|q| q.waiting_pollers())
            .sum()
    }

    fn stored(&self, task_type: QueueType, partition: u32) -> usize {
        self.store
            .task_ids(&self.key(task_type, partition).store_key())
            .len()
    }

    fn shutdown(&self) {
        for e in &self.engines {
            e.shutdown();
        }
    }
}

fn on(partition: u32) -> TaskQueueRef {
    normal(&partition_name("orders", partition))
}

async fn add_on(
    svc: &dyn MatchingService,
    partition: u32,
    workflow_id: &str,
) -> Result<(), Status> {
    svc.add_workflow_task(Request::new(add_workflow_request(
        on(partition),
        workflow_id,
        2,
    )))
    .await
    .map(|_| ())
}

async fn add_activity_on(
    svc: &dyn MatchingService,
    partition: u32,
    workflow_id: &str,
) -> Result<(), Status> {
    svc.add_activity_task(Request::new(AddActivityTaskRequest {
        directive: None,
        namespace_id: NS.to_owned(),
        execution: Some(execution(workflow_id)),
        task_queue: Some(on(partition)),
        scheduled_event_id: 5,
        schedule_to_start_timeout: None,
        attempt: 1,
        priority: None,
    }))
    .await
    .map(|_| ())
}

fn spawn_poll(
    svc: Arc<dyn MatchingService>,
    partition: u32,
    identity: &str,
    timeout_ms: i64,
) -> tokio::task::JoinHandle<Result<PollWorkflowTaskQueueResponse, Status>> {
    let identity = identity.to_owned();
    tokio::spawn(async move {
        svc.poll_workflow_task_queue(Request::new(PollWorkflowTaskQueueRequest {
            namespace_id: NS.to_owned(),
            poller_id: format!("poll-{}", uuid::Uuid::new_v4()),
            request: Some(ApiPollWorkflow {
                namespace: "default".to_owned(),
                task_queue: Some(on(partition)),
                identity: identity.clone(),
                worker_instance_key: format!("{identity}-instance"),
                ..Default::default()
            }),
            long_poll_timeout_ms: timeout_ms,
        }))
        .await
        .map(Response::into_inner)
    })
}

async fn poll_activity_on(
    svc: &dyn MatchingService,
    partition: u32,
    timeout_ms: i64,
) -> Result<PollActivityTaskQueueResponse, Status> {
    svc.poll_activity_task_queue(Request::new(PollActivityTaskQueueRequest {
        namespace_id: NS.to_owned(),
        poller_id: format!("poll-{}", uuid::Uuid::new_v4()),
        request: Some(ApiPollActivity {
            namespace: "default".to_owned(),
            task_queue: Some(on(partition)),
            identity: "activity-worker".to_owned(),
            ..Default::default()
        }),
        long_poll_timeout_ms: timeout_ms,
        ..Default::default()
    }))
    .await
    .map(Response::into_inner)
}

#[tokio::test(start_paused = true)]
async fn a_task_added_on_partition_3_reaches_a_poller_of_partition_1() {
    for c in Cluster::both(config()) {
        let poll = spawn_poll(c.svc(), 1, "worker-1", 60_000);
        // The poll found nothing on partition 1 and went on to wait at the root.
        eventually("the poll waits at the root", || {
            c.waiting(QueueType::Workflow, 0) == 1
        })
        .await;
        add_on(&*c.svc(), 3, "wf-1").await.expect("add");
        let resp = poll.await.expect("poll task").expect("poll");
        assert_eq!(resp.task_token, token("wf-1", 2));
        assert_eq!(
            c.stored(QueueType::Workflow, 3),
            0,
            "sync matched, never stored"
        );
        let calls = c.history.calls();
        assert_eq!(calls.len(), 1, "started once: {calls:?}");
        assert_eq!(calls[0].identity, "worker-1");
        c.shutdown();
    }
}

#[tokio::test(start_paused = true)]
async fn a_backlog_on_partition_2_drains_to_pollers_of_the_root_and_back() {
    for c in Cluster::both(config()) {
        for i in 0..5 {
            add_on(&*c.svc(), 2, &format!("wf-{i}")).await.expect("add");
        }
        assert_eq!(
            c.stored(QueueType::Workflow, 2),
            5,
            "nobody polled: stored on 2"
        );

        let mut got = Vec::new();
        for _ in 0..5 {
            let resp = spawn_poll(c.svc(), 0, "root-worker", 60_000)
                .await
                .expect("poll task")
                .expect("poll");
            got.push(String::from_utf8(resp.task_token).expect("token"));
        }
        got.sort();
        let want: Vec<String> = (0..5).map(|i| format!("wf-{i}/2")).collect();
        assert_eq!(got, want);
        eventually("partition 2's backlog is deleted", || {
            c.stored(QueueType::Workflow, 2) == 0
        })
        .await;

        // And the other way: the root's backlog reaches a poller of partition 3.
        add_on(&*c.svc(), 0, "wf-root").await.expect("add");
        assert_eq!(c.stored(QueueType::Workflow, 0), 1);
        let resp = spawn_poll(c.svc(), 3, "child-worker", 60_000)
            .await
            .expect("poll task")
            .expect("poll");
        assert_eq!(resp.task_token, token("wf-root", 2));
        c.shutdown();
    }
}

#[tokio::test(start_paused = true)]
async fn a_query_reaches_a_poller_of_partition_2() {
    for c in Cluster::both(config()) {
        // History names the queue itself; a query named to a child goes to the root too.
        for named in [0, 3] {
            let poll = spawn_poll(c.svc(), 2, "worker-2", 60_000);
            eventually("the poll waits at the root", || {
                c.waiting(QueueType::Workflow, 0) == 1
            })
            .await;
            let svc = c.svc();
            let call = tokio::spawn(async move {
                svc.query_workflow(Request::new(query_request(on(named), "wf-q", 10_000)))
                    .await
                    .map(Response::into_inner)
            });
            let task = poll.await.expect("poll task").expect("poll");
            assert!(task.query.is_some(), "the poller got the query task");
            let t = TaskToken::decode(task.task_token.as_slice()).expect("query token");
            assert_eq!(t.task_queue, "orders", "answered through the root");
            c.svc()
                .respond_query_task_completed(Request::new(answer_request(&task.task_token, "42")))
                .await
                .expect("answer");
            let answer = call.await.expect("query task").expect("query");
            assert_eq!(answered_text(answer), "42");
        }
        assert!(c.history.calls().is_empty(), "queries never reach history");
        c.shutdown();
    }
}

/// A small deterministic generator for partition choices.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(n)) as u32
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_partitions_deliver_every_task_exactly_once() {
    const TASKS: usize = 300;
    let config = MatchingConfig {
        forward_retry: Duration::from_millis(20),
        ..config()
    };
    for c in Cluster::both(config) {
        let delivered: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let done = tokio_util::sync::CancellationToken::new();
        let mut pollers = Vec::new();
        for p in 0..12u64 {
            let svc = c.svc();
            let delivered = delivered.clone();
            let done = done.clone();
            pollers.push(tokio::spawn(async move {
                let mut rng = Lcg(p + 1);
                while !done.is_cancelled() {
                    let partition = rng.below(PARTITIONS);
                    let poll = spawn_poll(svc.clone(), partition, &format!("w{p}"), 50);
                    if let Ok(Ok(resp)) = poll.await
                        && !resp.task_token.is_empty()
                    {
                        delivered.lock().expect("delivered").push(resp.task_token);
                    }
                }
            }));
        }
        let mut adds = Vec::new();
        let mut rng = Lcg(99);
        for i in 0..TASKS {
            let svc = c.svc();
            let partition = rng.below(PARTITIONS);
            adds.push(tokio::spawn(async move {
                add_on(&*svc, partition, &format!("wf-{i}")).await
            }));
        }
        for add in adds {
            add.await.expect("add task").expect("add");
        }
        eventually("every task is delivered", || {
            delivered.lock().expect("delivered").len() >= TASKS
        })
        .await;
        done.cancel();
        for p in pollers {
            p.await.expect("poller");
        }
        let delivered = delivered.lock().expect("delivered").clone();
        let unique: HashSet<&Vec<u8>> = delivered.iter().collect();
        assert_eq!(unique.len(), TASKS, "every task delivered");
        assert_eq!(delivered.len(), TASKS, "no task delivered twice");
        let calls = c.history.calls();
        let started: HashSet<&str> = calls.iter().map(|c| c.workflow_id.as_str()).collect();
        assert_eq!(calls.len(), TASKS, "history started each task once");
        assert_eq!(started.len(), TASKS);
        for n in 0..PARTITIONS {
            eventually("every backlog drains", || {
                c.stored(QueueType::Workflow, n) == 0
            })
            .await;
        }
        c.shutdown();
    }
}

#[tokio::test(start_paused = true)]
async fn released_partitions_answer_their_polls_and_move_with_their_backlog() {
    let c = Cluster::new(2, config());
    // Partitions 0 and 2 live on engine 0, 1 and 3 on engine 1.
    for i in 0..3 {
        add_activity_on(&*c.svc(), 2, &format!("act-{i}"))
            .await
            .expect("add");
    }
    assert_eq!(
        c.stored(QueueType::Activity, 2),
        3,
        "nobody polled: stored on 2"
    );
    // Two workflow polls on partition 2: one forwards to the root, the other waits there.
    let first = spawn_poll(c.svc(), 2, "worker-a", 60_000);
    let second = spawn_poll(c.svc(), 2, "worker-b", 60_000);
    eventually("one poll waits on 2, one at the root", || {
        c.waiting(QueueType::Workflow, 2) == 1 && c.waiting(QueueType::Workflow, 0) == 1
    })
    .await;

    // The ring moves partition 2 to engine 1.
    c.router.moved.lock().expect("router lock").insert(2, 1);
    let t0 = Instant::now();
    c.engines[0].retain_partitions(|k| k.partition != 2);
    assert!(
        c.engines[0]
            .core
            .loaded(&c.key(QueueType::Activity, 2))
            .is_none()
    );
    let (mut first, mut second) = (first, second);
    let (answered, forwarded) = tokio::select! {
        r = &mut first => (r, second),
        r = &mut second => (r, first),
    };
    let answered = answered.expect("poll task").expect("poll");
    assert_eq!(
        answered,
        PollWorkflowTaskQueueResponse::default(),
        "answered empty"
    );
    assert_eq!(Instant::now(), t0, "at once");

    // Engine 1 serves partition 2 now, backlog and all.
    let mut got = Vec::new();
    for _ in 0..3 {
        let resp = poll_activity_on(&*c.svc(), 2, 10_000).await.expect("poll");
        got.push(String::from_utf8(resp.task_token).expect("token"));
    }
    got.sort();
    assert_eq!(got, ["act-0/5", "act-1/5", "act-2/5"]);
    assert!(
        c.engines[1]
            .core
            .loaded(&c.key(QueueType::Activity, 2))
            .is_some()
    );

    // The poll that went to the root still gets partition 2's next task, now from engine 1.
    add_on(&*c.svc(), 2, "wf-after").await.expect("add");
    let resp = forwarded.await.expect("poll task").expect("poll");
    assert_eq!(resp.task_token, token("wf-after", 2));
    c.shutdown();
}

/// The partitions of `c`'s activity queue loaded on some engine.
fn loaded_activity_partitions(c: &Cluster) -> Vec<u32> {
    (0..PARTITIONS)
        .filter(|p| {
            c.engines
                .iter()
                .any(|e| e.core.loaded(&c.key(QueueType::Activity, *p)).is_some())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_child_that_moved_serves_its_backlog_to_the_roots_pollers_without_a_poll_of_its_own() {
    let c = Cluster::new(2, config());
    // Partitions 0 and 2 live on engine 0, 1 and 3 on engine 1. Nobody polls: the tasks
    // added on partition 3 are stored there.
    for i in 0..3 {
        add_activity_on(&*c.svc(), 3, &format!("act-{i}"))
            .await
            .expect("add");
    }
    assert_eq!(c.stored(QueueType::Activity, 3), 3);

    // Engine 1 lets go of partition 3 (the ring gave it to engine 0); nothing loads it again
    // until the root's node hears that the ring changed.
    c.router.moved.lock().expect("router lock").insert(3, 0);
    c.engines[1].retain_partitions(|k| k.partition != 3);
    assert!(!loaded_activity_partitions(&c).contains(&3));
    c.engines[0].load_children_of_roots();

    // Workers polling only the root get partition 3's backlog.
    let mut got = Vec::new();
    for _ in 0..3 {
        let resp = poll_activity_on(&*c.svc(), 0, 10_000).await.expect("poll");
        got.push(String::from_utf8(resp.task_token).expect("token"));
    }
    got.sort();
    assert_eq!(got, ["act-0/5", "act-1/5", "act-2/5"]);
    assert!(
        c.engines[0]
            .core
            .loaded(&c.key(QueueType::Activity, 3))
            .is_some(),
        "partition 3 now loaded on its new owner"
    );
    c.shutdown();
}

#[tokio::test(start_paused = true)]
async fn a_root_loaded_after_a_restart_loads_its_children_and_serves_their_backlog() {
    let store = Arc::new(fakes::FakeStore::default());
    let history = Arc::new(fakes::FakeHistory::default());
    let before = Arc::new(MatchingEngine::new(
        store.clone(),
        history.clone(),
        config(),
    ));
    for i in 0..2 {
        add_activity_on(&*before, 2, &format!("act-{i}"))
            .await
            .expect("add");
    }
    before.shutdown();
    before.wait_stopped().await;
    drop(before);

    // After the restart only the root is polled; it has partition 2 loaded, whose backlog
    // reaches the root's poller.
    let after = Arc::new(MatchingEngine::new(store.clone(), history, config()));
    let mut got = Vec::new();
    for _ in 0..2 {
        let resp = poll_activity_on(&*after, 0, 10_000).await.expect("poll");
        got.push(String::from_utf8(resp.task_token).expect("token"));
    }
    got.sort();
    assert_eq!(got, ["act-0/5", "act-1/5"]);
    let key = key("orders", QueueType::Activity, QueueKind::Normal);
    for p in 1..PARTITIONS {
        assert!(
            after.core.loaded(&key.with_partition(p)).is_some(),
            "partition {p} loaded"
        );
    }
    after.shutdown();
}

#[tokio::test(start_paused = true)]
async fn only_normal_roots_of_partitioned_queues_load_children() {
    let c = Cluster::new(2, config());
    add_activity_on(&*c.svc(), 1, "act").await.expect("add");
    // The child's offer loaded the root, which had every child loaded.
    eventually("every partition loaded", || {
        loaded_activity_partitions(&c) == [0, 1, 2, 3]
    })
    .await;
    let routed = c.router.force_loads.lock().expect("router lock").clone();
    assert_eq!(
        routed,
        (1..PARTITIONS)
            .map(|p| partition_name("orders", p))
            .collect::<Vec<_>>(),
        "one ForceLoad per child, none for the root"
    );
    c.shutdown();

    // One partition: nothing to load.
    let single = Cluster::new(
        2,
        MatchingConfig {
            partitions: PartitionConfig::uniform(1),
            ..MatchingConfig::default()
        },
    );
    add_activity_on(&*single.svc(), 0, "act")
        .await
        .expect("add");
    single.engines[0].load_children_of_roots();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(single.router.force_loads.lock().expect("lock").is_empty());
    single.shutdown();

    // A Nexus queue has no backlog: ForceLoad refuses it.
    let err = c.engines[0]
        .force_load_task_queue_partition(Request::new(ForceLoadTaskQueuePartitionRequest {
            namespace_id: NS.to_owned(),
            task_queue: Some(on(1)),
            task_queue_type: TaskQueueType::Nexus as i32,
            version: String::new(),
        }))
        .await
        .expect_err("nexus");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(start_paused = true)]
#[allow(deprecated)]
async fn describing_the_root_covers_every_partition() {
    for c in Cluster::both(config()) {
        // worker-a and worker-b poll only partition 3: one of them waits at the root, the
        // other on partition 3, where only the fan-out sees it.
        let a = spawn_poll(c.svc(), 3, "worker-a", 60_000);
        let b = spawn_poll(c.svc(), 3, "worker-b", 60_000);
        eventually("one poll waits on 3, one at the root", || {
            c.waiting(QueueType::Workflow, 3) == 1 && c.waiting(QueueType::Workflow, 0) == 1
        })
        .await;
        // Two activity tasks stored on partition 1, one on the root.
        for (partition, wf) in [(1, "act-1"), (1, "act-2"), (0, "act-3")] {
            add_activity_on(&*c.svc(), partition, wf)
                .await
                .expect("add");
        }

        let describe = |tq: TaskQueueRef, task_queue_type: TaskQueueType| {
            let svc = c.svc();
            async move {
                svc.describe_task_queue(Request::new(DescribeTaskQueueRequest {
                    namespace_id: NS.to_owned(),
                    request: Some(ApiDescribe {
                        namespace: "default".to_owned(),
                        task_queue: Some(tq),
                        task_queue_type: task_queue_type as i32,
                        include_task_queue_status: true,
                        report_stats: true,
                        ..Default::default()
                    }),
                }))
                .await
                .expect("describe")
                .into_inner()
            }
        };
        let resp = describe(on(0), TaskQueueType::Workflow).await;
        let mut ids: Vec<&str> = resp.pollers.iter().map(|p| p.identity.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["worker-a", "worker-b"]);

        let resp = describe(on(0), TaskQueueType::Activity).await;
        assert_eq!(resp.stats.map(|s| s.approximate_backlog_count), Some(3));
        assert_eq!(
            resp.task_queue_status.map(|s| s.backlog_count_hint),
            Some(3)
        );
        // A partition by its own name reports only itself.
        let resp = describe(on(1), TaskQueueType::Activity).await;
        assert_eq!(resp.stats.map(|s| s.approximate_backlog_count), Some(2));

        c.shutdown();
        for poll in [a, b] {
            poll.await.expect("poll task").expect("poll");
        }
    }
}

#[tokio::test]
async fn one_partition_by_default_never_forwards() {
    let h = Harness::new();
    // A name that merely looks like a partition is a queue of its own.
    let odd = "/_sys/orders/x";
    add_workflow(&h.engine, normal(odd), "wf-1", 2)
        .await
        .expect("add");
    let k = key(odd, QueueType::Workflow, QueueKind::Normal);
    assert_eq!(h.store.task_ids(&k.store_key()).len(), 1);
    let resp = poll_workflow(&h.engine, normal(odd), "w", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
    // Partition 0 of "orders" never sees tasks of the odd queue.
    let resp = h.poll_workflow("orders", "w", 10).await.expect("poll");
    assert!(resp.task_token.is_empty());
}

#[tokio::test]
async fn a_stale_owner_drops_what_it_held_once_its_lease_is_lost() {
    let store = Arc::new(fakes::FakeStore::default());
    let history = Arc::new(fakes::FakeHistory::default());
    let a = MatchingEngine::new(store.clone(), history.clone(), config());
    let b = MatchingEngine::new(store.clone(), history.clone(), config());
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);

    // Engine a holds the root partition with one stored task in memory.
    add_workflow(&a, normal("orders"), "wf-0", 2)
        .await
        .expect("add");
    // Engine b loads it too (the ring moved it), takes the lease and hands the task out.
    let resp = poll_workflow(&b, normal("orders"), "worker-b", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-0", 2));
    eventually("b deletes the started task", || {
        store.task_ids(&k.store_key()).is_empty()
    })
    .await;

    // a's next write fails on the lease: it drops its stale copy of wf-0 instead of
    // handing it out again, and serves from the store under a new lease.
    add_workflow(&a, normal("orders"), "wf-1", 2)
        .await
        .expect("add");
    let resp = poll_workflow(&a, normal("orders"), "worker-a", 1_000)
        .await
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-1", 2));
    let started: Vec<String> = history.calls().into_iter().map(|c| c.workflow_id).collect();
    assert_eq!(started, ["wf-0", "wf-1"], "wf-0 started once");
    a.shutdown();
    b.shutdown();
}

/// With an ownership rule (the ring), a node serves only its partitions: once the ring
/// moves one away, its waiting polls leave, and any call for it answers `Unavailable` (the
/// router asks the owner) instead of taking the partition back.
#[tokio::test]
async fn a_node_serves_only_the_partitions_it_owns() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let store = Arc::new(fakes::FakeStore::default());
    let history = Arc::new(fakes::FakeHistory::default());
    let a = Arc::new(MatchingEngine::new(
        store.clone(),
        history.clone(),
        config(),
    ));
    let b = MatchingEngine::new(store.clone(), history.clone(), config());
    let a_owns = Arc::new(AtomicBool::new(true));
    let owns = a_owns.clone();
    a.set_ownership(move |_| owns.load(Ordering::SeqCst));
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);

    // a owns the root: a poll waits there.
    let poll_a = a.clone();
    let handle =
        tokio::spawn(
            async move { poll_workflow(&poll_a, normal("orders"), "worker-a", 30_000).await },
        );
    eventually("the poll waits on a", || {
        a.core.loaded(&k).is_some_and(|q| q.waiting_pollers() == 1)
    })
    .await;

    // The ring moves the root to b.
    a_owns.store(false, Ordering::SeqCst);
    let o = a_owns.clone();
    a.retain_partitions(move |_| o.load(Ordering::SeqCst));
    let polled = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the waiting poll leaves at once")
        .expect("poll task")
        .expect("answered empty");
    assert!(polled.task_token.is_empty());
    for err in [
        add_workflow(&a, normal("orders"), "wf-a", 2)
            .await
            .expect_err("a no longer serves it"),
        poll_workflow(&a, normal("orders"), "worker-a", 1_000)
            .await
            .expect_err("a no longer serves it"),
    ] {
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().contains("not owned"), "{}", err.message());
    }
    assert!(
        a.core.loaded(&k).is_none(),
        "a did not take the partition back"
    );

    add_workflow(&b, normal("orders"), "wf-b", 2)
        .await
        .expect("add on b");
    let resp = poll_workflow(&b, normal("orders"), "worker-b", 1_000)
        .await
        .expect("poll on b");
    assert_eq!(resp.task_token, token("wf-b", 2));
    a.shutdown();
    b.shutdown();
}

/// A node that took a partition while another still held it (a stale ring) may store tasks
/// under its own lease; the lease check makes the holder notice, reload, and hand them out.
#[tokio::test(start_paused = true)]
async fn a_lease_check_finds_tasks_another_node_stored() {
    let store = Arc::new(fakes::FakeStore::default());
    let history = Arc::new(fakes::FakeHistory::default());
    let checked = MatchingConfig {
        lease_check_interval: Some(Duration::from_secs(5)),
        ..config()
    };
    let a = Arc::new(MatchingEngine::new(store.clone(), history.clone(), checked));
    let b = MatchingEngine::new(store.clone(), history.clone(), config());
    let k = key("orders", QueueType::Workflow, QueueKind::Normal);
    let poll_a = a.clone();
    let waiting =
        tokio::spawn(
            async move { poll_workflow(&poll_a, normal("orders"), "worker-a", 60_000).await },
        );
    eventually("a's poll waits", || {
        a.core.loaded(&k).is_some_and(|q| q.waiting_pollers() == 1)
    })
    .await;
    // b stores a task under a lease it took from a (nobody polls b).
    add_workflow(&b, normal("orders"), "wf-stranded", 2)
        .await
        .expect("add on b");
    b.shutdown();
    assert_eq!(store.task_ids(&k.store_key()).len(), 1);
    // Within one check interval a notices, reloads the partition and its poll gets the task.
    let resp = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("a's poll is answered after the lease check")
        .expect("poll task")
        .expect("poll");
    assert_eq!(resp.task_token, token("wf-stranded", 2));
    a.shutdown();
}
