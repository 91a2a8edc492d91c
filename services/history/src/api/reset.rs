//! ResetWorkflowExecution: a new run built from a prefix of a base run's history
//! (`temper_workflow::reset`), created in the same commit that terminates the current run
//! (if it still runs) and moves the current-run pointer to it.
//!
//! Signals the base run received after the reset point are applied again, and so are those
//! of the runs that continued it (continue-as-new) up to the current one, including signals
//! still buffered in the current run, which its termination writes. A repeated request (same
//! request id) answers with the run it created.

use std::collections::HashMap;

use temper_persistence::{CurrentRunCondition, ExecutionKey};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::temporal::api::workflowservice::v1::{
    ResetWorkflowExecutionRequest, ResetWorkflowExecutionResponse,
};
use temper_types::NamespaceId;
use temper_workflow::rebuild::RebuildRun;
use temper_workflow::reset::{IDENTITY_RESETTER, Reset, reapplies_signals};
use temper_workflow::{WorkflowError, close};

use crate::shard::{ShardContext, current_run_conflict};
use crate::{HistoryEngine, HistoryError};

/// Attempts when the current run changes under the reset.
const MAX_RACES: usize = 5;
/// Runs followed after the base run to find signals to apply again.
const MAX_CHAIN: usize = 100;

/// The runs that continued `base` (continue-as-new) with their events, and the next event
/// id read for each run (the base included).
struct Chain {
    events: Vec<HistoryEvent>,
    next_event_ids: HashMap<String, i64>,
}

async fn chain(
    shard: &ShardContext,
    base: &ExecutionKey,
    base_events: &[HistoryEvent],
    base_next_event_id: i64,
) -> Result<Chain, HistoryError> {
    let mut out = Chain {
        events: Vec::new(),
        next_event_ids: HashMap::from([(base.run_id.clone(), base_next_event_id)]),
    };
    let mut last = base_events.last().cloned();
    for _ in 0..MAX_CHAIN {
        let Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a)) =
            last.as_ref().and_then(|e| e.attributes.as_ref())
        else {
            break;
        };
        let key = ExecutionKey {
            run_id: a.new_execution_run_id.clone(),
            ..base.clone()
        };
        let (events, ms) = match shard.events(&key).await {
            Ok(r) => r,
            Err(HistoryError::ExecutionNotFound(_)) => break,
            Err(e) => return Err(e),
        };
        out.next_event_ids
            .insert(key.run_id.clone(), ms.next_event_id);
        last = events.last().cloned();
        out.events.extend(events);
    }
    Ok(out)
}

pub(crate) async fn reset(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: ResetWorkflowExecutionRequest,
) -> Result<ResetWorkflowExecutionResponse, HistoryError> {
    let exec = req.workflow_execution.clone().unwrap_or_default();
    if exec.workflow_id.is_empty() {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    }
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let request_id = if req.request_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        req.request_id.clone()
    };
    // The deprecated reapply type still counts: clients (the CLI among them) send it.
    #[allow(deprecated)]
    let reapply_type = req.reset_reapply_type;
    let reapply_signals = reapplies_signals(reapply_type, &req.reset_reapply_exclude_types);
    for _ in 0..MAX_RACES {
        let base = shard.resolve(ns, &exec.workflow_id, &exec.run_id).await?;
        let current = shard.current_run(ns, &exec.workflow_id).await?;
        if let Some(c) = &current
            && c.create_request_id == request_id
        {
            return Ok(ResetWorkflowExecutionResponse {
                run_id: c.run_id.clone(),
            });
        }
        let (base_events, base_ms) = shard.events(&base).await?;
        let later = chain(&shard, &base, &base_events, base_ms.next_event_id).await?;
        let namespace = base_ms
            .execution_info
            .as_ref()
            .map(|i| i.namespace.clone())
            .unwrap_or_default();
        let new_run_id = temper_types::new_run_id();
        let args = |now| Reset {
            run: RebuildRun {
                namespace_id: ns.as_str(),
                namespace: &namespace,
                workflow_id: &exec.workflow_id,
                run_id: &new_run_id,
                request_id: &request_id,
            },
            base_run_id: &base.run_id,
            reason: &req.reason,
            workflow_task_finish_event_id: req.workflow_task_finish_event_id,
            reapply_signals,
            base_tail: &[],
            now,
        };
        let Some(current) = current else {
            // No current-run pointer (the base run's workflow id lost it): the new run
            // becomes current alone.
            let new_run = temper_workflow::reset::reset(
                &base_events,
                &later.events,
                args(shard.now()),
                &shard.limits,
            )?;
            let key = ExecutionKey {
                run_id: new_run_id.clone(),
                ..base.clone()
            };
            match shard
                .create(
                    &key,
                    new_run.ms,
                    CurrentRunCondition::MustNotExist,
                    new_run.mutation,
                )
                .await
            {
                Ok(()) => return Ok(ResetWorkflowExecutionResponse { run_id: new_run_id }),
                Err(e) if current_run_conflict(&e).is_some() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let target = ExecutionKey {
            run_id: current.run_id.clone(),
            ..base.clone()
        };
        // The current run's events, if some were read to be applied again, must be all of
        // them still; a signal that came in since would be lost.
        let expected_next = later.next_event_ids.get(&current.run_id).copied();
        let mut stale = false;
        shard
            .transact(&target, |txn| {
                stale = false;
                if let Some(n) = expected_next
                    && txn.ms.next_event_id != n
                {
                    stale = true;
                    return Ok(());
                }
                let mut later_events = later.events.clone();
                let mut base_tail = Vec::new();
                if txn.is_running() {
                    close::terminate(txn, &req.reason, None, IDENTITY_RESETTER)?;
                    txn.info_mut().reset_run_id = new_run_id.clone();
                    if expected_next.is_some() {
                        // What was buffered during a workflow task in flight, written now.
                        let written = txn.out.events.iter().cloned();
                        if target == base {
                            base_tail.extend(written);
                        } else {
                            later_events.extend(written);
                        }
                    }
                }
                let new_run = temper_workflow::reset::reset(
                    &base_events,
                    &later_events,
                    Reset {
                        base_tail: &base_tail,
                        ..args(txn.now)
                    },
                    txn.limits,
                )?;
                txn.out.new_run = Some(Box::new(new_run));
                Ok(())
            })
            .await?;
        if !stale {
            return Ok(ResetWorkflowExecutionResponse { run_id: new_run_id });
        }
    }
    Err(HistoryError::Busy)
}
