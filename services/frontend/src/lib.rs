//! The public face of temper: Temporal's WorkflowService and OperatorService. Requests are
//! validated here, namespaces resolved to ids, and the work routed to history or matching.

pub mod admission;
mod batch;
mod build_ids;
mod compression;
mod deployments;
mod error_text;
mod errors;
mod list;
pub mod metrics;
mod namespaces;
mod nexus_endpoints;
mod nexus_tasks;
pub mod open_limit;
mod operator;
pub mod overload;
mod query;
mod rate_limit;
mod rpc_span;
mod schedules;
mod search_attributes;
mod standalone_activities;
mod standalone_nexus;
mod task_queue_config;
mod updates;
mod visibility;

use std::sync::Arc;
use std::time::Duration;

use compression::small_uncompressed;
use temper_client::{HistoryClient, MatchingClient};
use temper_proto::api::workflowservice::v1::workflow_service_server::WorkflowService;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::command::v1::command;
use temper_proto::temporal::api::workflowservice::v1::{
    self as ws, get_system_info_response::Capabilities,
};
use temper_workflow::token;
use tonic::{Request, Response, Status};

pub use admission::{AdmissionConfig, AdmissionScope};
pub use batch::{BatchConfig, Batcher};
pub use errors::parse_grpc_timeout;
pub use metrics::RpcMetrics;
pub use namespaces::{Namespace, Namespaces};
pub use open_limit::OpenWorkflowLimitConfig;
pub use operator::Operator;
pub use rate_limit::RateLimitConfig;
pub use rpc_span::rpc_span;

/// Frontend settings.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    pub cluster_name: String,
    pub cluster_id: String,
    pub num_shards: u32,
    pub persistence_store: String,
    /// Longest a task-queue poll waits before answering empty.
    pub max_long_poll: Duration,
    /// Requests per second per namespace and per node.
    pub rate_limits: rate_limit::RateLimitConfig,
    /// Requests doing work at once on this node, shared fairly between namespaces.
    pub admission: AdmissionConfig,
    /// Open workflows per namespace.
    pub open_workflows: OpenWorkflowLimitConfig,
    /// Batch operations.
    pub batch: BatchConfig,
    /// Eager workflow start (`system.enableEagerWorkflowStart`, on by default as in
    /// Temporal): off, a start's `request_eager_execution` is ignored.
    pub eager_workflow_start: bool,
    /// Legacy worker versioning's build id version sets (`frontend.workerVersioningDataAPIs`,
    /// off by default as in Temporal): off, their calls answer PERMISSION_DENIED.
    pub worker_versioning_data_apis: bool,
}

/// The version we report; the SDKs only check its presence.
pub const SERVER_VERSION: &str = "1.27.0";

pub struct Frontend {
    config: FrontendConfig,
    limits: rate_limit::RateLimits,
    admission: Option<Arc<admission::Admission>>,
    open_workflows: Option<open_limit::OpenWorkflowLimits>,
    pub namespaces: Arc<Namespaces>,
    history: HistoryClient,
    matching: MatchingClient,
    visibility: Arc<dyn temper_persistence::VisibilityStore>,
    batcher: Arc<Batcher>,
    /// The cluster's Nexus endpoints (this process's cached view).
    pub nexus_endpoints: Arc<temper_client::nexus_endpoints::NexusEndpoints>,
    /// Worker deployments, shared with this process's matching engine; unset: the
    /// deployment calls answer UNIMPLEMENTED.
    deployments: std::sync::OnceLock<Arc<temper_client::deployments::DeploymentRegistry>>,
}

impl Frontend {
    pub fn new(
        config: FrontendConfig,
        namespaces: Arc<Namespaces>,
        history: HistoryClient,
        matching: MatchingClient,
        visibility: Arc<dyn temper_persistence::VisibilityStore>,
        nexus_endpoints: Arc<temper_client::nexus_endpoints::NexusEndpoints>,
    ) -> Self {
        let batcher = Arc::new(Batcher::new(
            history.clone(),
            visibility.clone(),
            namespaces.clone(),
            config.batch.clone(),
        ));
        Self {
            limits: rate_limit::RateLimits::new(&config.rate_limits),
            admission: admission::Admission::new(&config.admission),
            open_workflows: config.open_workflows.any().then(|| {
                open_limit::OpenWorkflowLimits::new(
                    config.open_workflows.clone(),
                    visibility.clone(),
                )
            }),
            config,
            nexus_endpoints,
            namespaces,
            history,
            matching,
            visibility,
            batcher,
            deployments: std::sync::OnceLock::new(),
        }
    }

    /// Serve the worker deployment calls from `registry` (the one this process's matching
    /// engine routes by). Set once.
    pub fn set_deployments(&self, registry: Arc<temper_client::deployments::DeploymentRegistry>) {
        if self.deployments.set(registry).is_err() {
            tracing::warn!("frontend deployment registry already set; ignoring the new one");
        }
    }

    /// How many namespaces the per-namespace rate limiters keep a bucket for (only ever
    /// namespaces that exist).
    pub fn rate_limited_namespaces(&self) -> usize {
        self.limits.tracked_namespaces()
    }

    /// The id of the namespace a request names, once the request is within the rate limits.
    async fn ns_id(&self, name: &str) -> Result<String, Status> {
        Ok(self.namespace(name).await?.id.0.clone())
    }

    /// The namespace a request names, once the request is within the rate limits and (for
    /// the calls that take one) has its place among the requests running on this node.
    async fn namespace(&self, name: &str) -> Result<Arc<Namespace>, Status> {
        rpc_span::namespace(name);
        self.limits.admit_host()?;
        // Looked up first: the per-namespace limiter keeps a bucket for every name it sees,
        // and names that are not namespaces (any string a client sends) would grow it
        // without bound.
        let ns = self.namespaces.get(name).await?;
        self.limits.admit_namespace(name)?;
        if let Some(a) = &self.admission {
            admission::admit(a, name).await?;
        }
        Ok(ns)
    }

    /// A workflow start in `ns`, once within its bound on open workflows.
    async fn admit_start(&self, ns: &Namespace) -> Result<(), Status> {
        match &self.open_workflows {
            Some(limits) => limits.admit_start(&ns.name, &ns.id).await,
            None => Ok(()),
        }
    }

    /// A visibility query of `namespace`, once within its visibility rate limit.
    fn admit_visibility(&self, namespace: &str) -> Result<(), Status> {
        // Only namespaces this node knows: the call looks the name up next, and an unknown
        // one is refused there (a bucket per unknown name would grow without bound).
        if !self.namespaces.is_cached(namespace) {
            return Ok(());
        }
        self.limits.admit_visibility(namespace)
    }

