//! The matching engine's core: owns the task queue partitions of this node, creates them on
//! first use, and runs adds and polls against them, forwarding between partitions (see
//! `forward`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use temper_client::{HistoryClient, MatchingClient, status};
use temper_persistence::TaskQueueStore;
use temper_proto::internal::v1::{
    RecordActivityTaskStartedRequest, RecordWorkflowTaskStartedRequest,
};
use temper_proto::temporal::api::workflowservice::v1::{
    PollActivityTaskQueueRequest, PollActivityTaskQueueResponse, PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
};
use temper_types::Clock;
use tokio::sync::{OnceCell, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Status;

use crate::config::MatchingConfig;
use crate::error::MatchingError;
use crate::key::{QueueKey, QueueKind};
use crate::pollers::PollerSeen;
use crate::query::PendingQueries;
use crate::queue::{Context, PartitionConfig, TaskQueue, Wait, WriteError};
use crate::task::{Origin, Outcome, Task, TaskInfo};

type QueueCell = Arc<OnceCell<Arc<TaskQueue>>>;

/// Whether this node owns a partition now.
pub(crate) type Ownership = Arc<dyn Fn(&QueueKey) -> bool + Send + Sync>;

struct Registry {
    queues: HashMap<QueueKey, QueueCell>,
    last_sweep: Instant,
    /// When the backlog gauge was last set, and the label sets it set.
    last_gauge: Instant,
    gauged: HashMap<(String, crate::key::QueueType), i64>,
}

/// Matching for one node, behind the public [`crate::MatchingEngine`] handle; implements the
/// internal `MatchingService` too, which is how it forwards to itself in one process.
pub(crate) struct Core {
    pub(crate) ctx: Arc<Context>,
    history: HistoryClient,
    registry: Mutex<Registry>,
    /// QueryWorkflow calls waiting for their answer, by query task id.
    pub(crate) queries: PendingQueries,
    /// DispatchNexusTask calls waiting for the handler's answer, by Nexus task id.
    pub(crate) nexus: crate::nexus::PendingNexusTasks,
    /// Where partitions forward to their root; unset: this engine.
    pub(crate) forwarder: OnceLock<MatchingClient>,
    /// Which partitions this node may serve (the matching ring's answer); unset: all.
    pub(crate) ownership: OnceLock<Ownership>,
    /// Worker deployments (worker versioning); unset: every task goes to unversioned workers.
    pub(crate) deployments: OnceLock<Arc<temper_client::deployments::DeploymentRegistry>>,
    /// This core, for background work and forwarding to itself.
    pub(crate) me: Weak<Core>,
}

/// A poll, workflow or activity, as history's record call needs it.
pub(crate) enum PollRequest {
    Workflow(PollWorkflowTaskQueueRequest),
    Activity(PollActivityTaskQueueRequest, Sdk),
    Nexus(temper_proto::temporal::api::workflowservice::v1::PollNexusTaskQueueRequest),
}

/// The SDK a worker says it runs (its `client-name` and `client-version` headers).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sdk {
    pub name: String,
    pub version: String,
}

/// What history built for a started task.
#[derive(Debug)]
pub(crate) enum PollResponse {
    Workflow(PollWorkflowTaskQueueResponse),
    Activity(PollActivityTaskQueueResponse),
    Nexus(temper_proto::temporal::api::workflowservice::v1::PollNexusTaskQueueResponse),
}

/// One poll call, validated.
pub(crate) struct Poll {
    pub key: QueueKey,
    pub poller: PollerSeen,
    pub poller_id: String,
    pub worker_instance_key: String,
    pub timeout: Duration,
    pub request: PollRequest,
    /// Forwarded by another partition of the queue: never forwarded again.
    pub forwarded: bool,
}

