//! The commit batch's statements, and the decoding of `[applied] = false` results shaped
//! the way Cassandra and ScyllaDB return them.

use scylla::value::CqlValue;
use temper_persistence::{
    CurrentExecution, CurrentRunWrite, TaskCategory, TaskKey, TaskRecord, run_state,
};
use temper_types::NamespaceId;

use super::*;
use crate::rows::testing::rows;

const SHARD: i32 = 1;
const HELD: RangeId = RangeId(4);

fn key(wf: &str, run: &str) -> ExecutionKey {
    ExecutionKey {
        namespace_id: NamespaceId("ns".into()),
        workflow_id: wf.into(),
        run_id: run.into(),
    }
}

fn pointer(run: &str) -> CurrentExecution {
    CurrentExecution {
        run_id: run.into(),
        create_request_id: format!("req-{run}"),
        state: run_state::RUNNING,
        status: 1,
        start_time_ms: 1_700_000_000_000,
    }
}

fn create(wf: &str, run: &str) -> ExecutionWrite {
    ExecutionWrite {
        visibility: None,
        key: key(wf, run),
        expected_version: None,
        new_version: 1,
        state: format!("{wf}/{run}").into_bytes(),
        current: Some(CurrentRunWrite {
            condition: CurrentRunCondition::MustNotExist,
            record: pointer(run),
        }),
        tasks: vec![TaskRecord {
            category: TaskCategory::Transfer,
            key: TaskKey::immediate(10),
            data: b"transfer".to_vec(),
        }],
    }
}

fn update(wf: &str, run: &str, from: i64) -> ExecutionWrite {
    ExecutionWrite {
        visibility: None,
        key: key(wf, run),
        expected_version: Some(from),
        new_version: from + 1,
        state: b"next".to_vec(),
        current: None,
        tasks: vec![],
    }
}

fn with_pointer(
    mut w: ExecutionWrite,
    condition: CurrentRunCondition,
    run: &str,
) -> ExecutionWrite {
    w.current = Some(CurrentRunWrite {
        condition,
        record: pointer(run),
    });
    w
}

const PK: [&str; 7] = [
    "shard_id",
    "row_type",
    "namespace_id",
    "workflow_id",
    "run_id",
    "fire_time_ms",
    "task_id",
];

/// `[applied]`, the primary key, then the condition columns: Cassandra's columns for a
/// batch whose conditions are all `IF col = ?`.
const CONDITION_COLUMNS: [&str; 11] = [
    APPLIED,
    "shard_id",
    "row_type",
    "namespace_id",
    "workflow_id",
    "run_id",
    "fire_time_ms",
    "task_id",
    "range_id",
    "db_record_version",
    "current_run_id",
];

/// Every column of the table (Cassandra's answer once any statement says IF NOT EXISTS,
/// and ScyllaDB's for such a batch).
const ALL_COLUMNS: [&str; 21] = [
    APPLIED,
    "shard_id",
    "row_type",
    "namespace_id",
    "workflow_id",
    "run_id",
    "fire_time_ms",
    "task_id",
    "create_request_id",
    "current_run_id",
    "data",
    "data_encoding",
    "db_record_version",
    "range_id",
    "run_state",
    "run_status",
    "shard_info",
    "shard_info_encoding",
    "start_time_ms",
    "state",
    "state_encoding",
];

fn applied(v: bool) -> (&'static str, CqlValue) {
    (APPLIED, CqlValue::Boolean(v))
}

/// The primary key columns of a row, plus `more`.
fn row(key: RowKey<'_>, more: Vec<(&'static str, CqlValue)>) -> Vec<(&'static str, CqlValue)> {
    let mut out = vec![applied(false)];
    out.extend(PK.iter().copied().zip(key.values()));
    out.extend(more);
    out
}

fn shard_row(range: i64) -> Vec<(&'static str, CqlValue)> {
    row(RowKey::shard_row(SHARD), vec![("range_id", bigint(range))])
}

fn exec_row(k: &ExecutionKey, version: i64) -> Vec<(&'static str, CqlValue)> {
    row(
        RowKey::execution(SHARD, k),
        vec![("db_record_version", bigint(version))],
    )
}

fn whole_pointer_row(wf: &str, p: &CurrentExecution) -> Vec<(&'static str, CqlValue)> {
    row(
        RowKey::current(SHARD, "ns", wf),
        vec![
            ("current_run_id", text(&p.run_id)),
            ("create_request_id", text(&p.create_request_id)),
            ("run_state", int(p.state)),
            ("run_status", int(p.status)),
            ("start_time_ms", bigint(p.start_time_ms)),
        ],
    )
}

fn run_id_only_pointer_row(wf: &str, run: &str) -> Vec<(&'static str, CqlValue)> {
    row(
        RowKey::current(SHARD, "ns", wf),
        vec![("current_run_id", text(run))],
    )
}

