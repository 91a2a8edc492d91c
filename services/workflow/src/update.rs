//! Workflow updates (UpdateWorkflowExecution), as the Temporal server runs them.
//!
//! An update is *admitted* into the run's in-memory [`Registry`] (nothing is written, so a
//! rejected update leaves no trace), *sent* to the worker as a protocol message with the next
//! workflow task, and answered in the task's completion: an `Acceptance` writes
//! WorkflowExecutionUpdateAccepted (carrying the request), a `Response` writes
//! WorkflowExecutionUpdateCompleted (carrying the outcome), a `Rejection` writes nothing.
//! Accepted updates are remembered in the persisted state (`MutableState.updates`: update id
//! -> event ids), so a repeated request with the same update id finds them after a restart;
//! admitted ones are lost on a restart, as in Temporal (callers retry).
//!
//! Callers waiting on an update learn what happened from the [`Notice`]s a transaction leaves
//! in the registry; the history service hands them out after the commit.

use std::sync::Arc;

use prost::Message as _;
use temper_proto::temporal::api::command::v1::ProtocolMessageCommandAttributes;
use temper_proto::temporal::api::enums::v1::{WorkflowExecutionStatus, WorkflowTaskFailedCause};
use temper_proto::temporal::api::failure::v1::{
    ApplicationFailureInfo, Failure, failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::{
    WorkflowExecutionUpdateAcceptedEventAttributes, WorkflowExecutionUpdateCompletedEventAttributes,
};
use temper_proto::temporal::api::protocol::v1::{Message, message::SequencingId};
use temper_proto::temporal::api::update::v1::{
    Acceptance, Outcome, Rejection, Request, Response, outcome,
};
use temper_proto::wkt::Any;

use crate::BadCommand;
use crate::events::At;
use crate::{Txn, WorkflowError, pb, speculative};

/// Temporal's default limits per run: updates admitted or accepted but not completed, all
/// updates ever accepted or in flight, and the payload bytes of admitted updates.
pub const MAX_IN_FLIGHT_UPDATES: usize = 10;
pub const MAX_TOTAL_UPDATES: usize = 2000;
pub const MAX_IN_FLIGHT_UPDATE_BYTES: usize = 20 * 1024 * 1024;
/// A workflow whose workflow task failed this many times in a row takes no new updates.
const FAIL_FAST_WORKFLOW_TASK_ATTEMPT: i32 = 3;

const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Updates admitted into a run and not yet accepted or rejected, in admission order. Lives
/// in memory beside the run's cached state; never persisted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    admitted: Vec<Admitted>,
    /// What happened to updates in this transaction, for the callers waiting on them. The
    /// history service takes them after the commit.
    pub notices: Vec<Notice>,
}

#[derive(Debug, Clone, PartialEq)]
struct Admitted {
    /// Shared: every transaction on the run copies the registry.
    request: Arc<Request>,
    /// Sent to the worker with a workflow task that has not completed yet.
    sent: bool,
}

impl Admitted {
    fn id(&self) -> &str {
        update_id(&self.request)
    }
}

/// What a waiting caller learns about an update.
// Variants hold protobuf messages by value; a value is built once and moved to its
// reader, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Accepted {
        update_id: String,
    },
    /// Completed by the workflow, rejected (a failure outcome), or failed by the server.
    Completed {
        update_id: String,
        outcome: Outcome,
    },
    /// Dropped before the workflow accepted it.
    Aborted {
        update_id: String,
        reason: Abort,
    },
}

/// Why an admitted update was dropped; each maps to the error Temporal gives its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// The run closed (NotFound "workflow update was aborted by closing workflow").
    WorkflowClosed,
    /// The update was lost in the server (its in-memory state was dropped) or the run
    /// continued as new: the caller should send it again (Unavailable).
    Retry,
    /// The workflow task that carried the update failed (WorkflowNotReady).
    WorkflowTaskFailed,
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.admitted.is_empty()
    }

    pub fn len(&self) -> usize {
        self.admitted.len()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.admitted.iter().any(|a| a.id() == id)
    }

    /// Updates admitted but not yet sent to a worker.
    pub fn has_unsent(&self) -> bool {
        self.admitted.iter().any(|a| !a.sent)
    }

    /// Ids of the admitted updates.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.admitted.iter().map(Admitted::id)
    }

    fn payload_bytes(&self) -> usize {
        self.admitted.iter().map(|a| a.request.encoded_len()).sum()
    }

    fn take(&mut self, id: &str) -> Option<Admitted> {
        let pos = self.admitted.iter().position(|a| a.id() == id)?;
        Some(self.admitted.remove(pos))
    }

    fn notify(&mut self, n: Notice) {
        self.notices.push(n);
    }

    /// Mark every admitted update sent and return the messages that carry them to the worker
    /// with the workflow task started as `started_event_id`. Updates already sent with an
    /// earlier task that failed or timed out are sent again.
    fn send(&mut self, started_event_id: i64) -> Vec<Message> {
        self.admitted
            .iter_mut()
            .map(|a| {
                a.sent = true;
                let id = update_id(&a.request).to_string();
                Message {
                    id: request_message_id(&id),
                    protocol_instance_id: id,
                    // After the event before WorkflowTaskStarted, like Temporal: the worker
                    // applies updates after all the task's events.
                    sequencing_id: Some(SequencingId::EventId(started_event_id - 1)),
                    body: Some(pack(a.request.as_ref())),
                }
            })
            .collect()
    }
}

