//! Standalone Nexus operations: every call on one operation runs here, on the shard of its
//! run (workflow id `temporal-sys-nexus-operation:<operation id>`;
//! `temper_workflow::standalone_nexus` says how the run holds the operation). Start makes the
//! run under the id reuse and conflict policies; Describe and Poll read it (and long-poll on
//! its changes); RequestCancel and Terminate are transactions on it; Delete removes it as
//! DeleteWorkflowExecution does.

use std::time::Duration;

use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::nexus_operation_execution_call_request::Call;
use temper_proto::internal::v1::nexus_operation_execution_call_response::Response as Answer;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{
    NexusOperationExecutionStatus, NexusOperationIdConflictPolicy, NexusOperationIdReusePolicy,
    NexusOperationWaitStage, PendingNexusOperationState,
};
use temper_proto::temporal::api::nexus::v1::{
    NexusOperationExecutionCancellationInfo, NexusOperationExecutionInfo,
};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::NamespaceId;
use temper_workflow::time::{dur, from_ts};
use temper_workflow::{WorkflowError, pb, standalone_nexus as so, start};

use super::standalone_run::{PollToken, Reuse, StartRun, long_poll_wait, transitions};
use crate::shard::ShardContext;
use crate::{HistoryEngine, HistoryError};

pub(crate) async fn call(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    r: internal::NexusOperationExecutionCallRequest,
) -> Result<internal::NexusOperationExecutionCallResponse, HistoryError> {
    let workflow_id = temper_types::standalone_nexus_operation_workflow_id(&r.operation_id);
    let shard = engine.shard(ns, &workflow_id)?;
    let on = OnOperation {
        shard: &shard,
        ns,
        operation_id: &r.operation_id,
        workflow_id: &workflow_id,
        wait: long_poll_wait(r.long_poll_timeout_ms),
    };
    let answer = match r.call {
        Some(Call::Start(s)) => Answer::Start(on.start(s, &r.endpoint_id).await?),
        Some(Call::Describe(d)) => Answer::Describe(on.describe(d).await?),
        Some(Call::Poll(p)) => Answer::Poll(on.poll(p).await?),
        Some(Call::RequestCancel(c)) => {
            let (key, _) = on.load(&c.run_id).await?;
            shard
                .transact(&key, |txn| {
                    so::request_cancel(txn, &c.reason, &c.identity, &c.request_id)
                })
                .await?;
            Answer::RequestCancel(Default::default())
        }
        Some(Call::Terminate(t)) => {
            let (key, _) = on.load(&t.run_id).await?;
            shard
                .transact(&key, |txn| {
                    so::terminate(txn, &t.reason, &t.identity, &t.request_id)
                })
                .await?;
            Answer::Terminate(Default::default())
        }
        Some(Call::Delete(d)) => {
            let (key, _) = on.load(&d.run_id).await?;
            super::delete::delete(
                engine,
                ns,
                ws::DeleteWorkflowExecutionRequest {
                    namespace: d.namespace,
                    workflow_execution: Some(WorkflowExecution {
                        workflow_id: key.workflow_id,
                        run_id: key.run_id,
                    }),
                },
            )
            .await?;
            Answer::Delete(Default::default())
        }
        None => {
            return Err(WorkflowError::InvalidArgument(
                "no Nexus operation call in the request".into(),
            )
            .into());
        }
    };
    Ok(internal::NexusOperationExecutionCallResponse {
        response: Some(answer),
    })
}

/// NOT_FOUND for an operation id with no operation (or not that run), in Temporal's words.
fn not_found(operation_id: &str) -> HistoryError {
    HistoryError::Workflow(WorkflowError::NotFound(format!(
        "operation not found for ID: {operation_id}"
    )))
}

struct OnOperation<'a> {
    shard: &'a ShardContext,
    ns: &'a NamespaceId,
    operation_id: &'a str,
    workflow_id: &'a str,
    wait: Duration,
}