/// A ScyllaDB row for a conditional statement whose row does not exist: all null.
fn missing_row() -> Vec<(&'static str, CqlValue)> {
    vec![applied(false)]
}

fn result(names: &[&str], rs: &[Vec<(&'static str, CqlValue)>]) -> Rows {
    let refs: Vec<&[(&str, CqlValue)]> = rs.iter().map(Vec::as_slice).collect();
    rows(names, &refs)
}

fn decode(writes: &[ExecutionWrite], rows: &Rows) -> Failure {
    decode_failure(ShardId(SHARD as u32), SHARD, HELD, writes, rows).expect("decodable")
}

fn conflict(index: usize, kind: ConflictKind) -> Failure {
    Failure::Decided(CommitError::Conflict { index, kind })
}

#[test]
fn the_batch_is_fence_then_each_write_with_its_pointer_and_tasks() {
    let writes = [
        create("wf-a", "run-a"),
        with_pointer(
            update("wf-b", "run-b", 3),
            CurrentRunCondition::RunIdIs("run-b".into()),
            "run-b",
        ),
    ];
    let stmts = statements(SHARD, HELD, &writes);
    let kinds: Vec<Stmt> = stmts.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        kinds,
        vec![
            Stmt::FenceShard,
            Stmt::InsertExecution,
            Stmt::InsertCurrent,
            Stmt::InsertTask,
            Stmt::UpdateExecution,
            Stmt::UpdateCurrent,
        ]
    );
    // SET range_id = held ... IF range_id = held: a no-op write that fences the batch.
    let fence = &stmts[0].1;
    assert_eq!(fence.first(), Some(&bigint(4)));
    assert_eq!(fence.last(), Some(&bigint(4)));
    assert_eq!(fence[1..8], RowKey::shard_row(SHARD).values()[..]);
    // The creation carries its state, the encoding tag and version 1.
    let insert = &stmts[1].1;
    assert_eq!(
        insert[7..],
        [blob(b"wf-a/run-a"), text(ENCODING), bigint(1)]
    );
    // The pointer of a new workflow id.
    let current = &stmts[2].1;
    assert_eq!(
        current[..7],
        RowKey::current(SHARD, "ns", "wf-a").values()[..]
    );
    assert_eq!(current[7], text("run-a"));
    // The task goes to the transfer rows, keyed by its id.
    let task = &stmts[3].1;
    assert_eq!(task[1], int(3));
    assert_eq!(task[6], bigint(10));
    assert_eq!(task[7..], [blob(b"transfer"), text(ENCODING)]);
    // The update: SET state, encoding, new version WHERE key IF version = expected.
    let upd = &stmts[4].1;
    assert_eq!(upd[..3], [blob(b"next"), text(ENCODING), bigint(4)]);
    assert_eq!(upd.last(), Some(&bigint(3)));
    // The pointer move is conditional on the run it expects.
    let moved = &stmts[5].1;
    assert_eq!(moved.last(), Some(&text("run-b")));
}

#[test]
fn stale_and_missing_shard_rows() {
    let writes = [create("wf", "run-1")];
    // Cassandra: the existing shard row, with the condition column.
    let rs = result(&CONDITION_COLUMNS, &[shard_row(5)]);
    assert_eq!(
        decode(&writes, &rs),
        Failure::Decided(CommitError::ShardOwnershipLost {
            held: HELD,
            actual: RangeId(5)
        })
    );
    // An expected range ahead of the store fails the same way.
    let rs = result(&ALL_COLUMNS, &[shard_row(3)]);
    assert_eq!(
        decode(&writes, &rs),
        Failure::Decided(CommitError::ShardOwnershipLost {
            held: HELD,
            actual: RangeId(3)
        })
    );
    // No row at all: Cassandra returns [applied] alone.
    let rs = result(&[APPLIED], &[vec![applied(false)]]);
    assert!(matches!(
        decode(&writes, &rs),
        Failure::Decided(CommitError::Store(StoreError::NotFound(_)))
    ));
    // ScyllaDB: a null row per conditional statement.
    let rs = result(&ALL_COLUMNS, &[missing_row(), missing_row(), missing_row()]);
    assert!(matches!(
        decode(&writes, &rs),
        Failure::Decided(CommitError::Store(StoreError::NotFound(_)))
    ));
}

#[test]
fn version_conflicts_name_the_write_and_both_versions() {
    let k = key("wf", "run-1");
    // Wrong expected version.
    let writes = [update("wf", "run-1", 5)];
    let rs = result(&CONDITION_COLUMNS, &[shard_row(4), exec_row(&k, 1)]);
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            0,
            ConflictKind::VersionMismatch {
                expected: Some(5),
                actual: Some(1)
            }
        )
    );
    // Updating a row that does not exist.
    let writes = [update("wf", "no-such-run", 1)];
    let rs = result(&CONDITION_COLUMNS, &[shard_row(4)]);
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            0,
            ConflictKind::VersionMismatch {
                expected: Some(1),
                actual: None
            }
        )
    );
    // Creating a row that exists (IF NOT EXISTS: every column comes back).
    let writes = [create("wf", "run-1")];
    let rs = result(
        &ALL_COLUMNS,
        &[
            shard_row(4),
            exec_row(&k, 1),
            whole_pointer_row("wf", &pointer("run-1")),
        ],
    );
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            0,
            ConflictKind::VersionMismatch {
                expected: None,
                actual: Some(1)
            }
        ),
        "the version is checked before the pointer"
    );
}

