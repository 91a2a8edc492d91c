//! Standalone Nexus operations: StartNexusOperationExecution,
//! DescribeNexusOperationExecution, PollNexusOperationExecution,
//! RequestCancelNexusOperationExecution, TerminateNexusOperationExecution,
//! DeleteNexusOperationExecution, ListNexusOperationExecutions and
//! CountNexusOperationExecutions.
//!
//! An operation lives in a run of its own (workflow id `temporal-sys-nexus-operation:<id>`)
//! that the history service drives (`services/history/src/api/standalone_nexus.rs`). The
//! frontend checks what it can without the operation, resolves the endpoint's name, and hands
//! every call on one operation to the shard of that run. List and Count read visibility: the
//! runs of the `TemporalStandaloneNexusOperation` namespace division, with the query's
//! `OperationId`, `Operation` and `Endpoint` read as the run's workflow id, workflow type and
//! task queue.

use std::time::Duration;

use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::nexus_operation_execution_call_request::Call;
use temper_proto::internal::v1::nexus_operation_execution_call_response::Response as Answer;
use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus;
use temper_proto::temporal::api::nexus::v1::NexusOperationExecutionListInfo;
use temper_proto::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::STANDALONE_NEXUS_OPERATION_WORKFLOW_ID_PREFIX as PREFIX;
use temper_visibility::names;
use temper_workflow::standalone_nexus as so;
use tonic::{Request, Status};

use crate::standalone_activities::RunAttributes;
use crate::{Frontend, search_attributes};

/// The query names of an operation's id, name and endpoint.
const OPERATION_ID: &str = "OperationId";
const OPERATION: &str = "Operation";
const ENDPOINT: &str = "Endpoint";
const SERVICE: &str = "Service";
const REQUEST_ID: &str = "RequestId";

fn check_namespace(namespace: &str) -> Result<(), Status> {
    if namespace.is_empty() {
        return Err(Status::invalid_argument("Namespace is empty."));
    }
    Ok(())
}

fn workflow_status(e: temper_workflow::WorkflowError) -> Status {
    temper_client::status::workflow_status(e)
}

/// What Temporal checks of a call naming an operation (and perhaps one of its runs).
fn check_target(operation_id: &str, run_id: &str) -> Result<(), Status> {
    so::check_id("operation_id", operation_id).map_err(workflow_status)?;
    if !run_id.is_empty() && uuid::Uuid::parse_str(run_id).is_err() {
        return Err(Status::invalid_argument("run_id is not a valid UUID"));
    }
    Ok(())
}

/// What Temporal checks of a cancel or terminate request.
fn check_change(
    operation_id: &str,
    run_id: &str,
    identity: &str,
    reason: &str,
) -> Result<(), Status> {
    check_target(operation_id, run_id)?;
    so::check_length("identity", identity, so::MAX_ID_LENGTH).map_err(workflow_status)?;
    so::check_length("reason", reason, so::MAX_REASON_LENGTH).map_err(workflow_status)
}

/// A cancel or terminate request's id, made up when the client gave none (as Temporal does).
fn request_id(given: &str) -> Result<String, Status> {
    so::check_length("request_id", given, so::MAX_ID_LENGTH).map_err(workflow_status)?;
    Ok(if given.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        given.to_owned()
    })
}

fn unexpected() -> Status {
    Status::internal(
        "the history service answered a Nexus operation call with another call's response",
    )
}

/// A visibility record of an operation's run, as ListNexusOperationExecutions shows it.
fn list_info(e: WorkflowExecutionInfo) -> NexusOperationExecutionListInfo {
    let (workflow_id, run_id) = e
        .execution
        .map(|x| (x.workflow_id, x.run_id))
        .unwrap_or_default();
    let closed = e.status != WorkflowExecutionStatus::Running as i32;
    let mut search_attributes = e.search_attributes.unwrap_or_default();
    let service = so::take_internal(&mut search_attributes);
    NexusOperationExecutionListInfo {
        operation_id: workflow_id
            .strip_prefix(PREFIX)
            .unwrap_or(&workflow_id)
            .to_owned(),
        run_id,
        endpoint: e.task_queue,
        service,
        operation: e.r#type.map(|t| t.name).unwrap_or_default(),
        schedule_time: e.start_time,
        close_time: e.close_time,
        status: so::status_of_run(e.status) as i32,
        search_attributes: (!search_attributes.indexed_fields.is_empty())
            .then_some(search_attributes),
        // Temporal's list record counts transitions once the operation closed.
        state_transition_count: if closed { e.state_transition_count } else { 0 },
        execution_duration: e.execution_duration.filter(|_| closed),
        state_size_bytes: 0,
    }
}

/// Operations: `OperationId` is the run's workflow id (with the runs' prefix), `Operation`
/// its workflow type, `Endpoint` its task queue, `Service` and `RequestId` attributes it
/// carries.
const OPERATION_ATTRIBUTES: RunAttributes = &[
    (OPERATION_ID, names::WORKFLOW_ID, PREFIX),
    (OPERATION, names::WORKFLOW_TYPE, ""),
    (ENDPOINT, names::TASK_QUEUE, ""),
    (SERVICE, names::TEMPORAL_NEXUS_SERVICE, ""),
    (REQUEST_ID, names::TEMPORAL_NEXUS_REQUEST_ID, ""),
];

