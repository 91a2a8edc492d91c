//! The history service: owns shards, runs every workflow-changing API as one transaction on
//! one execution, and drives the shards' transfer and timer queues.

mod api;
mod controller;
mod cross_workflow;
mod error;
mod event_log;
pub mod metrics;
mod nexus;
mod queues;
mod retention;
mod shard;
mod system_nexus;
mod tasks;
mod updates;
mod visibility;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use temper_client::HistoryClient;
use temper_persistence::Persistence;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::{Clock, NamespaceId, ShardId, shard_for_workflow};
use temper_workflow::Limits;
use tonic::{Request, Response, Status};

pub use controller::ShardControl;
pub use error::HistoryError;
pub use shard::{
    CacheBudget, DEFAULT_CACHE_BUDGET_BYTES, DEFAULT_MAX_TIMERS, DEFAULT_TIMER_WINDOW,
    MemoryConfig, ShardContext,
};

/// Where a running shard's queues are (see [`HistoryEngine::shard_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Transfer tasks below this id are done.
    pub transfer_ack_task_id: i64,
    /// Timers before (this time, this id) are done.
    pub timer_ack_fire_time_ms: i64,
    pub timer_ack_task_id: i64,
    /// Tasks loaded and not done yet.
    pub transfer_pending: i64,
    pub timers_pending: i64,
    /// Commits waiting for the shard writer.
    pub queued_commits: i64,
}

/// History settings.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    pub num_shards: u32,
    /// Written into the shard row of shards this node owns.
    pub owner: String,
    pub limits: Limits,
    /// The run cache's budget and the timer window.
    pub memory: MemoryConfig,
}

/// The history service of one node.
pub struct HistoryEngine {
    config: HistoryConfig,
    persistence: Persistence,
    clock: Arc<dyn Clock>,
    shards: RwLock<HashMap<ShardId, Arc<ShardContext>>>,
    /// The shards this node should own: all of them on a single node, the ring's share in a
    /// cluster.
    targets: RwLock<BTreeSet<ShardId>>,
    /// Held while shards are acquired or released, so two of those never race.
    control: tokio::sync::Mutex<()>,
    /// How the controller keeps shards (the read lease of the shards it acquires).
    shard_control: RwLock<ShardControl>,
    /// Whether this node may take shards it does not run (see
    /// [`HistoryEngine::set_acquiring`]).
    acquiring: std::sync::atomic::AtomicBool,
    /// Namespace retention, shared by the shards.
    retention: Arc<retention::Retention>,
    /// The engine's own work (the shard controller); each shard's set is a child of it.
    tasks: tasks::TaskSet,
    /// This engine, for the queues' calls to other workflows (children, external signals).
    me: std::sync::Weak<HistoryEngine>,
    /// Set in a cluster: routes those calls to the node that owns the target's shard.
    remote: std::sync::OnceLock<HistoryClient>,
    /// The cluster's Nexus endpoints (where operations' requests go).
    pub(crate) nexus_endpoints: Arc<temper_client::nexus_endpoints::NexusEndpoints>,
}

impl HistoryEngine {
    pub fn new(
        config: HistoryConfig,
        persistence: Persistence,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let retention = Arc::new(retention::Retention::new(persistence.namespaces.clone()));
        let nexus_endpoints = Arc::new(temper_client::nexus_endpoints::NexusEndpoints::new(
            persistence.nexus_endpoints.clone(),
            clock.clone(),
            temper_client::nexus_endpoints::DEFAULT_REFRESH,
        ));
        Arc::new_cyclic(|me| Self {
            nexus_endpoints,
            config,
            retention,
            persistence,
            clock,
            shards: RwLock::new(HashMap::new()),
            targets: RwLock::new(BTreeSet::new()),
            control: tokio::sync::Mutex::new(()),
            shard_control: RwLock::new(ShardControl::default()),
            acquiring: std::sync::atomic::AtomicBool::new(true),
            tasks: tasks::TaskSet::root(tracing::debug_span!(parent: None, "history")),
            me: me.clone(),
            remote: std::sync::OnceLock::new(),
        })
    }

    /// Queue positions of a shard this node runs; `None` if it does not run it.
    pub fn shard_stats(&self, id: ShardId) -> Option<ShardStats> {
        use std::sync::atomic::Ordering::Relaxed;
        let shards = self.shards.read().expect("shard map poisoned");
        let s = shards.get(&id).filter(|s| !s.cancel.is_cancelled())?;
        Some(ShardStats {
            transfer_ack_task_id: s.stats.transfer_ack_task_id.load(Relaxed),
            timer_ack_fire_time_ms: s.stats.timer_ack_fire_time_ms.load(Relaxed),
            timer_ack_task_id: s.stats.timer_ack_task_id.load(Relaxed),
            transfer_pending: s.stats.transfer_pending.load(Relaxed),
            timers_pending: s.stats.timers_pending.load(Relaxed),
            queued_commits: s.queued_commits() as i64,
        })
    }