fn update_id(r: &Request) -> &str {
    r.meta.as_ref().map(|m| m.update_id.as_str()).unwrap_or("")
}

fn request_message_id(update_id: &str) -> String {
    format!("{update_id}/request")
}

/// Where an update stands, from the state and the registry.
// Variants hold protobuf messages by value; a value is built once and moved to its
// reader, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Admitted,
    Accepted,
    /// Completed; its outcome is in the WorkflowExecutionUpdateCompleted event `event_id`.
    Completed {
        event_id: i64,
    },
    /// Finished with this outcome without a completed event (accepted, then the run closed).
    Finished(Outcome),
}

/// The status of update `id` of a run, if the run knows it.
pub fn status(ms: &pb::MutableState, updates: &Registry, id: &str) -> Option<Status> {
    if updates.contains(id) {
        return Some(Status::Admitted);
    }
    let info = ms.updates.get(id)?;
    if info.completed_event_id > 0 {
        return Some(Status::Completed {
            event_id: info.completed_event_id,
        });
    }
    if crate::close::is_closed(ms) {
        return Some(Status::Finished(failed(
            accepted_update_completed_workflow(),
        )));
    }
    Some(Status::Accepted)
}

/// What UpdateWorkflowExecution found or did.
// Variants hold protobuf messages by value; a value is built once and moved to its
// reader, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// An update with this id exists already; the request attaches to it.
    Existing(Status),
    /// Admitted. `speculative`: a speculative workflow task was created to deliver it (the
    /// caller hands it to matching); otherwise it rides on the pending workflow task.
    New { speculative: bool },
}

/// UpdateWorkflowExecution: find the update by id or admit it.
pub fn admit(
    txn: &mut Txn<'_>,
    request: &Request,
    first_execution_run_id: &str,
) -> Result<Admission, WorkflowError> {
    if !first_execution_run_id.is_empty() && txn.info().first_run_id != first_execution_run_id {
        return Err(WorkflowError::NotFound(
            "workflow execution not found".into(),
        ));
    }
    let id = update_id(request);
    if let Some(s) = status(txn.ms, &txn.updates, id) {
        return Ok(Admission::Existing(s));
    }
    if !txn.is_running() {
        return Err(WorkflowError::AlreadyCompleted);
    }
    if txn
        .ms
        .workflow_task
        .as_ref()
        .is_some_and(|wt| wt.attempt >= FAIL_FAST_WORKFLOW_TASK_ATTEMPT)
    {
        return Err(WorkflowError::WorkflowNotReady(
            "Unable to perform workflow execution update due to Workflow Task in failed state."
                .into(),
        ));
    }
    validate_request(id, request)?;
    let accepted_in_flight = txn
        .ms
        .updates
        .values()
        .filter(|u| u.completed_event_id == 0)
        .count();
    if txn.updates.len() + accepted_in_flight >= MAX_IN_FLIGHT_UPDATES {
        return Err(WorkflowError::ResourceExhausted(format!(
            "limit on number of concurrent in-flight updates has been reached ({MAX_IN_FLIGHT_UPDATES})"
        )));
    }
    if txn.updates.len() + txn.ms.updates.len() >= MAX_TOTAL_UPDATES {
        return Err(WorkflowError::FailedPrecondition(format!(
            "The limit on the total number of distinct updates in this workflow has been reached ({MAX_TOTAL_UPDATES}). \
             Make sure any duplicate updates share an Update ID so the server can deduplicate them, and consider \
             rejecting updates that you aren't going to process. You can also Continue-as-New to avoid this; we \
             recommend you check Continue-as-New Suggested in your Workflow."
        )));
    }
    if txn.updates.payload_bytes() + request.encoded_len() >= MAX_IN_FLIGHT_UPDATE_BYTES {
        return Err(WorkflowError::ResourceExhausted(format!(
            "limit on total payload size of in-flight updates has been reached ({MAX_IN_FLIGHT_UPDATE_BYTES} bytes)"
        )));
    }
    txn.updates.admitted.push(Admitted {
        request: Arc::new(request.clone()),
        sent: false,
    });
    // A scheduled task delivers the update when it starts; a started one is followed by a
    // new task when it completes. A run waiting out its first workflow task's backoff (cron,
    // retry, start delay) gets no task before it ends, as for a signal: the first task
    // delivers the update.
    let in_backoff = txn.info().first_workflow_task_backoff_until.is_some();
    if txn.has_pending_workflow_task() || in_backoff {
        return Ok(Admission::New { speculative: false });
    }
    speculative::schedule(txn);
    Ok(Admission::New { speculative: true })
}