impl Core {
    pub(crate) fn new(
        store: Arc<dyn TaskQueueStore>,
        history: HistoryClient,
        config: MatchingConfig,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            ctx: Arc::new(Context {
                store,
                clock,
                config,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
            history,
            registry: Mutex::new(Registry {
                queues: HashMap::new(),
                last_sweep: Instant::now(),
                last_gauge: Instant::now(),
                gauged: HashMap::new(),
            }),
            queries: PendingQueries::default(),
            nexus: Default::default(),
            forwarder: OnceLock::new(),
            ownership: OnceLock::new(),
            deployments: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Stop: waiting polls answer empty at once, new adds fail with `Unavailable`,
    /// background store work stops. Idempotent.
    pub(crate) fn shutdown(&self) {
        self.ctx.shutdown.cancel();
        self.ctx.tasks.close();
    }

    /// Wait until every background task has ended (after [`Core::shutdown`]).
    pub(crate) async fn wait_stopped(&self) {
        self.ctx.tasks.wait().await;
    }

    /// Cancelled when the engine shuts down.
    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.ctx.shutdown.clone()
    }

    pub(crate) fn config(&self) -> &MatchingConfig {
        &self.ctx.config
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.ctx.clock.as_ref()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cell that holds (or will hold) a queue, unloading idle queues now and then.
    fn cell(&self, key: &QueueKey) -> QueueCell {
        let mut reg = self.registry();
        self.sweep_locked(&mut reg);
        reg.queues.entry(key.clone()).or_default().clone()
    }

    fn sweep_locked(&self, reg: &mut Registry) {
        let ttl = self.ctx.config.idle_queue_ttl;
        let every = ttl.min(Duration::from_secs(60));
        let now = Instant::now();
        if now.saturating_duration_since(reg.last_sweep) < every {
            return;
        }
        reg.last_sweep = now;
        reg.queues.retain(|key, cell| match cell.get() {
            Some(queue) => {
                if queue.is_idle(now, ttl) {
                    tracing::debug!(queue = %key, "unloading idle task queue");
                    queue.close();
                    false
                } else {
                    true
                }
            }
            // Keep a cell someone is opening; drop one whose opener gave up.
            None => Arc::strong_count(cell) > 1,
        });
    }

    /// Every [`crate::metrics::BACKLOG_GAUGE_EVERY`], set the backlog gauge. The queues'
    /// counts are read after the registry's lock is released.
    fn maybe_publish_backlog(&self) {
        let queues: Vec<Arc<TaskQueue>> = {
            let mut reg = self.registry();
            let now = Instant::now();
            if now.saturating_duration_since(reg.last_gauge) < crate::metrics::BACKLOG_GAUGE_EVERY {
                return;
            }
            reg.last_gauge = now;
            reg.queues
                .values()
                .filter_map(|c| c.get().cloned())
                .collect()
        };
        let counts: Vec<(QueueKey, i64)> = queues
            .iter()
            .map(|q| (q.key().clone(), q.backlog_count()))
            .collect();
        let mut previous = std::mem::take(&mut self.registry().gauged);
        crate::metrics::publish_backlog(counts.into_iter(), &mut previous);
        self.registry().gauged = previous;
    }

    /// Forget a dead queue so the next use re-creates it.
    fn forget(&self, key: &QueueKey, cell: &QueueCell) {
        let mut reg = self.registry();
        if reg.queues.get(key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            reg.queues.remove(key);
        }
    }

    /// A loaded, live queue, without creating it.
    pub(crate) fn loaded(&self, key: &QueueKey) -> Option<Arc<TaskQueue>> {
        let reg = self.registry();
        reg.queues
            .get(key)
            .and_then(|cell| cell.get())
            .filter(|q| !q.is_lost())
            .cloned()
    }

    /// Every loaded queue matching `pred`.
    pub(crate) fn loaded_where(&self, pred: impl Fn(&QueueKey) -> bool) -> Vec<Arc<TaskQueue>> {
        let reg = self.registry();
        reg.queues
            .iter()
            .filter(|(key, _)| pred(key))
            .filter_map(|(_, cell)| cell.get().cloned())
            .collect()
    }

    /// Unload every queue `keep` refuses: its waiting polls answer empty at once, its
    /// in-memory tasks are dropped (a normal queue's stay in the store, under a lease the next
    /// owner takes over), and its background reads and forwarding stop. Writes and starts
    /// already under way finish (a task that cannot be written fails its add call).
    pub(crate) fn retain_partitions(&self, keep: impl Fn(&QueueKey) -> bool) {
        let removed: Vec<(QueueKey, QueueCell)> = {
            let mut reg = self.registry();
            let gone: Vec<QueueKey> = reg.queues.keys().filter(|k| !keep(k)).cloned().collect();
            gone.into_iter()
                .filter_map(|k| reg.queues.remove_entry(&k))
                .collect()
        };
        for (key, cell) in removed {
            if let Some(queue) = cell.get() {
                tracing::info!(queue = %key, "task queue partition released");
                queue.close();
            }
        }
    }

    /// Remove a queue from the registry and close it.
    pub(crate) fn unload(&self, key: &QueueKey) -> Option<Arc<TaskQueue>> {
        let cell = self.registry().queues.remove(key)?;
        let queue = cell.get().cloned()?;
        queue.close();
        Some(queue)
    }

    /// The queue for `key`, creating it (and, for a normal queue, taking its lease and
    /// loading its backlog) on first use, or again after it lost its lease.
    pub(crate) async fn queue(&self, key: &QueueKey) -> Result<Arc<TaskQueue>, MatchingError> {
        for _ in 0..3 {
            if self.ctx.shutdown.is_cancelled() {
                return Err(MatchingError::ShuttingDown);
            }
            // A partition the ring gives another node is not served (or taken back) here:
            // the caller asks the owner instead. Polls woken because this node lost the
            // partition's lease come back through here and leave for the new owner.
            if self.ownership.get().is_some_and(|owns| !owns(key)) {
                return Err(MatchingError::NotOwner(key.to_string()));
            }
            let cell = self.cell(key);
            self.maybe_publish_backlog();
            let queue = cell.get_or_try_init(|| self.open(key)).await?.clone();
            if !queue.is_lost() {
                return Ok(queue);
            }
            self.forget(key, &cell);
        }
        Err(MatchingError::OwnershipLost(key.name.clone()))
    }

    async fn open(&self, key: &QueueKey) -> Result<Arc<TaskQueue>, MatchingError> {
        match key.kind {
            QueueKind::Sticky => Ok(TaskQueue::new_sticky(key.clone(), self.ctx.clone())),
            QueueKind::Normal => {
                let queue = TaskQueue::open_normal(key.clone(), self.ctx.clone()).await?;
                if key.is_child() {
                    self.start_backlog_forwarder(&queue);
                } else {
                    self.load_children(key);
                }
                Ok(queue)
            }
        }
    }

    /// Add a task: sync match to a waiting poller (returning once history recorded the
    /// start); else, on a child partition, offer it to the root's pollers; else persist it
    /// (normal queues) or hold it in memory (sticky queues). A task `forwarded` from a child
    /// is only ever sync matched: [`crate::forward::refused`] sends it back to be stored there.
    pub(crate) async fn add_task(
        &self,
        key: QueueKey,
        info: TaskInfo,
        forwarded: bool,
    ) -> Result<(), Status> {
        for attempt in 0..2 {
            if self.ctx.shutdown.is_cancelled() {
                return Err(MatchingError::ShuttingDown.into());
            }
            let queue = match key.kind {
                QueueKind::Sticky => match self.loaded(&key) {
                    Some(q) if q.has_live_poller(Instant::now()) => {
                        self.sticky_refuses(
                            &q,
                            info.directive.as_deref(),
                            &info.execution.workflow_id,
                        )
                        .await?;
                        q
                    }
                    _ => return Err(status::sticky_worker_unavailable(&key.name)),
                },
                QueueKind::Normal => self.queue(&key).await?,
            };

            let (done_tx, done_rx) = oneshot::channel();
            let task = Task {
                info: info.clone(),
                origin: Origin::Sync(done_tx),
            };
            if queue.try_sync_match(task).is_ok() {
                match done_rx.await {
                    Ok(Outcome::Started) => {
                        crate::metrics::sync_match(&key);
                        return Ok(());
                    }
                    Ok(Outcome::Obsolete) => {
                        tracing::debug!(queue = %key, workflow_id = %info.execution.workflow_id,
                            "dropping obsolete task");
                        return Ok(());
                    }
                    // The poller failed or went away before history started the task.
                    Ok(Outcome::Failed) | Err(_) => {}
                }
            }
            if forwarded {
                return Err(crate::forward::refused());
            }
            if attempt == 0 && key.is_child() && self.offer_to_root(&queue, &info).await {
                return Ok(());
            }

            match key.kind {
                QueueKind::Sticky => {
                    return if queue.hold(info) {
                        crate::metrics::backlogged(&key);
                        Ok(())
                    } else {
                        Err(status::sticky_worker_unavailable(&key.name))
                    };
                }
                QueueKind::Normal => match queue.persist(info.clone()).await {
                    Ok(()) => {
                        crate::metrics::backlogged(&key);
                        return Ok(());
                    }
                    Err(WriteError::OwnershipLost) if attempt == 0 => {
                        tracing::info!(queue = %key, "lease lost while adding a task; re-leasing");
                    }
                    Err(WriteError::OwnershipLost) => {
                        return Err(MatchingError::OwnershipLost(key.name.clone()).into());
                    }
                    Err(WriteError::ShuttingDown) => {
                        return Err(MatchingError::ShuttingDown.into());
                    }
                    Err(WriteError::Store(err)) => return Err(MatchingError::Store(err).into()),
                },
            }
        }
        Err(MatchingError::OwnershipLost(key.name.clone()).into())
    }

    /// Long-poll for a task and have history start it. `Ok(None)`: no task before the
    /// deadline (or the worker / engine / partition is stopping).
    ///
    /// A poll on a child partition that finds nothing local waits locally until it may
    /// forward (one of the partition's forwarding permits is free), then leaves the local
    /// waiters and polls the root instead, answering what the root answers; if the root
    /// fails, it waits locally again. A poll is never in both places at once, so it can get
    /// at most one task.
    pub(crate) async fn poll(&self, poll: Poll) -> Result<Option<PollResponse>, Status> {
        let start = Instant::now();
        let result = self.poll_inner(&poll).await;
        // A forwarded poll is counted where it started.
        if !poll.forwarded {
            let outcome = match &result {
                Ok(Some(_)) => "task",
                _ => "empty",
            };
            crate::metrics::poll_wait(&poll.key, outcome, start.elapsed());
        }
        result
    }

    /// Bring a normal partition's rate limit and fairness weight overrides up to date with
    /// the task queue's UpdateTaskQueueConfig settings (read through the deployment
    /// registry's cache, so a change reaches every node within its propagation delay). The
    /// queue rate limit is shared evenly by the queue's partitions.
    pub(crate) async fn apply_task_queue_config(&self, key: &QueueKey, queue: &TaskQueue) {
        if let Some(config) = self.partition_config(key).await {
            queue.apply_config(&config);
        }
    }

    /// A normal partition's share of its task queue's UpdateTaskQueueConfig settings;
    /// `None` if they cannot be read now (or for other kinds of queue).
    pub(crate) async fn partition_config(&self, key: &QueueKey) -> Option<PartitionConfig> {
        if key.kind != QueueKind::Normal {
            return None;
        }
        let registry = self.deployments.get()?;
        match registry
            .task_queue_config(&key.namespace_id, &key.name, key.task_type.as_i32())
            .await
        {
            Ok(config) => {
                let partitions = self.ctx.config.partitions.partitions(&key.name);
                Some(config_for_partition(config, partitions))
            }
            Err(status) => {
                tracing::debug!(queue = %key, %status, "could not read the task queue config; keeping the previous one");
                None
            }
        }
    }

    async fn poll_inner(&self, poll: &Poll) -> Result<Option<PollResponse>, Status> {
        let deadline = Instant::now() + poll.timeout;
        let mut forward_at = (poll.key.is_child() && !poll.forwarded).then(Instant::now);
        loop {
            if self.ctx.shutdown.is_cancelled() || Instant::now() >= deadline {
                return Ok(None);
            }
            let queue = match self.queue(&poll.key).await {
                Ok(queue) => queue,
                Err(MatchingError::ShuttingDown) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            queue.record_poll(&poll.poller);
            self.apply_task_queue_config(&poll.key, &queue).await;
            match queue
                .take(deadline, &poll.worker_instance_key, forward_at)
                .await
            {
                Wait::Task(task) => {
                    // A query or Nexus task needs no history call: its response is ready.
                    let task = match task.into_query_response() {
                        Ok(response) => {
                            queue.record_poll(&poll.poller);
                            return Ok(Some(response));
                        }
                        Err(task) => task,
                    };
                    let Some(info) = task.info().cloned() else {
                        continue;
                    };
                    match self.record_started(poll, &info).await {
                        Ok(response) => {
                            task.finish(Outcome::Started);
                            let waited = self.ctx.clock.now().duration_since(info.create_time);
                            crate::metrics::schedule_to_start(
                                &poll.key,
                                waited.unwrap_or_default(),
                            );
                            // Proof of life for sticky liveness, however long the poll waited.
                            queue.record_poll(&poll.poller);
                            return Ok(Some(response));
                        }
                        Err(s) if status::is_task_obsolete(&s) => {
                            tracing::debug!(queue = %poll.key, workflow_id = %info.execution.workflow_id,
                                scheduled_event_id = info.scheduled_event_id, "task obsolete; dropped");
                            task.finish(Outcome::Obsolete);
                        }
                        Err(s) => {
                            tracing::warn!(queue = %poll.key, workflow_id = %info.execution.workflow_id,
                                status = %s, "recording task start failed; task requeued");
                            task.finish(Outcome::Failed);
                            return Err(s);
                        }
                    }
                }
                Wait::Forward(permit) => {
                    let result = self.forward_poll(poll, deadline).await;
                    drop(permit);
                    match result {
                        Ok(Some(response)) => {
                            queue.record_poll(&poll.poller);
                            return Ok(Some(response));
                        }
                        // The root's long poll ended, it let go of the partition, or the
                        // worker is shutting down (ShutdownWorker ended the root's poll):
                        // end this one too; the worker polls again if it wants to.
                        Ok(None) => return Ok(None),
                        Err(s) => {
                            tracing::debug!(queue = %poll.key, status = %s,
                                "forwarding a poll to the root partition failed");
                        }
                    }
                    // Wait locally a while before asking the root again.
                    forward_at = Some(Instant::now() + self.ctx.config.forward_retry);
                }
                Wait::TimedOut => return Ok(None),
                Wait::Woken => {
                    // A queue that lost its lease is re-created; anything else ends the poll.
                    if !queue.is_lost() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    async fn record_started(&self, poll: &Poll, info: &TaskInfo) -> Result<PollResponse, Status> {
        let history = &self.history;
        match &poll.request {
            PollRequest::Workflow(request) => {
                let target = self
                    .unpinned_target(
                        &poll.key,
                        info.directive.as_deref(),
                        &info.execution.workflow_id,
                    )
                    .await;
                let req = RecordWorkflowTaskStartedRequest {
                    target_deployment_version: target,
                    namespace_id: info.namespace_id.clone(),
                    execution: Some(info.execution.clone()),
                    scheduled_event_id: info.scheduled_event_id,
                    request_id: poll.poller_id.clone(),
                    poll_request: Some(request.clone()),
                };
                let resp = temper_client::call!(history => record_workflow_task_started(req))?;
                resp.response.map(PollResponse::Workflow).ok_or_else(|| {
                    Status::internal("history started the workflow task but returned no task")
                })
            }
            PollRequest::Activity(request, sdk) => {
                let req = RecordActivityTaskStartedRequest {
                    namespace_id: info.namespace_id.clone(),
                    execution: Some(info.execution.clone()),
                    scheduled_event_id: info.scheduled_event_id,
                    request_id: poll.poller_id.clone(),
                    poll_request: Some(request.clone()),
                    sdk_name: sdk.name.clone(),
                    sdk_version: sdk.version.clone(),
                };
                let resp = temper_client::call!(history => record_activity_task_started(req))?;
                resp.response.map(PollResponse::Activity).ok_or_else(|| {
                    Status::internal("history started the activity task but returned no task")
                })
            }
            // A Nexus queue holds Nexus tasks only, whose responses are ready.
            PollRequest::Nexus(_) => Err(Status::internal(
                "a Nexus task queue held a task that was not a Nexus task",
            )),
        }
    }
}

/// A partition's share of a task queue config: its dispatch rate and its fairness keys' rate
/// (each the queue's divided by its partitions; `None`: no limit), and the fairness weight
/// overrides.
pub(crate) fn config_for_partition(
    config: Option<temper_proto::temporal::api::taskqueue::v1::TaskQueueConfig>,
    partitions: u32,
) -> PartitionConfig {
    let Some(config) = config else {
        return PartitionConfig {
            partitions,
            ..PartitionConfig::default()
        };
    };
    let share = |limit: Option<&temper_proto::temporal::api::taskqueue::v1::RateLimitConfig>| {
        limit
            .and_then(|c| c.rate_limit.as_ref())
            .map(|r| f64::from(r.requests_per_second.max(0.0)) / f64::from(partitions.max(1)))
    };
    PartitionConfig {
        rate: share(config.queue_rate_limit.as_ref()),
        key_rate: share(config.fairness_keys_rate_limit_default.as_ref()),
        overrides: config.fairness_weight_overrides,
        partitions,
    }
}
