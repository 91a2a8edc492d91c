//! Legacy worker versioning's data calls (build id version sets, deprecated in Temporal but
//! still served when `frontend.workerVersioningDataAPIs` is on): UpdateWorkerBuildIdCompatibility,
//! GetWorkerBuildIdCompatibility and GetWorkerTaskReachability. The sets are kept per task
//! queue in the namespace's stored detail (`temper_client::deployments::version_sets`).
//! temper does not route tasks by them (docs/compatibility.md, "Build id version sets").

use std::time::{Duration, SystemTime};

use temper_client::deployments::version_sets::{
    self, MAX_BUILD_ID_LEN, VersionSetOp, compatibility, find,
};
use temper_proto::persistence::v1::TaskQueueVersionSets;
use temper_proto::temporal::api::enums::v1::{TaskQueueKind, TaskReachability};
use temper_proto::temporal::api::errordetails::v1::PermissionDeniedFailure;
use temper_proto::temporal::api::taskqueue::v1::{
    BuildIdReachability, TaskQueue, TaskQueueReachability,
};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_proto::temporal::api::workflowservice::v1::update_worker_build_id_compatibility_request::Operation;
use temper_types::NamespaceId;
use tonic::{Code, Status};

use crate::Frontend;

/// Temporal's `limit.reachabilityQueryBuildIds`, `limit.reachabilityTaskQueueScan` and
/// `frontend.reachabilityQuerySetDurationSinceDefault`.
const MAX_REACHABILITY_BUILD_IDS: usize = 5;
const MAX_REACHABILITY_TASK_QUEUES: usize = 20;
const NEW_WORKFLOWS_AFTER_DEMOTION: Duration = Duration::from_secs(5 * 60);

const BUILD_ID_TOO_LONG: &str =
    "Build ID exceeds configured limit.workerBuildIdSize, use a shorter build ID.";

fn disabled(message: &str) -> Status {
    temper_client::status::status_with_details(
        Code::PermissionDenied,
        message,
        &PermissionDeniedFailure {
            reason: String::new(),
        },
    )
}

fn check_queue(name: &str) -> Result<(), Status> {
    crate::check_task_queue(&Some(TaskQueue {
        name: name.to_owned(),
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    }))
}

/// The operation of an update, after Temporal's checks (all problems in one message).
fn operation(r: &ws::UpdateWorkerBuildIdCompatibilityRequest) -> Result<VersionSetOp<'_>, Status> {
    let mut problems: Vec<String> = Vec::new();
    // A build id the operation needs: named if missing, its length checked if given.
    let required = |problems: &mut Vec<String>, id: &str, field: &str| {
        if id.is_empty() {
            problems.push(format!("`{field}` to be set"));
        } else if id.len() > MAX_BUILD_ID_LEN {
            problems.push(format!(
                " Worker build IDs to be no larger than {MAX_BUILD_ID_LEN} characters"
            ));
        }
    };
    if r.namespace.is_empty() {
        problems.push("`namespace` to be set".into());
    }
    if r.task_queue.is_empty() {
        problems.push("`task_queue` to be set".into());
    }
    let op = match &r.operation {
        None => {
            problems.push("an operation to be specified".into());
            None
        }
        Some(Operation::AddNewCompatibleBuildId(add)) => {
            required(
                &mut problems,
                &add.new_build_id,
                "add_new_compatible_version",
            );
            if add.existing_compatible_build_id.is_empty() {
                problems.push("`existing_compatible_version` to be set".into());
            }
            Some(VersionSetOp::AddNewCompatible {
                new: &add.new_build_id,
                existing: &add.existing_compatible_build_id,
                make_set_default: add.make_set_default,
            })
        }
        Some(Operation::AddNewBuildIdInNewDefaultSet(id)) => {
            required(&mut problems, id, "add_new_version_id_in_new_default_set");
            Some(VersionSetOp::AddNewDefault(id))
        }
        Some(Operation::PromoteSetByBuildId(id)) => {
            required(&mut problems, id, "promote_set_by_version_id");
            Some(VersionSetOp::PromoteSet(id))
        }
        Some(Operation::PromoteBuildIdWithinSet(id)) => {
            required(&mut problems, id, "promote_version_id_within_set");
            Some(VersionSetOp::PromoteWithinSet(id))
        }
        Some(Operation::MergeSets(m)) => Some(VersionSetOp::Merge {
            primary: &m.primary_set_build_id,
            secondary: &m.secondary_set_build_id,
        }),
    };
    match op {
        Some(op) if problems.is_empty() => Ok(op),
        _ => {
            let mut message =
                vec!["request to update worker build ID compatability requires: ".to_owned()];
            message.extend(problems);
            Err(Status::invalid_argument(message.join(", ")))
        }
    }
}

