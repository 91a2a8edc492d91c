//! UpdateWorkflowExecution and PollWorkflowExecutionUpdate: admit an update (or find it by
//! id) and wait until it reaches the stage the caller asked for, or until Temporal's long-poll
//! limit, then answer with the stage reached (the SDKs call again).

use std::sync::Arc;
use std::time::Duration;

use temper_persistence::ExecutionKey;
use temper_proto::temporal::api::common::v1::{Link, WorkflowExecution};
use temper_proto::temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage as Stage;
use temper_proto::temporal::api::history::v1::history_event::Attributes;
use temper_proto::temporal::api::update::v1::{Outcome, UpdateRef};
use temper_proto::temporal::api::workflowservice::v1::{
    PollWorkflowExecutionUpdateRequest, PollWorkflowExecutionUpdateResponse,
    UpdateWorkflowExecutionRequest, UpdateWorkflowExecutionResponse,
};
use temper_types::NamespaceId;
use temper_workflow::WorkflowError;
use temper_workflow::update::{self, Abort, Admission, Status};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::shard::ShardContext;
use crate::updates::{Progress, RunUpdates};
use crate::{HistoryEngine, HistoryError};

/// How long one call waits for its stage before answering with the stage reached (Temporal's
/// `history.longPollExpirationInterval`).
pub(crate) const LONG_POLL: Duration = Duration::from_secs(20);
/// Admissions of one call: an update lost in the server (its cached run was reloaded, or the
/// run continued as new) is admitted again.
const MAX_ADMISSIONS: usize = 3;

/// Where a wait ended.
// Variants hold protobuf messages by value, built once and moved to one reader; boxing
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Reached {
    Stage(Stage),
    Outcome(Outcome),
}

pub(crate) async fn update_workflow(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: UpdateWorkflowExecutionRequest,
) -> Result<UpdateWorkflowExecutionResponse, HistoryError> {
    let exec = req.workflow_execution.clone().unwrap_or_default();
    let request = req.request.clone().unwrap_or_default();
    let id = request
        .meta
        .as_ref()
        .map(|m| m.update_id.clone())
        .unwrap_or_default();
    let want = wanted(req.wait_policy.as_ref().map(|w| w.lifecycle_stage));
    let deadline = Instant::now() + LONG_POLL;
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let mut admissions = 0;
    loop {
        admissions += 1;
        let key = shard.resolve(ns, &exec.workflow_id, &exec.run_id).await?;
        let (updated, rx) = shard
            .transact_and_watch(
                &key,
                |txn| update::admit(txn, &request, &req.first_execution_run_id),
                |admission, _, run: &mut RunUpdates| match admission {
                    Admission::New { .. } | Admission::Existing(Status::Admitted) => {
                        Some(run.subscribe(&id, Progress::Admitted))
                    }
                    Admission::Existing(Status::Accepted) => {
                        Some(run.subscribe(&id, Progress::Accepted))
                    }
                    Admission::Existing(_) => None,
                },
            )
            .await?;
        if let Admission::New { speculative: true } = updated.value {
            crate::updates::dispatch_speculative(&shard, &key, &updated.state);
        }
        let reached = match (updated.value, rx) {
            (Admission::Existing(Status::Completed { event_id }), _) => {
                Ok(Reached::Outcome(outcome_of(&shard, &key, event_id).await?))
            }
            (Admission::Existing(Status::Finished(outcome)), _) => Ok(Reached::Outcome(outcome)),
            (_, Some(rx)) => wait(&shard, &key, &id, rx, want, deadline).await,
            (_, None) => Err(HistoryError::UpdateAborted),
        };
        let reached = match reached {
            Err(HistoryError::UpdateAborted)
                if admissions < MAX_ADMISSIONS && Instant::now() < deadline =>
            {
                continue;
            }
            other => other?,
        };
        let link = response_link(&req.namespace, &key, &request.request_id, &reached);
        return Ok(UpdateWorkflowExecutionResponse {
            update_ref: Some(update_ref(&key, &id)),
            link,
            ..response(reached)
        });
    }
}

