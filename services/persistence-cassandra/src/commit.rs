//! The workflow commit as ONE single-partition conditional batch, and the decoding of a
//! batch that was not applied into the condition that failed.
//!
//! The batch, in statement order:
//! 1. `FenceShard`: `UPDATE ... SET range_id = <held> ... IF range_id = <held>` on the shard row;
//! 2. per write: `InsertExecution ... IF NOT EXISTS` (creation) or
//!    `UpdateExecution ... IF db_record_version = <expected>`;
//!    then, if the write moves the pointer, `InsertCurrent ... IF NOT EXISTS` or
//!    `UpdateCurrent ... IF current_run_id = <run>`; then `InsertTask` for each new task.
//!
//! Cassandra and ScyllaDB evaluate every condition against the partition as it was before the
//! batch and apply every statement at one timestamp, all or nothing. When `[applied]` is
//! false the result has the primary key columns and the condition columns of the rows the
//! conditions read (Cassandra: the existing ones, in clustering order, every column if any
//! statement says IF NOT EXISTS; ScyllaDB: one per conditional statement, in statement order,
//! null for a missing row). Rows are therefore matched by primary key, never by position,
//! and a row that is not in the result does not exist. The failed condition is reported in
//! the order the embedded store checks them: the shard's range id, then each write in
//! order, its version before its pointer.

use temper_persistence::{
    CommitError, ConflictKind, CurrentRunCondition, ExecutionKey, ExecutionWrite, StoreError,
};
use temper_types::{RangeId, ShardId};

use crate::executions::{RowKey, decode_current};
use crate::rows::{APPLIED, ENCODING, RowView, Rows, Values, bigint, blob, int, text};
use crate::statements::Stmt;

/// How often `delete_execution` re-reads a pointer that moves under it.
pub(crate) const MAX_DELETE_ATTEMPTS: usize = 5;

/// The same checks as every backend: a write must move its version forward.
pub(crate) fn validate(writes: &[ExecutionWrite]) -> Result<(), StoreError> {
    for (index, write) in writes.iter().enumerate() {
        if let Some(expected) = write.expected_version
            && write.new_version <= expected
        {
            return Err(StoreError::Invalid(format!(
                "write {index} of the batch: new version {} must be greater than the expected \
                 version {expected}",
                write.new_version
            )));
        }
    }
    Ok(())
}

/// Two writes of one batch on the same execution row or the same current-run pointer cannot
/// be expressed as one conditional batch: both conditions would be checked against the state
/// before the batch, and both updates would land at the same timestamp in no defined order.
/// Serially, the later write would see the earlier one's result, so it is reported as the
/// conflict it would meet; the caller retries it alone.
pub(crate) fn same_row_conflict(writes: &[ExecutionWrite]) -> Option<CommitError> {
    for (index, write) in writes.iter().enumerate() {
        let earlier = &writes[..index];
        if let Some(prior) = earlier.iter().rev().find(|w| w.key == write.key) {
            return Some(CommitError::Conflict {
                index,
                kind: ConflictKind::VersionMismatch {
                    expected: write.expected_version,
                    actual: Some(prior.new_version),
                },
            });
        }
        if write.current.is_some()
            && let Some(prior) = earlier.iter().rev().find(|w| {
                w.current.is_some()
                    && w.key.namespace_id == write.key.namespace_id
                    && w.key.workflow_id == write.key.workflow_id
            })
        {
            return Some(CommitError::Conflict {
                index,
                kind: ConflictKind::CurrentRunMismatch {
                    actual: prior.current.as_ref().map(|c| c.record.clone()),
                },
            });
        }
    }
    None
}

/// The fencing statement on a shard's row.
pub(crate) fn fence(shard: i32, held: RangeId) -> (Stmt, Values) {
    let mut values = RowKey::shard_row(shard).after([bigint(held.0)]);
    values.push(bigint(held.0));
    (Stmt::FenceShard, values)
}

