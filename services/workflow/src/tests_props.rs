//! Property tests: arbitrary sequences of what can happen to a run (workflow task starts,
//! completions with arbitrary and invalid commands, failures and timeouts, activity and
//! child results, timers firing, signals, cancel requests, updates, terminations, cache
//! evictions), driven through [`crate::transaction::apply`] as the history service drives
//! them. After every input:
//!
//! - nothing panicked (an input the state machine refuses returns an error);
//! - the history's event ids are 1..=n, each event's id its position, and the state's
//!   `next_event_id` (cached and stored) is n + 1;
//! - a close event, if any, is the history's last event;
//! - rebuilding the state from the history gives the stored state ([`assert_replays`], which
//!   [`Run::apply`] runs after every write);
//! - once the run closed, nothing more is written and the stored state does not change;
//!   signals, cancel requests, terminations, new updates and workflow task starts are refused;
//! - a run continued as new starts with a history and state that replay the same way.
//!
//! Cases: 256 by default; `PROPTEST_CASES` overrides.

use std::time::Duration;

use proptest::prelude::*;
use temper_proto::temporal::api::command::v1::{
    CancelTimerCommandAttributes, Command, ContinueAsNewWorkflowExecutionCommandAttributes,
    FailWorkflowExecutionCommandAttributes, ModifyWorkflowPropertiesCommandAttributes,
    RecordMarkerCommandAttributes, RequestCancelActivityTaskCommandAttributes,
    RequestCancelExternalWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes, StartChildWorkflowExecutionCommandAttributes,
    StartTimerCommandAttributes, UpsertWorkflowSearchAttributesCommandAttributes,
    command::Attributes as C,
};
use temper_proto::temporal::api::common::v1::{
    ActivityType, Memo, Payload, RetryPolicy, SearchAttributes, WorkflowExecution, WorkflowType,
};
use temper_proto::temporal::api::enums::v1::{
    EventType, StartChildWorkflowExecutionFailedCause, TimeoutType, WorkflowTaskFailedCause,
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

/// Which of the candidates an input picks (shrinks towards the first).
#[derive(Debug, Clone, Copy)]
struct Index(u16);

impl Index {
    fn index(self, len: usize) -> usize {
        self.0 as usize % len
    }
}

impl Arbitrary for Index {
    type Parameters = ();
    type Strategy = prop::strategy::Map<prop::num::u16::Any, fn(u16) -> Index>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        any::<u16>().prop_map(Index)
    }
}

/// Where an input's id comes from: a pending one, any the history ever named, or none.
#[derive(Debug, Clone)]
enum Target {
    Pending(Index),
    Any(Index),
    Unknown,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => any::<Index>().prop_map(Target::Pending),
        2 => any::<Index>().prop_map(Target::Any),
        1 => Just(Target::Unknown),
    ]
}

/// An id no event has.
const UNKNOWN_ID: i64 = 9_999;

fn resolve(t: &Target, pending: &[i64], all: &[i64]) -> i64 {
    let from = |i: &Index, v: &[i64]| (!v.is_empty()).then(|| v[i.index(v.len())]);
    match t {
        Target::Pending(i) => from(i, pending).or_else(|| from(i, all)),
        Target::Any(i) => from(i, all),
        Target::Unknown => None,
    }
    .unwrap_or(UNKNOWN_ID)
}

/// One command of a workflow task completion. Ids come from small pools so that duplicates
/// and references to ids that do not exist (any more) are frequent.
#[derive(Debug, Clone)]
enum Cmd {
    ScheduleActivity {
        id: u8,
        /// 0: start-to-close only; 1: schedule-to-close only; 2: all, with a heartbeat;
        /// 3: none (invalid).
        timeouts: u8,
        max_attempts: i32,
    },
    RequestCancelActivity(Target),
    StartTimer {
        id: u8,
        secs: i64,
    },
    CancelTimer(Target),
    StartChild {
        id: u8,
    },
    SignalExternal {
        id: u8,
    },
    CancelExternal {
        id: u8,
    },
    UpsertSearchAttributes {
        key: u8,
    },
    ModifyMemo {
        key: u8,
    },
    Marker {
        named: bool,
    },
    Complete,
    Fail,
    Cancel,
    ContinueAsNew,
    /// Names message `index` of the completion (or a message it does not have).
    ProtocolMessage {
        index: u8,
    },
    /// A command without attributes.
    Empty,
}

