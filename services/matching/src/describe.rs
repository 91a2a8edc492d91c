//! DescribeTaskQueue: what one partition reports, and, asked on a queue's root, the whole
//! queue: the root asks every other partition (through the forwarder, marked as forwarded so
//! that they answer for themselves only) and merges the answers. Pollers are merged by
//! identity (the latest access wins); backlog counts and add / dispatch rates are summed,
//! the backlog age is the oldest. A partition that cannot answer is left out: describing is
//! best effort.

use std::collections::HashMap;

use temper_proto::internal::v1::DescribeTaskQueueRequest;
use temper_proto::temporal::api::enums::v1::{
    BuildIdTaskReachability, DescribeTaskQueueMode, RateLimitSource,
};
use temper_proto::temporal::api::taskqueue::v1::{
    PollerInfo, TaskQueueStats, TaskQueueStatus, TaskQueueTypeInfo, TaskQueueVersionInfo,
};
use temper_proto::temporal::api::workflowservice::v1::DescribeTaskQueueResponse;
use temper_proto::temporal::api::workflowservice::v1::describe_task_queue_response::EffectiveRateLimit;
use temper_types::partition_name;
use tonic::Status;

use crate::engine::Core;
use crate::forward::forwarded;
use crate::key::{QueueKey, QueueKind, QueueType};
use crate::pollers::DEFAULT_TASK_DISPATCH_RPS;
use crate::queue::{LimitSource, TaskQueue};
use crate::service::{namespace, task_queue};

impl Core {
    /// DescribeTaskQueue: the partition named, and when that is a root (and the call was not
    /// forwarded), every other partition of the queue too.
    pub(crate) async fn describe(
        &self,
        req: DescribeTaskQueueRequest,
        forwarded_call: bool,
    ) -> Result<DescribeTaskQueueResponse, Status> {
        let mut response = self.describe_partition(&req).await?;
        let Some(request) = req.request.as_ref() else {
            return Ok(response);
        };
        let Some(tq) = request.task_queue.as_ref() else {
            return Ok(response);
        };
        let key = QueueKey::from_name(
            namespace(&req.namespace_id)?,
            &tq.name,
            QueueType::Workflow,
            QueueKind::from_i32(tq.kind),
        );
        if forwarded_call || key.kind == QueueKind::Sticky || key.partition != 0 {
            return Ok(response);
        }
        let partitions = self.config().partitions.partitions(&key.name);
        if partitions <= 1 {
            return Ok(response);
        }
        let client = self.forwarder()?;
        let mut calls = tokio::task::JoinSet::new();
        for n in 1..partitions {
            let mut sub = req.clone();
            if let Some(r) = sub.request.as_mut()
                && let Some(q) = r.task_queue.as_mut()
            {
                q.name = partition_name(&key.name, n);
            }
            let client = client.clone();
            calls.spawn(async move {
                let answer = client.describe_task_queue(forwarded(sub, 0)).await;
                (n, answer)
            });
        }
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((_, Ok(part))) => merge(&mut response, part.into_inner()),
                Ok((n, Err(s))) => {
                    tracing::debug!(queue = %key.name, partition = n, status = %s,
                        "a partition did not answer DescribeTaskQueue; left out");
                }
                Err(err) => tracing::warn!(%err, "a DescribeTaskQueue fan-out call failed"),
            }
        }
        Ok(response)
    }

    /// What DescribeTaskQueue reports about the one partition the request names.
    async fn describe_partition(
        &self,
        req: &DescribeTaskQueueRequest,
    ) -> Result<DescribeTaskQueueResponse, Status> {
        let ns = namespace(&req.namespace_id)?;
        let request = req
            .request
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("Request is nil."))?;
        let tq = task_queue(request.task_queue.as_ref())?;
        let kind = QueueKind::from_i32(tq.kind);
        #[allow(deprecated)]
        // api_mode and the ENHANCED fields: what `temporal task-queue describe` sends.
        if request.api_mode == DescribeTaskQueueMode::Enhanced as i32 {
            if kind == QueueKind::Sticky {
                return Err(Status::invalid_argument(
                    "Sticky queues are not supported in ENHANCED mode.",
                ));
            }
            let types: Vec<i32> = if request.task_queue_types.is_empty() {
                vec![QueueType::Workflow.as_i32(), QueueType::Activity.as_i32()]
            } else {
                request.task_queue_types.clone()
            };
            let mut types_info = HashMap::new();
            for ty in types {
                let mut info = TaskQueueTypeInfo::default();
                if let Some(task_type) = QueueType::from_i32(ty) {
                    let key = QueueKey::from_name(ns.clone(), &tq.name, task_type, kind);
                    let queue = if request.report_stats {
                        Some(self.queue(&key).await?)
                    } else {
                        self.loaded(&key)
                    };
                    if request.report_pollers {
                        info.pollers = self.version_pollers(&key);
                    }
                    if let Some(queue) = queue {
                        if request.report_pollers {
                            merge_pollers(&mut info.pollers, queue.pollers());
                        }
                        if request.report_stats {
                            info.stats = Some(queue.stats());
                        }
                    }
                }
                types_info.insert(ty, info);
            }
            let reachability = if request.report_task_reachability {
                BuildIdTaskReachability::Reachable as i32
            } else {
                BuildIdTaskReachability::Unspecified as i32
            };
            let mut versions_info = HashMap::new();
            versions_info.insert(
                String::new(),
                TaskQueueVersionInfo {
                    types_info,
                    task_reachability: reachability,
                },
            );
            return Ok(DescribeTaskQueueResponse {
                versions_info,
                ..Default::default()
            });
        }

        let task_type = if request.task_queue_type == 0 {
            Some(QueueType::Workflow)
        } else {
            QueueType::from_i32(request.task_queue_type)
        };
        #[allow(deprecated)]
        let want_status = request.include_task_queue_status;
        let mut response = DescribeTaskQueueResponse::default();
        let Some(task_type) = task_type else {
            // A type matching does not serve (nexus): nobody polls it here.
            #[allow(deprecated)]
            if want_status {
                response.task_queue_status = Some(TaskQueueStatus {
                    rate_per_second: DEFAULT_TASK_DISPATCH_RPS,
                    ..Default::default()
                });
            }
            return Ok(response);
        };
        let key = QueueKey::from_name(ns, &tq.name, task_type, kind);
        // A backlog report needs the normal queue loaded (that is what takes its lease and
        // reads its backlog); pollers alone do not.
        let needs_load = kind == QueueKind::Normal && (want_status || request.report_stats);
        let queue = if needs_load {
            Some(self.queue(&key).await?)
        } else {
            self.loaded(&key)
        };
        if let Some(queue) = &queue {
            response.pollers = queue.pollers();
            if request.report_stats {
                response.stats = Some(queue.stats());
                response.stats_by_priority_key = queue.stats_by_priority_key();
            }
        }
        merge_pollers(&mut response.pollers, self.version_pollers(&key));
        response.effective_rate_limit =
            Some(self.effective_rate_limit(&key, queue.as_deref()).await);
        if want_status {
            let status = queue.map(|q| q.status()).unwrap_or(TaskQueueStatus {
                rate_per_second: DEFAULT_TASK_DISPATCH_RPS,
                ..Default::default()
            });
            #[allow(deprecated)]
            {
                response.task_queue_status = Some(status);
            }
        }
        Ok(response)
    }
}

