//! Scenario workflows against synthetic histories: for each, the commands every step of its
//! life gets, and the ways it fails.

use std::collections::BTreeMap;
use std::time::Duration;

use temporalio_protos::temporal::api::command::v1::{Command, command::Attributes as C};
use temporalio_protos::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::{CommandType, EventType};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::history_event::Attributes as A;
use temporalio_protos::temporal::api::history::v1::*;

use super::*;

/// A history under construction, one event at a time, with ids in order.
struct History {
    events: Vec<HistoryEvent>,
    kind: WorkflowKind,
}

impl History {
    fn new(kind: WorkflowKind, params: &WorkflowParams) -> Self {
        Self::with_input(kind, Some(params.to_payloads()))
    }

    fn with_input(kind: WorkflowKind, input: Option<Payloads>) -> Self {
        let mut h = History {
            events: Vec::new(),
            kind,
        };
        h.push(
            EventType::WorkflowExecutionStarted,
            A::WorkflowExecutionStartedEventAttributes(WorkflowExecutionStartedEventAttributes {
                workflow_type: Some(WorkflowType {
                    name: kind.type_name().to_string(),
                }),
                task_queue: Some(normal_queue("tq")),
                input,
                ..Default::default()
            }),
        );
        h.new_task();
        h
    }

    fn push(&mut self, event_type: EventType, attrs: A) -> i64 {
        let id = self.events.len() as i64 + 1;
        self.events.push(HistoryEvent {
            event_id: id,
            event_type: event_type as i32,
            attributes: Some(attrs),
            ..Default::default()
        });
        id
    }

    /// A workflow task is scheduled and started (the worker is about to decide).
    fn new_task(&mut self) {
        self.push(
            EventType::WorkflowTaskScheduled,
            A::WorkflowTaskScheduledEventAttributes(Default::default()),
        );
        self.push(
            EventType::WorkflowTaskStarted,
            A::WorkflowTaskStartedEventAttributes(Default::default()),
        );
    }

    /// The current task completed; its commands' events follow.
    fn complete_task(&mut self) {
        self.push(
            EventType::WorkflowTaskCompleted,
            A::WorkflowTaskCompletedEventAttributes(Default::default()),
        );
    }