fn cmd() -> impl Strategy<Value = Cmd> {
    // Mostly valid commands, so that runs get somewhere; each invalid kind now and then
    // (one invalid command rejects the whole completion).
    let timeouts = prop_oneof![9 => 0u8..3, 1 => Just(3u8)];
    let secs = prop_oneof![9 => 0i64..30, 1 => Just(-1i64)];
    let close = prop_oneof![
        Just(Cmd::Complete),
        Just(Cmd::Fail),
        Just(Cmd::Cancel),
        Just(Cmd::ContinueAsNew),
    ];
    prop_oneof![
        16 => (0u8..6, timeouts, 0i32..3).prop_map(|(id, timeouts, max_attempts)| {
            Cmd::ScheduleActivity { id, timeouts, max_attempts }
        }),
        2 => target().prop_map(Cmd::RequestCancelActivity),
        12 => (0u8..6, secs).prop_map(|(id, secs)| Cmd::StartTimer { id, secs }),
        4 => target().prop_map(Cmd::CancelTimer),
        6 => (0u8..4).prop_map(|id| Cmd::StartChild { id }),
        2 => (0u8..3).prop_map(|id| Cmd::SignalExternal { id }),
        2 => (0u8..3).prop_map(|id| Cmd::CancelExternal { id }),
        2 => prop_oneof![4 => 0u8..2, 1 => Just(2u8)]
            .prop_map(|key| Cmd::UpsertSearchAttributes { key }),
        2 => (0u8..3).prop_map(|key| Cmd::ModifyMemo { key }),
        2 => prop::bool::weighted(0.9).prop_map(|named| Cmd::Marker { named }),
        1 => close,
        2 => (0u8..3).prop_map(|index| Cmd::ProtocolMessage { index }),
        1 => Just(Cmd::Empty),
    ]
}

/// How a completion may end: a command that closes the run.
fn close_cmd() -> impl Strategy<Value = Option<Cmd>> {
    prop::option::weighted(
        0.06,
        prop_oneof![
            Just(Cmd::Complete),
            Just(Cmd::Fail),
            Just(Cmd::Cancel),
            Just(Cmd::ContinueAsNew),
        ],
    )
}

/// A protocol message of a completion, for an update the run knows (or not).
#[derive(Debug, Clone)]
enum Msg {
    /// Accept an admitted update.
    Accept(Target),
    /// Complete an accepted update.
    Respond(Target),
    /// Reject an admitted update.
    Reject(Target),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        2 => target().prop_map(Msg::Accept),
        2 => target().prop_map(Msg::Respond),
        1 => target().prop_map(Msg::Reject),
    ]
}

fn resolve_str(t: &Target, pending: &[String], all: &[String]) -> String {
    let from = |i: &Index, v: &[String]| (!v.is_empty()).then(|| v[i.index(v.len())].clone());
    match t {
        Target::Pending(i) => from(i, pending).or_else(|| from(i, all)),
        Target::Any(i) => from(i, all),
        Target::Unknown => None,
    }
    .unwrap_or_else(|| "unknown".into())
}

/// A child's close, as its close event says.
#[derive(Debug, Clone, Copy)]
enum ChildClose {
    Completed,
    Failed,
    Canceled,
    TimedOut,
    Terminated,
    /// Not a close event (refused).
    Bogus,
}

/// What a worker's workflow task completion carries.
#[derive(Debug, Clone)]
struct Completed {
    commands: Vec<Cmd>,
    messages: Vec<Msg>,
    sticky: bool,
    force_new: bool,
}

