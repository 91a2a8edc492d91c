//! One transaction on one execution's mutable state, and what it produces.

use std::time::SystemTime;

use prost::Message;
use temper_proto::temporal::api::common::v1::Link;
use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus;
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::wkt;

use crate::events::{At, BUFFERED_EVENT_ID, new_event};
use crate::pb;
use crate::time::ts;

/// Temporal's `WorkflowExecutionState::Running`.
pub const STATE_RUNNING: i32 = 2;
/// Temporal's `WorkflowExecutionState::Completed`.
pub const STATE_COMPLETED: i32 = 3;

/// The longest id or name (workflow id, type, task queue, request id) a request may give.
pub(crate) const MAX_ID_LENGTH: usize = 1000;

/// What partition names start with (`temper_types::PARTITION_PREFIX`).
pub const RESERVED_PREFIX: &str = "/_sys/";

/// Temporal's answer to a task queue named like one of a queue's partitions (`/_sys/...`).
pub const RESERVED_TASK_QUEUE: &str = "task queue name cannot start with reserved prefix /_sys/";

/// What one transaction must persist, atomically, besides the new mutable state.
#[derive(Debug, Default, Clone)]
pub struct Mutation {
    /// New history events with their ids, in order.
    pub events: Vec<HistoryEvent>,
    pub transfer: Vec<pb::TransferTask>,
    /// Timer tasks with their fire time.
    pub timers: Vec<(SystemTime, pb::TimerTask)>,
    pub visibility: Vec<pb::VisibilityTask>,
    /// A run that continues this one (continue-as-new, workflow retry, cron), created in the
    /// same atomic commit that closes this run.
    pub new_run: Option<Box<NewRunState>>,
}

/// A new run's first state and what its creation writes.
#[derive(Debug, Clone)]
pub struct NewRunState {
    pub ms: pb::MutableState,
    pub mutation: Mutation,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.transfer.is_empty()
            && self.timers.is_empty()
            && self.visibility.is_empty()
            && self.new_run.is_none()
    }

    /// Add what `more` writes after what this one does (a run's creation and the first
    /// transaction on it, committed as one).
    pub fn absorb(&mut self, more: Mutation) {
        self.events.extend(more.events);
        self.transfer.extend(more.transfer);
        self.timers.extend(more.timers);
        self.visibility.extend(more.visibility);
        if more.new_run.is_some() {
            self.new_run = more.new_run;
        }
    }
}

/// Per-workflow limits (Temporal's defaults).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_pending_activities: usize,
    pub max_pending_children: usize,
    pub max_pending_cancel_requests: usize,
    pub max_pending_signals: usize,
    pub max_pending_timers: usize,
    pub max_payload_bytes: usize,
    pub max_history_events: i64,
    pub max_history_bytes: i64,
    /// Past these, workflow tasks tell the workflow to continue as new.
    pub suggest_continue_as_new_events: i64,
    pub suggest_continue_as_new_bytes: i64,
    pub default_workflow_task_timeout: std::time::Duration,
    pub max_workflow_task_timeout: std::time::Duration,
    pub sticky_schedule_to_start_timeout: std::time::Duration,
    /// Completion callbacks on workflow updates (Temporal's `history.enableUpdateCallbacks`,
    /// off by default): off, an update request's callbacks are not registered.
    pub update_callbacks: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending_activities: 2000,
            max_pending_children: 2000,
            max_pending_cancel_requests: 2000,
            max_pending_signals: 2000,
            max_pending_timers: 2000,
            max_payload_bytes: 2 * 1024 * 1024,
            max_history_events: 51_200,
            max_history_bytes: 50 * 1024 * 1024,
            suggest_continue_as_new_events: 4 * 1024,
            suggest_continue_as_new_bytes: 4 * 1024 * 1024,
            default_workflow_task_timeout: std::time::Duration::from_secs(10),
            max_workflow_task_timeout: std::time::Duration::from_secs(120),
            sticky_schedule_to_start_timeout: std::time::Duration::from_secs(5),
            update_callbacks: false,
        }
    }
}

/// One transaction on an execution's mutable state.
pub struct Txn<'a> {
    pub ms: &'a mut pb::MutableState,
    pub now: SystemTime,
    pub now_ts: wkt::Timestamp,
    pub limits: &'a Limits,
    pub out: Mutation,
    /// A command produced an event the workflow has not seen yet, so the completion of the
    /// current workflow task must schedule another one.
    pub needs_workflow_task: bool,
    /// Makes the run id of a run that continues this one (set by the caller; without it
    /// the id is derived from this run's). Called only when a run continues, so ordinary
    /// transactions pay nothing for it.
    pub new_run_id: Option<fn() -> String>,
    /// The run's in-memory updates (admitted, not yet accepted), carried through the
    /// transaction so it commits or rolls back with the state.
    pub updates: crate::update::Registry,
    /// The namespace's retention, when the caller knows it: reset points a continue-as-new
    /// carries over expire after it.
    pub retention: Option<std::time::Duration>,
    /// The ids of the Nexus endpoints a workflow task completion's commands name, by name
    /// (the caller looked them up; a name missing here is not registered).
    pub nexus_endpoints: std::collections::HashMap<String, String>,
}

