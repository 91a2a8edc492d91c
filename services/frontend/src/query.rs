//! QueryWorkflow and RespondQueryTaskCompleted.
//!
//! A query goes where Temporal sends it: history checks the run and the reject condition and
//! builds the query task; matching hands it to a poller and waits for the answer. The task
//! goes first to the worker that caches the workflow (its sticky queue, no history in the
//! task); if that worker is gone or does not take it within the sticky schedule-to-start
//! timeout, stickiness is cleared and the task goes to the normal queue with the full
//! history, for any worker to replay. The whole call is bounded by the caller's deadline
//! (at most 30 s, Temporal's default for internal calls).

use std::time::Duration;

use temper_client::status::{is_sticky_worker_unavailable, status_with_details};
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::enums::v1::{
    QueryResultType, TaskQueueKind, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::errordetails::v1::QueryFailedFailure;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_workflow::{Limits, token};
use tokio::time::Instant;
use tonic::{Code, Request, Status};

use crate::Frontend;
use crate::errors::parse_grpc_timeout;

/// Longest a query may take, as Temporal's history client bounds it.
const MAX_QUERY_TIME: Duration = Duration::from_secs(30);

/// How long this query may take: the caller's `grpc-timeout`, at most [`MAX_QUERY_TIME`].
pub(crate) fn query_budget(meta: &tonic::metadata::MetadataMap) -> Duration {
    meta.get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(MAX_QUERY_TIME, |t| t.min(MAX_QUERY_TIME))
}

/// Temporal's frontend checks, in its order.
fn validate(r: &ws::QueryWorkflowRequest) -> Result<(), Status> {
    let Some(execution) = &r.execution else {
        return Err(Status::invalid_argument("Execution is not set on request."));
    };
    if execution.workflow_id.is_empty() {
        return Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        ));
    }
    if !execution.run_id.is_empty() && uuid::Uuid::parse_str(&execution.run_id).is_err() {
        return Err(Status::invalid_argument("Invalid RunId."));
    }
    let Some(query) = &r.query else {
        return Err(Status::invalid_argument(
            "WorkflowQuery is not set on request.",
        ));
    };
    if query.query_type.is_empty() {
        return Err(Status::invalid_argument("QueryType is not set on request."));
    }
    Ok(())
}

fn millis_until(deadline: Instant) -> i64 {
    let left = deadline.saturating_duration_since(Instant::now());
    i64::try_from(left.as_millis()).unwrap_or(i64::MAX)
}

/// The worker's answer as the client sees it.
fn answer(r: internal::QueryWorkflowResponse) -> Result<ws::QueryWorkflowResponse, Status> {
    let completed = r.completed.unwrap_or_default();
    match QueryResultType::try_from(completed.completed_type) {
        Ok(QueryResultType::Answered) => Ok(ws::QueryWorkflowResponse {
            query_result: completed.query_result,
            ..Default::default()
        }),
        Ok(QueryResultType::Failed) => Err(status_with_details(
            Code::InvalidArgument,
            completed.error_message,
            &QueryFailedFailure {
                failure: completed.failure,
            },
        )),
        _ => Err(Status::internal("unknown query completed type")),
    }
}

impl Frontend {
    async fn prepare_query(
        &self,
        namespace_id: &str,
        request: &ws::QueryWorkflowRequest,
        skip_sticky: bool,
        deadline: Instant,
    ) -> Result<internal::PrepareQueryTaskResponse, Status> {
        let history = &self.history;
        temper_client::call!(history => prepare_query_task(internal::PrepareQueryTaskRequest {
            namespace_id: namespace_id.to_owned(),
            request: Some(request.clone()),
            skip_sticky,
            wait_timeout_ms: millis_until(deadline),
        }))
    }

    async fn dispatch_query(
        &self,
        namespace_id: &str,
        prepared: internal::PrepareQueryTaskResponse,
        deadline: Instant,
    ) -> Result<internal::QueryWorkflowResponse, Status> {
        let matching = &self.matching;
        temper_client::call!(matching => query_workflow(internal::QueryWorkflowRequest {
            directive: prepared.directive,
            namespace_id: namespace_id.to_owned(),
            task_queue: prepared.task_queue,
            task: prepared.task,
            timeout_ms: millis_until(deadline).max(1),
        }))
    }

    pub(crate) async fn query(
        &self,
        budget: Duration,
        r: ws::QueryWorkflowRequest,
    ) -> Result<ws::QueryWorkflowResponse, Status> {
        validate(&r)?;
        let namespace_id = self.ns_id(&r.namespace).await?;
        let deadline = Instant::now() + budget;
        let mut prepared = self
            .prepare_query(&namespace_id, &r, false, deadline)
            .await?;
        if let Some(rejected) = prepared.query_rejected.take() {
            return Ok(ws::QueryWorkflowResponse {
                query_rejected: Some(rejected),
                ..Default::default()
            });
        }
        let sticky = prepared
            .task_queue
            .as_ref()
            .is_some_and(|q| q.kind == TaskQueueKind::Sticky as i32);
        if sticky {
            let sticky_timeout = prepared
                .sticky_schedule_to_start_timeout
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(Limits::default().sticky_schedule_to_start_timeout);
            let sticky_deadline = deadline.min(Instant::now() + sticky_timeout);
            let running = prepared.status == WorkflowExecutionStatus::Running as i32;
            let execution = prepared
                .task
                .as_ref()
                .and_then(|t| t.workflow_execution.clone());
            match self
                .dispatch_query(&namespace_id, prepared, sticky_deadline)
                .await
            {
                Ok(r) => return answer(r),
                Err(s)
                    if is_sticky_worker_unavailable(&s)
                        || (s.code() == Code::DeadlineExceeded && Instant::now() < deadline) => {}
                Err(s) => return Err(s),
            }
            // The worker that cached the workflow is gone or too slow: forget it, so the
            // next workflow task goes to the normal queue too, and ask any worker.
            if running {
                let reset = self
                    .history
                    .reset_sticky_task_queue(Request::new(internal::ResetStickyTaskQueueRequest {
                        namespace_id: namespace_id.clone(),
                        request: Some(ws::ResetStickyTaskQueueRequest {
                            namespace: r.namespace.clone(),
                            execution,
                        }),
                    }))
                    .await;
                if let Err(s) = reset {
                    tracing::debug!(workflow_id = ?r.execution, status = %s,
                        "clearing stickiness after a failed sticky query");
                }
            }
            prepared = self
                .prepare_query(&namespace_id, &r, true, deadline)
                .await?;
            if let Some(rejected) = prepared.query_rejected.take() {
                return Ok(ws::QueryWorkflowResponse {
                    query_rejected: Some(rejected),
                    ..Default::default()
                });
            }
        }
        answer(
            self.dispatch_query(&namespace_id, prepared, deadline)
                .await?,
        )
    }