/// Update-with-start: admit the update to a run created this moment, in the same hold of the
/// run's lock as its creation, so its first workflow task carries the update as on Temporal
/// (where the start and the update are one transaction). The update call that follows finds
/// it admitted. A request that does not pass the checks is left to that call to refuse.
pub fn admit_with_start(updates: &mut Registry, request: &Request) {
    let id = update_id(request);
    if validate_request(id, request).is_err() || updates.contains(id) {
        return;
    }
    updates.admitted.push(Admitted {
        request: Arc::new(request.clone()),
        sent: false,
    });
}

fn validate_request(id: &str, r: &Request) -> Result<(), WorkflowError> {
    let bad = |what: &str| -> Result<(), WorkflowError> {
        Err(WorkflowError::InvalidArgument(format!(
            "invalid temporal.api.update.v1.Request: {what} is not set"
        )))
    };
    if id.is_empty() {
        return bad("meta.update_id");
    }
    match &r.input {
        None => bad("input")?,
        Some(i) if i.name.is_empty() => bad("input.name")?,
        Some(_) => {}
    }
    if !r.completion_callbacks.is_empty() && r.request_id.is_empty() {
        return Err(WorkflowError::InvalidArgument(
            "invalid *update.Request: request_id is required when completion_callbacks are set"
                .into(),
        ));
    }
    Ok(())
}

/// RecordWorkflowTaskStarted with updates: start the task (speculative or not) and take the
/// messages that deliver the admitted updates.
pub fn record_workflow_task_started(
    txn: &mut Txn<'_>,
    req: crate::workflow_task::StartRequest<'_>,
) -> Result<(crate::workflow_task::Started, Vec<Message>), WorkflowError> {
    use crate::workflow_task::Started;
    let is_speculative = txn
        .ms
        .workflow_task
        .as_ref()
        .is_some_and(|wt| wt.speculative && wt.scheduled_event_id == req.scheduled_event_id);
    if !is_speculative && req.scheduled_event_id >= txn.ms.next_event_id {
        return Err(WorkflowError::StaleState(format!(
            "workflow task scheduled as event {}, past this state's last event",
            req.scheduled_event_id
        )));
    }
    let started = if is_speculative {
        speculative::record_started(txn, &req)?
    } else {
        crate::workflow_task::record_started(txn, req)?
    };
    let (Started::New(id) | Started::AlreadyByThisPoll(id)) = started;
    let messages = txn.updates.send(id);
    if is_speculative && messages.is_empty() {
        return Err(WorkflowError::NotFound(
            "No messages for speculative workflow task.".into(),
        ));
    }
    Ok((started, messages))
}

/// The messages of a workflow task completion, each taken once: by the ProtocolMessage
/// command that names it, or after the commands in the order they came.
pub(crate) struct Inbox<'a> {
    messages: Vec<Option<&'a Message>>,
}

impl<'a> Inbox<'a> {
    pub(crate) fn new(messages: &'a [Message]) -> Self {
        Self {
            messages: messages.iter().map(Some).collect(),
        }
    }

    fn take(&mut self, id: &str) -> Option<&'a Message> {
        self.messages
            .iter_mut()
            .find(|m| m.is_some_and(|m| m.id == id))
            .and_then(Option::take)
    }

    fn take_remaining(&mut self) -> Vec<&'a Message> {
        self.messages.iter_mut().filter_map(Option::take).collect()
    }
}