    /// Stop every shard and wait for their tasks and the engine's own.
    pub async fn shutdown(&self) {
        // Cancels the shards too (their sets are children of the engine's), and waits for
        // the controller first: it may be acquiring a shard, which then lands in the map.
        self.tasks.stop().await;
        // And any `set_owned_shards` in flight.
        let _serial = self.control.lock().await;
        let shards: Vec<Arc<ShardContext>> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .values()
            .cloned()
            .collect();
        futures::future::join_all(shards.iter().map(|s| s.stop())).await;
        self.shards.write().expect("shard map poisoned").clear();
    }

    /// Route calls to other workflows through `client` instead of this engine.
    pub fn set_history_client(&self, client: HistoryClient) {
        let _ = self.remote.set(client);
    }

    /// How this node's queues reach any workflow: the routing client in a cluster, this
    /// engine otherwise. `None` once the engine is gone.
    pub(crate) fn history_client(&self) -> Option<HistoryClient> {
        if let Some(c) = self.remote.get() {
            return Some(c.clone());
        }
        self.me.upgrade().map(|e| e as HistoryClient)
    }

    pub fn num_shards(&self) -> u32 {
        self.config.num_shards
    }

    pub(crate) fn shard(
        &self,
        ns: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Arc<ShardContext>, HistoryError> {
        let id = shard_for_workflow(ns, workflow_id, self.config.num_shards);
        let shards = self.shards.read().expect("shard map poisoned");
        match shards.get(&id) {
            Some(s) if !s.cancel.is_cancelled() => Ok(s.clone()),
            _ => Err(HistoryError::ShardNotOwned(id.0)),
        }
    }
}

fn ns_id(s: &str) -> Result<NamespaceId, Status> {
    if s.is_empty() {
        return Err(Status::invalid_argument("namespace id is not set"));
    }
    Ok(NamespaceId(s.to_string()))
}

fn required<T>(v: Option<T>) -> Result<T, Status> {
    v.ok_or_else(|| Status::invalid_argument("request is not set"))
}

#[tonic::async_trait]
impl temper_client::HistoryService for HistoryEngine {
    async fn start_workflow_execution(
        &self,
        request: Request<internal::StartWorkflowExecutionRequest>,
    ) -> Result<Response<ws::StartWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        let origin = api::start::origin_of(r.parent, r.scheduled_by);
        Ok(Response::new(
            api::start::start(self, &ns, required(r.request)?, origin).await?,
        ))
    }

