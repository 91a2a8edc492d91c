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
