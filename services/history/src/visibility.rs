//! A run's visibility record, built from its mutable state for the commit that changes what
//! List shows of it (start, search attribute or memo upsert, close: the transaction marks
//! those with a visibility task), so List and Count read their own writes.

use prost::Message;
use temper_persistence::{ExecutionKey, VisibilityRecord};
use temper_workflow::{Mutation, pb};

/// Name of the search attribute that hides internal runs from List.
const NAMESPACE_DIVISION: &str = "TemporalNamespaceDivision";

/// Whether a commit of `mutation` must rewrite the record: a run's first write always does.
pub(crate) fn changes_visibility(mutation: &Mutation, creating: bool) -> bool {
    creating || !mutation.visibility.is_empty()
}

fn nanos(t: Option<&temper_proto::wkt::Timestamp>) -> Option<i64> {
    t.map(|t| {
        t.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(t.nanos))
    })
}

/// Longest value indexed as a keyword: Keyword attributes are short; longer strings are Text
/// values, which queries match by token, not by equality.
const MAX_KEYWORD_BYTES: usize = 1024;

/// The string values of `sa` (JSON, as every SDK writes search attributes): each string and
/// each string of a list, as `(attribute, value)`, sorted, without duplicates.
fn keywords(
    sa: &temper_proto::temporal::api::common::v1::SearchAttributes,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, payload) in &sa.indexed_fields {
        let mut push = |v: serde_json::Value| {
            if let serde_json::Value::String(v) = v
                && v.len() <= MAX_KEYWORD_BYTES
            {
                out.push((name.clone(), v));
            }
        };
        match serde_json::from_slice(&payload.data) {
            Ok(serde_json::Value::Array(items)) => items.into_iter().for_each(&mut push),
            Ok(v) => push(v),
            Err(_) => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The record of run `key` in state `ms`, stored as `version` (the execution's record version,
/// which only grows).
pub(crate) fn record(key: &ExecutionKey, ms: &pb::MutableState, version: i64) -> VisibilityRecord {
    let info = ms.execution_info.clone().unwrap_or_default();
    let closed = temper_workflow::close::is_closed(ms);
    let start = nanos(info.start_time.as_ref()).unwrap_or(0);
    let parent = info.parent.as_ref().and_then(|p| p.execution.as_ref());
    let root = info.root_execution.clone().unwrap_or_default();
    let namespace_division = info
        .search_attributes
        .as_ref()
        .and_then(|sa| sa.indexed_fields.get(NAMESPACE_DIVISION))
        .and_then(|p| serde_json::from_slice::<String>(&p.data).ok());
    VisibilityRecord {
        namespace_id: key.namespace_id.clone(),
        workflow_id: key.workflow_id.clone(),
        run_id: key.run_id.clone(),
        workflow_type: info
            .workflow_type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        task_queue: info
            .task_queue
            .as_ref()
            .map(|q| q.name.clone())
            .unwrap_or_default(),
        status: info.status,
        start_time_ns: start,
        execution_time_ns: nanos(info.execution_time.as_ref()).unwrap_or(start),
        close_time_ns: if closed {
            nanos(info.close_time.as_ref()).or(Some(start))
        } else {
            None
        },
        history_length: ms.next_event_id - 1,
        history_size_bytes: info.history_size_bytes,
        state_transition_count: info.state_transition_count,
        parent_workflow_id: parent.map(|p| p.workflow_id.clone()),
        parent_run_id: parent.map(|p| p.run_id.clone()),
        root_workflow_id: if root.workflow_id.is_empty() {
            key.workflow_id.clone()
        } else {
            root.workflow_id
        },
        root_run_id: if root.run_id.is_empty() {
            key.run_id.clone()
        } else {
            root.run_id
        },
        namespace_division,
        keywords: Some(
            info.search_attributes
                .as_ref()
                .map(keywords)
                .unwrap_or_default(),
        ),
        memo: info.memo.map(|m| m.encode_to_vec()).unwrap_or_default(),
        search_attributes: info
            .search_attributes
            .map(|s| s.encode_to_vec())
            .unwrap_or_default(),
        version,
    }
}

#[cfg(test)]
mod tests {
    use temper_proto::temporal::api::common::v1::{Payload, SearchAttributes, WorkflowExecution};
    use temper_types::NamespaceId;

    use super::*;

    fn key() -> ExecutionKey {
        ExecutionKey {
            namespace_id: NamespaceId("ns".into()),
            workflow_id: "wf".into(),
            run_id: "run".into(),
        }
    }

    fn state(status: i32) -> pb::MutableState {
        let ts = |s| {
            Some(temper_proto::wkt::Timestamp {
                seconds: s,
                nanos: 5,
            })
        };
        pb::MutableState {
            next_event_id: 4,
            execution_info: Some(pb::ExecutionInfo {
                status,
                state: if status == 1 { 2 } else { 3 },
                start_time: ts(10),
                execution_time: ts(12),
                close_time: (status != 1).then_some(temper_proto::wkt::Timestamp {
                    seconds: 20,
                    nanos: 0,
                }),
                completion_event_id: if status == 1 { 0 } else { 3 },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_run_has_no_close_time_and_is_its_own_root() {
        let r = record(&key(), &state(1), 1);
        assert_eq!(r.start_time_ns, 10_000_000_005);
        assert_eq!(r.execution_time_ns, 12_000_000_005);
        assert_eq!(r.close_time_ns, None);
        assert_eq!(r.history_length, 3);
        assert_eq!(
            (r.root_workflow_id.as_str(), r.root_run_id.as_str()),
            ("wf", "run")
        );
        assert_eq!(r.parent_workflow_id, None);
    }

    #[test]
    fn a_closed_child_carries_close_time_parent_and_division() {
        let mut ms = state(2);
        let info = ms.execution_info.as_mut().expect("info");
        info.parent = Some(pb::ParentInfo {
            execution: Some(WorkflowExecution {
                workflow_id: "p".into(),
                run_id: "pr".into(),
            }),
            ..Default::default()
        });
        info.search_attributes = Some(SearchAttributes {
            indexed_fields: [(
                NAMESPACE_DIVISION.to_owned(),
                Payload {
                    data: b"\"TemporalScheduler\"".to_vec(),
                    ..Default::default()
                },
            )]
            .into(),
        });
        let r = record(&key(), &ms, 7);
        assert!(temper_workflow::close::is_closed(&ms));
        assert_eq!(r.close_time_ns, Some(20_000_000_000));
        assert_eq!(r.parent_workflow_id.as_deref(), Some("p"));
        assert_eq!(r.parent_run_id.as_deref(), Some("pr"));
        assert_eq!(r.namespace_division.as_deref(), Some("TemporalScheduler"));
        assert_eq!(r.version, 7);
    }

    #[test]
    fn keywords_are_every_short_string_value_and_list_element() {
        let json = |s: &str| Payload {
            data: s.as_bytes().to_vec(),
            ..Default::default()
        };
        let long = format!("\"{}\"", "x".repeat(MAX_KEYWORD_BYTES + 1));
        let sa = SearchAttributes {
            indexed_fields: [
                ("Customer".to_owned(), json("\"c-1\"")),
                ("Tags".to_owned(), json("[\"red\",\"blue\",\"red\",7]")),
                ("Amount".to_owned(), json("2.5")),
                ("Notes".to_owned(), json(&long)),
                ("Broken".to_owned(), json("{not json")),
            ]
            .into(),
        };
        assert_eq!(
            keywords(&sa),
            vec![
                ("Customer".to_owned(), "c-1".to_owned()),
                ("Tags".to_owned(), "blue".to_owned()),
                ("Tags".to_owned(), "red".to_owned()),
            ]
        );
        let mut ms = state(1);
        ms.execution_info.as_mut().expect("info").search_attributes = Some(sa);
        assert_eq!(record(&key(), &ms, 1).keywords.map(|k| k.len()), Some(3));
        assert_eq!(record(&key(), &state(1), 1).keywords, Some(vec![]));
    }
}
