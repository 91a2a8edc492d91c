//! Workflow update scenarios through the transaction driver, as the history service runs
//! them: what is written, what stays in memory, and what waiting callers are told.

use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, ProtocolMessageCommandAttributes,
    StartTimerCommandAttributes, command,
};
use temper_proto::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temper_proto::temporal::api::enums::v1::{EventType, TimeoutType, WorkflowTaskFailedCause};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::temporal::api::protocol::v1::{Message, message::SequencingId};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::update::v1::{
    Acceptance, Input, Meta, Outcome as UpdateOutcome, Rejection, Request, Response, outcome,
};
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use crate::commands::complete_workflow_task;
use crate::completion::{Completion, Outcome};
use crate::start::NewRun;
use crate::time::dur;
use crate::transaction::{self, Write};
use crate::update::{self, Abort, Admission, Notice, Registry, Status};
use crate::workflow_task::{self, StartRequest};
use crate::{Limits, Txn, WorkflowError, pb, signal, speculative};

use EventType as E;

/// A run as the history service holds it: the cached state and registry, what the store has
/// (state and history), and the notices handed to waiting callers.
pub(crate) struct Run {
    pub(crate) ms: pb::MutableState,
    pub(crate) updates: Registry,
    pub(crate) stored: pb::MutableState,
    pub(crate) history: Vec<HistoryEvent>,
    pub(crate) notices: Vec<Notice>,
    pub(crate) now: SystemTime,
    pub(crate) limits: Limits,
    /// What the last transaction wrote: "nothing", "memory" or "store".
    pub(crate) last_write: &'static str,
    pub(crate) last_out: crate::Mutation,
}

impl Run {
    /// The start request of [`Self::new`].
    pub(crate) fn request() -> StartWorkflowExecutionRequest {
        StartWorkflowExecutionRequest {
            workflow_id: "wf".into(),
            workflow_type: Some(WorkflowType { name: "W".into() }),
            task_queue: Some(TaskQueue {
                name: "tq".into(),
                ..Default::default()
            }),
            request_id: "r".into(),
            ..Default::default()
        }
    }

    /// A run just started: its first workflow task is scheduled.
    pub(crate) fn new() -> Self {
        Self::from_request(&Self::request())
    }

    /// A run started by `req`; `last_out` is what its start wrote.
    pub(crate) fn from_request(req: &StartWorkflowExecutionRequest) -> Self {
        Self::from_start(req, Default::default(), None)
    }

    /// A run started by `req` from `origin` (a parent, ...), with `signal` for
    /// SignalWithStart.
    pub(crate) fn from_start(
        req: &StartWorkflowExecutionRequest,
        origin: crate::start::Origin,
        signal: Option<signal::Signal<'_>>,
    ) -> Self {
        let limits = Limits::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (ms, out) = crate::start::new_execution_with_signal(
            NewRun {
                namespace_id: "ns",
                run_id: "run",
                request_id: "r",
                now,
                origin,
            },
            req,
            signal,
            &limits,
        );
        Self {
            stored: ms.clone(),
            ms,
            updates: Registry::default(),
            history: out.events.clone(),
            notices: Vec::new(),
            now,
            limits,
            last_write: "store",
            last_out: out,
        }
    }

    /// A run whose first workflow task completed with a timer (so the history ends with a
    /// command event, as it often does).
    fn start() -> Self {
        let mut run = Self::new();
        run.start_wt();
        run.complete(vec![start_timer()], &[], false);
        assert_eq!(run.types(), first_task_types());
        run
    }