impl OnOperation<'_> {
    /// The run of the operation (its current one when `run_id` is empty), and its state.
    async fn load(&self, run_id: &str) -> Result<(ExecutionKey, pb::MutableState), HistoryError> {
        super::standalone_run::load(
            self.shard,
            self.ns,
            self.workflow_id,
            run_id,
            so::is_standalone,
            || not_found(self.operation_id),
        )
        .await
    }

    async fn start(
        &self,
        mut r: ws::StartNexusOperationExecutionRequest,
        endpoint_id: &str,
    ) -> Result<ws::StartNexusOperationExecutionResponse, HistoryError> {
        so::validate(&mut r, self.shard.limits.max_payload_bytes)?;
        if endpoint_id.is_empty() {
            return Err(
                WorkflowError::InvalidArgument("no endpoint id in the request".into()).into(),
            );
        }
        let request_id = if r.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            r.request_id.clone()
        };
        let reuse = match NexusOperationIdReusePolicy::try_from(r.id_reuse_policy) {
            Ok(NexusOperationIdReusePolicy::RejectDuplicate) => Reuse::RejectDuplicate,
            Ok(NexusOperationIdReusePolicy::AllowDuplicateFailedOnly) => {
                Reuse::AllowDuplicateFailedOnly
            }
            _ => Reuse::AllowDuplicate,
        };
        let use_existing = NexusOperationIdConflictPolicy::try_from(r.id_conflict_policy)
            == Ok(NexusOperationIdConflictPolicy::UseExisting);
        let run = StartRun {
            shard: self.shard,
            ns: self.ns,
            workflow_id: self.workflow_id,
            request_id: &request_id,
            reuse,
            use_existing,
        };
        let already = |current: &temper_persistence::CurrentExecution| {
            HistoryError::NexusOperationAlreadyStarted {
                run_id: current.run_id.clone(),
                start_request_id: current.create_request_id.clone(),
            }
        };
        // The handler's idempotency key: new for each operation.
        let operation_request_id = uuid::Uuid::new_v4().to_string();
        let (run_id, started) = run
            .start(already, |run_id, now| {
                let (ms, mutation, ()) = start::new_system_run(
                    start::NewRun {
                        namespace_id: &self.ns.0,
                        run_id,
                        request_id: &request_id,
                        now,
                        origin: Default::default(),
                    },
                    &so::run_request(&r, &request_id, &operation_request_id),
                    &self.shard.limits,
                    |txn| so::start(txn, &r, endpoint_id, &operation_request_id),
                );
                Ok((ms, mutation))
            })
            .await?;
        Ok(ws::StartNexusOperationExecutionResponse { run_id, started })
    }

    async fn describe(
        &self,
        r: ws::DescribeNexusOperationExecutionRequest,
    ) -> Result<ws::DescribeNexusOperationExecutionResponse, HistoryError> {
        if !r.long_poll_token.is_empty() && r.run_id.is_empty() {
            return Err(WorkflowError::InvalidArgument(
                "run_id is required when long_poll_token is provided".into(),
            )
            .into());
        }
        let (key, mut ms) = self.load(&r.run_id).await?;
        if !r.long_poll_token.is_empty() {
            let seen = PollToken::decode(&r.long_poll_token)?;
            if seen.run_id != key.run_id {
                return Err(WorkflowError::InvalidArgument(
                    "long poll token does not match execution".into(),
                )
                .into());
            }
            match super::standalone_run::wait_for(self.shard, &key, self.wait, |ms| {
                transitions(ms) != seen.transitions
            })
            .await?
            {
                Some(changed) => ms = changed,
                // Nothing changed in time: an empty answer, and the caller asks again.
                None => return Ok(Default::default()),
            }
        }
        Ok(describe_response(&key, &ms, &r, self.shard.now()))
    }

    async fn poll(
        &self,
        r: ws::PollNexusOperationExecutionRequest,
    ) -> Result<ws::PollNexusOperationExecutionResponse, HistoryError> {
        let stage = match NexusOperationWaitStage::try_from(r.wait_stage) {
            Ok(NexusOperationWaitStage::Started) => NexusOperationWaitStage::Started,
            Ok(NexusOperationWaitStage::Closed | NexusOperationWaitStage::Unspecified) => {
                NexusOperationWaitStage::Closed
            }
            Err(_) => {
                return Err(WorkflowError::InvalidArgument(format!(
                    "unsupported wait_stage: {}",
                    r.wait_stage
                ))
                .into());
            }
        };
        let (key, _) = self.load(&r.run_id).await?;
        let Some(ms) = super::standalone_run::wait_for(self.shard, &key, self.wait, |ms| {
            so::reached(ms, stage)
        })
        .await?
        else {
            // Not there yet: an empty answer, and the caller polls again.
            return Ok(Default::default());
        };
        Ok(poll_response(&key, &ms))
    }
}

fn poll_response(
    key: &ExecutionKey,
    ms: &pb::MutableState,
) -> ws::PollNexusOperationExecutionResponse {
    use ws::poll_nexus_operation_execution_response::Outcome;
    let op = so::current(ms).unwrap_or_default();
    let outcome = so::outcome(ms);
    ws::PollNexusOperationExecutionResponse {
        run_id: key.run_id.clone(),
        wait_stage: if outcome.is_some() {
            NexusOperationWaitStage::Closed
        } else {
            NexusOperationWaitStage::Started
        } as i32,
        operation_token: op.operation_token,
        outcome: outcome.map(|o| match o {
            Ok(result) => Outcome::Result(result),
            Err(failure) => Outcome::Failure(failure),
        }),
    }
}

