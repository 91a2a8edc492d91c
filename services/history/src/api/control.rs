//! Requests that act on one run named by the client: RequestCancelWorkflowExecution,
//! TerminateWorkflowExecution, ResetStickyTaskQueue, SignalWorkflowExecution,
//! UpdateWorkflowExecutionOptions.

use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::workflowservice::v1::{
    RequestCancelWorkflowExecutionRequest, ResetStickyTaskQueueRequest,
    SignalWorkflowExecutionRequest, SignalWorkflowExecutionResponse,
    TerminateWorkflowExecutionRequest, UpdateWorkflowExecutionOptionsRequest,
    UpdateWorkflowExecutionOptionsResponse,
};
use temper_types::NamespaceId;
use temper_workflow::{Txn, WorkflowError, close, signal, versioning, workflow_task};

use crate::{HistoryEngine, HistoryError};

/// Apply `f` to the run the client names (its current run when the run id is empty). With
/// no run id, a run that closed just now (continued as new, retried) is not the end: the
/// request goes to the workflow id's new current run, as in Temporal.
pub(crate) async fn transact_named_run<T>(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    execution: Option<&WorkflowExecution>,
    mut f: impl FnMut(&mut Txn<'_>) -> Result<T, WorkflowError>,
) -> Result<T, HistoryError> {
    let Some(e) = execution.filter(|e| !e.workflow_id.is_empty()) else {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    };
    let shard = engine.shard(ns, &e.workflow_id)?;
    let mut key = shard.resolve(ns, &e.workflow_id, &e.run_id).await?;
    for _ in 0..MAX_CURRENT_RUN_RETRIES {
        match shard.transact(&key, &mut f).await {
            Err(HistoryError::Workflow(WorkflowError::AlreadyCompleted)) if e.run_id.is_empty() => {
                let current = shard.resolve(ns, &e.workflow_id, "").await?;
                if current.run_id == key.run_id {
                    break;
                }
                key = current;
            }
            other => return other.map(|updated| updated.value),
        }
    }
    Err(WorkflowError::AlreadyCompleted.into())
}

/// How often a request without run id follows the workflow id to a newer run.
const MAX_CURRENT_RUN_RETRIES: usize = 3;

/// Check that the run named by `first_execution_run_id` (if given) is the chain we act on.
fn check_chain(
    ms: &temper_workflow::pb::MutableState,
    first_run_id: &str,
) -> Result<(), WorkflowError> {
    let info = ms.execution_info.as_ref();
    if !first_run_id.is_empty() && info.is_some_and(|i| i.first_run_id != first_run_id) {
        return Err(WorkflowError::NotFound(
            "workflow execution not found for the given first execution run id".into(),
        ));
    }
    Ok(())
}

/// Who asked, when a workflow asks another to cancel or signals it.
pub(crate) struct External {
    pub execution: WorkflowExecution,
    pub initiated_event_id: i64,
    /// Only act if the target is a child of `execution`.
    pub child_workflow_only: bool,
}

/// A target that must be a child of the asking workflow and is not looks like a missing one.
fn check_child_of(
    ms: &temper_workflow::pb::MutableState,
    external: Option<&External>,
) -> Result<(), WorkflowError> {
    let Some(ext) = external.filter(|e| e.child_workflow_only) else {
        return Ok(());
    };
    let parent = ms
        .execution_info
        .as_ref()
        .and_then(|i| i.parent.as_ref())
        .and_then(|p| p.execution.as_ref());
    match parent {
        Some(p) if p.workflow_id == ext.execution.workflow_id => Ok(()),
        _ => Err(WorkflowError::NotFound(
            "the workflow is not a child of the requesting workflow".into(),
        )),
    }
}

pub(crate) async fn request_cancel(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: RequestCancelWorkflowExecutionRequest,
    external: Option<External>,
) -> Result<(), HistoryError> {
    let asked = transact_named_run(engine, ns, req.workflow_execution.as_ref(), |txn| {
        // Checked before the first run and the parent, as in Temporal.
        if !txn.is_running() {
            return Err(WorkflowError::AlreadyCompleted);
        }
        check_chain(txn.ms, &req.first_execution_run_id)?;
        check_child_of(txn.ms, external.as_ref())?;
        close::request_cancel_from(
            txn,
            &req.reason,
            &req.identity,
            &req.request_id,
            external
                .as_ref()
                .map(|e| (e.execution.clone(), e.initiated_event_id)),
        )
    })
    .await;
    match asked {
        // As in Temporal, asking a closed run to cancel succeeds and changes nothing (a run
        // without run id is followed to the workflow id's newest run first): clients, a
        // parent's close policy and RequestCancelExternal all see a success.
        Err(HistoryError::Workflow(WorkflowError::AlreadyCompleted)) => Ok(()),
        other => other,
    }
}

pub(crate) async fn terminate(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: TerminateWorkflowExecutionRequest,
) -> Result<(), HistoryError> {
    let reason = if req.reason.is_empty() {
        close::DEFAULT_TERMINATE_REASON
    } else {
        &req.reason
    };
    transact_named_run(engine, ns, req.workflow_execution.as_ref(), |txn| {
        check_chain(txn.ms, &req.first_execution_run_id)?;
        close::terminate(txn, reason, req.details.clone(), &req.identity)
    })
    .await
}

pub(crate) async fn update_options(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: UpdateWorkflowExecutionOptionsRequest,
) -> Result<UpdateWorkflowExecutionOptionsResponse, HistoryError> {
    let paths = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.clone())
        .unwrap_or_default();
    let options = transact_named_run(engine, ns, req.workflow_execution.as_ref(), |txn| {
        versioning::update_options(
            txn,
            req.workflow_execution_options.as_ref(),
            &paths,
            &req.identity,
        )
    })
    .await?;
    Ok(UpdateWorkflowExecutionOptionsResponse {
        workflow_execution_options: Some(options),
        ..Default::default()
    })
}

pub(crate) async fn reset_sticky(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: ResetStickyTaskQueueRequest,
) -> Result<(), HistoryError> {
    transact_named_run(
        engine,
        ns,
        req.execution.as_ref(),
        workflow_task::reset_sticky,
    )
    .await
}

/// SignalWorkflowExecution; the response carries a link to the signal's event (by its request
/// id, as the event may still be buffered), which a Nexus handler passes back to its caller.
pub(crate) async fn signal(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: SignalWorkflowExecutionRequest,
    external: Option<External>,
) -> Result<SignalWorkflowExecutionResponse, HistoryError> {
    let run_id = transact_named_run(engine, ns, req.workflow_execution.as_ref(), |txn| {
        check_child_of(txn.ms, external.as_ref())?;
        signal::signal(
            txn,
            signal::Signal {
                name: &req.signal_name,
                input: req.input.clone(),
                identity: &req.identity,
                header: req.header.clone(),
                request_id: &req.request_id,
                external_execution: external.as_ref().map(|e| e.execution.clone()),
                links: req.links.clone(),
            },
        )?;
        Ok(txn.info().run_id.clone())
    })
    .await?;
    let workflow_id = req
        .workflow_execution
        .as_ref()
        .map(|e| e.workflow_id.as_str())
        .unwrap_or_default();
    Ok(SignalWorkflowExecutionResponse {
        link: Some(super::signal_link(
            &req.namespace,
            workflow_id,
            &run_id,
            &req.request_id,
        )),
    })
}
