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
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use temper_client::HistoryClient;
use temper_persistence::VisibilityStore;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::batch::v1::BatchOperationInfo;
use temper_proto::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType};
use temper_proto::temporal::api::enums::v1::{
    ResourceExhaustedCause, ResourceExhaustedScope, WorkflowExecutionStatus,
    WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Status};

use crate::Frontend;
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
                        // A store without visibility (Cassandra, for now) has no batches.
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
                let (filter, _) = visibility::store_filter(&query);
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
            runner::read_start(&self.deps.history, &ns.id.0, &ns.name, run.clone()).await?;
        let Some(kind) = req.operation.as_ref().and_then(Kind::of) else {
            return Ok(false);
        };
        let job = Job {
            namespace_id: ns.id.0.clone(),
            run_id: run.run_id,
            request: req,
            kind,
        };
        let last = runner::last_checkpoint(&self.deps.history, &job).await?;
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

impl Frontend {
    /// The batcher of this frontend (to resume batches at start and stop them at shutdown).
    pub fn batcher(&self) -> &Arc<Batcher> {
        &self.batcher
    }

    pub(crate) async fn start_batch(
        &self,
        r: ws::StartBatchOperationRequest,
    ) -> Result<ws::StartBatchOperationResponse, Status> {
        let kind = request::validate(&r)?;
        crate::check_identity(Kind::identity(r.operation.as_ref().expect("validated")))?;
        let ns = self.namespace(&r.namespace).await?;
        let attrs = visibility::registry(&ns);
        // Temporal refuses only a query that does not parse; one that names an unknown
        // attribute starts a batch that fails.
        if let Err(e) = temper_visibility::Query::parse(&r.visibility_query, &attrs)
            && e.kind() == temper_visibility::ErrorKind::Malformed
        {
            return Err(Status::invalid_argument(format!(
                "invalid visibility query: {}",
                e.detail()
            )));
        }
        let running = {
            let query = visibility::parse(request::RUNNING_BATCHES_QUERY, &attrs)?;
            Lister {
                store: &self.visibility,
                namespace: &ns,
                attrs: &attrs,
                query: &query,
            }
            .count(false)
            .await?
            .0
        };
        if running >= self.batcher.config.max_concurrent_per_namespace {
            return Err(temper_client::status::resource_exhausted(
                "Max concurrent batch operations is reached",
                ResourceExhaustedCause::ConcurrentLimit,
                ResourceExhaustedScope::Namespace,
            ));
        }
        let identity = Kind::identity(r.operation.as_ref().expect("validated")).to_owned();
        let input = Payload {
            metadata: [
                ("encoding".to_owned(), b"binary/protobuf".to_vec()),
                (
                    "messageType".to_owned(),
                    b"temporal.api.workflowservice.v1.StartBatchOperationRequest".to_vec(),
                ),
            ]
            .into(),
            data: r.encode_to_vec(),
            ..Default::default()
        };
        let start = ws::StartWorkflowExecutionRequest {
            namespace: r.namespace.clone(),
            workflow_id: r.job_id.clone(),
            workflow_type: Some(WorkflowType {
                name: request::WORKFLOW_TYPE.to_owned(),
            }),
            task_queue: Some(TaskQueue {
                name: request::TASK_QUEUE.to_owned(),
                ..Default::default()
            }),
            input: Some(Payloads {
                payloads: vec![input],
            }),
            identity: identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            workflow_id_reuse_policy: WorkflowIdReusePolicy::RejectDuplicate as i32,
            workflow_id_conflict_policy: WorkflowIdConflictPolicy::Fail as i32,
            memo: Some(request::memo(&r, kind)),
            search_attributes: Some(request::search_attributes(&identity)),
            ..Default::default()
        };
        let started = self
            .history
            .start_workflow_execution(Request::new(internal::StartWorkflowExecutionRequest {
                namespace_id: ns.id.0.clone(),
                namespace: r.namespace.clone(),
                request: Some(start),
                parent: None,
            }))
            .await?
            .into_inner();
        self.batcher.spawn(
            Job {
                namespace_id: ns.id.0.clone(),
                run_id: started.run_id,
                request: r,
                kind,
            },
            false,
        );
        Ok(ws::StartBatchOperationResponse {})
    }