/// One thing that happens to the run.
#[derive(Debug, Clone)]
enum Input {
    /// A worker polls the pending workflow task (`stale`: names an older one).
    StartWorkflowTask {
        stale: bool,
        poll: u8,
    },
    /// The worker completes the workflow task in flight (`stale_token`: an older one).
    CompleteWorkflowTask {
        completed: Completed,
        stale_token: bool,
    },
    /// A worker polls the pending workflow task and completes it.
    WorkflowTaskRound(Completed),
    FailWorkflowTask {
        cause: u8,
        stale_token: bool,
    },
    /// A timer task comes due (time moves on to it); `redeliver`: the queue delivers it
    /// again later (at-least-once).
    FireTimerTask {
        pick: Index,
        redeliver: bool,
    },
    /// An in-memory timeout of a speculative workflow task fires.
    SpeculativeTimeout {
        started: bool,
    },
    ActivityStarted {
        target: Target,
        poll: u8,
    },
    ActivityCompleted {
        target: Target,
        stale_attempt: bool,
    },
    ActivityFailed {
        target: Target,
        non_retryable: bool,
    },
    ActivityCanceled {
        target: Target,
    },
    ActivityHeartbeat {
        target: Target,
    },
    ActivityCompletedById {
        id: u8,
    },
    /// An operator pauses, unpauses or resets activity `a<id>` (`a6`: all of them).
    PauseActivity {
        id: u8,
        request: u8,
    },
    UnpauseActivity {
        id: u8,
        reset_attempts: bool,
        reset_heartbeat: bool,
    },
    ResetActivity {
        id: u8,
        reset_heartbeat: bool,
        keep_paused: bool,
        jitter: bool,
    },
    ChildStarted {
        target: Target,
    },
    ChildStartFailed {
        target: Target,
    },
    ChildClosed {
        target: Target,
        close: ChildClose,
    },
    ExternalSignalResult {
        target: Target,
        ok: bool,
    },
    ExternalCancelResult {
        target: Target,
        ok: bool,
    },
    Signal {
        name: u8,
        request: u8,
    },
    RequestCancel {
        request: u8,
    },
    Terminate,
    RunTimeout,
    AdmitUpdate {
        id: u8,
        valid: bool,
    },
    MoveToNormalQueue,
    ResetSticky,
    Advance {
        secs: u64,
    },
    /// The cached state is dropped and read again from the store.
    Restart,
}

fn completion() -> impl Strategy<Value = Completed> {
    (
        prop::collection::vec(cmd(), 0..5),
        close_cmd(),
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(msg(), 1..3)],
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mut commands, close, messages, sticky, force_new)| {
            commands.extend(close);
            Completed {
                commands,
                messages,
                sticky,
                force_new,
            }
        })
}

