//! The history service: owns shards, runs every workflow-changing API as one transaction on
//! one execution, and drives the shards' transfer and timer queues.

mod api;
mod error;
mod event_log;
pub mod metrics;
mod queues;
mod relations;
mod retention;
mod shard;
mod tasks;
mod updates;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use temper_client::{HistoryClient, MatchingClient};
use temper_persistence::{Persistence, ShardRecord};
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::{Clock, NamespaceId, RangeId, ShardId, TaskIdAllocator, shard_for_workflow};
use temper_workflow::Limits;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

pub use error::HistoryError;
pub use shard::ShardContext;

/// How the shard controller of a cluster node keeps its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardControl {
    /// How often it checks that its shards are still its own (one read of each shard's row
    /// in the store) and re-acquires stopped ones.
    pub check_interval: std::time::Duration,
    /// How long a shard that stopped waits before this node takes it again.
    pub reacquire_delay: std::time::Duration,
}

impl ShardControl {
    /// Checks every `interval`; a stopped shard is taken again after three of them.
    pub fn every(interval: std::time::Duration) -> Self {
        Self {
            check_interval: interval,
            reacquire_delay: interval * 3,
        }
    }
}

impl Default for ShardControl {
    fn default() -> Self {
        Self::every(std::time::Duration::from_secs(1))
    }
}

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
    /// Namespace retention, shared by the shards.
    retention: Arc<retention::Retention>,
    /// The engine's own work (the shard controller); each shard's set is a child of it.
    tasks: tasks::TaskSet,
    /// This engine, for the queues' calls to other workflows (children, external signals).
    me: std::sync::Weak<HistoryEngine>,
    /// Set in a cluster: routes those calls to the node that owns the target's shard.
    remote: std::sync::OnceLock<HistoryClient>,
}

impl HistoryEngine {
    pub fn new(
        config: HistoryConfig,
        persistence: Persistence,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let retention = Arc::new(retention::Retention::new(persistence.namespaces.clone()));
        Arc::new_cyclic(|me| Self {
            config,
            retention,
            persistence,
            clock,
            shards: RwLock::new(HashMap::new()),
            targets: RwLock::new(BTreeSet::new()),
            control: tokio::sync::Mutex::new(()),
            tasks: tasks::TaskSet::root(tracing::debug_span!(parent: None, "history")),
            me: me.clone(),
            remote: std::sync::OnceLock::new(),
        })
    }

    /// Acquire every shard (single-node mode) and start their queues; then keep them: a
    /// shard that stopped (its store calls failed, or another node fenced it) is acquired
    /// again.
    pub async fn acquire_all_shards(
        self: &Arc<Self>,
        matching: MatchingClient,
    ) -> Result<(), HistoryError> {
        let all: BTreeSet<ShardId> = (1..=self.config.num_shards).map(ShardId).collect();
        *self.targets.write().expect("targets poisoned") = all.clone();
        for id in all {
            self.acquire_shard(id, matching.clone()).await?;
        }
        self.keep_shards(matching, ShardControl::default());
        Ok(())
    }

    /// Cluster mode: own no shard until told which ([`Self::set_owned_shards`]), and from
    /// then on re-acquire any owned shard that stopped.
    pub fn start_shard_controller(
        self: &Arc<Self>,
        matching: MatchingClient,
        control: ShardControl,
    ) {
        self.keep_shards(matching, control);
    }

    /// Own exactly `shards` from now on (the shards the ring gives this node): release the
    /// others at once (their writers stop; a write already in flight is still fenced by the
    /// range id) and acquire the missing ones, each by a CAS that fences the previous owner.
    /// A shard that cannot be acquired now is retried by the controller.
    pub async fn set_owned_shards(
        self: &Arc<Self>,
        shards: BTreeSet<ShardId>,
        matching: MatchingClient,
    ) {
        if self.tasks.token().is_cancelled() {
            return;
        }
        let _serial = self.control.lock().await;
        *self.targets.write().expect("targets poisoned") = shards.clone();
        let running: Vec<ShardId> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .keys()
            .copied()
            .collect();
        let leaving = running.into_iter().filter(|id| !shards.contains(id));
        futures::future::join_all(leaving.map(|id| self.release_shard(id))).await;
        let missing = self.stopped_shards();
        let acquired = futures::future::join_all(missing.into_iter().map(|id| {
            let matching = matching.clone();
            async move { (id, self.acquire_shard(id, matching).await) }
        }))
        .await;
        for (id, r) in acquired {
            if let Err(e) = r {
                tracing::warn!(shard = %id, error = %e, "acquiring shard failed; will retry");
            }
        }
    }