    pub(crate) async fn describe_batch(
        &self,
        r: ws::DescribeBatchOperationRequest,
    ) -> Result<ws::DescribeBatchOperationResponse, Status> {
        if r.job_id.is_empty() {
            return Err(Status::invalid_argument("JobId is not set on request."));
        }
        if r.namespace.is_empty() {
            return Err(Status::invalid_argument("Namespace is not set on request."));
        }
        let namespace_id = self.ns_id(&r.namespace).await?;
        let d = self
            .history
            .describe_workflow_execution(Request::new(internal::DescribeWorkflowExecutionRequest {
                namespace_id: namespace_id.clone(),
                request: Some(ws::DescribeWorkflowExecutionRequest {
                    namespace: r.namespace.clone(),
                    execution: Some(WorkflowExecution {
                        workflow_id: r.job_id.clone(),
                        run_id: String::new(),
                    }),
                }),
            }))
            .await?
            .into_inner();
        let info = d.workflow_execution_info.unwrap_or_default();
        let memo = info.memo.clone().unwrap_or_default().fields;
        let sa = info
            .search_attributes
            .clone()
            .unwrap_or_default()
            .indexed_fields;
        let mut resp = ws::DescribeBatchOperationResponse {
            operation_type: request::type_from_memo(&request::string_field(
                &memo,
                request::MEMO_TYPE,
            )) as i32,
            job_id: r.job_id.clone(),
            state: request::state(info.status) as i32,
            start_time: info.start_time,
            close_time: info.close_time,
            identity: request::string_field(&sa, request::SA_USER),
            reason: request::string_field(&memo, request::MEMO_REASON),
            query: request::string_field(&memo, request::MEMO_QUERY),
            ..Default::default()
        };
        let run_id = info
            .execution
            .as_ref()
            .map(|e| e.run_id.clone())
            .unwrap_or_default();
        if info.status == WorkflowExecutionStatus::Completed as i32 {
            let (ok, failed) = memo
                .get(request::MEMO_STATS)
                .and_then(request::payload_json)
                .and_then(|v| Progress::from_stats(&v))
                .ok_or_else(|| {
                    Status::internal("batch operation stats are not present in the memo")
                })?;
            resp.total_operation_count = ok + failed;
            resp.complete_operation_count = ok;
            resp.failure_operation_count = failed;
        } else {
            let progress = match self.batcher.live(&namespace_id, &r.job_id) {
                Some(live) => Some(
                    live.progress
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone(),
                ),
                None => {
                    runner::checkpoint_of(
                        &self.history,
                        &namespace_id,
                        &r.namespace,
                        WorkflowExecution {
                            workflow_id: r.job_id.clone(),
                            run_id,
                        },
                    )
                    .await?
                }
            };
            if let Some(p) = progress {
                resp.total_operation_count = p.total_estimate;
                resp.complete_operation_count = p.success;
                resp.failure_operation_count = p.failure;
            }
        }
        Ok(resp)
    }

    pub(crate) async fn list_batches(
        &self,
        r: ws::ListBatchOperationsRequest,
    ) -> Result<ws::ListBatchOperationsResponse, Status> {
        if r.namespace.is_empty() {
            return Err(Status::invalid_argument("Namespace is not set on request."));
        }
        let page = self
            .list_page(
                &r.namespace,
                request::BATCHES_QUERY,
                r.page_size,
                &r.next_page_token,
            )
            .await?;
        let operation_info = page
            .executions
            .into_iter()
            .map(|e| {
                let memo = e.memo.clone().unwrap_or_default().fields;
                BatchOperationInfo {
                    job_id: e
                        .execution
                        .as_ref()
                        .map(|x| x.workflow_id.clone())
                        .unwrap_or_default(),
                    state: request::state(e.status) as i32,
                    start_time: e.start_time,
                    close_time: e.close_time,
                    operation_type: request::type_from_memo(&request::string_field(
                        &memo,
                        request::MEMO_TYPE,
                    )) as i32,
                }
            })
            .collect();
        Ok(ws::ListBatchOperationsResponse {
            operation_info,
            next_page_token: page.next_page_token,
        })
    }

    pub(crate) async fn stop_batch(
        &self,
        r: ws::StopBatchOperationRequest,
    ) -> Result<ws::StopBatchOperationResponse, Status> {
        if r.job_id.is_empty() {
            return Err(Status::invalid_argument("JobId is not set on request."));
        }
        if r.namespace.is_empty() {
            return Err(Status::invalid_argument("Namespace is not set on request."));
        }
        if r.reason.is_empty() {
            return Err(Status::invalid_argument("Reason is not set on request."));
        }
        crate::check_identity(&r.identity)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        self.history
            .terminate_workflow_execution(Request::new(
                internal::TerminateWorkflowExecutionRequest {
                    namespace_id: namespace_id.clone(),
                    request: Some(ws::TerminateWorkflowExecutionRequest {
                        namespace: r.namespace.clone(),
                        workflow_execution: Some(WorkflowExecution {
                            workflow_id: r.job_id.clone(),
                            run_id: String::new(),
                        }),
                        reason: r.reason.clone(),
                        identity: r.identity.clone(),
                        ..Default::default()
                    }),
                },
            ))
            .await?;
        if let Some(live) = self.batcher.live(&namespace_id, &r.job_id) {
            live.stop.cancel();
        }
        Ok(ws::StopBatchOperationResponse {})
    }
}