    /// Like [`Self::ns_id`] for long polls, which the rate limits do not count.
    async fn ns_id_long_poll(&self, name: &str) -> Result<String, Status> {
        rpc_span::namespace(name);
        Ok(self.namespaces.get(name).await?.id.0.clone())
    }

    /// The namespace of a task token must be the namespace named in the request.
    async fn ns_for_token(&self, name: &str, task_token: &[u8]) -> Result<String, Status> {
        let id = self.ns_id(name).await?;
        let t = token::decode(task_token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        rpc_span::workflow(&t.workflow_id, &t.run_id);
        if t.namespace_id != id {
            return Err(Status::invalid_argument(
                "Operation requested with a token from a different namespace.",
            ));
        }
        Ok(id)
    }
}

fn check_task_queue(
    q: &Option<temper_proto::temporal::api::taskqueue::v1::TaskQueue>,
) -> Result<(), Status> {
    match q {
        Some(q) if !q.name.is_empty() => {
            if q.name.len() > 1000 {
                return Err(Status::invalid_argument("TaskQueue length exceeds limit."));
            }
            // Partitions of a queue are named `/_sys/<name>/<n>`; users may not use that form.
            if q.name.starts_with("/_sys/") {
                return Err(Status::invalid_argument(
                    "task queue name cannot start with reserved prefix /_sys/",
                ));
            }
            Ok(())
        }
        _ => Err(Status::invalid_argument("TaskQueue is not set on request.")),
    }
}

fn check_identity(identity: &str) -> Result<(), Status> {
    if identity.len() > 1000 {
        return Err(Status::invalid_argument("Identity length exceeds limit."));
    }
    Ok(())
}

/// A request naming a run must name at least its workflow id (Temporal's messages).
fn check_execution(
    e: &Option<temper_proto::temporal::api::common::v1::WorkflowExecution>,
) -> Result<(), Status> {
    match e {
        None => Err(Status::invalid_argument("Execution is not set on request.")),
        Some(e) if e.workflow_id.is_empty() => Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        )),
        Some(_) => Ok(()),
    }
}

/// What Temporal checks of an activity operator request before it looks at the namespace.
fn check_activity_op(
    execution: Option<&temper_proto::temporal::api::common::v1::WorkflowExecution>,
    names_activity: bool,
) -> Result<(), Status> {
    if execution.is_none_or(|e| e.workflow_id.is_empty()) {
        return Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        ));
    }
    if !names_activity {
        return Err(Status::invalid_argument(
            "Either Activity.Id or Activity.Type should be set on request.",
        ));
    }
    Ok(())
}

/// The workflow id an activity request names: its workflow's, or, when it names none, the
/// run of the standalone activity `activity_id` (as Temporal reads such a request).
fn activity_workflow_id(workflow_id: String, activity_id: &str) -> String {
    if workflow_id.is_empty() && !activity_id.is_empty() {
        temper_types::standalone_activity_workflow_id(activity_id)
    } else {
        workflow_id
    }
}

fn execution_of(
    workflow_id: String,
    run_id: String,
) -> temper_proto::temporal::api::common::v1::WorkflowExecution {
    temper_proto::temporal::api::common::v1::WorkflowExecution {
        workflow_id,
        run_id,
    }
}

fn by_id(workflow_id: &str, run_id: &str, activity_id: &str) -> Option<internal::ActivityRef> {
    Some(internal::ActivityRef {
        workflow_id: activity_workflow_id(workflow_id.to_string(), activity_id),
        run_id: run_id.to_string(),
        activity_id: activity_id.to_string(),
    })
}

#[tonic::async_trait]
impl WorkflowService for Frontend {
    async fn describe_worker_deployment(
        &self,
        r: Request<ws::DescribeWorkerDeploymentRequest>,
    ) -> Result<Response<ws::DescribeWorkerDeploymentResponse>, Status> {
        Ok(Response::new(
            self.describe_deployment(r.into_inner()).await?,
        ))
    }

    async fn update_worker_build_id_compatibility(
        &self,
        r: Request<ws::UpdateWorkerBuildIdCompatibilityRequest>,
    ) -> Result<Response<ws::UpdateWorkerBuildIdCompatibilityResponse>, Status> {
        Ok(Response::new(
            self.update_build_id_compatibility(r.into_inner()).await?,
        ))
    }

    async fn get_worker_build_id_compatibility(
        &self,
        r: Request<ws::GetWorkerBuildIdCompatibilityRequest>,
    ) -> Result<Response<ws::GetWorkerBuildIdCompatibilityResponse>, Status> {
        Ok(Response::new(
            self.get_build_id_compatibility(r.into_inner()).await?,
        ))
    }