    async fn record_child_execution_completed(
        &self,
        request: Request<internal::RecordChildExecutionCompletedRequest>,
    ) -> Result<Response<internal::RecordChildExecutionCompletedResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::children::record_completed(self, &ns, r).await?;
        Ok(Response::new(
            internal::RecordChildExecutionCompletedResponse::default(),
        ))
    }

    async fn schedule_call(
        &self,
        request: Request<internal::ScheduleCallRequest>,
    ) -> Result<Response<internal::ScheduleCallResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(api::schedule::call(self, &ns, r).await?))
    }

    async fn complete_nexus_operation(
        &self,
        request: Request<internal::CompleteNexusOperationRequest>,
    ) -> Result<Response<internal::CompleteNexusOperationResponse>, Status> {
        nexus::complete(self, request.into_inner()).await?;
        Ok(Response::new(Default::default()))
    }

    async fn activity_execution_call(
        &self,
        request: Request<internal::ActivityExecutionCallRequest>,
    ) -> Result<Response<internal::ActivityExecutionCallResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::standalone_activity::call(self, &ns, r).await?,
        ))
    }

    async fn nexus_operation_execution_call(
        &self,
        request: Request<internal::NexusOperationExecutionCallRequest>,
    ) -> Result<Response<internal::NexusOperationExecutionCallResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::standalone_nexus::call(self, &ns, r).await?,
        ))
    }

    async fn reset_workflow_execution(
        &self,
        request: Request<internal::ResetWorkflowExecutionRequest>,
    ) -> Result<Response<ws::ResetWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::reset::reset(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn delete_workflow_execution(
        &self,
        request: Request<internal::DeleteWorkflowExecutionRequest>,
    ) -> Result<Response<ws::DeleteWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::delete::delete(self, &ns, required(r.request)?).await?;
        Ok(Response::new(ws::DeleteWorkflowExecutionResponse::default()))
    }

    async fn record_workflow_task_started(
        &self,
        request: Request<internal::RecordWorkflowTaskStartedRequest>,
    ) -> Result<Response<internal::RecordWorkflowTaskStartedResponse>, Status> {
        Ok(Response::new(
            api::workflow_task::record_started(self, request.into_inner()).await?,
        ))
    }

    async fn record_activity_task_started(
        &self,
        request: Request<internal::RecordActivityTaskStartedRequest>,
    ) -> Result<Response<internal::RecordActivityTaskStartedResponse>, Status> {
        Ok(Response::new(
            api::activity::record_started(self, request.into_inner()).await?,
        ))
    }

    async fn respond_workflow_task_completed(
        &self,
        request: Request<internal::RespondWorkflowTaskCompletedRequest>,
    ) -> Result<Response<ws::RespondWorkflowTaskCompletedResponse>, Status> {
        let r = request.into_inner();
        let names = r.search_attributes.map(|s| s.names);
        Ok(Response::new(
            api::workflow_task::completed(self, required(r.request)?, names).await?,
        ))
    }

    async fn respond_workflow_task_failed(
        &self,
        request: Request<internal::RespondWorkflowTaskFailedRequest>,
    ) -> Result<Response<ws::RespondWorkflowTaskFailedResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(
            api::workflow_task::failed(self, required(r.request)?).await?,
        ))
    }

    async fn respond_activity_task_completed(
        &self,
        request: Request<internal::RespondActivityTaskCompletedRequest>,
    ) -> Result<Response<ws::RespondActivityTaskCompletedResponse>, Status> {
        let r = request.into_inner();
        let req = required(r.request)?;
        api::activity::respond(
            self,
            &r.namespace_id,
            &req.task_token,
            r.by_id,
            api::activity::Report::Completed(req.result, req.identity),
        )
        .await?;
        Ok(Response::new(
            ws::RespondActivityTaskCompletedResponse::default(),
        ))
    }

    async fn respond_activity_task_failed(
        &self,
        request: Request<internal::RespondActivityTaskFailedRequest>,
    ) -> Result<Response<ws::RespondActivityTaskFailedResponse>, Status> {
        let r = request.into_inner();
        let req = required(r.request)?;
        let details = req.last_heartbeat_details;
        api::activity::respond(
            self,
            &r.namespace_id,
            &req.task_token,
            r.by_id,
            api::activity::Report::Failed(req.failure.unwrap_or_default(), req.identity, details),
        )
        .await?;
        Ok(Response::new(
            ws::RespondActivityTaskFailedResponse::default(),
        ))
    }

    async fn respond_activity_task_canceled(
        &self,
        request: Request<internal::RespondActivityTaskCanceledRequest>,
    ) -> Result<Response<ws::RespondActivityTaskCanceledResponse>, Status> {
        let r = request.into_inner();
        let req = required(r.request)?;
        api::activity::respond(
            self,
            &r.namespace_id,
            &req.task_token,
            r.by_id,
            api::activity::Report::Canceled(req.details, req.identity),
        )
        .await?;
        Ok(Response::new(
            ws::RespondActivityTaskCanceledResponse::default(),
        ))
    }

    async fn record_activity_task_heartbeat(
        &self,
        request: Request<internal::RecordActivityTaskHeartbeatRequest>,
    ) -> Result<Response<ws::RecordActivityTaskHeartbeatResponse>, Status> {
        let r = request.into_inner();
        let req = required(r.request)?;
        let answer = api::activity::respond(
            self,
            &r.namespace_id,
            &req.task_token,
            r.by_id,
            api::activity::Report::Heartbeat(req.details),
        )
        .await?;
        Ok(Response::new(ws::RecordActivityTaskHeartbeatResponse {
            cancel_requested: answer.cancel_requested,
            activity_paused: answer.paused,
            activity_reset: answer.reset,
        }))
    }

    async fn pause_activity(
        &self,
        request: Request<internal::PauseActivityRequest>,
    ) -> Result<Response<ws::PauseActivityResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::activity_ops::pause(self, &ns, required(r.request)?).await?;
        Ok(Response::new(ws::PauseActivityResponse::default()))
    }

    async fn unpause_activity(
        &self,
        request: Request<internal::UnpauseActivityRequest>,
    ) -> Result<Response<ws::UnpauseActivityResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::activity_ops::unpause(self, &ns, required(r.request)?).await?;
        Ok(Response::new(ws::UnpauseActivityResponse::default()))
    }

    async fn reset_activity(
        &self,
        request: Request<internal::ResetActivityRequest>,
    ) -> Result<Response<ws::ResetActivityResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::activity_ops::reset(self, &ns, required(r.request)?).await?;
        Ok(Response::new(ws::ResetActivityResponse::default()))
    }

    async fn update_activity_options(
        &self,
        request: Request<internal::UpdateActivityOptionsRequest>,
    ) -> Result<Response<ws::UpdateActivityOptionsResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        let activity_options =
            api::activity_ops::update_options(self, &ns, required(r.request)?).await?;
        Ok(Response::new(ws::UpdateActivityOptionsResponse {
            activity_options: Some(activity_options),
        }))
    }

    async fn get_workflow_execution_history(
        &self,
        request: Request<internal::GetWorkflowExecutionHistoryRequest>,
    ) -> Result<Response<ws::GetWorkflowExecutionHistoryResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::history::get(self, &ns, required(r.request)?, r.long_poll_timeout_ms).await?,
        ))
    }

    async fn get_workflow_execution_history_reverse(
        &self,
        request: Request<internal::GetWorkflowExecutionHistoryReverseRequest>,
    ) -> Result<Response<ws::GetWorkflowExecutionHistoryReverseResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::history::get_reverse(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn describe_workflow_execution(
        &self,
        request: Request<internal::DescribeWorkflowExecutionRequest>,
    ) -> Result<Response<ws::DescribeWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::describe::describe(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn request_cancel_workflow_execution(
        &self,
        request: Request<internal::RequestCancelWorkflowExecutionRequest>,
    ) -> Result<Response<ws::RequestCancelWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        let external = r
            .external_execution
            .map(|execution| api::control::External {
                execution,
                initiated_event_id: r.external_initiated_event_id,
                child_workflow_only: r.child_workflow_only,
            });
        api::control::request_cancel(self, &ns, required(r.request)?, external).await?;
        Ok(Response::new(
            ws::RequestCancelWorkflowExecutionResponse::default(),
        ))
    }

    async fn terminate_workflow_execution(
        &self,
        request: Request<internal::TerminateWorkflowExecutionRequest>,
    ) -> Result<Response<ws::TerminateWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::control::terminate(self, &ns, required(r.request)?).await?;
        Ok(Response::new(
            ws::TerminateWorkflowExecutionResponse::default(),
        ))
    }

    async fn update_workflow_execution_options(
        &self,
        request: Request<internal::UpdateWorkflowExecutionOptionsRequest>,
    ) -> Result<Response<ws::UpdateWorkflowExecutionOptionsResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::control::update_options(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn reset_sticky_task_queue(
        &self,
        request: Request<internal::ResetStickyTaskQueueRequest>,
    ) -> Result<Response<ws::ResetStickyTaskQueueResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        api::control::reset_sticky(self, &ns, required(r.request)?).await?;
        Ok(Response::new(ws::ResetStickyTaskQueueResponse::default()))
    }

    async fn signal_with_start_workflow_execution(
        &self,
        request: Request<internal::SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<Response<ws::SignalWithStartWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::start::signal_with_start(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn signal_workflow_execution(
        &self,
        request: Request<internal::SignalWorkflowExecutionRequest>,
    ) -> Result<Response<ws::SignalWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        let external = r
            .external_execution
            .map(|execution| api::control::External {
                execution,
                initiated_event_id: 0,
                child_workflow_only: r.child_workflow_only,
            });
        Ok(Response::new(
            api::control::signal(self, &ns, required(r.request)?, external).await?,
        ))
    }

    async fn prepare_query_task(
        &self,
        request: Request<internal::PrepareQueryTaskRequest>,
    ) -> Result<Response<internal::PrepareQueryTaskResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(api::query::prepare(self, &ns, r).await?))
    }

    async fn update_workflow_execution(
        &self,
        request: Request<internal::UpdateWorkflowExecutionRequest>,
    ) -> Result<Response<ws::UpdateWorkflowExecutionResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::update::update_workflow(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn execute_multi_operation(
        &self,
        request: Request<internal::ExecuteMultiOperationRequest>,
    ) -> Result<Response<ws::ExecuteMultiOperationResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::update_with_start::execute(self, &ns, required(r.request)?).await?,
        ))
    }

    async fn poll_workflow_execution_update(
        &self,
        request: Request<internal::PollWorkflowExecutionUpdateRequest>,
    ) -> Result<Response<ws::PollWorkflowExecutionUpdateResponse>, Status> {
        let r = request.into_inner();
        let ns = ns_id(&r.namespace_id)?;
        Ok(Response::new(
            api::update::poll(self, &ns, required(r.request)?).await?,
        ))
    }
}