    pub(crate) fn apply<R>(
        &mut self,
        mut f: impl FnMut(&mut Txn<'_>) -> Result<R, WorkflowError>,
    ) -> Result<R, WorkflowError> {
        self.now += Duration::from_millis(10);
        let mut applied = transaction::apply(
            &self.ms,
            &self.updates,
            self.now,
            &self.limits,
            None,
            &mut f,
        )?;
        self.notices.append(&mut applied.updates.notices);
        self.last_out = Default::default();
        self.last_write = match applied.write {
            Write::Nothing => "nothing",
            Write::Memory => "memory",
            Write::Store(m) => {
                self.history.extend(m.events.iter().cloned());
                self.stored = speculative::persisted_view(&applied.state).into_owned();
                crate::tests_rebuild::assert_replays(&self.stored, &self.history);
                self.last_out = m;
                "store"
            }
        };
        self.ms = applied.state;
        self.updates = applied.updates;
        Ok(applied.value)
    }

    /// The server restarts: only what was stored is left.
    pub(crate) fn restart(&mut self) {
        self.ms = self.stored.clone();
        self.updates = Registry::default();
    }

    fn admit(&mut self, id: &str) -> Result<Admission, WorkflowError> {
        let req = request(id);
        self.apply(|t| update::admit(t, &req, ""))
    }

    /// Start the pending workflow task; its history as the worker sees it and the messages.
    fn start_wt(&mut self) -> (Vec<HistoryEvent>, Vec<Message>) {
        let sched = self
            .ms
            .workflow_task
            .as_ref()
            .expect("scheduled")
            .scheduled_event_id;
        let (_, messages) = self
            .apply(|t| {
                update::record_workflow_task_started(
                    t,
                    StartRequest {
                        poller: Default::default(),
                        scheduled_event_id: sched,
                        request_id: "poll",
                        identity: "w",
                    },
                )
            })
            .expect("starts");
        let mut seen = self.history.clone();
        seen.extend(speculative::events(&self.ms));
        (seen, messages)
    }

    fn complete(
        &mut self,
        commands: Vec<Command>,
        messages: &[Message],
        with_events: bool,
    ) -> Outcome {
        let wt = self.ms.workflow_task.clone().expect("started");
        self.apply(|t| {
            let wt = workflow_task::check_token(
                t,
                &pb::TaskToken {
                    scheduled_event_id: wt.scheduled_event_id,
                    started_event_id: wt.started_event_id,
                    attempt: wt.attempt,
                    started_time: wt.started_time,
                    ..Default::default()
                },
            )?;
            Ok(complete_workflow_task(
                t,
                &wt,
                Completion {
                    worker: Default::default(),
                    commands: &commands,
                    identity: "w",
                    binary_checksum: "",
                    search_attribute_names: None,
                    sticky: None,
                    force_create_new_workflow_task: false,
                    sdk_metadata: None,
                    metering_metadata: None,
                    messages,
                    discard_speculative_with_events: with_events,
                },
            ))
        })
        .expect("completes")
    }

    fn types(&self) -> Vec<EventType> {
        types(&self.history)
    }

    fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }
}

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).expect("known event type"))
        .collect()
}

fn first_task_types() -> Vec<EventType> {
    vec![
        E::WorkflowExecutionStarted,
        E::WorkflowTaskScheduled,
        E::WorkflowTaskStarted,
        E::WorkflowTaskCompleted,
        E::TimerStarted,
    ]
}

