//! The public handle on a node's matching engine.

use std::sync::Arc;

use temper_client::{HistoryClient, MatchingClient, MatchingService};
use temper_persistence::TaskQueueStore;
use temper_proto::internal::v1::{
    AddActivityTaskRequest, AddActivityTaskResponse, AddWorkflowTaskRequest,
    AddWorkflowTaskResponse, DescribeTaskQueueRequest, PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest, QueryWorkflowRequest, QueryWorkflowResponse,
    RespondQueryTaskCompletedRequest, RespondQueryTaskCompletedResponse, ShutdownWorkerRequest,
    ShutdownWorkerResponse,
};
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeTaskQueueResponse, PollActivityTaskQueueResponse, PollWorkflowTaskQueueResponse,
};
use temper_types::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::config::MatchingConfig;
use crate::engine::Core;
use crate::key::QueueKey;

/// Matching for one node: implements the internal `MatchingService`. Dropping it shuts it
/// down.
pub struct MatchingEngine {
    pub(crate) core: Arc<Core>,
}

impl MatchingEngine {
    /// An engine over `store` (backlogs and leases) that starts tasks through `history`.
    /// Queues are created on first use; nothing runs until the first call.
    pub fn new(
        store: Arc<dyn TaskQueueStore>,
        history: HistoryClient,
        config: MatchingConfig,
    ) -> Self {
        Self::with_clock(store, history, config, Arc::new(SystemClock))
    }

    /// Like [`MatchingEngine::new`], with the wall clock used for task create and expiry
    /// times and poller access times.
    pub fn with_clock(
        store: Arc<dyn TaskQueueStore>,
        history: HistoryClient,
        config: MatchingConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            core: Core::new(store, history, config, clock),
        }
    }

    /// Send what partitions forward to their root (and DescribeTaskQueue's fan-out to the
    /// partitions) through `client`, which must route each call to the owner of exactly the
    /// partition it names when it carries [`temper_types::FORWARDED_FROM_HEADER`]. Unset,
    /// the engine calls itself (one process owns every partition). Set once, before serving;
    /// a later call is ignored. The client may hold this engine: call
    /// [`MatchingEngine::shutdown`] to stop it then.
    pub fn set_forwarder(&self, client: MatchingClient) {
        if self.core.forwarder.set(client).is_err() {
            tracing::warn!("matching forwarder already set; ignoring the new one");
        }
    }

    /// Route tasks by worker deployment version with `registry` (shared with this process's
    /// frontend) and register versioned pollers' versions in it. Unset, every task goes to
    /// unversioned workers. Set once, before serving.
    pub fn set_deployments(&self, registry: Arc<temper_client::deployments::DeploymentRegistry>) {
        if self.core.deployments.set(registry).is_err() {
            tracing::warn!("matching deployment registry already set; ignoring the new one");
        }
    }

    /// Serve only the partitions `owns` accepts (in a cluster: those the matching ring gives
    /// this node). A call for another partition, or a poll woken because this node lost a
    /// partition's lease, answers `Unavailable` so its caller asks the owner, and a stale
    /// node never takes a partition back. Unset, every partition is served. Set once.
    pub fn set_ownership(&self, owns: impl Fn(&QueueKey) -> bool + Send + Sync + 'static) {
        if self.core.ownership.set(Arc::new(owns)).is_err() {
            tracing::warn!("matching ownership already set; ignoring the new one");
        }
    }

    /// Unload every loaded task queue partition for which `keep` is false (this node no longer
    /// owns it): its waiting polls answer empty at once (workers poll again and reach the new
    /// owner), its backlog reads and forwarding stop, and its in-memory tasks are dropped
    /// (stored ones stay for the next owner; sticky ones are covered by history's
    /// schedule-to-start timer). Adds already writing finish, or fail to their caller.
    pub fn retain_partitions(&self, keep: impl Fn(&QueueKey) -> bool) {
        self.core.retain_partitions(keep);
    }

    /// After the matching ring changed: every loaded root partition has its children loaded
    /// again on their owners (in the background), so that a child that moved serves its
    /// stored backlog without waiting for a poll or an add to land on it.
    pub fn load_children_of_roots(&self) {
        self.core.load_children_of_roots();
    }

    /// Stop: waiting polls answer empty at once, new adds fail with `Unavailable`,
    /// background store work stops. Idempotent.
    pub fn shutdown(&self) {
        self.core.shutdown();
    }

    /// Wait until every background task has ended (after [`MatchingEngine::shutdown`]).
    pub async fn wait_stopped(&self) {
        self.core.wait_stopped().await;
    }

    /// Cancelled when the engine shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.core.shutdown_token()
    }
}