fn input() -> impl Strategy<Value = Input> {
    let child_close = prop_oneof![
        Just(ChildClose::Completed),
        Just(ChildClose::Failed),
        Just(ChildClose::Canceled),
        Just(ChildClose::TimedOut),
        Just(ChildClose::Terminated),
        Just(ChildClose::Bogus),
    ];
    // Weights out of about 800: what closes the run from outside is rare, so that most runs
    // live long enough to get somewhere.
    prop_oneof![
        80 => (prop::bool::weighted(0.1), 0u8..2)
            .prop_map(|(stale, poll)| Input::StartWorkflowTask { stale, poll }),
        56 => (completion(), prop::bool::weighted(0.1))
            .prop_map(|(completed, stale_token)| Input::CompleteWorkflowTask { completed, stale_token }),
        80 => completion().prop_map(Input::WorkflowTaskRound),
        12 => (0u8..3, prop::bool::weighted(0.2))
            .prop_map(|(cause, stale_token)| Input::FailWorkflowTask { cause, stale_token }),
        80 => (any::<Index>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, redeliver)| Input::FireTimerTask { pick, redeliver }),
        12 => any::<bool>().prop_map(|started| Input::SpeculativeTimeout { started }),
        64 => (target(), 0u8..2).prop_map(|(target, poll)| Input::ActivityStarted { target, poll }),
        40 => (target(), prop::bool::weighted(0.1))
            .prop_map(|(target, stale_attempt)| Input::ActivityCompleted { target, stale_attempt }),
        40 => (target(), any::<bool>())
            .prop_map(|(target, non_retryable)| Input::ActivityFailed { target, non_retryable }),
        16 => target().prop_map(|target| Input::ActivityCanceled { target }),
        16 => target().prop_map(|target| Input::ActivityHeartbeat { target }),
        8 => (0u8..6).prop_map(|id| Input::ActivityCompletedById { id }),
        8 => (0u8..7, 0u8..2).prop_map(|(id, request)| Input::PauseActivity { id, request }),
        8 => (0u8..7, any::<bool>(), any::<bool>()).prop_map(|(id, reset_attempts, reset_heartbeat)| {
            Input::UnpauseActivity { id, reset_attempts, reset_heartbeat }
        }),
        8 => (0u8..7, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(id, reset_heartbeat, keep_paused, jitter)| {
                Input::ResetActivity { id, reset_heartbeat, keep_paused, jitter }
            },
        ),
        32 => target().prop_map(|target| Input::ChildStarted { target }),
        8 => target().prop_map(|target| Input::ChildStartFailed { target }),
        32 => (target(), child_close).prop_map(|(target, close)| Input::ChildClosed { target, close }),
        16 => (target(), any::<bool>()).prop_map(|(target, ok)| Input::ExternalSignalResult { target, ok }),
        16 => (target(), any::<bool>()).prop_map(|(target, ok)| Input::ExternalCancelResult { target, ok }),
        40 => (0u8..6, 0u8..3).prop_map(|(name, request)| Input::Signal { name, request }),
        8 => (0u8..3).prop_map(|request| Input::RequestCancel { request }),
        1 => Just(Input::Terminate),
        1 => Just(Input::RunTimeout),
        40 => (0u8..3, prop::bool::weighted(0.9)).prop_map(|(id, valid)| Input::AdmitUpdate { id, valid }),
        8 => Just(Input::MoveToNormalQueue),
        8 => Just(Input::ResetSticky),
        16 => (0u64..120).prop_map(|secs| Input::Advance { secs }),
        12 => Just(Input::Restart),
    ]
}

/// How the run starts: optional small limits (so the limit paths run too), and options
/// that change what closing does or when the first workflow task comes.
#[derive(Debug, Clone, Copy)]
struct SmallLimits {
    pending: Option<usize>,
    history_events: Option<i64>,
    start: StartKind,
}

#[derive(Debug, Clone, Copy)]
enum StartKind {
    Plain,
    /// A run timeout (its timer task is queued).
    RunTimeout,
    /// A workflow retry policy: a failed or timed-out run is retried.
    Retry,
    /// A cron schedule: the first workflow task waits for the backoff timer, and closing
    /// starts the next run.
    Cron,
    /// A start delay: the first workflow task waits for it.
    Delay,
    /// Eager start: the starter's worker starts the first workflow task in the start.
    Eager,
    /// A child of another workflow.
    Child,
    /// SignalWithStart: the signal is in the start.
    SignalWithStart,
}

fn small_limits() -> impl Strategy<Value = SmallLimits> {
    let start = prop_oneof![
        6 => Just(StartKind::Plain),
        1 => Just(StartKind::RunTimeout),
        1 => Just(StartKind::Retry),
        1 => Just(StartKind::Cron),
        1 => Just(StartKind::Delay),
        1 => Just(StartKind::Eager),
        1 => Just(StartKind::Child),
        1 => Just(StartKind::SignalWithStart),
    ];
    (
        prop::option::weighted(0.2, 1usize..4),
        prop::option::weighted(0.05, 20i64..100),
        start,
    )
        .prop_map(|(pending, history_events, start)| SmallLimits {
            pending,
            history_events,
            start,
        })
}

