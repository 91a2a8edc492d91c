//! Where a visibility record lives: the scopes (indexes) it belongs to, the partitions
//! (buckets) of each, and the statements that write, move and delete its rows.
//!
//! Every write is stamped `USING TIMESTAMP <version>` so that, cell by cell, the newest
//! version wins whatever order the writes arrive in. The only key that changes during a
//! run's life is open -> closed; the open key is computed from fields that never change
//! (namespace, type, start time, run id), so closing deletes the open rows without reading
//! them, and the delete, stamped with the close's version, also shadows older open writes
//! that arrive late.

use scylla::value::CqlValue;
use temper_persistence::{StoreError, VisibilityRecord};

use crate::rows::{RowView, bigint, blob, int, text};
use crate::statements::Stmt;

/// Bind values that may be null (`None`): a newer version that clears a field must write a
/// null over the older value, not leave the cell unset.
pub(crate) type NullableValues = Vec<Option<CqlValue>>;

fn set(values: Vec<CqlValue>) -> NullableValues {
    values.into_iter().map(Some).collect()
}

/// Hash buckets of each scope's open runs.
pub(crate) const OPEN_BUCKETS: i64 = 4;

/// Width of a closed bucket: one hour, in nanoseconds.
pub(crate) const CLOSED_BUCKET_NS: i64 = 3_600 * 1_000_000_000;

/// Timestamp of retention deletes: above any record version, so nothing older comes back.
pub(crate) const RETIRED: i64 = 1 << 62;

/// The scope of every run of the namespace.
pub(crate) const ALL: &str = "*";

/// Temporal's `Running` status: the only status of an open run.
pub(crate) const RUNNING: i32 = 1;

pub(crate) fn type_scope(workflow_type: &str) -> String {
    format!("t:{workflow_type}")
}

pub(crate) fn status_scope(status: i32) -> String {
    format!("s:{status}")
}

/// The scope of the runs of one namespace division (system workflows: batches, schedulers),
/// so that finding them reads none of the namespace's other runs.
pub(crate) fn division_scope(division: &str) -> String {
    format!("d:{division}")
}

/// FNV-1a: stable across processes and versions (the bucket of a run must never change).
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The open bucket of a run.
pub(crate) fn open_bucket(run_id: &str) -> i64 {
    // OPEN_BUCKETS is small and positive: the remainder fits.
    (stable_hash(run_id) % OPEN_BUCKETS.unsigned_abs()) as i64
}

/// The closed bucket holding close time `t` (the start of its hour).
pub(crate) fn closed_bucket(t: i64) -> i64 {
    t.div_euclid(CLOSED_BUCKET_NS)
        .saturating_mul(CLOSED_BUCKET_NS)
}

fn open_scopes(r: &VisibilityRecord) -> Vec<String> {
    let mut scopes = vec![ALL.to_owned(), type_scope(&r.workflow_type)];
    scopes.extend(r.namespace_division.as_deref().map(division_scope));
    scopes
}

pub(crate) fn closed_scopes(r: &VisibilityRecord) -> Vec<String> {
    let mut scopes = vec![
        ALL.to_owned(),
        type_scope(&r.workflow_type),
        status_scope(r.status),
    ];
    scopes.extend(r.namespace_division.as_deref().map(division_scope));
    scopes
}

fn opt_text(v: Option<&String>) -> Option<CqlValue> {
    v.map(|s| text(s))
}

/// The record's columns after `namespace_id`, in `vis_columns!` order.
fn record_values(r: &VisibilityRecord) -> NullableValues {
    vec![
        Some(text(&r.workflow_id)),
        Some(text(&r.run_id)),
        Some(text(&r.workflow_type)),
        Some(text(&r.task_queue)),
        Some(int(r.status)),
        Some(bigint(r.start_time_ns)),
        Some(bigint(r.execution_time_ns)),
        r.close_time_ns.map(bigint),
        Some(bigint(r.history_length)),
        Some(bigint(r.history_size_bytes)),
        Some(bigint(r.state_transition_count)),
        opt_text(r.parent_workflow_id.as_ref()),
        opt_text(r.parent_run_id.as_ref()),
        Some(text(&r.root_workflow_id)),
        Some(text(&r.root_run_id)),
        opt_text(r.namespace_division.as_ref()),
        Some(blob(&r.memo)),
        Some(blob(&r.search_attributes)),
        r.keywords
            .as_deref()
            .map(|k| blob(&temper_persistence::encode_keywords(k))),
        Some(bigint(r.version)),
    ]
}

pub(crate) fn upsert(
    stmt: Stmt,
    r: &VisibilityRecord,
    partition: &[CqlValue],
) -> (Stmt, NullableValues) {
    let mut values = set(partition.to_vec());
    values.extend(record_values(r));
    values.push(Some(bigint(r.version)));
    (stmt, values)
}

fn delete_open(r: &VisibilityRecord, scope: &str, timestamp: i64) -> (Stmt, NullableValues) {
    (
        Stmt::DeleteVisibilityOpen,
        set(vec![
            bigint(timestamp),
            text(r.namespace_id.as_str()),
            text(scope),
            bigint(open_bucket(&r.run_id)),
            bigint(r.start_time_ns),
            text(&r.run_id),
        ]),
    )
}

