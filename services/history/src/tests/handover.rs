//! Shard ownership moving between two engines over one store, as the shard controller of a
//! cluster moves it: the old owner stops serving a released shard at once, the new owner
//! picks the workflow up where it was, and a stale owner that never noticed is fenced.

use std::collections::BTreeSet;

use temper_persistence::faulty::Op;
use tonic::Code;

use super::*;

fn node(store: &FaultyStore, name: &str, num_shards: u32) -> Arc<HistoryEngine> {
    HistoryEngine::new(
        HistoryConfig {
            num_shards,
            owner: name.into(),
            limits: Limits::default(),
            memory: Default::default(),
        },
        store.clone().into_persistence(),
        Arc::new(SystemClock),
    )
}

/// Nodes a and b over one store with 2 shards, both owned by a; with `controllers`, each
/// runs its shard controller.
async fn two_nodes_a_owning_both_shards(
    controllers: bool,
) -> (
    FaultyStore,
    Arc<FakeMatching>,
    Arc<HistoryEngine>,
    Arc<HistoryEngine>,
) {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let a = node(&store, "a", 2);
    let b = node(&store, "b", 2);
    if controllers {
        a.start_shard_controller(matching.clone(), crate::ShardControl::default());
        b.start_shard_controller(matching.clone(), crate::ShardControl::default());
    }
    a.set_owned_shards(shards(&[1, 2]), matching.clone()).await;
    (store, matching, a, b)
}