/// Every statement of the commit batch, fence first (its partition key routes the batch).
pub(crate) fn statements(
    shard: i32,
    held: RangeId,
    writes: &[ExecutionWrite],
) -> Vec<(Stmt, Values)> {
    let mut out = Vec::with_capacity(
        1 + writes.len() * 2 + writes.iter().map(|w| w.tasks.len()).sum::<usize>(),
    );
    out.push(fence(shard, held));
    for write in writes {
        let row = RowKey::execution(shard, &write.key);
        match write.expected_version {
            None => out.push((
                Stmt::InsertExecution,
                row.values_then([
                    blob(&write.state),
                    text(ENCODING),
                    bigint(write.new_version),
                ]),
            )),
            Some(expected) => {
                let mut values = row.after([
                    blob(&write.state),
                    text(ENCODING),
                    bigint(write.new_version),
                ]);
                values.push(bigint(expected));
                out.push((Stmt::UpdateExecution, values));
            }
        }
        if let Some(current) = &write.current {
            let row = RowKey::current(
                shard,
                write.key.namespace_id.as_str(),
                &write.key.workflow_id,
            );
            let r = &current.record;
            let fields = [
                text(&r.run_id),
                text(&r.create_request_id),
                int(r.state),
                int(r.status),
                bigint(r.start_time_ms),
            ];
            match &current.condition {
                CurrentRunCondition::MustNotExist => {
                    out.push((Stmt::InsertCurrent, row.values_then(fields)));
                }
                CurrentRunCondition::RunIdIs(run_id) => {
                    let mut values = row.after(fields);
                    values.push(text(run_id));
                    out.push((Stmt::UpdateCurrent, values));
                }
            }
        }
        for task in &write.tasks {
            let row = RowKey::task(shard, task.category, task.key);
            out.push((
                Stmt::InsertTask,
                row.values_then([blob(&task.data), text(ENCODING)]),
            ));
        }
    }
    out
}

/// The batch that deletes an execution (and its pointer, if the pointer is at this run),
/// fenced by the shard's range id.
pub(crate) fn delete_statements(
    shard: i32,
    held: RangeId,
    key: &ExecutionKey,
    with_pointer: bool,
) -> Vec<(Stmt, Values)> {
    let mut out = vec![
        fence(shard, held),
        (
            Stmt::DeleteExecution,
            RowKey::execution(shard, key).values(),
        ),
    ];
    if with_pointer {
        let row = RowKey::current(shard, key.namespace_id.as_str(), &key.workflow_id);
        out.push((Stmt::DeleteCurrentIf, row.values_then([text(&key.run_id)])));
    }
    out
}

/// What a batch that was not applied tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Decided(CommitError),
    /// Write `index`'s pointer condition failed, and the result carries only the pointer's
    /// run id (an `IF current_run_id = ?` without any IF NOT EXISTS in the batch): the caller
    /// reads the pointer to report it whole.
    CurrentRunMismatch {
        index: usize,
    },
}

/// The error for the shard row's `IF range_id = <held>`, from the shard row of a result
/// (`None`: not in the result, so it does not exist). `Ok(None)`: the condition held.
pub(crate) fn shard_condition(
    shard_id: ShardId,
    held: RangeId,
    row: Option<&RowView<'_>>,
) -> Result<Option<StoreError>, StoreError> {
    let actual = match row {
        Some(row) => row.opt_bigint("range_id")?,
        None => None,
    };
    Ok(match actual {
        None => Some(StoreError::NotFound(format!(
            "shard {shard_id} has no row; it must be acquired (get_or_create_shard, \
             update_shard) before writing"
        ))),
        Some(actual) if actual != held.0 => Some(StoreError::OwnershipLost {
            held,
            actual: RangeId(actual),
        }),
        Some(_) => None,
    })
}

