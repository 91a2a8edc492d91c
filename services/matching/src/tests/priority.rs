//! Priority and fairness: tasks are handed out by priority level, from memory and from a
//! backlog larger than memory, before and after a restart; fairness keys share a level by
//! weight; a task forwarded to the root partition keeps its priority.

use std::sync::Mutex;

use async_trait::async_trait;
use temper_proto::internal::v1::{
    AddActivityTaskResponse, AddWorkflowTaskResponse, DescribeTaskQueueRequest,
    QueryWorkflowRequest, QueryWorkflowResponse, RespondQueryTaskCompletedRequest,
    RespondQueryTaskCompletedResponse, ShutdownWorkerRequest, ShutdownWorkerResponse,
};
use temper_proto::temporal::api::common::v1::Priority;
use temper_proto::temporal::api::workflowservice::v1::DescribeTaskQueueResponse;
use temper_types::{PartitionConfig, partition_name};
use tonic::Response;

use super::*;

fn priority(key: i32, fairness_key: &str, weight: f32) -> Option<Priority> {
    Some(Priority {
        priority_key: key,
        fairness_key: fairness_key.to_owned(),
        fairness_weight: weight,
    })
}

fn add_request(queue: &str, workflow_id: &str, p: Option<Priority>) -> AddActivityTaskRequest {
    AddActivityTaskRequest {
        directive: None,
        namespace_id: NS.to_owned(),
        execution: Some(execution(workflow_id)),
        task_queue: Some(normal(queue)),
        scheduled_event_id: 5,
        schedule_to_start_timeout: None,
        attempt: 1,
        priority: p,
    }
}

async fn add(engine: &MatchingEngine, workflow_id: &str, p: Option<Priority>) {
    engine
        .add_activity_task(Request::new(add_request("jobs", workflow_id, p)))
        .await
        .expect("add");
}

/// The workflow ids of the next `n` activity tasks handed out on "jobs".
async fn next(engine: &MatchingEngine, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        let resp = poll_activity(engine, "jobs", "worker", 1_000)
            .await
            .expect("poll");
        let wf = resp.workflow_execution.expect("a task").workflow_id;
        got.push(wf);
    }
    got
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn the_backlog_is_handed_out_by_priority_then_in_order() {
    let h = Harness::new();
    for (wf, key) in [
        ("p5-a", 5),
        ("p3-a", 3),
        ("p1-a", 1),
        ("default-a", 0),
        ("p4-a", 4),
        ("p2-a", 2),
        ("p1-b", 1),
        ("p5-b", 5),
    ] {
        add(&h.engine, wf, priority(key, "", 0.0)).await;
    }
    let k = key("jobs", QueueType::Activity, QueueKind::Normal);
    let levels: Vec<u8> = h
        .store
        .task_levels(&k.store_key())
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(
        levels,
        vec![5, 3, 1, 3, 4, 2, 1, 5],
        "stored with their level"
    );
    assert_eq!(
        next(&h.engine, 8).await,
        ids(&[
            "p1-a",
            "p1-b",
            "p2-a",
            "p3-a",
            "default-a",
            "p4-a",
            "p5-a",
            "p5-b"
        ])
    );
}