impl Frontend {
    /// Hand `call` to the shard of the operation it names (`wait`: how long a long poll may
    /// take; `endpoint_id`: a start's endpoint).
    async fn nexus_operation_call(
        &self,
        wait: Duration,
        endpoint_id: String,
        call: Call,
    ) -> Result<Answer, Status> {
        let (namespace, operation_id) = match &call {
            Call::Start(r) => (&r.namespace, &r.operation_id),
            Call::Describe(r) => (&r.namespace, &r.operation_id),
            Call::Poll(r) => (&r.namespace, &r.operation_id),
            Call::RequestCancel(r) => (&r.namespace, &r.operation_id),
            Call::Terminate(r) => (&r.namespace, &r.operation_id),
            Call::Delete(r) => (&r.namespace, &r.operation_id),
        };
        let (namespace, operation_id) = (namespace.clone(), operation_id.clone());
        check_namespace(&namespace)?;
        let namespace_id = self.ns_id(&namespace).await?;
        self.history
            .nexus_operation_execution_call(Request::new(
                internal::NexusOperationExecutionCallRequest {
                    namespace_id,
                    namespace,
                    operation_id,
                    long_poll_timeout_ms: wait.as_millis() as i64,
                    endpoint_id,
                    call: Some(call),
                },
            ))
            .await?
            .into_inner()
            .response
            .ok_or_else(|| {
                Status::internal("the history service answered a Nexus operation call with nothing")
            })
    }

