//! Schedules: every call on one schedule runs here, on the shard of its run (workflow id
//! `temporal-sys-scheduler:<schedule id>`). Create makes the run; Update, Patch, Delete and
//! the close of a workflow the schedule started are transactions on it that feed the
//! scheduler state machine (`temper_schedule::scheduler`, recorded by
//! `temper_workflow::schedule`); Describe and ListScheduleMatchingTimes read it.

use temper_persistence::{CurrentRunCondition, ExecutionKey};
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::schedule_call_request::Call;
use temper_proto::internal::v1::schedule_call_response::Response as Answer;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_schedule::scheduler::{self, Input};
use temper_schedule::{CompiledSpec, MAX_LIST_MATCHING_TIMES, jitter_seed, timestamp_from_proto};
use temper_types::NamespaceId;
use temper_workflow::{Txn, WorkflowError, pb, schedule, start};

use crate::shard::ShardContext;
use crate::{HistoryEngine, HistoryError};

/// Who the server says creates a schedule's run when the request names no one.
const IDENTITY: &str = "temporal-scheduler";

pub(crate) async fn call(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: internal::ScheduleCallRequest,
) -> Result<internal::ScheduleCallResponse, HistoryError> {
    let workflow_id = temper_types::scheduler_workflow_id(&req.schedule_id);
    let shard = engine.shard(ns, &workflow_id)?;
    let target = Target {
        history: engine.history_client(),
        shard: &shard,
        ns,
        namespace: &req.namespace,
        schedule_id: &req.schedule_id,
        workflow_id: &workflow_id,
    };
    let Some(call) = req.call else {
        return Err(invalid("the schedule call names no operation"));
    };
    let response = match call {
        Call::Create(r) => Answer::Create(target.create(r).await?),
        Call::Describe(_) => Answer::Describe(target.describe().await?),
        Call::Update(r) => Answer::Update(target.update(r).await?),
        Call::Patch(r) => Answer::Patch(target.patch(r).await?),
        Call::Delete(r) => Answer::Delete(target.delete(r).await?),
        Call::ListMatchingTimes(r) => Answer::ListMatchingTimes(target.matching_times(r).await?),
        Call::WorkflowClosed(c) => Answer::WorkflowClosed(target.workflow_closed(c).await?),
    };
    Ok(internal::ScheduleCallResponse {
        response: Some(response),
    })
}

fn invalid(m: impl Into<String>) -> HistoryError {
    HistoryError::Workflow(WorkflowError::InvalidArgument(m.into()))
}

struct Target<'a> {
    history: Option<temper_client::HistoryClient>,
    shard: &'a ShardContext,
    ns: &'a NamespaceId,
    namespace: &'a str,
    schedule_id: &'a str,
    workflow_id: &'a str,
}

