//! UpdateTaskQueueConfig as matching honours it: the queue rate limit spaces out dispatches
//! (from the backlog and to waiting polls alike) and is shared by the queue's partitions;
//! weight overrides replace the weight tasks carry.

use std::collections::HashMap;

use temper_proto::temporal::api::common::v1::Priority;
use temper_proto::temporal::api::taskqueue::v1::{RateLimit, RateLimitConfig, TaskQueueConfig};
use tokio::time::Instant;

use super::*;
use crate::engine::config_for_partition;
use crate::queue::{LimitSource, PartitionConfig};

fn rate(rate: Option<f64>) -> PartitionConfig {
    PartitionConfig {
        rate,
        ..PartitionConfig::default()
    }
}

fn add_request(workflow_id: &str, fairness_key: &str) -> AddActivityTaskRequest {
    AddActivityTaskRequest {
        directive: None,
        namespace_id: NS.to_owned(),
        execution: Some(execution(workflow_id)),
        task_queue: Some(normal("jobs")),
        scheduled_event_id: 5,
        schedule_to_start_timeout: None,
        attempt: 1,
        priority: Some(Priority {
            priority_key: 0,
            fairness_key: fairness_key.to_owned(),
            fairness_weight: 1.0,
        }),
    }
}

async fn add(h: &Harness, workflow_id: &str, fairness_key: &str) {
    h.engine
        .add_activity_task(Request::new(add_request(workflow_id, fairness_key)))
        .await
        .expect("add");
}

async fn queue(h: &Harness) -> Arc<crate::queue::TaskQueue> {
    h.engine
        .core
        .queue(&key("jobs", QueueType::Activity, QueueKind::Normal))
        .await
        .expect("queue")
}

async fn poll(h: &Harness) -> String {
    poll_activity(&h.engine, "jobs", "worker", 5_000)
        .await
        .expect("poll")
        .workflow_execution
        .expect("a task")
        .workflow_id
}

