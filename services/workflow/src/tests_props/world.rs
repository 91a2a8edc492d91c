//! The run a property test drives, the world around it (timer tasks, task tokens), and the
//! checks made after every input.

use std::time::Duration;

use temper_proto::temporal::api::common::v1::{RetryPolicy, WorkflowExecution};
use temper_proto::temporal::api::enums::v1::{
    StartChildWorkflowExecutionFailedCause, TimeoutType, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::failure::v1::{
    ApplicationFailureInfo, Failure, failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::temporal::api::protocol::v1::Message;
use temper_proto::temporal::api::taskqueue::v1::{StickyExecutionAttributes, TaskQueue};

use crate::activity::{self, ActivityRef};
use crate::activity_ops;
use crate::commands::complete_workflow_task;
use crate::completion::Completion;
use crate::rebuild::RebuildRun;
use crate::reset::{Reset, reset};
use crate::tests_rebuild::assert_replays;
use crate::time::dur;
use crate::update::{self, Registry};
use crate::update_tests::{Run, accept, reject, request, respond};
use crate::workflow_task::{self, StartRequest};
use crate::{
    WorkflowError, child, close, external, is_close_event, pb, signal, speculative, timer,
};

use super::*;

/// The run under test and what the world around it knows: the timer tasks not yet fired,
/// the last workflow task token handed out, and what it saw once the run closed.
pub(super) struct World {
    pub(super) run: Run,
    pub(super) timers: Vec<(std::time::SystemTime, pb::TimerTask)>,
    pub(super) last_token: Option<pb::TaskToken>,
    /// The history length and stored state when the run was first seen closed.
    pub(super) closed: Option<(usize, pb::MutableState)>,
    /// The run that continues this one (continue-as-new, retry, cron), once it closed so.
    pub(super) next: Option<crate::NewRunState>,
}

/// Ids of the events of one kind in the history, and the attributes.
fn initiated<T: Clone>(
    history: &[HistoryEvent],
    pick: impl Fn(&Attributes) -> Option<&T>,
) -> Vec<(i64, T)> {
    history
        .iter()
        .filter_map(|e| {
            e.attributes
                .as_ref()
                .and_then(&pick)
                .map(|a| (e.event_id, a.clone()))
        })
        .collect()
}

fn ids<T>(v: &[(i64, T)]) -> Vec<i64> {
    v.iter().map(|(id, _)| *id).collect()
}

impl World {
    pub(super) fn new(limits: SmallLimits) -> Self {
        let mut req = Run::request();
        match limits.start {
            StartKind::Plain => {}
            StartKind::RunTimeout => req.workflow_run_timeout = dur(Duration::from_secs(60)),
            StartKind::Retry => {
                req.retry_policy = Some(RetryPolicy {
                    maximum_attempts: 3,
                    initial_interval: dur(Duration::from_secs(1)),
                    ..Default::default()
                });
                req.workflow_run_timeout = dur(Duration::from_secs(60));
            }
            StartKind::Cron => req.cron_schedule = "* * * * *".into(),
            StartKind::Delay => req.workflow_start_delay = dur(Duration::from_secs(30)),
            StartKind::Eager | StartKind::Child | StartKind::SignalWithStart => {}
        }
        let mut origin = crate::start::Origin::default();
        if let StartKind::Child = limits.start {
            origin.parent = Some(pb::ParentInfo {
                namespace_id: "ns".into(),
                namespace: "default".into(),
                execution: Some(WorkflowExecution {
                    workflow_id: "parent".into(),
                    run_id: "parent-run".into(),
                }),
                initiated_event_id: 5,
            });
            origin.root = Some(WorkflowExecution {
                workflow_id: "parent".into(),
                run_id: "parent-run".into(),
            });
        }
        let signal = matches!(limits.start, StartKind::SignalWithStart).then(|| signal::Signal {
            name: "s0",
            input: None,
            identity: "client",
            header: None,
            request_id: "r1",
            external_execution: None,
            links: Vec::new(),
        });
        let mut run = Run::from_start(&req, origin, signal);
        let mut last_token = None;
        if let StartKind::Eager = limits.start {
            let (mut ms, mut out) = (run.ms.clone(), run.last_out.clone());
            let started = crate::start::start_first_task_eagerly(
                &mut ms,
                &mut out,
                run.now,
                &run.limits,
                "eager",
                "w",
            );
            assert!(started, "a plain start's first task can start eagerly");
            last_token = ms.workflow_task.as_ref().map(|wt| pb::TaskToken {
                scheduled_event_id: wt.scheduled_event_id,
                started_event_id: wt.started_event_id,
                attempt: wt.attempt,
                started_time: wt.started_time,
                ..Default::default()
            });
            run.history = out.events.clone();
            run.stored = ms.clone();
            run.ms = ms;
            run.last_out = out;
        }
        if let Some(n) = limits.pending {
            run.limits.max_pending_activities = n;
            run.limits.max_pending_timers = n;
            run.limits.max_pending_children = n;
            run.limits.max_pending_signals = n;
            run.limits.max_pending_cancel_requests = n;
        }
        if let Some(n) = limits.history_events {
            run.limits.max_history_events = n;
        }
        let timers = run.last_out.timers.clone();
        Self {
            run,
            timers,
            last_token,
            closed: None,
            next: None,
        }
    }

    /// Go on with the run that continues this one, as its history service would: its first
    /// state and events, its timer tasks; nothing in memory.
    fn follow(&mut self, new: crate::NewRunState) {
        let now = self.run.now;
        let limits = self.run.limits.clone();
        self.run = Run {
            ms: new.ms.clone(),
            updates: Registry::default(),
            stored: new.ms,
            history: new.mutation.events.clone(),
            notices: Vec::new(),
            now,
            limits,
            last_write: "store",
            last_out: Default::default(),
        };
        self.timers = new.mutation.timers;
        self.last_token = None;
        self.closed = None;
    }

    /// An activity's scheduled event id: `Pending` picks among the pending activities that
    /// `filter` keeps (else any pending one), `Any` among all the history scheduled.
    fn activity_where(&self, t: &Target, filter: impl Fn(&pb::ActivityInfo) -> bool) -> i64 {
        let mut pending: Vec<i64> = (self.run.ms.activities.values())
            .filter(|ai| filter(ai))
            .map(|ai| ai.scheduled_event_id)
            .collect();
        if pending.is_empty() {
            pending = self.run.ms.activities.keys().copied().collect();
        }
        let all = ids(&initiated(&self.run.history, |a| match a {
            Attributes::ActivityTaskScheduledEventAttributes(a) => Some(a),
            _ => None,
        }));
        resolve(t, &pending, &all)
    }

    pub(super) fn activity(&self, t: &Target) -> i64 {
        self.activity_where(t, |_| true)
    }

    fn child(&self, t: &Target) -> (i64, String) {
        let pending: Vec<i64> = self.run.ms.children.keys().copied().collect();
        let all = initiated(&self.run.history, |a| match a {
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a) => Some(a),
            _ => None,
        });
        let id = resolve(t, &pending, &ids(&all));
        let wf = all
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, a)| a.workflow_id.clone())
            .unwrap_or_else(|| "nobody".into());
        (id, wf)
    }

    /// A transaction as the history service runs it; the timer tasks it wrote are queued.
    pub(super) fn apply<R>(
        &mut self,
        f: impl FnMut(&mut crate::Txn<'_>) -> Result<R, WorkflowError>,
    ) -> Result<R, WorkflowError> {
        let r = self.run.apply(f)?;
        if self.run.last_write == "store" {
            self.timers.extend(self.run.last_out.timers.iter().cloned());
            if let Some(new) = &self.run.last_out.new_run {
                check_new_run(new);
                self.next = Some((**new).clone());
            }
        }
        Ok(r)
    }

    fn token(&self, stale: bool) -> pb::TaskToken {
        let current = self
            .run
            .ms
            .workflow_task
            .as_ref()
            .filter(|wt| wt.started_event_id > 0)
            .map(|wt| pb::TaskToken {
                scheduled_event_id: wt.scheduled_event_id,
                started_event_id: wt.started_event_id,
                attempt: wt.attempt,
                started_time: wt.started_time,
                ..Default::default()
            });
        match (stale, current) {
            (false, Some(t)) => t,
            _ => self.last_token.clone().unwrap_or_default(),
        }
    }

    /// Apply one input. Errors are the state machine refusing it, which is allowed.
    pub(super) fn step(&mut self, input: &Input) -> Result<(), WorkflowError> {
        match input {
            Input::StartWorkflowTask { stale, poll } => {
                let scheduled = match (&self.run.ms.workflow_task, stale) {
                    (Some(wt), false) => wt.scheduled_event_id,
                    _ => self
                        .last_token
                        .as_ref()
                        .map(|t| t.scheduled_event_id)
                        .unwrap_or(2),
                };
                let request_id = format!("poll{poll}");
                self.apply(|t| {
                    update::record_workflow_task_started(
                        t,
                        StartRequest {
                            poller: Default::default(),
                            scheduled_event_id: scheduled,
                            request_id: &request_id,
                            identity: "w",
                        },
                    )
                })?;
                if let Some(wt) = self.run.ms.workflow_task.as_ref() {
                    self.last_token = Some(pb::TaskToken {
                        scheduled_event_id: wt.scheduled_event_id,
                        started_event_id: wt.started_event_id,
                        attempt: wt.attempt,
                        started_time: wt.started_time,
                        ..Default::default()
                    });
                }
                Ok(())
            }
            Input::CompleteWorkflowTask {
                completed,
                stale_token,
            } => self.complete(completed, *stale_token),
            Input::WorkflowTaskRound(completed) => {
                self.step(&Input::StartWorkflowTask {
                    stale: false,
                    poll: 0,
                })?;
                self.complete(completed, false)
            }
            Input::FailWorkflowTask { cause, stale_token } => {
                let token = self.token(*stale_token);
                let cause = [
                    WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                    WorkflowTaskFailedCause::UnhandledCommand,
                    WorkflowTaskFailedCause::NonDeterministicError,
                ][*cause as usize % 3];
                self.apply(|t| {
                    let wt = workflow_task::check_token(t, &token)?;
                    workflow_task::fail(t, &wt, cause, None, "w");
                    Ok(())
                })
            }
            Input::FireTimerTask { pick, redeliver } => {
                if self.timers.is_empty() {
                    return Ok(());
                }
                let i = pick.index(self.timers.len());
                let (at, task) = if *redeliver {
                    self.timers[i].clone()
                } else {
                    self.timers.remove(i)
                };
                self.run.now = self.run.now.max(at);
                let kind = pb::TimerTaskKind::try_from(task.kind)
                    .unwrap_or(pb::TimerTaskKind::Unspecified);
                // As the history service's timer queue applies them.
                self.apply(|t| {
                    match kind {
                        pb::TimerTaskKind::UserTimer => {
                            timer::on_fire(t, &task.timer_id, task.event_id)
                        }
                        pb::TimerTaskKind::ActivityTimeout
                        | pb::TimerTaskKind::HeartbeatTimeout => {
                            activity::on_timeout(t, task.event_id, task.attempt, task.timeout_type)
                        }
                        pb::TimerTaskKind::WorkflowTaskTimeout => workflow_task::on_timeout(
                            t,
                            task.event_id,
                            task.attempt,
                            task.timeout_type,
                        ),
                        pb::TimerTaskKind::WorkflowRunTimeout
                        | pb::TimerTaskKind::WorkflowExecutionTimeout => close::on_run_timeout(t),
                        pb::TimerTaskKind::ActivityRetry => {
                            activity::on_retry_timer(t, task.event_id, task.attempt)
                        }
                        pb::TimerTaskKind::WorkflowTaskRetry => {
                            workflow_task::on_retry_timer(t, task.attempt)
                        }
                        pb::TimerTaskKind::WorkflowBackoff => crate::start::on_backoff_timer(t),
                        pb::TimerTaskKind::NexusTimeout => {
                            crate::nexus::on_timeout(t, task.event_id, task.timeout_type)
                        }
                        pb::TimerTaskKind::NexusRetry => {
                            crate::nexus::on_retry_timer(t, task.event_id, task.attempt)
                        }
                        pb::TimerTaskKind::DeleteHistory
                        | pb::TimerTaskKind::ScheduleWake
                        | pb::TimerTaskKind::Unspecified => {}
                    }
                    Ok(())
                })
            }
            Input::SpeculativeTimeout { started } => {
                let Some(wt) = speculative::pending(&self.run.ms).cloned() else {
                    return Ok(());
                };
                let (kind, after) = if *started {
                    (TimeoutType::StartToClose, Duration::from_secs(10))
                } else {
                    (
                        TimeoutType::ScheduleToStart,
                        speculative::SCHEDULE_TO_START_TIMEOUT,
                    )
                };
                self.run.now += after;
                let scheduled_time = wt.scheduled_time.unwrap_or_default();
                self.apply(|t| {
                    speculative::on_timeout(t, wt.scheduled_event_id, &scheduled_time, kind);
                    Ok(())
                })
            }
            Input::ActivityStarted { target, poll } => {
                let scheduled = self.activity_where(target, |ai| ai.started_time.is_none());
                let request_id = format!("apoll{poll}");
                self.apply(|t| {
                    let ai = activity::record_started(t, scheduled, 0, &request_id, "w")?;
                    activity::note_started_build_id(t, scheduled, "");
                    Ok(ai)
                })?;
                Ok(())
            }
            Input::ActivityCompleted {
                target,
                stale_attempt,
            } => {
                let token = self.activity_token(target, *stale_attempt);
                self.apply(|t| {
                    let ai = activity::find_started(t, ActivityRef::Token(&token))?;
                    activity::complete(t, &ai, None, "w");
                    Ok(())
                })
            }
            Input::ActivityFailed {
                target,
                non_retryable,
            } => {
                let token = self.activity_token(target, false);
                let failure = Failure {
                    message: "no".into(),
                    failure_info: Some(FailureInfo::ApplicationFailureInfo(
                        ApplicationFailureInfo {
                            non_retryable: *non_retryable,
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                };
                self.apply(|t| {
                    let ai = activity::find_started(t, ActivityRef::Token(&token))?;
                    activity::fail(t, &ai, failure.clone(), "w", None);
                    Ok(())
                })
            }
            Input::ActivityCanceled { target } => {
                let token = self.activity_token(target, false);
                self.apply(|t| {
                    let ai = activity::find_started(t, ActivityRef::Token(&token))?;
                    activity::canceled(t, &ai, None, "w");
                    Ok(())
                })
            }
            Input::ActivityHeartbeat { target } => {
                let token = self.activity_token(target, false);
                self.apply(|t| {
                    let ai = activity::find_started(t, ActivityRef::Token(&token))?;
                    Ok(activity::heartbeat(t, &ai, None))
                })?;
                Ok(())
            }
            Input::ActivityCompletedById { id } => {
                let id = format!("a{id}");
                self.apply(|t| {
                    let ai = activity::find_started(t, ActivityRef::ById(&id))?;
                    activity::complete(t, &ai, None, "w");
                    Ok(())
                })
            }
            Input::PauseActivity { id, request } => {
                let id = format!("a{id}");
                let request_id = format!("pause{request}");
                self.apply(|t| {
                    activity_ops::pause(t, op_target(&id), "operator", "why", &request_id)
                })
            }
            Input::UnpauseActivity {
                id,
                reset_attempts,
                reset_heartbeat,
            } => {
                let id = format!("a{id}");
                self.apply(|t| {
                    activity_ops::unpause(
                        t,
                        op_target(&id),
                        *reset_attempts,
                        *reset_heartbeat,
                        Duration::ZERO,
                    )
                })
            }
            Input::ResetActivity {
                id,
                reset_heartbeat,
                keep_paused,
                jitter,
            } => {
                let id = format!("a{id}");
                let r = activity_ops::Reset {
                    reset_heartbeat: *reset_heartbeat,
                    keep_paused: *keep_paused,
                    restore_original_options: false,
                    jitter: if *jitter {
                        Duration::from_secs(5)
                    } else {
                        Duration::ZERO
                    },
                };
                self.apply(|t| activity_ops::reset(t, op_target(&id), r))
            }
            Input::ChildStarted { target } => {
                let (initiated, wf) = self.child(target);
                self.apply(|t| child::on_started(t, initiated, "ns", &format!("{wf}-run"), None))
            }
            Input::ChildStartFailed { target } => {
                let (initiated, _) = self.child(target);
                let attrs = initiated_attrs(&self.run.history, initiated, |a| match a {
                    Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a) => Some(a),
                    _ => None,
                });
                self.apply(|t| {
                    child::on_start_failed(
                        t,
                        initiated,
                        &attrs,
                        StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists,
                    )
                })
            }
            Input::ChildClosed { target, close } => {
                let (initiated, wf) = self.child(target);
                let attrs = match close {
                    ChildClose::Completed => {
                        Attributes::WorkflowExecutionCompletedEventAttributes(Default::default())
                    }
                    ChildClose::Failed => {
                        Attributes::WorkflowExecutionFailedEventAttributes(Default::default())
                    }
                    ChildClose::Canceled => {
                        Attributes::WorkflowExecutionCanceledEventAttributes(Default::default())
                    }
                    ChildClose::TimedOut => {
                        Attributes::WorkflowExecutionTimedOutEventAttributes(Default::default())
                    }
                    ChildClose::Terminated => {
                        Attributes::WorkflowExecutionTerminatedEventAttributes(Default::default())
                    }
                    ChildClose::Bogus => {
                        Attributes::WorkflowExecutionSignaledEventAttributes(Default::default())
                    }
                };
                let event = HistoryEvent {
                    attributes: Some(attrs),
                    ..Default::default()
                };
                let execution = WorkflowExecution {
                    run_id: format!("{wf}-run"),
                    workflow_id: wf,
                };
                self.apply(|t| child::on_closed(t, initiated, execution.clone(), &event))
            }
            Input::ExternalSignalResult { target, ok } => {
                let pending: Vec<i64> = self.run.ms.signals.keys().copied().collect();
                let all = initiated(&self.run.history, |a| match a {
                    Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                        Some(a)
                    }
                    _ => None,
                });
                let id = resolve(target, &pending, &ids(&all));
                let attrs = initiated_attrs(&self.run.history, id, |a| match a {
                    Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                        Some(a)
                    }
                    _ => None,
                });
                self.apply(|t| external::on_signal_result(t, id, &attrs, "ns", *ok))
            }
            Input::ExternalCancelResult { target, ok } => {
                let pending: Vec<i64> = self.run.ms.request_cancels.keys().copied().collect();
                let all = initiated(&self.run.history, |a| match a {
                    Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
                        a,
                    ) => Some(a),
                    _ => None,
                });
                let id = resolve(target, &pending, &ids(&all));
                let attrs = initiated_attrs(&self.run.history, id, |a| match a {
                    Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
                        a,
                    ) => Some(a),
                    _ => None,
                });
                self.apply(|t| external::on_cancel_result(t, id, &attrs, "ns", *ok))
            }
            Input::Signal { name, request } => {
                let name = ["s0", "s1", "s0", "s1", "s0", ""][*name as usize % 6];
                let request_id = ["", "r1", "r2"][*request as usize % 3];
                self.apply(|t| {
                    signal::signal(
                        t,
                        signal::Signal {
                            name,
                            input: None,
                            identity: "client",
                            header: None,
                            request_id,
                            external_execution: None,
                            links: Vec::new(),
                        },
                    )
                })
            }
            Input::RequestCancel { request } => {
                let request_id = ["", "c1", "c2"][*request as usize % 3];
                self.apply(|t| close::request_cancel(t, "stop", "client", request_id))
            }
            Input::Terminate => self.apply(|t| close::terminate(t, "enough", None, "client")),
            Input::RunTimeout => self.apply(|t| {
                close::on_run_timeout(t);
                Ok(())
            }),
            Input::AdmitUpdate { id, valid } => {
                let mut req = request(&format!("u{id}"));
                if !valid {
                    req.input = None;
                }
                self.apply(|t| update::admit(t, &req, ""))?;
                Ok(())
            }
            Input::MoveToNormalQueue => {
                let Some(scheduled) = self
                    .run
                    .ms
                    .workflow_task
                    .as_ref()
                    .map(|wt| wt.scheduled_event_id)
                else {
                    return Ok(());
                };
                self.apply(|t| Ok(workflow_task::move_to_normal_queue(t, scheduled)))?;
                Ok(())
            }
            Input::ResetSticky => self.apply(workflow_task::reset_sticky),
            Input::Advance { secs } => {
                self.run.now += Duration::from_secs(*secs);
                Ok(())
            }
            Input::FollowNextRun => {
                if let Some(new) = self.next.take() {
                    self.follow(new);
                }
                Ok(())
            }
            Input::Restart => {
                self.run.restart();
                Ok(())
            }
        }
    }

    fn complete(&mut self, c: &Completed, stale_token: bool) -> Result<(), WorkflowError> {
        let messages: Vec<Message> = c
            .messages
            .iter()
            .map(|m| {
                let admitted: Vec<String> = self.run.updates.ids().map(String::from).collect();
                let accepted: Vec<String> = (self.run.ms.updates.iter())
                    .filter(|(_, u)| u.completed_event_id == 0)
                    .map(|(id, _)| id.clone())
                    .collect();
                let all: Vec<String> = (0..3).map(|i| format!("u{i}")).collect();
                match m {
                    Msg::Accept(t) => accept(&resolve_str(t, &admitted, &all)),
                    Msg::AcceptEcho(t) => {
                        let id = resolve_str(t, &admitted, &all);
                        let mut m = accept(&id);
                        m.body = Some(update::pack(
                            &temper_proto::temporal::api::update::v1::Acceptance {
                                accepted_request_message_id: format!("{id}/request"),
                                accepted_request_sequencing_event_id: 5,
                                accepted_request: Some(request(&id)),
                            },
                        ));
                        m
                    }
                    Msg::Respond(t) => respond(&resolve_str(t, &accepted, &all), b"1"),
                    Msg::Reject(t) => reject(&resolve_str(t, &admitted, &all)),
                }
            })
            .collect();
        let commands = self.commands(&c.commands, &messages);
        let token = self.token(stale_token);
        let sticky = c.sticky.then(|| StickyExecutionAttributes {
            worker_task_queue: Some(TaskQueue {
                name: "sticky".into(),
                ..Default::default()
            }),
            schedule_to_start_timeout: dur(Duration::from_secs(5)),
        });
        self.apply(|t| {
            let wt = workflow_task::check_token(t, &token)?;
            Ok(complete_workflow_task(
                t,
                &wt,
                Completion {
                    worker: Default::default(),
                    commands: &commands,
                    identity: "w",
                    binary_checksum: "",
                    search_attribute_names: None,
                    sticky: sticky.as_ref(),
                    force_create_new_workflow_task: c.force_new,
                    sdk_metadata: None,
                    metering_metadata: None,
                    messages: &messages,
                    discard_speculative_with_events: false,
                },
            ))
        })?;
        Ok(())
    }

    /// The token of a worker reporting on an activity (a started one, mostly).
    fn activity_token(&self, target: &Target, stale_attempt: bool) -> pb::TaskToken {
        let scheduled = self.activity_where(target, |ai| ai.started_time.is_some());
        let attempt = self
            .run
            .ms
            .activities
            .get(&scheduled)
            .map(|ai| ai.attempt)
            .unwrap_or(1);
        pb::TaskToken {
            scheduled_event_id: scheduled,
            attempt: if stale_attempt { attempt - 1 } else { attempt },
            ..Default::default()
        }
    }

    /// The invariants that hold after every input.
    pub(super) fn check(&mut self, input: &Input, result: &Result<(), WorkflowError>) {
        let n = self.run.history.len();
        for (i, e) in self.run.history.iter().enumerate() {
            assert_eq!(e.event_id, i as i64 + 1, "event ids are 1..=n in order");
        }
        assert_eq!(
            self.run.ms.next_event_id,
            n as i64 + 1,
            "next_event_id follows the history"
        );
        assert_eq!(self.run.stored.next_event_id, n as i64 + 1);
        if let Some(pos) = self
            .run
            .history
            .iter()
            .position(|e| is_close_event(e.event_type))
        {
            assert_eq!(pos + 1, n, "the close event is the last event");
        }
        if let Some((len, stored)) = &self.closed {
            assert_eq!(n, *len, "nothing is written after the close ({input:?})");
            assert_eq!(
                &self.run.stored, stored,
                "the stored state of a closed run does not change ({input:?})"
            );
            let refused = match input {
                Input::Signal { .. }
                | Input::RequestCancel { .. }
                | Input::Terminate
                | Input::ResetSticky => Some(WorkflowError::AlreadyCompleted),
                _ => None,
            };
            if let Some(expected) = refused {
                assert_eq!(result.as_ref().err(), Some(&expected), "{input:?}");
            }
            if matches!(
                input,
                Input::StartWorkflowTask { .. }
                    | Input::CompleteWorkflowTask { .. }
                    | Input::WorkflowTaskRound(_)
                    | Input::FailWorkflowTask { .. }
                    | Input::ActivityStarted { .. }
                    | Input::ActivityCompleted { .. }
                    | Input::ActivityFailed { .. }
                    | Input::ActivityCanceled { .. }
                    | Input::ActivityHeartbeat { .. }
                    | Input::ActivityCompletedById { .. }
            ) {
                assert!(result.is_err(), "a closed run refuses {input:?}");
            }
            if let Input::AdmitUpdate { id, .. } = input
                && !self.run.ms.updates.contains_key(&format!("u{id}"))
            {
                assert!(result.is_err(), "a closed run admits no new update");
            }
            assert!(self.run.ms.workflow_task.is_none(), "no workflow task");
            assert_eq!(self.run.updates, Registry::default(), "no update admitted");
        } else if close::is_closed(&self.run.stored) {
            self.closed = Some((n, self.run.stored.clone()));
        }
    }

    /// At the end: the stored state replays from the history unless events are buffered
    /// (a workflow task is in flight; they are checked once it ends).
    pub(super) fn check_end(&self) {
        assert_replays(&self.run.stored, &self.run.history);
        self.check_resets();
    }

    /// Resetting the run (terminated first if it runs, as ResetWorkflowExecution does) to
    /// any event id: refused with an error, or a new run whose history starts at event 1 and
    /// replays to its state.
    fn check_resets(&self) {
        let mut history = self.run.history.clone();
        if !close::is_closed(&self.run.stored) {
            let mut run = Run {
                ms: self.run.ms.clone(),
                updates: self.run.updates.clone(),
                stored: self.run.stored.clone(),
                history: self.run.history.clone(),
                notices: Vec::new(),
                now: self.run.now,
                limits: self.run.limits.clone(),
                last_write: "nothing",
                last_out: Default::default(),
            };
            run.apply(|t| close::terminate(t, "reset", None, "resetter"))
                .expect("a running run can be terminated");
            history = run.history;
        }
        let n = history.len() as i64;
        for finish in 0..=n + 1 {
            let args = Reset {
                run: RebuildRun {
                    namespace_id: "ns",
                    namespace: "",
                    workflow_id: "wf",
                    run_id: "reset-run",
                    request_id: "reset",
                },
                base_run_id: "run",
                reason: "reset",
                workflow_task_finish_event_id: finish,
                reapply_signals: true,
                base_tail: &[],
                now: self.run.now,
            };
            if let Ok(new) = reset(&history, &[], args, &self.run.limits) {
                check_reset_run(&new, args.run);
            }
        }
    }
}