/// Which condition of the commit batch failed, from its `[applied] = false` rows.
pub(crate) fn decode_failure(
    shard_id: ShardId,
    shard: i32,
    held: RangeId,
    writes: &[ExecutionWrite],
    rows: &Rows,
) -> Result<Failure, StoreError> {
    let names = rows.column_names();
    if !names.iter().any(|n| n == "row_type") && names.iter().any(|n| n != APPLIED) {
        // Without primary key columns the rows cannot be told apart. Both Cassandra and
        // ScyllaDB include them for batches; refuse to guess if a server does not.
        return Ok(Failure::Decided(CommitError::Store(
            StoreError::ConditionFailed(format!(
                "commit to shard {shard_id} was not applied and the result names no rows; \
             reload and retry"
            )),
        )));
    }
    let find = |key: &RowKey<'_>| -> Result<Option<RowView<'_>>, StoreError> {
        for row in rows.iter() {
            if key.is(&row)? {
                return Ok(Some(row));
            }
        }
        Ok(None)
    };

    let shard_row = find(&RowKey::shard_row(shard))?;
    match shard_condition(shard_id, held, shard_row.as_ref())? {
        Some(StoreError::OwnershipLost { held, actual }) => {
            return Ok(Failure::Decided(CommitError::ShardOwnershipLost {
                held,
                actual,
            }));
        }
        Some(other) => return Ok(Failure::Decided(CommitError::Store(other))),
        None => {}
    }

    for (index, write) in writes.iter().enumerate() {
        let exec = find(&RowKey::execution(shard, &write.key))?;
        let actual = match &exec {
            Some(row) => row.opt_bigint("db_record_version")?,
            None => None,
        };
        let version_holds = match write.expected_version {
            None => exec.is_none(),
            Some(expected) => actual == Some(expected),
        };
        if !version_holds {
            return Ok(Failure::Decided(CommitError::Conflict {
                index,
                kind: ConflictKind::VersionMismatch {
                    expected: write.expected_version,
                    actual,
                },
            }));
        }
        let Some(current) = &write.current else {
            continue;
        };
        let pointer = find(&RowKey::current(
            shard,
            write.key.namespace_id.as_str(),
            &write.key.workflow_id,
        ))?;
        let stored_run = match &pointer {
            Some(row) => row.opt_text("current_run_id")?,
            None => None,
        };
        let holds = match &current.condition {
            CurrentRunCondition::MustNotExist => pointer.is_none(),
            CurrentRunCondition::RunIdIs(run_id) => stored_run == Some(run_id.as_str()),
        };
        if holds {
            continue;
        }
        let actual = match &pointer {
            None => None,
            Some(row) => match decode_current(row)? {
                Some(whole) => Some(whole),
                None => return Ok(Failure::CurrentRunMismatch { index }),
            },
        };
        return Ok(Failure::Decided(CommitError::Conflict {
            index,
            kind: ConflictKind::CurrentRunMismatch { actual },
        }));
    }
    Ok(Failure::Decided(CommitError::Store(
        StoreError::ConditionFailed(format!(
            "commit to shard {shard_id} was not applied, yet every condition seems to hold in \
         the returned rows; reload and retry"
        )),
    )))
}

/// What a linearizable read of a commit's first execution row, after the commit's outcome
/// was unknown (a timeout), proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The row holds exactly the version and state the commit wrote: the batch (all or
    /// nothing) was applied.
    Applied,
    /// The row holds the commit's new version with another state: another writer won the
    /// same condition, so this batch was not applied and never will be.
    Lost(CommitError),
    /// Nothing proven: the row may still change (the request may still be running) or the
    /// commit may have been applied and overwritten since.
    Unknown,
}

/// Decide from `observed`, read at the serial consistency (which completes a Paxos round
/// left in progress), what happened to the batch whose first write is `write`. Only
/// conclusions that cannot be undone later are drawn: versions only grow, so once the new
/// version exists its state tells who wrote it.
pub(crate) fn resolve_unknown(
    write: &ExecutionWrite,
    observed: Option<&temper_persistence::ExecutionRecord>,
) -> Resolution {
    match observed {
        Some(row) if row.db_record_version == write.new_version && row.state == write.state => {
            Resolution::Applied
        }
        Some(row) if row.db_record_version == write.new_version => {
            Resolution::Lost(CommitError::Conflict {
                index: 0,
                kind: ConflictKind::VersionMismatch {
                    expected: write.expected_version,
                    actual: Some(row.db_record_version),
                },
            })
        }
        _ => Resolution::Unknown,
    }
}

#[cfg(test)]
mod tests;