    /// Stop a shard this node no longer owns: calls for it answer "not owned" at once, so
    /// callers look for the new owner; its writer, queues and every task they started end
    /// before this returns, so none of them runs once another node may own the shard; then
    /// its cache goes away.
    pub async fn release_shard(&self, id: ShardId) {
        let running = self
            .shards
            .read()
            .expect("shard map poisoned")
            .get(&id)
            .cloned();
        if let Some(ctx) = running {
            ctx.stop().await;
            let mut shards = self.shards.write().expect("shard map poisoned");
            // Unless the shard was acquired again meanwhile.
            if shards.get(&id).is_some_and(|s| Arc::ptr_eq(s, &ctx)) {
                shards.remove(&id);
            }
            drop(shards);
            tracing::info!(shard = %id, "released shard");
        }
        self.publish_gauges();
    }

    /// Set the node-wide gauges: shards running, and their queues' pending tasks.
    fn publish_gauges(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let shards = self.shards.read().expect("shard map poisoned");
        let (mut owned, mut transfer, mut timers) = (0usize, 0i64, 0i64);
        for s in shards.values().filter(|s| !s.cancel.is_cancelled()) {
            owned += 1;
            transfer += s.stats.transfer_pending.load(Relaxed);
            timers += s.stats.timers_pending.load(Relaxed);
        }
        ::metrics::gauge!(metrics::SHARDS_OWNED).set(owned as f64);
        ::metrics::gauge!(metrics::TRANSFER_PENDING).set(transfer as f64);
        ::metrics::gauge!(metrics::TIMER_PENDING).set(timers as f64);
    }

    /// Release every shard (graceful leave) and own none from now on; returns once the
    /// shards' work has ended.
    pub async fn release_all_shards(&self) {
        let _serial = self.control.lock().await;
        self.targets.write().expect("targets poisoned").clear();
        let ids: Vec<ShardId> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .keys()
            .copied()
            .collect();
        futures::future::join_all(ids.into_iter().map(|id| self.release_shard(id))).await;
    }

    /// The shards this node runs now (acquired and not stopped), in order.
    pub fn owned_shards(&self) -> Vec<ShardId> {
        let shards = self.shards.read().expect("shard map poisoned");
        let mut ids: Vec<ShardId> = shards
            .iter()
            .filter(|(_, s)| !s.cancel.is_cancelled())
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
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

    /// Every [`ShardControl::check_interval`]: stop any shard another node has taken (its range id
    /// in the store moved past ours: this node's ring was behind, or it was paused), so it
    /// never answers from a stale cache; and acquire again the shards this node should own
    /// but does not run. A shard that stopped is taken again only after
    /// [`ShardControl::reacquire_delay`]: if another node took it, this node's ring is probably behind and
    /// will move the shard away within that time, instead of both nodes taking it in turn.
    fn keep_shards(self: &Arc<Self>, matching: MatchingClient, control: ShardControl) {
        let engine = Arc::downgrade(self);
        let cancel = self.tasks.token().clone();
        // Aware of cancellation, not dropped by it: a shard it is acquiring gets into the
        // shard map, where shutdown finds and stops it.
        self.tasks.spawn_aware("shard_controller", async move {
            let mut tick = tokio::time::interval(control.check_interval);
            let mut stopped_since: HashMap<ShardId, tokio::time::Instant> = HashMap::new();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(engine) = engine.upgrade() else { return };
                engine.stop_stale_shards().await;
                engine.publish_gauges();
                let _serial = engine.control.lock().await;
                let now = tokio::time::Instant::now();
                let stopped = engine.stopped_shards();
                stopped_since.retain(|id, _| stopped.contains(id));
                for id in stopped {
                    let was_running = engine
                        .shards
                        .read()
                        .expect("shard map poisoned")
                        .contains_key(&id);
                    if was_running {
                        let since = *stopped_since.entry(id).or_insert(now);
                        if now.duration_since(since) < control.reacquire_delay {
                            continue;
                        }
                    }
                    match engine.acquire_shard(id, matching.clone()).await {
                        Ok(()) => {
                            stopped_since.remove(&id);
                            tracing::info!(shard = %id, "re-acquired stopped shard");
                        }
                        Err(e) => tracing::warn!(shard = %id, error = %e, "re-acquiring shard failed; will retry"),
                    }
                }
            }
        });
    }

