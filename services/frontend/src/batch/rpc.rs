//! The four batch RPCs of the WorkflowService, on the batch's system workflow.

use std::sync::Arc;

use prost::Message;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::batch::v1::BatchOperationInfo;
use temper_proto::temporal::api::common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType};
use temper_proto::temporal::api::enums::v1::{
    ResourceExhaustedCause, ResourceExhaustedScope, WorkflowExecutionStatus,
    WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use tonic::{Request, Status};

use super::progress::Progress;
use super::request::{self, Kind};
use super::runner::Job;
use super::{Batcher, workflow};
use crate::Frontend;
use crate::visibility::{self, Lister};

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
                scheduled_by: String::new(),
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
                    workflow::checkpoint_of(
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
