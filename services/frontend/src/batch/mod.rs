//! Batch operations: StartBatchOperation, DescribeBatchOperation, ListBatchOperations and
//! StopBatchOperation (`temporal workflow terminate|cancel|signal|delete|reset --query ...`,
//! `temporal batch list|describe|terminate`).
//!
//! As in Temporal, a batch is a system workflow: type `temporal-sys-batch-workflow-protobuf`,
//! workflow id = job id, the request as its input, the operation type, reason and query in its
//! memo, and the search attributes `BatcherUser` and `TemporalNamespaceDivision =
//! 'TemporalBatcher'` (so ordinary lists leave it out). List lists those workflows, Describe
//! describes one, Stop terminates it. Where Temporal runs the batch in a worker, temper runs it
//! in a frontend ([`runner`]), which checkpoints progress into the workflow (a signal per page);
//! every frontend takes over the batches whose runner restarted or went quiet
//! ([`Batcher::resume`]). See docs/batch.md.

mod ops;
mod progress;
mod request;
mod rpc;
mod runner;
mod workflow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use temper_client::HistoryClient;
use temper_persistence::VisibilityStore;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Status;

use crate::namespaces::Namespaces;
use crate::visibility::{self, Lister};
use progress::Progress;
use request::Kind;
use runner::{Deps, Job, Live};

/// How often a node looks for batches to take over.
const SCAN_EVERY: Duration = Duration::from_secs(5);

/// Batch settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// Running batches a namespace may have at once (Temporal's
    /// `frontend.MaxConcurrentBatchOperationPerNamespace`, 1 by default).
    pub max_concurrent_per_namespace: u64,
    /// Operations per second of a batch whose request sets no `max_operations_per_second`
    /// (Temporal's `worker.batcherRPS`, 50 by default).
    pub default_rps: f64,
    /// This node's name, the same across restarts: a node takes over at once the batches an
    /// earlier process of it ran.
    pub node_name: String,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_concurrent_per_namespace: 1,
            default_rps: request::DEFAULT_RPS,
            node_name: "temper".to_owned(),
        }
    }
}

/// The batches this node runs, by namespace id and job id.
type LiveMap = Arc<Mutex<HashMap<(String, String), Arc<Live>>>>;

/// The batches this node runs, and their background tasks.
pub struct Batcher {
    deps: Arc<Deps>,
    config: BatchConfig,
    live: LiveMap,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Batcher {
    pub(crate) fn new(
        history: HistoryClient,
        visibility: Arc<dyn VisibilityStore>,
        namespaces: Arc<Namespaces>,
        config: BatchConfig,
    ) -> Self {
        Batcher {
            deps: Arc::new(Deps {
                history,
                visibility,
                namespaces,
                default_rps: if config.default_rps.is_finite() && config.default_rps > 0.0 {
                    config.default_rps
                } else {
                    request::DEFAULT_RPS
                },
                node: config.node_name.clone(),
                owner: format!("{}/{}", config.node_name, uuid::Uuid::new_v4()),
            }),
            config,
            live: Default::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    fn live(&self, namespace_id: &str, job_id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(namespace_id.to_owned(), job_id.to_owned()))
            .cloned()
    }

    /// Run `job` in the background unless this node runs it already.
    fn spawn(&self, job: Job, resume: bool) {
        let key = (job.namespace_id.clone(), job.request.job_id.clone());
        let live = Arc::new(Live {
            progress: Mutex::new(Progress::default()),
            stop: CancellationToken::new(),
        });
        {
            let mut map = self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.contains_key(&key) {
                return;
            }
            map.insert(key.clone(), live.clone());
        }
        let deps = self.deps.clone();
        let map = self.live.clone();
        let shutdown = self.shutdown.clone();
        let job_id = job.request.job_id.clone();
        self.tasks.spawn(async move {
            tracing::info!(%job_id, resume, "batch: running");
            runner::run(deps, job, live, resume, shutdown).await;
            map.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
            tracing::info!(%job_id, "batch: runner ended");
        });
    }

    /// Run, in the background, the running batches this node should run but does not: at
    /// start those an earlier process of this node ran, and, every few seconds, those whose
    /// runner has stopped checkpointing (its node died). Called once when the node starts.
    pub fn resume(self: &Arc<Self>) {
        let this = self.clone();
        self.tasks.spawn(async move {
            loop {
                match this.scan().await {
                    Ok(n) if n > 0 => {
                        tracing::info!(batches = n, "batch: resumed unfinished batches")
                    }
                    Ok(_) => {}
                    Err(s) if s.code() == tonic::Code::Unimplemented => {
                        // A store that answers no visibility query has no batches.
                        tracing::info!(error = %s, "batch: no batch operations on this store");
                        return;
                    }
                    Err(s) => tracing::warn!(error = %s, "batch: looking for unfinished batches"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(SCAN_EVERY) => {}
                    _ = this.shutdown.cancelled() => return,
                }
            }
        });
    }

    async fn scan(&self) -> Result<usize, Status> {
        let mut resumed = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self.deps.namespaces.list(after.as_deref(), 100).await?;
            for ns in &page {
                let attrs = visibility::registry(ns);
                let query = visibility::parse(request::RUNNING_BATCHES_QUERY, &attrs)?;
                let lister = Lister {
                    store: &self.deps.visibility,
                    namespace: ns,
                    attrs: &attrs,
                    query: &query,
                };
                let (filter, _) =
                    visibility::store_filter(&query, self.deps.visibility.filters_keywords());
                let mut runs = Vec::new();
                lister
                    .scan(&filter, |row| {
                        runs.push((
                            WorkflowExecution {
                                workflow_id: row.record.workflow_id.clone(),
                                run_id: row.record.run_id.clone(),
                            },
                            row.record.start_time_ns / 1_000_000,
                        ))
                    })
                    .await?;
                for (run, started_ms) in runs {
                    if self.live(&ns.id.0, &run.workflow_id).is_some() {
                        continue;
                    }
                    // One batch that cannot be read does not hold up the others.
                    match self.take_over(ns, run.clone(), started_ms).await {
                        Ok(true) => resumed += 1,
                        Ok(false) => {}
                        Err(s) => tracing::warn!(
                            job_id = %run.workflow_id,
                            error = %s,
                            "batch: checking whether to take it over"
                        ),
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == 100 => after = Some(last.name.clone()),
                _ => return Ok(resumed),
            }
        }
    }

    /// Run the batch `run` of `ns` here if this node should take it over.
    async fn take_over(
        &self,
        ns: &crate::namespaces::Namespace,
        run: WorkflowExecution,
        started_ms: i64,
    ) -> Result<bool, Status> {
        let (req, _) =
            workflow::read_start(&self.deps.history, &ns.id.0, &ns.name, run.clone()).await?;
        let Some(kind) = req.operation.as_ref().and_then(Kind::of) else {
            return Ok(false);
        };
        let job = Job {
            namespace_id: ns.id.0.clone(),
            run_id: run.run_id,
            request: req,
            kind,
        };
        let last = workflow::last_checkpoint(&self.deps.history, &job).await?;
        let stale = progress::stale_after_ms(request::rps(&job.request, self.deps.default_rps));
        if !progress::may_take_over(
            last.as_ref(),
            started_ms,
            runner::now_ms(),
            &self.deps.node,
            stale,
        ) {
            return Ok(false);
        }
        self.spawn(job, true);
        Ok(true)
    }

    /// Stop every runner (their batches resume when a node starts again) and wait for them.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