fn bad_message(message: impl Into<String>) -> BadCommand {
    BadCommand {
        cause: WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage,
        message: message.into(),
    }
}

/// A ProtocolMessage command: handle the message it names, where the command stands among
/// the others (so an update's events interleave with the command events in command order).
pub(crate) fn on_message_command(
    txn: &mut Txn<'_>,
    a: &ProtocolMessageCommandAttributes,
    inbox: &mut Inbox<'_>,
) -> Result<(), BadCommand> {
    match inbox.take(&a.message_id) {
        Some(m) => on_message(txn, m),
        None => Err(bad_message(format!(
            "ProtocolMessageCommand referenced absent message ID {}",
            a.message_id
        ))),
    }
}

/// After the commands: the messages no command named (rejections, usually), then reject
/// the updates the task delivered and the worker ignored (an SDK without updates), as
/// Temporal does, so they are not delivered again and again.
pub(crate) fn after_commands(
    txn: &mut Txn<'_>,
    inbox: &mut Inbox<'_>,
    heartbeat: bool,
) -> Result<(), BadCommand> {
    for m in inbox.take_remaining() {
        on_message(txn, m)?;
    }
    if heartbeat || !txn.is_running() {
        return Ok(());
    }
    let (ignored, kept) = std::mem::take(&mut txn.updates.admitted)
        .into_iter()
        .partition(|a| a.sent);
    txn.updates.admitted = kept;
    for a in ignored {
        let update_id = a.id().to_string();
        txn.updates.notify(Notice::Completed {
            update_id,
            outcome: failed(unprocessed_update()),
        });
    }
    Ok(())
}

/// The body of a message, by message name (the part of the type URL after the last '/').
enum Body {
    Acceptance(Acceptance),
    Rejection(Rejection),
    Response(Response),
}

fn decode(any: &Any) -> Result<Body, BadCommand> {
    let name = any.type_url.rsplit('/').next().unwrap_or("");
    let bad = |e: prost::DecodeError| bad_message(format!("unable to unmarshal {name}: {e}"));
    match name {
        "temporal.api.update.v1.Acceptance" => Acceptance::decode(any.value.as_slice())
            .map(Body::Acceptance)
            .map_err(bad),
        "temporal.api.update.v1.Rejection" => Rejection::decode(any.value.as_slice())
            .map(Body::Rejection)
            .map_err(bad),
        "temporal.api.update.v1.Response" => Response::decode(any.value.as_slice())
            .map(Body::Response)
            .map_err(bad),
        n if n.starts_with("temporal.api.update.v1.") => {
            Err(bad_message(format!("Message type {n} not supported")))
        }
        n => Err(bad_message(format!("unsupported protocol type {n}"))),
    }
}

/// Whether a completion's message is a rejection (a speculative task that only rejects can
/// be discarded).
pub(crate) fn is_rejection(m: &Message) -> bool {
    m.body
        .as_ref()
        .is_some_and(|b| b.type_url.ends_with("/temporal.api.update.v1.Rejection"))
}

fn on_message(txn: &mut Txn<'_>, m: &Message) -> Result<(), BadCommand> {
    let id = m.protocol_instance_id.as_str();
    let Some(any) = &m.body else {
        return Err(bad_message(format!(
            "Update {id} received message with nil body"
        )));
    };
    if any.value.len() > txn.limits.max_payload_bytes {
        return Err(bad_message("Message exceeds size limit."));
    }
    let body = decode(any)?;
    if !txn.is_running() && !matches!(body, Body::Rejection(_)) {
        // The workflow closed in this task: the update is failed with the run.
        return Ok(());
    }
    let known = txn.updates.contains(id) || txn.ms.updates.contains_key(id);
    if !known {
        // An update lost from memory comes back if the worker echoes its request.
        let request = match &body {
            Body::Acceptance(a) => a.accepted_request.clone(),
            Body::Rejection(r) => r.rejected_request.clone(),
            Body::Response(_) => None,
        };
        let Some(request) = request.filter(|r| update_id(r) == id) else {
            return Err(bad_message(format!(
                "update {id} wasn't found on the server. This is most likely a transient error which will be resolved automatically by retries"
            )));
        };
        txn.updates.admitted.push(Admitted {
            request: Arc::new(request),
            sent: true,
        });
    }
    match body {
        Body::Acceptance(a) => on_acceptance(txn, id, &a),
        Body::Rejection(r) => on_rejection(txn, id, r),
        Body::Response(r) => on_response(txn, id, r),
    }
}