#[test]
fn the_first_failing_write_of_a_group_commit_is_reported() {
    let a = key("wf-a", "run-a");
    let b = key("wf-b", "run-b");
    let writes = [
        update("wf-a", "run-a", 1),
        update("wf-b", "run-b", 3),
        create("wf-c", "run-c"),
    ];
    // Cassandra returns rows in clustering order (b before... whatever): order is irrelevant.
    let rs = result(
        &ALL_COLUMNS,
        &[exec_row(&b, 1), shard_row(4), exec_row(&a, 1)],
    );
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            1,
            ConflictKind::VersionMismatch {
                expected: Some(3),
                actual: Some(1)
            }
        )
    );
    // ScyllaDB: one row per conditional statement in statement order; wf-c's execution and
    // pointer rows do not exist and come back null.
    let rs = result(
        &ALL_COLUMNS,
        &[
            shard_row(4),
            exec_row(&a, 1),
            exec_row(&b, 1),
            missing_row(),
            missing_row(),
        ],
    );
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            1,
            ConflictKind::VersionMismatch {
                expected: Some(3),
                actual: Some(1)
            }
        )
    );
}

#[test]
fn pointer_conflicts_carry_the_stored_pointer() {
    // A new run while one is current: IF NOT EXISTS returned the whole pointer row.
    let writes = [create("wf", "run-2")];
    let rs = result(
        &ALL_COLUMNS,
        &[shard_row(4), whole_pointer_row("wf", &pointer("run-1"))],
    );
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            0,
            ConflictKind::CurrentRunMismatch {
                actual: Some(pointer("run-1"))
            }
        )
    );

    // Replacing a run that is no longer current; only `IF col = ?` conditions in the batch,
    // so only the run id comes back: the store must read the pointer.
    let mut replace = update("wf", "run-2", 1);
    replace = with_pointer(
        replace,
        CurrentRunCondition::RunIdIs("run-1".into()),
        "run-2",
    );
    let k = key("wf", "run-2");
    let rs = result(
        &CONDITION_COLUMNS,
        &[
            shard_row(4),
            exec_row(&k, 1),
            run_id_only_pointer_row("wf", "run-3"),
        ],
    );
    assert_eq!(
        decode(std::slice::from_ref(&replace), &rs),
        Failure::CurrentRunMismatch { index: 0 }
    );

    // RunIdIs with no pointer at all.
    let orphan = with_pointer(
        create("wf", "run-0"),
        CurrentRunCondition::RunIdIs("run-x".into()),
        "run-0",
    );
    let rs = result(&ALL_COLUMNS, &[shard_row(4)]);
    assert_eq!(
        decode(&[orphan], &rs),
        conflict(0, ConflictKind::CurrentRunMismatch { actual: None })
    );

    // A pointer conflict later in the batch.
    let a = key("wf-a", "run-a");
    let writes = [update("wf-a", "run-a", 1), create("wf-b", "run-b2")];
    let rs = result(
        &ALL_COLUMNS,
        &[
            shard_row(4),
            exec_row(&a, 1),
            missing_row(),
            whole_pointer_row("wf-b", &pointer("run-b")),
        ],
    );
    assert_eq!(
        decode(&writes, &rs),
        conflict(
            1,
            ConflictKind::CurrentRunMismatch {
                actual: Some(pointer("run-b"))
            }
        )
    );
}

#[test]
fn undecidable_results_are_condition_failures_not_guesses() {
    let k = key("wf", "run-1");
    let writes = [update("wf", "run-1", 1)];
    // Every condition holds in the rows, yet the batch was not applied.
    let rs = result(&CONDITION_COLUMNS, &[shard_row(4), exec_row(&k, 1)]);
    assert!(matches!(
        decode(&writes, &rs),
        Failure::Decided(CommitError::Store(StoreError::ConditionFailed(_)))
    ));
    // Rows without primary key columns cannot be matched.
    let rs = result(
        &[APPLIED, "range_id", "db_record_version"],
        &[vec![applied(false), ("range_id", bigint(9))]],
    );
    assert!(matches!(
        decode(&writes, &rs),
        Failure::Decided(CommitError::Store(StoreError::ConditionFailed(_)))
    ));
    // A value of the wrong type is corrupt data, not a conflict.
    let rs = result(
        &CONDITION_COLUMNS,
        &[row(RowKey::shard_row(SHARD), vec![("range_id", int(4))])],
    );
    assert!(decode_failure(ShardId(1), SHARD, HELD, &writes, &rs).is_err());
}

