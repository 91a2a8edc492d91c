//! The commands of a generated workflow task completion, with ids resolved against what the
//! run knows.

use std::time::Duration;

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
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::protocol::v1::Message;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;

use crate::time::dur;

use super::*;

impl World {
    pub(super) fn commands(&self, cmds: &[Cmd], messages: &[Message]) -> Vec<Command> {
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