    fn fail_task(&mut self, message: &str) {
        self.push(
            EventType::WorkflowTaskFailed,
            A::WorkflowTaskFailedEventAttributes(WorkflowTaskFailedEventAttributes {
                failure: Some(Failure {
                    message: message.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
    }

    fn activity_scheduled(&mut self, id: &str) -> i64 {
        self.push(
            EventType::ActivityTaskScheduled,
            A::ActivityTaskScheduledEventAttributes(ActivityTaskScheduledEventAttributes {
                activity_id: id.to_string(),
                ..Default::default()
            }),
        )
    }

    fn activity_completed(&mut self, scheduled: i64) {
        let started = self.push(
            EventType::ActivityTaskStarted,
            A::ActivityTaskStartedEventAttributes(ActivityTaskStartedEventAttributes {
                scheduled_event_id: scheduled,
                ..Default::default()
            }),
        );
        self.push(
            EventType::ActivityTaskCompleted,
            A::ActivityTaskCompletedEventAttributes(ActivityTaskCompletedEventAttributes {
                scheduled_event_id: scheduled,
                started_event_id: started,
                ..Default::default()
            }),
        );
    }

    fn timer(&mut self, id: &str) -> i64 {
        self.push(
            EventType::TimerStarted,
            A::TimerStartedEventAttributes(TimerStartedEventAttributes {
                timer_id: id.to_string(),
                ..Default::default()
            }),
        )
    }

    fn timer_fired(&mut self, id: &str, started: i64) {
        self.push(
            EventType::TimerFired,
            A::TimerFiredEventAttributes(TimerFiredEventAttributes {
                timer_id: id.to_string(),
                started_event_id: started,
            }),
        );
    }

    fn signal(&mut self) {
        self.push(
            EventType::WorkflowExecutionSignaled,
            A::WorkflowExecutionSignaledEventAttributes(WorkflowExecutionSignaledEventAttributes {
                signal_name: SIGNAL_NAME.to_string(),
                ..Default::default()
            }),
        );
    }

    /// Apply the commands of a decision as the server would record them.
    fn record(&mut self, d: &Decision) -> Vec<i64> {
        self.complete_task();
        d.commands
            .iter()
            .filter_map(|c| match &c.attributes {
                Some(C::ScheduleActivityTaskCommandAttributes(a)) => {
                    Some(self.activity_scheduled(&a.activity_id))
                }
                Some(C::StartTimerCommandAttributes(a)) => Some(self.timer(&a.timer_id)),
                Some(C::ScheduleNexusOperationCommandAttributes(a)) => Some(self.push(
                    EventType::NexusOperationScheduled,
                    A::NexusOperationScheduledEventAttributes(
                        NexusOperationScheduledEventAttributes {
                            endpoint: a.endpoint.clone(),
                            service: a.service.clone(),
                            operation: a.operation.clone(),
                            input: a.input.clone(),
                            ..Default::default()
                        },
                    ),
                )),
                Some(C::StartChildWorkflowExecutionCommandAttributes(a)) => Some(self.push(
                    EventType::StartChildWorkflowExecutionInitiated,
                    A::StartChildWorkflowExecutionInitiatedEventAttributes(
                        StartChildWorkflowExecutionInitiatedEventAttributes {
                            workflow_id: a.workflow_id.clone(),
                            ..Default::default()
                        },
                    ),
                )),
                _ => None,
            })
            .collect()
    }

    fn nexus_started(&mut self, scheduled: i64) {
        self.push(
            EventType::NexusOperationStarted,
            A::NexusOperationStartedEventAttributes(NexusOperationStartedEventAttributes {
                scheduled_event_id: scheduled,
                operation_token: "token".to_string(),
                ..Default::default()
            }),
        );
    }

    fn nexus_completed(&mut self, scheduled: i64, result: Payload) {
        self.push(
            EventType::NexusOperationCompleted,
            A::NexusOperationCompletedEventAttributes(NexusOperationCompletedEventAttributes {
                scheduled_event_id: scheduled,
                result: Some(result),
                ..Default::default()
            }),
        );
    }

    fn decide(&self) -> Decision {
        self.decide_attempt(1)
    }

    fn decide_attempt(&self, attempt: i32) -> Decision {
        decide(&WorkflowTask {
            namespace: "default",
            workflow_id: "wf-1",
            workflow_type: self.kind.type_name(),
            attempt,
            history: &self.events,
        })
    }
}

fn params(count: u32, duration_ms: u64) -> WorkflowParams {
    WorkflowParams {
        count,
        duration_ms,
        ..Default::default()
    }
}

fn types(d: &Decision) -> Vec<CommandType> {
    d.commands
        .iter()
        .map(|c| CommandType::try_from(c.command_type).expect("known command type"))
        .collect()
}

fn activity_ids(d: &Decision) -> Vec<String> {
    d.commands
        .iter()
        .filter_map(|c| match &c.attributes {
            Some(C::ScheduleActivityTaskCommandAttributes(a)) => {
                assert_eq!(a.task_queue.as_ref().map(|q| q.name.as_str()), Some("tq"));
                assert_eq!(
                    a.activity_type.as_ref().map(|t| t.name.as_str()),
                    Some(ACTIVITY_TYPE)
                );
                assert!(
                    a.start_to_close_timeout.is_some(),
                    "servers require a timeout"
                );
                Some(a.activity_id.clone())
            }
            _ => None,
        })
        .collect()
}

fn is_complete(d: &Decision) -> bool {
    d.outcome == Outcome::Completed && types(d) == vec![CommandType::CompleteWorkflowExecution]
}

fn failure_of(d: &Decision) -> String {
    assert_eq!(types(d), vec![CommandType::FailWorkflowExecution], "{d:?}");
    match (&d.outcome, &d.commands[0].attributes) {
        (Outcome::Failed(why), Some(C::FailWorkflowExecutionCommandAttributes(a))) => {
            assert_eq!(
                a.failure.as_ref().map(|f| f.message.as_str()),
                Some(why.as_str())
            );
            why.clone()
        }
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn noop_completes_in_its_first_task() {
    let h = History::new(WorkflowKind::Noop, &WorkflowParams::default());
    assert!(is_complete(&h.decide()));
}

#[test]
fn activity_schedules_one_then_completes() {
    let mut h = History::new(WorkflowKind::Activity, &WorkflowParams::default());
    let d = h.decide();
    assert_eq!(d.outcome, Outcome::Running);
    assert_eq!(activity_ids(&d), vec!["0"]);
    let ids = h.record(&d);
    h.activity_completed(ids[0]);
    h.new_task();
    assert!(is_complete(&h.decide()));
}

#[test]
fn activity_failure_fails_the_workflow() {
    let mut h = History::new(WorkflowKind::Activity, &WorkflowParams::default());
    let ids = h.record(&h.decide());
    h.push(
        EventType::ActivityTaskTimedOut,
        A::ActivityTaskTimedOutEventAttributes(ActivityTaskTimedOutEventAttributes {
            scheduled_event_id: ids[0],
            failure: Some(Failure {
                message: "activity StartToClose timeout".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    h.new_task();
    assert_eq!(
        failure_of(&h.decide()),
        "activity timed out: activity StartToClose timeout"
    );
}

#[test]
fn sequential_activities_run_one_at_a_time() {
    let mut h = History::new(WorkflowKind::SequentialActivities, &params(3, 0));
    for i in 0..3 {
        let d = h.decide();
        assert_eq!(activity_ids(&d), vec![i.to_string()], "step {i}");
        let ids = h.record(&d);
        // A task while the activity runs (say, a timed-out task retried) changes nothing.
        h.new_task();
        let idle = h.decide();
        assert!(idle.commands.is_empty() && idle.outcome == Outcome::Running);
        h.complete_task();
        h.activity_completed(ids[0]);
        h.new_task();
    }
    assert!(is_complete(&h.decide()));
}

#[test]
fn sequential_activities_with_count_zero_complete_at_once() {
    let h = History::new(WorkflowKind::SequentialActivities, &params(0, 0));
    assert!(is_complete(&h.decide()));
}

#[test]
fn parallel_activities_are_scheduled_together() {
    let mut h = History::new(WorkflowKind::ParallelActivities, &params(4, 0));
    let d = h.decide();
    assert_eq!(activity_ids(&d), vec!["0", "1", "2", "3"]);
    let ids = h.record(&d);
    for (n, id) in ids.iter().enumerate() {
        h.activity_completed(*id);
        h.new_task();
        let d = h.decide();
        if n + 1 < ids.len() {
            assert!(d.commands.is_empty(), "after {} of 4: {d:?}", n + 1);
            h.complete_task();
        } else {
            assert!(is_complete(&d));
        }
    }
}

#[test]
fn timers_run_in_sequence_with_the_given_length() {
    let mut h = History::new(WorkflowKind::Timers, &params(2, 250));
    for i in 0..2 {
        let d = h.decide();
        assert_eq!(types(&d), vec![CommandType::StartTimer]);
        match &d.commands[0].attributes {
            Some(C::StartTimerCommandAttributes(a)) => {
                assert_eq!(a.timer_id, i.to_string());
                assert_eq!(
                    a.start_to_fire_timeout,
                    Some(proto_duration(std::time::Duration::from_millis(250)))
                );
            }
            other => panic!("{other:?}"),
        }
        let ids = h.record(&d);
        h.timer_fired(&i.to_string(), ids[0]);
        h.new_task();
    }
    assert!(is_complete(&h.decide()));
}

#[test]
fn a_timer_until_a_unix_time_counts_from_the_task_start() {
    let until = WorkflowParams {
        count: 1,
        until_ms: 1_000_000_250,
        ..Default::default()
    };
    let mut h = History::new(WorkflowKind::Timers, &until);
    let started = h.events.last_mut().expect("the task's started event");
    started.event_time = Some(prost_wkt_types::Timestamp {
        seconds: 1_000_000,
        nanos: 100_000_000,
    });
    let d = h.decide();
    match &d.commands[..] {
        [
            Command {
                attributes: Some(C::StartTimerCommandAttributes(a)),
                ..
            },
        ] => assert_eq!(
            a.start_to_fire_timeout,
            Some(proto_duration(Duration::from_millis(150)))
        ),
        other => panic!("{other:?}"),
    }
    // Past the instant already: the shortest timer there is, not a negative one.
    let mut late = History::new(WorkflowKind::Timers, &until);
    late.events.last_mut().expect("event").event_time = Some(prost_wkt_types::Timestamp {
        seconds: 2_000_000,
        nanos: 0,
    });
    match &late.decide().commands[0].attributes {
        Some(C::StartTimerCommandAttributes(a)) => assert_eq!(
            a.start_to_fire_timeout,
            Some(proto_duration(Duration::from_millis(1)))
        ),
        other => panic!("{other:?}"),
    }
    let ids = h.record(&d);
    h.timer_fired("0", ids[0]);
    h.new_task();
    assert!(is_complete(&h.decide()));
    // The parameter stays off the wire when unset, so older payloads read the same.
    let plain = serde_json::to_string(&params(1, 5)).expect("serializes");
    assert!(!plain.contains("until_ms"), "{plain}");
}

#[test]
fn signals_complete_after_the_last_one() {
    let mut h = History::new(WorkflowKind::Signals, &params(3, 0));
    let d = h.decide();
    assert!(d.commands.is_empty() && d.outcome == Outcome::Running);
    h.complete_task();
    // Two signals arrive together, the third later.
    h.signal();
    h.signal();
    h.new_task();
    let d = h.decide();
    assert!(d.commands.is_empty() && d.outcome == Outcome::Running);
    h.complete_task();
    h.signal();
    h.new_task();
    assert!(is_complete(&h.decide()));
}

#[test]
fn child_workflows_start_noop_children_and_wait_for_all() {
    let mut h = History::new(WorkflowKind::ChildWorkflows, &params(2, 0));
    let d = h.decide();
    assert_eq!(types(&d), vec![CommandType::StartChildWorkflowExecution; 2]);
    for (i, c) in d.commands.iter().enumerate() {
        match &c.attributes {
            Some(C::StartChildWorkflowExecutionCommandAttributes(a)) => {
                assert_eq!(a.workflow_id, format!("wf-1-child-{i}"));
                assert_eq!(a.workflow_id, child_workflow_id("wf-1", i as u32));
                assert_eq!(
                    a.workflow_type.as_ref().map(|t| t.name.as_str()),
                    Some(WorkflowKind::Noop.type_name())
                );
                assert_eq!(a.task_queue.as_ref().map(|q| q.name.as_str()), Some("tq"));
            }
            other => panic!("{other:?}"),
        }
    }
    let initiated = h.record(&d);
    for (n, id) in initiated.iter().enumerate() {
        h.push(
            EventType::ChildWorkflowExecutionCompleted,
            A::ChildWorkflowExecutionCompletedEventAttributes(
                ChildWorkflowExecutionCompletedEventAttributes {
                    initiated_event_id: *id,
                    ..Default::default()
                },
            ),
        );
        h.new_task();
        let d = h.decide();
        if n == 0 {
            assert!(d.commands.is_empty());
            h.complete_task();
        } else {
            assert!(is_complete(&d));
        }
    }
}

/// The Nexus operation a decision schedules: (endpoint, operation, input), after checking
/// what every one carries.
fn nexus_call(d: &Decision) -> (String, String, Payload) {
    assert_eq!(d.outcome, Outcome::Running);
    assert_eq!(types(d), vec![CommandType::ScheduleNexusOperation], "{d:?}");
    match &d.commands[0].attributes {
        Some(C::ScheduleNexusOperationCommandAttributes(a)) => {
            assert_eq!(a.service, nexus::SERVICE);
            assert_eq!(
                a.schedule_to_close_timeout,
                Some(proto_duration(nexus::SCHEDULE_TO_CLOSE))
            );
            (
                a.endpoint.clone(),
                a.operation.clone(),
                a.input.clone().expect("an input"),
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nexus_caller_calls_the_sync_then_the_async_operation() {
    let mut h = History::new(WorkflowKind::Nexus, &WorkflowParams::default());
    let (endpoint, operation, input) = nexus_call(&h.decide());
    assert_eq!(endpoint, nexus::endpoint_name("tq", "default"));
    assert_eq!(operation, nexus::SYNC_OPERATION);
    assert_eq!(input, nexus::operation_input("wf-1"));
    let sync = h.record(&h.decide())[0];
    // A task while the operation runs changes nothing.
    h.new_task();
    let idle = h.decide();
    assert!(idle.commands.is_empty() && idle.outcome == Outcome::Running);
    h.complete_task();
    h.nexus_completed(sync, input.clone());
    h.new_task();
    let d = h.decide();
    let (endpoint, operation, second_input) = nexus_call(&d);
    assert_eq!(endpoint, nexus::endpoint_name("tq", "default"));
    assert_eq!(operation, nexus::ASYNC_OPERATION);
    assert_eq!(second_input, input);
    let async_op = h.record(&d)[0];
    h.nexus_started(async_op);
    h.new_task();
    let idle = h.decide();
    assert!(idle.commands.is_empty() && idle.outcome == Outcome::Running);
    h.complete_task();
    h.nexus_completed(async_op, Payload::default());
    h.new_task();
    assert!(is_complete(&h.decide()));
}

#[test]
fn nexus_caller_takes_a_completion_that_came_before_the_start() {
    // The handler workflow can close (and its callback land) before the handler's
    // asynchronous answer is recorded: no NexusOperationStarted at all.
    let mut h = History::new(WorkflowKind::Nexus, &WorkflowParams::default());
    let sync = h.record(&h.decide())[0];
    h.nexus_completed(sync, nexus::operation_input("wf-1"));
    h.new_task();
    let async_op = h.record(&h.decide())[0];
    h.nexus_completed(async_op, Payload::default());
    h.new_task();
    assert!(is_complete(&h.decide()));
}

#[test]
fn nexus_caller_fails_when_an_operation_does() {
    let mut h = History::new(WorkflowKind::Nexus, &WorkflowParams::default());
    let sync = h.record(&h.decide())[0];
    h.push(
        EventType::NexusOperationFailed,
        A::NexusOperationFailedEventAttributes(NexusOperationFailedEventAttributes {
            scheduled_event_id: sync,
            failure: Some(Failure {
                message: "nexus operation completed unsuccessfully".to_string(),
                cause: Some(Box::new(Failure {
                    message: "no operation \"echo\"".to_string(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    h.new_task();
    assert_eq!(
        failure_of(&h.decide()),
        "nexus operation failed: nexus operation completed unsuccessfully: no operation \"echo\""
    );

    let mut h = History::new(WorkflowKind::Nexus, &WorkflowParams::default());
    let sync = h.record(&h.decide())[0];
    h.nexus_completed(sync, nexus::operation_input("wf-1"));
    h.new_task();
    let async_op = h.record(&h.decide())[0];
    h.push(
        EventType::NexusOperationTimedOut,
        A::NexusOperationTimedOutEventAttributes(NexusOperationTimedOutEventAttributes {
            scheduled_event_id: async_op,
            failure: Some(Failure {
                message: "operation timed out".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    h.new_task();
    assert_eq!(
        failure_of(&h.decide()),
        "nexus operation timed out: operation timed out"
    );
}

#[test]
fn nexus_caller_fails_when_the_echo_is_not_its_input() {
    let mut h = History::new(WorkflowKind::Nexus, &WorkflowParams::default());
    let sync = h.record(&h.decide())[0];
    h.nexus_completed(sync, nexus::operation_input("someone-else"));
    h.new_task();
    let why = failure_of(&h.decide());
    assert!(why.contains("not its input"), "{why}");
}

#[test]
fn nexus_handler_workflow_completes_in_its_first_task() {
    let h = History::with_input(WorkflowKind::NexusHandler, None);
    assert!(is_complete(&h.decide()));
}

#[test]
fn a_child_that_cannot_start_fails_the_parent() {
    let mut h = History::new(WorkflowKind::ChildWorkflows, &params(1, 0));
    h.record(&h.decide());
    h.push(
        EventType::StartChildWorkflowExecutionFailed,
        A::StartChildWorkflowExecutionFailedEventAttributes(
            StartChildWorkflowExecutionFailedEventAttributes {
                workflow_id: "wf-1-child-0".to_string(),
                ..Default::default()
            },
        ),
    );
    h.new_task();
    assert_eq!(
        failure_of(&h.decide()),
        "child workflow wf-1-child-0 could not start"
    );
}

#[test]
fn repeated_workflow_task_failures_fail_the_workflow_with_the_servers_reason() {
    // temper today: the server fails each task that starts a child workflow.
    let mut h = History::new(WorkflowKind::ChildWorkflows, &params(1, 0));
    for n in 1..=MAX_FAILED_WORKFLOW_TASKS {
        let d = h.decide();
        assert_eq!(d.outcome, Outcome::Running, "attempt {n} still tries");
        h.fail_task("command StartChildWorkflowExecution is not supported by this server yet");
        h.new_task();
    }
    assert_eq!(
        failure_of(&h.decide()),
        "workflow task failed repeatedly: command StartChildWorkflowExecution is not supported by this server yet"
    );
}

#[test]
fn a_completed_task_resets_the_failure_count() {
    let mut h = History::new(WorkflowKind::Signals, &params(1, 0));
    h.fail_task("transient");
    h.new_task();
    h.fail_task("transient");
    h.new_task();
    h.complete_task();
    h.signal();
    h.new_task();
    h.fail_task("transient");
    h.new_task();
    assert!(is_complete(&h.decide()));
}

#[test]
fn a_high_attempt_with_a_recorded_failure_gives_up() {
    // Temporal records only the first failure and retries as transient tasks with a growing
    // attempt number.
    let mut h = History::new(WorkflowKind::Noop, &WorkflowParams::default());
    h.fail_task("bad command");
    h.new_task();
    assert!(is_complete(&h.decide_attempt(2)));
    let why = failure_of(&h.decide_attempt(MAX_FAILED_WORKFLOW_TASKS as i32 + 1));
    assert!(why.contains("bad command"), "{why}");
}

#[test]
fn bad_histories_and_inputs_fail_the_workflow_with_a_reason() {
    let no_start = decide(&WorkflowTask {
        namespace: "default",
        workflow_id: "wf-1",
        workflow_type: "loadtest-noop",
        attempt: 1,
        history: &[],
    });
    assert!(failure_of(&no_start).contains("no WorkflowExecutionStarted"));

    let h = History::new(WorkflowKind::Noop, &WorkflowParams::default());
    let foreign = decide(&WorkflowTask {
        workflow_type: "OrderWorkflow",
        ..WorkflowTask {
            namespace: "default",
            workflow_id: "wf-1",
            workflow_type: "",
            attempt: 1,
            history: &h.events,
        }
    });
    assert!(failure_of(&foreign).contains("unknown workflow type"));

    let mut garbage = WorkflowParams::default().to_payloads();
    garbage.payloads[0].data = b"not json".to_vec();
    let h = History::with_input(WorkflowKind::Timers, Some(garbage));
    assert!(failure_of(&h.decide()).contains("not loadtest parameters"));

    // No input at all means default parameters (count 0): done at once.
    let h = History::with_input(WorkflowKind::Timers, None);
    assert!(is_complete(&h.decide()));
}

#[test]
fn params_travel_as_json_payloads() {
    let p = params(7, 125);
    let payloads = p.to_payloads();
    assert_eq!(
        payloads.payloads[0]
            .metadata
            .get("encoding")
            .map(Vec::as_slice),
        Some(&b"json/plain"[..])
    );
    assert_eq!(WorkflowParams::from_payloads(Some(&payloads)), Ok(p));
}

#[test]
fn history_summary_counts_what_happened() {
    let mut h = History::new(WorkflowKind::ParallelActivities, &params(2, 0));
    let ids = h.record(&h.decide());
    h.activity_completed(ids[0]);
    h.signal();
    let s = HistorySummary::from_events(&h.events);
    assert_eq!(s.activities_scheduled, 2);
    assert_eq!(s.activities_completed, 1);
    assert_eq!(s.signals, 1);
    assert_eq!(s.task_queue, "tq");
    assert_eq!(s.last_event_id, h.events.len() as i64);
    assert_eq!(s.parent_workflow_id, None);
}

fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_listed_scenario_has_a_plan_with_its_defaults() {
    for s in SCENARIOS {
        let p = plan(s.name, &BTreeMap::new(), "ns").expect(s.name);
        assert_eq!(p.scenario, s.name);
        for o in s.options {
            assert_eq!(p.options.get(o.name).map(String::as_str), Some(o.default));
        }
    }
    let p = plan("sequential-activities", &BTreeMap::new(), "ns").expect("valid");
    assert_eq!(p.params, params(5, 0));
    assert_eq!(
        p.namespaces,
        vec![NamespaceShare {
            name: "ns".into(),
            weight: 1,
            fairness: None,
        }]
    );
    assert_eq!(p.activity_slots, DEFAULT_ACTIVITY_SLOTS);
    assert_eq!(p.activity_delay, Duration::ZERO);
    assert_eq!(
        plan("timers", &BTreeMap::new(), "ns")
            .expect("valid")
            .params,
        params(3, 100)
    );
    let n = plan("nexus", &BTreeMap::new(), "ns").expect("valid");
    assert!(n.uses_nexus() && n.workflow == WorkflowKind::Nexus);
    assert!(
        !plan("activity", &BTreeMap::new(), "ns")
            .expect("valid")
            .uses_nexus()
    );
    let s = plan("signals", &opts(&[("count", "2")]), "ns").expect("valid");
    assert_eq!((s.workflow, s.signals), (WorkflowKind::Signals, 2));
    assert_eq!(
        plan("parallel-activities", &BTreeMap::new(), "ns")
            .expect("valid")
            .signals,
        0
    );
}

#[test]
fn bad_scenario_options_are_refused_with_what_to_use() {
    let e = plan("timers", &opts(&[("count", "lots")]), "ns").expect_err("not a number");
    assert!(e.to_string().contains("not a whole number"), "{e}");
    let e = plan("timers", &opts(&[("count", "100000")]), "ns").expect_err("too many");
    assert!(e.to_string().contains("between 0 and 1000"), "{e}");
    let e = plan("activity", &opts(&[("count", "2")]), "ns").expect_err("no options");
    assert!(e.to_string().contains("(none)"), "{e}");
    let e = plan("tenant-mix", &opts(&[("namespaces", "0")]), "ns").expect_err("none");
    assert!(e.to_string().contains("between 1 and 64"), "{e}");
    let e = plan("tenant-mix", &opts(&[("inner", "tenant-mix")]), "ns").expect_err("loop");
    assert!(e.to_string().contains("inside itself"), "{e}");
    let e = plan("fairness-mix", &opts(&[("inner", "tenant-mix")]), "ns").expect_err("nest");
    assert!(e.to_string().contains("inside itself"), "{e}");
    for (option, value) in [
        ("weight_a", "0"),
        ("weight_b", "-1"),
        ("weight_b", "heavy"),
        ("weight_a", "1001"),
    ] {
        let e = plan("fairness-mix", &opts(&[(option, value)]), "ns").expect_err(value);
        assert!(e.to_string().contains("between 0.001 and 1000"), "{e}");
    }
    let e = plan("fairness-mix", &opts(&[("activity_slots", "0")]), "ns").expect_err("none");
    assert!(e.to_string().contains("between 1 and 512"), "{e}");
    let e = plan("fairness-mix", &opts(&[("activity_ms", "60000")]), "ns").expect_err("long");
    assert!(e.to_string().contains("between 0 and 10000"), "{e}");
    let e = plan("fairness-mix", &opts(&[("nope", "1")]), "ns").expect_err("unknown");
    assert!(e.to_string().contains("no option \"nope\""), "{e}");
}

#[test]
fn fairness_mix_floods_key_a_on_one_task_queue() {
    let p = plan("fairness-mix", &BTreeMap::new(), "ns").expect("valid");
    assert!(!p.register_namespaces);
    assert_eq!(p.workflow, WorkflowKind::Activity);
    assert_eq!(p.namespace_names(), vec!["ns"]);
    assert_eq!(
        p.namespaces,
        vec![
            NamespaceShare {
                name: "ns".into(),
                weight: 10,
                fairness: Some(Fairness {
                    key: "a".into(),
                    weight: 1.0,
                    send: true,
                }),
            },
            NamespaceShare {
                name: "ns".into(),
                weight: 1,
                fairness: Some(Fairness {
                    key: "b".into(),
                    weight: 1.0,
                    send: true,
                }),
            },
        ]
    );
    assert_eq!(p.activity_slots, 8);
    assert_eq!(p.activity_delay, Duration::from_millis(20));
    let p = plan(
        "fairness-mix",
        &opts(&[
            ("flood_factor", "4"),
            ("weight_b", "3"),
            ("weight_a", "0.5"),
            ("activity_slots", "2"),
            ("activity_ms", "0"),
            ("inner", "sequential-activities"),
            ("count", "2"),
        ]),
        "ns",
    )
    .expect("valid");
    assert_eq!(p.workflow, WorkflowKind::SequentialActivities);
    assert_eq!(p.params, params(2, 0));
    let shares: Vec<(u32, &str, f32)> = p
        .namespaces
        .iter()
        .map(|s| {
            let f = s.fairness.as_ref().expect("every share has a key");
            (s.weight, f.key.as_str(), f.weight)
        })
        .collect();
    assert_eq!(shares, vec![(4, "a", 0.5), (1, "b", 3.0)]);
    assert_eq!((p.activity_slots, p.activity_delay), (2, Duration::ZERO));
    assert_eq!(p.options.get("weight_b").map(String::as_str), Some("3"));
    assert_eq!(p.options.get("count").map(String::as_str), Some("2"));
    // flood_factor=0 is key b alone: the baseline.
    let p = plan("fairness-mix", &opts(&[("flood_factor", "0")]), "ns").expect("valid");
    let keys: Vec<&str> = p
        .namespaces
        .iter()
        .filter_map(|s| s.fairness.as_ref().map(|f| f.key.as_str()))
        .collect();
    assert_eq!(keys, vec!["b"]);
    // send_keys=0: the same shares, started without a Priority.
    let p = plan("fairness-mix", &opts(&[("send_keys", "0")]), "ns").expect("valid");
    assert!(
        p.namespaces
            .iter()
            .all(|s| s.fairness.as_ref().is_some_and(|f| !f.send))
    );
    assert!(plan("fairness-mix", &opts(&[("send_keys", "2")]), "ns").is_err());
}

#[test]
fn tenant_mix_floods_the_first_namespace() {
    let p = plan("tenant-mix", &BTreeMap::new(), "ignored").expect("valid");
    assert!(p.register_namespaces);
    assert_eq!(p.workflow, WorkflowKind::Activity);
    assert_eq!(
        p.namespaces,
        vec![
            NamespaceShare {
                name: "loadtest-ns-0".into(),
                weight: 10,
                fairness: None,
            },
            NamespaceShare {
                name: "loadtest-ns-1".into(),
                weight: 1,
                fairness: None,
            },
            NamespaceShare {
                name: "loadtest-ns-2".into(),
                weight: 1,
                fairness: None,
            },
        ]
    );
    let p = plan(
        "tenant-mix",
        &opts(&[
            ("namespaces", "2"),
            ("flood_factor", "4"),
            ("inner", "timers"),
            ("count", "1"),
        ]),
        "ignored",
    )
    .expect("valid");
    assert_eq!(p.workflow, WorkflowKind::Timers);
    assert_eq!(p.params, params(1, 100));
    assert_eq!(
        p.namespaces.iter().map(|n| n.weight).collect::<Vec<_>>(),
        vec![4, 1]
    );
    assert_eq!(p.options.get("inner").map(String::as_str), Some("timers"));
}

#[test]
fn workflow_types_round_trip() {
    for k in WorkflowKind::ALL {
        assert_eq!(WorkflowKind::from_type_name(k.type_name()), Some(k));
    }
    assert_eq!(WorkflowKind::from_type_name("loadtest-nope"), None);
}

// The helpers above must stay in step with what servers write: the command type of every
// command the workflows send is set.
#[test]
fn every_command_carries_its_type() {
    let cmds: Vec<Command> = vec![
        super::commands::complete(),
        super::commands::fail("x"),
        super::commands::start_timer("t".into(), std::time::Duration::from_millis(1)),
        super::commands::schedule_activity("a".into(), "tq"),
        super::commands::start_child("c".into(), "loadtest-noop", "tq"),
        super::commands::schedule_nexus_operation(
            "e".into(),
            nexus::SYNC_OPERATION,
            nexus::operation_input("wf"),
        ),
    ];
    for c in cmds {
        assert_ne!(c.command_type, CommandType::Unspecified as i32, "{c:?}");
    }
}
