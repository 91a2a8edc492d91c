//! The StartWorkflowExecution request of an action, built as Temporal's scheduler builds it
//! (`startWorkflow` and `addSearchAttributes` in workflow.go).
//!
//! - Workflow id: `<action workflow id>-<nominal time, Go's RFC 3339 in UTC, whole seconds>`
//!   (`daily-2025-01-01T00:00:00Z`); Temporal always appends it. With the policy
//!   `keep_original_workflow_id` the action's id is used as it is.
//! - Search attributes: the action's, plus `TemporalScheduledStartTime` (the nominal time)
//!   and `TemporalScheduledById` (the schedule id), JSON payloads as Go's default data
//!   converter writes them.
//! - Id reuse policy REJECT_DUPLICATE for scheduled starts, ALLOW_DUPLICATE for manual ones
//!   (trigger, backfill); conflict policy unset (FAIL).
//! - The last completed run's result and the last failure ride along, except on starts
//!   whose own overlap policy is ALLOW_ALL.
//! - Request id: derived from the schedule's identity and a sequence in the state, so the
//!   same state always issues the same id, and every action gets a new one.

use jiff::{SignedDuration, Timestamp};
use temper_proto::persistence::v1::{SchedulerBufferedStart, SchedulerState};
use temporalio_protos::temporal::api::common::v1::{Payload, SearchAttributes};
use temporalio_protos::temporal::api::enums::v1::{ScheduleOverlapPolicy, WorkflowIdReusePolicy};
use temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use super::StartWorkflow;
use super::process::Iteration;
use crate::timestamp_from_proto;

/// The reason Temporal gives when an overlap policy cancels a run.
pub const CANCEL_REASON: &str = "cancelled by schedule overlap policy";
/// The reason Temporal gives when an overlap policy terminates a run.
pub const TERMINATE_REASON: &str = "terminated by schedule overlap policy";

/// The search attribute holding a scheduled run's nominal time.
pub const SCHEDULED_START_TIME: &str = "TemporalScheduledStartTime";
/// The search attribute holding the id of the schedule that started a run.
pub const SCHEDULED_BY_ID: &str = "TemporalScheduledById";

/// The identity on the schedule's requests (starts, cancels, terminates).
pub fn identity(namespace: &str, schedule_id: &str) -> String {
    format!("temporal-scheduler-{namespace}-{schedule_id}")
}

/// The id of a started run: the action's id and the nominal time (see the module comment).
pub fn workflow_id(base: &str, nominal: Timestamp, keep_original: bool) -> String {
    if keep_original {
        return base.to_owned();
    }
    format!("{base}-{}", go_rfc3339_seconds(nominal))
}

