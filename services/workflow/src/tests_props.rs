//! Property tests: arbitrary sequences of what can happen to a run (workflow task starts,
//! completions with arbitrary and invalid commands and update messages, workflow task
//! failures and timeouts, timer tasks due, stale or delivered twice, activity reports and
//! operator pauses and resets, child and external results, signals, cancel requests,
//! updates, terminations, sticky queue moves, cache evictions), on runs started plainly,
//! eagerly, with a run timeout, a retry policy, a cron schedule, a start delay, as a child
//! or with SignalWithStart, driven through [`crate::transaction::apply`] as the history
//! service drives them. After every input:
//!
//! - nothing panicked (an input the state machine refuses returns an error);
//! - the history's event ids are 1..=n, each event's id its position, and the state's
//!   `next_event_id` (cached and stored) is n + 1;
//! - a close event, if any, is the history's last event;
//! - rebuilding the state from the history gives the stored state
//!   ([`crate::tests_rebuild::assert_replays`], which [`crate::update_tests::Run::apply`] runs
//!   after every write);
//! - once the run closed, nothing more is written and the stored state does not change;
//!   signals, cancel requests, terminations, sticky resets, new updates, workflow task and
//!   activity reports are refused;
//! - a run continued as new starts with a history and state that replay the same way.
//!
//! At the end, the run is reset (terminated first if it runs) to every event id: each reset
//! is refused or gives a new run that replays the same way.
//!
//! Cases: 256 by default; `PROPTEST_CASES` overrides. Findings are kept as plain tests in
//! `regressions`.

mod commands;
mod regressions;
mod world;

use proptest::prelude::*;

use world::World;

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
    /// Accept an update echoing its request (how an update the server lost from memory
    /// comes back).
    AcceptEcho(Target),
    /// Complete an accepted update.
    Respond(Target),
    /// Reject an admitted update.
    Reject(Target),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        2 => target().prop_map(Msg::Accept),
        1 => target().prop_map(Msg::AcceptEcho),
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
    /// The run that continues a closed one (continue-as-new, retry, cron) is driven from
    /// here on.
    FollowNextRun,
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
        40 => Just(Input::FollowNextRun),
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
