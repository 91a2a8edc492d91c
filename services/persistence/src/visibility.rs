//! Visibility records: what List, Count and Scan see of each run, written in the same commit
//! as the run's mutable state (so a List after the RPC returned sees it), and the keyset
//! cursor of the default order.
//!
//! The default order is Temporal's: running runs first, then by close time (newest first),
//! then by start time (newest first), then by run id ascending. [`VisibilityCursor`] is a
//! position in that order; a store lists the records strictly after it.

use temper_types::NamespaceId;

use crate::ExecutionKey;

/// One run as List shows it. Times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityRecord {
    pub namespace_id: NamespaceId,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    /// Temporal `WorkflowExecutionStatus` value.
    pub status: i32,
    pub start_time_ns: i64,
    pub execution_time_ns: i64,
    /// `None` while the run is open.
    pub close_time_ns: Option<i64>,
    pub history_length: i64,
    pub history_size_bytes: i64,
    pub state_transition_count: i64,
    pub parent_workflow_id: Option<String>,
    pub parent_run_id: Option<String>,
    pub root_workflow_id: String,
    pub root_run_id: String,
    /// The run's `TemporalNamespaceDivision` search attribute, kept beside the encoded
    /// attributes because every query filters on it (Temporal hides divided runs).
    pub namespace_division: Option<String>,
    /// Encoded `temporal.api.common.v1.Memo`.
    pub memo: Vec<u8>,
    /// Encoded `temporal.api.common.v1.SearchAttributes` (the custom and settable system
    /// attributes the run carries).
    pub search_attributes: Vec<u8>,
    /// The string values of the run's search attributes, as `(attribute, value)`: each
    /// string value and each string of a list, which a store may index so that equality on
    /// Keyword and KeywordList attributes needs no scan. Built from `search_attributes` by
    /// the history service; `None` for records written before stores indexed them.
    pub keywords: Option<Vec<(String, String)>>,
    /// Increases with every write of the run; a write with a version not above the stored
    /// one changes nothing, so an older record never replaces a newer one.
    pub version: i64,
}

impl VisibilityRecord {
    pub fn key(&self) -> ExecutionKey {
        ExecutionKey {
            namespace_id: self.namespace_id.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
        }
    }

    /// This record's place in the default order.
    pub fn cursor(&self) -> VisibilityCursor {
        VisibilityCursor {
            close_time_ns: self.close_time_ns,
            start_time_ns: self.start_time_ns,
            run_id: self.run_id.clone(),
        }
    }
}

/// A position in the default order: `(close time or "running", start time, run id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityCursor {
    pub close_time_ns: Option<i64>,
    pub start_time_ns: i64,
    pub run_id: String,
}

impl VisibilityCursor {
    /// The close time as the stores sort it: running runs sort as closing at the end of time.
    pub fn close_sort(&self) -> i64 {
        close_sort(self.close_time_ns)
    }
}

/// The sort value of a close time: `i64::MAX` for a running run.
pub fn close_sort(close_time_ns: Option<i64>) -> i64 {
    close_time_ns.unwrap_or(i64::MAX)
}

/// Conditions a store applies itself, all of which must hold (an empty filter is every run
/// of the namespace). Bounds are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisibilityFilter {
    /// The status is one of these.
    pub statuses: Option<Vec<i32>>,
    pub workflow_type: Option<String>,
    pub workflow_id: Option<String>,
    pub start_time_min_ns: Option<i64>,
    pub start_time_max_ns: Option<i64>,
    /// A bound on the close time leaves out running runs.
    pub close_time_min_ns: Option<i64>,
    pub close_time_max_ns: Option<i64>,
    /// Only runs without a `TemporalNamespaceDivision`.
    pub no_namespace_division: bool,
    /// Only runs of this `TemporalNamespaceDivision` (system workflows such as batches and
    /// schedulers): a few runs, which stores keep apart so that finding them reads no others.
    pub namespace_division: Option<String>,
    /// For each `(attribute, values)`: the run has a keyword of that attribute equal to one
    /// of the values. Only given to stores whose [`crate::VisibilityStore::filters_keywords`]
    /// is true. A record whose `keywords` is `None` (written before they were indexed)
    /// passes: the caller checks every record against the whole query anyway.
    pub keywords: Vec<(String, Vec<String>)>,
}

impl VisibilityFilter {
    /// Whether `record` passes, as a store must decide it.
    pub fn matches(&self, r: &VisibilityRecord) -> bool {
        let within = |v: i64, min: Option<i64>, max: Option<i64>| {
            min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)
        };
        self.statuses.as_ref().is_none_or(|s| s.contains(&r.status))
            && self
                .workflow_type
                .as_ref()
                .is_none_or(|t| *t == r.workflow_type)
            && self
                .workflow_id
                .as_ref()
                .is_none_or(|w| *w == r.workflow_id)
            && within(
                r.start_time_ns,
                self.start_time_min_ns,
                self.start_time_max_ns,
            )
            && match r.close_time_ns {
                Some(c) => within(c, self.close_time_min_ns, self.close_time_max_ns),
                None => self.close_time_min_ns.is_none() && self.close_time_max_ns.is_none(),
            }
            && (!self.no_namespace_division || r.namespace_division.is_none())
            && self
                .namespace_division
                .as_ref()
                .is_none_or(|d| r.namespace_division.as_ref() == Some(d))
            && self.keywords.iter().all(|(name, values)| {
                r.keywords.as_ref().is_none_or(|k| {
                    k.iter()
                        .any(|(n, v)| n == name && values.iter().any(|x| x == v))
                })
            })
    }
}

/// How many runs of each status matched, ordered by status.
pub type StatusCounts = Vec<(i32, u64)>;

/// `keywords` as one byte string (each name and value as a little-endian `u32` length and
/// its UTF-8 bytes), for stores that keep them in a column.
pub fn encode_keywords(keywords: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in keywords.iter().flat_map(|(n, v)| [n, v]) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&s.as_bytes()[..len as usize]);
    }
    out
}

/// The inverse of [`encode_keywords`]; `None` for bytes it did not write.
pub fn decode_keywords(mut bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let mut next = || -> Option<String> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let (s, rest) = (rest.get(..len)?, rest.get(len..)?);
        bytes = rest;
        String::from_utf8(s.to_vec()).ok()
    };
    let mut out = Vec::new();
    loop {
        let Some(name) = next() else {
            return bytes.is_empty().then_some(out);
        };
        out.push((name, next()?));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip() {
        let k = vec![
            ("A".to_owned(), "x".to_owned()),
            ("B".to_owned(), String::new()),
            ("List".to_owned(), "é and \u{1f600}".to_owned()),
        ];
        assert_eq!(decode_keywords(&encode_keywords(&k)), Some(k));
        assert_eq!(decode_keywords(&[]), Some(vec![]));
    }

    #[test]
    fn foreign_keyword_bytes_are_refused() {
        let bytes = encode_keywords(&[("A".to_owned(), "x".to_owned())]);
        assert_eq!(decode_keywords(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_keywords(&bytes[..5]), None);
        assert_eq!(decode_keywords(&[1, 0, 0, 0, 0xff, 0, 0, 0, 0]), None);
    }
}
