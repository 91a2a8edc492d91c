//! Worker deployments of one namespace, sans-IO: versions registered by polling workers, the
//! routing (current and ramping version) the Set* calls change, the answers of the Describe
//! and List calls, and where a task goes. The registry (`super::registry`) loads and stores
//! this state; everything here is a plain function of it, tested without a store.

use temper_proto::internal::v1::VersionDirective;
use temper_proto::persistence::v1::{WorkerDeploymentRecord, WorkerDeploymentVersionRecord};
use temper_proto::temporal::api::deployment::v1::worker_deployment_info::WorkerDeploymentVersionSummary;
use temper_proto::temporal::api::deployment::v1::worker_deployment_version_info::VersionTaskQueueInfo;
use temper_proto::temporal::api::deployment::v1::{
    RoutingConfig, VersionDrainageInfo, WorkerDeploymentInfo, WorkerDeploymentVersion,
    WorkerDeploymentVersionInfo,
};
use temper_proto::temporal::api::enums::v1::{
    RoutingConfigUpdateState, VersionDrainageStatus, WorkerDeploymentVersionStatus as Status,
};
use temper_proto::temporal::api::workflowservice::v1::describe_worker_deployment_version_response::VersionTaskQueue;
use temper_proto::temporal::api::workflowservice::v1::list_worker_deployments_response::WorkerDeploymentSummary;
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeWorkerDeploymentResponse, DescribeWorkerDeploymentVersionResponse,
    SetWorkerDeploymentCurrentVersionResponse, SetWorkerDeploymentRampingVersionResponse,
};
use temper_proto::wkt::Timestamp;

/// What routing config strings name when no version is current (Temporal's spelling).
pub const UNVERSIONED: &str = "__unversioned__";

/// Why a deployment call was refused; [`crate::status::deployment_status`] maps it to gRPC.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeploymentError {
    #[error("{0}")]
    NotFound(String),
    #[error("conflict token mismatch")]
    ConflictToken,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
}

/// `deployment.build`: the version string of the API's deprecated `version` fields.
pub fn canonical(deployment: &str, build_id: &str) -> String {
    format!("{deployment}.{build_id}")
}

/// A version named by a request: `build_id` if set, else the deprecated `version` string
/// (`deployment.build`, or `__unversioned__`). `Ok(None)`: unversioned.
pub fn requested_build(
    deployment: &str,
    build_id: &str,
    version: &str,
) -> Result<Option<String>, DeploymentError> {
    if !build_id.is_empty() {
        return Ok(Some(build_id.to_owned()));
    }
    if version.is_empty() || version == UNVERSIONED {
        return Ok(None);
    }
    match version.split_once('.') {
        Some((d, b)) if d == deployment && !b.is_empty() => Ok(Some(b.to_owned())),
        _ => Err(DeploymentError::InvalidArgument(format!(
            "version '{version}' is not of the form '{deployment}.<build id>'"
        ))),
    }
}

/// Parse `deployment.build` (the deprecated version string of DescribeWorkerDeploymentVersion).
pub fn parse_version(version: &str) -> Option<WorkerDeploymentVersion> {
    let (d, b) = version.split_once('.')?;
    (!d.is_empty() && !b.is_empty()).then(|| WorkerDeploymentVersion {
        deployment_name: d.to_owned(),
        build_id: b.to_owned(),
    })
}

/// The conflict token of a routing revision: opaque to clients, compared byte for byte.
pub fn conflict_token(revision: i64) -> Vec<u8> {
    revision.to_be_bytes().to_vec()
}

/// Where in `[0, 100)` a workflow id falls for ramping: a run goes to the ramping version when
/// this is below the ramp percentage. Stable (xxh3), so a workflow id always ramps alike.
pub fn ramp_bucket(workflow_id: &str) -> f32 {
    let h = xxhash_rust::xxh3::xxh3_64(workflow_id.as_bytes());
    ((h % 10_000) as f32) / 100.0
}

/// The deployments of one namespace, ordered by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentSet {
    pub deployments: Vec<WorkerDeploymentRecord>,
}

fn same(a: Option<&WorkerDeploymentVersion>, b: Option<&WorkerDeploymentVersion>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.build_id == b.build_id && a.deployment_name == b.deployment_name,
        _ => false,
    }
}

fn not_found(deployment: &str) -> DeploymentError {
    DeploymentError::NotFound(format!(
        "no Worker Deployment found with name '{deployment}'; does your Worker Deployment have pollers?"
    ))
}

