//! Schema migrations: numbered scripts from `schema/sqlite/`, applied in order inside one
//! transaction and recorded in `schema_version`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use temper_persistence::StoreError;

use crate::pool::OpenError;

/// `(version, script)`, ascending. Append new scripts; never edit a released one.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../schema/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../../../schema/sqlite/0002_membership.sql"),
    ),
    (
        3,
        include_str!("../../../schema/sqlite/0003_visibility.sql"),
    ),
    (
        4,
        include_str!("../../../schema/sqlite/0004_visibility_indexes.sql"),
    ),
    (
        5,
        include_str!("../../../schema/sqlite/0005_task_priority.sql"),
    ),
    (
        6,
        include_str!("../../../schema/sqlite/0006_nexus_endpoints.sql"),
    ),
];

/// The newest schema version this binary knows.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Bring the database to [`LATEST_SCHEMA_VERSION`]. The immediate transaction makes
/// concurrent openers (other processes) wait, and the second one finds nothing to do; a
/// lock it could not wait out is [`OpenError::Locked`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = current_version(&tx)?;
    if current > LATEST_SCHEMA_VERSION {
        return Err(OpenError::Failed(StoreError::Invalid(format!(
            "the SQLite database has schema version {current}, but this temper knows versions \
             up to {LATEST_SCHEMA_VERSION}; run a newer temper or use another database file"
        ))));
    }
    let now_ms = temper_types::wall_clock_millis();
    for &(version, script) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(script).map_err(|e| {
            OpenError::sqlite(e, |e| {
                StoreError::Internal(format!(
                    "applying SQLite schema version {version} failed: {e}"
                ))
            })
        })?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at_ms) VALUES (?1, ?2)",
            (version, now_ms),
        )?;
        tracing::info!(version, "applied SQLite schema migration");
    }
    Ok(tx.commit()?)
}

/// 0 for an empty database.
fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(MIGRATIONS[0].0, 1);
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first migration");
        migrate(&mut conn).expect("second migration");
        assert_eq!(
            current_version(&conn).expect("version"),
            LATEST_SCHEMA_VERSION
        );
    }

    #[test]
    fn a_version_1_database_is_migrated_to_the_latest() {
        let mut conn = Connection::open_in_memory().expect("open");
        let tx = conn.transaction().expect("tx");
        tx.execute_batch(MIGRATIONS[0].1).expect("version 1");
        tx.execute(
            "INSERT INTO schema_version (version, applied_at_ms) VALUES (1, 0)",
            [],
        )
        .expect("record version 1");
        tx.commit().expect("commit");
        migrate(&mut conn).expect("migrate");
        assert_eq!(
            current_version(&conn).expect("version"),
            LATEST_SCHEMA_VERSION
        );
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM cluster_membership", [], |r| r.get(0))
            .expect("the membership table exists");
        assert_eq!(rows, 0);
    }

    #[test]
    fn backlog_tasks_of_a_version_4_database_keep_the_default_priority_level() {
        let mut conn = Connection::open_in_memory().expect("open");
        let tx = conn.transaction().expect("tx");
        for &(version, script) in MIGRATIONS.iter().filter(|(v, _)| *v <= 4) {
            tx.execute_batch(script).expect("old version");
            tx.execute(
                "INSERT INTO schema_version (version, applied_at_ms) VALUES (?1, 0)",
                [version],
            )
            .expect("record version");
        }
        tx.execute(
            "INSERT INTO queue_tasks (namespace_id, name, task_type, partition_id, task_id, data)
             VALUES ('ns', 'orders', 1, 0, 7, x'01')",
            [],
        )
        .expect("a stored task");
        tx.commit().expect("commit");
        migrate(&mut conn).expect("migrate");
        let (priority, task_id): (i64, i64) = conn
            .query_row("SELECT priority, task_id FROM queue_tasks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("the task is kept");
        assert_eq!(
            (priority, task_id),
            (
                i64::from(temper_persistence::QueueTask::DEFAULT_PRIORITY),
                7
            )
        );
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO schema_version (version, applied_at_ms) VALUES (?1, 0)",
            [LATEST_SCHEMA_VERSION + 1],
        )
        .expect("pretend a newer temper migrated it");
        let err = StoreError::from(migrate(&mut conn).expect_err("newer schema"));
        assert!(
            matches!(&err, StoreError::Invalid(msg) if msg.contains("newer temper")),
            "{err:?}"
        );
    }
}
