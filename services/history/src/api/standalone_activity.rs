//! Standalone activities: every call on one activity runs here, on the shard of its run
//! (workflow id `temporal-sys-activity:<activity id>`; `temper_workflow::standalone` says
//! how the run holds the activity). Start makes the run under the id reuse and conflict
//! policies; Describe and Poll read it (and long-poll on its changes); RequestCancel and
//! Terminate are transactions on it; Delete removes it as DeleteWorkflowExecution does.

use std::time::Duration;

use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::activity_execution_call_request::Call;
use temper_proto::internal::v1::activity_execution_call_response::Response as Answer;
use temper_proto::temporal::api::activity::v1::{
    ActivityExecutionInfo, ActivityExecutionOutcome, activity_execution_outcome,
};
use temper_proto::temporal::api::common::v1::{Link, WorkflowExecution, link};
use temper_proto::temporal::api::enums::v1::{
    ActivityExecutionStatus, ActivityIdConflictPolicy, ActivityIdReusePolicy, PendingActivityState,
};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::NamespaceId;
use temper_workflow::time::{dur, from_ts};
use temper_workflow::{WorkflowError, pb, standalone, start};

use super::standalone_run::{PollToken, Reuse, StartRun, long_poll_wait, transitions};
use crate::shard::ShardContext;
use crate::{HistoryEngine, HistoryError};
/// The search attribute that keeps the runs out of workflow lists; describe does not show it.
const DIVISION_ATTRIBUTE: &str = "TemporalNamespaceDivision";

pub(crate) async fn call(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    r: internal::ActivityExecutionCallRequest,
) -> Result<internal::ActivityExecutionCallResponse, HistoryError> {
    let workflow_id = temper_types::standalone_activity_workflow_id(&r.activity_id);
    let shard = engine.shard(ns, &workflow_id)?;
    let on = OnActivity {
        shard: &shard,
        ns,
        activity_id: &r.activity_id,
        workflow_id: &workflow_id,
        wait: long_poll_wait(r.long_poll_timeout_ms),
    };
    let answer = match r.call {
        Some(Call::Start(s)) => Answer::Start(on.start(s).await?),
        Some(Call::Describe(d)) => Answer::Describe(on.describe(d).await?),
        Some(Call::Poll(p)) => Answer::Poll(on.poll(p).await?),
        Some(Call::RequestCancel(c)) => {
            on.request_cancel(c).await?;
            Answer::RequestCancel(Default::default())
        }
        Some(Call::Terminate(t)) => {
            on.terminate(t).await?;
            Answer::Terminate(Default::default())
        }
        Some(Call::Delete(d)) => {
            on.delete(engine, d).await?;
            Answer::Delete(Default::default())
        }
        None => {
            return Err(
                WorkflowError::InvalidArgument("no activity call in the request".into()).into(),
            );
        }
    };
    Ok(internal::ActivityExecutionCallResponse {
        response: Some(answer),
    })
}

struct OnActivity<'a> {
    shard: &'a ShardContext,
    ns: &'a NamespaceId,
    activity_id: &'a str,
    workflow_id: &'a str,
    wait: Duration,
}