fn describe_response(
    key: &ExecutionKey,
    ms: &pb::MutableState,
    r: &ws::DescribeNexusOperationExecutionRequest,
    now: std::time::SystemTime,
) -> ws::DescribeNexusOperationExecutionResponse {
    use ws::describe_nexus_operation_execution_response::Outcome;
    let info = ms.execution_info.clone().unwrap_or_default();
    let record = ms.standalone_nexus_operation.clone().unwrap_or_default();
    let op = so::current(ms).unwrap_or_default();
    let status = so::status(ms);
    let running = status == NexusOperationExecutionStatus::Running;
    let scheduled = op.scheduled_time.as_ref().map(from_ts);
    let execution_duration = scheduled.and_then(|s| {
        let end = record.close_time.as_ref().map(from_ts).unwrap_or(now);
        end.duration_since(s).ok().and_then(dur)
    });
    let mut search_attributes = info.search_attributes.clone().unwrap_or_default();
    so::take_internal(&mut search_attributes);
    let outcome = so::outcome(ms);
    // A failure the handler's start attempt ended with (it never started the operation) is
    // also the last attempt's, as Temporal shows it; so is a timeout before the start.
    let failed_attempt = match &outcome {
        Some(Err(f))
            if op.started_event_id == 0 && status != NexusOperationExecutionStatus::Terminated =>
        {
            Some(f.clone())
        }
        _ => None,
    };
    let in_flight = running && op.started_event_id == 0 && op.next_attempt_schedule_time.is_none();
    let operation = NexusOperationExecutionInfo {
        operation_id: record.operation_id.clone(),
        run_id: key.run_id.clone(),
        endpoint: op.endpoint.clone(),
        service: op.service.clone(),
        operation: op.operation.clone(),
        status: status as i32,
        state: if running {
            super::describe::pending_nexus_state(&op) as i32
        } else {
            PendingNexusOperationState::Unspecified as i32
        },
        schedule_to_close_timeout: op.schedule_to_close_timeout,
        schedule_to_start_timeout: op.schedule_to_start_timeout,
        start_to_close_timeout: op.start_to_close_timeout,
        // Attempts made so far, counting the one in flight.
        attempt: (op.attempt + i32::from(in_flight)).max(1),
        schedule_time: op.scheduled_time,
        expiration_time: so::expiration_time(&op),
        close_time: record.close_time,
        last_attempt_complete_time: if failed_attempt.is_some() {
            record.close_time
        } else {
            op.last_attempt_complete_time
        },
        last_attempt_failure: failed_attempt.or_else(|| op.last_attempt_failure.clone()),
        next_attempt_schedule_time: op.next_attempt_schedule_time.filter(|_| running),
        execution_duration,
        cancellation_info: record.cancellation.as_ref().map(|c| {
            // Until the handler started the operation the request waits, with no state of
            // its own (Temporal shows only the reason, and never the time asked).
            let waiting = op.started_event_id == 0 && !c.delivered;
            NexusOperationExecutionCancellationInfo {
                state: if waiting {
                    0
                } else {
                    so::cancellation_state(c) as i32
                },
                attempt: if waiting { 0 } else { c.attempt.max(1) },
                last_attempt_complete_time: c.last_attempt_complete_time,
                last_attempt_failure: c.failure.clone(),
                reason: c.reason.clone(),
                ..Default::default()
            }
        }),
        request_id: op.request_id.clone(),
        operation_token: op.operation_token.clone(),
        state_transition_count: info.state_transition_count,
        // What the run's state takes stored.
        state_size_bytes: prost::Message::encoded_len(ms) as i64,
        search_attributes: (!search_attributes.indexed_fields.is_empty())
            .then_some(search_attributes),
        nexus_header: op.nexus_header.clone(),
        user_metadata: record.user_metadata.clone(),
        links: record.links.clone(),
        identity: record.identity.clone(),
        ..Default::default()
    };
    ws::DescribeNexusOperationExecutionResponse {
        run_id: key.run_id.clone(),
        info: Some(operation),
        input: if r.include_input {
            op.input.clone()
        } else {
            None
        },
        outcome: if r.include_outcome {
            outcome.map(|o| match o {
                Ok(result) => Outcome::Result(result),
                Err(failure) => Outcome::Failure(failure),
            })
        } else {
            None
        },
        long_poll_token: PollToken::encode(&key.run_id, transitions(ms)),
        completion_callbacks: temper_workflow::callbacks::infos(ms)
            .into_iter()
            .map(|info| {
                use temper_proto::temporal::api::nexusoperation::v1::{
                    CallbackInfo, callback_info,
                };
                CallbackInfo {
                    trigger: Some(callback_info::Trigger {
                        variant: Some(callback_info::trigger::Variant::OperationCompleted(
                            callback_info::OperationCompleted {},
                        )),
                    }),
                    info: Some(info),
                }
            })
            .collect(),
    }
}