fn shards(ids: &[u32]) -> BTreeSet<ShardId> {
    ids.iter().copied().map(ShardId).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_shard_moves_to_its_new_owner() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let a = node(&store, "a", 4);
    let b = node(&store, "b", 4);
    a.start_shard_controller(matching.clone(), crate::ShardControl::default());
    b.start_shard_controller(matching.clone(), crate::ShardControl::default());
    a.set_owned_shards(shards(&[1, 2, 3, 4]), matching.clone())
        .await;
    assert_eq!(
        a.owned_shards(),
        shards(&[1, 2, 3, 4]).into_iter().collect::<Vec<_>>()
    );

    let run = start(&a, "moving", Duration::ZERO).await;
    let s = shard_id("moving", 4);

    // The ring moves the shard: a releases it first, then b acquires it.
    let rest: Vec<u32> = (1..=4).filter(|i| *i != s.0).collect();
    a.set_owned_shards(shards(&rest), matching.clone()).await;
    let err = signal(&a, "moving", "to-a")
        .await
        .expect_err("a released it");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("not owned"), "{}", err.message());
    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    assert_eq!(b.owned_shards(), vec![s]);

    signal(&b, "moving", "to-b").await.expect("b owns it now");
    let events = b
        .get_workflow_execution_history(Request::new(
            internal::GetWorkflowExecutionHistoryRequest {
                namespace_id: NS.into(),
                request: Some(ws::GetWorkflowExecutionHistoryRequest {
                    namespace: NS.into(),
                    execution: execution("moving", &run),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("history")
        .into_inner()
        .history
        .expect("events")
        .events;
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    let signaled = events
        .iter()
        .filter(|e| e.event_type == EventType::WorkflowExecutionSignaled as i32)
        .count();
    assert_eq!(signaled, 1, "only b's signal was written");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_is_fenced_and_its_controller_does_not_steal_back() {
    let (_store, matching, a, b) = two_nodes_a_owning_both_shards(true).await;
    let wf = "stale";
    start(&a, wf, Duration::ZERO).await;
    let s = shard_id(wf, 2);

    // b takes the shard while a still believes it owns it (a paused node, a slow ring).
    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    let err = signal(&a, wf, "from-stale-a")
        .await
        .expect_err("a's range id is stale");
    assert_eq!(err.code(), Code::Unavailable);
    // a's ring now agrees: it must not acquire the shard again on its next check.
    let rest: Vec<u32> = (1..=2).filter(|i| *i != s.0).collect();
    a.set_owned_shards(shards(&rest), matching.clone()).await;
    tokio::time::sleep(crate::ShardControl::default().check_interval + Duration::from_millis(500))
        .await;
    assert!(!a.owned_shards().contains(&s));
    signal(&b, wf, "from-b").await.expect("b still owns it");
    a.shutdown().await;
    b.shutdown().await;
}

/// A stale owner that never writes still finds out: the controller compares range ids with
/// the store and stops the shard, so it cannot answer from its stale cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_that_only_reads_stops_the_shard() {
    let (_store, matching, a, b) = two_nodes_a_owning_both_shards(true).await;
    let wf = "reader";
    start(&a, wf, Duration::ZERO).await;
    let s = shard_id(wf, 2);

    // b takes the shard; a's ring still says a, and a writes nothing.
    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    signal(&b, wf, "on-b").await.expect("b owns it");
    eventually("a stops the shard it lost", || async {
        (!a.owned_shards().contains(&s)).then_some(())
    })
    .await;
    // Until its ring moves the shard away, a does not take it back at once.
    tokio::time::sleep(crate::ShardControl::default().check_interval).await;
    assert!(!a.owned_shards().contains(&s), "taken back too soon");
    let rest: Vec<u32> = (1..=2).filter(|i| *i != s.0).collect();
    a.set_owned_shards(shards(&rest), matching.clone()).await;
    signal(&b, wf, "still-b").await.expect("b still owns it");
    a.shutdown().await;
    b.shutdown().await;
}

fn start_task(
    workflow_id: &str,
    run_id: &str,
    scheduled_event_id: i64,
) -> internal::RecordWorkflowTaskStartedRequest {
    internal::RecordWorkflowTaskStartedRequest {
        target_deployment_version: None,
        namespace_id: NS.into(),
        execution: execution(workflow_id, run_id),
        scheduled_event_id,
        request_id: uuid::Uuid::new_v4().to_string(),
        poll_request: Some(ws::PollWorkflowTaskQueueRequest {
            namespace: NS.into(),
            identity: "worker".into(),
            ..Default::default()
        }),
    }
}

/// A stale owner asked to start a task its cached state has not seen yet (the new owner
/// scheduled it) must not call the task obsolete, which would make matching drop it and
/// leave the workflow stuck: it reloads the state, is fenced by its write, and answers
/// UNAVAILABLE, so the call is retried on the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_never_calls_a_newer_task_obsolete() {
    let (_store, matching, a, b) = two_nodes_a_owning_both_shards(false).await;
    let wf = "newer-task";
    let run = start(&a, wf, Duration::ZERO).await;
    let s = shard_id(wf, 2);

    // b takes the shard; a (no controller, a stale ring) still runs it with its cache.
    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    let first = b
        .record_workflow_task_started(Request::new(start_task(wf, &run, 2)))
        .await
        .expect("b starts the first task")
        .into_inner()
        .response
        .expect("poll response");
    b.respond_workflow_task_completed(Request::new(
        internal::RespondWorkflowTaskCompletedRequest {
            namespace_id: NS.into(),
            search_attributes: None,
            request: Some(ws::RespondWorkflowTaskCompletedRequest {
                task_token: first.task_token,
                identity: "worker".into(),
                namespace: NS.into(),
                ..Default::default()
            }),
        },
    ))
    .await
    .expect("b completes it");
    signal(&b, wf, "wake")
        .await
        .expect("b schedules a new task");
    let events = api_history(&b, wf, &run).await;
    let newer = events
        .iter()
        .rev()
        .find(|e| types(std::slice::from_ref(e)) == vec![EventType::WorkflowTaskScheduled])
        .expect("a new workflow task")
        .event_id;
    assert!(newer > 2);

    let err = a
        .record_workflow_task_started(Request::new(start_task(wf, &run, newer)))
        .await
        .expect_err("a no longer owns the shard");
    assert!(
        !temper_client::status::is_task_obsolete(&err),
        "a stale cache called the task obsolete: {err:?}"
    );
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    b.record_workflow_task_started(Request::new(start_task(wf, &run, newer)))
        .await
        .expect("the owner starts it");
    a.shutdown().await;
    b.shutdown().await;
}

/// A stale owner asked to complete a task the new owner started (its cache still has it
/// only scheduled) must not answer NOT_FOUND, which makes the worker drop its result and the
/// work run again after its timeout: the refusal depends on the cache, so it checks the
/// shard's range id first, stops the shard and answers UNAVAILABLE, and the call is retried
/// on the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_never_refuses_a_completion_from_its_cache() {
    let (_store, matching, a, b) = two_nodes_a_owning_both_shards(false).await;
    let wf = "stale-refusal";
    let run = start(&a, wf, Duration::ZERO).await;
    let s = shard_id(wf, 2);

    // b takes the shard and starts the task; a (no controller, a stale ring) keeps its cache.
    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    let task = b
        .record_workflow_task_started(Request::new(start_task(wf, &run, 2)))
        .await
        .expect("b starts the task")
        .into_inner()
        .response
        .expect("poll response");
    let complete = || {
        Request::new(internal::RespondWorkflowTaskCompletedRequest {
            namespace_id: NS.into(),
            search_attributes: None,
            request: Some(ws::RespondWorkflowTaskCompletedRequest {
                task_token: task.task_token.clone(),
                identity: "worker".into(),
                namespace: NS.into(),
                ..Default::default()
            }),
        })
    };
    let err = a
        .respond_workflow_task_completed(complete())
        .await
        .expect_err("a no longer owns the shard");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        !a.owned_shards().contains(&s),
        "a stopped the shard it found taken"
    );
    b.respond_workflow_task_completed(complete())
        .await
        .expect("the owner completes it");
    let events = api_history(&b, wf, &run).await;
    assert_eq!(count_of(&events, EventType::WorkflowTaskCompleted), 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// The store operations a shard makes, to count what a node did.
const SHARD_OPS: [Op; 13] = [
    Op::GetOrCreateShard,
    Op::UpdateShard,
    Op::GetCurrentExecution,
    Op::GetExecution,
    Op::Commit,
    Op::DeleteExecution,
    Op::GetTasks,
    Op::DeleteTask,
    Op::DeleteTasksBefore,
    Op::AppendHistoryNode,
    Op::ReadHistoryNodes,
    Op::DeleteHistoryBranch,
    Op::GetNamespaceById,
];

fn store_calls(store: &FaultyStore) -> u64 {
    SHARD_OPS.iter().map(|op| store.calls(*op)).sum()
}

/// How a node gives its shard up.
#[derive(Clone, Copy, PartialEq)]
enum GiveUp {
    /// The ring moves the shard away.
    Release,
    /// The node shuts down.
    Shutdown,
}

/// A node gives its shard up while a transfer task of the shard is held back by the store
/// (a slow read of the run's state): once the release (or shutdown) returns, that task
/// neither reaches matching nor touches the store, and the task, still in the store, goes
/// out from the next owner.
async fn nothing_of_a_shard_runs_after_it_is_given_up(how: GiveUp) {
    let store = store();
    let wf = "held-back";
    // A first owner starts the workflow while matching refuses, so the workflow task's
    // transfer task stays in the store.
    let first = node(&store, "first", 1);
    first
        .set_owned_shards(shards(&[1]), FakeMatching::refusing())
        .await;
    let run = start(&first, wf, Duration::ZERO).await;
    first.shutdown().await;
    assert_eq!(
        stored_tasks(store.inner(), ShardId(1), TaskCategory::Transfer)
            .await
            .len(),
        1
    );

    // a takes the shard with a cold cache, on a store of its own that holds its reads of
    // runs back: its transfer task waits there.
    let a_store = FaultyStore::new(store.inner().clone());
    let a = node(&a_store, "a", 1);
    let to_a = Arc::new(FakeMatching::default());
    a_store.pause(Op::GetExecution);
    a.set_owned_shards(shards(&[1]), to_a.clone()).await;
    eventually("a's transfer task reads the run", || async {
        (a_store.calls(Op::GetExecution) > 0).then_some(())
    })
    .await;

    match how {
        GiveUp::Release => a.set_owned_shards(shards(&[]), to_a.clone()).await,
        GiveUp::Shutdown => a.shutdown().await,
    }
    assert!(a.owned_shards().is_empty());
    let calls_at_release = store_calls(&a_store);
    a_store.resume(Op::GetExecution);

    // b takes the shard and hands the task to matching.
    let b = node(&store, "b", 1);
    let to_b = Arc::new(FakeMatching::default());
    b.set_owned_shards(shards(&[1]), to_b.clone()).await;
    eventually("b hands the workflow task to matching", || async {
        (to_b.workflow_tasks_of(&run).len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        to_a.workflow_task_calls.load(Ordering::SeqCst),
        0,
        "the given-up shard's task went on and called matching"
    );
    assert_eq!(
        store_calls(&a_store),
        calls_at_release,
        "the given-up shard used the store after it was given up"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_released_shard_runs_after_the_release() {
    nothing_of_a_shard_runs_after_it_is_given_up(GiveUp::Release).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_shard_runs_after_its_node_shut_down() {
    nothing_of_a_shard_runs_after_it_is_given_up(GiveUp::Shutdown).await;
}

/// Checks every 30 s (so they never run during a test) with a short read lease.
fn lease_only(read_lease: Duration) -> crate::ShardControl {
    crate::ShardControl {
        read_lease,
        ..crate::ShardControl::every(Duration::from_secs(30))
    }
}

/// Nodes a and b over one store with 2 shards, both owned by a, their controllers checking
/// ownership only every 30 s, with `read_lease`.
async fn two_nodes_with_lease(
    read_lease: Duration,
) -> (Arc<FakeMatching>, Arc<HistoryEngine>, Arc<HistoryEngine>) {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let a = node(&store, "a", 2);
    let b = node(&store, "b", 2);
    a.start_shard_controller(matching.clone(), lease_only(read_lease));
    b.start_shard_controller(matching.clone(), lease_only(read_lease));
    a.set_owned_shards(shards(&[1, 2]), matching.clone()).await;
    (matching, a, b)
}

/// A stale owner whose controller has not noticed yet (a node cut off from its peers, a
/// ring behind) must not answer a read from a cache that misses the new owner's commit:
/// the new owner commits only once the old owner's read lease ran out, and past its lease
/// the old owner confirms ownership before the cache answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_never_answers_a_read_that_misses_the_new_owners_commit() {
    let lease = Duration::from_millis(400);
    let (matching, a, b) = two_nodes_with_lease(lease).await;
    let wf = "leased";
    let run = start(&a, wf, Duration::ZERO).await;
    let k = key(wf, &run);
    let s = shard_id(wf, 2);
    let a_shard = shard_of(&a, wf);
    a_shard
        .snapshot(&k)
        .await
        .expect("a answers from its cache");

    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    let took = std::time::Instant::now();
    signal(&b, wf, "on-b").await.expect("b owns it");
    assert!(
        took.elapsed() >= lease - Duration::from_millis(50),
        "b committed {:?} after taking the shard, inside a's read lease",
        took.elapsed()
    );
    match a_shard.snapshot(&k).await {
        Err(crate::HistoryError::ShardNotOwned(id)) => assert_eq!(id, s.0),
        Ok(ms) => panic!(
            "a answered from a stale cache (next event id {}, b's signal is past it)",
            ms.next_event_id
        ),
        Err(e) => panic!("unexpected {e:?}"),
    }
    assert!(a_shard.cancel.is_cancelled(), "a stopped the shard it lost");
    a.shutdown().await;
    b.shutdown().await;
}

/// A shard its owner released (the ring moved it) is marked so in the store: the next
/// owner need not wait out a read lease before it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_shard_is_taken_without_waiting_for_a_lease() {
    let lease = Duration::from_secs(20);
    let (matching, a, b) = two_nodes_with_lease(lease).await;
    let wf = "released";
    start(&a, wf, Duration::ZERO).await;
    let s = shard_id(wf, 2);
    let rest: Vec<u32> = (1..=2).filter(|i| *i != s.0).collect();
    a.set_owned_shards(shards(&rest), matching.clone()).await;
    b.set_owned_shards(shards(&[s.0]), matching.clone()).await;
    tokio::time::timeout(lease / 2, signal(&b, wf, "on-b"))
        .await
        .expect("b commits without waiting out a's lease")
        .expect("b owns it");
    a.shutdown().await;
    b.shutdown().await;
}

/// A node told it may not take shards (it does not see a majority of the cluster) keeps
/// and releases shards but takes none, neither from the ring nor when one stops; allowed
/// again, it takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_not_allowed_to_acquire_takes_no_shard() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let a = node(&store, "a", 3);
    a.start_shard_controller(
        matching.clone(),
        crate::ShardControl::every(Duration::from_millis(100)),
    );
    a.set_owned_shards(shards(&[1]), matching.clone()).await;
    assert_eq!(a.owned_shards(), vec![ShardId(1)]);

    a.set_acquiring(false);
    a.set_owned_shards(shards(&[1, 2, 3]), matching.clone())
        .await;
    assert_eq!(a.owned_shards(), vec![ShardId(1)], "kept 1, took nothing");
    // Shard 1 stops (another node took it): not taken back while not allowed.
    let p = store.inner().clone();
    let rec = p
        .executions
        .get_or_create_shard(ShardId(1), &[])
        .await
        .expect("row");
    p.executions
        .update_shard(
            rec.range_id,
            &temper_persistence::ShardRecord {
                shard_id: ShardId(1),
                range_id: temper_types::RangeId(rec.range_id.0 + 1),
                info: Vec::new(),
            },
        )
        .await
        .expect("another node takes shard 1");
    eventually("a stops shard 1", || async {
        a.owned_shards().is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        a.owned_shards().is_empty(),
        "took a shard while not allowed"
    );

    a.set_acquiring(true);
    a.set_owned_shards(shards(&[1, 2, 3]), matching.clone())
        .await;
    assert_eq!(a.owned_shards(), vec![ShardId(1), ShardId(2), ShardId(3)]);
    a.shutdown().await;
}