impl Target<'_> {
    fn not_found(&self) -> HistoryError {
        HistoryError::Workflow(WorkflowError::NotFound(format!(
            "workflow not found for ID: {}",
            self.workflow_id
        )))
    }

    fn key(&self, run_id: String) -> ExecutionKey {
        ExecutionKey {
            namespace_id: self.ns.clone(),
            workflow_id: self.workflow_id.to_owned(),
            run_id,
        }
    }

    /// The schedule's current run.
    async fn current(&self) -> Result<ExecutionKey, HistoryError> {
        match self.shard.current_run(self.ns, self.workflow_id).await? {
            Some(c) => Ok(self.key(c.run_id)),
            None => Err(self.not_found()),
        }
    }

    /// The live schedule's state, or Temporal's NOT_FOUND.
    async fn state(&self) -> Result<pb::SchedulerState, HistoryError> {
        let key = self.current().await?;
        let ms = self.shard.snapshot(&key).await?;
        schedule::live(&ms).cloned().ok_or_else(|| {
            HistoryError::Workflow(WorkflowError::NotFound("schedule not found".into()))
        })
    }

    async fn transact(
        &self,
        f: impl FnMut(&mut Txn<'_>) -> Result<(), WorkflowError>,
    ) -> Result<ExecutionKey, HistoryError> {
        let key = self.current().await?;
        self.shard.transact(&key, f).await?;
        Ok(key)
    }

    /// Carry out the starts the schedule just asked for before answering, so the caller's
    /// next describe shows them (as Temporal's does after a trigger at creation). The
    /// transfer tasks committed with them do the same if this fails or the node stops.
    async fn start_now(&self, key: &ExecutionKey) {
        let Some(history) = &self.history else {
            return;
        };
        if let Err(e) = crate::cross_workflow::schedule_starts(self.shard, history, key).await {
            tracing::debug!(error = %e, schedule_id = %self.schedule_id, "scheduled starts left to the transfer queue");
        }
    }

    fn token(state: &pb::MutableState) -> Vec<u8> {
        schedule::live(state)
            .map(|s| scheduler::conflict_token_bytes(s.conflict_token))
            .unwrap_or_default()
    }

    async fn create(
        &self,
        r: ws::CreateScheduleRequest,
    ) -> Result<ws::CreateScheduleResponse, HistoryError> {
        let request_id = if r.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            r.request_id.clone()
        };
        let condition = match self.shard.current_run(self.ns, self.workflow_id).await? {
            None => CurrentRunCondition::MustNotExist,
            Some(current) if current.create_request_id == request_id => {
                // The same request again: the schedule it created.
                let ms = self.shard.snapshot(&self.key(current.run_id)).await?;
                return Ok(ws::CreateScheduleResponse {
                    conflict_token: Self::token(&ms),
                });
            }
            Some(current) if current.state != temper_persistence::run_state::COMPLETED => {
                return Err(HistoryError::ScheduleAlreadyRegistered {
                    schedule_id: self.schedule_id.to_owned(),
                    run_id: current.run_id,
                    start_request_id: current.create_request_id,
                });
            }
            Some(current) => CurrentRunCondition::RunIdIs(current.run_id),
        };
        let now = self.shard.now();
        let schedule = r.schedule.clone().unwrap_or_default();
        let (mut state, effects) = scheduler::create(
            self.namespace,
            &self.ns.0,
            self.schedule_id,
            schedule,
            r.initial_patch.clone(),
            schedule::to_jiff(now),
        )
        .map_err(|e| HistoryError::Workflow(schedule::error(e)))?;
        state.memo = r.memo.clone();
        state.search_attributes = r.search_attributes.clone();
        let identity = if r.identity.is_empty() {
            IDENTITY
        } else {
            &r.identity
        };
        let req = schedule::run_request(self.namespace, self.schedule_id, &request_id, identity);
        let run_id = temper_types::new_run_id();
        let (mut ms, mut mutation) = start::new_execution(
            start::NewRun {
                namespace_id: &self.ns.0,
                run_id: &run_id,
                request_id: &request_id,
                now,
                origin: start::Origin {
                    system: true,
                    ..Default::default()
                },
            },
            &req,
            &self.shard.limits,
        );
        let mut txn = Txn::new(&mut ms, now, &self.shard.limits);
        schedule::record(&mut txn, state, effects);
        mutation.absorb(txn.finish());
        let conflict_token = Self::token(&ms);
        let key = self.key(run_id);
        match self.shard.create(&key, ms, condition, mutation).await {
            Ok(()) => {
                self.start_now(&key).await;
                Ok(ws::CreateScheduleResponse { conflict_token })
            }
            Err(e) if crate::shard::current_run_conflict(&e).is_some() => Err(HistoryError::Busy),
            Err(e) => Err(e.into()),
        }
    }

    async fn describe(&self) -> Result<ws::DescribeScheduleResponse, HistoryError> {
        let state = self.state().await?;
        let d = scheduler::describe(&state, schedule::to_jiff(self.shard.now()));
        Ok(ws::DescribeScheduleResponse {
            schedule: Some(d.schedule),
            info: Some(d.info),
            memo: state.memo.clone(),
            search_attributes: state.search_attributes.clone(),
            conflict_token: d.conflict_token,
        })
    }

    async fn update(
        &self,
        r: ws::UpdateScheduleRequest,
    ) -> Result<ws::UpdateScheduleResponse, HistoryError> {
        let token = (!r.conflict_token.is_empty()).then(|| r.conflict_token.clone());
        let Some(new) = r.schedule.clone() else {
            return Err(invalid(
                "Only StartWorkflow action is supported for schedules",
            ));
        };
        self.transact(|txn| {
            if let Some(sa) = &r.search_attributes
                && let Some(state) = txn.ms.schedule.as_mut().and_then(|s| s.state.as_mut())
            {
                state.search_attributes = Some(sa.clone());
            }
            schedule::handle(
                txn,
                Input::Update {
                    schedule: new.clone(),
                    conflict_token: token.clone(),
                },
            )
        })
        .await?;
        Ok(ws::UpdateScheduleResponse {})
    }

    async fn patch(
        &self,
        r: ws::PatchScheduleRequest,
    ) -> Result<ws::PatchScheduleResponse, HistoryError> {
        let Some(patch) = r.patch.clone() else {
            return Err(invalid("Patch is not set on request."));
        };
        let key = self
            .transact(|txn| schedule::patch(txn, &r.request_id, patch.clone()))
            .await?;
        self.start_now(&key).await;
        Ok(ws::PatchScheduleResponse {})
    }

    async fn delete(
        &self,
        r: ws::DeleteScheduleRequest,
    ) -> Result<ws::DeleteScheduleResponse, HistoryError> {
        let identity = if r.identity.is_empty() {
            IDENTITY.to_owned()
        } else {
            r.identity
        };
        self.transact(|txn| schedule::delete(txn, &identity))
            .await?;
        Ok(ws::DeleteScheduleResponse {})
    }

    async fn matching_times(
        &self,
        r: ws::ListScheduleMatchingTimesRequest,
    ) -> Result<ws::ListScheduleMatchingTimesResponse, HistoryError> {
        let state = self.state().await?;
        let (Some(start), Some(end)) = (&r.start_time, &r.end_time) else {
            return Err(invalid("StartTime and EndTime are required"));
        };
        let spec = state
            .schedule
            .as_ref()
            .and_then(|s| s.spec.clone())
            .unwrap_or_default();
        let compiled = CompiledSpec::compile(&spec)
            .map_err(|e| invalid(e.to_string()))?
            .with_jitter_seed(jitter_seed(&self.ns.0, self.schedule_id));
        let mut start_time = Vec::new();
        for t in compiled
            .matching_times(timestamp_from_proto(start), timestamp_from_proto(end))
            .take(MAX_LIST_MATCHING_TIMES)
        {
            let t = t.map_err(|e| invalid(e.to_string()))?;
            start_time.push(temper_schedule::timestamp_to_proto(t.actual));
        }
        Ok(ws::ListScheduleMatchingTimesResponse { start_time })
    }

    async fn workflow_closed(
        &self,
        c: internal::ScheduledWorkflowClosed,
    ) -> Result<internal::ScheduledWorkflowClosedResponse, HistoryError> {
        let status =
            temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus::try_from(c.status)
                .unwrap_or_default();
        self.transact(|txn| {
            schedule::handle(
                txn,
                Input::Closed {
                    workflow_id: c.workflow_id.clone(),
                    run_id: c.first_run_id.clone(),
                    status,
                    result: c.result.clone(),
                    failure: c.failure.clone(),
                },
            )
        })
        .await?;
        Ok(internal::ScheduledWorkflowClosedResponse {})
    }
}