impl Drop for MatchingEngine {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

#[async_trait::async_trait]
impl MatchingService for MatchingEngine {
    async fn add_workflow_task(
        &self,
        request: Request<AddWorkflowTaskRequest>,
    ) -> Result<Response<AddWorkflowTaskResponse>, Status> {
        self.core.add_workflow_task(request).await
    }

    async fn add_activity_task(
        &self,
        request: Request<AddActivityTaskRequest>,
    ) -> Result<Response<AddActivityTaskResponse>, Status> {
        self.core.add_activity_task(request).await
    }

    async fn poll_workflow_task_queue(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        self.core.poll_workflow_task_queue(request).await
    }

    async fn poll_activity_task_queue(
        &self,
        request: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        self.core.poll_activity_task_queue(request).await
    }

    async fn describe_task_queue(
        &self,
        request: Request<DescribeTaskQueueRequest>,
    ) -> Result<Response<DescribeTaskQueueResponse>, Status> {
        self.core.describe_task_queue(request).await
    }

    async fn shutdown_worker(
        &self,
        request: Request<ShutdownWorkerRequest>,
    ) -> Result<Response<ShutdownWorkerResponse>, Status> {
        self.core.shutdown_worker(request).await
    }

    async fn query_workflow(
        &self,
        request: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        self.core.query_workflow(request).await
    }

    async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<RespondQueryTaskCompletedResponse>, Status> {
        self.core.respond_query_task_completed(request).await
    }

    async fn dispatch_nexus_task(
        &self,
        request: Request<temper_proto::internal::v1::DispatchNexusTaskRequest>,
    ) -> Result<Response<temper_proto::internal::v1::DispatchNexusTaskResponse>, Status> {
        self.core.dispatch_nexus_task(request).await
    }

    async fn poll_nexus_task_queue(
        &self,
        request: Request<temper_proto::internal::v1::PollNexusTaskQueueRequest>,
    ) -> Result<
        Response<temper_proto::temporal::api::workflowservice::v1::PollNexusTaskQueueResponse>,
        Status,
    > {
        self.core.poll_nexus_task_queue(request).await
    }

    async fn respond_nexus_task_completed(
        &self,
        request: Request<temper_proto::internal::v1::RespondNexusTaskCompletedRequest>,
    ) -> Result<Response<temper_proto::internal::v1::RespondNexusTaskCompletedResponse>, Status>
    {
        self.core.respond_nexus_task_completed(request).await
    }

    async fn respond_nexus_task_failed(
        &self,
        request: Request<temper_proto::internal::v1::RespondNexusTaskFailedRequest>,
    ) -> Result<Response<temper_proto::internal::v1::RespondNexusTaskFailedResponse>, Status> {
        self.core.respond_nexus_task_failed(request).await
    }

    async fn force_load_task_queue_partition(
        &self,
        request: Request<temper_proto::internal::v1::ForceLoadTaskQueuePartitionRequest>,
    ) -> Result<Response<temper_proto::internal::v1::ForceLoadTaskQueuePartitionResponse>, Status>
    {
        self.core.force_load_task_queue_partition(request).await
    }
}