impl Frontend {
    fn check_versioning_data(&self, message: &str) -> Result<(), Status> {
        if self.config.worker_versioning_data_apis {
            Ok(())
        } else {
            Err(disabled(message))
        }
    }

    pub(crate) async fn update_build_id_compatibility(
        &self,
        r: ws::UpdateWorkerBuildIdCompatibilityRequest,
    ) -> Result<ws::UpdateWorkerBuildIdCompatibilityResponse, Status> {
        self.check_versioning_data(
            "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace.",
        )?;
        let op = operation(&r)?;
        check_queue(&r.task_queue)?;
        let ns = NamespaceId(self.ns_id(&r.namespace).await?);
        let registry = self.registry()?;
        let now = registry.now();
        registry
            .modify_version_sets(&ns, &r.task_queue, |queue| {
                version_sets::apply(queue, op, now).map(|changed| ((), changed))
            })
            .await?;
        Ok(ws::UpdateWorkerBuildIdCompatibilityResponse {})
    }

    pub(crate) async fn get_build_id_compatibility(
        &self,
        r: ws::GetWorkerBuildIdCompatibilityRequest,
    ) -> Result<ws::GetWorkerBuildIdCompatibilityResponse, Status> {
        self.check_versioning_data(
            "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace.",
        )?;
        check_queue(&r.task_queue)?;
        let ns = NamespaceId(self.ns_id(&r.namespace).await?);
        let all = self.registry()?.version_sets(&ns).await?;
        let major_version_sets = all
            .iter()
            .find(|q| q.task_queue == r.task_queue)
            .map(|q| compatibility(q, usize::try_from(r.max_sets.max(0)).unwrap_or(0)))
            .unwrap_or_default();
        Ok(ws::GetWorkerBuildIdCompatibilityResponse { major_version_sets })
    }

    pub(crate) async fn get_task_reachability(
        &self,
        r: ws::GetWorkerTaskReachabilityRequest,
    ) -> Result<ws::GetWorkerTaskReachabilityResponse, Status> {
        self.check_versioning_data(
            "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace.",
        )?;
        if r.build_ids.is_empty() {
            return Err(Status::invalid_argument(
                "Must query at least one build ID (or empty string for unversioned worker)",
            ));
        }
        if r.build_ids.len() > MAX_REACHABILITY_BUILD_IDS {
            return Err(Status::invalid_argument(format!(
                "Too many build ids queried at once, limit: {MAX_REACHABILITY_BUILD_IDS}"
            )));
        }
        if r.build_ids.iter().any(|b| b.len() > MAX_BUILD_ID_LEN) {
            return Err(Status::invalid_argument(BUILD_ID_TOO_LONG));
        }
        if r.build_ids.iter().any(String::is_empty) && r.task_queues.is_empty() {
            return Err(Status::invalid_argument(
                "Cannot get reachability of an unversioned worker without specifying at least one task queue (empty build ID is interpereted as unversioned)",
            ));
        }
        for q in &r.task_queues {
            check_queue(q)?;
        }
        let kind =
            TaskReachability::try_from(r.reachability).unwrap_or(TaskReachability::Unspecified);
        let ns_id = NamespaceId(self.ns_id(&r.namespace).await?);
        let registry = self.registry()?;
        let all = registry.version_sets(&ns_id).await?;
        let now = registry.now();
        let mut build_id_reachability = Vec::with_capacity(r.build_ids.len());
        for build_id in &r.build_ids {
            let queues: Vec<String> = if r.task_queues.is_empty() {
                all.iter()
                    .filter(|q| find(q, build_id).is_some())
                    .map(|q| q.task_queue.clone())
                    .collect()
            } else {
                r.task_queues.clone()
            };
            let mut task_queue_reachability = Vec::with_capacity(queues.len());
            for (i, task_queue) in queues.into_iter().enumerate() {
                if i >= MAX_REACHABILITY_TASK_QUEUES {
                    task_queue_reachability.push(TaskQueueReachability {
                        task_queue,
                        reachability: vec![TaskReachability::Unspecified as i32],
                    });
                    continue;
                }
                let sets = all.iter().find(|q| q.task_queue == task_queue);
                let reachability = self
                    .queue_reachability(&r.namespace, &task_queue, sets, build_id, kind, now)
                    .await
                    .map_err(|e| {
                        if e.code() == Code::InvalidArgument {
                            e
                        } else {
                            tracing::error!(error = %e, "getting worker task reachability failed");
                            Status::internal("Internal error")
                        }
                    })?;
                task_queue_reachability.push(TaskQueueReachability {
                    task_queue,
                    reachability: reachability.into_iter().map(|k| k as i32).collect(),
                });
            }
            build_id_reachability.push(BuildIdReachability {
                build_id: build_id.clone(),
                task_queue_reachability,
            });
        }
        Ok(ws::GetWorkerTaskReachabilityResponse {
            build_id_reachability,
        })
    }