impl<'a> Txn<'a> {
    /// A transaction on `ms`, which must carry execution info: stored states enter through
    /// [`crate::transaction::apply`], which checks it.
    pub fn new(ms: &'a mut pb::MutableState, now: SystemTime, limits: &'a Limits) -> Self {
        Self {
            ms,
            now,
            now_ts: ts(now),
            limits,
            out: Mutation::default(),
            needs_workflow_task: false,
            new_run_id: None,
            updates: crate::update::Registry::default(),
            retention: None,
            nexus_endpoints: Default::default(),
        }
    }

    /// Finish: enforce the history limits, count the state transition and hand back what
    /// must be persisted. A run whose history grew past the limits is terminated, as the
    /// Temporal server does.
    pub fn finish(mut self) -> Mutation {
        if self.is_running() {
            let count = self.ms.next_event_id - 1;
            let size = self.info().history_size_bytes;
            let reason = if count >= self.limits.max_history_events {
                Some("Workflow history count exceeds limit.")
            } else if size >= self.limits.max_history_bytes {
                Some("Workflow history size exceeds limit.")
            } else {
                None
            };
            if let Some(reason) = reason {
                let _ = crate::close::terminate(
                    &mut self,
                    reason,
                    None,
                    crate::close::IDENTITY_HISTORY_SERVICE,
                );
            }
        }
        let info = self.ms.execution_info.get_or_insert_with(Default::default);
        info.state_transition_count += 1;
        self.out
    }

    /// The run's execution info. Every state a transaction works on has one: a stored state
    /// is checked where it enters a transaction ([`crate::transaction::apply`]), and a new
    /// or rebuilt run gets it from its started event.
    pub fn info(&self) -> &pb::ExecutionInfo {
        self.ms
            .execution_info
            .as_ref()
            .expect("checked when the state entered the transaction")
    }

    pub fn info_mut(&mut self) -> &mut pb::ExecutionInfo {
        info_mut(self.ms)
    }

    pub fn is_running(&self) -> bool {
        self.info().status == WorkflowExecutionStatus::Running as i32
    }

    /// A workflow task is started and not yet finished: external events must be buffered.
    pub fn has_started_workflow_task(&self) -> bool {
        self.ms
            .workflow_task
            .as_ref()
            .is_some_and(|wt| wt.started_event_id > 0)
    }

    pub fn has_pending_workflow_task(&self) -> bool {
        self.ms.workflow_task.is_some()
    }

    /// Write an event now, returning its id.
    pub fn write(&mut self, attrs: Attributes) -> i64 {
        let now = self.now_ts;
        self.write_at(attrs, now)
    }

    /// Give the event at `index` of this transaction's new events the user metadata (summary
    /// and details) its command or request carried, as Temporal records it on the event;
    /// the history size counts it.
    pub(crate) fn set_user_metadata(
        &mut self,
        index: usize,
        metadata: &temper_proto::temporal::api::sdk::v1::UserMetadata,
    ) {
        let Some(ev) = self.out.events.get_mut(index) else {
            return;
        };
        let before = ev.encoded_len() as i64;
        ev.user_metadata = Some(metadata.clone());
        let grown = ev.encoded_len() as i64 - before;
        self.info_mut().history_size_bytes += grown;
    }

    /// Write an event with time `time` (one that happened earlier, shown to a worker before it
    /// was written), returning its id.
    pub(crate) fn write_at(&mut self, attrs: Attributes, time: wkt::Timestamp) -> i64 {
        self.append(new_event(attrs, &time))
    }

    /// Append `ev` to the history with the next id; its id.
    fn append(&mut self, mut ev: HistoryEvent) -> i64 {
        let id = self.ms.next_event_id;
        ev.event_id = id;
        self.ms.next_event_id += 1;
        let size = ev.encoded_len() as i64;
        self.info_mut().history_size_bytes += size;
        self.out.events.push(ev);
        id
    }

    /// Write an event now and change the state with `apply`, the function replay applies the
    /// event with (see [`crate::rebuild`]); returns the event's id. The state changes before
    /// the event is appended, at the id and time the event gets, so the attributes need not
    /// be copied; nothing in between looks at either.
    pub(crate) fn write_applied<A: Into<Attributes>>(
        &mut self,
        attrs: A,
        apply: impl FnOnce(&mut pb::MutableState, At, &A),
    ) -> i64 {
        let at = At {
            id: self.ms.next_event_id,
            time: self.now_ts,
        };
        apply(self.ms, at, &attrs);
        self.write(attrs.into())
    }