/// The run under test and what the world around it knows: the timer tasks not yet fired,
/// the last workflow task token handed out, and what it saw once the run closed.
struct World {
    run: Run,
    timers: Vec<(std::time::SystemTime, pb::TimerTask)>,
    last_token: Option<pb::TaskToken>,
    /// The history length and stored state when the run was first seen closed.
    closed: Option<(usize, pb::MutableState)>,
}

fn payload(s: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: format!("\"{s}\"").into_bytes(),
        ..Default::default()
    }
}

fn c(a: C) -> Command {
    Command {
        attributes: Some(a),
        ..Default::default()
    }
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
    fn new(limits: SmallLimits) -> Self {
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
        }
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

    fn activity(&self, t: &Target) -> i64 {
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
    fn apply<R>(
        &mut self,
        f: impl FnMut(&mut crate::Txn<'_>) -> Result<R, WorkflowError>,
    ) -> Result<R, WorkflowError> {
        let r = self.run.apply(f)?;
        if self.run.last_write == "store" {
            self.timers.extend(self.run.last_out.timers.iter().cloned());
            if let Some(new) = &self.run.last_out.new_run {
                check_new_run(new);
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

    fn commands(&self, cmds: &[Cmd], messages: &[Message]) -> Vec<Command> {
        cmds.iter().map(|x| self.command(x, messages)).collect()
    }

    fn command(&self, x: &Cmd, messages: &[Message]) -> Command {
        match x {
            Cmd::ScheduleActivity {
                id,
                timeouts,
                max_attempts,
            } => {
                let secs = |s| dur(Duration::from_secs(s));
                let (s2c, st2c, hb) = match timeouts {
                    0 => (None, secs(10), None),
                    1 => (secs(30), None, None),
                    2 => (secs(60), secs(10), secs(3)),
                    _ => (None, None, None),
                };
                c(C::ScheduleActivityTaskCommandAttributes(
                    ScheduleActivityTaskCommandAttributes {
                        activity_id: format!("a{id}"),
                        activity_type: Some(ActivityType { name: "A".into() }),
                        task_queue: Some(TaskQueue {
                            name: "tq".into(),
                            ..Default::default()
                        }),
                        schedule_to_close_timeout: s2c,
                        start_to_close_timeout: st2c,
                        heartbeat_timeout: hb,
                        retry_policy: Some(RetryPolicy {
                            maximum_attempts: *max_attempts,
                            initial_interval: secs(1),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
            }
            Cmd::RequestCancelActivity(t) => c(C::RequestCancelActivityTaskCommandAttributes(
                RequestCancelActivityTaskCommandAttributes {
                    scheduled_event_id: self.activity(t),
                },
            )),
            Cmd::StartTimer { id, secs } => c(C::StartTimerCommandAttributes(
                StartTimerCommandAttributes {
                    timer_id: format!("t{id}"),
                    start_to_fire_timeout: Some(temper_proto::wkt::Duration {
                        seconds: *secs,
                        nanos: 0,
                    }),
                },
            )),
            Cmd::CancelTimer(t) => {
                let pending: Vec<String> = self.run.ms.timers.keys().cloned().collect();
                let all: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
                c(C::CancelTimerCommandAttributes(
                    CancelTimerCommandAttributes {
                        timer_id: resolve_str(t, &pending, &all),
                    },
                ))
            }
            Cmd::StartChild { id } => c(C::StartChildWorkflowExecutionCommandAttributes(
                StartChildWorkflowExecutionCommandAttributes {
                    workflow_id: format!("child{id}"),
                    workflow_type: Some(WorkflowType {
                        name: "Child".into(),
                    }),
                    ..Default::default()
                },
            )),
            Cmd::SignalExternal { id } => c(C::SignalExternalWorkflowExecutionCommandAttributes(
                SignalExternalWorkflowExecutionCommandAttributes {
                    execution: Some(WorkflowExecution {
                        workflow_id: format!("other{id}"),
                        run_id: String::new(),
                    }),
                    signal_name: "poke".into(),
                    child_workflow_only: *id == 2,
                    ..Default::default()
                },
            )),
            Cmd::CancelExternal { id } => {
                c(C::RequestCancelExternalWorkflowExecutionCommandAttributes(
                    RequestCancelExternalWorkflowExecutionCommandAttributes {
                        workflow_id: format!("other{id}"),
                        child_workflow_only: *id == 2,
                        ..Default::default()
                    },
                ))
            }
            Cmd::UpsertSearchAttributes { key } => {
                let name = ["CustomKeywordField", "CustomIntField", ""][*key as usize % 3];
                c(C::UpsertWorkflowSearchAttributesCommandAttributes(
                    UpsertWorkflowSearchAttributesCommandAttributes {
                        search_attributes: Some(SearchAttributes {
                            indexed_fields: [(name.to_string(), payload("v"))].into(),
                        }),
                    },
                ))
            }
            Cmd::ModifyMemo { key } => c(C::ModifyWorkflowPropertiesCommandAttributes(
                ModifyWorkflowPropertiesCommandAttributes {
                    upserted_memo: (*key < 2).then(|| Memo {
                        fields: [(format!("m{key}"), payload("memo"))].into(),
                    }),
                },
            )),
            Cmd::Marker { named } => c(C::RecordMarkerCommandAttributes(
                RecordMarkerCommandAttributes {
                    marker_name: if *named { "m".into() } else { String::new() },
                    ..Default::default()
                },
            )),
            Cmd::Complete => crate::tests::complete_cmd(),
            Cmd::Fail => c(C::FailWorkflowExecutionCommandAttributes(
                FailWorkflowExecutionCommandAttributes {
                    failure: Some(Failure {
                        message: "boom".into(),
                        ..Default::default()
                    }),
                },
            )),
            Cmd::Cancel => c(C::CancelWorkflowExecutionCommandAttributes(
                Default::default(),
            )),
            Cmd::ContinueAsNew => c(C::ContinueAsNewWorkflowExecutionCommandAttributes(
                ContinueAsNewWorkflowExecutionCommandAttributes {
                    workflow_type: Some(WorkflowType { name: "W".into() }),
                    task_queue: Some(TaskQueue {
                        name: "tq".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
            Cmd::ProtocolMessage { index } => crate::update_tests::protocol(
                &messages
                    .get(*index as usize)
                    .map(|m| m.id.clone())
                    .unwrap_or_else(|| "absent".into()),
            ),
            Cmd::Empty => Command::default(),
        }
    }

    /// Apply one input. Errors are the state machine refusing it, which is allowed.
    fn step(&mut self, input: &Input) -> Result<(), WorkflowError> {
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
    fn check(&mut self, input: &Input, result: &Result<(), WorkflowError>) {
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
    fn check_end(&self) {
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
fn check_reset_run(new: &crate::NewRunState, run: RebuildRun<'_>) {
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

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides the count (read by ProptestConfig::default()).
    let from_env = std::env::var("PROPTEST_CASES").is_ok();
    ProptestConfig {
        cases: if from_env {
            ProptestConfig::default().cases
        } else {
            256
        },
        ..ProptestConfig::default()
    }
}

fn run_inputs(limits: SmallLimits, inputs: &[Input]) -> World {
    let mut w = World::new(limits);
    for input in inputs {
        let result = w.step(input);
        w.check(input, &result);
    }
    w.check_end();
    w
}

/// The cause of the history's last WorkflowTaskFailed event.
fn last_failed_cause(history: &[HistoryEvent]) -> Option<i32> {
    history.iter().rev().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => Some(a.cause),
        _ => None,
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_inputs_keep_the_history_and_state_consistent(
        limits in small_limits(),
        inputs in prop::collection::vec(input(), 1..100),
    ) {
        run_inputs(limits, &inputs);
    }
}

fn round(commands: Vec<Cmd>) -> Input {
    Input::WorkflowTaskRound(Completed {
        commands,
        messages: Vec::new(),
        sticky: false,
        force_new: false,
    })
}

/// Found by the property test: timer t3 fires while a workflow task runs (its TimerFired is
/// buffered), and the workflow, which has not seen the fire, starts a timer t3 again. The
/// new timer was started, then the buffered TimerFired of the old one was written after it,
/// so replay took the fire for the new timer: the live state had t3 pending, the history
/// none. From the workflow's view t3 is still running: the start is a duplicate id.
#[test]
fn a_timer_id_whose_fire_is_buffered_cannot_be_started_again() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            round(vec![
                Cmd::StartChild { id: 0 },
                Cmd::StartTimer { id: 3, secs: 0 },
            ]),
            Input::ChildStartFailed {
                target: Target::Pending(Index(0)),
            },
            // The first workflow task's timeout: stale.
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
            Input::StartWorkflowTask {
                stale: false,
                poll: 0,
            },
            // Timer t3.
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
            Input::CompleteWorkflowTask {
                completed: Completed {
                    commands: vec![Cmd::StartTimer { id: 3, secs: 0 }],
                    messages: Vec::new(),
                    sticky: false,
                    force_new: false,
                },
                stale_token: false,
            },
        ],
    );
    assert_eq!(
        last_failed_cause(&w.run.history),
        Some(WorkflowTaskFailedCause::StartTimerDuplicateId as i32)
    );
}

fn completed(commands: Vec<Cmd>, sticky: bool) -> Completed {
    Completed {
        commands,
        messages: Vec::new(),
        sticky,
        force_new: false,
    }
}

const NO_LIMITS: SmallLimits = SmallLimits {
    pending: None,
    history_events: None,
    start: StartKind::Plain,
};

/// Found by the property test: ResetStickyTaskQueue on a closed run cleared its sticky
/// queue and wrote its state again; Temporal refuses it (NotFound "workflow execution
/// already completed") and a closed run's stored state does not change.
#[test]
fn reset_sticky_on_a_closed_run_is_refused() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            Input::WorkflowTaskRound(completed(Vec::new(), true)),
            Input::Terminate,
            Input::ResetSticky,
        ],
    );
    let info = w.run.stored.execution_info.as_ref().expect("info");
    assert_eq!(
        info.sticky_task_queue, "sticky",
        "left as it was at the close"
    );
}

/// Found by the property test: a workflow task scheduled on the sticky queue and moved to the
/// normal queue (its worker was gone) writes no event, as in Temporal, so replay gives the
/// sticky queue; the replay check accepts that one difference (see `assert_replays`).
#[test]
fn a_task_moved_to_the_normal_queue_still_replays() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            Input::WorkflowTaskRound(completed(Vec::new(), true)),
            Input::Signal {
                name: 0,
                request: 0,
            },
            Input::MoveToNormalQueue,
        ],
    );
    let wt = w.run.stored.workflow_task.as_ref().expect("scheduled");
    assert_eq!(wt.task_queue.as_ref().map(|q| q.name.as_str()), Some("tq"));
}

/// Found by the property test: a cron run terminated while it waited out its first workflow
/// task's backoff; the backoff timer then fired and cleared the backoff on the closed run
/// (its stored state changed after the close, and no event said so).
#[test]
fn the_backoff_timer_of_a_closed_run_changes_nothing() {
    run_inputs(
        SmallLimits {
            start: StartKind::Cron,
            ..NO_LIMITS
        },
        &[
            Input::Terminate,
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
        ],
    );
}

/// Found by the property test: an update admitted while the run waited out its first
/// workflow task's backoff got a speculative task; the backoff timer then found a task
/// pending, cleared the backoff without an event and scheduled nothing (replay kept the
/// backoff; a discarded speculative task would have left the run without a first task).
/// As for a signal, the update now waits for the first workflow task, which delivers it.
#[test]
fn an_update_during_the_first_task_backoff_rides_on_the_first_task() {
    let mut w = run_inputs(
        SmallLimits {
            start: StartKind::Delay,
            ..NO_LIMITS
        },
        &[
            Input::AdmitUpdate { id: 0, valid: true },
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
        ],
    );
    let wt = w.run.ms.workflow_task.clone().expect("the first task");
    assert!(!wt.speculative);
    let scheduled = wt.scheduled_event_id;
    let (_, messages) = w
        .apply(|t| {
            update::record_workflow_task_started(
                t,
                StartRequest {
                    poller: Default::default(),
                    scheduled_event_id: scheduled,
                    request_id: "poll",
                    identity: "w",
                },
            )
        })
        .expect("starts");
    assert_eq!(messages.len(), 1, "the update is delivered with it");
}

/// Found by the property test (resetting every run it drives): a reset to a point between
/// an activity's ActivityTaskStarted and its end left the activity in flight in the new run,
/// waiting for a worker that reports to the old run, and its history said it had started.
/// As in Temporal, the reset now fails such an activity (ActivityTaskFailed, non-retryable,
/// with the reset's reason) right after failing the workflow task.
#[test]
fn a_reset_fails_the_activities_in_flight_at_its_point() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            round(vec![Cmd::ScheduleActivity {
                id: 0,
                timeouts: 1,
                max_attempts: 0,
            }]),
            Input::ActivityStarted {
                target: Target::Pending(Index(0)),
                poll: 0,
            },
            Input::Signal {
                name: 0,
                request: 0,
            },
            Input::ActivityCompleted {
                target: Target::Pending(Index(0)),
                stale_attempt: false,
            },
        ],
    );
    let types: Vec<EventType> = w
        .run
        .history
        .iter()
        .map(|e| EventType::try_from(e.event_type).expect("known"))
        .collect();
    assert_eq!(
        types[4..],
        [
            EventType::ActivityTaskScheduled,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted,
        ]
    );
    let run = RebuildRun {
        namespace_id: "ns",
        namespace: "",
        workflow_id: "wf",
        run_id: "reset-run",
        request_id: "reset",
    };
    let new = reset(
        &w.run.history,
        &[],
        Reset {
            run,
            base_run_id: "run",
            reason: "try again",
            // Between the activity's started (8) and completed (9) events.
            workflow_task_finish_event_id: 9,
            reapply_signals: true,
            base_tail: &[],
            now: w.run.now,
        },
        &w.run.limits,
    )
    .expect("reset");
    assert!(new.ms.activities.is_empty(), "no activity left in flight");
    let failed = new
        .mutation
        .events
        .iter()
        .find_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskFailedEventAttributes(a)) => Some(a.clone()),
            _ => None,
        })
        .expect("the activity is failed");
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (5, 8));
    assert_eq!(
        failed.retry_state,
        temper_proto::temporal::api::enums::v1::RetryState::NonRetryableFailure as i32
    );
    check_reset_run(&new, run);
}

/// Found by the property test: an eagerly started run counted its started event in the
/// history size before `eager_execution_accepted` was set on it, so its history size was
/// short by the flag's bytes (replay counts the event as written).
#[test]
fn an_eager_start_counts_its_started_event_as_written() {
    let w = run_inputs(
        SmallLimits {
            start: StartKind::Eager,
            ..NO_LIMITS
        },
        &[],
    );
    use prost::Message as _;
    let written: i64 = w.run.history.iter().map(|e| e.encoded_len() as i64).sum();
    let info = w.run.stored.execution_info.as_ref().expect("info");
    assert_eq!(info.history_size_bytes, written);
}