impl Core {
    /// The dispatch limit a partition applies, for the whole queue: the queue rate limit of
    /// UpdateTaskQueueConfig, else the workers' `max_tasks_per_second` (known once a worker
    /// polled the partition here), else none, which is reported as Temporal's default
    /// dispatch rate with source SYSTEM.
    async fn effective_rate_limit(
        &self,
        key: &QueueKey,
        queue: Option<&TaskQueue>,
    ) -> EffectiveRateLimit {
        let (rate, source) = match queue {
            Some(queue) => {
                // A partition loaded for another reason than a poll may not have it yet.
                self.apply_task_queue_config(key, queue).await;
                queue.effective_rate_limit()
            }
            None => match self.partition_config(key).await.and_then(|c| c.rate) {
                Some(share) => {
                    let partitions = self.config().partitions.partitions(&key.name);
                    (Some(share * f64::from(partitions.max(1))), LimitSource::Api)
                }
                None => (None, LimitSource::System),
            },
        };
        EffectiveRateLimit {
            requests_per_second: rate.unwrap_or(DEFAULT_TASK_DISPATCH_RPS) as f32,
            rate_limit_source: match source {
                LimitSource::System => RateLimitSource::System,
                LimitSource::Api => RateLimitSource::Api,
                LimitSource::Worker => RateLimitSource::Worker,
            } as i32,
        }
    }

    /// The pollers of a partition's worker deployment versions (their own queues beside
    /// the unversioned one; see `crate::versioning`).
    fn version_pollers(&self, key: &QueueKey) -> Vec<PollerInfo> {
        let mut pollers = Vec::new();
        let versions =
            self.loaded_where(|k| !k.version.is_empty() && k.with_version(String::new()) == *key);
        for queue in versions {
            merge_pollers(&mut pollers, queue.pollers());
        }
        pollers
    }
}

