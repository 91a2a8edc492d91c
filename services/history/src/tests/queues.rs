//! The transfer and timer queues: tasks reach matching once, finished tasks leave the store,
//! and whatever was committed but not processed is processed after a restart.

use temper_persistence::faulty::{FaultyStore, Op};
use temper_proto::temporal::api::command::v1::{Command, StartTimerCommandAttributes, command};
use temper_proto::temporal::api::enums::v1::{EventType, WorkflowExecutionStatus};

use super::*;

async fn status(engine: &HistoryEngine, workflow_id: &str) -> WorkflowExecutionStatus {
    let r = engine
        .describe_workflow_execution(Request::new(internal::DescribeWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(ws::DescribeWorkflowExecutionRequest {
                namespace: NS.into(),
                execution: execution(workflow_id, ""),
            }),
        }))
        .await
        .expect("describe")
        .into_inner();
    let status = r.workflow_execution_info.expect("info").status;
    WorkflowExecutionStatus::try_from(status).expect("known status")
}

/// Whether a stored task is a retention delete: closed runs keep one for a day.
fn is_retention(category: TaskCategory, t: &TaskRecord) -> bool {
    category == TaskCategory::Timer
        && pb::TimerTask::decode(t.data.as_slice())
            .is_ok_and(|t| t.kind == pb::TimerTaskKind::DeleteHistory as i32)
}