fn invalid_transition(id: &str, msg: &str, state: &str) -> BadCommand {
    bad_message(format!(
        "invalid state transition attempted for Update {id}: received {msg} message while in state {state}"
    ))
}

fn state_name(txn: &Txn<'_>, id: &str) -> &'static str {
    match txn.ms.updates.get(id) {
        Some(u) if u.completed_event_id > 0 => "Completed",
        Some(_) => "Accepted",
        None => "Admitted",
    }
}

fn on_acceptance(txn: &mut Txn<'_>, id: &str, a: &Acceptance) -> Result<(), BadCommand> {
    if !txn.updates.contains(id) {
        return Err(invalid_transition(id, "Acceptance", state_name(txn, id)));
    }
    if a.accepted_request_sequencing_event_id == 0 {
        return Err(bad_message(
            "invalid temporal.api.update.v1.Acceptance: accepted_request_sequencing_event_id is not set",
        ));
    }
    if a.accepted_request_message_id.is_empty() {
        return Err(bad_message(
            "invalid temporal.api.update.v1.Acceptance: accepted_request_message_id is not set",
        ));
    }
    let admitted = txn
        .updates
        .take(id)
        .expect("checked that the update is admitted");
    let mut request = Arc::unwrap_or_clone(admitted.request);
    if !txn.limits.update_callbacks {
        // Not registered: the accepted request (what the event's apply registers) has none.
        request.completion_callbacks.clear();
    }
    txn.write_applied(
        WorkflowExecutionUpdateAcceptedEventAttributes {
            protocol_instance_id: id.to_string(),
            accepted_request_message_id: request_message_id(id),
            accepted_request_sequencing_event_id: a.accepted_request_sequencing_event_id,
            accepted_request: Some(request),
        },
        apply_accepted,
    );
    txn.updates.notify(Notice::Accepted {
        update_id: id.to_string(),
    });
    Ok(())
}

fn on_rejection(txn: &mut Txn<'_>, id: &str, r: Rejection) -> Result<(), BadCommand> {
    if txn.updates.take(id).is_none() {
        return Err(invalid_transition(id, "Rejection", state_name(txn, id)));
    }
    txn.updates.notify(Notice::Completed {
        update_id: id.to_string(),
        outcome: failed(r.failure.unwrap_or_default()),
    });
    Ok(())
}

fn on_response(txn: &mut Txn<'_>, id: &str, r: Response) -> Result<(), BadCommand> {
    let accepted = match txn.ms.updates.get(id) {
        Some(u) if u.completed_event_id == 0 => u.accepted_event_id,
        _ => return Err(invalid_transition(id, "Response", state_name(txn, id))),
    };
    let meta_id = r.meta.as_ref().map(|m| m.update_id.as_str()).unwrap_or("");
    if meta_id.is_empty() {
        return Err(bad_message(
            "invalid temporal.api.update.v1.Response: meta.update_id is not set",
        ));
    }
    if meta_id != id {
        return Err(bad_message(format!(
            "invalid temporal.api.update.v1.Response: meta.update_id != {id}"
        )));
    }
    let Some(outcome) = r.outcome else {
        return Err(bad_message(
            "invalid temporal.api.update.v1.Response: outcome is not set",
        ));
    };
    txn.write_applied(
        WorkflowExecutionUpdateCompletedEventAttributes {
            meta: r.meta,
            accepted_event_id: accepted,
            outcome: Some(outcome.clone()),
        },
        apply_completed,
    );
    if txn
        .ms
        .updates
        .get(id)
        .is_some_and(|u| !u.callbacks.is_empty())
    {
        add_callbacks_task(txn, id);
    }
    txn.updates.notify(Notice::Completed {
        update_id: id.to_string(),
        outcome,
    });
    Ok(())
}

/// The server failed the workflow task while completing it: updates the workflow has seen
/// fail (WorkflowNotReady), the others are dropped for their callers to send again.
pub(crate) fn abort_on_workflow_task_failure(txn: &mut Txn<'_>) {
    for a in std::mem::take(&mut txn.updates.admitted) {
        let reason = if a.sent {
            Abort::WorkflowTaskFailed
        } else {
            Abort::Retry
        };
        let update_id = a.id().to_string();
        txn.updates.notify(Notice::Aborted { update_id, reason });
    }
}

/// The run closed: admitted updates are aborted (sent again to the new run if it continued
/// as new), accepted ones fail with Temporal's "workflow completed" failure.
pub(crate) fn abort_on_close(ms: &pb::MutableState, updates: &mut Registry) {
    let continuing = ms
        .execution_info
        .as_ref()
        .is_some_and(|i| i.status == WorkflowExecutionStatus::ContinuedAsNew as i32);
    for a in std::mem::take(&mut updates.admitted) {
        let reason = if continuing {
            Abort::Retry
        } else {
            Abort::WorkflowClosed
        };
        let update_id = a.id().to_string();
        updates.notify(Notice::Aborted { update_id, reason });
    }
    let mut unfinished: Vec<&String> = ms
        .updates
        .iter()
        .filter(|(_, u)| u.completed_event_id == 0)
        .map(|(id, _)| id)
        .collect();
    unfinished.sort();
    for id in unfinished {
        updates.notify(Notice::Completed {
            update_id: id.clone(),
            outcome: failed(accepted_update_completed_workflow()),
        });
    }
}

/// The registry was dropped (the cached run was reloaded or evicted): what its callers learn.
pub fn abort_all(updates: &mut Registry) {
    for a in std::mem::take(&mut updates.admitted) {
        let update_id = a.id().to_string();
        updates.notify(Notice::Aborted {
            update_id,
            reason: Abort::Retry,
        });
    }
}

/// WorkflowExecutionUpdateAccepted: the update is remembered as accepted (so a request with
/// the same update id finds it), with the completion callbacks its request attached.
pub(crate) fn apply_accepted(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowExecutionUpdateAcceptedEventAttributes,
) {
    let request = a.accepted_request.as_ref();
    let callbacks = request
        .map(|r| r.completion_callbacks.clone())
        .unwrap_or_default();
    ms.updates.insert(
        a.protocol_instance_id.clone(),
        pb::UpdateInfo {
            accepted_event_id: at.id,
            completed_event_id: 0,
            callbacks_request_id: if callbacks.is_empty() {
                String::new()
            } else {
                request.map(|r| r.request_id.clone()).unwrap_or_default()
            },
            callbacks_registration_time: (!callbacks.is_empty()).then_some(at.time),
            callbacks,
            callbacks_delivered: false,
        },
    );
}

/// A transfer task that calls the completion callbacks of update `id`.
fn add_callbacks_task(txn: &mut Txn<'_>, id: &str) {
    let mut t = txn.transfer_task(pb::TransferTaskKind::UpdateCallbacks);
    t.update_id = id.to_owned();
    txn.add_transfer_task(t);
}

/// The run closes: the callbacks of updates it accepted but did not complete are called
/// (with Temporal's "workflow completed before the update" failure).
pub(crate) fn call_callbacks_on_close(txn: &mut Txn<'_>) {
    let mut ids: Vec<String> = txn
        .ms
        .updates
        .iter()
        .filter(|(_, u)| u.completed_event_id == 0 && !u.callbacks.is_empty())
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    for id in ids {
        add_callbacks_task(txn, &id);
    }
}

/// WorkflowExecutionUpdateCompleted: the update's outcome is in this event.
pub(crate) fn apply_completed(
    ms: &mut pb::MutableState,
    at: At,
    a: &WorkflowExecutionUpdateCompletedEventAttributes,
) {
    let id = a
        .meta
        .as_ref()
        .map(|m| m.update_id.clone())
        .unwrap_or_default();
    let info = ms.updates.entry(id).or_insert(pb::UpdateInfo {
        accepted_event_id: a.accepted_event_id,
        ..Default::default()
    });
    info.completed_event_id = at.id;
}

pub(crate) fn pack<M: prost::Name>(m: &M) -> Any {
    Any {
        type_url: format!("{TYPE_URL_PREFIX}{}", M::full_name()),
        value: m.encode_to_vec(),
    }
}

pub fn failed(f: Failure) -> Outcome {
    Outcome {
        value: Some(outcome::Value::Failure(f)),
    }
}

fn server_failure(message: &str, kind: &str) -> Failure {
    Failure {
        message: message.to_string(),
        source: "Server".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            ApplicationFailureInfo {
                r#type: kind.to_string(),
                non_retryable: true,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn unprocessed_update() -> Failure {
    server_failure(
        "Workflow Update is rejected because it wasn't processed by worker. Probably, Workflow Update is not supported by the worker.",
        "UnprocessedUpdate",
    )
}

/// The outcome of an accepted update whose run closed before the workflow completed it.
pub fn accepted_update_completed_workflow() -> Failure {
    server_failure(
        "Workflow Update failed because the Workflow completed before the Update completed.",
        "AcceptedUpdateCompletedWorkflow",
    )
}
