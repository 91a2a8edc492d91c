//! Worker versioning of a run: which deployment version its tasks go to, what a workflow task
//! completion records about the worker that completed it, and what describe shows.
//!
//! A run is *pinned* to a version when a versioned worker completed its last workflow task
//! with behavior PINNED, when a pinned versioning override names the version, or, until its
//! first task completes, when it continued a pinned run. Any other run follows its task
//! queue's current (or ramping) version, which matching resolves (the directive names no
//! version then).

use temper_proto::internal::v1::VersionDirective;
use temper_proto::temporal::api::common::v1::WorkerVersionStamp;
use temper_proto::temporal::api::deployment::v1::{
    WorkerDeploymentOptions, WorkerDeploymentVersion,
};
use temper_proto::temporal::api::enums::v1::{
    ContinueAsNewVersioningBehavior, VersioningBehavior, WorkerVersioningMode,
};
use temper_proto::temporal::api::history::v1::WorkflowTaskCompletedEventAttributes;
use temper_proto::temporal::api::workflow::v1::versioning_override::Override;
use temper_proto::temporal::api::workflow::v1::{
    VersioningOverride, WorkflowExecutionVersioningInfo,
};

use crate::events::At;
use crate::{Txn, WorkflowError, pb};
use temper_proto::temporal::api::history::v1::WorkflowExecutionOptionsUpdatedEventAttributes;
use temper_proto::temporal::api::workflow::v1::WorkflowExecutionOptions;

/// `deployment.build`, the deprecated string form of a version.
fn canonical(v: &WorkerDeploymentVersion) -> String {
    format!("{}.{}", v.deployment_name, v.build_id)
}

/// The version a pinned override names (its current or deprecated spelling); `None` for an
/// auto-upgrade override.
pub fn override_pinned(o: &VersioningOverride) -> Option<WorkerDeploymentVersion> {
    match &o.r#override {
        Some(Override::Pinned(p)) => p.version.clone(),
        Some(_) => None,
        #[allow(deprecated)]
        None => {
            if o.behavior != VersioningBehavior::Pinned as i32 {
                return None;
            }
            if let Some((d, b)) = o.pinned_version.split_once('.') {
                return Some(WorkerDeploymentVersion {
                    deployment_name: d.to_owned(),
                    build_id: b.to_owned(),
                });
            }
            o.deployment.as_ref().map(|d| WorkerDeploymentVersion {
                deployment_name: d.series_name.clone(),
                build_id: d.build_id.clone(),
            })
        }
    }
}

/// The version the run is pinned to now, if it is.
pub fn pinned_version(info: &pb::ExecutionInfo) -> Option<WorkerDeploymentVersion> {
    let vi = info.versioning_info.as_ref();
    if let Some(o) = vi.and_then(|v| v.versioning_override.as_ref()) {
        return override_pinned(o);
    }
    match vi {
        Some(v) if v.behavior == VersioningBehavior::Pinned as i32 => v.deployment_version.clone(),
        Some(v) if v.behavior != VersioningBehavior::Unspecified as i32 => None,
        _ => info.inherited_pinned_version.clone(),
    }
}

/// Where the run's next task goes.
pub fn directive(info: &pb::ExecutionInfo) -> VersionDirective {
    let pinned = pinned_version(info);
    VersionDirective {
        use_ramping: pinned.is_none() && info.use_ramping_version,
        pinned,
        normal_task_queue: info
            .task_queue
            .as_ref()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
    }
}

/// Whether a pinned run's task queue now routes new work to another version than its own
/// (`target`: the queue's version for unpinned runs; `None`: unversioned workers). An
/// override pins on purpose and is never reported.
pub fn target_changed(info: &pb::ExecutionInfo, target: Option<&WorkerDeploymentVersion>) -> bool {
    let overridden = info
        .versioning_info
        .as_ref()
        .is_some_and(|v| v.versioning_override.is_some());
    match pinned_version(info) {
        Some(p) if !overridden => target != Some(&p),
        _ => false,
    }
}

/// A versioned worker's deployment version (`None`: an unversioned worker).
pub fn versioned(options: Option<&WorkerDeploymentOptions>) -> Option<WorkerDeploymentVersion> {
    let o = options?;
    (o.worker_versioning_mode == WorkerVersioningMode::Versioned as i32
        && !o.deployment_name.is_empty())
    .then(|| WorkerDeploymentVersion {
        deployment_name: o.deployment_name.clone(),
        build_id: o.build_id.clone(),
    })
}

