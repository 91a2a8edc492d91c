//! A workflow task's complete history: the poll response's first page, the pages after it
//! (GetWorkflowExecutionHistory with the response's page token), and with sticky execution
//! the cached beginning of a partial history, or the whole history again on a cache miss.

use std::sync::atomic::Ordering;

use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::enums::v1::HistoryEventFilterType;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::temporal::api::workflowservice::v1::{
    GetWorkflowExecutionHistoryRequest, PollWorkflowTaskQueueResponse,
};
use tonic::Status;

use crate::client::{req, retry};
use crate::shared::Shared;

/// Fetch the pages of a history after the first.
async fn fetch_pages(
    shared: &Shared,
    ns: &str,
    execution: &WorkflowExecution,
    mut token: Vec<u8>,
    events: &mut Vec<HistoryEvent>,
) -> Result<(), Status> {
    while !token.is_empty() {
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: ns.to_string(),
            execution: Some(execution.clone()),
            next_page_token: token,
            history_event_filter_type: HistoryEventFilterType::AllEvent as i32,
            skip_archival: true,
            ..Default::default()
        };
        let page = retry(|| {
            let mut c = shared.clients.get();
            let r = req(request.clone());
            async move { c.get_workflow_execution_history(r).await }
        })
        .await?
        .into_inner();
        shared
            .metrics
            .live
            .history_pages
            .fetch_add(1, Ordering::Relaxed);
        events.extend(page.history.map(|h| h.events).unwrap_or_default());
        token = page.next_page_token;
    }
    Ok(())
}

/// The task's complete history: its own pages, and with sticky execution the cached
/// beginning of a partial history (or the whole history fetched again on a cache miss).
pub async fn full_history(
    shared: &Shared,
    ns: &str,
    task: &mut PollWorkflowTaskQueueResponse,
    execution: &WorkflowExecution,
) -> Result<Vec<HistoryEvent>, Status> {
    let mut events = task.history.take().map(|h| h.events).unwrap_or_default();
    fetch_pages(
        shared,
        ns,
        execution,
        std::mem::take(&mut task.next_page_token),
        &mut events,
    )
    .await?;
    let first = events.first().map_or(1, |e| e.event_id);
    if first <= 1 {
        return Ok(events);
    }
    let cached = shared.cache().remove(&execution.run_id);
    if let Some(mut cached) = cached {
        let last = cached.last().map_or(0, |e| e.event_id);
        if last + 1 >= first {
            cached.retain(|e| e.event_id < first);
            cached.extend(events);
            shared
                .metrics
                .live
                .sticky_hits
                .fetch_add(1, Ordering::Relaxed);
            return Ok(cached);
        }
    }
    // Not cached (or a gap): read the whole history.
    let mut all = Vec::new();
    let request = GetWorkflowExecutionHistoryRequest {
        namespace: ns.to_string(),
        execution: Some(execution.clone()),
        history_event_filter_type: HistoryEventFilterType::AllEvent as i32,
        skip_archival: true,
        ..Default::default()
    };
    let first_page = retry(|| {
        let mut c = shared.clients.get();
        let r = req(request.clone());
        async move { c.get_workflow_execution_history(r).await }
    })
    .await?
    .into_inner();
    shared
        .metrics
        .live
        .history_pages
        .fetch_add(1, Ordering::Relaxed);
    all.extend(first_page.history.map(|h| h.events).unwrap_or_default());
    fetch_pages(shared, ns, execution, first_page.next_page_token, &mut all).await?;
    // The fetched history may end before this task's events if they are not all written
    // yet; the task's own events are the newest word.
    all.retain(|e| e.event_id < first);
    all.extend(events);
    Ok(all)
}

/// How late each timer fired among the events this task brings (those after the last
/// WorkflowTaskCompleted): its TimerFired event's time against its TimerStarted event's time
/// plus the timer's duration, both by the server's clock. A timer that fired early counts 0.
pub fn timers_fired_late(history: &[HistoryEvent]) -> Vec<std::time::Duration> {
    use temporalio_protos::temporal::api::enums::v1::EventType;
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    let nanos = |t: &prost_wkt_types::Timestamp| {
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
    };
    let new_from = history
        .iter()
        .rposition(|e| e.event_type == EventType::WorkflowTaskCompleted as i32)
        .map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for e in &history[new_from..] {
        let Some(Attributes::TimerFiredEventAttributes(fired)) = &e.attributes else {
            continue;
        };
        // Event ids are 1-based and contiguous: the started event sits at id - 1.
        let started = usize::try_from(fired.started_event_id - 1)
            .ok()
            .and_then(|i| history.get(i));
        let Some(started) = started else { continue };
        let Some(Attributes::TimerStartedEventAttributes(a)) = &started.attributes else {
            continue;
        };
        let (Some(at), Some(from), Some(timeout)) = (
            e.event_time.as_ref(),
            started.event_time.as_ref(),
            a.start_to_fire_timeout.as_ref(),
        ) else {
            continue;
        };
        let due =
            nanos(from) + i128::from(timeout.seconds) * 1_000_000_000 + i128::from(timeout.nanos);
        let late = u64::try_from((nanos(at) - due).max(0)).unwrap_or(u64::MAX);
        out.push(std::time::Duration::from_nanos(late));
    }
    out
}

#[cfg(test)]
mod tests {
    use temporalio_protos::temporal::api::enums::v1::EventType;
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes as A;
    use temporalio_protos::temporal::api::history::v1::{
        TimerFiredEventAttributes, TimerStartedEventAttributes,
    };

    use super::*;

    fn event(id: i64, t: EventType, at_ms: i64, attributes: Option<A>) -> HistoryEvent {
        HistoryEvent {
            event_id: id,
            event_type: t as i32,
            event_time: Some(prost_wkt_types::Timestamp {
                seconds: at_ms / 1000,
                nanos: ((at_ms % 1000) * 1_000_000) as i32,
            }),
            attributes,
            ..Default::default()
        }
    }

    fn started(id: i64, at_ms: i64, secs: i64) -> HistoryEvent {
        event(
            id,
            EventType::TimerStarted,
            at_ms,
            Some(A::TimerStartedEventAttributes(
                TimerStartedEventAttributes {
                    start_to_fire_timeout: Some(prost_wkt_types::Duration {
                        seconds: secs,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
            )),
        )
    }

    fn fired(id: i64, at_ms: i64, started_event_id: i64) -> HistoryEvent {
        event(
            id,
            EventType::TimerFired,
            at_ms,
            Some(A::TimerFiredEventAttributes(TimerFiredEventAttributes {
                started_event_id,
                ..Default::default()
            })),
        )
    }

    #[test]
    fn only_the_timers_this_task_brings_count_each_against_its_due_time() {
        let h = vec![
            event(1, EventType::WorkflowExecutionStarted, 0, None),
            started(2, 1_000, 10),
            started(3, 1_000, 2),
            fired(4, 3_040, 3),
            event(5, EventType::WorkflowTaskCompleted, 3_100, None),
            fired(6, 11_007, 2),
            // Fired before its due time by the clocks: counts as on time.
            fired(7, 2_999, 3),
        ];
        let late = timers_fired_late(&h);
        assert_eq!(
            late,
            vec![
                std::time::Duration::from_millis(7),
                std::time::Duration::ZERO
            ]
        );
        // Without a completed task, every fired timer is new.
        assert_eq!(
            timers_fired_late(&h[..4]),
            vec![std::time::Duration::from_millis(40)]
        );
    }
}
