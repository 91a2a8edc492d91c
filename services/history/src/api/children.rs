//! RecordChildExecutionCompleted: a child's chain closed; record it in its parent.

use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_types::NamespaceId;
use temper_workflow::{WorkflowError, child};

use crate::{HistoryEngine, HistoryError};

pub(crate) async fn record_completed(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: internal::RecordChildExecutionCompletedRequest,
) -> Result<(), HistoryError> {
    let parent = req.parent_execution.unwrap_or_default();
    let child_execution = req.child_execution.unwrap_or_default();
    let Some(close_event) = req.close_event else {
        return Err(WorkflowError::InvalidArgument("close event is not set".into()).into());
    };
    if parent.workflow_id.is_empty() || parent.run_id.is_empty() {
        return Err(WorkflowError::InvalidArgument("parent execution is not set".into()).into());
    }
    let shard = engine.shard(ns, &parent.workflow_id)?;
    let mut key = ExecutionKey {
        namespace_id: ns.clone(),
        workflow_id: parent.workflow_id,
        run_id: parent.run_id,
    };
    // A parent a reset replaced hands its children on to the run that replaced it.
    for _ in 0..MAX_RESETS_FOLLOWED {
        let mut replaced_by = None;
        shard
            .transact(&key, |txn| {
                replaced_by = None;
                let reset_run_id = &txn.info().reset_run_id;
                if !txn.is_running() && !reset_run_id.is_empty() {
                    replaced_by = Some(reset_run_id.clone());
                    return Ok(());
                }
                child::on_closed(
                    txn,
                    req.parent_initiated_event_id,
                    child_execution.clone(),
                    &close_event,
                )
            })
            .await?;
        match replaced_by {
            Some(run_id) => key.run_id = run_id,
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Resets of one parent followed to deliver a child's completion.
const MAX_RESETS_FOLLOWED: usize = 100;