    /// [`Self::write_external`] with `apply` as in [`Self::write_applied`]: a buffered event
    /// changes the state at once, with the id [`BUFFERED_EVENT_ID`] (fixed when written).
    pub(crate) fn write_external_applied<A: Into<Attributes>>(
        &mut self,
        attrs: A,
        apply: impl FnOnce(&mut pb::MutableState, At, &A),
    ) -> Option<i64> {
        let now = self.now_ts;
        self.write_external_applied_at(attrs, now, apply)
    }

    /// [`Self::write_external_applied`] for an event that happened at `time`, earlier than
    /// it is written (an activity's started event, written when the attempt ends).
    pub(crate) fn write_external_applied_at<A: Into<Attributes>>(
        &mut self,
        attrs: A,
        time: wkt::Timestamp,
        apply: impl FnOnce(&mut pb::MutableState, At, &A),
    ) -> Option<i64> {
        let id = if self.has_started_workflow_task() {
            BUFFERED_EVENT_ID
        } else {
            self.ms.next_event_id
        };
        apply(self.ms, At { id, time }, &attrs);
        self.write_external_at(attrs.into(), time)
    }

    /// Write an event that comes from outside the workflow task (activity result, timer,
    /// cancel request, signal): buffered while a workflow task runs. Returns the event id if
    /// written now.
    pub fn write_external(&mut self, attrs: Attributes) -> Option<i64> {
        let now = self.now_ts;
        self.write_external_at(attrs, now)
    }

    fn write_external_at(&mut self, attrs: Attributes, time: wkt::Timestamp) -> Option<i64> {
        self.write_external_linked_at(attrs, time, Vec::new())
    }

    /// [`Self::write_external_applied`] for an event that carries links to other executions'
    /// events (a signal's sender, a Nexus handler's workflow), buffered with them.
    pub(crate) fn write_external_linked_applied<A: Into<Attributes>>(
        &mut self,
        attrs: A,
        links: Vec<Link>,
        apply: impl FnOnce(&mut pb::MutableState, At, &A),
    ) -> Option<i64> {
        let id = if self.has_started_workflow_task() {
            BUFFERED_EVENT_ID
        } else {
            self.ms.next_event_id
        };
        let time = self.now_ts;
        apply(self.ms, At { id, time }, &attrs);
        self.write_external_linked_at(attrs.into(), time, links)
    }

    fn write_external_linked_at(
        &mut self,
        attrs: Attributes,
        time: wkt::Timestamp,
        links: Vec<Link>,
    ) -> Option<i64> {
        let mut ev = new_event(attrs, &time);
        ev.links = links;
        if self.has_started_workflow_task() {
            self.ms.buffered_events.push(ev);
            None
        } else {
            Some(self.append(ev))
        }
    }

    /// Give the event at `index` of this transaction's new events `links` (those its request
    /// carried); the history size counts them.
    pub(crate) fn set_links(&mut self, index: usize, links: Vec<Link>) {
        let Some(ev) = self.out.events.get_mut(index) else {
            return;
        };
        let before = ev.encoded_len() as i64;
        ev.links = links;
        let grown = ev.encoded_len() as i64 - before;
        self.info_mut().history_size_bytes += grown;
    }

