//! Fields the Temporal server always fills in, zero or not, and that SDKs read without
//! checking (the TypeScript worker refuses an activity task without schedule-to-close).

use std::time::Duration;

use temper_proto::temporal::api::command::v1::{
    Command, ContinueAsNewWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes, StartChildWorkflowExecutionCommandAttributes,
    command::Attributes as C,
};
use temper_proto::temporal::api::common::v1::{ActivityType, Memo, WorkflowType};
use temper_proto::temporal::api::enums::v1::TaskQueueKind;
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::wkt;

use crate::commands::complete_workflow_task;
use crate::completion::Completion;
use crate::tests::Harness;
use crate::time::{dur, from_ts};

fn cmd(a: C) -> Command {
    Command {
        attributes: Some(a),
        ..Default::default()
    }
}

fn last_attributes(h: &Harness, pick: fn(&HistoryEvent) -> bool) -> Attributes {
    h.history
        .iter()
        .rev()
        .find(|e| pick(e))
        .and_then(|e| e.attributes.clone())
        .expect("the event is in the history")
}

const ZERO: Option<wkt::Duration> = Some(wkt::Duration {
    seconds: 0,
    nanos: 0,
});

#[test]
fn an_activity_with_only_start_to_close_has_every_timeout_present() {
    let mut h = Harness::start();
    h.complete_wt(vec![cmd(C::ScheduleActivityTaskCommandAttributes(
        ScheduleActivityTaskCommandAttributes {
            activity_id: "a".into(),
            activity_type: Some(ActivityType { name: "A".into() }),
            start_to_close_timeout: dur(Duration::from_secs(10)),
            ..Default::default()
        },
    ))]);
    let Attributes::ActivityTaskScheduledEventAttributes(a) = last_attributes(&h, |e| {
        matches!(
            e.attributes,
            Some(Attributes::ActivityTaskScheduledEventAttributes(_))
        )
    }) else {
        unreachable!()
    };
    // No run timeout: schedule-to-close and schedule-to-start are unlimited, written as zero.
    assert_eq!(a.schedule_to_close_timeout, ZERO);
    assert_eq!(a.schedule_to_start_timeout, ZERO);
    assert_eq!(a.heartbeat_timeout, ZERO);
    assert_eq!(a.start_to_close_timeout, dur(Duration::from_secs(10)));
    assert_eq!(
        a.task_queue.expect("queue").kind,
        TaskQueueKind::Normal as i32
    );
    let ai = h.ms.activities.values().next().expect("pending activity");
    assert_eq!(ai.schedule_to_close_timeout, ZERO);
}

#[test]
fn a_child_is_initiated_with_its_effective_run_and_task_timeouts() {
    let mut h = Harness::start();
    h.complete_wt(vec![cmd(C::StartChildWorkflowExecutionCommandAttributes(
        StartChildWorkflowExecutionCommandAttributes {
            workflow_id: "kid".into(),
            workflow_type: Some(WorkflowType { name: "K".into() }),
            workflow_execution_timeout: dur(Duration::from_secs(60)),
            memo: Some(Memo::default()),
            ..Default::default()
        },
    ))]);
    let Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a) =
        last_attributes(&h, |e| {
            matches!(
                e.attributes,
                Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(_))
            )
        })
    else {
        unreachable!()
    };
    assert_eq!(a.workflow_execution_timeout, dur(Duration::from_secs(60)));
    assert_eq!(a.workflow_run_timeout, dur(Duration::from_secs(60)));
    assert_eq!(a.workflow_task_timeout, dur(Duration::from_secs(10)));
    assert_eq!(
        a.task_queue.expect("queue").kind,
        TaskQueueKind::Normal as i32
    );
    // An empty memo is not recorded.
    assert_eq!(a.memo, None);
}

#[test]
fn continue_as_new_carries_reset_points_that_expire_after_retention() {
    let mut h = Harness::start();
    let wt = h.start_wt();
    let commands = [cmd(C::ContinueAsNewWorkflowExecutionCommandAttributes(
        ContinueAsNewWorkflowExecutionCommandAttributes::default(),
    ))];
    let retention = Duration::from_secs(3 * 86_400);
    h.apply(|t| {
        t.retention = Some(retention);
        complete_workflow_task(
            t,
            &wt,
            Completion {
                worker: Default::default(),
                commands: &commands,
                identity: "w",
                binary_checksum: "build-1",
                search_attribute_names: None,
                sticky: None,
                force_create_new_workflow_task: false,
                sdk_metadata: None,
                metering_metadata: None,
                messages: &[],
                discard_speculative_with_events: false,
            },
        )
    });
    let expires = h.now + retention;
    let closing =
        h.ms.execution_info
            .as_ref()
            .and_then(|i| i.auto_reset_points.clone())
            .expect("the closing run has its reset point");
    assert_eq!(closing.points.len(), 1);
    assert_eq!(
        closing.points[0].expire_time.as_ref().map(from_ts),
        Some(expires)
    );
    let new_run = h.last.new_run.clone().expect("a new run");
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) =
        new_run.mutation.events[0].attributes.clone()
    else {
        panic!("the new run starts with its started event")
    };
    assert_eq!(started.prev_auto_reset_points, Some(closing.clone()));
    assert_eq!(
        new_run
            .ms
            .execution_info
            .and_then(|i| i.auto_reset_points)
            .expect("carried over"),
        closing
    );
}