/// The link Temporal answers with: to the workflow, for an update that completed with a
/// failure (a rejection writes no event); to the accepted event by the request's id, for one
/// accepted or completed; none for one only admitted.
fn response_link(
    namespace: &str,
    key: &ExecutionKey,
    request_id: &str,
    reached: &Reached,
) -> Option<Link> {
    use temper_proto::temporal::api::common::v1::link;
    use temper_proto::temporal::api::enums::v1::EventType;
    use temper_proto::temporal::api::update::v1::outcome::Value;
    let variant = match reached {
        Reached::Outcome(Outcome {
            value: Some(Value::Failure(_)),
        }) => link::Variant::Workflow(link::Workflow {
            namespace: namespace.to_owned(),
            workflow_id: key.workflow_id.clone(),
            run_id: key.run_id.clone(),
            reason: "Update rejected".into(),
        }),
        Reached::Outcome(_) | Reached::Stage(Stage::Accepted | Stage::Completed) => {
            link::Variant::WorkflowEvent(link::WorkflowEvent {
                namespace: namespace.to_owned(),
                workflow_id: key.workflow_id.clone(),
                run_id: key.run_id.clone(),
                reference: Some(link::workflow_event::Reference::RequestIdRef(
                    link::workflow_event::RequestIdReference {
                        request_id: request_id.to_owned(),
                        event_type: EventType::WorkflowExecutionUpdateAccepted as i32,
                    },
                )),
            })
        }
        Reached::Stage(_) => return None,
    };
    Some(Link {
        variant: Some(variant),
    })
}

pub(crate) async fn poll(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: PollWorkflowExecutionUpdateRequest,
) -> Result<PollWorkflowExecutionUpdateResponse, HistoryError> {
    let r = req.update_ref.clone().unwrap_or_default();
    let exec = r.workflow_execution.clone().unwrap_or_default();
    if exec.workflow_id.is_empty() {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    }
    let stage = req
        .wait_policy
        .as_ref()
        .map(|w| w.lifecycle_stage)
        .unwrap_or_default();
    let deadline = Instant::now() + LONG_POLL;
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let key = shard.resolve(ns, &exec.workflow_id, &exec.run_id).await?;
    let reached = match find(&shard, &key, &r.update_id).await? {
        Found::Outcome(o) => Reached::Outcome(o),
        Found::Waiting(rx) => {
            // An unspecified (or ADMITTED) stage asks for the stage reached now.
            let want = match Stage::try_from(stage) {
                Ok(Stage::Accepted) => Stage::Accepted,
                Ok(Stage::Completed) => Stage::Completed,
                _ => Stage::Unspecified,
            };
            wait(&shard, &key, &r.update_id, rx, want, deadline).await?
        }
    };
    let resp = response(reached);
    Ok(PollWorkflowExecutionUpdateResponse {
        outcome: resp.outcome,
        stage: resp.stage,
        update_ref: Some(update_ref(&key, &r.update_id)),
    })
}

/// ACCEPTED or COMPLETED (the frontend turns UNSPECIFIED into COMPLETED and refuses ADMITTED).
fn wanted(stage: Option<i32>) -> Stage {
    match stage.and_then(|s| Stage::try_from(s).ok()) {
        Some(Stage::Accepted) => Stage::Accepted,
        _ => Stage::Completed,
    }
}

fn update_ref(key: &ExecutionKey, id: &str) -> UpdateRef {
    UpdateRef {
        workflow_execution: Some(WorkflowExecution {
            workflow_id: key.workflow_id.clone(),
            run_id: key.run_id.clone(),
        }),
        update_id: id.to_string(),
    }
}

fn response(reached: Reached) -> UpdateWorkflowExecutionResponse {
    match reached {
        Reached::Stage(stage) => UpdateWorkflowExecutionResponse {
            stage: stage as i32,
            ..Default::default()
        },
        Reached::Outcome(outcome) => UpdateWorkflowExecutionResponse {
            stage: Stage::Completed as i32,
            outcome: Some(outcome),
            ..Default::default()
        },
    }
}

// Variants hold protobuf messages by value, built once and moved to one reader; boxing
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Found {
    Outcome(Outcome),
    Waiting(watch::Receiver<Progress>),
}

