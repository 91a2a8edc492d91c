//! UpdateTaskQueueConfig as matching honours it: the queue rate limit spaces out dispatches
//! (from the backlog and to waiting polls alike) and is shared by the queue's partitions;
//! weight overrides replace the weight tasks carry.

use std::collections::HashMap;

use temper_proto::temporal::api::common::v1::Priority;
use temper_proto::temporal::api::taskqueue::v1::{RateLimit, RateLimitConfig, TaskQueueConfig};
use tokio::time::Instant;

use super::*;
use crate::engine::config_for_partition;

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
    q.apply_config(Some(5.0), &HashMap::new());
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
    q.apply_config(Some(1.0), &HashMap::new());
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
    q.apply_config(None, &HashMap::new());
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
    q.apply_config(Some(0.0), &HashMap::new());
    add(&h, "held", "").await;
    let resp = poll_activity(&h.engine, "jobs", "worker", 600)
        .await
        .expect("poll");
    assert!(resp.workflow_execution.is_none(), "nothing dispatched");
    q.apply_config(None, &HashMap::new());
    assert_eq!(poll(&h).await, "held");
}

#[tokio::test]
async fn a_weight_override_shares_a_backlog_by_the_overridden_weight() {
    let h = Harness::new();
    let q = queue(&h).await;
    let overrides: HashMap<String, f32> = [("gold".to_owned(), 3.0)].into();
    q.apply_config(None, &overrides);
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
    let (rate, overrides) = config_for_partition(Some(config.clone()), 4);
    assert_eq!(rate, Some(25.0));
    assert_eq!(overrides.get("k"), Some(&2.0));
    // A removed limit (metadata only) is no limit.
    let lifted = TaskQueueConfig {
        queue_rate_limit: Some(RateLimitConfig {
            rate_limit: None,
            metadata: None,
        }),
        ..config
    };
    assert_eq!(config_for_partition(Some(lifted), 4).0, None);
    assert_eq!(config_for_partition(None, 1), (None, HashMap::new()));
}
