//! StartWorkflowExecution: request-id idempotency, workflow id reuse and conflict policies.

use temper_persistence::{CurrentExecution, CurrentRunCondition, ExecutionKey, run_state};
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::{Payload, Payloads};
use temper_proto::temporal::api::enums::v1::{
    WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temper_proto::temporal::api::workflowservice::v1::{
    SignalWithStartWorkflowExecutionRequest, SignalWithStartWorkflowExecutionResponse,
    StartWorkflowExecutionRequest, StartWorkflowExecutionResponse,
};
use temper_types::NamespaceId;
use temper_workflow::{close, pb, signal_with_start, start};

use crate::error::AlreadyStartedReason;

use crate::shard::current_run_conflict;
use crate::{HistoryEngine, HistoryError};

const MAX_RACES: usize = 5;

/// A link to a run's WorkflowExecutionStarted event, as Temporal's start responses carry.
pub(crate) fn started_event_link(
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
) -> temper_proto::temporal::api::common::v1::Link {
    use temper_proto::temporal::api::common::v1::link;
    temper_proto::temporal::api::common::v1::Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: namespace.to_owned(),
            workflow_id: workflow_id.to_owned(),
            run_id: run_id.to_owned(),
            reference: Some(link::workflow_event::Reference::EventRef(
                link::workflow_event::EventReference {
                    event_id: 1,
                    event_type:
                        temper_proto::temporal::api::enums::v1::EventType::WorkflowExecutionStarted
                            as i32,
                },
            )),
        })),
    }
}

/// The origin of a run a parent workflow starts as its child.
pub(crate) fn origin_of(
    parent: Option<internal::ParentExecution>,
    scheduled_by: String,
) -> start::Origin {
    let scheduled_by = (!scheduled_by.is_empty()).then_some(scheduled_by);
    let Some(p) = parent else {
        return start::Origin {
            scheduled_by,
            ..Default::default()
        };
    };
    start::Origin {
        parent: Some(pb::ParentInfo {
            namespace_id: p.namespace_id,
            namespace: p.namespace,
            execution: p.execution,
            initiated_event_id: p.initiated_event_id,
        }),
        root: p.root_execution,
        continued: None,
        scheduled_by,
        system: false,
    }
}

pub(crate) async fn start(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: StartWorkflowExecutionRequest,
    origin: start::Origin,
) -> Result<StartWorkflowExecutionResponse, HistoryError> {
    start_with_update(engine, ns, req, origin, None).await
}