    pub(crate) async fn nexus_operation_start(
        &self,
        mut r: ws::StartNexusOperationExecutionRequest,
    ) -> Result<ws::StartNexusOperationExecutionResponse, Status> {
        check_namespace(&r.namespace)?;
        let ns = self.namespace(&r.namespace).await?;
        so::validate(&mut r, temper_workflow::Limits::default().max_payload_bytes)
            .map_err(workflow_status)?;
        search_attributes::check(&ns, r.search_attributes.as_ref())?;
        let Some(endpoint) = self.nexus_endpoints.by_name(&r.endpoint).await? else {
            return Err(temper_client::status::not_found(format!(
                "could not find Nexus endpoint by name: {}",
                r.endpoint
            )));
        };
        match self
            .nexus_operation_call(Duration::ZERO, endpoint.id, Call::Start(r))
            .await?
        {
            Answer::Start(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn nexus_operation_describe(
        &self,
        r: ws::DescribeNexusOperationExecutionRequest,
        long_poll: Duration,
    ) -> Result<ws::DescribeNexusOperationExecutionResponse, Status> {
        check_target(&r.operation_id, &r.run_id)?;
        if !r.long_poll_token.is_empty() && r.run_id.is_empty() {
            return Err(Status::invalid_argument(
                "run_id is required when long_poll_token is provided",
            ));
        }
        let namespace = r.namespace.clone();
        let mut resp = match self
            .nexus_operation_call(long_poll, String::new(), Call::Describe(r))
            .await?
        {
            Answer::Describe(resp) => resp,
            _ => return Err(unexpected()),
        };
        // Every search attribute says its type, as Temporal answers.
        let attrs = crate::visibility::registry(self.namespace(&namespace).await?.as_ref());
        if let Some(sa) = resp
            .info
            .as_mut()
            .and_then(|i| i.search_attributes.as_mut())
        {
            crate::visibility::tag_types(sa, &attrs);
        }
        Ok(resp)
    }

    pub(crate) async fn nexus_operation_poll(
        &self,
        r: ws::PollNexusOperationExecutionRequest,
        long_poll: Duration,
    ) -> Result<ws::PollNexusOperationExecutionResponse, Status> {
        check_target(&r.operation_id, &r.run_id)?;
        match self
            .nexus_operation_call(long_poll, String::new(), Call::Poll(r))
            .await?
        {
            Answer::Poll(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn nexus_operation_request_cancel(
        &self,
        mut r: ws::RequestCancelNexusOperationExecutionRequest,
    ) -> Result<ws::RequestCancelNexusOperationExecutionResponse, Status> {
        check_change(&r.operation_id, &r.run_id, &r.identity, &r.reason)?;
        r.request_id = request_id(&r.request_id)?;
        match self
            .nexus_operation_call(Duration::ZERO, String::new(), Call::RequestCancel(r))
            .await?
        {
            Answer::RequestCancel(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn nexus_operation_terminate(
        &self,
        mut r: ws::TerminateNexusOperationExecutionRequest,
    ) -> Result<ws::TerminateNexusOperationExecutionResponse, Status> {
        check_change(&r.operation_id, &r.run_id, &r.identity, &r.reason)?;
        r.request_id = request_id(&r.request_id)?;
        match self
            .nexus_operation_call(Duration::ZERO, String::new(), Call::Terminate(r))
            .await?
        {
            Answer::Terminate(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn nexus_operation_delete(
        &self,
        r: ws::DeleteNexusOperationExecutionRequest,
    ) -> Result<ws::DeleteNexusOperationExecutionResponse, Status> {
        check_target(&r.operation_id, &r.run_id)?;
        match self
            .nexus_operation_call(Duration::ZERO, String::new(), Call::Delete(r))
            .await?
        {
            Answer::Delete(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    async fn nexus_operations_query(
        &self,
        namespace: &str,
        filter: &str,
    ) -> Result<String, Status> {
        self.standalone_query(
            namespace,
            filter,
            so::NAMESPACE_DIVISION,
            OPERATION_ATTRIBUTES,
        )
        .await
    }

    pub(crate) async fn nexus_operation_list(
        &self,
        r: ws::ListNexusOperationExecutionsRequest,
    ) -> Result<ws::ListNexusOperationExecutionsResponse, Status> {
        check_namespace(&r.namespace)?;
        let query = self.nexus_operations_query(&r.namespace, &r.query).await?;
        let page = self
            .list_page(&r.namespace, &query, r.page_size, &r.next_page_token)
            .await?;
        Ok(ws::ListNexusOperationExecutionsResponse {
            operations: page.executions.into_iter().map(list_info).collect(),
            next_page_token: page.next_page_token,
        })
    }

    pub(crate) async fn nexus_operation_count(
        &self,
        r: ws::CountNexusOperationExecutionsRequest,
    ) -> Result<ws::CountNexusOperationExecutionsResponse, Status> {
        check_namespace(&r.namespace)?;
        let query = self.nexus_operations_query(&r.namespace, &r.query).await?;
        let counted = self
            .count(ws::CountWorkflowExecutionsRequest {
                namespace: r.namespace,
                query,
            })
            .await?;
        let mut groups: Vec<_> = counted
            .groups
            .into_iter()
            .map(
                |g| ws::count_nexus_operation_executions_response::AggregationGroup {
                    group_values: g.group_values,
                    count: g.count,
                },
            )
            .collect();
        // Temporal orders the groups by value.
        groups.sort_by_key(|g| g.group_values.first().map(|p| p.data.clone()));
        Ok(ws::CountNexusOperationExecutionsResponse {
            count: counted.count,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::common::v1::{WorkflowExecution, WorkflowType};
    use temper_proto::temporal::api::enums::v1::NexusOperationExecutionStatus;

    /// The filter of operation query `q`, as it reads over the operations' runs.
    fn parsed(q: &str) -> String {
        let mut attrs = temper_visibility::SearchAttributes::system_and_predefined();
        for (name, _, _) in OPERATION_ATTRIBUTES {
            attrs
                .add_custom(name, temper_visibility::ValueType::Keyword)
                .expect("not reserved");
        }
        let mut query = temper_visibility::Query::parse(q, &attrs).expect("valid query");
        let mut filter = query.filter.take().expect("a filter");
        crate::standalone_activities::to_run_attributes(&mut filter, OPERATION_ATTRIBUTES);
        filter.to_string()
    }

    #[test]
    fn operation_ids_names_and_endpoints_are_read_as_their_runs() {
        assert_eq!(
            parsed("OperationId = 'a' AND Endpoint = 'ep' AND Operation IN ('x')"),
            format!("WorkflowId = '{PREFIX}a' AND TaskQueue = 'ep' AND WorkflowType IN ('x')")
        );
        assert_eq!(
            parsed("Service = 's' OR RequestId STARTS_WITH 'r'"),
            "TemporalNexusService = 's' OR TemporalNexusRequestId STARTS_WITH 'r'"
        );
        assert_eq!(
            parsed("ExecutionStatus = 'Running'"),
            "ExecutionStatus = 'Running'"
        );
    }

    #[test]
    fn list_records_become_operations() {
        let req = so::run_request(
            &ws::StartNexusOperationExecutionRequest {
                operation_id: "op-1".into(),
                endpoint: "ep".into(),
                service: "svc".into(),
                operation: "echo".into(),
                ..Default::default()
            },
            "req",
            "op-req",
        );
        let info = list_info(WorkflowExecutionInfo {
            execution: Some(WorkflowExecution {
                workflow_id: req.workflow_id,
                run_id: "run".into(),
            }),
            r#type: Some(WorkflowType {
                name: "echo".into(),
            }),
            search_attributes: req.search_attributes,
            status: WorkflowExecutionStatus::Running as i32,
            task_queue: "ep".into(),
            ..Default::default()
        });
        assert_eq!(
            (
                info.operation_id.as_str(),
                info.endpoint.as_str(),
                info.service.as_str(),
                info.operation.as_str()
            ),
            ("op-1", "ep", "svc", "echo")
        );
        assert_eq!(info.status, NexusOperationExecutionStatus::Running as i32);
        assert!(info.search_attributes.is_none(), "the user's only");
    }
}