/// Every row write of one record: its run row, then its open rows, or its closed rows and
/// the deletes of its open rows.
pub(crate) fn write_statements(r: &VisibilityRecord) -> Vec<(Stmt, NullableValues)> {
    let ns = text(r.namespace_id.as_str());
    let mut out = vec![upsert(
        Stmt::UpsertVisibilityRun,
        r,
        std::slice::from_ref(&ns),
    )];
    match r.close_time_ns {
        None => {
            let bucket = bigint(open_bucket(&r.run_id));
            for scope in open_scopes(r) {
                out.push(upsert(
                    Stmt::UpsertVisibilityOpen,
                    r,
                    &[ns.clone(), text(&scope), bucket.clone()],
                ));
            }
        }
        Some(close) => {
            let bucket = bigint(closed_bucket(close));
            for scope in closed_scopes(r) {
                out.push(upsert(
                    Stmt::UpsertVisibilityClosed,
                    r,
                    &[ns.clone(), text(&scope), bucket.clone()],
                ));
            }
            for scope in open_scopes(r) {
                out.push(delete_open(r, &scope, r.version));
            }
        }
    }
    out
}

/// The directory entries a closed record needs: `(scope, bucket)`.
pub(crate) fn directory_entries(r: &VisibilityRecord) -> Vec<(String, i64)> {
    match r.close_time_ns {
        None => Vec::new(),
        Some(close) => closed_scopes(r)
            .into_iter()
            .map(|scope| (scope, closed_bucket(close)))
            .collect(),
    }
}

/// The deletes that remove every row of `r` for good (retention).
pub(crate) fn delete_statements(r: &VisibilityRecord) -> Vec<(Stmt, NullableValues)> {
    let ns = text(r.namespace_id.as_str());
    let mut out = vec![(
        Stmt::DeleteVisibilityRun,
        set(vec![
            bigint(RETIRED),
            ns.clone(),
            text(&r.workflow_id),
            text(&r.run_id),
        ]),
    )];
    for scope in open_scopes(r) {
        out.push(delete_open(r, &scope, RETIRED));
    }
    if let Some(close) = r.close_time_ns {
        for scope in closed_scopes(r) {
            out.push((
                Stmt::DeleteVisibilityClosed,
                set(vec![
                    bigint(RETIRED),
                    ns.clone(),
                    text(&scope),
                    bigint(closed_bucket(close)),
                    bigint(close),
                    bigint(r.start_time_ns),
                    text(&r.run_id),
                ]),
            ));
        }
    }
    out
}

/// The fields a filter looks at, from a count's row (the others are left empty).
pub(crate) fn decode_brief(row: &RowView<'_>) -> Result<VisibilityRecord, StoreError> {
    let start = row.bigint("start_time_ns")?;
    Ok(VisibilityRecord {
        namespace_id: temper_types::NamespaceId(row.text("namespace_id")?.to_owned()),
        workflow_id: row.text("workflow_id")?.to_owned(),
        run_id: row.text("run_id")?.to_owned(),
        workflow_type: row.text("workflow_type")?.to_owned(),
        task_queue: String::new(),
        status: row.int("status")?,
        start_time_ns: start,
        execution_time_ns: start,
        close_time_ns: row.opt_bigint("close_time_ns")?,
        history_length: 0,
        history_size_bytes: 0,
        state_transition_count: 0,
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: String::new(),
        root_run_id: String::new(),
        namespace_division: row.opt_text("namespace_division")?.map(str::to_owned),
        memo: Vec::new(),
        search_attributes: Vec::new(),
        keywords: None,
        version: 0,
    })
}

/// A record from a row of any visibility table.
pub(crate) fn decode(row: &RowView<'_>) -> Result<VisibilityRecord, StoreError> {
    let owned = |v: Option<&str>| v.map(str::to_owned);
    Ok(VisibilityRecord {
        namespace_id: temper_types::NamespaceId(row.text("namespace_id")?.to_owned()),
        workflow_id: row.text("workflow_id")?.to_owned(),
        run_id: row.text("run_id")?.to_owned(),
        workflow_type: row.text("workflow_type")?.to_owned(),
        task_queue: row.text("task_queue")?.to_owned(),
        status: row.int("status")?,
        start_time_ns: row.bigint("start_time_ns")?,
        execution_time_ns: row.bigint("execution_time_ns")?,
        close_time_ns: row.opt_bigint("close_time_ns")?,
        history_length: row.bigint("history_length")?,
        history_size_bytes: row.bigint("history_size_bytes")?,
        state_transition_count: row.bigint("state_transition_count")?,
        parent_workflow_id: owned(row.opt_text("parent_workflow_id")?),
        parent_run_id: owned(row.opt_text("parent_run_id")?),
        root_workflow_id: row.text("root_workflow_id")?.to_owned(),
        root_run_id: row.text("root_run_id")?.to_owned(),
        namespace_division: owned(row.opt_text("namespace_division")?),
        memo: row
            .opt_blob("memo")?
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        search_attributes: row
            .opt_blob("search_attributes")?
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        keywords: match row.opt_blob("keywords")? {
            None => None,
            Some(b) => Some(temper_persistence::decode_keywords(b).ok_or_else(|| {
                StoreError::Invalid("a visibility row's keywords do not decode".to_owned())
            })?),
        },
        version: row.bigint("version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_bounded() {
        assert_eq!(open_bucket("run"), open_bucket("run"));
        for i in 0..100 {
            let b = open_bucket(&format!("run-{i}"));
            assert!((0..OPEN_BUCKETS).contains(&b));
        }
        assert_eq!(closed_bucket(0), 0);
        assert_eq!(closed_bucket(CLOSED_BUCKET_NS - 1), 0);
        assert_eq!(closed_bucket(CLOSED_BUCKET_NS), CLOSED_BUCKET_NS);
        assert_eq!(closed_bucket(-1), -CLOSED_BUCKET_NS);
        assert_eq!(closed_bucket(i64::MIN), i64::MIN);
        assert_eq!(closed_bucket(i64::MAX) % CLOSED_BUCKET_NS, 0);
    }
}