/// The worker a completion names: its build id stamp, deployment options and the behavior it
/// reports for the workflow.
#[derive(Debug, Clone, Default)]
pub struct CompletingWorker {
    pub stamp: Option<WorkerVersionStamp>,
    pub deployment_options: Option<WorkerDeploymentOptions>,
    pub versioning_behavior: i32,
}

/// The polling worker and where its task queue routes the run now, for the started event.
#[derive(Debug, Clone, Default)]
pub struct Poller {
    pub deployment_options: Option<WorkerDeploymentOptions>,
    /// The build id of an older worker's `worker_version_capabilities`.
    pub capabilities_build_id: String,
    /// The version the task queue routes unpinned runs to (`None`: unversioned workers).
    pub target: Option<WorkerDeploymentVersion>,
}

impl Poller {
    /// An unversioned worker's build id, which the started event records (a versioned
    /// worker's version is recorded on completion instead).
    pub fn unversioned_stamp(&self) -> Option<WorkerVersionStamp> {
        if versioned(self.deployment_options.as_ref()).is_some() {
            return None;
        }
        let build_id = self
            .deployment_options
            .as_ref()
            .map(|o| o.build_id.clone())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| self.capabilities_build_id.clone());
        (!build_id.is_empty()).then_some(WorkerVersionStamp {
            build_id,
            use_versioning: false,
        })
    }
}

/// The WorkflowTaskCompleted fields about the worker, for the event's other fields to be
/// written over.
pub fn completed_fields(w: &CompletingWorker) -> WorkflowTaskCompletedEventAttributes {
    let mut a = WorkflowTaskCompletedEventAttributes::default();
    fill_completed(&mut a, w);
    a
}

/// The WorkflowTaskCompleted fields about the worker, as the Temporal server fills them: the
/// build id (`worker_version`, whether or not the worker is versioned), the deployment name,
/// and for a versioned worker the behavior and version.
pub fn fill_completed(a: &mut WorkflowTaskCompletedEventAttributes, w: &CompletingWorker) {
    let options = w.deployment_options.as_ref();
    let build_id = options
        .map(|o| o.build_id.clone())
        .filter(|b| !b.is_empty())
        .or_else(|| w.stamp.as_ref().map(|s| s.build_id.clone()))
        .filter(|b| !b.is_empty());
    #[allow(deprecated)]
    {
        a.worker_version = build_id.map(|build_id| WorkerVersionStamp {
            build_id,
            use_versioning: false,
        });
    }
    if let Some(o) = options {
        a.worker_deployment_name = o.deployment_name.clone();
    }
    if let Some(v) = versioned(options) {
        a.versioning_behavior = w.versioning_behavior;
        a.deployment_version = Some(v);
    }
}

/// WorkflowTaskCompleted: the run now has the behavior and version of the worker that
/// completed the task (an unversioned worker leaves it unversioned); an override stays.
pub(crate) fn apply_completed(
    info: &mut pb::ExecutionInfo,
    a: &WorkflowTaskCompletedEventAttributes,
) {
    let over = info
        .versioning_info
        .as_ref()
        .and_then(|v| v.versioning_override.clone());
    info.inherited_pinned_version = None;
    info.use_ramping_version = false;
    #[allow(deprecated)]
    if a.worker_version.is_some() {
        info.most_recent_worker_version_stamp = a.worker_version.clone();
    }
    let versioned = a.deployment_version.is_some();
    if !versioned && over.is_none() {
        #[allow(deprecated)]
        record_unversioned_build_id(info, a.worker_version.as_ref());
    }
    if !versioned && over.is_none() {
        info.versioning_info = None;
        return;
    }
    #[allow(deprecated)]
    let vi = WorkflowExecutionVersioningInfo {
        behavior: if versioned { a.versioning_behavior } else { 0 },
        version: a
            .deployment_version
            .as_ref()
            .map(canonical)
            .unwrap_or_default(),
        deployment_version: a.deployment_version.clone(),
        versioning_override: over,
        ..Default::default()
    };
    info.versioning_info = Some(vi);
}