/// Fold one partition's answer into the root's.
#[allow(deprecated)] // task_queue_status: still what the CLI shows.
fn merge(into: &mut DescribeTaskQueueResponse, part: DescribeTaskQueueResponse) {
    merge_pollers(&mut into.pollers, part.pollers);
    merge_stats(&mut into.stats, part.stats);
    for (key, part) in part.stats_by_priority_key {
        let into = into.stats_by_priority_key.entry(key).or_default();
        let mut merged = Some(std::mem::take(into));
        merge_stats(&mut merged, Some(part));
        *into = merged.unwrap_or_default();
    }
    if let (Some(into), Some(part)) = (into.task_queue_status.as_mut(), part.task_queue_status) {
        into.backlog_count_hint += part.backlog_count_hint;
    }
    for (version, part_version) in part.versions_info {
        let into_version = into.versions_info.entry(version).or_default();
        for (ty, part_info) in part_version.types_info {
            let into_info = into_version.types_info.entry(ty).or_default();
            merge_pollers(&mut into_info.pollers, part_info.pollers);
            merge_stats(&mut into_info.stats, part_info.stats);
        }
    }
}

/// One entry per identity, the most recently seen first.
fn merge_pollers(into: &mut Vec<PollerInfo>, part: Vec<PollerInfo>) {
    if part.is_empty() {
        return;
    }
    let access = |p: &PollerInfo| {
        p.last_access_time
            .as_ref()
            .map_or((i64::MIN, i32::MIN), |t| (t.seconds, t.nanos))
    };
    let mut by_identity: HashMap<String, PollerInfo> = HashMap::new();
    for poller in std::mem::take(into).into_iter().chain(part) {
        match by_identity.get(&poller.identity) {
            Some(seen) if access(seen) >= access(&poller) => {}
            _ => {
                by_identity.insert(poller.identity.clone(), poller);
            }
        }
    }
    let mut merged: Vec<PollerInfo> = by_identity.into_values().collect();
    merged.sort_by(|a, b| {
        access(b)
            .cmp(&access(a))
            .then_with(|| a.identity.cmp(&b.identity))
    });
    *into = merged;
}

fn merge_stats(into: &mut Option<TaskQueueStats>, part: Option<TaskQueueStats>) {
    let Some(part) = part else {
        return;
    };
    let Some(into) = into.as_mut() else {
        *into = Some(part);
        return;
    };
    into.approximate_backlog_count += part.approximate_backlog_count;
    let age = |d: &Option<temper_proto::wkt::Duration>| {
        d.as_ref().map_or((0, 0), |d| (d.seconds, d.nanos))
    };
    if age(&part.approximate_backlog_age) > age(&into.approximate_backlog_age) {
        into.approximate_backlog_age = part.approximate_backlog_age;
    }
    into.tasks_add_rate += part.tasks_add_rate;
    into.tasks_dispatch_rate += part.tasks_dispatch_rate;
    into.rate_limiting_active |= part.rate_limiting_active;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poller(identity: &str, seconds: i64) -> PollerInfo {
        PollerInfo {
            identity: identity.to_owned(),
            last_access_time: Some(temper_proto::wkt::Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        }
    }

    #[test]
    fn pollers_merge_by_identity_latest_first() {
        let mut into = vec![poller("a", 10), poller("b", 5)];
        merge_pollers(
            &mut into,
            vec![poller("b", 20), poller("c", 1), poller("a", 3)],
        );
        let got: Vec<(String, i64)> = into
            .iter()
            .map(|p| {
                (
                    p.identity.clone(),
                    p.last_access_time.as_ref().map_or(0, |t| t.seconds),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("b".to_owned(), 20),
                ("a".to_owned(), 10),
                ("c".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn stats_add_up() {
        let mut into = Some(TaskQueueStats {
            approximate_backlog_count: 2,
            tasks_add_rate: 1.0,
            ..Default::default()
        });
        merge_stats(
            &mut into,
            Some(TaskQueueStats {
                approximate_backlog_count: 3,
                approximate_backlog_age: Some(temper_proto::wkt::Duration {
                    seconds: 7,
                    nanos: 0,
                }),
                tasks_add_rate: 0.5,
                ..Default::default()
            }),
        );
        let into = into.expect("stats");
        assert_eq!(into.approximate_backlog_count, 5);
        assert_eq!(into.approximate_backlog_age.map(|d| d.seconds), Some(7));
        assert!((into.tasks_add_rate - 1.5).abs() < f32::EPSILON);
    }
}