    async fn get_worker_task_reachability(
        &self,
        r: Request<ws::GetWorkerTaskReachabilityRequest>,
    ) -> Result<Response<ws::GetWorkerTaskReachabilityResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        Ok(Response::new(
            self.get_task_reachability(r.into_inner()).await?,
        ))
    }

    async fn list_worker_deployments(
        &self,
        r: Request<ws::ListWorkerDeploymentsRequest>,
    ) -> Result<Response<ws::ListWorkerDeploymentsResponse>, Status> {
        Ok(Response::new(self.list_deployments(r.into_inner()).await?))
    }

    async fn describe_worker_deployment_version(
        &self,
        r: Request<ws::DescribeWorkerDeploymentVersionRequest>,
    ) -> Result<Response<ws::DescribeWorkerDeploymentVersionResponse>, Status> {
        Ok(Response::new(
            self.describe_deployment_version(r.into_inner()).await?,
        ))
    }

    async fn set_worker_deployment_current_version(
        &self,
        r: Request<ws::SetWorkerDeploymentCurrentVersionRequest>,
    ) -> Result<Response<ws::SetWorkerDeploymentCurrentVersionResponse>, Status> {
        Ok(Response::new(
            self.set_current_version(r.into_inner()).await?,
        ))
    }

    async fn set_worker_deployment_ramping_version(
        &self,
        r: Request<ws::SetWorkerDeploymentRampingVersionRequest>,
    ) -> Result<Response<ws::SetWorkerDeploymentRampingVersionResponse>, Status> {
        Ok(Response::new(
            self.set_ramping_version(r.into_inner()).await?,
        ))
    }

    async fn delete_worker_deployment_version(
        &self,
        r: Request<ws::DeleteWorkerDeploymentVersionRequest>,
    ) -> Result<Response<ws::DeleteWorkerDeploymentVersionResponse>, Status> {
        Ok(Response::new(
            self.delete_deployment_version(r.into_inner()).await?,
        ))
    }

    async fn delete_worker_deployment(
        &self,
        r: Request<ws::DeleteWorkerDeploymentRequest>,
    ) -> Result<Response<ws::DeleteWorkerDeploymentResponse>, Status> {
        Ok(Response::new(self.delete_deployment(r.into_inner()).await?))
    }

    async fn get_system_info(
        &self,
        _r: Request<ws::GetSystemInfoRequest>,
    ) -> Result<Response<ws::GetSystemInfoResponse>, Status> {
        Ok(Response::new(ws::GetSystemInfoResponse {
            server_version: SERVER_VERSION.to_string(),
            capabilities: Some(Capabilities {
                internal_error_differentiation: true,
                activity_failure_include_heartbeat: true,
                encoded_failure_attributes: true,
                sdk_metadata: true,
                signal_and_query_header: true,
                // Both stores answer Count ... GROUP BY ExecutionStatus.
                count_group_by_execution_status: true,
                // Workers then stamp their build id on polls and completions, which the
                // events record (worker versioning).
                build_id_based_versioning: true,
                ..Default::default()
            }),
        }))
    }

    async fn list_workflow_executions(
        &self,
        r: Request<ws::ListWorkflowExecutionsRequest>,
    ) -> Result<Response<ws::ListWorkflowExecutionsResponse>, Status> {
        let r = r.into_inner();
        self.admit_visibility(&r.namespace)?;
        let page = self
            .list_page(&r.namespace, &r.query, r.page_size, &r.next_page_token)
            .await?;
        Ok(Response::new(page))
    }

    async fn scan_workflow_executions(
        &self,
        r: Request<ws::ScanWorkflowExecutionsRequest>,
    ) -> Result<Response<ws::ScanWorkflowExecutionsResponse>, Status> {
        let r = r.into_inner();
        self.admit_visibility(&r.namespace)?;
        let page = self
            .list_page(&r.namespace, &r.query, r.page_size, &r.next_page_token)
            .await?;
        Ok(Response::new(ws::ScanWorkflowExecutionsResponse {
            executions: page.executions,
            next_page_token: page.next_page_token,
        }))
    }

    async fn count_workflow_executions(
        &self,
        r: Request<ws::CountWorkflowExecutionsRequest>,
    ) -> Result<Response<ws::CountWorkflowExecutionsResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        Ok(Response::new(self.count(r.into_inner()).await?))
    }

    async fn list_open_workflow_executions(
        &self,
        r: Request<ws::ListOpenWorkflowExecutionsRequest>,
    ) -> Result<Response<ws::ListOpenWorkflowExecutionsResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        Ok(Response::new(self.list_open(r.into_inner()).await?))
    }

    async fn list_closed_workflow_executions(
        &self,
        r: Request<ws::ListClosedWorkflowExecutionsRequest>,
    ) -> Result<Response<ws::ListClosedWorkflowExecutionsResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        Ok(Response::new(self.list_closed(r.into_inner()).await?))
    }

    async fn get_search_attributes(
        &self,
        _r: Request<ws::GetSearchAttributesRequest>,
    ) -> Result<Response<ws::GetSearchAttributesResponse>, Status> {
        Ok(Response::new(self.all_search_attributes().await?))
    }

    async fn get_cluster_info(
        &self,
        _r: Request<ws::GetClusterInfoRequest>,
    ) -> Result<Response<ws::GetClusterInfoResponse>, Status> {
        Ok(Response::new(ws::GetClusterInfoResponse {
            server_version: SERVER_VERSION.to_string(),
            cluster_id: self.config.cluster_id.clone(),
            cluster_name: self.config.cluster_name.clone(),
            history_shard_count: self.config.num_shards as i32,
            persistence_store: self.config.persistence_store.clone(),
            visibility_store: String::new(),
            failover_version_increment: 10,
            initial_failover_version: 1,
            ..Default::default()
        }))
    }

    async fn register_namespace(
        &self,
        r: Request<ws::RegisterNamespaceRequest>,
    ) -> Result<Response<ws::RegisterNamespaceResponse>, Status> {
        self.namespaces.register(r.into_inner()).await?;
        Ok(Response::new(ws::RegisterNamespaceResponse::default()))
    }

    async fn describe_namespace(
        &self,
        r: Request<ws::DescribeNamespaceRequest>,
    ) -> Result<Response<ws::DescribeNamespaceResponse>, Status> {
        let r = r.into_inner();
        let ns = if !r.namespace.is_empty() {
            self.limits.admit(&r.namespace)?;
            self.namespaces.get(&r.namespace).await?
        } else if !r.id.is_empty() {
            Arc::new(self.namespaces.get_by_id(&r.id).await?)
        } else {
            return Err(Status::invalid_argument("Namespace not set on request."));
        };
        Ok(Response::new(ns.describe()))
    }

    async fn list_namespaces(
        &self,
        r: Request<ws::ListNamespacesRequest>,
    ) -> Result<Response<ws::ListNamespacesResponse>, Status> {
        let r = r.into_inner();
        let limit = if r.page_size > 0 {
            r.page_size as usize
        } else {
            100
        };
        let after = if r.next_page_token.is_empty() {
            None
        } else {
            Some(
                String::from_utf8(r.next_page_token.clone())
                    .map_err(|_| Status::invalid_argument("Invalid NextPageToken."))?,
            )
        };
        let list = self.namespaces.list(after.as_deref(), limit).await?;
        let next_page_token = if list.len() == limit {
            list.last()
                .map(|n| n.name.clone().into_bytes())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Response::new(ws::ListNamespacesResponse {
            namespaces: list.iter().map(Namespace::describe).collect(),
            next_page_token,
        }))
    }

    async fn update_namespace(
        &self,
        r: Request<ws::UpdateNamespaceRequest>,
    ) -> Result<Response<ws::UpdateNamespaceResponse>, Status> {
        let ns = self.namespaces.update(r.into_inner()).await?;
        let d = ns.describe();
        Ok(Response::new(ws::UpdateNamespaceResponse {
            namespace_info: d.namespace_info,
            config: d.config,
            replication_config: d.replication_config,
            failover_version: d.failover_version,
            is_global_namespace: d.is_global_namespace,
        }))
    }

    async fn start_workflow_execution(
        &self,
        r: Request<ws::StartWorkflowExecutionRequest>,
    ) -> Result<Response<ws::StartWorkflowExecutionResponse>, Status> {
        let mut r = r.into_inner();
        check_identity(&r.identity)?;
        rpc_span::workflow(&r.workflow_id, "");
        let ns = self.namespace(&r.namespace).await?;
        r.request_eager_execution &= self.config.eager_workflow_start;
        search_attributes::check(&ns, r.search_attributes.as_ref())?;
        self.admit_start(&ns).await?;
        let namespace_id = ns.id.0.clone();
        small_uncompressed(
            self.history
                .start_workflow_execution(Request::new(internal::StartWorkflowExecutionRequest {
                    namespace_id,
                    namespace: r.namespace.clone(),
                    request: Some(r),
                    parent: None,
                    scheduled_by: String::new(),
                }))
                .await,
        )
    }

    async fn poll_workflow_task_queue(
        &self,
        r: Request<ws::PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<ws::PollWorkflowTaskQueueResponse>, Status> {
        let budget = errors::task_poll_budget(r.metadata(), self.config.max_long_poll)?;
        let r = r.into_inner();
        check_task_queue(&r.task_queue)?;
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id_long_poll(&r.namespace).await?;
        small_uncompressed(
            self.matching
                .poll_workflow_task_queue(Request::new(internal::PollWorkflowTaskQueueRequest {
                    namespace_id,
                    poller_id: uuid::Uuid::new_v4().to_string(),
                    request: Some(r),
                    long_poll_timeout_ms: budget.as_millis() as i64,
                }))
                .await,
        )
    }

    async fn poll_activity_task_queue(
        &self,
        r: Request<ws::PollActivityTaskQueueRequest>,
    ) -> Result<Response<ws::PollActivityTaskQueueResponse>, Status> {
        let budget = errors::task_poll_budget(r.metadata(), self.config.max_long_poll)?;
        let header = |name: &str| {
            r.metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (sdk_name, sdk_version) = (header("client-name"), header("client-version"));
        let r = r.into_inner();
        check_task_queue(&r.task_queue)?;
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id_long_poll(&r.namespace).await?;
        small_uncompressed(
            self.matching
                .poll_activity_task_queue(Request::new(internal::PollActivityTaskQueueRequest {
                    namespace_id,
                    poller_id: uuid::Uuid::new_v4().to_string(),
                    request: Some(r),
                    long_poll_timeout_ms: budget.as_millis() as i64,
                    sdk_name,
                    sdk_version,
                }))
                .await,
        )
    }

    async fn respond_workflow_task_completed(
        &self,
        r: Request<ws::RespondWorkflowTaskCompletedRequest>,
    ) -> Result<Response<ws::RespondWorkflowTaskCompletedResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        // Upserts, and the signal-with-starts of System Nexus operations, may only name
        // registered search attributes; history checks them.
        let names_search_attributes = r.commands.iter().any(|c| match &c.attributes {
            Some(command::Attributes::UpsertWorkflowSearchAttributesCommandAttributes(_)) => true,
            Some(command::Attributes::ScheduleNexusOperationCommandAttributes(a)) => {
                a.endpoint == temper_workflow::system_nexus::ENDPOINT
            }
            _ => false,
        });
        let search_attributes = if names_search_attributes {
            let ns = self.namespaces.get(&r.namespace).await?;
            Some(internal::SearchAttributeNames {
                names: search_attributes::settable_names(&ns),
            })
        } else {
            None
        };
        small_uncompressed(
            self.history
                .respond_workflow_task_completed(Request::new(
                    internal::RespondWorkflowTaskCompletedRequest {
                        namespace_id,
                        request: Some(r),
                        search_attributes,
                    },
                ))
                .await,
        )
    }

    async fn respond_workflow_task_failed(
        &self,
        r: Request<ws::RespondWorkflowTaskFailedRequest>,
    ) -> Result<Response<ws::RespondWorkflowTaskFailedResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        self.history
            .respond_workflow_task_failed(Request::new(
                internal::RespondWorkflowTaskFailedRequest {
                    namespace_id,
                    request: Some(r),
                },
            ))
            .await
    }

    async fn record_activity_task_heartbeat(
        &self,
        r: Request<ws::RecordActivityTaskHeartbeatRequest>,
    ) -> Result<Response<ws::RecordActivityTaskHeartbeatResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        small_uncompressed(
            self.history
                .record_activity_task_heartbeat(Request::new(
                    internal::RecordActivityTaskHeartbeatRequest {
                        namespace_id,
                        request: Some(r),
                        by_id: None,
                    },
                ))
                .await,
        )
    }

    async fn record_activity_task_heartbeat_by_id(
        &self,
        r: Request<ws::RecordActivityTaskHeartbeatByIdRequest>,
    ) -> Result<Response<ws::RecordActivityTaskHeartbeatByIdResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_id(&r.namespace).await?;
        let req = ws::RecordActivityTaskHeartbeatRequest {
            details: r.details.clone(),
            identity: r.identity.clone(),
            namespace: r.namespace.clone(),
            ..Default::default()
        };
        let resp = self
            .history
            .record_activity_task_heartbeat(Request::new(
                internal::RecordActivityTaskHeartbeatRequest {
                    namespace_id,
                    request: Some(req),
                    by_id: by_id(&r.workflow_id, &r.run_id, &r.activity_id),
                },
            ))
            .await?
            .into_inner();
        Ok(Response::new(ws::RecordActivityTaskHeartbeatByIdResponse {
            cancel_requested: resp.cancel_requested,
            activity_paused: resp.activity_paused,
            activity_reset: resp.activity_reset,
        }))
    }

    async fn respond_activity_task_completed(
        &self,
        r: Request<ws::RespondActivityTaskCompletedRequest>,
    ) -> Result<Response<ws::RespondActivityTaskCompletedResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        small_uncompressed(
            self.history
                .respond_activity_task_completed(Request::new(
                    internal::RespondActivityTaskCompletedRequest {
                        namespace_id,
                        request: Some(r),
                        by_id: None,
                    },
                ))
                .await,
        )
    }

    async fn respond_activity_task_completed_by_id(
        &self,
        r: Request<ws::RespondActivityTaskCompletedByIdRequest>,
    ) -> Result<Response<ws::RespondActivityTaskCompletedByIdResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_id(&r.namespace).await?;
        let req = ws::RespondActivityTaskCompletedRequest {
            result: r.result.clone(),
            identity: r.identity.clone(),
            namespace: r.namespace.clone(),
            ..Default::default()
        };
        self.history
            .respond_activity_task_completed(Request::new(
                internal::RespondActivityTaskCompletedRequest {
                    namespace_id,
                    request: Some(req),
                    by_id: by_id(&r.workflow_id, &r.run_id, &r.activity_id),
                },
            ))
            .await?;
        Ok(Response::new(
            ws::RespondActivityTaskCompletedByIdResponse::default(),
        ))
    }

    async fn respond_activity_task_failed(
        &self,
        r: Request<ws::RespondActivityTaskFailedRequest>,
    ) -> Result<Response<ws::RespondActivityTaskFailedResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        self.history
            .respond_activity_task_failed(Request::new(
                internal::RespondActivityTaskFailedRequest {
                    namespace_id,
                    request: Some(r),
                    by_id: None,
                },
            ))
            .await
    }

    async fn respond_activity_task_failed_by_id(
        &self,
        r: Request<ws::RespondActivityTaskFailedByIdRequest>,
    ) -> Result<Response<ws::RespondActivityTaskFailedByIdResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_id(&r.namespace).await?;
        let req = ws::RespondActivityTaskFailedRequest {
            failure: r.failure.clone(),
            identity: r.identity.clone(),
            namespace: r.namespace.clone(),
            last_heartbeat_details: r.last_heartbeat_details.clone(),
            ..Default::default()
        };
        self.history
            .respond_activity_task_failed(Request::new(
                internal::RespondActivityTaskFailedRequest {
                    namespace_id,
                    request: Some(req),
                    by_id: by_id(&r.workflow_id, &r.run_id, &r.activity_id),
                },
            ))
            .await?;
        Ok(Response::new(
            ws::RespondActivityTaskFailedByIdResponse::default(),
        ))
    }

    async fn respond_activity_task_canceled(
        &self,
        r: Request<ws::RespondActivityTaskCanceledRequest>,
    ) -> Result<Response<ws::RespondActivityTaskCanceledResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        self.history
            .respond_activity_task_canceled(Request::new(
                internal::RespondActivityTaskCanceledRequest {
                    namespace_id,
                    request: Some(r),
                    by_id: None,
                },
            ))
            .await
    }

    async fn respond_activity_task_canceled_by_id(
        &self,
        r: Request<ws::RespondActivityTaskCanceledByIdRequest>,
    ) -> Result<Response<ws::RespondActivityTaskCanceledByIdResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_id(&r.namespace).await?;
        let req = ws::RespondActivityTaskCanceledRequest {
            details: r.details.clone(),
            identity: r.identity.clone(),
            namespace: r.namespace.clone(),
            ..Default::default()
        };
        self.history
            .respond_activity_task_canceled(Request::new(
                internal::RespondActivityTaskCanceledRequest {
                    namespace_id,
                    request: Some(req),
                    by_id: by_id(&r.workflow_id, &r.run_id, &r.activity_id),
                },
            ))
            .await?;
        Ok(Response::new(
            ws::RespondActivityTaskCanceledByIdResponse::default(),
        ))
    }

    async fn get_workflow_execution_history(
        &self,
        r: Request<ws::GetWorkflowExecutionHistoryRequest>,
    ) -> Result<Response<ws::GetWorkflowExecutionHistoryResponse>, Status> {
        let budget = errors::long_poll_budget(r.metadata(), self.config.max_long_poll);
        let r = r.into_inner();
        rpc_span::execution(r.execution.as_ref());
        let namespace_id = if r.wait_new_event {
            self.ns_id_long_poll(&r.namespace).await?
        } else {
            self.ns_id(&r.namespace).await?
        };
        self.history
            .get_workflow_execution_history(Request::new(
                internal::GetWorkflowExecutionHistoryRequest {
                    namespace_id,
                    request: Some(r),
                    long_poll_timeout_ms: budget.as_millis() as i64,
                },
            ))
            .await
    }

    async fn get_workflow_execution_history_reverse(
        &self,
        r: Request<ws::GetWorkflowExecutionHistoryReverseRequest>,
    ) -> Result<Response<ws::GetWorkflowExecutionHistoryReverseResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.execution.as_ref());
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .get_workflow_execution_history_reverse(Request::new(
                internal::GetWorkflowExecutionHistoryReverseRequest {
                    namespace_id,
                    request: Some(r),
                },
            ))
            .await
    }

    async fn describe_workflow_execution(
        &self,
        r: Request<ws::DescribeWorkflowExecutionRequest>,
    ) -> Result<Response<ws::DescribeWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.execution.as_ref());
        let ns = self.namespace(&r.namespace).await?;
        let attrs = visibility::registry(&ns);
        let mut described = self
            .history
            .describe_workflow_execution(Request::new(internal::DescribeWorkflowExecutionRequest {
                namespace_id: ns.id.0.clone(),
                request: Some(r),
            }))
            .await?;
        // Each search attribute says its type, as List's do (and as Temporal answers), so
        // SDKs read typed values even of attributes a client did not tag (a schedule's).
        if let Some(sa) = described
            .get_mut()
            .workflow_execution_info
            .as_mut()
            .and_then(|i| i.search_attributes.as_mut())
        {
            visibility::tag_types(sa, &attrs);
        }
        Ok(described)
    }

    async fn request_cancel_workflow_execution(
        &self,
        r: Request<ws::RequestCancelWorkflowExecutionRequest>,
    ) -> Result<Response<ws::RequestCancelWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.workflow_execution.as_ref());
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .request_cancel_workflow_execution(Request::new(
                internal::RequestCancelWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(r),
                    ..Default::default()
                },
            ))
            .await
    }

    async fn terminate_workflow_execution(
        &self,
        r: Request<ws::TerminateWorkflowExecutionRequest>,
    ) -> Result<Response<ws::TerminateWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.workflow_execution.as_ref());
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .terminate_workflow_execution(Request::new(
                internal::TerminateWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(r),
                },
            ))
            .await
    }

    async fn signal_with_start_workflow_execution(
        &self,
        r: Request<ws::SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<Response<ws::SignalWithStartWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        check_identity(&r.identity)?;
        rpc_span::workflow(&r.workflow_id, "");
        let ns = self.namespace(&r.namespace).await?;
        search_attributes::check(&ns, r.search_attributes.as_ref())?;
        self.admit_start(&ns).await?;
        let namespace_id = ns.id.0.clone();
        self.history
            .signal_with_start_workflow_execution(Request::new(
                internal::SignalWithStartWorkflowExecutionRequest {
                    namespace_id,
                    request: Some(r),
                },
            ))
            .await
    }

    async fn signal_workflow_execution(
        &self,
        r: Request<ws::SignalWorkflowExecutionRequest>,
    ) -> Result<Response<ws::SignalWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.workflow_execution.as_ref());
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .signal_workflow_execution(Request::new(internal::SignalWorkflowExecutionRequest {
                namespace_id,
                request: Some(r),
                ..Default::default()
            }))
            .await
    }

    async fn update_workflow_execution(
        &self,
        r: Request<ws::UpdateWorkflowExecutionRequest>,
    ) -> Result<Response<ws::UpdateWorkflowExecutionResponse>, Status> {
        let mut r = r.into_inner();
        updates::prepare_update(&mut r)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        let namespace = r.namespace.clone();
        let request_id = r.request.as_ref().map(|u| u.request_id.clone());
        let mut resp = self
            .history
            .update_workflow_execution(Request::new(internal::UpdateWorkflowExecutionRequest {
                namespace_id,
                request: Some(r),
            }))
            .await?
            .into_inner();
        updates::add_link(&namespace, request_id.unwrap_or_default(), &mut resp);
        Ok(Response::new(resp))
    }

    async fn execute_multi_operation(
        &self,
        r: Request<ws::ExecuteMultiOperationRequest>,
    ) -> Result<Response<ws::ExecuteMultiOperationResponse>, Status> {
        let mut r = r.into_inner();
        let ns = self.namespace(&r.namespace).await?;
        let namespace_id = ns.id.0.clone();
        updates::prepare_update_with_start(&mut r)?;
        self.admit_start(&ns).await?;
        let namespace = r.namespace.clone();
        let request_id = r
            .operations
            .get(1)
            .and_then(|o| match &o.operation {
                Some(
                    ws::execute_multi_operation_request::operation::Operation::UpdateWorkflow(u),
                ) => u.request.as_ref().map(|u| u.request_id.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let mut resp = self
            .history
            .execute_multi_operation(Request::new(internal::ExecuteMultiOperationRequest {
                namespace_id,
                request: Some(r),
            }))
            .await?
            .into_inner();
        for op in resp.responses.iter_mut() {
            if let Some(ws::execute_multi_operation_response::response::Response::UpdateWorkflow(
                u,
            )) = op.response.as_mut()
            {
                updates::add_link(&namespace, request_id.clone(), u);
            }
        }
        Ok(Response::new(resp))
    }

    async fn poll_workflow_execution_update(
        &self,
        r: Request<ws::PollWorkflowExecutionUpdateRequest>,
    ) -> Result<Response<ws::PollWorkflowExecutionUpdateResponse>, Status> {
        let r = r.into_inner();
        updates::check_poll(&r)?;
        let namespace_id = self.ns_id_long_poll(&r.namespace).await?;
        self.history
            .poll_workflow_execution_update(Request::new(
                internal::PollWorkflowExecutionUpdateRequest {
                    namespace_id,
                    request: Some(r),
                },
            ))
            .await
    }

    async fn reset_workflow_execution(
        &self,
        r: Request<ws::ResetWorkflowExecutionRequest>,
    ) -> Result<Response<ws::ResetWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.workflow_execution.as_ref());
        if r.request_id.is_empty() {
            return Err(Status::invalid_argument("RequestId is not set on request."));
        }
        if r.request_id.len() > 1000 {
            return Err(Status::invalid_argument("RequestId length exceeds limit."));
        }
        check_execution(&r.workflow_execution)?;
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .reset_workflow_execution(Request::new(internal::ResetWorkflowExecutionRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    async fn delete_workflow_execution(
        &self,
        r: Request<ws::DeleteWorkflowExecutionRequest>,
    ) -> Result<Response<ws::DeleteWorkflowExecutionResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.workflow_execution.as_ref());
        check_execution(&r.workflow_execution)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .delete_workflow_execution(Request::new(internal::DeleteWorkflowExecutionRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    async fn update_workflow_execution_options(
        &self,
        r: Request<ws::UpdateWorkflowExecutionOptionsRequest>,
    ) -> Result<Response<ws::UpdateWorkflowExecutionOptionsResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.workflow_execution.as_ref());
        check_execution(&r.workflow_execution)?;
        check_identity(&r.identity)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .update_workflow_execution_options(Request::new(
                internal::UpdateWorkflowExecutionOptionsRequest {
                    namespace_id,
                    request: Some(r),
                },
            ))
            .await
    }

    async fn pause_activity(
        &self,
        r: Request<ws::PauseActivityRequest>,
    ) -> Result<Response<ws::PauseActivityResponse>, Status> {
        let r = r.into_inner();
        check_activity_op(r.execution.as_ref(), r.activity.is_some())?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .pause_activity(Request::new(internal::PauseActivityRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    async fn unpause_activity(
        &self,
        r: Request<ws::UnpauseActivityRequest>,
    ) -> Result<Response<ws::UnpauseActivityResponse>, Status> {
        let r = r.into_inner();
        check_activity_op(r.execution.as_ref(), r.activity.is_some())?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .unpause_activity(Request::new(internal::UnpauseActivityRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    async fn reset_activity(
        &self,
        r: Request<ws::ResetActivityRequest>,
    ) -> Result<Response<ws::ResetActivityResponse>, Status> {
        let r = r.into_inner();
        check_activity_op(r.execution.as_ref(), r.activity.is_some())?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .reset_activity(Request::new(internal::ResetActivityRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    async fn update_activity_options(
        &self,
        r: Request<ws::UpdateActivityOptionsRequest>,
    ) -> Result<Response<ws::UpdateActivityOptionsResponse>, Status> {
        let r = r.into_inner();
        check_activity_op(r.execution.as_ref(), r.activity.is_some())?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .update_activity_options(Request::new(internal::UpdateActivityOptionsRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    // The CLI's `temporal activity pause|unpause|reset|update-options` use the
    // *ActivityExecution forms; with a workflow id they act on that workflow's activity, as
    // in Temporal. Without one they name a standalone activity (in the run that holds it).
    async fn pause_activity_execution(
        &self,
        r: Request<ws::PauseActivityExecutionRequest>,
    ) -> Result<Response<ws::PauseActivityExecutionResponse>, Status> {
        let r = r.into_inner();
        self.pause_activity(Request::new(ws::PauseActivityRequest {
            namespace: r.namespace,
            execution: Some(execution_of(
                activity_workflow_id(r.workflow_id, &r.activity_id),
                r.run_id,
            )),
            identity: r.identity,
            reason: r.reason,
            request_id: r.request_id,
            activity: Some(ws::pause_activity_request::Activity::Id(r.activity_id)),
        }))
        .await?;
        Ok(Response::new(ws::PauseActivityExecutionResponse::default()))
    }

    async fn unpause_activity_execution(
        &self,
        r: Request<ws::UnpauseActivityExecutionRequest>,
    ) -> Result<Response<ws::UnpauseActivityExecutionResponse>, Status> {
        let r = r.into_inner();
        self.unpause_activity(Request::new(ws::UnpauseActivityRequest {
            namespace: r.namespace,
            execution: Some(execution_of(
                activity_workflow_id(r.workflow_id, &r.activity_id),
                r.run_id,
            )),
            identity: r.identity,
            jitter: r.jitter,
            activity: Some(ws::unpause_activity_request::Activity::Id(r.activity_id)),
            ..Default::default()
        }))
        .await?;
        Ok(Response::new(
            ws::UnpauseActivityExecutionResponse::default(),
        ))
    }

    async fn reset_activity_execution(
        &self,
        r: Request<ws::ResetActivityExecutionRequest>,
    ) -> Result<Response<ws::ResetActivityExecutionResponse>, Status> {
        let r = r.into_inner();
        self.reset_activity(Request::new(ws::ResetActivityRequest {
            namespace: r.namespace,
            execution: Some(execution_of(
                activity_workflow_id(r.workflow_id, &r.activity_id),
                r.run_id,
            )),
            identity: r.identity,
            reset_heartbeat: r.reset_heartbeat,
            keep_paused: r.keep_paused,
            jitter: r.jitter,
            restore_original_options: r.restore_original_options,
            activity: Some(ws::reset_activity_request::Activity::Id(r.activity_id)),
        }))
        .await?;
        Ok(Response::new(ws::ResetActivityExecutionResponse::default()))
    }

    async fn update_activity_execution_options(
        &self,
        r: Request<ws::UpdateActivityExecutionOptionsRequest>,
    ) -> Result<Response<ws::UpdateActivityExecutionOptionsResponse>, Status> {
        let r = r.into_inner();
        let resp = self
            .update_activity_options(Request::new(ws::UpdateActivityOptionsRequest {
                namespace: r.namespace,
                execution: Some(execution_of(
                    activity_workflow_id(r.workflow_id, &r.activity_id),
                    r.run_id,
                )),
                identity: r.identity,
                activity_options: r.activity_options,
                update_mask: r.update_mask,
                restore_original: r.restore_original,
                activity: Some(ws::update_activity_options_request::Activity::Id(
                    r.activity_id,
                )),
            }))
            .await?
            .into_inner();
        Ok(Response::new(ws::UpdateActivityExecutionOptionsResponse {
            activity_options: resp.activity_options,
        }))
    }

    async fn reset_sticky_task_queue(
        &self,
        r: Request<ws::ResetStickyTaskQueueRequest>,
    ) -> Result<Response<ws::ResetStickyTaskQueueResponse>, Status> {
        let r = r.into_inner();
        rpc_span::execution(r.execution.as_ref());
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .reset_sticky_task_queue(Request::new(internal::ResetStickyTaskQueueRequest {
                namespace_id,
                request: Some(r),
            }))
            .await
    }

    async fn describe_task_queue(
        &self,
        r: Request<ws::DescribeTaskQueueRequest>,
    ) -> Result<Response<ws::DescribeTaskQueueResponse>, Status> {
        let r = r.into_inner();
        check_task_queue(&r.task_queue)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        let config_of = r.report_config.then(|| {
            (
                r.task_queue
                    .as_ref()
                    .map(|q| q.name.clone())
                    .unwrap_or_default(),
                r.task_queue_type,
            )
        });
        let mut response = self
            .matching
            .describe_task_queue(Request::new(internal::DescribeTaskQueueRequest {
                namespace_id: namespace_id.clone(),
                request: Some(r),
            }))
            .await?;
        if let Some((name, task_queue_type)) = config_of {
            let base = temper_types::parse_partition(&name).0;
            response.get_mut().config = self
                .task_queue_config(&namespace_id, base, task_queue_type)
                .await?;
        }
        Ok(response)
    }

    async fn update_task_queue_config(
        &self,
        r: Request<ws::UpdateTaskQueueConfigRequest>,
    ) -> Result<Response<ws::UpdateTaskQueueConfigResponse>, Status> {
        Ok(Response::new(
            self.update_task_queue_config_call(r.into_inner()).await?,
        ))
    }

    async fn shutdown_worker(
        &self,
        r: Request<ws::ShutdownWorkerRequest>,
    ) -> Result<Response<ws::ShutdownWorkerResponse>, Status> {
        let r = r.into_inner();
        let namespace_id = self.ns_id(&r.namespace).await?;
        if !r.sticky_task_queue.is_empty() {
            self.matching
                .shutdown_worker(Request::new(internal::ShutdownWorkerRequest {
                    namespace_id,
                    request: Some(r),
                }))
                .await?;
        }
        Ok(Response::new(ws::ShutdownWorkerResponse::default()))
    }

    async fn query_workflow(
        &self,
        r: Request<ws::QueryWorkflowRequest>,
    ) -> Result<Response<ws::QueryWorkflowResponse>, Status> {
        let budget = query::query_budget(r.metadata());
        self.query(budget, r.into_inner()).await.map(Response::new)
    }

    async fn start_batch_operation(
        &self,
        r: Request<ws::StartBatchOperationRequest>,
    ) -> Result<Response<ws::StartBatchOperationResponse>, Status> {
        self.start_batch(r.into_inner()).await.map(Response::new)
    }

    async fn describe_batch_operation(
        &self,
        r: Request<ws::DescribeBatchOperationRequest>,
    ) -> Result<Response<ws::DescribeBatchOperationResponse>, Status> {
        self.describe_batch(r.into_inner()).await.map(Response::new)
    }

    async fn list_batch_operations(
        &self,
        r: Request<ws::ListBatchOperationsRequest>,
    ) -> Result<Response<ws::ListBatchOperationsResponse>, Status> {
        self.list_batches(r.into_inner()).await.map(Response::new)
    }

    async fn stop_batch_operation(
        &self,
        r: Request<ws::StopBatchOperationRequest>,
    ) -> Result<Response<ws::StopBatchOperationResponse>, Status> {
        self.stop_batch(r.into_inner()).await.map(Response::new)
    }

    async fn create_schedule(
        &self,
        r: Request<ws::CreateScheduleRequest>,
    ) -> Result<Response<ws::CreateScheduleResponse>, Status> {
        self.schedule_create(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn describe_schedule(
        &self,
        r: Request<ws::DescribeScheduleRequest>,
    ) -> Result<Response<ws::DescribeScheduleResponse>, Status> {
        self.schedule_describe(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn update_schedule(
        &self,
        r: Request<ws::UpdateScheduleRequest>,
    ) -> Result<Response<ws::UpdateScheduleResponse>, Status> {
        self.schedule_update(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn patch_schedule(
        &self,
        r: Request<ws::PatchScheduleRequest>,
    ) -> Result<Response<ws::PatchScheduleResponse>, Status> {
        self.schedule_patch(r.into_inner()).await.map(Response::new)
    }

    async fn delete_schedule(
        &self,
        r: Request<ws::DeleteScheduleRequest>,
    ) -> Result<Response<ws::DeleteScheduleResponse>, Status> {
        self.schedule_delete(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_schedule_matching_times(
        &self,
        r: Request<ws::ListScheduleMatchingTimesRequest>,
    ) -> Result<Response<ws::ListScheduleMatchingTimesResponse>, Status> {
        self.schedule_matching_times(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn count_schedules(
        &self,
        r: Request<ws::CountSchedulesRequest>,
    ) -> Result<Response<ws::CountSchedulesResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        self.schedule_count(r.into_inner()).await.map(Response::new)
    }

    async fn start_activity_execution(
        &self,
        r: Request<ws::StartActivityExecutionRequest>,
    ) -> Result<Response<ws::StartActivityExecutionResponse>, Status> {
        Ok(Response::new(self.activity_start(r.into_inner()).await?))
    }

    async fn describe_activity_execution(
        &self,
        r: Request<ws::DescribeActivityExecutionRequest>,
    ) -> Result<Response<ws::DescribeActivityExecutionResponse>, Status> {
        let budget = errors::long_poll_budget(r.metadata(), self.config.max_long_poll);
        Ok(Response::new(
            self.activity_describe(r.into_inner(), budget).await?,
        ))
    }

    async fn poll_activity_execution(
        &self,
        r: Request<ws::PollActivityExecutionRequest>,
    ) -> Result<Response<ws::PollActivityExecutionResponse>, Status> {
        let budget = errors::long_poll_budget(r.metadata(), self.config.max_long_poll);
        Ok(Response::new(
            self.activity_poll(r.into_inner(), budget).await?,
        ))
    }

    async fn request_cancel_activity_execution(
        &self,
        r: Request<ws::RequestCancelActivityExecutionRequest>,
    ) -> Result<Response<ws::RequestCancelActivityExecutionResponse>, Status> {
        Ok(Response::new(
            self.activity_request_cancel(r.into_inner()).await?,
        ))
    }

    async fn terminate_activity_execution(
        &self,
        r: Request<ws::TerminateActivityExecutionRequest>,
    ) -> Result<Response<ws::TerminateActivityExecutionResponse>, Status> {
        Ok(Response::new(
            self.activity_terminate(r.into_inner()).await?,
        ))
    }

    async fn delete_activity_execution(
        &self,
        r: Request<ws::DeleteActivityExecutionRequest>,
    ) -> Result<Response<ws::DeleteActivityExecutionResponse>, Status> {
        Ok(Response::new(self.activity_delete(r.into_inner()).await?))
    }

    async fn list_activity_executions(
        &self,
        r: Request<ws::ListActivityExecutionsRequest>,
    ) -> Result<Response<ws::ListActivityExecutionsResponse>, Status> {
        Ok(Response::new(self.activity_list(r.into_inner()).await?))
    }

    async fn count_activity_executions(
        &self,
        r: Request<ws::CountActivityExecutionsRequest>,
    ) -> Result<Response<ws::CountActivityExecutionsResponse>, Status> {
        Ok(Response::new(self.activity_count(r.into_inner()).await?))
    }

    async fn start_nexus_operation_execution(
        &self,
        r: Request<ws::StartNexusOperationExecutionRequest>,
    ) -> Result<Response<ws::StartNexusOperationExecutionResponse>, Status> {
        Ok(Response::new(
            self.nexus_operation_start(r.into_inner()).await?,
        ))
    }

    async fn describe_nexus_operation_execution(
        &self,
        r: Request<ws::DescribeNexusOperationExecutionRequest>,
    ) -> Result<Response<ws::DescribeNexusOperationExecutionResponse>, Status> {
        let budget = errors::long_poll_budget(r.metadata(), self.config.max_long_poll);
        Ok(Response::new(
            self.nexus_operation_describe(r.into_inner(), budget)
                .await?,
        ))
    }

    async fn poll_nexus_operation_execution(
        &self,
        r: Request<ws::PollNexusOperationExecutionRequest>,
    ) -> Result<Response<ws::PollNexusOperationExecutionResponse>, Status> {
        let budget = errors::long_poll_budget(r.metadata(), self.config.max_long_poll);
        Ok(Response::new(
            self.nexus_operation_poll(r.into_inner(), budget).await?,
        ))
    }

    async fn request_cancel_nexus_operation_execution(
        &self,
        r: Request<ws::RequestCancelNexusOperationExecutionRequest>,
    ) -> Result<Response<ws::RequestCancelNexusOperationExecutionResponse>, Status> {
        Ok(Response::new(
            self.nexus_operation_request_cancel(r.into_inner()).await?,
        ))
    }

    async fn terminate_nexus_operation_execution(
        &self,
        r: Request<ws::TerminateNexusOperationExecutionRequest>,
    ) -> Result<Response<ws::TerminateNexusOperationExecutionResponse>, Status> {
        Ok(Response::new(
            self.nexus_operation_terminate(r.into_inner()).await?,
        ))
    }

    async fn delete_nexus_operation_execution(
        &self,
        r: Request<ws::DeleteNexusOperationExecutionRequest>,
    ) -> Result<Response<ws::DeleteNexusOperationExecutionResponse>, Status> {
        Ok(Response::new(
            self.nexus_operation_delete(r.into_inner()).await?,
        ))
    }

    async fn list_nexus_operation_executions(
        &self,
        r: Request<ws::ListNexusOperationExecutionsRequest>,
    ) -> Result<Response<ws::ListNexusOperationExecutionsResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        Ok(Response::new(
            self.nexus_operation_list(r.into_inner()).await?,
        ))
    }

    async fn count_nexus_operation_executions(
        &self,
        r: Request<ws::CountNexusOperationExecutionsRequest>,
    ) -> Result<Response<ws::CountNexusOperationExecutionsResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        Ok(Response::new(
            self.nexus_operation_count(r.into_inner()).await?,
        ))
    }

    async fn list_schedules(
        &self,
        r: Request<ws::ListSchedulesRequest>,
    ) -> Result<Response<ws::ListSchedulesResponse>, Status> {
        self.admit_visibility(&r.get_ref().namespace)?;
        self.schedule_list(r.into_inner()).await.map(Response::new)
    }

    async fn respond_query_task_completed(
        &self,
        r: Request<ws::RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<ws::RespondQueryTaskCompletedResponse>, Status> {
        self.respond_query(r.into_inner()).await.map(Response::new)
    }

    async fn poll_nexus_task_queue(
        &self,
        r: Request<ws::PollNexusTaskQueueRequest>,
    ) -> Result<Response<ws::PollNexusTaskQueueResponse>, Status> {
        let budget = errors::task_poll_budget(r.metadata(), self.config.max_long_poll)?;
        self.nexus_poll(r.into_inner(), budget)
            .await
            .map(Response::new)
    }

    async fn respond_nexus_task_completed(
        &self,
        r: Request<ws::RespondNexusTaskCompletedRequest>,
    ) -> Result<Response<ws::RespondNexusTaskCompletedResponse>, Status> {
        self.nexus_completed(r.into_inner())
            .await
            .map(Response::new)
    }

    async fn respond_nexus_task_failed(
        &self,
        r: Request<ws::RespondNexusTaskFailedRequest>,
    ) -> Result<Response<ws::RespondNexusTaskFailedResponse>, Status> {
        self.nexus_failed(r.into_inner()).await.map(Response::new)
    }
}