/// WorkflowExecutionStarted: the override the start asked for, the version a continued
/// pinned run passes on, or that the run starts on the ramping version.
pub(crate) fn apply_started(
    info: &mut pb::ExecutionInfo,
    over: Option<&VersioningOverride>,
    inherited_pinned: Option<&WorkerDeploymentVersion>,
    initial_behavior: i32,
) {
    if let Some(o) = over {
        info.versioning_info = Some(WorkflowExecutionVersioningInfo {
            versioning_override: Some(o.clone()),
            ..Default::default()
        });
    }
    info.inherited_pinned_version = inherited_pinned.cloned();
    info.use_ramping_version =
        initial_behavior == ContinueAsNewVersioningBehavior::UseRampingVersion as i32;
}

/// What a continue-as-new passes to the new run: the override (always), and, by the command's
/// initial behavior, the pinned version (unspecified) or the ramping version (use ramping);
/// auto-upgrade passes no version.
pub fn carried_over(
    info: &pb::ExecutionInfo,
    initial_behavior: i32,
) -> (
    Option<VersioningOverride>,
    Option<WorkerDeploymentVersion>,
    i32,
) {
    let over = info
        .versioning_info
        .as_ref()
        .and_then(|v| v.versioning_override.clone());
    let pinned = match ContinueAsNewVersioningBehavior::try_from(initial_behavior) {
        Ok(ContinueAsNewVersioningBehavior::Unspecified) | Err(_) => info
            .versioning_info
            .as_ref()
            .filter(|v| v.behavior == VersioningBehavior::Pinned as i32)
            .and_then(|v| v.deployment_version.clone()),
        _ => None,
    };
    (over, pinned, initial_behavior)
}