/// Look an existing update up; wait on it if it is still in flight.
async fn find(shard: &ShardContext, key: &ExecutionKey, id: &str) -> Result<Found, HistoryError> {
    let found = shard
        .with_updates(key, |ms, run| {
            let status = update::status(ms, &run.registry, id)?;
            Some(match status {
                Status::Admitted => Ok(run.subscribe(id, Progress::Admitted)),
                Status::Accepted => Ok(run.subscribe(id, Progress::Accepted)),
                other => Err(other),
            })
        })
        .await?;
    match found {
        None => Err(WorkflowError::NotFound(format!("update {id:?} not found")).into()),
        Some(Ok(rx)) => Ok(Found::Waiting(rx)),
        Some(Err(Status::Completed { event_id })) => {
            Ok(Found::Outcome(outcome_of(shard, key, event_id).await?))
        }
        Some(Err(Status::Finished(o))) => Ok(Found::Outcome(o)),
        Some(Err(_)) => Err(HistoryError::Workflow(WorkflowError::Internal(
            "update status changed under the lock".into(),
        ))),
    }
}

/// The outcome in WorkflowExecutionUpdateCompleted event `event_id`.
async fn outcome_of(
    shard: &ShardContext,
    key: &ExecutionKey,
    event_id: i64,
) -> Result<Outcome, HistoryError> {
    let (events, _) = shard
        .events_between(key, event_id, Some(event_id + 1))
        .await?;
    match events.into_iter().next().and_then(|e| e.attributes) {
        Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a)) => {
            Ok(a.outcome.unwrap_or_default())
        }
        _ => Err(HistoryError::Workflow(WorkflowError::Internal(format!(
            "event {event_id} is not the update's completed event"
        )))),
    }
}

fn stage_of(p: &Progress) -> Stage {
    match p {
        Progress::Admitted | Progress::Aborted(_) => Stage::Admitted,
        Progress::Accepted => Stage::Accepted,
        Progress::Done(_) => Stage::Completed,
    }
}

fn abort_error(reason: Abort) -> HistoryError {
    match reason {
        Abort::WorkflowClosed => HistoryError::Workflow(WorkflowError::NotFound(
            "workflow update was aborted by closing workflow".into(),
        )),
        Abort::Retry => HistoryError::UpdateAborted,
        Abort::WorkflowTaskFailed => HistoryError::Workflow(WorkflowError::WorkflowNotReady(
            "Unable to perform workflow execution update due to unexpected workflow task failure."
                .into(),
        )),
    }
}

/// Wait until update `id` reaches `want` (or finishes), or until `deadline`, then say where it
/// got. `want` UNSPECIFIED: answer at once.
async fn wait(
    shard: &Arc<ShardContext>,
    key: &ExecutionKey,
    id: &str,
    mut rx: watch::Receiver<Progress>,
    want: Stage,
    deadline: Instant,
) -> Result<Reached, HistoryError> {
    // Holding the entry keeps the cache from evicting the run (and its updates) meanwhile.
    let _entry = shard.entry(key);
    loop {
        let now = rx.borrow_and_update().clone();
        match &now {
            Progress::Done(outcome) => return Ok(Reached::Outcome(outcome.clone())),
            Progress::Aborted(reason) => return Err(abort_error(*reason)),
            Progress::Accepted if want == Stage::Accepted => {
                return Ok(Reached::Stage(Stage::Accepted));
            }
            _ if want == Stage::Unspecified => return Ok(Reached::Stage(stage_of(&now))),
            _ => {}
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() && !matches!(&*rx.borrow(), Progress::Done(_) | Progress::Aborted(_)) {
                    // The run's in-memory updates were dropped: look again. An admitted
                    // update is gone (the caller sends it again); an accepted one is in the
                    // stored state.
                    rx = match find(shard, key, id).await {
                        Ok(Found::Waiting(rx)) => rx,
                        Ok(Found::Outcome(o)) => return Ok(Reached::Outcome(o)),
                        Err(_) => return Err(HistoryError::UpdateAborted),
                    };
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(Reached::Stage(stage_of(&now))),
            _ = shard.cancel.cancelled() => return Err(HistoryError::UpdateAborted),
        }
    }
}