#[test]
fn two_writes_of_one_row_in_a_batch_conflict_like_serial_writes() {
    assert_eq!(
        same_row_conflict(&[create("a", "1"), create("b", "2")]),
        None
    );
    assert_eq!(
        same_row_conflict(&[update("a", "1", 1), update("a", "1", 1)]),
        Some(CommitError::Conflict {
            index: 1,
            kind: ConflictKind::VersionMismatch {
                expected: Some(1),
                actual: Some(2)
            }
        })
    );
    // Two new runs of one workflow id: the second meets the first's pointer.
    assert_eq!(
        same_row_conflict(&[create("a", "1"), create("a", "2")]),
        Some(CommitError::Conflict {
            index: 1,
            kind: ConflictKind::CurrentRunMismatch {
                actual: Some(pointer("1"))
            }
        })
    );
    // A run closing without touching the pointer next to its successor moving it is fine
    // (continue-as-new).
    let mut successor = create("a", "2");
    successor.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("1".into()),
        record: pointer("2"),
    });
    assert_eq!(same_row_conflict(&[update("a", "1", 3), successor]), None);
}

#[test]
fn versions_must_move_forward() {
    let mut w = update("a", "1", 3);
    w.new_version = 3;
    assert!(matches!(validate(&[w]), Err(StoreError::Invalid(_))));
    assert!(validate(&[update("a", "1", 3), create("b", "1")]).is_ok());
}

#[test]
fn deleting_an_execution_is_fenced_and_clears_only_its_own_pointer() {
    let k = key("wf", "run-1");
    let stmts = delete_statements(SHARD, HELD, &k, true);
    let kinds: Vec<Stmt> = stmts.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        kinds,
        vec![
            Stmt::FenceShard,
            Stmt::DeleteExecution,
            Stmt::DeleteCurrentIf
        ]
    );
    assert_eq!(stmts[2].1.last(), Some(&text("run-1")));
    assert_eq!(delete_statements(SHARD, HELD, &k, false).len(), 2);
    // The shard condition alone decides a failed delete.
    let rs = result(&CONDITION_COLUMNS, &[shard_row(6)]);
    let shard = rs.first();
    assert_eq!(
        shard_condition(ShardId(1), HELD, shard.as_ref()).expect("decodable"),
        Some(StoreError::OwnershipLost {
            held: HELD,
            actual: RangeId(6)
        })
    );
    assert_eq!(
        shard_condition(ShardId(1), RangeId(6), shard.as_ref()).expect("decodable"),
        None
    );
}

#[test]
fn a_timed_out_commit_is_resolved_only_when_the_row_proves_it() {
    use temper_persistence::ExecutionRecord;
    let write = update("wf", "run-1", 1);
    let ours = ExecutionRecord {
        state: write.state.clone(),
        db_record_version: 2,
    };
    assert_eq!(resolve_unknown(&write, Some(&ours)), Resolution::Applied);
    let theirs = ExecutionRecord {
        state: b"someone else".to_vec(),
        db_record_version: 2,
    };
    assert_eq!(
        resolve_unknown(&write, Some(&theirs)),
        Resolution::Lost(CommitError::Conflict {
            index: 0,
            kind: ConflictKind::VersionMismatch {
                expected: Some(1),
                actual: Some(2)
            }
        })
    );
    // Still at the expected version: the request may yet be applied.
    let before = ExecutionRecord {
        state: b"old".to_vec(),
        db_record_version: 1,
    };
    assert_eq!(resolve_unknown(&write, Some(&before)), Resolution::Unknown);
    // Past the new version: ours may have been applied and overwritten since.
    let later = ExecutionRecord {
        state: write.state.clone(),
        db_record_version: 3,
    };
    assert_eq!(resolve_unknown(&write, Some(&later)), Resolution::Unknown);
    // A creation whose row is still missing may yet be applied.
    assert_eq!(
        resolve_unknown(&create("wf", "run-1"), None),
        Resolution::Unknown
    );
    // A creation that someone else made.
    let created = ExecutionRecord {
        state: b"other".to_vec(),
        db_record_version: 1,
    };
    assert!(matches!(
        resolve_unknown(&create("wf", "run-1"), Some(&created)),
        Resolution::Lost(_)
    ));
}