impl OnActivity<'_> {
    fn not_found(&self) -> HistoryError {
        not_found(self.activity_id)
    }

    fn started(
        &self,
        namespace: String,
        run_id: String,
        started: bool,
    ) -> ws::StartActivityExecutionResponse {
        ws::StartActivityExecutionResponse {
            link: Some(Link {
                variant: Some(link::Variant::Activity(link::Activity {
                    namespace,
                    activity_id: self.activity_id.to_owned(),
                    run_id: run_id.clone(),
                })),
            }),
            run_id,
            started,
        }
    }

    /// The run of the activity (its current one when `run_id` is empty), and its state.
    async fn load(&self, run_id: &str) -> Result<(ExecutionKey, pb::MutableState), HistoryError> {
        super::standalone_run::load(
            self.shard,
            self.ns,
            self.workflow_id,
            run_id,
            standalone::is_standalone,
            || self.not_found(),
        )
        .await
    }

    async fn start(
        &self,
        r: ws::StartActivityExecutionRequest,
    ) -> Result<ws::StartActivityExecutionResponse, HistoryError> {
        standalone::validate(&r)?;
        let request_id = if r.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            r.request_id.clone()
        };
        let reuse = match ActivityIdReusePolicy::try_from(r.id_reuse_policy) {
            Ok(ActivityIdReusePolicy::RejectDuplicate) => Reuse::RejectDuplicate,
            Ok(ActivityIdReusePolicy::AllowDuplicateFailedOnly) => Reuse::AllowDuplicateFailedOnly,
            _ => Reuse::AllowDuplicate,
        };
        let use_existing = ActivityIdConflictPolicy::try_from(r.id_conflict_policy)
            == Ok(ActivityIdConflictPolicy::UseExisting);
        let run = StartRun {
            shard: self.shard,
            ns: self.ns,
            workflow_id: self.workflow_id,
            request_id: &request_id,
            reuse,
            use_existing,
        };
        let already =
            |current: &temper_persistence::CurrentExecution| HistoryError::ActivityAlreadyStarted {
                activity_id: self.activity_id.to_owned(),
                run_id: current.run_id.clone(),
                start_request_id: current.create_request_id.clone(),
            };
        let (run_id, started) = run
            .start(already, |run_id, now| {
                let (ms, mutation, started) = start::new_system_run(
                    start::NewRun {
                        namespace_id: &self.ns.0,
                        run_id,
                        request_id: &request_id,
                        now,
                        origin: Default::default(),
                    },
                    &standalone::run_request(&r, &request_id),
                    &self.shard.limits,
                    |txn| standalone::start(txn, &r),
                );
                started?;
                Ok((ms, mutation))
            })
            .await?;
        Ok(self.started(r.namespace.clone(), run_id, started))
    }

    async fn describe(
        &self,
        r: ws::DescribeActivityExecutionRequest,
    ) -> Result<ws::DescribeActivityExecutionResponse, HistoryError> {
        if !r.long_poll_token.is_empty() && r.run_id.is_empty() {
            return Err(WorkflowError::InvalidArgument(
                "run id is required when long poll token is provided".into(),
            )
            .into());
        }
        let (key, mut ms) = self.load(&r.run_id).await?;
        if !r.long_poll_token.is_empty() {
            let seen = PollToken::decode(&r.long_poll_token)?;
            if seen.run_id != key.run_id {
                return Err(
                    WorkflowError::InvalidArgument("invalid long poll token".into()).into(),
                );
            }
            match self
                .wait_for(&key, |ms| transitions(ms) != seen.transitions)
                .await?
            {
                Some(changed) => ms = changed,
                // Nothing changed in time: an empty answer, as from Temporal.
                None => return Ok(Default::default()),
            }
        }
        Ok(describe_response(&key, &ms, &r))
    }

    async fn wait_for(
        &self,
        key: &ExecutionKey,
        ready: impl Fn(&pb::MutableState) -> bool,
    ) -> Result<Option<pb::MutableState>, HistoryError> {
        super::standalone_run::wait_for(self.shard, key, self.wait, ready).await
    }

    async fn poll(
        &self,
        r: ws::PollActivityExecutionRequest,
    ) -> Result<ws::PollActivityExecutionResponse, HistoryError> {
        let (key, _) = self.load(&r.run_id).await?;
        let Some(ms) = self
            .wait_for(&key, temper_workflow::close::is_closed)
            .await?
        else {
            // Still open: an empty answer, and the caller polls again.
            return Ok(Default::default());
        };
        Ok(ws::PollActivityExecutionResponse {
            run_id: key.run_id.clone(),
            outcome: outcome(&ms),
        })
    }

    async fn request_cancel(
        &self,
        r: ws::RequestCancelActivityExecutionRequest,
    ) -> Result<(), HistoryError> {
        let (key, _) = self.load(&r.run_id).await?;
        self.shard
            .transact(&key, |txn| {
                standalone::request_cancel(txn, &r.reason, &r.identity, &r.request_id)
            })
            .await?;
        Ok(())
    }

    async fn terminate(
        &self,
        r: ws::TerminateActivityExecutionRequest,
    ) -> Result<(), HistoryError> {
        let (key, _) = self.load(&r.run_id).await?;
        self.shard
            .transact(&key, |txn| {
                standalone::terminate(txn, &r.reason, &r.identity, &r.request_id)
            })
            .await?;
        Ok(())
    }

    async fn delete(
        &self,
        engine: &HistoryEngine,
        r: ws::DeleteActivityExecutionRequest,
    ) -> Result<(), HistoryError> {
        let (key, _) = self.load(&r.run_id).await?;
        super::delete::delete(
            engine,
            self.ns,
            ws::DeleteWorkflowExecutionRequest {
                namespace: r.namespace,
                workflow_execution: Some(WorkflowExecution {
                    workflow_id: key.workflow_id,
                    run_id: key.run_id,
                }),
            },
        )
        .await
    }
}

/// NOT_FOUND for an activity id with no activity (or not that run), in Temporal's words.
pub(crate) fn not_found(activity_id: &str) -> HistoryError {
    HistoryError::Workflow(WorkflowError::NotFound(format!(
        "activity not found for ID: {activity_id}"
    )))
}

