//! Worker versioning in matching: each worker deployment version has its own partition
//! queues (`QueueKey::version`) beside the unversioned ones. A versioned worker's poll
//! registers its version on the task queue and waits on its version's queue; a new task goes
//! to the queue of the version the deployment registry routes it to (a pinned run's version,
//! else the current or ramping version, else unversioned workers), decided when it is added.
//! A sticky queue refuses a task whose target is another version than its worker's, so that
//! an auto-upgrade run moves to the new current version.

use temper_client::status;
use temper_proto::internal::v1::VersionDirective;
use temper_proto::temporal::api::deployment::v1::{
    WorkerDeploymentOptions, WorkerDeploymentVersion,
};
use temper_proto::temporal::api::enums::v1::WorkerVersioningMode;
use tonic::Status;

use crate::engine::Core;
use crate::key::{QueueKey, QueueKind};
use crate::queue::TaskQueue;

/// The `QueueKey::version` of a version's queues.
pub(crate) fn version_tag(v: &WorkerDeploymentVersion) -> String {
    format!("{}\u{1f}{}", v.deployment_name, v.build_id)
}

/// The version of a version's queues (`None`: unversioned).
pub(crate) fn tag_version(tag: &str) -> Option<WorkerDeploymentVersion> {
    let (d, b) = tag.split_once('\u{1f}')?;
    Some(WorkerDeploymentVersion {
        deployment_name: d.to_owned(),
        build_id: b.to_owned(),
    })
}

/// The version a poller serves: set only for a versioned worker.
pub(crate) fn poller_version(
    options: Option<&WorkerDeploymentOptions>,
) -> Option<WorkerDeploymentVersion> {
    let o = options?;
    (o.worker_versioning_mode == WorkerVersioningMode::Versioned as i32
        && !o.deployment_name.is_empty())
    .then(|| WorkerDeploymentVersion {
        deployment_name: o.deployment_name.clone(),
        build_id: o.build_id.clone(),
    })
}

impl Core {
    /// The version `key`'s queue routes a task of `workflow_id` to now, by the registry
    /// (`None` without one, or for unversioned workers).
    async fn target(
        &self,
        key: &QueueKey,
        queue_name: &str,
        directive: Option<&VersionDirective>,
        workflow_id: &str,
    ) -> Result<Option<WorkerDeploymentVersion>, Status> {
        let Some(registry) = self.deployments.get() else {
            return Ok(None);
        };
        let view = registry.view(&key.namespace_id).await?;
        Ok(view.route(queue_name, key.task_type.as_i32(), directive, workflow_id))
    }

    /// The queue a new task goes to. A task forwarded from a child partition was routed
    /// there already: its directive pins the version it was routed to.
    pub(crate) async fn route_task(
        &self,
        key: QueueKey,
        directive: Option<&VersionDirective>,
        workflow_id: &str,
        forwarded: bool,
    ) -> Result<QueueKey, Status> {
        if key.kind != QueueKind::Normal {
            return Ok(key);
        }
        let version = if forwarded {
            directive.and_then(|d| d.pinned.clone())
        } else {
            let name = key.name.clone();
            self.target(&key, &name, directive, workflow_id).await?
        };
        Ok(key.with_version(version.as_ref().map(version_tag).unwrap_or_default()))
    }

    /// A sticky queue refuses a task its worker's version should not run: one whose target
    /// (on the run's normal queue) is another version.
    pub(crate) async fn sticky_refuses(
        &self,
        queue: &TaskQueue,
        directive: Option<&VersionDirective>,
        workflow_id: &str,
    ) -> Result<(), Status> {
        let Some(d) = directive.filter(|d| !d.normal_task_queue.is_empty()) else {
            return Ok(());
        };
        let target = self
            .target(queue.key(), &d.normal_task_queue, Some(d), workflow_id)
            .await?;
        if target != queue.poller_version() {
            return Err(status::sticky_worker_unavailable(&queue.key().name));
        }
        Ok(())
    }

    /// The version an unpinned run of `workflow_id` would go to from `key` (its normal queue,
    /// or for a sticky queue the run's normal queue), which a pinned run's started event
    /// compares with its own.
    pub(crate) async fn unpinned_target(
        &self,
        key: &QueueKey,
        directive: Option<&VersionDirective>,
        workflow_id: &str,
    ) -> Option<WorkerDeploymentVersion> {
        let name = match key.kind {
            QueueKind::Normal => key.name.clone(),
            QueueKind::Sticky => directive.map(|d| d.normal_task_queue.clone())?,
        };
        if name.is_empty() {
            return None;
        }
        let unpinned = VersionDirective {
            normal_task_queue: name.clone(),
            ..Default::default()
        };
        self.target(key, &name, Some(&unpinned), workflow_id)
            .await
            .ok()
            .flatten()
    }

    /// The queue a poll waits on: a versioned worker's version queue, once its version is
    /// registered on the task queue.
    pub(crate) async fn poll_key(
        &self,
        key: QueueKey,
        options: Option<&WorkerDeploymentOptions>,
    ) -> Result<QueueKey, Status> {
        if key.kind != QueueKind::Normal {
            return Ok(key);
        }
        let Some(version) = poller_version(options) else {
            return Ok(key);
        };
        if let Some(registry) = self.deployments.get() {
            registry
                .register(
                    &key.namespace_id,
                    &version.deployment_name,
                    &version.build_id,
                    &key.name,
                    key.task_type.as_i32(),
                )
                .await?;
        }
        Ok(key.with_version(version_tag(&version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let v = WorkerDeploymentVersion {
            deployment_name: "a.b".into(),
            build_id: "1.0".into(),
        };
        assert_eq!(tag_version(&version_tag(&v)), Some(v));
        assert_eq!(tag_version(""), None);
    }
}
