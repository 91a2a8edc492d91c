//! DeleteWorkflowExecution, and the deletion of runs whose retention ran out.
//!
//! A delete request terminates the run if it is running (as Temporal does) and, in the same
//! commit, schedules a `DeleteHistory` timer task due now. Retention schedules the same task
//! when a run closes, due at close time plus the namespace's retention. Processing the task
//! deletes the run's mutable state and current-run pointer, then its history branch; a crash
//! in between leaves the task in the store, and running it again finishes the job. Tasks the
//! deleted run still has find no run and do nothing.

use temper_client::HistoryClient;
use temper_persistence::ExecutionKey;
use temper_proto::temporal::api::workflowservice::v1::DeleteWorkflowExecutionRequest;
use temper_types::NamespaceId;
use temper_workflow::{WorkflowError, close};

use crate::shard::{ShardContext, delete_history_task};
use crate::writer::branch_of;
use crate::{HistoryEngine, HistoryError};

/// Temporal's reason and identity for the termination of a run deleted while running.
const REASON: &str = "Delete workflow execution";

pub(crate) async fn delete(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: DeleteWorkflowExecutionRequest,
) -> Result<(), HistoryError> {
    let Some(e) = req
        .workflow_execution
        .as_ref()
        .filter(|e| !e.workflow_id.is_empty())
    else {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    };
    let shard = engine.shard(ns, &e.workflow_id)?;
    let key = shard.resolve(ns, &e.workflow_id, &e.run_id).await?;
    let task = delete_history_task(&key);
    shard
        .transact(&key, |txn| {
            if txn.is_running() {
                close::terminate(txn, REASON, None, close::IDENTITY_HISTORY_SERVICE)?;
            }
            txn.add_timer_task(txn.now, task.clone());
            Ok(())
        })
        .await?;
    Ok(())
}

/// A `DeleteHistory` task fired: delete the run if it is closed. Idempotent.
pub(crate) async fn process(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
) -> Result<(), HistoryError> {
    match shard.snapshot(key).await {
        Ok(ms) => {
            if !close::is_closed(&ms) {
                // Never delete a running run (a stale task; nothing schedules this).
                return Ok(());
            }
            // The run's close task (telling the parent, the parent close policy) may not
            // have run yet; its work is idempotent, so do it here before the state goes.
            crate::cross_workflow::on_close(shard, history, key).await?;
            shard.delete_run(key).await?;
        }
        // Deleted before: perhaps the history branch was not, yet.
        Err(HistoryError::ExecutionNotFound(_)) => {}
        Err(e) => return Err(e),
    }
    shard
        .persistence
        .history
        .delete_history_branch(&branch_of(key))
        .await?;
    Ok(())
}
