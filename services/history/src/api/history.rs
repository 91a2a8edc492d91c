//! GetWorkflowExecutionHistory: paging, the close-event filter, and the wait-for-new-events
//! long poll the SDKs use to wait for a result.

use std::time::Duration;

use temper_proto::temporal::api::enums::v1::HistoryEventFilterType;
use temper_proto::temporal::api::history::v1::History;
use temper_proto::temporal::api::workflowservice::v1::{
    GetWorkflowExecutionHistoryRequest, GetWorkflowExecutionHistoryResponse,
    GetWorkflowExecutionHistoryReverseRequest, GetWorkflowExecutionHistoryReverseResponse,
};
use temper_types::NamespaceId;
use temper_workflow::{WorkflowError, close};

use crate::{HistoryEngine, HistoryError};

/// Events in the first page of a poll response.
pub(crate) const FIRST_PAGE_EVENTS: usize = 1000;
const DEFAULT_PAGE_EVENTS: usize = 1000;
/// Longest wait of one wait_new_event call, as Temporal's frontend.
const MAX_LONG_POLL: Duration = Duration::from_secs(20);

/// Our page token: which run, which event comes next, and where the page sequence ends
/// (0: at the run's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageToken {
    pub run_id: String,
    pub next_event_id: i64,
    pub end_event_id: i64,
}