/// [`start`]; for update-with-start, `update` is admitted to the new run as it is created
/// (so its first workflow task carries it).
pub(crate) async fn start_with_update(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: StartWorkflowExecutionRequest,
    origin: start::Origin,
    update: Option<&temper_proto::temporal::api::update::v1::Request>,
) -> Result<StartWorkflowExecutionResponse, HistoryError> {
    let shard = engine.shard(ns, &req.workflow_id)?;
    start::validate(&req, &shard.limits)?;
    let request_id = if req.request_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        req.request_id.clone()
    };
    let reuse = WorkflowIdReusePolicy::try_from(req.workflow_id_reuse_policy)
        .unwrap_or(WorkflowIdReusePolicy::Unspecified);
    let conflict = WorkflowIdConflictPolicy::try_from(req.workflow_id_conflict_policy)
        .unwrap_or(WorkflowIdConflictPolicy::Unspecified);
    // The current run is not read before the first attempt: a new workflow id is the common
    // case, so the run is created under MustNotExist, and if the id is taken the conflict
    // hands back the current run the store has, for the policies to decide on.
    let mut known: Option<Option<CurrentExecution>> = Some(None);
    for _ in 0..MAX_RACES {
        let run_id = temper_types::new_run_id();
        let current = match known.take() {
            Some(current) => current,
            None => shard.current_run(ns, &req.workflow_id).await?,
        };
        let condition = match current {
            None => CurrentRunCondition::MustNotExist,
            Some(current) => {
                if current.create_request_id == request_id {
                    return Ok(StartWorkflowExecutionResponse {
                        run_id: current.run_id,
                        started: true,
                        status: current.status,
                        ..Default::default()
                    });
                }
                let already = || HistoryError::AlreadyStarted {
                    workflow_id: req.workflow_id.clone(),
                    run_id: current.run_id.clone(),
                    start_request_id: current.create_request_id.clone(),
                    reason: AlreadyStartedReason::Running,
                };
                if current.state != run_state::COMPLETED {
                    #[allow(deprecated)]
                    let terminate = conflict == WorkflowIdConflictPolicy::TerminateExisting
                        || reuse == WorkflowIdReusePolicy::TerminateIfRunning;
                    if conflict == WorkflowIdConflictPolicy::UseExisting {
                        if req.on_conflict_options.is_some() {
                            let key = ExecutionKey {
                                namespace_id: ns.clone(),
                                workflow_id: req.workflow_id.clone(),
                                run_id: current.run_id.clone(),
                            };
                            match shard
                                .transact(&key, |txn| start::attach_on_conflict(txn, &req))
                                .await
                            {
                                Ok(_) => {}
                                // It closed meanwhile: start a new run after all.
                                Err(HistoryError::Workflow(
                                    temper_workflow::WorkflowError::AlreadyCompleted,
                                )) => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        return Ok(StartWorkflowExecutionResponse {
                            run_id: current.run_id,
                            started: false,
                            status: WorkflowExecutionStatus::Running as i32,
                            ..Default::default()
                        });
                    }
                    if !terminate {
                        return Err(already());
                    }
                    let key = ExecutionKey {
                        namespace_id: ns.clone(),
                        workflow_id: req.workflow_id.clone(),
                        run_id: current.run_id.clone(),
                    };
                    terminate_for(&shard, &key, &run_id).await?;
                } else {
                    reuse_allowed(reuse, &req.workflow_id, &current)?;
                }
                CurrentRunCondition::RunIdIs(current.run_id.clone())
            }
        };
        let now = shard.now();
        let (mut ms, mut mutation) = start::new_execution(
            start::NewRun {
                namespace_id: &ns.0,
                run_id: &run_id,
                request_id: &request_id,
                now,
                origin: origin.clone(),
            },
            &req,
            &shard.limits,
        );
        // The frontend clears the request when eager start is off.
        let eager = req.request_eager_execution
            && start::start_first_task_eagerly(
                &mut ms,
                &mut mutation,
                now,
                &shard.limits,
                &request_id,
                &req.identity,
            );
        let started_state = eager.then(|| ms.clone());
        let key = ExecutionKey {
            namespace_id: ns.clone(),
            workflow_id: req.workflow_id.clone(),
            run_id: run_id.clone(),
        };
        let admit = |run: &mut crate::updates::RunUpdates| {
            if let Some(u) = update.filter(|_| !eager) {
                temper_workflow::update::admit_with_start(&mut run.registry, u);
            }
        };
        match shard
            .create_with(&key, ms, condition, mutation, admit)
            .await
        {
            Ok(()) => {
                // The run exists now: if its history cannot be read back, the caller still
                // gets the run, and the started task times out and goes to matching.
                let eager_workflow_task = match started_state {
                    Some(ms) => {
                        match super::workflow_task::poll_response(
                            &shard,
                            &key,
                            &ms,
                            false,
                            Vec::new(),
                        )
                        .await
                        {
                            Ok(task) => Some(task),
                            Err(e) => {
                                tracing::warn!(error = %e, "eager workflow task not returned");
                                None
                            }
                        }
                    }
                    None => None,
                };
                return Ok(StartWorkflowExecutionResponse {
                    // A link to the new run's started event (a Nexus handler passes it
                    // back to the operation's caller).
                    link: Some(started_event_link(
                        &req.namespace,
                        &req.workflow_id,
                        &run_id,
                    )),
                    run_id,
                    started: true,
                    status: WorkflowExecutionStatus::Running as i32,
                    eager_workflow_task,
                    ..Default::default()
                });
            }
            Err(e) => match current_run_conflict(&e) {
                Some(actual) => known = Some(actual),
                None => return Err(e.into()),
            },
        }
    }
    Err(HistoryError::Busy)
}

/// SignalWithStartWorkflowExecution: signal the running workflow with this id (or, under
/// TERMINATE_EXISTING, terminate it and start anew), or start a new run (under the id reuse
/// policy) whose first event after WorkflowExecutionStarted is the signal. The request's links
/// go on the signal's event (and the started event of a run it starts); the response links to
/// the signal's event by its request id.
pub(crate) async fn signal_with_start(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    mut req: SignalWithStartWorkflowExecutionRequest,
) -> Result<SignalWithStartWorkflowExecutionResponse, HistoryError> {
    let shard = engine.shard(ns, &req.workflow_id)?;
    signal_with_start::validate(&req, &shard.limits)?;
    if req.request_id.is_empty() {
        req.request_id = uuid::Uuid::new_v4().to_string();
    }
    let request_id = req.request_id.clone();
    let start_req = signal_with_start::start_request(&req, &request_id);
    let signal = || temper_workflow::signal::Signal {
        name: &req.signal_name,
        input: req.signal_input.clone(),
        identity: &req.identity,
        header: req.header.clone(),
        request_id: &request_id,
        external_execution: None,
        links: req.links.clone(),
    };
    let answer = |run_id: String, started: bool| SignalWithStartWorkflowExecutionResponse {
        signal_link: Some(super::signal_link(
            &req.namespace,
            &req.workflow_id,
            &run_id,
            &request_id,
        )),
        run_id,
        started,
        ..Default::default()
    };
    let reuse = WorkflowIdReusePolicy::try_from(req.workflow_id_reuse_policy)
        .unwrap_or(WorkflowIdReusePolicy::Unspecified);
    for _ in 0..MAX_RACES {
        let run_id = temper_types::new_run_id();
        let condition = match shard.current_run(ns, &req.workflow_id).await? {
            None => CurrentRunCondition::MustNotExist,
            Some(current) if current.state != run_state::COMPLETED => {
                let key = ExecutionKey {
                    namespace_id: ns.clone(),
                    workflow_id: req.workflow_id.clone(),
                    run_id: current.run_id.clone(),
                };
                if signal_with_start::terminates_running(&req) {
                    terminate_for(&shard, &key, &run_id).await?;
                    CurrentRunCondition::RunIdIs(current.run_id.clone())
                } else {
                    match shard
                        .transact(&key, |txn| temper_workflow::signal::signal(txn, signal()))
                        .await
                    {
                        Ok(_) => return Ok(answer(current.run_id, false)),
                        // It closed meanwhile: start a new run instead.
                        Err(HistoryError::Workflow(
                            temper_workflow::WorkflowError::AlreadyCompleted,
                        )) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            Some(current) => {
                reuse_allowed(reuse, &req.workflow_id, &current)?;
                CurrentRunCondition::RunIdIs(current.run_id.clone())
            }
        };
        let (ms, mutation) = start::new_execution_with_signal(
            start::NewRun {
                namespace_id: &ns.0,
                run_id: &run_id,
                request_id: &request_id,
                now: shard.now(),
                origin: start::Origin::default(),
            },
            &start_req,
            Some(signal()),
            &shard.limits,
        );
        let key = ExecutionKey {
            namespace_id: ns.clone(),
            workflow_id: req.workflow_id.clone(),
            run_id: run_id.clone(),
        };
        match shard.create(&key, ms, condition, mutation).await {
            Ok(()) => return Ok(answer(run_id, true)),
            Err(e) if current_run_conflict(&e).is_some() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HistoryError::Busy)
}

/// Terminate the running run `key` to make way for the new run `new_run_id` (TERMINATE_EXISTING,
/// TERMINATE_IF_RUNNING), as the Temporal server words it; one that closed meanwhile is fine.
async fn terminate_for(
    shard: &crate::shard::ShardContext,
    key: &ExecutionKey,
    new_run_id: &str,
) -> Result<(), HistoryError> {
    let details = Payloads {
        payloads: vec![Payload {
            metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
            data: format!("\"terminated by new runID: {new_run_id}\"").into_bytes(),
            ..Default::default()
        }],
    };
    match shard
        .transact(key, |txn| {
            close::terminate(
                txn,
                "TerminateIfRunning WorkflowIdReusePolicy",
                Some(details.clone()),
                close::IDENTITY_HISTORY_SERVICE,
            )
        })
        .await
    {
        Ok(_) | Err(HistoryError::Workflow(temper_workflow::WorkflowError::AlreadyCompleted)) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// May a new run take the id of `current`, a closed run, under `reuse`? If not, Temporal's
/// "already started" error, saying why.
fn reuse_allowed(
    reuse: WorkflowIdReusePolicy,
    workflow_id: &str,
    current: &temper_persistence::CurrentExecution,
) -> Result<(), HistoryError> {
    let reason = match reuse {
        WorkflowIdReusePolicy::RejectDuplicate => AlreadyStartedReason::Finished,
        WorkflowIdReusePolicy::AllowDuplicateFailedOnly
            if current.status == WorkflowExecutionStatus::Completed as i32 =>
        {
            AlreadyStartedReason::FinishedSuccessfully
        }
        _ => return Ok(()),
    };
    Err(HistoryError::AlreadyStarted {
        workflow_id: workflow_id.to_owned(),
        run_id: current.run_id.clone(),
        start_request_id: current.create_request_id.clone(),
        reason,
    })
}