#[tokio::test]
async fn the_queue_rate_limit_spaces_out_dispatches() {
    let h = Harness::new();
    let q = queue(&h).await;
    q.apply_config(&rate(Some(5.0)));
    assert_eq!(q.dispatch_limit(), Some(5.0));
    for i in 0..8 {
        add(&h, &format!("wf-{i}"), "").await;
    }
    let start = Instant::now();
    for _ in 0..8 {
        poll(&h).await;
    }
    // A burst of five, then five a second: three more take at least 0.6 s.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    // A poll waiting when a task arrives gets it only when the limit allows.
    q.apply_config(&rate(Some(1.0)));
    let waiting = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_activity(&engine, "jobs", "worker", 5_000).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    add(&h, "late", "").await;
    let got = waiting.await.expect("join").expect("poll");
    assert_eq!(
        got.workflow_execution.map(|e| e.workflow_id),
        Some("late".into())
    );
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );

    // Without the limit, the backlog goes out at once.
    q.apply_config(&rate(None));
    assert_eq!(q.dispatch_limit(), None);
    for i in 0..20 {
        add(&h, &format!("free-{i}"), "").await;
    }
    let start = Instant::now();
    for _ in 0..20 {
        poll(&h).await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_rate_of_zero_stops_dispatch() {
    let h = Harness::new();
    let q = queue(&h).await;
    q.apply_config(&rate(Some(0.0)));
    add(&h, "held", "").await;
    let resp = poll_activity(&h.engine, "jobs", "worker", 600)
        .await
        .expect("poll");
    assert!(resp.workflow_execution.is_none(), "nothing dispatched");
    q.apply_config(&rate(None));
    assert_eq!(poll(&h).await, "held");
}

#[tokio::test]
async fn a_weight_override_shares_a_backlog_by_the_overridden_weight() {
    let h = Harness::new();
    let q = queue(&h).await;
    let overrides: HashMap<String, f32> = [("gold".to_owned(), 3.0)].into();
    q.apply_config(&PartitionConfig {
        overrides,
        ..PartitionConfig::default()
    });
    for i in 0..40 {
        add(&h, &format!("plain-{i}"), "plain").await;
        add(&h, &format!("gold-{i}"), "gold").await;
    }
    let mut gold = 0;
    for _ in 0..40 {
        if poll(&h).await.starts_with("gold") {
            gold += 1;
        }
    }
    assert!((27..=33).contains(&gold), "gold got {gold} of 40");
}

#[test]
fn partitions_share_the_queue_rate_limit() {
    let config = TaskQueueConfig {
        queue_rate_limit: Some(RateLimitConfig {
            rate_limit: Some(RateLimit {
                requests_per_second: 100.0,
            }),
            metadata: None,
        }),
        fairness_keys_rate_limit_default: None,
        fairness_weight_overrides: [("k".to_owned(), 2.0)].into(),
    };
    let share = config_for_partition(Some(config.clone()), 4);
    assert_eq!(share.rate, Some(25.0));
    assert_eq!(share.key_rate, None);
    assert_eq!(share.overrides.get("k"), Some(&2.0));
    // A removed limit (metadata only) is no limit.
    let lifted = TaskQueueConfig {
        queue_rate_limit: Some(RateLimitConfig {
            rate_limit: None,
            metadata: None,
        }),
        fairness_keys_rate_limit_default: Some(RateLimitConfig {
            rate_limit: Some(RateLimit {
                requests_per_second: 8.0,
            }),
            metadata: None,
        }),
        ..config
    };
    let share = config_for_partition(Some(lifted), 4);
    assert_eq!(share.rate, None);
    assert_eq!(share.key_rate, Some(2.0), "the key limit is shared too");
    assert_eq!(
        config_for_partition(None, 3),
        PartitionConfig {
            partitions: 3,
            ..PartitionConfig::default()
        }
    );
}

#[tokio::test]
async fn a_fairness_key_at_its_rate_limit_does_not_hold_back_the_others() {
    let h = Harness::new();
    let q = queue(&h).await;
    q.apply_config(&PartitionConfig {
        key_rate: Some(2.0),
        ..PartitionConfig::default()
    });
    // Eight tasks of "flood" queued first, then two of "quiet".
    for i in 0..8 {
        add(&h, &format!("flood-{i}"), "flood").await;
    }
    add(&h, "quiet-0", "quiet").await;
    add(&h, "quiet-1", "quiet").await;
    let start = Instant::now();
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(poll(&h).await);
    }
    // flood's burst of two and both of quiet's, at once.
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        first.iter().filter(|w| w.starts_with("quiet")).count(),
        2,
        "{first:?}"
    );
    // The rest of flood goes at two a second: four more take at least 1.5 s.
    for _ in 0..4 {
        let w = poll(&h).await;
        assert!(w.starts_with("flood"), "{w}");
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(1_450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");

    for _ in 0..2 {
        assert!(poll(&h).await.starts_with("flood"));
    }
    // A poll waiting when a task of a key at its limit arrives gets it when the key's next
    // dispatch is due (flood just used its token: about 0.5 s)...
    let waiting = tokio::spawn({
        let engine = h.engine.clone();
        async move { poll_activity(&engine, "jobs", "worker", 5_000).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let added = Instant::now();
    add(&h, "flood-late", "flood").await;
    let got = waiting.await.expect("join").expect("poll");
    assert_eq!(
        got.workflow_execution.map(|e| e.workflow_id),
        Some("flood-late".into())
    );
    assert!(
        added.elapsed() >= Duration::from_millis(300),
        "{:?}",
        added.elapsed()
    );
    // ... and once the limit is lifted, a key goes as fast as it is polled.
    q.apply_config(&PartitionConfig::default());
    for i in 0..5 {
        add(&h, &format!("free-{i}"), "flood").await;
    }
    let start = Instant::now();
    for _ in 0..5 {
        poll(&h).await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_fairness_key_rate_limit_scales_with_the_weight() {
    let h = Harness::new();
    let q = queue(&h).await;
    let overrides: HashMap<String, f32> = [("gold".to_owned(), 4.0)].into();
    q.apply_config(&PartitionConfig {
        key_rate: Some(1.0),
        overrides,
        ..PartitionConfig::default()
    });
    for i in 0..6 {
        add(&h, &format!("gold-{i}"), "gold").await;
    }
    // Weight 4 at one a second each: a burst of four, then four a second.
    let start = Instant::now();
    for _ in 0..6 {
        poll(&h).await;
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
}

async fn poll_limited(h: &Harness, max_tasks_per_second: Option<f64>) -> String {
    use temper_proto::temporal::api::taskqueue::v1::TaskQueueMetadata;
    use temper_proto::temporal::api::workflowservice::v1::PollActivityTaskQueueRequest as ApiPoll;
    let resp = h
        .engine
        .poll_activity_task_queue(Request::new(PollActivityTaskQueueRequest {
            namespace_id: NS.to_owned(),
            poller_id: format!("poll-{}", uuid::Uuid::new_v4()),
            request: Some(ApiPoll {
                namespace: "default".to_owned(),
                task_queue: Some(normal("jobs")),
                identity: "worker".to_owned(),
                task_queue_metadata: Some(TaskQueueMetadata {
                    max_tasks_per_second,
                }),
                ..Default::default()
            }),
            long_poll_timeout_ms: 5_000,
            ..Default::default()
        }))
        .await
        .expect("poll")
        .into_inner();
    resp.workflow_execution.expect("a task").workflow_id
}

#[tokio::test]
async fn the_workers_max_tasks_per_second_limits_dispatch_unless_the_config_sets_one() {
    let h = Harness::new();
    let q = queue(&h).await;
    assert_eq!(q.effective_rate_limit(), (None, LimitSource::System));
    for i in 0..6 {
        add(&h, &format!("wf-{i}"), "").await;
    }
    // The worker asks for 4 a second: a burst of four, then 4/s.
    let start = Instant::now();
    for _ in 0..6 {
        poll_limited(&h, Some(4.0)).await;
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert_eq!(q.effective_rate_limit(), (Some(4.0), LimitSource::Worker));
    // The config's rate replaces the worker's.
    q.apply_config(&rate(Some(1000.0)));
    assert_eq!(q.effective_rate_limit(), (Some(1000.0), LimitSource::Api));
    for i in 0..10 {
        add(&h, &format!("fast-{i}"), "").await;
    }
    let start = Instant::now();
    for _ in 0..10 {
        poll_limited(&h, Some(4.0)).await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    // Without either, no limit; a poll that sets none lifts the worker's.
    q.apply_config(&rate(None));
    add(&h, "last", "").await;
    poll_limited(&h, None).await;
    assert_eq!(q.effective_rate_limit(), (None, LimitSource::System));
}