impl PageToken {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(17 + self.run_id.len());
        v.push(1u8);
        v.extend_from_slice(&self.next_event_id.to_be_bytes());
        v.extend_from_slice(&self.end_event_id.to_be_bytes());
        v.extend_from_slice(self.run_id.as_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, WorkflowError> {
        let bad = || WorkflowError::InvalidArgument("Invalid NextPageToken.".into());
        if b.len() < 17 || b[0] != 1 {
            return Err(bad());
        }
        let next = i64::from_be_bytes(b[1..9].try_into().map_err(|_| bad())?);
        let end = i64::from_be_bytes(b[9..17].try_into().map_err(|_| bad())?);
        let run_id = String::from_utf8(b[17..].to_vec()).map_err(|_| bad())?;
        if next < 1 || end < 0 {
            return Err(bad());
        }
        Ok(Self {
            run_id,
            next_event_id: next,
            end_event_id: end,
        })
    }
}

pub(crate) async fn get(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: GetWorkflowExecutionHistoryRequest,
    long_poll_timeout_ms: i64,
) -> Result<GetWorkflowExecutionHistoryResponse, HistoryError> {
    let exec = req.execution.clone().unwrap_or_default();
    if exec.workflow_id.is_empty() {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    }
    let token = if req.next_page_token.is_empty() {
        None
    } else {
        Some(PageToken::decode(&req.next_page_token)?)
    };
    let run_id = token
        .as_ref()
        .map(|t| t.run_id.clone())
        .unwrap_or(exec.run_id.clone());
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let key = shard.resolve(ns, &exec.workflow_id, &run_id).await?;
    let close_only = req.history_event_filter_type == HistoryEventFilterType::CloseEvent as i32;
    let page_size = if req.maximum_page_size > 0 {
        req.maximum_page_size as usize
    } else {
        DEFAULT_PAGE_EVENTS
    };
    let from = token.as_ref().map(|t| t.next_event_id).unwrap_or(1);
    let end_bound = token.as_ref().map(|t| t.end_event_id).unwrap_or(0);

    if req.wait_new_event {
        let wait = if long_poll_timeout_ms > 0 {
            Duration::from_millis(long_poll_timeout_ms as u64).min(MAX_LONG_POLL)
        } else {
            MAX_LONG_POLL
        };
        let deadline = tokio::time::Instant::now() + wait;
        // Holding the entry while waiting keeps the cache from evicting it (which would wake
        // this poll early and make its caller poll again at once).
        let entry = shard.entry(&key);
        let mut changes = entry.changes.subscribe();
        loop {
            let ms = shard.snapshot(&key).await?;
            let closed = close::is_closed(&ms);
            let ready = if close_only {
                closed
            } else {
                ms.next_event_id > from || closed
            };
            if ready {
                break;
            }
            let timed_out = tokio::select! {
                r = changes.changed() => r.is_err(),
                _ = tokio::time::sleep_until(deadline) => true,
                _ = shard.cancel.cancelled() => true,
            };
            if timed_out {
                // Nothing new yet: hand back the same position so the caller polls again.
                let t = PageToken {
                    run_id: key.run_id.clone(),
                    next_event_id: from,
                    end_event_id: 0,
                };
                return Ok(GetWorkflowExecutionHistoryResponse {
                    history: Some(History::default()),
                    next_page_token: t.encode(),
                    ..Default::default()
                });
            }
        }
    }

    if close_only {
        let ms = shard.snapshot(&key).await?;
        let events = if close::is_closed(&ms) {
            let id = ms.execution_info.unwrap_or_default().completion_event_id;
            shard.events_between(&key, id, Some(id + 1)).await?.0
        } else {
            Vec::new()
        };
        return Ok(GetWorkflowExecutionHistoryResponse {
            history: Some(History { events }),
            ..Default::default()
        });
    }
    let (mut page, ms) = shard
        .events_between(&key, from, (end_bound > 0).then_some(end_bound))
        .await?;
    if end_bound > 0 {
        // The rest of a workflow task's history: its speculative events are not stored.
        page.extend(
            temper_workflow::speculative::events(&ms)
                .into_iter()
                .filter(|e| e.event_id >= from && e.event_id < end_bound),
        );
    }
    let closed = close::is_closed(&ms);
    let end = if end_bound > 0 {
        end_bound
    } else {
        ms.next_event_id
    };
    let mut next_page_token = Vec::new();
    if page.len() > page_size {
        page.truncate(page_size);
        let next = page.last().map(|e| e.event_id + 1).unwrap_or(from);
        next_page_token = PageToken {
            run_id: key.run_id.clone(),
            next_event_id: next,
            end_event_id: end_bound,
        }
        .encode();
    } else if req.wait_new_event && !closed {
        next_page_token = PageToken {
            run_id: key.run_id.clone(),
            next_event_id: end,
            end_event_id: 0,
        }
        .encode();
    }
    Ok(GetWorkflowExecutionHistoryResponse {
        history: Some(History { events: page }),
        next_page_token,
        ..Default::default()
    })
}

/// Largest page of a reverse read, as Temporal's frontend caps it.
const MAX_REVERSE_PAGE_EVENTS: usize = 256;

/// GetWorkflowExecutionHistoryReverse: the run's stored events newest first. The first page
/// ends at the run's last event; each token says which run and the event id the next page
/// ends before (so a page is `[next - page_size, next)` read backwards), and the last page has
/// no token.
pub(crate) async fn get_reverse(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: GetWorkflowExecutionHistoryReverseRequest,
) -> Result<GetWorkflowExecutionHistoryReverseResponse, HistoryError> {
    let exec = req.execution.clone().unwrap_or_default();
    if exec.workflow_id.is_empty() {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    }
    let token = if req.next_page_token.is_empty() {
        None
    } else {
        Some(PageToken::decode(&req.next_page_token)?)
    };
    if let Some(t) = &token
        && !exec.run_id.is_empty()
        && exec.run_id != t.run_id
    {
        return Err(WorkflowError::InvalidArgument(
            "RunId in the request does not match the NextPageToken.".into(),
        )
        .into());
    }
    let run_id = token
        .as_ref()
        .map(|t| t.run_id.clone())
        .unwrap_or(exec.run_id.clone());
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let key = shard.resolve(ns, &exec.workflow_id, &run_id).await?;
    let page_size = match usize::try_from(req.maximum_page_size) {
        Ok(n) if n > 0 => n.min(MAX_REVERSE_PAGE_EVENTS),
        _ => MAX_REVERSE_PAGE_EVENTS,
    };
    let end = match &token {
        Some(t) => t.next_event_id,
        None => shard.snapshot(&key).await?.next_event_id,
    };
    let from = (end - page_size as i64).max(1);
    let (mut events, _) = shard.events_between(&key, from, Some(end)).await?;
    events.retain(|e| e.event_id >= from && e.event_id < end);
    events.reverse();
    let next_page_token = if from > 1 {
        PageToken {
            run_id: key.run_id.clone(),
            next_event_id: from,
            end_event_id: 0,
        }
        .encode()
    } else {
        Vec::new()
    };
    Ok(GetWorkflowExecutionHistoryReverseResponse {
        history: Some(History { events }),
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_garbage() {
        let t = PageToken {
            run_id: "r-1".into(),
            next_event_id: 7,
            end_event_id: 0,
        };
        assert_eq!(PageToken::decode(&t.encode()), Ok(t));
        assert!(PageToken::decode(b"nonsense").is_err());
        assert!(PageToken::decode(&[1u8; 3]).is_err());
    }
}
