//! RespondWorkflowTaskCompleted: the workflow task's completion and its commands, in order.
//! An invalid command rejects the whole completion: nothing of it is kept, and the workflow
//! task is failed with the command's cause instead, as the Temporal server does.

use temper_proto::temporal::api::command::v1::command::Attributes as C;
use temper_proto::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temper_proto::temporal::api::history::v1::MarkerRecordedEventAttributes;

use crate::completion::{Completion, Outcome};
use crate::{
    BadCommand, Txn, activity, child, close, continuation, external, nexus, pb, properties,
    speculative, timer, update, workflow_task,
};

/// Apply a workflow task completion. `wt` is the task in flight (checked by the caller).
pub fn complete_workflow_task(
    txn: &mut Txn<'_>,
    wt: &pb::WorkflowTaskInfo,
    c: Completion<'_>,
) -> Outcome {
    let snapshot = txn.ms.clone();
    let out_snapshot = txn.out.clone();
    let updates_snapshot = txn.updates.clone();
    match apply(txn, wt, &c) {
        Ok(outcome) => outcome,
        Err(bad) => {
            *txn.ms = snapshot;
            txn.out = out_snapshot;
            txn.updates = updates_snapshot;
            txn.needs_workflow_task = false;
            update::abort_on_workflow_task_failure(txn);
            workflow_task::fail(txn, wt, bad.cause, Some(bad.failure()), c.identity);
            Outcome::Rejected(bad)
        }
    }
}

fn apply(
    txn: &mut Txn<'_>,
    wt: &pb::WorkflowTaskInfo,
    c: &Completion<'_>,
) -> Result<Outcome, BadCommand> {
    if wt.speculative {
        if speculative::can_discard(txn, c) {
            return speculative::discard(txn, c);
        }
        speculative::make_durable(txn, false);
    }
    let had_buffered = txn.has_buffered_events();
    let completed_id = workflow_task::complete(txn, wt, c);
    match c
        .sticky
        .and_then(|s| s.worker_task_queue.as_ref().map(|q| (q, s)))
    {
        Some((q, s)) if !q.name.is_empty() => {
            workflow_task::set_sticky(txn, &q.name, s.schedule_to_start_timeout, c.identity)
        }
        _ => workflow_task::clear_sticky(txn),
    }
    let mut closed = false;
    let mut inbox = update::Inbox::new(c.messages);
    for command in c.commands {
        if closed {
            return Err(BadCommand::new(
                WorkflowTaskFailedCause::UnhandledCommand,
                "commands after the workflow's close command",
            ));
        }
        let Some(attrs) = &command.attributes else {
            return Err(BadCommand::new(
                WorkflowTaskFailedCause::UnhandledCommand,
                "command without attributes",
            ));
        };
        // The command's first event (its scheduled, started, initiated, recorded or close
        // event) carries the command's user metadata, as in Temporal; a protocol message
        // command has no event of its own.
        let first_event = txn.out.events.len();
        match attrs {
            C::ScheduleActivityTaskCommandAttributes(a) => {
                activity::schedule(txn, a, completed_id)?
            }
            C::RequestCancelActivityTaskCommandAttributes(a) => {
                activity::request_cancel(txn, a.scheduled_event_id, completed_id)?
            }
            C::StartTimerCommandAttributes(a) => timer::start(txn, a, completed_id)?,
            C::ProtocolMessageCommandAttributes(a) => {
                update::on_message_command(txn, a, &mut inbox)?
            }
            C::CancelTimerCommandAttributes(a) => timer::cancel(txn, a, completed_id, c.identity)?,
            C::RecordMarkerCommandAttributes(a) => {
                if a.marker_name.is_empty() {
                    return Err(BadCommand::new(
                        WorkflowTaskFailedCause::BadRecordMarkerAttributes,
                        "MarkerName is not set on RecordMarkerCommand.",
                    ));
                }
                txn.write(
                    MarkerRecordedEventAttributes {
                        marker_name: a.marker_name.clone(),
                        details: a.details.clone(),
                        workflow_task_completed_event_id: completed_id,
                        header: a.header.clone(),
                        failure: a.failure.clone(),
                    }
                    .into(),
                );
            }
            C::StartChildWorkflowExecutionCommandAttributes(a) => {
                child::start(txn, a, completed_id)?
            }
            C::SignalExternalWorkflowExecutionCommandAttributes(a) => {
                external::signal(txn, a, completed_id)?
            }
            C::RequestCancelExternalWorkflowExecutionCommandAttributes(a) => {
                external::request_cancel(txn, a, completed_id)?
            }
            C::UpsertWorkflowSearchAttributesCommandAttributes(a) => {
                properties::upsert_search_attributes(
                    txn,
                    a,
                    completed_id,
                    c.search_attribute_names,
                )?
            }
            C::ModifyWorkflowPropertiesCommandAttributes(a) => {
                properties::modify_properties(txn, a, completed_id)?
            }
            C::CompleteWorkflowExecutionCommandAttributes(_)
            | C::FailWorkflowExecutionCommandAttributes(_)
            | C::CancelWorkflowExecutionCommandAttributes(_)
            | C::ContinueAsNewWorkflowExecutionCommandAttributes(_) => {
                if had_buffered || txn.has_buffered_events() {
                    // New events arrived that the workflow has not seen: it must see them
                    // before it may close.
                    return Err(BadCommand::new(
                        WorkflowTaskFailedCause::UnhandledCommand,
                        "UnhandledCommand: new events arrived while the workflow task ran",
                    ));
                }
                match attrs {
                    C::CompleteWorkflowExecutionCommandAttributes(a) => {
                        close::complete(txn, a, completed_id)
                    }
                    C::FailWorkflowExecutionCommandAttributes(a) => {
                        close::fail(txn, a, completed_id)
                    }
                    C::CancelWorkflowExecutionCommandAttributes(a) => {
                        close::cancel(txn, a, completed_id)
                    }
                    C::ContinueAsNewWorkflowExecutionCommandAttributes(a) => {
                        continuation::continue_as_new(txn, a, completed_id)?
                    }
                    _ => unreachable!("matched above"),
                }
                closed = true;
            }
            C::ScheduleNexusOperationCommandAttributes(a) => {
                let endpoints = std::mem::take(&mut txn.nexus_endpoints);
                let scheduled =
                    nexus::schedule(txn, a, completed_id, &endpoints, c.search_attribute_names);
                txn.nexus_endpoints = endpoints;
                scheduled?
            }
            C::RequestCancelNexusOperationCommandAttributes(a) => {
                nexus::request_cancel(txn, a, completed_id)?
            }
        }
        if let Some(metadata) = &command.user_metadata
            && !matches!(attrs, C::ProtocolMessageCommandAttributes(_))
        {
            txn.set_user_metadata(first_event, metadata);
        }
    }
    update::after_commands(txn, &mut inbox, c.force_create_new_workflow_task)?;
    if closed {
        return Ok(Outcome::Completed {
            new_workflow_task: None,
            closed: true,
        });
    }
    let need = had_buffered
        || txn.has_buffered_events()
        || c.force_create_new_workflow_task
        || txn.needs_workflow_task;
    txn.flush_buffered();
    let new_workflow_task = need.then(|| workflow_task::schedule(txn, 1));
    speculative::schedule_if_updates(txn);
    Ok(Outcome::Completed {
        new_workflow_task,
        closed: false,
    })
}