/// The activity's outcome, once its run closed.
fn outcome(ms: &pb::MutableState) -> Option<ActivityExecutionOutcome> {
    if !temper_workflow::close::is_closed(ms) {
        return None;
    }
    let sa = ms.standalone_activity.as_ref()?;
    if standalone::status(ms) == ActivityExecutionStatus::Completed {
        return Some(ActivityExecutionOutcome {
            value: Some(activity_execution_outcome::Value::Result(
                sa.result.clone().unwrap_or_default(),
            )),
            retry_state: 0,
        });
    }
    Some(ActivityExecutionOutcome {
        value: sa
            .failure
            .clone()
            .map(activity_execution_outcome::Value::Failure),
        retry_state: sa.retry_state,
    })
}

fn describe_response(
    key: &ExecutionKey,
    ms: &pb::MutableState,
    r: &ws::DescribeActivityExecutionRequest,
) -> ws::DescribeActivityExecutionResponse {
    let info = ms.execution_info.clone().unwrap_or_default();
    let sa = ms.standalone_activity.clone().unwrap_or_default();
    let ai = standalone::current_info(ms).unwrap_or_default();
    let status = standalone::status(ms);
    let running = status == ActivityExecutionStatus::Running;
    let execution_duration = match (&info.close_time, &info.start_time) {
        (Some(c), Some(s)) => from_ts(c).duration_since(from_ts(s)).ok().and_then(dur),
        _ => None,
    };
    let mut search_attributes = info.search_attributes.clone().unwrap_or_default();
    search_attributes.indexed_fields.remove(DIVISION_ATTRIBUTE);
    let activity = ActivityExecutionInfo {
        activity_id: sa.activity_id.clone(),
        run_id: key.run_id.clone(),
        activity_type: ai.activity_type.clone(),
        status: status as i32,
        run_state: if running {
            super::describe::pending_state(&ai) as i32
        } else {
            PendingActivityState::Unspecified as i32
        },
        task_queue: ai
            .task_queue
            .as_ref()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
        schedule_to_close_timeout: Some(ai.schedule_to_close_timeout.unwrap_or_default()),
        schedule_to_start_timeout: Some(ai.schedule_to_start_timeout.unwrap_or_default()),
        start_to_close_timeout: Some(ai.start_to_close_timeout.unwrap_or_default()),
        heartbeat_timeout: Some(ai.heartbeat_timeout.unwrap_or_default()),
        retry_policy: ai.retry_policy.clone(),
        total_heartbeat_count: sa.total_heartbeat_count,
        sdk_name: sa.sdk_name.clone(),
        sdk_version: sa.sdk_version.clone(),
        heartbeat_details: if r.include_heartbeat_details {
            ai.heartbeat_details.clone()
        } else {
            None
        },
        last_heartbeat_time: ai.last_heartbeat_time,
        last_started_time: ai.started_time,
        attempt: ai.attempt,
        execution_duration,
        schedule_time: ai.first_scheduled_time.or(info.start_time),
        expiration_time: ai.expiration_time,
        close_time: info.close_time,
        last_failure: if r.include_last_failure {
            ai.last_failure.clone()
        } else {
            None
        },
        last_worker_identity: ai.last_worker_identity.clone(),
        last_attempt_complete_time: sa.last_attempt_complete_time,
        next_attempt_schedule_time: ai.retry_time.filter(|_| running && !ai.paused),
        priority: ai.priority.clone(),
        state_transition_count: info.state_transition_count,
        // What the run's state takes stored.
        state_size_bytes: prost::Message::encoded_len(ms) as i64,
        search_attributes: (!search_attributes.indexed_fields.is_empty())
            .then_some(search_attributes),
        header: ai.header.clone(),
        user_metadata: sa.user_metadata.clone(),
        canceled_reason: sa.canceled_reason.clone(),
        start_delay: sa.start_delay,
        execution_time: standalone::execution_time(ms),
        ..Default::default()
    };
    ws::DescribeActivityExecutionResponse {
        run_id: key.run_id.clone(),
        info: Some(activity),
        input: if r.include_input {
            ai.input.clone()
        } else {
            None
        },
        outcome: if r.include_outcome { outcome(ms) } else { None },
        long_poll_token: PollToken::encode(&key.run_id, transitions(ms)),
        callbacks: temper_workflow::callbacks::infos(ms)
            .into_iter()
            .map(|info| {
                use temper_proto::temporal::api::activity::v1::{CallbackInfo, callback_info};
                CallbackInfo {
                    trigger: Some(callback_info::Trigger {
                        variant: Some(callback_info::trigger::Variant::ActivityClosed(
                            callback_info::ActivityClosed {},
                        )),
                    }),
                    info: Some(info),
                }
            })
            .collect(),
    }
}