pub(crate) fn request(id: &str) -> Request {
    Request {
        meta: Some(Meta {
            update_id: id.into(),
            identity: "client".into(),
        }),
        input: Some(Input {
            name: "add".into(),
            args: Some(payloads(b"1")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn payloads(data: &[u8]) -> Payloads {
    Payloads {
        payloads: vec![Payload {
            data: data.to_vec(),
            ..Default::default()
        }],
    }
}

fn start_timer() -> Command {
    Command {
        attributes: Some(command::Attributes::StartTimerCommandAttributes(
            StartTimerCommandAttributes {
                timer_id: format!("t{}", rand_suffix()),
                start_to_fire_timeout: dur(Duration::from_secs(3600)),
            },
        )),
        ..Default::default()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn complete_workflow() -> Command {
    Command {
        attributes: Some(
            command::Attributes::CompleteWorkflowExecutionCommandAttributes(
                CompleteWorkflowExecutionCommandAttributes { result: None },
            ),
        ),
        ..Default::default()
    }
}

pub(crate) fn protocol(message_id: &str) -> Command {
    Command {
        attributes: Some(command::Attributes::ProtocolMessageCommandAttributes(
            ProtocolMessageCommandAttributes {
                message_id: message_id.into(),
            },
        )),
        ..Default::default()
    }
}

pub(crate) fn accept(id: &str) -> Message {
    Message {
        id: format!("{id}/accept"),
        protocol_instance_id: id.into(),
        body: Some(update::pack(&Acceptance {
            accepted_request_message_id: format!("{id}/request"),
            accepted_request_sequencing_event_id: 5,
            accepted_request: None,
        })),
        ..Default::default()
    }
}

pub(crate) fn respond(id: &str, data: &[u8]) -> Message {
    Message {
        id: format!("{id}/complete"),
        protocol_instance_id: id.into(),
        body: Some(update::pack(&Response {
            meta: Some(Meta {
                update_id: id.into(),
                identity: "w".into(),
            }),
            outcome: Some(UpdateOutcome {
                value: Some(outcome::Value::Success(payloads(data))),
            }),
        })),
        ..Default::default()
    }
}

pub(crate) fn reject(id: &str) -> Message {
    Message {
        id: format!("{id}/reject"),
        protocol_instance_id: id.into(),
        body: Some(update::pack(&Rejection {
            rejected_request_message_id: format!("{id}/request"),
            failure: Some(Failure {
                message: "no".into(),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn is_failure(n: &Notice, want_id: &str, message: &str) -> bool {
    matches!(n, Notice::Completed { update_id, outcome: UpdateOutcome { value: Some(outcome::Value::Failure(f)) } }
        if update_id == want_id && f.message.contains(message))
}

#[test]
pub(crate) fn rejected_update_on_a_speculative_task_leaves_no_trace() {
    let mut run = Run::start();
    let stored_before = run.stored.clone();
    assert_eq!(run.admit("u1"), Ok(Admission::New { speculative: true }));
    assert_eq!(run.last_write, "memory", "admitting writes nothing");
    let (seen, messages) = run.start_wt();
    assert_eq!(
        run.last_write, "memory",
        "starting a speculative task writes nothing"
    );
    // The worker sees the task's events with the ids they would get, and the update.
    let mut expected = first_task_types();
    expected.extend([E::WorkflowTaskScheduled, E::WorkflowTaskStarted]);
    assert_eq!(types(&seen), expected);
    assert_eq!(seen.last().map(|e| e.event_id), Some(7));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].protocol_instance_id, "u1");
    assert_eq!(messages[0].id, "u1/request");
    assert_eq!(messages[0].sequencing_id, Some(SequencingId::EventId(6)));

    // No events since the last task but its command event: discardable only for a worker
    // that takes events again.
    let outcome = run.complete(vec![], &[reject("u1")], true);
    assert_eq!(
        outcome,
        Outcome::Discarded {
            reset_history_event_id: 3
        }
    );
    assert_eq!(run.last_write, "memory");
    assert_eq!(run.types(), first_task_types(), "no event written");
    assert_eq!(run.stored, stored_before, "stored state untouched");
    assert!(run.ms.workflow_task.is_none() && run.updates.is_empty());
    let notices = run.take_notices();
    assert_eq!(notices.len(), 1);
    assert!(is_failure(&notices[0], "u1", "no"), "{notices:?}");
    // A rejected update is gone: the same id is a new update.
    assert_eq!(run.admit("u1"), Ok(Admission::New { speculative: true }));
}

#[test]
pub(crate) fn a_worker_that_cannot_take_events_again_keeps_the_task() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    let outcome = run.complete(vec![], &[reject("u1")], false);
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let mut expected = first_task_types();
    expected.extend([
        E::WorkflowTaskScheduled,
        E::WorkflowTaskStarted,
        E::WorkflowTaskCompleted,
    ]);
    assert_eq!(run.types(), expected);
    assert!(is_failure(&run.take_notices()[0], "u1", "no"));
}

#[test]
pub(crate) fn accepted_update_writes_the_task_then_its_events_in_command_order() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    let commands = vec![
        protocol("u1/accept"),
        start_timer(),
        protocol("u1/complete"),
    ];
    let outcome = run.complete(commands, &[accept("u1"), respond("u1", b"r")], true);
    assert!(matches!(
        outcome,
        Outcome::Completed {
            new_workflow_task: None,
            closed: false
        }
    ));
    assert_eq!(run.last_write, "store");
    let mut expected = first_task_types();
    expected.extend([
        E::WorkflowTaskScheduled,
        E::WorkflowTaskStarted,
        E::WorkflowTaskCompleted,
        E::WorkflowExecutionUpdateAccepted,
        E::TimerStarted,
        E::WorkflowExecutionUpdateCompleted,
    ]);
    assert_eq!(run.types(), expected);
    for (i, e) in run.history.iter().enumerate() {
        assert_eq!(e.event_id, i as i64 + 1, "consecutive ids");
    }
    match &run.history[8].attributes {
        Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a)) => {
            assert_eq!(a.protocol_instance_id, "u1");
            assert_eq!(a.accepted_request_message_id, "u1/request");
            assert_eq!(a.accepted_request_sequencing_event_id, 5);
            assert_eq!(
                a.accepted_request,
                Some(request("u1")),
                "the server's copy of the request"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match &run.history[10].attributes {
        Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a)) => {
            assert_eq!(a.accepted_event_id, 9);
            assert!(matches!(
                a.outcome.as_ref().and_then(|o| o.value.as_ref()),
                Some(outcome::Value::Success(_))
            ));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        run.stored.updates.get("u1"),
        Some(&pb::UpdateInfo {
            accepted_event_id: 9,
            completed_event_id: 11,
            ..Default::default()
        })
    );
    let notices = run.take_notices();
    assert_eq!(
        notices[0],
        Notice::Accepted {
            update_id: "u1".into()
        }
    );
    assert!(matches!(&notices[1], Notice::Completed { update_id, .. } if update_id == "u1"));
    assert!(run.stored.workflow_task.is_none());
}

#[test]
pub(crate) fn the_same_update_id_finds_the_update_even_after_a_restart() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    assert_eq!(run.admit("u1"), Ok(Admission::Existing(Status::Admitted)));
    run.start_wt();
    run.complete(vec![protocol("u1/accept")], &[accept("u1")], true);
    assert_eq!(run.admit("u1"), Ok(Admission::Existing(Status::Accepted)));
    run.restart();
    assert_eq!(run.admit("u1"), Ok(Admission::Existing(Status::Accepted)));
    assert_eq!(run.last_write, "nothing");
}

#[test]
pub(crate) fn admitted_updates_are_lost_on_restart_like_temporal() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.restart();
    assert!(
        run.ms.workflow_task.is_none(),
        "the speculative task was never stored"
    );
    assert_eq!(run.admit("u1"), Ok(Admission::New { speculative: true }));
}

#[test]
pub(crate) fn a_signal_during_a_speculative_task_writes_the_task_first() {
    // Scheduled, not started: the signal follows the task's scheduled event.
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    signal_it(&mut run);
    let mut expected = first_task_types();
    expected.extend([E::WorkflowTaskScheduled, E::WorkflowExecutionSignaled]);
    assert_eq!(run.types(), expected);
    let wt = run
        .stored
        .workflow_task
        .clone()
        .expect("the task is stored now");
    assert_eq!(wt.scheduled_event_id, 6);
    assert!(!wt.speculative);
    assert_eq!(
        run.last_out.transfer.len(),
        1,
        "dispatched like a normal task"
    );
    let (_, messages) = run.start_wt();
    assert_eq!(messages.len(), 1, "the update rides on the task");
    assert_eq!(
        run.history.last().map(|e| e.event_id),
        Some(8),
        "started event written"
    );

    // Started: the signal is buffered after the task's two events.
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    signal_it(&mut run);
    let mut expected = first_task_types();
    expected.extend([E::WorkflowTaskScheduled, E::WorkflowTaskStarted]);
    assert_eq!(run.types(), expected);
    assert_eq!(run.stored.buffered_events.len(), 1);
    assert!(
        !run.last_out.timers.is_empty(),
        "start-to-close timer stored"
    );
    // The task is normal now: rejecting the update no longer discards it.
    let outcome = run.complete(vec![], &[reject("u1")], true);
    assert!(
        matches!(
            outcome,
            Outcome::Completed {
                new_workflow_task: Some(_),
                ..
            }
        ),
        "{outcome:?}"
    );
    expected.extend([
        E::WorkflowTaskCompleted,
        E::WorkflowExecutionSignaled,
        E::WorkflowTaskScheduled,
    ]);
    assert_eq!(run.types(), expected);
}

fn signal_it(run: &mut Run) {
    run.apply(|t| {
        signal::signal(
            t,
            signal::Signal {
                name: "s",
                input: None,
                identity: "c",
                header: None,
                request_id: "",
                external_execution: None,
                links: Vec::new(),
            },
        )
    })
    .expect("signalled");
}

#[test]
pub(crate) fn an_update_admitted_during_a_task_gets_a_speculative_task_after_it() {
    let mut run = Run::start();
    run.apply(|t| {
        workflow_task::schedule(t, 1);
        Ok(())
    })
    .expect("scheduled");
    run.start_wt();
    assert_eq!(run.admit("u1"), Ok(Admission::New { speculative: false }));
    let outcome = run.complete(vec![], &[], true);
    assert!(matches!(
        outcome,
        Outcome::Completed {
            new_workflow_task: None,
            ..
        }
    ));
    assert!(
        run.updates.contains("u1"),
        "not sent with that task, not rejected"
    );
    let wt = run.ms.workflow_task.clone().expect("a new task");
    assert!(wt.speculative);
    assert!(run.stored.workflow_task.is_none());
}

#[test]
pub(crate) fn an_update_the_worker_ignores_is_rejected_by_the_server() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    let outcome = run.complete(vec![start_timer()], &[], true);
    assert!(matches!(outcome, Outcome::Completed { .. }));
    let notices = run.take_notices();
    assert!(
        is_failure(&notices[0], "u1", "wasn't processed by worker"),
        "{notices:?}"
    );
    assert!(run.updates.is_empty());
}

#[test]
pub(crate) fn closing_the_workflow_aborts_its_updates() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    run.complete(vec![protocol("u1/accept")], &[accept("u1")], true);
    run.take_notices();
    // u2 arrives while the closing task runs.
    run.apply(|t| {
        workflow_task::schedule(t, 1);
        Ok(())
    })
    .expect("scheduled");
    run.start_wt();
    run.admit("u2").expect("admitted");
    run.complete(vec![complete_workflow()], &[], true);
    let notices = run.take_notices();
    assert!(
        notices.contains(&Notice::Aborted {
            update_id: "u2".into(),
            reason: Abort::WorkflowClosed
        }),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| is_failure(
            n,
            "u1",
            "Workflow completed before the Update completed"
        )),
        "{notices:?}"
    );
    // Later requests: the accepted one gets its failure, a new one is refused.
    match run.admit("u1") {
        Ok(Admission::Existing(Status::Finished(o))) => {
            assert!(matches!(o.value, Some(outcome::Value::Failure(_))))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(run.admit("u3"), Err(WorkflowError::AlreadyCompleted));
}

#[test]
pub(crate) fn in_flight_updates_are_limited() {
    let mut run = Run::start();
    for i in 0..update::MAX_IN_FLIGHT_UPDATES {
        run.admit(&format!("u{i}")).expect("admitted");
    }
    assert!(matches!(
        run.admit("one-more"),
        Err(WorkflowError::ResourceExhausted(_))
    ));
    assert_eq!(
        run.admit("u0"),
        Ok(Admission::Existing(Status::Admitted)),
        "dedup first"
    );
}

#[test]
pub(crate) fn a_speculative_task_nobody_takes_becomes_a_normal_one() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    let wt = run.ms.workflow_task.clone().expect("speculative");
    run.apply(|t| {
        speculative::on_timeout(
            t,
            wt.scheduled_event_id,
            &wt.scheduled_time.unwrap_or_default(),
            TimeoutType::ScheduleToStart,
        );
        Ok(())
    })
    .expect("timed out");
    let mut expected = first_task_types();
    expected.extend([
        E::WorkflowTaskScheduled,
        E::WorkflowTaskTimedOut,
        E::WorkflowTaskScheduled,
    ]);
    assert_eq!(run.types(), expected);
    assert_eq!(run.last_out.transfer.len(), 1);
    let (_, messages) = run.start_wt();
    assert_eq!(messages.len(), 1, "the update goes with the normal task");
    // A stale timer (another task now) does nothing.
    run.apply(|t| {
        speculative::on_timeout(
            t,
            6,
            &wt.scheduled_time.unwrap_or_default(),
            TimeoutType::StartToClose,
        );
        Ok(())
    })
    .expect("applied");
    assert_eq!(run.last_write, "nothing");
}

#[test]
pub(crate) fn a_bad_update_message_fails_the_task_and_writes_it() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    // Accepting an update the server never had, without its request.
    let outcome = run.complete(vec![protocol("x/accept")], &[accept("x")], true);
    match outcome {
        Outcome::Rejected(bad) => {
            assert_eq!(
                bad.cause,
                WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut expected = first_task_types();
    expected.extend([
        E::WorkflowTaskScheduled,
        E::WorkflowTaskStarted,
        E::WorkflowTaskFailed,
        E::WorkflowTaskScheduled,
    ]);
    assert_eq!(run.types(), expected);
    assert_eq!(
        run.take_notices(),
        vec![Notice::Aborted {
            update_id: "u1".into(),
            reason: Abort::WorkflowTaskFailed
        }]
    );
}

#[test]
pub(crate) fn a_stale_token_cannot_complete_a_later_speculative_task() {
    let mut run = Run::start();
    run.admit("u1").expect("admitted");
    run.start_wt();
    let old = run.ms.workflow_task.clone().expect("started");
    run.complete(vec![], &[reject("u1")], true);
    run.now += Duration::from_secs(1);
    run.admit("u2").expect("admitted");
    run.start_wt();
    let token = pb::TaskToken {
        scheduled_event_id: old.scheduled_event_id,
        started_event_id: old.started_event_id,
        attempt: old.attempt,
        started_time: old.started_time,
        ..Default::default()
    };
    let r = run.apply(|t| workflow_task::check_token(t, &token).map(|_| ()));
    assert!(matches!(r, Err(WorkflowError::NotFound(_))), "{r:?}");
    assert!(matches!(
        run.apply(|t| {
            update::record_workflow_task_started(
                t,
                StartRequest {
                    poller: Default::default(),
                    scheduled_event_id: 6,
                    request_id: "other-poll",
                    identity: "w",
                },
            )
        }),
        Err(WorkflowError::NotFound(_))
    ));
}
