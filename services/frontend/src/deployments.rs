//! Worker deployment calls (worker versioning): DescribeWorkerDeployment,
//! ListWorkerDeployments, DescribeWorkerDeploymentVersion, SetWorkerDeploymentCurrentVersion,
//! SetWorkerDeploymentRampingVersion, DeleteWorkerDeploymentVersion and
//! DeleteWorkerDeployment, on the registry this process shares with its matching engine
//! (`temper_client::deployments`).

use std::sync::Arc;

use temper_client::deployments::{
    DeploymentRegistry, DeploymentSet, parse_version, requested_build,
};
use temper_proto::temporal::api::deployment::v1::WorkerDeploymentVersion;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::NamespaceId;
use tonic::Status;

use crate::Frontend;

fn need_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("deployment_name is required"));
    }
    Ok(())
}

/// The version a request names: `deployment_version`, else the `deployment.build` string.
fn named_version(
    version: Option<&WorkerDeploymentVersion>,
    text: &str,
) -> Result<WorkerDeploymentVersion, Status> {
    match version {
        Some(v) if !v.deployment_name.is_empty() && !v.build_id.is_empty() => Ok(v.clone()),
        _ => parse_version(text).ok_or_else(|| {
            Status::invalid_argument(
                "deployment_version (deployment name and build id) is required",
            )
        }),
    }
}

impl Frontend {
    pub(crate) fn registry(&self) -> Result<&Arc<DeploymentRegistry>, Status> {
        self.deployments
            .get()
            .ok_or_else(|| Status::unimplemented("worker deployments are not enabled on this node"))
    }

    async fn deployment_ns(&self, namespace: &str) -> Result<NamespaceId, Status> {
        Ok(NamespaceId(self.ns_id(namespace).await?))
    }

    /// Apply one Set*/Delete change; `changed` compares the deployments before and after.
    async fn change<T>(
        &self,
        namespace: &str,
        mut f: impl FnMut(&mut DeploymentSet) -> Result<T, temper_client::deployments::DeploymentError>,
    ) -> Result<T, Status> {
        let ns = self.deployment_ns(namespace).await?;
        self.registry()?
            .modify(&ns, |set| {
                let before = set.clone();
                let value = f(set)?;
                let changed = *set != before;
                Ok((value, changed))
            })
            .await
    }

    pub(crate) async fn describe_deployment(
        &self,
        r: ws::DescribeWorkerDeploymentRequest,
    ) -> Result<ws::DescribeWorkerDeploymentResponse, Status> {
        need_name(&r.deployment_name)?;
        let ns = self.deployment_ns(&r.namespace).await?;
        let registry = self.registry()?;
        let set = registry.fresh(&ns).await?;
        set.describe(&r.deployment_name, registry.propagated(&set))
            .map_err(temper_client::status::deployment_status)
    }

    pub(crate) async fn list_deployments(
        &self,
        r: ws::ListWorkerDeploymentsRequest,
    ) -> Result<ws::ListWorkerDeploymentsResponse, Status> {
        let ns = self.deployment_ns(&r.namespace).await?;
        let set = self.registry()?.fresh(&ns).await?;
        Ok(ws::ListWorkerDeploymentsResponse {
            next_page_token: Vec::new(),
            worker_deployments: set.list(),
        })
    }

    pub(crate) async fn describe_deployment_version(
        &self,
        r: ws::DescribeWorkerDeploymentVersionRequest,
    ) -> Result<ws::DescribeWorkerDeploymentVersionResponse, Status> {
        #[allow(deprecated)]
        let version = named_version(r.deployment_version.as_ref(), &r.version)?;
        let ns = self.deployment_ns(&r.namespace).await?;
        let set = self.registry()?.fresh(&ns).await?;
        set.describe_version(&version)
            .map_err(temper_client::status::deployment_status)
    }

    pub(crate) async fn set_current_version(
        &self,
        r: ws::SetWorkerDeploymentCurrentVersionRequest,
    ) -> Result<ws::SetWorkerDeploymentCurrentVersionResponse, Status> {
        need_name(&r.deployment_name)?;
        #[allow(deprecated)]
        let build = requested_build(&r.deployment_name, &r.build_id, &r.version)
            .map_err(temper_client::status::deployment_status)?;
        let now = self.registry()?.now().into();
        self.change(&r.namespace, |set| {
            set.set_current(
                &r.deployment_name,
                build.as_deref(),
                &r.conflict_token,
                &r.identity,
                now,
            )
        })
        .await
    }

    pub(crate) async fn set_ramping_version(
        &self,
        r: ws::SetWorkerDeploymentRampingVersionRequest,
    ) -> Result<ws::SetWorkerDeploymentRampingVersionResponse, Status> {
        need_name(&r.deployment_name)?;
        #[allow(deprecated)]
        let build = requested_build(&r.deployment_name, &r.build_id, &r.version)
            .map_err(temper_client::status::deployment_status)?;
        let now = self.registry()?.now().into();
        self.change(&r.namespace, |set| {
            set.set_ramping(
                &r.deployment_name,
                build.as_deref(),
                r.percentage,
                &r.conflict_token,
                &r.identity,
                now,
            )
        })
        .await
    }

    pub(crate) async fn delete_deployment_version(
        &self,
        r: ws::DeleteWorkerDeploymentVersionRequest,
    ) -> Result<ws::DeleteWorkerDeploymentVersionResponse, Status> {
        #[allow(deprecated)]
        let version = named_version(r.deployment_version.as_ref(), &r.version)?;
        self.change(&r.namespace, |set| set.delete_version(&version))
            .await?;
        let ns = self.deployment_ns(&r.namespace).await?;
        self.registry()?.forget_registrations(&ns);
        Ok(ws::DeleteWorkerDeploymentVersionResponse {})
    }

    pub(crate) async fn delete_deployment(
        &self,
        r: ws::DeleteWorkerDeploymentRequest,
    ) -> Result<ws::DeleteWorkerDeploymentResponse, Status> {
        need_name(&r.deployment_name)?;
        self.change(&r.namespace, |set| {
            set.delete_deployment(&r.deployment_name)
        })
        .await?;
        let ns = self.deployment_ns(&r.namespace).await?;
        self.registry()?.forget_registrations(&ns);
        Ok(ws::DeleteWorkerDeploymentResponse {})
    }
}