    /// Stop every running shard whose range id in the store is no longer the one it holds.
    async fn stop_stale_shards(&self) {
        let running: Vec<Arc<ShardContext>> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .values()
            .filter(|s| !s.cancel.is_cancelled())
            .cloned()
            .collect();
        for ctx in running {
            let held = ctx.range.load(std::sync::atomic::Ordering::Acquire);
            match self
                .persistence
                .executions
                .get_or_create_shard(ctx.shard_id, &[])
                .await
            {
                Ok(rec) if rec.range_id.0 != held => {
                    tracing::warn!(shard = %ctx.shard_id, held, store = rec.range_id.0,
                        "another node took this shard; stopping it");
                    ctx.stop().await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(shard = %ctx.shard_id, error = %e, "checking shard ownership failed")
                }
            }
        }
    }

    /// Shards this node should own but does not run.
    fn stopped_shards(&self) -> Vec<ShardId> {
        if self.tasks.token().is_cancelled() {
            return Vec::new();
        }
        let targets = self.targets.read().expect("targets poisoned").clone();
        let shards = self.shards.read().expect("shard map poisoned");
        targets
            .into_iter()
            .filter(|id| shards.get(id).is_none_or(|s| s.cancel.is_cancelled()))
            .collect()
    }

    /// Take ownership of one shard: bump its range id by CAS, then load and run its queues.
    /// A context this node still has for the shard (stopped, or running with a range id
    /// about to be stale) ends all its work first, so it never runs beside the new one.
    pub async fn acquire_shard(
        &self,
        shard_id: ShardId,
        matching: MatchingClient,
    ) -> Result<(), HistoryError> {
        let previous = self
            .shards
            .read()
            .expect("shard map poisoned")
            .get(&shard_id)
            .cloned();
        if let Some(old) = previous {
            old.stop().await;
        }
        let info = prost::Message::encode_to_vec(&temper_workflow::pb::ShardInfo {
            shard_id: shard_id.0 as i32,
            owner: self.config.owner.clone(),
            ..Default::default()
        });
        let rec = self
            .persistence
            .executions
            .get_or_create_shard(shard_id, &info)
            .await?;
        let new_range = RangeId(rec.range_id.0 + 1);
        self.persistence
            .executions
            .update_shard(
                rec.range_id,
                &ShardRecord {
                    shard_id,
                    range_id: new_range,
                    info: info.clone(),
                },
            )
            .await?;
        let tasks = self.tasks.child(tracing::debug_span!(
            parent: self.tasks.span(),
            "shard",
            shard = %shard_id
        ));
        let cancel = tasks.token().clone();
        let (sinks, receivers) = queues::queue_channels();
        let (tx, rx) = mpsc::channel(4096);
        let ctx = Arc::new(ShardContext::new(
            shard_id,
            self.persistence.clone(),
            self.config.limits.clone(),
            self.clock.clone(),
            tx,
            self.retention.clone(),
            tasks,
            matching.clone(),
        ));
        ctx.range
            .store(new_range.0, std::sync::atomic::Ordering::Release);
        let w = writer::Writer {
            shard_id,
            range: ctx.range.clone(),
            persistence: self.persistence.clone(),
            ids: TaskIdAllocator::new(new_range),
            info,
            sinks: Arc::new(sinks),
            cancel: cancel.clone(),
        };
        ctx.tasks.spawn_aware("shard_writer", w.run(rx));
        let peers = queues::Peers {
            matching,
            engine: self.me.clone(),
        };
        ctx.tasks.spawn(
            "transfer_queue",
            queues::run_transfer(ctx.clone(), peers.clone(), receivers.transfer),
        );
        ctx.tasks.spawn(
            "timer_queue",
            queues::run_timers(ctx.clone(), peers, receivers.timer),
        );
        let previous = self
            .shards
            .write()
            .expect("shard map poisoned")
            .insert(shard_id, ctx);
        if let Some(old) = previous {
            // Acquired concurrently by another call (not under the control lock): its range
            // id is stale now; stop it rather than let it fail write by write.
            old.stop().await;
        }
        tracing::info!(shard = %shard_id, range = %new_range, "acquired shard");
        ::metrics::counter!(metrics::SHARD_ACQUISITIONS).increment(1);
        self.publish_gauges();
        Ok(())
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
        let origin = api::start::origin_of(r.parent);
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
        let cancel_requested = api::activity::respond(
            self,
            &r.namespace_id,
            &req.task_token,
            r.by_id,
            api::activity::Report::Heartbeat(req.details),
        )
        .await?;
        Ok(Response::new(ws::RecordActivityTaskHeartbeatResponse {
            cancel_requested,
            ..Default::default()
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
        api::control::signal(self, &ns, required(r.request)?, external).await?;
        Ok(Response::new(ws::SignalWorkflowExecutionResponse::default()))
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