/// The activities an operator's request names: `a6` stands for all of them.
fn op_target(id: &str) -> activity_ops::Target<'_> {
    if id == "a6" {
        activity_ops::Target::All
    } else {
        activity_ops::Target::Id(id)
    }
}

fn initiated_attrs<T: Clone + Default>(
    history: &[HistoryEvent],
    id: i64,
    pick: impl Fn(&Attributes) -> Option<&T>,
) -> T {
    history
        .iter()
        .find(|e| e.event_id == id)
        .and_then(|e| e.attributes.as_ref())
        .and_then(pick)
        .cloned()
        .unwrap_or_default()
}

/// A run continued as new starts at event 1, and its first state replays from its events.
fn check_new_run(new: &crate::NewRunState) {
    for (i, e) in new.mutation.events.iter().enumerate() {
        assert_eq!(e.event_id, i as i64 + 1, "the new run's event ids");
    }
    assert_eq!(new.ms.next_event_id, new.mutation.events.len() as i64 + 1);
    assert_replays(&new.ms, &new.mutation.events);
}

/// [`check_new_run`] for a reset's new run. It starts now: its start time, deadlines and
/// the clocks of its pending timers and activities restart from the reset (as in Temporal,
/// `reset::restart_clocks`), which its copied events do not say; those are taken from the
/// replay before comparing.
pub(super) fn check_reset_run(new: &crate::NewRunState, run: RebuildRun<'_>) {
    for (i, e) in new.mutation.events.iter().enumerate() {
        assert_eq!(e.event_id, i as i64 + 1, "the new run's event ids");
    }
    assert_eq!(new.ms.next_event_id, new.mutation.events.len() as i64 + 1);
    let rebuilt = crate::rebuild::rebuild(&new.mutation.events, run).expect("rebuild");
    let mut live = new.ms.clone();
    if let (Some(l), Some(r)) = (
        live.execution_info.as_mut(),
        rebuilt.execution_info.as_ref(),
    ) {
        l.start_time = r.start_time;
        l.execution_time = r.execution_time;
        l.execution_expiration_time = r.execution_expiration_time;
        l.run_expiration_time = r.run_expiration_time;
    }
    for (id, ai) in live.activities.iter_mut() {
        if let Some(r) = rebuilt.activities.get(id) {
            ai.scheduled_time = r.scheduled_time;
            ai.first_scheduled_time = r.first_scheduled_time;
            ai.expiration_time = r.expiration_time;
        }
    }
    for (id, t) in live.timers.iter_mut() {
        if let Some(r) = rebuilt.timers.get(id) {
            t.expiry_time = r.expiry_time;
        }
    }
    assert_replays(&live, &new.mutation.events);
}