/// Memory holds two tasks per level; the rest of each level waits in the store, and a
/// higher level's stored tasks are read before a lower level's task is handed out.
#[tokio::test]
async fn a_backlog_larger_than_memory_is_read_by_priority() {
    let config = MatchingConfig {
        backlog_read_batch_size: 2,
        ..MatchingConfig::default()
    };
    let h = Harness::with_config(config.clone());
    for i in 0..5 {
        add(&h.engine, &format!("low-{i}"), priority(5, "", 0.0)).await;
    }
    for i in 0..4 {
        add(&h.engine, &format!("high-{i}"), priority(1, "", 0.0)).await;
    }
    let expected = ids(&[
        "high-0", "high-1", "high-2", "high-3", "low-0", "low-1", "low-2", "low-3", "low-4",
    ]);
    assert_eq!(next(&h.engine, 9).await, expected);

    // The same backlog loaded by a fresh engine: every level is read from the store.
    for i in 0..5 {
        add(&h.engine, &format!("low-{i}"), priority(5, "", 0.0)).await;
    }
    for i in 0..4 {
        add(&h.engine, &format!("high-{i}"), priority(1, "", 0.0)).await;
    }
    h.engine.shutdown();
    let engine = MatchingEngine::new(h.store.clone(), h.history.clone(), config);
    assert_eq!(next(&engine, 9).await, expected);
    let k = key("jobs", QueueType::Activity, QueueKind::Normal);
    eventually("started tasks are deleted at every level", || {
        h.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

/// New higher-priority tasks overtake a backlog of lower-priority ones that spilled to the
/// store.
#[tokio::test]
async fn a_late_high_priority_task_overtakes_a_spilled_backlog() {
    let h = Harness::with_config(MatchingConfig {
        backlog_read_batch_size: 3,
        ..MatchingConfig::default()
    });
    for i in 0..10 {
        add(&h.engine, &format!("bulk-{i}"), None).await;
    }
    assert_eq!(next(&h.engine, 2).await, ids(&["bulk-0", "bulk-1"]));
    add(&h.engine, "urgent", priority(1, "", 0.0)).await;
    assert_eq!(next(&h.engine, 2).await, ids(&["urgent", "bulk-2"]));
}

/// Two fairness keys of one level, weights 1 and 3, get about 1/4 and 3/4 of the
/// dispatches while both have tasks waiting.
#[tokio::test]
async fn fairness_keys_share_dispatches_by_weight() {
    let h = Harness::new();
    for i in 0..400 {
        add(&h.engine, &format!("a-{i}"), priority(0, "tenant-a", 1.0)).await;
        add(&h.engine, &format!("b-{i}"), priority(0, "tenant-b", 3.0)).await;
    }
    let first = next(&h.engine, 400).await;
    let b = first.iter().filter(|wf| wf.starts_with("b-")).count();
    assert!(
        (285..=315).contains(&b),
        "tenant-b (weight 3) got {b} of 400, expected about 300"
    );
    // Within a key, tasks keep their order.
    let a: Vec<&String> = first.iter().filter(|wf| wf.starts_with("a-")).collect();
    assert_eq!(a.first().map(|s| s.as_str()), Some("a-0"));
    assert_eq!(a.get(1).map(|s| s.as_str()), Some("a-1"));
}

/// A key whose tasks arrive after another key's flood spilled to the store is not starved
/// behind the whole flood: its tasks stay in memory (stored too) and share the level fairly;
/// each key keeps its order, every task goes out once, and every one is deleted after.
#[tokio::test]
async fn a_quiet_key_behind_a_deep_backlog_of_another_gets_its_share() {
    let h = Harness::with_config(MatchingConfig {
        // A key may keep a tenth of a page ahead: four tasks.
        backlog_read_batch_size: 40,
        ..MatchingConfig::default()
    });
    for i in 0..200 {
        add(
            &h.engine,
            &format!("flood-{i:03}"),
            priority(0, "flood", 1.0),
        )
        .await;
    }
    for i in 0..4 {
        add(&h.engine, &format!("quiet-{i}"), priority(0, "quiet", 1.0)).await;
    }
    let got = next(&h.engine, 204).await;
    // Without this, quiet's four would come after all 200 of flood's.
    let last_quiet = got
        .iter()
        .rposition(|wf| wf.starts_with("quiet"))
        .expect("quiet's tasks");
    assert!(
        last_quiet < 12,
        "quiet's last task went out {last_quiet}th: {got:?}"
    );
    for prefix in ["flood", "quiet"] {
        let order: Vec<&String> = got.iter().filter(|wf| wf.starts_with(prefix)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{prefix} kept its order");
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 204, "each task once: {got:?}");
    let k = key("jobs", QueueType::Activity, QueueKind::Normal);
    eventually("every started task is deleted", || {
        h.store.task_ids(&k.store_key()).is_empty()
    })
    .await;
}

/// A key that keeps writing faster than it is served falls back to the store's order, and
/// does not hold the rest of the level in the store.
#[tokio::test]
async fn a_busy_key_kept_ahead_does_not_hold_back_the_stored_backlog() {
    let h = Harness::with_config(MatchingConfig {
        backlog_read_batch_size: 40,
        ..MatchingConfig::default()
    });
    for i in 0..100 {
        add(&h.engine, &format!("old-{i:03}"), priority(0, "old", 1.0)).await;
    }
    let mut got = Vec::new();
    for round in 0..20 {
        add(
            &h.engine,
            &format!("new-{round:02}"),
            priority(0, "new", 1.0),
        )
        .await;
        got.extend(next(&h.engine, 1).await);
    }
    got.extend(next(&h.engine, 100).await);
    let old_in_first_20 = got[..20].iter().filter(|wf| wf.starts_with("old")).count();
    assert!(
        (5..=15).contains(&old_in_first_20),
        "old got {old_in_first_20} of the first 20: {got:?}"
    );
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 120, "each task once: {got:?}");
}

/// A backlog loaded by a new owner whose first page is full: which keys wait in the store is
/// unknown, so tasks go out in the store's order (no key is reordered), and none is lost or
/// repeated.
#[tokio::test]
async fn after_a_restart_a_deep_backlog_keeps_each_key_in_order() {
    let config = MatchingConfig {
        backlog_read_batch_size: 5,
        ..MatchingConfig::default()
    };
    let h = Harness::with_config(config.clone());
    for i in 0..20 {
        add(&h.engine, &format!("a-{i:02}"), priority(0, "a", 1.0)).await;
    }
    for i in 0..3 {
        add(&h.engine, &format!("b-{i}"), priority(0, "b", 1.0)).await;
    }
    h.engine.shutdown();
    let engine = MatchingEngine::new(h.store.clone(), h.history.clone(), config);
    add(&engine, "b-3", priority(0, "b", 1.0)).await;
    let got = next(&engine, 24).await;
    let b: Vec<&String> = got.iter().filter(|wf| wf.starts_with("b-")).collect();
    assert_eq!(b, ["b-0", "b-1", "b-2", "b-3"], "{got:?}");
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 24, "{got:?}");
}

/// Records what a child partition offers its root, and refuses it (no poller there).
#[derive(Default)]
struct RecordingRoot {
    offers: Mutex<Vec<AddActivityTaskRequest>>,
}

#[async_trait]
impl MatchingService for RecordingRoot {
    async fn add_workflow_task(
        &self,
        _: Request<AddWorkflowTaskRequest>,
    ) -> Result<Response<AddWorkflowTaskResponse>, Status> {
        Err(crate::forward::refused())
    }

    async fn add_activity_task(
        &self,
        r: Request<AddActivityTaskRequest>,
    ) -> Result<Response<AddActivityTaskResponse>, Status> {
        self.offers.lock().expect("offers").push(r.into_inner());
        Err(crate::forward::refused())
    }

    async fn poll_workflow_task_queue(
        &self,
        _: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        Err(Status::unavailable("no root here"))
    }

    async fn poll_activity_task_queue(
        &self,
        _: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        Err(Status::unavailable("no root here"))
    }

    async fn describe_task_queue(
        &self,
        _: Request<DescribeTaskQueueRequest>,
    ) -> Result<Response<DescribeTaskQueueResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn shutdown_worker(
        &self,
        _: Request<ShutdownWorkerRequest>,
    ) -> Result<Response<ShutdownWorkerResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn query_workflow(
        &self,
        _: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn respond_query_task_completed(
        &self,
        _: Request<RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<RespondQueryTaskCompletedResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tokio::test]
async fn a_task_offered_to_the_root_keeps_its_priority() {
    let h = Harness::with_config(MatchingConfig {
        partitions: PartitionConfig::uniform(2),
        ..MatchingConfig::default()
    });
    let root = Arc::new(RecordingRoot::default());
    h.engine.set_forwarder(root.clone());
    let p = priority(2, "tenant-a", 3.0);
    h.engine
        .add_activity_task(Request::new(add_request(
            &partition_name("jobs", 1),
            "wf-1",
            p.clone(),
        )))
        .await
        .expect("add");
    let offers = root.offers.lock().expect("offers").clone();
    let first = offers
        .first()
        .expect("the new task was offered to the root");
    assert_eq!(first.priority, p);
    assert_eq!(
        first.task_queue.as_ref().map(|q| q.name.as_str()),
        Some("jobs")
    );
    // Refused there, it is stored on the child at its level, and offered again from the
    // backlog with the same priority.
    let child = key("jobs", QueueType::Activity, QueueKind::Normal).with_partition(1);
    let stored = h.store.task_levels(&child.store_key());
    assert_eq!(stored.iter().map(|(_, l)| *l).collect::<Vec<_>>(), vec![2]);
    eventually("the backlog forwarder offers the stored task", || {
        root.offers.lock().expect("offers").len() >= 2
    })
    .await;
    let offers = root.offers.lock().expect("offers").clone();
    assert!(offers.iter().all(|o| o.priority == p), "{offers:?}");
    h.engine.shutdown();
}

#[tokio::test]
async fn describe_reports_the_backlog_per_priority_key() {
    let h = Harness::new();
    for i in 0..2 {
        add(&h.engine, &format!("high-{i}"), priority(1, "", 0.0)).await;
    }
    for i in 0..3 {
        add(&h.engine, &format!("low-{i}"), priority(5, "", 0.0)).await;
    }
    let resp = h
        .engine
        .describe_task_queue(Request::new(DescribeTaskQueueRequest {
            namespace_id: NS.to_owned(),
            request: Some(
                temper_proto::temporal::api::workflowservice::v1::DescribeTaskQueueRequest {
                    namespace: "default".to_owned(),
                    task_queue: Some(normal("jobs")),
                    task_queue_type: 2, // activity
                    report_stats: true,
                    ..Default::default()
                },
            ),
        }))
        .await
        .expect("describe")
        .into_inner();
    let mut counts: Vec<(i32, i64)> = resp
        .stats_by_priority_key
        .iter()
        .map(|(k, s)| (*k, s.approximate_backlog_count))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![(1, 2), (5, 3)]);
    assert_eq!(resp.stats.map(|s| s.approximate_backlog_count), Some(5));
}