/// UpdateWorkflowExecutionOptions: set or unset the run's versioning override (the one path
/// of `update_mask` supported). Writes WorkflowExecutionOptionsUpdated when the override
/// changes; returns the run's options.
pub fn update_options(
    txn: &mut Txn<'_>,
    options: Option<&WorkflowExecutionOptions>,
    paths: &[String],
    identity: &str,
) -> Result<WorkflowExecutionOptions, WorkflowError> {
    if !txn.is_running() {
        return Err(WorkflowError::AlreadyCompleted);
    }
    if paths.is_empty() {
        return Err(WorkflowError::InvalidArgument(
            "UpdateMask is required".into(),
        ));
    }
    if let Some(p) = paths.iter().find(|p| p.as_str() != "versioning_override") {
        return Err(WorkflowError::InvalidArgument(format!(
            "error parsing UpdateMask: path {p} not supported"
        )));
    }
    let wanted = options.and_then(|o| o.versioning_override.clone());
    if let Some(o) = &wanted {
        let pinned_named = override_pinned(o).is_some_and(|v| !v.build_id.is_empty());
        #[allow(deprecated)]
        let old_auto =
            o.r#override.is_none() && o.behavior == VersioningBehavior::AutoUpgrade as i32;
        let auto = matches!(o.r#override, Some(Override::AutoUpgrade(true))) || old_auto;
        if !pinned_named && !auto {
            return Err(WorkflowError::InvalidArgument(
                "versioning override must be pinned to a version or auto-upgrade".into(),
            ));
        }
    }
    let current = txn
        .info()
        .versioning_info
        .as_ref()
        .and_then(|v| v.versioning_override.clone());
    if current != wanted {
        txn.write_external_applied(
            WorkflowExecutionOptionsUpdatedEventAttributes {
                unset_versioning_override: wanted.is_none(),
                versioning_override: wanted.clone(),
                identity: identity.to_owned(),
                ..Default::default()
            },
            apply_options_updated,
        );
    }
    Ok(WorkflowExecutionOptions {
        versioning_override: wanted,
        ..Default::default()
    })
}

/// WorkflowExecutionOptionsUpdated.
pub(crate) fn apply_options_updated(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowExecutionOptionsUpdatedEventAttributes,
) {
    // What a start with USE_EXISTING attached (a Nexus caller's callback): the run calls
    // these callbacks too when it closes, and knows the request.
    ms.completion_callbacks
        .extend(a.attached_completion_callbacks.iter().cloned());
    ms.completion_callback_times
        .extend(a.attached_completion_callbacks.iter().map(|_| at.time));
    let info = crate::state::info_mut(ms);
    if !a.attached_request_id.is_empty()
        && !info.applied_request_ids.contains(&a.attached_request_id)
    {
        info.applied_request_ids.push(a.attached_request_id.clone());
    }
    if a.unset_versioning_override {
        if let Some(vi) = info.versioning_info.as_mut() {
            vi.versioning_override = None;
            if vi.behavior == 0 && vi.deployment_version.is_none() {
                info.versioning_info = None;
            }
        }
    } else if let Some(o) = &a.versioning_override {
        info.versioning_info
            .get_or_insert_with(Default::default)
            .versioning_override = Some(o.clone());
    }
}

/// DescribeWorkflowExecution's versioning_info.
pub fn describe(info: &pb::ExecutionInfo) -> Option<WorkflowExecutionVersioningInfo> {
    info.versioning_info.clone()
}

/// The `BuildIds` search attribute Temporal keeps for reachability queries, for a task an
/// unversioned worker completed: first the `unversioned` sentinel, then the values of earlier
/// tasks (minus sentinels), then `unversioned:<build id>` of this worker if not there yet.
/// (Completions of versioned workers leave it as it is.)
fn record_unversioned_build_id(info: &mut pb::ExecutionInfo, stamp: Option<&WorkerVersionStamp>) {
    const KEY: &str = "BuildIds";
    const UNVERSIONED: &str = "unversioned";
    let sa = info.search_attributes.get_or_insert_with(Default::default);
    let existing: Vec<String> = sa
        .indexed_fields
        .get(KEY)
        .and_then(|p| serde_json::from_slice(&p.data).ok())
        .unwrap_or_default();
    let this = match stamp.filter(|s| !s.build_id.is_empty()) {
        Some(s) if s.use_versioning => format!("versioned:{}", s.build_id),
        Some(s) => format!("{UNVERSIONED}:{}", s.build_id),
        None => UNVERSIONED.to_owned(),
    };
    let mut values = vec![UNVERSIONED.to_owned()];
    values.extend(
        existing
            .iter()
            .filter(|v| {
                *v != UNVERSIONED && !v.starts_with("assigned:") && !v.starts_with("pinned:")
            })
            .cloned(),
    );
    if !existing.contains(&this) && this != UNVERSIONED {
        values.push(this);
    }
    if values == existing {
        return;
    }
    let data = serde_json::to_vec(&values).unwrap_or_default();
    sa.indexed_fields.insert(
        KEY.to_owned(),
        temper_proto::temporal::api::common::v1::Payload {
            metadata: [
                ("encoding".to_owned(), b"json/plain".to_vec()),
                ("type".to_owned(), b"KeywordList".to_vec()),
            ]
            .into(),
            data,
            ..Default::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::workflow::v1::versioning_override::PinnedOverride;

    fn v(b: &str) -> WorkerDeploymentVersion {
        WorkerDeploymentVersion {
            deployment_name: "dep".into(),
            build_id: b.into(),
        }
    }

    fn completed(
        behavior: VersioningBehavior,
        version: Option<&str>,
    ) -> WorkflowTaskCompletedEventAttributes {
        WorkflowTaskCompletedEventAttributes {
            versioning_behavior: behavior as i32,
            deployment_version: version.map(v),
            ..Default::default()
        }
    }

    #[test]
    fn pinned_and_auto_upgrade_runs_route_differently() {
        let mut info = pb::ExecutionInfo::default();
        assert_eq!(directive(&info).pinned, None);
        apply_completed(&mut info, &completed(VersioningBehavior::Pinned, Some("1")));
        assert_eq!(directive(&info).pinned, Some(v("1")));
        assert!(!target_changed(&info, Some(&v("1"))));
        assert!(target_changed(&info, Some(&v("2"))));
        assert!(target_changed(&info, None));
        apply_completed(
            &mut info,
            &completed(VersioningBehavior::AutoUpgrade, Some("2")),
        );
        assert_eq!(directive(&info).pinned, None);
        assert!(!target_changed(&info, Some(&v("3"))));
        // An unversioned worker makes the run unversioned again.
        apply_completed(&mut info, &completed(VersioningBehavior::Unspecified, None));
        assert_eq!(info.versioning_info, None);
    }

    #[test]
    fn an_override_wins_and_survives_completions() {
        let mut info = pb::ExecutionInfo::default();
        let o = VersioningOverride {
            r#override: Some(Override::Pinned(PinnedOverride {
                behavior: 1,
                version: Some(v("1")),
            })),
            ..Default::default()
        };
        apply_started(&mut info, Some(&o), None, 0);
        apply_completed(
            &mut info,
            &completed(VersioningBehavior::AutoUpgrade, Some("2")),
        );
        assert_eq!(directive(&info).pinned, Some(v("1")));
        assert!(
            !target_changed(&info, Some(&v("2"))),
            "an override is not a changed target"
        );
        let auto = VersioningOverride {
            r#override: Some(Override::AutoUpgrade(true)),
            ..Default::default()
        };
        let mut info = pb::ExecutionInfo::default();
        apply_started(&mut info, Some(&auto), None, 0);
        apply_completed(&mut info, &completed(VersioningBehavior::Pinned, Some("1")));
        assert_eq!(directive(&info).pinned, None);
    }

    #[test]
    fn options_updated_sets_and_unsets_the_override() {
        let mut ms = pb::MutableState {
            execution_info: Some(pb::ExecutionInfo::default()),
            ..Default::default()
        };
        let at = At {
            id: 5,
            time: Default::default(),
        };
        let o = VersioningOverride {
            r#override: Some(Override::AutoUpgrade(true)),
            ..Default::default()
        };
        let set = WorkflowExecutionOptionsUpdatedEventAttributes {
            versioning_override: Some(o.clone()),
            ..Default::default()
        };
        apply_options_updated(&mut ms, at, &set);
        let info = ms.execution_info.clone().expect("info");
        assert_eq!(
            info.versioning_info.and_then(|v| v.versioning_override),
            Some(o)
        );
        let unset = WorkflowExecutionOptionsUpdatedEventAttributes {
            unset_versioning_override: true,
            ..Default::default()
        };
        apply_options_updated(&mut ms, at, &unset);
        assert_eq!(ms.execution_info.expect("info").versioning_info, None);
    }

    #[test]
    fn continue_as_new_passes_the_pinned_version_unless_told_otherwise() {
        let mut info = pb::ExecutionInfo::default();
        apply_completed(&mut info, &completed(VersioningBehavior::Pinned, Some("1")));
        let unspecified = ContinueAsNewVersioningBehavior::Unspecified as i32;
        let auto = ContinueAsNewVersioningBehavior::AutoUpgrade as i32;
        let ramp = ContinueAsNewVersioningBehavior::UseRampingVersion as i32;
        assert_eq!(carried_over(&info, unspecified).1, Some(v("1")));
        assert_eq!(carried_over(&info, auto).1, None);
        let mut next = pb::ExecutionInfo::default();
        let (o, p, b) = carried_over(&info, ramp);
        apply_started(&mut next, o.as_ref(), p.as_ref(), b);
        let d = directive(&next);
        assert!(d.use_ramping && d.pinned.is_none());
        let mut next = pb::ExecutionInfo::default();
        let (o, p, b) = carried_over(&info, unspecified);
        apply_started(&mut next, o.as_ref(), p.as_ref(), b);
        assert_eq!(directive(&next).pinned, Some(v("1")));
    }

    #[test]
    fn completions_record_the_build_id_and_a_versioned_workers_version() {
        let mut a = WorkflowTaskCompletedEventAttributes::default();
        let unversioned = CompletingWorker {
            deployment_options: Some(WorkerDeploymentOptions {
                deployment_name: "dep".into(),
                build_id: "b1".into(),
                worker_versioning_mode: WorkerVersioningMode::Unversioned as i32,
            }),
            versioning_behavior: VersioningBehavior::Pinned as i32,
            ..Default::default()
        };
        fill_completed(&mut a, &unversioned);
        #[allow(deprecated)]
        let stamp = a.worker_version.clone().expect("stamp");
        assert_eq!(stamp.build_id, "b1");
        assert_eq!(a.worker_deployment_name, "dep");
        assert_eq!(
            (a.versioning_behavior, a.deployment_version.clone()),
            (0, None)
        );
        let mut versioned_worker = unversioned;
        if let Some(o) = versioned_worker.deployment_options.as_mut() {
            o.worker_versioning_mode = WorkerVersioningMode::Versioned as i32;
        }
        fill_completed(&mut a, &versioned_worker);
        assert_eq!(a.versioning_behavior, VersioningBehavior::Pinned as i32);
        assert_eq!(
            a.deployment_version,
            Some(WorkerDeploymentVersion {
                deployment_name: "dep".into(),
                build_id: "b1".into()
            })
        );
    }
}