/// Wait until the shard's queue of `category` holds no task any more (but retention
/// deletes, due in a day).
async fn drained(store: &FaultyStore, shard: ShardId, category: TaskCategory) {
    let p = store.inner();
    eventually("acknowledged tasks are deleted", || async {
        stored_tasks(p, shard, category)
            .await
            .iter()
            .all(|t| is_retention(category, t))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_workflow_reaches_matching_once_and_its_task_is_deleted() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 2, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;
    let shard = shard_id("wf", 2);

    drained(&store, shard, TaskCategory::Transfer).await;
    assert!(store.calls(Op::DeleteTasksBefore) > 0);
    let tasks = matching.workflow_tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let t = &tasks[0];
    assert_eq!(t.namespace_id, NS);
    assert_eq!(t.execution, execution("wf", &run));
    assert_eq!(t.task_queue.as_ref().map(|q| q.name.as_str()), Some(QUEUE));
    assert_eq!(t.scheduled_event_id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_committed_while_the_queues_load_reach_matching_once() {
    let store = store();
    // The queues' first reads of the store (transfer and timer) are slow, so the start
    // below commits while they are still loading: its task is both in the store they read
    // and in memory.
    store.delay(Op::GetTasks, 2, Duration::from_millis(300));
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    let run = start(&engine, "wf", Duration::ZERO).await;

    drained(&store, ShardId(1), TaskCategory::Transfer).await;
    // Both queues read the store (the timer queue reads again whenever its window moves,
    // every 500 ms in tests, so a slow machine may see a third read), and the task that was
    // both in the store and in memory reached matching once.
    assert!(store.calls(Op::GetTasks) >= 2, "both queues loaded");
    let tasks = matching.workflow_tasks_of(&run);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_start_while_the_queues_read_the_store() {
    // A shard with a large backlog reads it for a while: commits must not wait for that.
    // The queues' reads are held here for as long as it takes a start to commit.
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    store.pause(Op::GetTasks);
    let engine = engine(&store, 1, matching.clone()).await;
    eventually(
        "both queues reading the store at once (neither holds the commits' gate)",
        || async { (store.calls(Op::GetTasks) >= 2).then_some(()) },
    )
    .await;
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        start(&engine, "first", Duration::from_millis(300)),
    )
    .await
    .expect("a start commits while the queues load");
    store.resume(Op::GetTasks);
    // The run's timeout (inside the first window) fires once the loads are done.
    eventually("the first run times out", || async {
        (status(&engine, "first").await == WorkflowExecutionStatus::TimedOut).then_some(())
    })
    .await;

    // Once loaded, the timer window moves on (every 500 ms in tests) with a read of its
    // own; commits go on during that one too. This run's timeout is past the window it
    // commits in, so only that move (or a later one) can fire it.
    let reads = store.calls(Op::GetTasks);
    store.pause(Op::GetTasks);
    eventually("the timer window is reading the store", || async {
        (store.calls(Op::GetTasks) > reads).then_some(())
    })
    .await;
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        start(&engine, "second", Duration::from_millis(2500)),
    )
    .await
    .expect("a start commits while the timer window loads");
    store.resume(Op::GetTasks);

    eventually("the second run times out", || async {
        (status(&engine, "second").await == WorkflowExecutionStatus::TimedOut).then_some(())
    })
    .await;
    drained(&store, ShardId(1), TaskCategory::Transfer).await;
    for run in [&first, &second] {
        let tasks = matching.workflow_tasks_of(run);
        assert_eq!(tasks.len(), 1, "one workflow task each: {tasks:?}");
    }
    drained(&store, ShardId(1), TaskCategory::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_workflow_task_is_delivered_after_a_restart() {
    let store = store();
    let refusing = FakeMatching::refusing();
    let first = engine(&store, 1, refusing.clone()).await;
    let run = start(&first, "wf", Duration::ZERO).await;
    eventually("the first node tried matching", || async {
        (refusing.workflow_task_calls.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    first.shutdown().await;
    drop(first);
    assert_eq!(
        stored_tasks(store.inner(), ShardId(1), TaskCategory::Transfer)
            .await
            .len(),
        1,
        "an unprocessed task stays in the store"
    );

    let matching = Arc::new(FakeMatching::default());
    let _second = engine(&store, 1, matching.clone()).await;
    drained(&store, ShardId(1), TaskCategory::Transfer).await;
    let tasks = matching.workflow_tasks_of(&run);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].scheduled_event_id, 2);
    assert!(refusing.workflow_tasks().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_timeout_fires_after_a_restart() {
    let store = store();
    let first = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&first, "wf", Duration::from_millis(1500)).await;
    first.shutdown().await;
    drop(first);
    let key = key("wf", &run);
    let (ms, _) = stored_state(store.inner(), ShardId(1), &key).await;
    assert!(
        !temper_workflow::close::is_closed(&ms),
        "the first node must stop before the timeout"
    );

    let second = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    eventually("the run times out", || async {
        (status(&second, "wf").await == WorkflowExecutionStatus::TimedOut).then_some(())
    })
    .await;
    let history = api_history(&second, "wf", &run).await;
    assert_eq!(
        types(&history),
        vec![
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowExecutionTimedOut,
        ]
    );
    drained(&store, ShardId(1), TaskCategory::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_timer_fires_after_a_restart() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let first = engine(&store, 1, matching.clone()).await;
    let run = start(&first, "wf", Duration::ZERO).await;
    let task = eventually("the first workflow task", || async {
        matching.workflow_tasks_of(&run).into_iter().next()
    })
    .await;
    let started = first
        .record_workflow_task_started(Request::new(internal::RecordWorkflowTaskStartedRequest {
            target_deployment_version: None,
            namespace_id: NS.into(),
            execution: execution("wf", &run),
            scheduled_event_id: task.scheduled_event_id,
            request_id: "poll-1".into(),
            poll_request: Some(ws::PollWorkflowTaskQueueRequest {
                namespace: NS.into(),
                task_queue: task.task_queue.clone(),
                identity: "worker".into(),
                ..Default::default()
            }),
        }))
        .await
        .expect("record started")
        .into_inner()
        .response
        .expect("poll response");
    first
        .respond_workflow_task_completed(Request::new(
            internal::RespondWorkflowTaskCompletedRequest {
                namespace_id: NS.into(),
                request: Some(ws::RespondWorkflowTaskCompletedRequest {
                    task_token: started.task_token,
                    identity: "worker".into(),
                    namespace: NS.into(),
                    commands: vec![Command {
                        command_type:
                            temper_proto::temporal::api::enums::v1::CommandType::StartTimer as i32,
                        attributes: Some(command::Attributes::StartTimerCommandAttributes(
                            StartTimerCommandAttributes {
                                timer_id: "t".into(),
                                start_to_fire_timeout: temper_workflow::time::dur(
                                    Duration::from_millis(800),
                                ),
                            },
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                search_attributes: None,
            },
        ))
        .await
        .expect("complete workflow task");
    first.shutdown().await;
    drop(first);
    let key = key("wf", &run);
    let (ms, _) = stored_state(store.inner(), ShardId(1), &key).await;
    assert!(
        ms.timers.contains_key("t"),
        "the first node must stop before the timer fires"
    );

    let matching = Arc::new(FakeMatching::default());
    let second = engine(&store, 1, matching.clone()).await;
    let fired = eventually("the timer fires", || async {
        api_history(&second, "wf", &run)
            .await
            .into_iter()
            .find(|e| e.event_type == EventType::TimerFired as i32)
    })
    .await;
    // Firing wakes the workflow: a new workflow task right after the TimerFired event.
    let next = eventually("the next workflow task", || async {
        matching.workflow_tasks_of(&run).into_iter().next()
    })
    .await;
    assert_eq!(next.scheduled_event_id, fired.event_id + 1);
    let history = api_history(&second, "wf", &run).await;
    assert_eq!(count_of(&history, EventType::TimerFired), 1);
}

/// The timer tasks the store holds for one run (but its retention delete, due in a day).
async fn timers_of(store: &FaultyStore, run: &str) -> usize {
    stored_tasks(store.inner(), ShardId(1), TaskCategory::Timer)
        .await
        .iter()
        .filter_map(|t| pb::TimerTask::decode(t.data.as_slice()).ok())
        .filter(|t| t.run_id == run && t.kind != pb::TimerTaskKind::DeleteHistory as i32)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_committed_while_the_ack_level_moves_stays_in_the_store() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    // Timer X, soon, and moot (its run is already closed): it completes without a write.
    let moot = start(&engine, "moot", Duration::from_millis(500)).await;
    terminate(&engine, "moot").await.expect("terminate");
    // Timer A, far away: once X is done, everything below A is acknowledged.
    start(&engine, "far", Duration::from_secs(3600)).await;
    // Timer B, between X and A, is durable while its commit's reply is still on the way;
    // meanwhile X fires and the ack level moves up.
    store.delay_reply(Op::Commit, 1, Duration::from_millis(1500));
    let run = start(&engine, "b", Duration::from_secs(600)).await;
    eventually("X is acknowledged and deleted", || async {
        (timers_of(&store, &moot).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        timers_of(&store, &run).await,
        1,
        "B's run timeout must stay in the store for the next owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_that_fires_below_the_ack_level_is_deleted() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    // Timer A, far away, is acknowledged up to while alone (its transfer task going too
    // means the queues have flushed at least once since).
    start(&engine, "far", Duration::from_secs(3600)).await;
    drained(&store, ShardId(1), TaskCategory::Transfer).await;
    // Timer X sorts below A, fires and is done.
    let short = start(&engine, "short", Duration::from_millis(200)).await;
    eventually("the short run times out", || async {
        (status(&engine, "short").await == WorkflowExecutionStatus::TimedOut).then_some(())
    })
    .await;
    eventually("X is deleted although A is still pending", || async {
        (timers_of(&store, &short).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_past_the_window_fire_when_the_window_reaches_them() {
    // The timer window is 2 s in tests: these run timeouts start outside it.
    let store = store();
    let first = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    start(&first, "late", Duration::from_millis(3500)).await;
    first.shutdown().await;
    drop(first);
    let second = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    start(&second, "later", Duration::from_millis(4000)).await;
    let started = std::time::Instant::now();
    for wf in ["late", "later"] {
        eventually("the run times out", || async {
            (status(&second, wf).await == WorkflowExecutionStatus::TimedOut).then_some(())
        })
        .await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "not early"
    );
    drained(&store, ShardId(1), TaskCategory::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_due_timers_than_the_share_fire_from_bounded_memory() {
    // One shard whose share of the node's timers is 16, and 120 run timeouts inside the
    // 30 s window that all come due together: 60 before a restart, 60 after it. Past the
    // share, a timer from the writer pushes the latest one held back to the store; after
    // the restart, the first read stops at 16, and the rest are read as the held ones fire.
    let memory = || crate::MemoryConfig {
        max_timers: 16,
        timer_window: Duration::from_secs(30),
        ..Default::default()
    };
    let store = store();
    let due = tokio::time::Instant::now() + Duration::from_secs(6);
    let timeout = || due.saturating_duration_since(tokio::time::Instant::now());
    let first = engine_with(&store, 1, Arc::new(FakeMatching::default()), memory()).await;
    for i in 0..60 {
        start(&first, &format!("before-{i}"), timeout()).await;
    }
    first.shutdown().await;
    drop(first);
    let second = engine_with(&store, 1, Arc::new(FakeMatching::default()), memory()).await;
    let mut most = 0;
    for i in 0..60 {
        start(&second, &format!("after-{i}"), timeout()).await;
        most = most.max(second.shard_stats(ShardId(1)).expect("runs").timers_pending);
    }
    // Until they are due, the timers held are the ones waiting (none runs yet).
    while tokio::time::Instant::now() + Duration::from_millis(200) < due {
        most = most.max(second.shard_stats(ShardId(1)).expect("runs").timers_pending);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        (1..=16).contains(&most),
        "at most the share held before they are due, but {most}"
    );
    let ids = (0..60).flat_map(|i| [format!("before-{i}"), format!("after-{i}")]);
    for wf in ids {
        eventually("the run times out", || async {
            (status(&second, &wf).await == WorkflowExecutionStatus::TimedOut).then_some(())
        })
        .await;
    }
    drained(&store, ShardId(1), TaskCategory::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_evicted_by_a_small_cache_budget_are_read_again_when_their_timers_fire() {
    // A budget smaller than one cached run: every run nobody is using goes at the next
    // insert, so each timer below finds its run evicted and reads it from the store.
    let budget = crate::CacheBudget::new(1);
    let memory = crate::MemoryConfig {
        cache_budget: budget.clone(),
        timer_window: Duration::from_secs(1),
        ..Default::default()
    };
    let store = store();
    let engine = engine_with(&store, 2, Arc::new(FakeMatching::default()), memory).await;
    let ids: Vec<String> = (0..40).map(|i| format!("evicted-{i}")).collect();
    for (i, wf) in ids.iter().enumerate() {
        // Run timeouts from 1.2 s to 2.8 s: most start outside the 1 s timer window.
        start(&engine, wf, Duration::from_millis(1200 + 40 * i as u64)).await;
    }
    // Runs in use (their first transfer tasks still running) are never evicted: on a busy
    // machine several are at once. Eight runs' worth is still a fifth of the forty.
    let at_most = 8 * (crate::shard::ENTRY_OVERHEAD_BYTES + (2 << 10));
    assert!(
        budget.used() <= at_most,
        "40 runs started, but {} bytes cached (budget 1, at most {at_most})",
        budget.used()
    );
    for wf in &ids {
        eventually("the evicted run times out", || async {
            (status(&engine, wf).await == WorkflowExecutionStatus::TimedOut).then_some(())
        })
        .await;
    }
    assert!(budget.used() <= at_most, "{} bytes cached", budget.used());
    drained(&store, ShardId(1), TaskCategory::Timer).await;
    drained(&store, ShardId(2), TaskCategory::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_an_unknown_outcome_restarts_the_shard_which_finds_its_tasks() {
    let store = store();
    let matching = Arc::new(FakeMatching::default());
    let engine = engine(&store, 1, matching.clone()).await;
    // The commit is applied, but its answer is lost (a timed-out lightweight transaction).
    store.fail_after_applying(
        Op::Commit,
        1,
        temper_persistence::StoreError::OutcomeUnknown("test".into()),
    );
    let started = engine
        .start_workflow_execution(Request::new(internal::StartWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(start_request("wf", Duration::ZERO)),
            ..Default::default()
        }))
        .await;
    assert!(started.is_err(), "the caller hears the outcome is unknown");
    // The shard stops, is acquired again, and reloads the workflow task from the store.
    eventually(
        "the applied commit's workflow task reaches matching",
        || async { (matching.workflow_tasks().len() == 1).then_some(()) },
    )
    .await;
}
