//! The read side: which partitions a filter needs, read in the default order and merged.
//!
//! - `workflow_id = X`: the run partition of X (one partition), sorted in memory.
//! - Otherwise open runs first (unless the filter or the cursor rules them out): the
//!   [`OPEN_BUCKETS`] partitions of the scope (`d:<division>` if the filter names a namespace
//!   division, else `t:<type>` if it names a type, else `*`), sliced by start time, merged.
//! - Then closed runs, an hour bucket at a time, newest first: the directory partition says
//!   which buckets hold rows within the close-time bounds (a start-time lower bound is a
//!   close-time lower bound too); each bucket's partitions of the scope (`d:<division>`, else
//!   `t:<type>`, else `s:<status>` for each closed status named, else `*`) are sliced by close
//!   time and merged.
//! - Everything else of the filter is checked in memory, and reading stops as soon as the
//!   page is full.

use std::collections::{BTreeSet, VecDeque};
use std::ops::ControlFlow;

use futures::future::try_join_all;
use scylla::response::PagingState;
use scylla::value::CqlValue;
use temper_persistence::{StoreError, VisibilityCursor, VisibilityFilter, VisibilityRecord};
use temper_types::NamespaceId;

use super::layout::{
    self, ALL, NullableValues, OPEN_BUCKETS, RUNNING, closed_bucket, division_scope, status_scope,
    type_scope,
};
use crate::CassandraStore;
use crate::rows::{bigint, text};
use crate::statements::Stmt;

/// What one query read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisibilityReadStats {
    /// Distinct partitions read (each at least one request).
    pub partitions: u64,
    /// Requests (pages) sent.
    pub pages: u64,
    /// Rows that came back, before the in-memory part of the filter.
    pub rows: u64,
}

/// How far a run's close time may be before its start time (clocks of different nodes).
const CLOCK_MARGIN_NS: i64 = 60 * 1_000_000_000;

/// Closed statuses (Temporal's Completed .. TimedOut); anything else may be open.
fn is_closed_status(s: i32) -> bool {
    (2..=7).contains(&s)
}

/// Whether `r` comes strictly after `c` in the default order.
pub(crate) fn after(r: &VisibilityRecord, c: &VisibilityCursor) -> bool {
    let rc = r.close_time_ns.unwrap_or(i64::MAX);
    let cc = c.close_sort();
    rc < cc
        || (rc == cc
            && (r.start_time_ns < c.start_time_ns
                || (r.start_time_ns == c.start_time_ns && r.run_id > c.run_id)))
}

/// `a` before `b` in the default order.
fn before(a: &VisibilityRecord, b: &VisibilityRecord) -> bool {
    after(b, &a.cursor())
}

/// One partition read lazily, a page at a time, in clustering (= default) order.
struct Stream {
    stmt: Stmt,
    values: NullableValues,
    paging: Option<PagingState>,
    buffer: VecDeque<VisibilityRecord>,
}

impl Stream {
    fn new(stmt: Stmt, values: NullableValues) -> Self {
        Self {
            stmt,
            values,
            paging: Some(PagingState::start()),
            buffer: VecDeque::new(),
        }
    }

    /// Make sure the buffer holds a record unless the partition is done; returns what it
    /// read.
    async fn fill(
        &mut self,
        store: &CassandraStore,
        page_size: i32,
    ) -> Result<VisibilityReadStats, StoreError> {
        let mut stats = VisibilityReadStats::default();
        while self.buffer.is_empty() {
            let Some(paging) = self.paging.take() else {
                return Ok(stats);
            };
            if paging_is_start(&paging) {
                stats.partitions += 1;
            }
            let (rows, next) = store
                .visibility_page(self.stmt, &self.values, paging, page_size)
                .await?;
            stats.pages += 1;
            stats.rows += rows.len() as u64;
            let brief = matches!(
                self.stmt,
                Stmt::CountVisibilityOpen | Stmt::CountVisibilityClosed
            );
            for row in rows.iter() {
                self.buffer.push_back(if brief {
                    layout::decode_brief(&row)?
                } else {
                    layout::decode(&row)?
                });
            }
            self.paging = next;
        }
        Ok(stats)
    }
}