/// Go's `t.UTC().Truncate(time.Second).Format(time.RFC3339)`.
fn go_rfc3339_seconds(t: Timestamp) -> String {
    let secs = t.as_nanosecond().div_euclid(1_000_000_000) as i64;
    let t = Timestamp::from_second(secs).unwrap_or(t);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The next start's request id: a UUID-shaped hash of the namespace id, schedule id,
/// creation time and `next_request_seq`.
pub(super) fn request_id(state: &SchedulerState) -> String {
    let created = state
        .info
        .as_ref()
        .and_then(|i| i.create_time.as_ref())
        .map_or(0, |t| timestamp_from_proto(t).as_nanosecond());
    let key = format!(
        "{}\u{0}{}\u{0}{created}\u{0}{}",
        state.namespace_id, state.schedule_id, state.next_request_seq
    );
    let hi = farmhash::fingerprint64(key.as_bytes());
    let lo = farmhash::fingerprint64(format!("request-id\u{0}{key}").as_bytes());
    let hex = format!("{hi:016x}{lo:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The complete request for a buffered start.
pub(super) fn build(
    it: &Iteration<'_>,
    buffered: &SchedulerBufferedStart,
    request_id: String,
) -> StartWorkflow {
    let state = &*it.state;
    let schedule = it.schedule();
    let action = schedule
        .action
        .as_ref()
        .and_then(|a| a.action.as_ref())
        .map(|a| {
            match a {
            temporalio_protos::temporal::api::schedule::v1::schedule_action::Action::StartWorkflow(
                s,
            ) => s.clone(),
        }
        })
        .unwrap_or_default();
    let keep_original = schedule
        .policies
        .as_ref()
        .is_some_and(|p| p.keep_original_workflow_id);
    let nominal = buffered
        .nominal_time
        .as_ref()
        .map_or(it.now, timestamp_from_proto);
    let actual = buffered
        .actual_time
        .as_ref()
        .map_or(nominal, timestamp_from_proto);
    let allow_all = buffered.overlap_policy == ScheduleOverlapPolicy::AllowAll as i32;
    let (last_completion_result, continued_failure) = if allow_all {
        (None, None)
    } else {
        (
            state.last_completion_result.clone(),
            state.continued_failure.clone(),
        )
    };
    let reuse = if buffered.manual {
        WorkflowIdReusePolicy::AllowDuplicate
    } else {
        WorkflowIdReusePolicy::RejectDuplicate
    };
    let request = StartWorkflowExecutionRequest {
        namespace: state.namespace.clone(),
        workflow_id: workflow_id(&action.workflow_id, nominal, keep_original),
        workflow_type: action.workflow_type,
        task_queue: action.task_queue,
        input: action.input,
        workflow_execution_timeout: action.workflow_execution_timeout,
        workflow_run_timeout: action.workflow_run_timeout,
        workflow_task_timeout: action.workflow_task_timeout,
        identity: identity(&state.namespace, &state.schedule_id),
        request_id,
        workflow_id_reuse_policy: reuse as i32,
        retry_policy: action.retry_policy,
        memo: action.memo,
        search_attributes: Some(search_attributes(
            action.search_attributes,
            nominal,
            &state.schedule_id,
        )),
        header: action.header,
        last_completion_result,
        continued_failure,
        user_metadata: action.user_metadata,
        priority: action.priority,
        ..Default::default()
    };
    let retry_for = if buffered.manual {
        SignedDuration::from_secs(60)
    } else {
        let deadline = actual
            .checked_add(it.catchup_window())
            .unwrap_or(Timestamp::MAX);
        deadline
            .duration_since(it.now)
            .clamp(SignedDuration::from_secs(5), SignedDuration::from_hours(1))
    };
    StartWorkflow {
        request,
        nominal_time: nominal,
        actual_time: actual,
        retry_deadline: it.now.checked_add(retry_for).unwrap_or(Timestamp::MAX),
    }
}

/// The action's search attributes plus the two the scheduler adds.
fn search_attributes(
    action: Option<SearchAttributes>,
    nominal: Timestamp,
    schedule_id: &str,
) -> SearchAttributes {
    let mut fields = action.map(|sa| sa.indexed_fields).unwrap_or_default();
    fields.insert(
        SCHEDULED_START_TIME.to_owned(),
        json_payload(go_json_string(&go_rfc3339_seconds(nominal))),
    );
    fields.insert(
        SCHEDULED_BY_ID.to_owned(),
        json_payload(go_json_string(schedule_id)),
    );
    SearchAttributes {
        indexed_fields: fields,
    }
}

/// A payload as Go's default data converter encodes a JSON value.
fn json_payload(json: String) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data: json.into_bytes(),
        ..Default::default()
    }
}

/// A string as Go's `encoding/json` writes it (HTML characters and U+2028/U+2029 escaped).
pub(super) fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_id_appends_the_nominal_time_as_go_formats_it() {
        let t: Timestamp = "2025-01-01T00:00:00.750Z".parse().expect("time");
        assert_eq!(workflow_id("wf", t, false), "wf-2025-01-01T00:00:00Z");
        assert_eq!(workflow_id("wf", t, true), "wf");
    }

    #[test]
    fn go_json_escapes_html_and_controls() {
        assert_eq!(
            go_json_string("a<b>&\"c\"\u{1}"),
            r#""a\u003cb\u003e\u0026\"c\"\u0001""#
        );
        assert_eq!(go_json_string("zürich"), "\"zürich\"");
    }
}