    /// Temporal's rule: a build id is reachable by new workflows if its set is the queue's
    /// default (or was until five minutes ago) and it is its set's default; by existing
    /// workflows if visibility has any on the queue that ran on its set (or that ran on no
    /// build id yet, for the queue's default).
    async fn queue_reachability(
        &self,
        namespace: &str,
        task_queue: &str,
        sets: Option<&TaskQueueVersionSets>,
        build_id: &str,
        kind: TaskReachability,
        now: SystemTime,
    ) -> Result<Vec<TaskReachability>, Status> {
        let queue = sets;
        let sets = sets.map(|q| q.sets.as_slice()).unwrap_or_default();
        let recently = |t: Option<&temper_proto::wkt::Timestamp>| {
            t.and_then(|t| SystemTime::try_from(*t).ok())
                .is_some_and(|at| {
                    now.duration_since(at).unwrap_or_default() < NEW_WORKFLOWS_AFTER_DEMOTION
                })
        };
        let (default_in_queue, new_workflows, mut filter) = if build_id.is_empty() {
            // The unversioned worker: the queue's default until it got version sets.
            let default = sets.is_empty();
            let first = sets
                .iter()
                .filter_map(|s| s.became_default_time.as_ref())
                .min_by_key(|t| (t.seconds, t.nanos));
            (
                default,
                default || recently(first),
                "BuildIds = 'unversioned'".to_owned(),
            )
        } else {
            let Some((s, i)) = queue.and_then(|q| find(q, build_id)) else {
                return Ok(Vec::new());
            };
            let set = &sets[s];
            if i + 1 != set.build_ids.len() {
                return Ok(Vec::new());
            }
            let default = s + 1 == sets.len();
            let values: Vec<String> = set
                .build_ids
                .iter()
                .map(|b| visibility_string(&format!("versioned:{}", b.id)))
                .collect();
            (
                default,
                default || recently(set.became_default_time.as_ref()),
                format!("BuildIds IN ({})", values.join(",")),
            )
        };
        let mut out = Vec::new();
        if new_workflows {
            out.push(TaskReachability::NewWorkflows);
        }
        if default_in_queue && kind != TaskReachability::ClosedWorkflows {
            filter = format!("(BuildIds IS NULL OR {filter})");
        }
        let (status, kind) = match kind {
            TaskReachability::NewWorkflows => return Ok(out),
            TaskReachability::OpenWorkflows => (" AND ExecutionStatus = 'Running'", kind),
            TaskReachability::ClosedWorkflows => (" AND ExecutionStatus != 'Running'", kind),
            TaskReachability::Unspecified | TaskReachability::ExistingWorkflows => {
                ("", TaskReachability::ExistingWorkflows)
            }
        };
        let query = format!(
            "TaskQueue = {} AND {filter}{status}",
            visibility_string(task_queue)
        );
        let count = self
            .count(ws::CountWorkflowExecutionsRequest {
                namespace: namespace.to_owned(),
                query,
            })
            .await?
            .count;
        if count > 0 {
            out.push(kind);
        }
        Ok(out)
    }
}

/// A string literal of the visibility query language.
fn visibility_string(s: &str) -> String {
    temper_visibility::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::workflowservice::v1::update_worker_build_id_compatibility_request::AddNewCompatibleVersion;

    #[test]
    fn update_checks_report_every_problem_as_temporal_words_them() {
        let r = ws::UpdateWorkerBuildIdCompatibilityRequest {
            namespace: String::new(),
            task_queue: String::new(),
            operation: Some(Operation::AddNewCompatibleBuildId(
                AddNewCompatibleVersion {
                    new_build_id: "x".repeat(256),
                    existing_compatible_build_id: String::new(),
                    make_set_default: false,
                },
            )),
        };
        let err = operation(&r).expect_err("invalid");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "request to update worker build ID compatability requires: , `namespace` to be set, \
             `task_queue` to be set,  Worker build IDs to be no larger than 255 characters, \
             `existing_compatible_version` to be set"
        );
        let r = ws::UpdateWorkerBuildIdCompatibilityRequest {
            namespace: "ns".into(),
            task_queue: "tq".into(),
            operation: Some(Operation::PromoteSetByBuildId("1.0".into())),
        };
        assert_eq!(
            operation(&r).expect("valid"),
            VersionSetOp::PromoteSet("1.0")
        );
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(visibility_string("a'b"), "'a''b'");
    }
}