impl VisibilityReadStats {
    fn add(&mut self, other: VisibilityReadStats) {
        self.partitions += other.partitions;
        self.pages += other.pages;
        self.rows += other.rows;
    }
}

fn paging_is_start(p: &PagingState) -> bool {
    p.as_bytes_slice().is_none()
}

/// Read `streams` merged in the default order, calling `visit` on each record until it
/// breaks or every stream is done.
async fn merge(
    store: &CassandraStore,
    mut streams: Vec<Stream>,
    page_size: i32,
    stats: &mut VisibilityReadStats,
    visit: &mut impl FnMut(VisibilityRecord) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, StoreError> {
    // The first page of every partition at once; later pages as the merge needs them.
    for read in try_join_all(streams.iter_mut().map(|s| s.fill(store, page_size))).await? {
        stats.add(read);
    }
    loop {
        let mut best: Option<usize> = None;
        for i in 0..streams.len() {
            stats.add(streams[i].fill(store, page_size).await?);
            let Some(head) = streams[i].buffer.front() else {
                continue;
            };
            if best.is_none_or(|b| {
                let current = streams[b].buffer.front().expect("best has a head");
                before(head, current)
            }) {
                best = Some(i);
            }
        }
        let Some(b) = best else {
            return Ok(ControlFlow::Continue(()));
        };
        let record = streams[b].buffer.pop_front().expect("best has a head");
        if visit(record).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}

fn values(v: Vec<CqlValue>) -> NullableValues {
    v.into_iter().map(Some).collect()
}

/// How to read one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Read the run partition of this workflow id only.
    pub workflow_id: Option<String>,
    /// The open scope to read, if open runs can match.
    pub open_scope: Option<String>,
    pub start_min: i64,
    pub start_max: i64,
    /// The closed scopes to read, if closed runs can match.
    pub closed_scopes: Vec<String>,
    pub close_min: i64,
    pub close_max: i64,
}

impl Plan {
    pub(crate) fn new(filter: &VisibilityFilter, after: Option<&VisibilityCursor>) -> Self {
        let statuses = filter.statuses.as_deref();
        let by_close = filter.close_time_min_ns.is_some() || filter.close_time_max_ns.is_some();
        let cursor_closed = after.is_some_and(|c| c.close_time_ns.is_some());
        let open_possible = !by_close
            && !cursor_closed
            && statuses.is_none_or(|s| s.iter().any(|s| !is_closed_status(*s)));
        // A division's runs are few: its scope beats the others.
        let type_scope = filter
            .namespace_division
            .as_deref()
            .map(division_scope)
            .or_else(|| filter.workflow_type.as_deref().map(type_scope));
        let closed_statuses: Option<BTreeSet<i32>> =
            statuses.map(|s| s.iter().copied().filter(|s| *s != RUNNING).collect());
        let closed_scopes = match (&type_scope, &closed_statuses) {
            (_, Some(s)) if s.is_empty() => Vec::new(),
            (Some(t), _) => vec![t.clone()],
            (None, Some(s)) => s.iter().map(|s| status_scope(*s)).collect(),
            (None, None) => vec![ALL.to_owned()],
        };
        let start_min = filter.start_time_min_ns.unwrap_or(i64::MIN);
        let mut start_max = filter.start_time_max_ns.unwrap_or(i64::MAX);
        if let Some(c) = after.filter(|c| c.close_time_ns.is_none()) {
            start_max = start_max.min(c.start_time_ns);
        }
        // A run closes after it starts, so a start-time lower bound bounds the close time too,
        // less a margin for the clocks of the nodes that started and closed it.
        let close_min = filter
            .close_time_min_ns
            .unwrap_or(i64::MIN)
            .max(start_min.saturating_sub(CLOCK_MARGIN_NS));
        let mut close_max = filter.close_time_max_ns.unwrap_or(i64::MAX);
        if let Some(c) = after.and_then(|c| c.close_time_ns) {
            close_max = close_max.min(c);
        }
        Self {
            workflow_id: filter.workflow_id.clone(),
            open_scope: open_possible.then(|| type_scope.unwrap_or_else(|| ALL.to_owned())),
            start_min,
            start_max,
            closed_scopes,
            close_min,
            close_max,
        }
    }
}

impl CassandraStore {
    /// Visit the records of `namespace_id` passing `filter`, strictly after `after`, in the
    /// default order, until `visit` breaks. Returns what was read. `brief` records carry
    /// only what a filter looks at (for counting).
    pub(crate) async fn walk_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
        after_cursor: Option<&VisibilityCursor>,
        page_size: usize,
        brief: bool,
        mut visit: impl FnMut(VisibilityRecord) -> ControlFlow<()>,
    ) -> Result<VisibilityReadStats, StoreError> {
        let mut stats = VisibilityReadStats::default();
        let page_size = i32::try_from(page_size.clamp(16, 1000)).unwrap_or(1000);
        let plan = Plan::new(filter, after_cursor);
        let ns = text(namespace_id.as_str());
        let mut keep = |r: VisibilityRecord| {
            if filter.matches(&r) && after_cursor.is_none_or(|c| after(&r, c)) {
                visit(r)
            } else {
                ControlFlow::Continue(())
            }
        };

        if let Some(workflow_id) = &plan.workflow_id {
            let mut stream = Stream::new(
                Stmt::SelectVisibilityWorkflow,
                values(vec![ns.clone(), text(workflow_id)]),
            );
            let mut all = Vec::new();
            loop {
                stats.add(stream.fill(self, page_size).await?);
                let Some(r) = stream.buffer.pop_front() else {
                    break;
                };
                all.push(r);
            }
            all.sort_by(|a, b| {
                if before(a, b) {
                    std::cmp::Ordering::Less
                } else if before(b, a) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            });
            for r in all {
                if keep(r).is_break() {
                    break;
                }
            }
            return Ok(stats);
        }

        if let Some(scope) = &plan.open_scope
            && plan.start_min <= plan.start_max
        {
            let streams = (0..OPEN_BUCKETS)
                .map(|bucket| {
                    Stream::new(
                        if brief {
                            Stmt::CountVisibilityOpen
                        } else {
                            Stmt::SelectVisibilityOpen
                        },
                        values(vec![
                            ns.clone(),
                            text(scope),
                            bigint(bucket),
                            bigint(plan.start_min),
                            bigint(plan.start_max),
                        ]),
                    )
                })
                .collect();
            if merge(self, streams, page_size, &mut stats, &mut keep)
                .await?
                .is_break()
            {
                return Ok(stats);
            }
        }

        if plan.closed_scopes.is_empty() || plan.close_min > plan.close_max {
            return Ok(stats);
        }
        // The directory: which buckets of each scope hold rows, newest first.
        let mut buckets: Vec<(i64, String)> = Vec::new();
        for scope in &plan.closed_scopes {
            let rows = self
                .select_all(
                    "reading the visibility bucket directory",
                    Stmt::SelectVisibilityBuckets,
                    vec![
                        ns.clone(),
                        text(scope),
                        bigint(closed_bucket(plan.close_min)),
                        bigint(closed_bucket(plan.close_max)),
                    ],
                )
                .await?;
            stats.pages += 1;
            stats.rows += rows.len() as u64;
            for row in rows.iter() {
                buckets.push((row.bigint("bucket")?, scope.clone()));
            }
        }
        stats.partitions += 1;
        buckets.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut i = 0;
        while i < buckets.len() {
            let bucket = buckets[i].0;
            let mut streams = Vec::new();
            while i < buckets.len() && buckets[i].0 == bucket {
                streams.push(Stream::new(
                    if brief {
                        Stmt::CountVisibilityClosed
                    } else {
                        Stmt::SelectVisibilityClosed
                    },
                    values(vec![
                        ns.clone(),
                        text(&buckets[i].1),
                        bigint(bucket),
                        bigint(plan.close_min),
                        bigint(plan.close_max),
                    ]),
                ));
                i += 1;
            }
            if merge(self, streams, page_size, &mut stats, &mut keep)
                .await?
                .is_break()
            {
                break;
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(close: Option<i64>, start: i64, run: &str) -> VisibilityCursor {
        VisibilityCursor {
            close_time_ns: close,
            start_time_ns: start,
            run_id: run.to_owned(),
        }
    }

    #[test]
    fn recent_reads_open_then_every_closed_bucket() {
        let plan = Plan::new(&VisibilityFilter::default(), None);
        assert_eq!(plan.open_scope.as_deref(), Some("*"));
        assert_eq!(plan.closed_scopes, ["*"]);
        assert_eq!((plan.close_min, plan.close_max), (i64::MIN, i64::MAX));
    }

    #[test]
    fn status_and_type_pick_their_scopes() {
        let running = VisibilityFilter {
            statuses: Some(vec![RUNNING]),
            workflow_type: Some("T".into()),
            ..Default::default()
        };
        let plan = Plan::new(&running, None);
        assert_eq!(plan.open_scope.as_deref(), Some("t:T"));
        assert!(plan.closed_scopes.is_empty());

        let failed = VisibilityFilter {
            statuses: Some(vec![3, 4]),
            ..Default::default()
        };
        let plan = Plan::new(&failed, None);
        assert_eq!(plan.open_scope, None);
        assert_eq!(plan.closed_scopes, ["s:3", "s:4"]);

        let typed = VisibilityFilter {
            statuses: Some(vec![3]),
            workflow_type: Some("T".into()),
            ..Default::default()
        };
        assert_eq!(Plan::new(&typed, None).closed_scopes, ["t:T"]);
    }

    #[test]
    fn a_division_reads_only_its_own_scope() {
        let batches = VisibilityFilter {
            statuses: Some(vec![RUNNING]),
            workflow_type: Some("T".into()),
            namespace_division: Some("TemporalBatcher".into()),
            ..Default::default()
        };
        let plan = Plan::new(&batches, None);
        assert_eq!(plan.open_scope.as_deref(), Some("d:TemporalBatcher"));
        assert!(plan.closed_scopes.is_empty());
        let all = VisibilityFilter {
            namespace_division: Some("TemporalBatcher".into()),
            ..Default::default()
        };
        assert_eq!(Plan::new(&all, None).closed_scopes, ["d:TemporalBatcher"]);
    }

    #[test]
    fn time_bounds_and_cursors_narrow_the_slices() {
        let f = VisibilityFilter {
            start_time_min_ns: Some(100),
            ..Default::default()
        };
        let plan = Plan::new(&f, Some(&cursor(None, 500, "r")));
        assert_eq!((plan.start_min, plan.start_max), (100, 500));
        assert_eq!(
            plan.close_min,
            100 - CLOCK_MARGIN_NS,
            "closes come after starts"
        );

        let plan = Plan::new(&f, Some(&cursor(Some(900), 500, "r")));
        assert_eq!(plan.open_scope, None, "past the open runs");
        assert_eq!(
            (plan.close_min, plan.close_max),
            (100 - CLOCK_MARGIN_NS, 900)
        );

        let by_close = VisibilityFilter {
            close_time_max_ns: Some(50),
            ..Default::default()
        };
        assert_eq!(Plan::new(&by_close, None).open_scope, None);
    }

    #[test]
    fn the_default_order_puts_running_first_then_newest() {
        let r = |close: Option<i64>, start: i64, run: &str| VisibilityRecord {
            namespace_id: NamespaceId("ns".into()),
            workflow_id: "w".into(),
            run_id: run.into(),
            workflow_type: "t".into(),
            task_queue: "q".into(),
            status: 1,
            start_time_ns: start,
            execution_time_ns: start,
            close_time_ns: close,
            history_length: 0,
            history_size_bytes: 0,
            state_transition_count: 0,
            parent_workflow_id: None,
            parent_run_id: None,
            root_workflow_id: "w".into(),
            root_run_id: run.into(),
            namespace_division: None,
            memo: Vec::new(),
            search_attributes: Vec::new(),
            keywords: None,
            version: 1,
        };
        assert!(before(&r(None, 1, "a"), &r(Some(9), 5, "b")));
        assert!(before(&r(Some(9), 5, "b"), &r(Some(8), 5, "a")));
        assert!(before(&r(Some(9), 6, "b"), &r(Some(9), 5, "a")));
        assert!(before(&r(Some(9), 5, "a"), &r(Some(9), 5, "b")));
        assert!(!before(&r(Some(9), 5, "a"), &r(Some(9), 5, "a")));
        assert!(after(&r(Some(9), 5, "b"), &cursor(Some(9), 5, "a")));
        assert!(!after(&r(Some(9), 5, "a"), &cursor(Some(9), 5, "a")));
    }
}
