//! DescribeTaskQueue: pollers by identity and type, backlog status.

use temper_proto::internal::v1::DescribeTaskQueueRequest;
use temper_proto::temporal::api::enums::v1::{DescribeTaskQueueMode, TaskQueueType};
use temper_proto::temporal::api::taskqueue::v1::PollerInfo;
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeTaskQueueRequest as ApiDescribe, DescribeTaskQueueResponse,
};

use super::*;
use crate::pollers::DEFAULT_TASK_DISPATCH_RPS;

async fn describe(h: &Harness, request: ApiDescribe) -> DescribeTaskQueueResponse {
    h.engine
        .describe_task_queue(Request::new(DescribeTaskQueueRequest {
            namespace_id: NS.to_owned(),
            request: Some(request),
        }))
        .await
        .expect("describe")
        .into_inner()
}

fn identities(pollers: &[PollerInfo]) -> Vec<String> {
    let mut ids: Vec<String> = pollers.iter().map(|p| p.identity.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
#[allow(deprecated)]
async fn describe_lists_recent_pollers_of_the_requested_type() {
    let h = Harness::new();
    h.poll_workflow("orders", "wf-worker-a", 10)
        .await
        .expect("poll");
    h.poll_workflow("orders", "wf-worker-b", 10)
        .await
        .expect("poll");
    poll_activity(&h.engine, "orders", "act-worker", 10)
        .await
        .expect("poll");

    let resp = describe(
        &h,
        ApiDescribe {
            namespace: "default".to_owned(),
            task_queue: Some(normal("orders")),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        identities(&resp.pollers),
        ["wf-worker-a", "wf-worker-b"],
        "workflow by default"
    );
    assert!(resp.pollers.iter().all(|p| p.last_access_time.is_some()));
    assert!(
        resp.pollers
            .iter()
            .all(|p| p.rate_per_second == DEFAULT_TASK_DISPATCH_RPS)
    );
    assert!(resp.task_queue_status.is_none(), "not asked for");

    let resp = describe(
        &h,
        ApiDescribe {
            namespace: "default".to_owned(),
            task_queue: Some(normal("orders")),
            task_queue_type: TaskQueueType::Activity as i32,
            include_task_queue_status: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(identities(&resp.pollers), ["act-worker"]);
    let status = resp.task_queue_status.expect("status asked for");
    assert_eq!(status.backlog_count_hint, 0);
    assert_eq!(status.rate_per_second, DEFAULT_TASK_DISPATCH_RPS);
    assert!(status.task_id_block.is_some());
}

#[tokio::test]
#[allow(deprecated)]
async fn describe_reports_the_backlog() {
    let h = Harness::new();
    for i in 0..3 {
        h.add_workflow("orders", &format!("wf-{i}"), 2)
            .await
            .expect("add");
    }
    let resp = describe(
        &h,
        ApiDescribe {
            namespace: "default".to_owned(),
            task_queue: Some(normal("orders")),
            include_task_queue_status: true,
            report_stats: true,
            ..Default::default()
        },
    )
    .await;
    let status = resp.task_queue_status.expect("status");
    assert_eq!(status.backlog_count_hint, 3);
    assert!(status.read_level > status.ack_level);
    let stats = resp.stats.expect("stats");
    assert_eq!(stats.approximate_backlog_count, 3);
    assert!(stats.tasks_add_rate > 0.0);

    // A queue nobody loaded yet is loaded to report its stored backlog.
    let h2 = h.restart();
    let resp = describe(
        &h2,
        ApiDescribe {
            namespace: "default".to_owned(),
            task_queue: Some(normal("orders")),
            include_task_queue_status: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        resp.task_queue_status.expect("status").backlog_count_hint,
        3
    );
    assert!(resp.pollers.is_empty());
}

#[tokio::test]
#[allow(deprecated)]
async fn enhanced_describe_reports_pollers_per_type() {
    let h = Harness::new();
    h.poll_workflow("orders", "wf-worker", 10)
        .await
        .expect("poll");
    poll_activity(&h.engine, "orders", "act-worker", 10)
        .await
        .expect("poll");
    let resp = describe(
        &h,
        ApiDescribe {
            namespace: "default".to_owned(),
            task_queue: Some(normal("orders")),
            api_mode: DescribeTaskQueueMode::Enhanced as i32,
            report_pollers: true,
            report_stats: true,
            ..Default::default()
        },
    )
    .await;
    let unversioned = resp.versions_info.get("").expect("unversioned entry");
    let wf = unversioned
        .types_info
        .get(&(TaskQueueType::Workflow as i32))
        .expect("workflow type");
    assert_eq!(identities(&wf.pollers), ["wf-worker"]);
    assert!(wf.stats.is_some());
    let act = unversioned
        .types_info
        .get(&(TaskQueueType::Activity as i32))
        .expect("activity type");
    assert_eq!(identities(&act.pollers), ["act-worker"]);
}

#[tokio::test]
async fn activity_pollers_report_their_rate_limit() {
    let h = Harness::new();
    h.engine
        .poll_activity_task_queue(Request::new(
            temper_proto::internal::v1::PollActivityTaskQueueRequest {
                namespace_id: NS.to_owned(),
                poller_id: "p".to_owned(),
                request: Some(ApiPollActivity {
                    task_queue: Some(normal("orders")),
                    identity: "limited".to_owned(),
                    task_queue_metadata: Some(
                        temper_proto::temporal::api::taskqueue::v1::TaskQueueMetadata {
                            max_tasks_per_second: Some(12.5),
                        },
                    ),
                    ..Default::default()
                }),
                long_poll_timeout_ms: 10,
                ..Default::default()
            },
        ))
        .await
        .expect("poll");
    let resp = describe(
        &h,
        ApiDescribe {
            task_queue: Some(normal("orders")),
            task_queue_type: TaskQueueType::Activity as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(resp.pollers.len(), 1);
    assert_eq!(resp.pollers[0].rate_per_second, 12.5);
}