fn version_of(deployment: &str, build_id: &str) -> WorkerDeploymentVersion {
    WorkerDeploymentVersion {
        deployment_name: deployment.to_owned(),
        build_id: build_id.to_owned(),
    }
}

impl DeploymentSet {
    pub fn get(&self, name: &str) -> Option<&WorkerDeploymentRecord> {
        self.deployments.iter().find(|d| d.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut WorkerDeploymentRecord, DeploymentError> {
        self.deployments
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| not_found(name))
    }

    /// A worker of `deployment`/`build_id` polls `task_queue` (a `TaskQueueType`): create the
    /// deployment and version and note the queue as needed. Returns whether anything changed.
    pub fn register(
        &mut self,
        deployment: &str,
        build_id: &str,
        task_queue: &str,
        task_type: i32,
        now: Timestamp,
    ) -> bool {
        let index = match self
            .deployments
            .binary_search_by(|d| d.name.as_str().cmp(deployment))
        {
            Ok(i) => i,
            Err(i) => {
                self.deployments.insert(
                    i,
                    WorkerDeploymentRecord {
                        name: deployment.to_owned(),
                        create_time: Some(now),
                        routing_config: Some(RoutingConfig {
                            #[allow(deprecated)]
                            current_version: UNVERSIONED.to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                );
                i
            }
        };
        let d = &mut self.deployments[index];
        let v = match d.versions.iter().position(|v| v.build_id == build_id) {
            Some(i) => &mut d.versions[i],
            None => {
                d.versions.push(WorkerDeploymentVersionRecord {
                    build_id: build_id.to_owned(),
                    create_time: Some(now),
                    status: Status::Inactive as i32,
                    ..Default::default()
                });
                d.versions.last_mut().expect("just pushed")
            }
        };
        if v.task_queues
            .iter()
            .any(|q| q.name == task_queue && q.r#type == task_type)
        {
            return false;
        }
        v.task_queues.push(VersionTaskQueueInfo {
            name: task_queue.to_owned(),
            r#type: task_type,
        });
        true
    }

    /// Whether `deployment` has version `build_id` on `task_queue` already.
    pub fn is_registered(
        &self,
        deployment: &str,
        build_id: &str,
        task_queue: &str,
        task_type: i32,
    ) -> bool {
        self.get(deployment).is_some_and(|d| {
            d.versions.iter().any(|v| {
                v.build_id == build_id
                    && v.task_queues
                        .iter()
                        .any(|q| q.name == task_queue && q.r#type == task_type)
            })
        })
    }

    /// DescribeWorkerDeployment. `propagated`: every node routes by the newest revision.
    pub fn describe(
        &self,
        deployment: &str,
        propagated: bool,
    ) -> Result<DescribeWorkerDeploymentResponse, DeploymentError> {
        let d = self.get(deployment).ok_or_else(|| not_found(deployment))?;
        let routing = d.routing_config.clone().unwrap_or_default();
        let state = if propagated {
            RoutingConfigUpdateState::Completed
        } else {
            RoutingConfigUpdateState::InProgress
        };
        Ok(DescribeWorkerDeploymentResponse {
            conflict_token: conflict_token(routing.revision_number),
            worker_deployment_info: Some(WorkerDeploymentInfo {
                name: d.name.clone(),
                version_summaries: d.versions.iter().map(|v| summary(d, v)).collect(),
                create_time: d.create_time,
                routing_config: Some(routing),
                last_modifier_identity: d.last_modifier_identity.clone(),
                routing_config_update_state: state as i32,
                ..Default::default()
            }),
        })
    }

    /// ListWorkerDeployments: every deployment, in name order.
    pub fn list(&self) -> Vec<WorkerDeploymentSummary> {
        self.deployments
            .iter()
            .map(|d| {
                let routing = d.routing_config.clone().unwrap_or_default();
                let find = |v: Option<&WorkerDeploymentVersion>| {
                    v.and_then(|v| d.versions.iter().find(|r| r.build_id == v.build_id))
                        .map(|r| summary(d, r))
                };
                WorkerDeploymentSummary {
                    name: d.name.clone(),
                    create_time: d.create_time,
                    latest_version_summary: d
                        .versions
                        .iter()
                        .max_by_key(|v| v.create_time.map(|t| (t.seconds, t.nanos)))
                        .map(|v| summary(d, v)),
                    current_version_summary: find(routing.current_deployment_version.as_ref()),
                    ramping_version_summary: find(routing.ramping_deployment_version.as_ref()),
                    routing_config: Some(routing),
                }
            })
            .collect()
    }

    /// DescribeWorkerDeploymentVersion.
    pub fn describe_version(
        &self,
        version: &WorkerDeploymentVersion,
    ) -> Result<DescribeWorkerDeploymentVersionResponse, DeploymentError> {
        let missing = || {
            DeploymentError::NotFound(format!(
                "Worker Deployment Version '{}' not found",
                canonical(&version.deployment_name, &version.build_id)
            ))
        };
        let d = self.get(&version.deployment_name).ok_or_else(missing)?;
        let v = d
            .versions
            .iter()
            .find(|v| v.build_id == version.build_id)
            .ok_or_else(missing)?;
        #[allow(deprecated)]
        let info = WorkerDeploymentVersionInfo {
            version: canonical(&d.name, &v.build_id),
            status: v.status,
            deployment_version: Some(version_of(&d.name, &v.build_id)),
            create_time: v.create_time,
            routing_changed_time: v.routing_update_time,
            current_since_time: v.current_since_time,
            ramping_since_time: v.ramping_since_time,
            first_activation_time: v.first_activation_time,
            last_current_time: v.last_current_time,
            last_deactivation_time: v.last_deactivation_time,
            ramp_percentage: v.ramp_percentage,
            drainage_info: v.drainage_info,
            task_queue_infos: v.task_queues.clone(),
            ..Default::default()
        };
        Ok(DescribeWorkerDeploymentVersionResponse {
            worker_deployment_version_info: Some(info),
            version_task_queues: v
                .task_queues
                .iter()
                .map(|q| VersionTaskQueue {
                    name: q.name.clone(),
                    r#type: q.r#type,
                    ..Default::default()
                })
                .collect(),
        })
    }

    /// SetWorkerDeploymentCurrentVersion; `build_id` `None` makes unversioned workers current.
    pub fn set_current(
        &mut self,
        deployment: &str,
        build_id: Option<&str>,
        token: &[u8],
        identity: &str,
        now: Timestamp,
    ) -> Result<SetWorkerDeploymentCurrentVersionResponse, DeploymentError> {
        let d = self.get_mut(deployment)?;
        let mut routing = d.routing_config.clone().unwrap_or_default();
        check_token(&routing, token)?;
        if let Some(b) = build_id
            && !d.versions.iter().any(|v| v.build_id == b)
        {
            return Err(DeploymentError::NotFound(format!(
                "build ID '{b}' not found in Worker Deployment '{deployment}'"
            )));
        }
        let previous = routing.current_deployment_version.clone();
        #[allow(deprecated)]
        let previous_version = routing.current_version.clone();
        let target = build_id.map(|b| version_of(deployment, b));
        if !same(previous.as_ref(), target.as_ref()) {
            if let Some(p) = &previous {
                deactivate(d, &p.build_id, now);
            }
            if let Some(t) = &target {
                let ramping = routing
                    .ramping_deployment_version
                    .as_ref()
                    .is_some_and(|r| r.build_id == t.build_id);
                if ramping {
                    clear_ramp(&mut routing, now);
                }
                if let Some(v) = d.versions.iter_mut().find(|v| v.build_id == t.build_id) {
                    v.drainage_info = Some(VersionDrainageInfo {
                        status: 0,
                        last_changed_time: Some(now),
                        last_checked_time: Some(now),
                    });
                    v.status = Status::Current as i32;
                    v.current_since_time = Some(now);
                    v.last_current_time = Some(now);
                    v.routing_update_time = Some(now);
                    v.first_activation_time.get_or_insert(now);
                    v.ramping_since_time = None;
                    v.ramp_percentage = 0.0;
                }
            }
            #[allow(deprecated)]
            {
                routing.current_version = target
                    .as_ref()
                    .map(|t| canonical(deployment, &t.build_id))
                    .unwrap_or_else(|| UNVERSIONED.to_owned());
            }
            routing.current_deployment_version = target;
            routing.current_version_changed_time = Some(now);
            routing.revision_number += 1;
            d.last_modifier_identity = identity.to_owned();
        }
        let token = conflict_token(routing.revision_number);
        d.routing_config = Some(routing);
        #[allow(deprecated)]
        Ok(SetWorkerDeploymentCurrentVersionResponse {
            conflict_token: token,
            previous_version,
            previous_deployment_version: previous,
        })
    }

    /// SetWorkerDeploymentRampingVersion; `build_id` `None` stops ramping.
    pub fn set_ramping(
        &mut self,
        deployment: &str,
        build_id: Option<&str>,
        percentage: f32,
        token: &[u8],
        identity: &str,
        now: Timestamp,
    ) -> Result<SetWorkerDeploymentRampingVersionResponse, DeploymentError> {
        if !(0.0..=100.0).contains(&percentage) || percentage.is_nan() {
            return Err(DeploymentError::InvalidArgument(format!(
                "ramping percentage {percentage} must be between 0 and 100"
            )));
        }
        let d = self.get_mut(deployment)?;
        let mut routing = d.routing_config.clone().unwrap_or_default();
        check_token(&routing, token)?;
        if let Some(b) = build_id {
            if !d.versions.iter().any(|v| v.build_id == b) {
                return Err(DeploymentError::NotFound(format!(
                    "build ID '{b}' not found in Worker Deployment '{deployment}'"
                )));
            }
            if routing
                .current_deployment_version
                .as_ref()
                .is_some_and(|c| c.build_id == b)
            {
                return Err(DeploymentError::FailedPrecondition(format!(
                    "Ramping version {} is already current",
                    canonical(deployment, b)
                )));
            }
        }
        let previous = routing.ramping_deployment_version.clone();
        #[allow(deprecated)]
        let previous_version = routing.ramping_version.clone();
        let previous_percentage = routing.ramping_version_percentage;
        let target = build_id.map(|b| version_of(deployment, b));
        let same_version = same(previous.as_ref(), target.as_ref());
        if !same_version || (target.is_some() && previous_percentage != percentage) {
            if !same_version {
                if let Some(p) = &previous {
                    deactivate(d, &p.build_id, now);
                }
                clear_ramp(&mut routing, now);
            }
            if let Some(t) = &target {
                if let Some(v) = d.versions.iter_mut().find(|v| v.build_id == t.build_id) {
                    v.status = Status::Ramping as i32;
                    if !same_version {
                        v.ramping_since_time = Some(now);
                    }
                    v.ramp_percentage = percentage;
                    v.routing_update_time = Some(now);
                    v.first_activation_time.get_or_insert(now);
                }
                #[allow(deprecated)]
                {
                    routing.ramping_version = canonical(deployment, &t.build_id);
                }
                if !same_version {
                    routing.ramping_version_changed_time = Some(now);
                }
                routing.ramping_deployment_version = target.clone();
                routing.ramping_version_percentage = percentage;
                routing.ramping_version_percentage_changed_time = Some(now);
            }
            routing.revision_number += 1;
            d.last_modifier_identity = identity.to_owned();
        }
        let token = conflict_token(routing.revision_number);
        d.routing_config = Some(routing);
        #[allow(deprecated)]
        Ok(SetWorkerDeploymentRampingVersionResponse {
            conflict_token: token,
            previous_version,
            previous_deployment_version: previous,
            previous_percentage,
        })
    }

    /// DeleteWorkerDeploymentVersion: refused while the version is current or ramping.
    pub fn delete_version(
        &mut self,
        version: &WorkerDeploymentVersion,
    ) -> Result<(), DeploymentError> {
        let d = self.get_mut(&version.deployment_name)?;
        let routing = d.routing_config.clone().unwrap_or_default();
        let active = [
            &routing.current_deployment_version,
            &routing.ramping_deployment_version,
        ]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| v.build_id == version.build_id));
        if active {
            return Err(DeploymentError::FailedPrecondition(format!(
                "version {} is current or ramping and cannot be deleted",
                canonical(&version.deployment_name, &version.build_id)
            )));
        }
        let before = d.versions.len();
        d.versions.retain(|v| v.build_id != version.build_id);
        if d.versions.len() == before {
            return Err(DeploymentError::NotFound(format!(
                "Worker Deployment Version '{}' not found",
                canonical(&version.deployment_name, &version.build_id)
            )));
        }
        Ok(())
    }

    /// DeleteWorkerDeployment: only a deployment without versions.
    pub fn delete_deployment(&mut self, deployment: &str) -> Result<(), DeploymentError> {
        let d = self.get_mut(deployment)?;
        if !d.versions.is_empty() {
            return Err(DeploymentError::FailedPrecondition(format!(
                "Worker Deployment '{deployment}' still has versions; delete them first"
            )));
        }
        self.deployments.retain(|d| d.name != deployment);
        Ok(())
    }

    /// The newest routing change of any deployment, for propagation.
    pub fn last_routing_change(&self) -> Option<Timestamp> {
        self.deployments
            .iter()
            .filter_map(|d| d.routing_config.as_ref())
            .flat_map(|r| {
                [
                    r.current_version_changed_time,
                    r.ramping_version_changed_time,
                    r.ramping_version_percentage_changed_time,
                ]
            })
            .flatten()
            .max_by_key(|t| (t.seconds, t.nanos))
    }

    /// Where a task of workflow `workflow_id` on `task_queue` (a `TaskQueueType`) goes: a
    /// version, or `None` for unversioned workers. A pinned run goes to its version when that
    /// version polls the queue; any other to the current version of the deployment whose workers poll the queue, or to
    /// its ramping version when the run's [`ramp_bucket`] is below the ramp (or the directive
    /// asks for the ramping version).
    pub fn route(
        &self,
        task_queue: &str,
        task_type: i32,
        directive: Option<&VersionDirective>,
        workflow_id: &str,
    ) -> Option<WorkerDeploymentVersion> {
        // A pinned run's tasks go to its version where that version's workers poll the queue
        // (an activity on a queue of another fleet follows that queue's routing instead).
        if let Some(pinned) = directive.and_then(|d| d.pinned.clone())
            && self.is_registered(
                &pinned.deployment_name,
                &pinned.build_id,
                task_queue,
                task_type,
            )
        {
            return Some(pinned);
        }
        let routing = self.routing_of(task_queue, task_type)?;
        if let Some(ramping) = &routing.ramping_deployment_version {
            let asked = directive.is_some_and(|d| d.use_ramping);
            if asked || ramp_bucket(workflow_id) < routing.ramping_version_percentage {
                return Some(ramping.clone());
            }
        }
        routing.current_deployment_version.clone()
    }

    /// The routing of the deployment that serves a task queue: of those with a version polling
    /// it, the one whose routing changed last.
    fn routing_of(&self, task_queue: &str, task_type: i32) -> Option<&RoutingConfig> {
        self.deployments
            .iter()
            .filter(|d| {
                d.versions.iter().any(|v| {
                    v.task_queues
                        .iter()
                        .any(|q| q.name == task_queue && q.r#type == task_type)
                })
            })
            .filter_map(|d| d.routing_config.as_ref())
            .filter(|r| r.revision_number > 0)
            .max_by_key(|r| {
                [
                    r.current_version_changed_time,
                    r.ramping_version_changed_time,
                    r.ramping_version_percentage_changed_time,
                ]
                .into_iter()
                .flatten()
                .map(|t| (t.seconds, t.nanos))
                .max()
            })
    }
}

fn check_token(routing: &RoutingConfig, token: &[u8]) -> Result<(), DeploymentError> {
    if token.is_empty() || token == conflict_token(routing.revision_number).as_slice() {
        Ok(())
    } else {
        Err(DeploymentError::ConflictToken)
    }
}

fn clear_ramp(routing: &mut RoutingConfig, now: Timestamp) {
    if routing.ramping_deployment_version.is_some() {
        routing.ramping_version_changed_time = Some(now);
        routing.ramping_version_percentage_changed_time = Some(now);
    }
    routing.ramping_deployment_version = None;
    #[allow(deprecated)]
    routing.ramping_version.clear();
    routing.ramping_version_percentage = 0.0;
}

/// A version stops being current or ramping: it drains its pinned runs.
fn deactivate(d: &mut WorkerDeploymentRecord, build_id: &str, now: Timestamp) {
    if let Some(v) = d.versions.iter_mut().find(|v| v.build_id == build_id) {
        v.drainage_info = Some(VersionDrainageInfo {
            status: VersionDrainageStatus::Draining as i32,
            last_changed_time: Some(now),
            last_checked_time: Some(now),
        });
        v.status = Status::Draining as i32;
        v.current_since_time = None;
        v.ramping_since_time = None;
        v.ramp_percentage = 0.0;
        v.routing_update_time = Some(now);
        v.last_deactivation_time = Some(now);
    }
}

fn summary(
    d: &WorkerDeploymentRecord,
    v: &WorkerDeploymentVersionRecord,
) -> WorkerDeploymentVersionSummary {
    #[allow(deprecated)]
    WorkerDeploymentVersionSummary {
        version: canonical(&d.name, &v.build_id),
        status: v.status,
        deployment_version: Some(version_of(&d.name, &v.build_id)),
        create_time: v.create_time,
        current_since_time: v.current_since_time,
        ramping_since_time: v.ramping_since_time,
        routing_update_time: v.routing_update_time,
        first_activation_time: v.first_activation_time,
        last_current_time: v.last_current_time,
        last_deactivation_time: v.last_deactivation_time,
        drainage_status: v
            .drainage_info
            .as_ref()
            .map(|i| i.status)
            .unwrap_or_default(),
        drainage_info: v.drainage_info,
        ..Default::default()
    }
}
