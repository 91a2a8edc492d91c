//! The deployment model's decisions: registration, Set* with conflict tokens, routing.
// The Set* responses still name the previous version in deprecated fields, which SDKs read.
#![allow(deprecated)]

use temper_proto::internal::v1::VersionDirective;
use temper_proto::temporal::api::deployment::v1::WorkerDeploymentVersion;
use temper_proto::temporal::api::enums::v1::{
    RoutingConfigUpdateState, TaskQueueType, WorkerDeploymentVersionStatus as S,
};
use temper_proto::wkt::Timestamp;

use super::*;

const WF: i32 = TaskQueueType::Workflow as i32;

fn at(s: i64) -> Timestamp {
    Timestamp {
        seconds: s,
        nanos: 0,
    }
}

fn v(build: &str) -> WorkerDeploymentVersion {
    WorkerDeploymentVersion {
        deployment_name: "dep".into(),
        build_id: build.into(),
    }
}

fn two_versions() -> DeploymentSet {
    let mut set = DeploymentSet::default();
    assert!(set.register("dep", "1.0", "tq", WF, at(1)));
    assert!(
        !set.register("dep", "1.0", "tq", WF, at(2)),
        "a second poll changes nothing"
    );
    assert!(set.register("dep", "2.0", "tq", WF, at(3)));
    set
}

#[test]
fn registered_versions_are_described_inactive_and_unversioned_is_current() {
    let set = two_versions();
    let d = set.describe("dep", true).expect("registered");
    let info = d.worker_deployment_info.expect("info");
    #[allow(deprecated)]
    let names: Vec<_> = info
        .version_summaries
        .iter()
        .map(|s| s.version.clone())
        .collect();
    assert_eq!(names, ["dep.1.0", "dep.2.0"]);
    assert!(
        info.version_summaries
            .iter()
            .all(|s| s.status == S::Inactive as i32)
    );
    #[allow(deprecated)]
    let current = info.routing_config.expect("routing").current_version;
    assert_eq!(current, UNVERSIONED);
    assert_eq!(
        info.routing_config_update_state,
        RoutingConfigUpdateState::Completed as i32
    );
    assert!(matches!(
        set.describe("other", true),
        Err(DeploymentError::NotFound(_))
    ));
}

#[test]
fn set_current_checks_the_token_and_the_version_and_bumps_the_token_once() {
    let mut set = two_versions();
    let token = set.describe("dep", true).expect("dep").conflict_token;
    assert_eq!(
        set.set_current("dep", Some("1.0"), b"stale", "me", at(5)),
        Err(DeploymentError::ConflictToken)
    );
    assert!(matches!(
        set.set_current("dep", Some("9.9"), &token, "me", at(5)),
        Err(DeploymentError::NotFound(_))
    ));
    let r = set
        .set_current("dep", Some("1.0"), &token, "me", at(5))
        .expect("set");
    assert_ne!(r.conflict_token, token);
    #[allow(deprecated)]
    let previous = r.previous_version.clone();
    assert_eq!(previous, UNVERSIONED);
    // Setting the same version again is a no-op that keeps the token.
    let again = set
        .set_current("dep", Some("1.0"), &r.conflict_token, "me", at(6))
        .expect("again");
    assert_eq!(again.conflict_token, r.conflict_token);
    assert_eq!(again.previous_deployment_version, Some(v("1.0")));
    // Moving on drains the old version.
    set.set_current("dep", Some("2.0"), &again.conflict_token, "me", at(7))
        .expect("2.0");
    let info = set
        .describe("dep", true)
        .expect("dep")
        .worker_deployment_info
        .expect("info");
    let status: Vec<_> = info.version_summaries.iter().map(|s| s.status).collect();
    assert_eq!(status, [S::Draining as i32, S::Current as i32]);
    let drainage: Vec<_> = info
        .version_summaries
        .iter()
        .map(|s| s.drainage_status)
        .collect();
    assert_eq!(
        drainage,
        [
            temper_proto::temporal::api::enums::v1::VersionDrainageStatus::Draining as i32,
            0
        ]
    );
}