    /// Write the buffered events, fixing up references to buffered activity started events.
    pub fn flush_buffered(&mut self) {
        let buffered = std::mem::take(&mut self.ms.buffered_events);
        let mut started_ids: Vec<(i64, i64)> = Vec::new();
        let mut child_ids: Vec<(i64, i64)> = Vec::new();
        for mut ev in buffered {
            use Attributes as A;
            match ev.attributes.as_mut() {
                Some(A::ActivityTaskCompletedEventAttributes(a)) => {
                    fix_started(&started_ids, a.scheduled_event_id, &mut a.started_event_id)
                }
                Some(A::ActivityTaskFailedEventAttributes(a)) => {
                    fix_started(&started_ids, a.scheduled_event_id, &mut a.started_event_id)
                }
                Some(A::ActivityTaskTimedOutEventAttributes(a)) => {
                    fix_started(&started_ids, a.scheduled_event_id, &mut a.started_event_id)
                }
                Some(A::ActivityTaskCanceledEventAttributes(a)) => {
                    fix_started(&started_ids, a.scheduled_event_id, &mut a.started_event_id)
                }
                Some(A::ChildWorkflowExecutionCompletedEventAttributes(a)) => {
                    fix_started(&child_ids, a.initiated_event_id, &mut a.started_event_id)
                }
                Some(A::ChildWorkflowExecutionFailedEventAttributes(a)) => {
                    fix_started(&child_ids, a.initiated_event_id, &mut a.started_event_id)
                }
                Some(A::ChildWorkflowExecutionCanceledEventAttributes(a)) => {
                    fix_started(&child_ids, a.initiated_event_id, &mut a.started_event_id)
                }
                Some(A::ChildWorkflowExecutionTimedOutEventAttributes(a)) => {
                    fix_started(&child_ids, a.initiated_event_id, &mut a.started_event_id)
                }
                Some(A::ChildWorkflowExecutionTerminatedEventAttributes(a)) => {
                    fix_started(&child_ids, a.initiated_event_id, &mut a.started_event_id)
                }
                _ => {}
            }
            let id = self.ms.next_event_id;
            match ev.attributes.as_ref() {
                Some(A::ActivityTaskStartedEventAttributes(a)) => {
                    started_ids.push((a.scheduled_event_id, id));
                }
                Some(A::ChildWorkflowExecutionStartedEventAttributes(a)) => {
                    child_ids.push((a.initiated_event_id, id));
                    if let Some(c) = self.ms.children.get_mut(&a.initiated_event_id) {
                        c.started_event_id = id;
                    }
                }
                _ => {}
            }
            if let Some(A::WorkflowExecutionSignaledEventAttributes(a)) = ev.attributes.as_ref() {
                crate::signal::on_signal_flushed(info_mut(self.ms), &a.request_id, id);
            }
            ev.event_id = id;
            self.ms.next_event_id += 1;
            let size = ev.encoded_len() as i64;
            self.info_mut().history_size_bytes += size;
            self.out.events.push(ev);
        }
    }

    pub fn has_buffered_events(&self) -> bool {
        !self.ms.buffered_events.is_empty()
    }

    /// Timer `timer_id` fired while the workflow task runs: its TimerFired is buffered.
    pub(crate) fn has_buffered_timer_fired(&self, timer_id: &str) -> bool {
        self.ms.buffered_events.iter().any(|ev| {
            matches!(&ev.attributes, Some(Attributes::TimerFiredEventAttributes(a)) if a.timer_id == timer_id)
        })
    }

    /// Remove a buffered TimerFired event for `timer_id` (a timer canceled by the workflow
    /// after it fired during the workflow task); returns the timer's started event id.
    pub fn take_buffered_timer_fired(&mut self, timer_id: &str) -> Option<i64> {
        let pos = self.ms.buffered_events.iter().position(|ev| {
            matches!(&ev.attributes, Some(Attributes::TimerFiredEventAttributes(a)) if a.timer_id == timer_id)
        })?;
        let ev = self.ms.buffered_events.remove(pos);
        match ev.attributes {
            Some(Attributes::TimerFiredEventAttributes(a)) => Some(a.started_event_id),
            _ => None,
        }
    }

    pub fn add_timer_task(&mut self, at: SystemTime, task: pb::TimerTask) {
        self.out.timers.push((at, task));
    }

    pub fn add_transfer_task(&mut self, task: pb::TransferTask) {
        self.out.transfer.push(task);
    }

    /// A timer task for this execution.
    pub fn timer_task(
        &self,
        kind: pb::TimerTaskKind,
        event_id: i64,
        attempt: i32,
    ) -> pb::TimerTask {
        let info = self.info();
        pb::TimerTask {
            namespace_id: info.namespace_id.clone(),
            workflow_id: info.workflow_id.clone(),
            run_id: info.run_id.clone(),
            kind: kind as i32,
            event_id,
            attempt,
            timeout_type: 0,
            timer_id: String::new(),
        }
    }

    /// A transfer task for this execution.
    pub fn transfer_task(&self, kind: pb::TransferTaskKind) -> pb::TransferTask {
        let info = self.info();
        pb::TransferTask {
            namespace_id: info.namespace_id.clone(),
            workflow_id: info.workflow_id.clone(),
            run_id: info.run_id.clone(),
            kind: kind as i32,
            ..Default::default()
        }
    }

    pub fn visibility_task(&mut self, kind: pb::VisibilityTaskKind) {
        let info = self.info();
        let t = pb::VisibilityTask {
            namespace_id: info.namespace_id.clone(),
            workflow_id: info.workflow_id.clone(),
            run_id: info.run_id.clone(),
            kind: kind as i32,
        };
        self.out.visibility.push(t);
    }
}

/// The execution info of a state, for the `apply_*` functions (every state a transaction or
/// a replay works on has one).
pub(crate) fn info_mut(ms: &mut pb::MutableState) -> &mut pb::ExecutionInfo {
    ms.execution_info.get_or_insert_with(Default::default)
}

fn fix_started(started: &[(i64, i64)], scheduled: i64, slot: &mut i64) {
    if let Some((_, id)) = started.iter().find(|(s, _)| *s == scheduled) {
        *slot = *id;
    }
}