    pub(crate) async fn respond_query(
        &self,
        mut r: ws::RespondQueryTaskCompletedRequest,
    ) -> Result<ws::RespondQueryTaskCompletedResponse, Status> {
        let namespace_id = self.ns_for_token(&r.namespace, &r.task_token).await?;
        let t =
            token::decode(&r.task_token).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if t.query_task_id.is_empty() || t.task_queue.is_empty() {
            return Err(Status::invalid_argument("Invalid TaskToken."));
        }
        let result_size: usize = r
            .query_result
            .iter()
            .flat_map(|p| &p.payloads)
            .map(|p| p.data.len())
            .sum();
        if result_size > Limits::default().max_payload_bytes {
            // As Temporal: the client gets a failed query instead of an oversized answer.
            r = ws::RespondQueryTaskCompletedRequest {
                task_token: r.task_token,
                completed_type: QueryResultType::Failed as i32,
                error_message: "Blob data size exceeds limit.".to_owned(),
                namespace: r.namespace,
                ..Default::default()
            };
        }
        let matching = &self.matching;
        temper_client::call!(matching => respond_query_task_completed(
            internal::RespondQueryTaskCompletedRequest {
                namespace_id,
                task_queue: Some(TaskQueue {
                    name: t.task_queue,
                    kind: TaskQueueKind::Normal as i32,
                    normal_name: String::new(),
                }),
                query_task_id: t.query_task_id,
                request: Some(r),
            }
        ))?;
        Ok(ws::RespondQueryTaskCompletedResponse::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::common::v1::{Payloads, WorkflowExecution};
    use temper_proto::temporal::api::query::v1::WorkflowQuery;

    fn request(
        workflow_id: &str,
        run_id: &str,
        query_type: Option<&str>,
    ) -> ws::QueryWorkflowRequest {
        ws::QueryWorkflowRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution {
                workflow_id: workflow_id.into(),
                run_id: run_id.into(),
            }),
            query: query_type.map(|t| WorkflowQuery {
                query_type: t.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn validation_messages_are_temporals() {
        let msg = |r: &ws::QueryWorkflowRequest| validate(r).map_err(|s| s.message().to_owned());
        assert_eq!(msg(&request("wf", "", Some("q"))), Ok(()));
        assert_eq!(
            msg(&request("", "", Some("q"))),
            Err("WorkflowId is not set on request.".into())
        );
        assert_eq!(
            msg(&request("wf", "not-a-uuid", Some("q"))),
            Err("Invalid RunId.".into())
        );
        assert_eq!(
            msg(&request("wf", "", None)),
            Err("WorkflowQuery is not set on request.".into())
        );
        assert_eq!(
            msg(&request("wf", "", Some(""))),
            Err("QueryType is not set on request.".into())
        );
        let mut r = request("wf", "", Some("q"));
        r.execution = None;
        assert_eq!(msg(&r), Err("Execution is not set on request.".into()));
    }

    #[test]
    fn budget_is_the_callers_deadline_at_most_thirty_seconds() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(query_budget(&m), MAX_QUERY_TIME);
        m.insert("grpc-timeout", "3S".parse().expect("valid header"));
        assert_eq!(query_budget(&m), Duration::from_secs(3));
        m.insert("grpc-timeout", "5M".parse().expect("valid header"));
        assert_eq!(query_budget(&m), MAX_QUERY_TIME);
    }

    #[test]
    fn answers_map_to_results_and_query_failed_errors() {
        let answered = internal::QueryWorkflowResponse {
            completed: Some(ws::RespondQueryTaskCompletedRequest {
                completed_type: QueryResultType::Answered as i32,
                query_result: Some(Payloads::default()),
                ..Default::default()
            }),
        };
        assert_eq!(
            answer(answered).expect("answered").query_result,
            Some(Payloads::default())
        );
        let failed = internal::QueryWorkflowResponse {
            completed: Some(ws::RespondQueryTaskCompletedRequest {
                completed_type: QueryResultType::Failed as i32,
                error_message: "handler refused".into(),
                ..Default::default()
            }),
        };
        let s = answer(failed).expect_err("failed");
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "handler refused");
        assert!(!s.details().is_empty(), "carries QueryFailedFailure");
        let unknown = internal::QueryWorkflowResponse::default();
        assert_eq!(answer(unknown).expect_err("unknown").code(), Code::Internal);
    }
}