#[test]
fn ramping_validates_and_setting_the_ramping_version_current_ends_the_ramp() {
    let mut set = two_versions();
    let t = set
        .set_current("dep", Some("1.0"), &[], "", at(5))
        .expect("current")
        .conflict_token;
    assert!(matches!(
        set.set_ramping("dep", Some("2.0"), 101.0, &t, "", at(6)),
        Err(DeploymentError::InvalidArgument(_))
    ));
    assert!(matches!(
        set.set_ramping("dep", Some("1.0"), 10.0, &t, "", at(6)),
        Err(DeploymentError::FailedPrecondition(_))
    ));
    let r = set
        .set_ramping("dep", Some("2.0"), 30.0, &t, "", at(6))
        .expect("ramp");
    let r2 = set
        .set_ramping("dep", Some("2.0"), 0.0, &r.conflict_token, "", at(7))
        .expect("0");
    assert_ne!(
        r2.conflict_token, r.conflict_token,
        "a new percentage is a new revision"
    );
    assert_eq!(r2.previous_percentage, 30.0);
    set.set_current("dep", Some("2.0"), &r2.conflict_token, "", at(8))
        .expect("current");
    let routing = set
        .get("dep")
        .and_then(|d| d.routing_config.clone())
        .expect("routing");
    assert_eq!(routing.ramping_deployment_version, None);
    assert_eq!(routing.current_deployment_version, Some(v("2.0")));
}

#[test]
fn routing_pinned_current_and_ramp_by_workflow_id() {
    let mut set = two_versions();
    // No current version: unversioned workers.
    assert_eq!(set.route("tq", WF, None, "wf"), None);
    set.set_current("dep", Some("1.0"), &[], "", at(5))
        .expect("current");
    assert_eq!(set.route("tq", WF, None, "wf"), Some(v("1.0")));
    assert_eq!(set.route("other-queue", WF, None, "wf"), None);
    let pinned = VersionDirective {
        pinned: Some(v("2.0")),
        ..Default::default()
    };
    assert_eq!(set.route("tq", WF, Some(&pinned), "wf"), Some(v("2.0")));
    // A queue the pinned version does not poll follows that queue's routing.
    assert_eq!(set.route("other-queue", WF, Some(&pinned), "wf"), None);

    set.set_ramping("dep", Some("2.0"), 100.0, &[], "", at(6))
        .expect("ramp");
    assert_eq!(set.route("tq", WF, None, "wf"), Some(v("2.0")));
    set.set_ramping("dep", Some("2.0"), 0.0, &[], "", at(7))
        .expect("ramp");
    assert_eq!(set.route("tq", WF, None, "wf"), Some(v("1.0")));
    let ramping = VersionDirective {
        use_ramping: true,
        ..Default::default()
    };
    assert_eq!(set.route("tq", WF, Some(&ramping), "wf"), Some(v("2.0")));

    // At 50% some ids ramp and some do not, each always the same way.
    set.set_ramping("dep", Some("2.0"), 50.0, &[], "", at(8))
        .expect("ramp");
    let routes: Vec<_> = (0..40)
        .map(|i| set.route("tq", WF, None, &format!("wf-{i}")))
        .collect();
    assert!(routes.contains(&Some(v("1.0"))) && routes.contains(&Some(v("2.0"))));
    assert_eq!(set.route("tq", WF, None, "wf-7"), routes[7]);
}

#[test]
fn ramp_buckets_are_stable_and_in_range() {
    for id in ["", "a", "workflow-1", "ü"] {
        let b = ramp_bucket(id);
        assert!((0.0..100.0).contains(&b));
        assert_eq!(b, ramp_bucket(id));
    }
}

#[test]
fn request_versions_parse() {
    assert_eq!(
        requested_build("dep", "", "dep.1.0"),
        Ok(Some("1.0".into()))
    );
    assert_eq!(
        requested_build("dep", "2.0", "dep.1.0"),
        Ok(Some("2.0".into()))
    );
    assert_eq!(requested_build("dep", "", UNVERSIONED), Ok(None));
    assert!(requested_build("dep", "", "other.1.0").is_err());
    assert_eq!(parse_version("dep.1.0"), Some(v("1.0")));
    assert_eq!(parse_version("nodot"), None);
}

#[test]
fn deleting_refuses_active_versions_and_deployments_with_versions() {
    let mut set = two_versions();
    set.set_current("dep", Some("1.0"), &[], "", at(5))
        .expect("current");
    assert!(set.delete_version(&v("1.0")).is_err());
    assert!(set.delete_deployment("dep").is_err());
    set.delete_version(&v("2.0")).expect("inactive version");
    assert!(matches!(
        set.delete_version(&v("2.0")),
        Err(DeploymentError::NotFound(_))
    ));
}
