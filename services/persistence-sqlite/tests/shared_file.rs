//! Several stores (as several processes would) on one database file, and schema checks.

use std::path::Path;

use temper_persistence::{
    CommitError, CurrentExecution, CurrentRunCondition, CurrentRunWrite, ExecutionKey,
    ExecutionWrite, Persistence, ShardRecord, StoreError, TaskCategory, TaskKey, TaskQueueKey,
    TaskRecord,
};
use temper_persistence_sqlite::{LATEST_SCHEMA_VERSION, SqliteStore};
use temper_types::{NamespaceId, RangeId, ShardId};

const SHARD: ShardId = ShardId(3);

fn open(path: &Path) -> Persistence {
    SqliteStore::open(path).expect("open").into_persistence()
}

fn create(run_id: &str, task_id: i64) -> ExecutionWrite {
    ExecutionWrite {
        key: ExecutionKey {
            namespace_id: NamespaceId("ns".to_owned()),
            workflow_id: format!("wf-{run_id}"),
            run_id: run_id.to_owned(),
        },
        expected_version: None,
        new_version: 1,
        state: run_id.as_bytes().to_vec(),
        current: Some(CurrentRunWrite {
            condition: CurrentRunCondition::MustNotExist,
            record: CurrentExecution {
                run_id: run_id.to_owned(),
                create_request_id: "req".to_owned(),
                state: 2,
                status: 1,
                start_time_ms: 0,
            },
        }),
        tasks: vec![TaskRecord {
            category: TaskCategory::Transfer,
            key: TaskKey::immediate(task_id),
            data: vec![1],
        }],
        visibility: None,
    }
}

async fn acquire(p: &Persistence, expected: RangeId) -> RangeId {
    let held = RangeId(expected.0 + 1);
    p.executions
        .update_shard(
            expected,
            &ShardRecord {
                shard_id: SHARD,
                range_id: held,
                info: vec![],
            },
        )
        .await
        .expect("acquire");
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_writes_and_fencing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.db");
    let a = open(&path);
    let b = open(&path);

    // Node A takes the shard and writes.
    let shard = a
        .executions
        .get_or_create_shard(SHARD, b"info")
        .await
        .expect("create shard");
    let held_a = acquire(&a, shard.range_id).await;
    a.executions
        .commit(SHARD, held_a, &[create("run-a", 1)])
        .await
        .expect("A commits");

    // B sees A's shard row and writes.
    let seen = b
        .executions
        .get_or_create_shard(SHARD, b"other")
        .await
        .expect("B reads shard");
    assert_eq!(seen.range_id, held_a);
    let key_a = create("run-a", 1).key;
    assert!(
        b.executions
            .get_execution(SHARD, &key_a)
            .await
            .expect("B reads")
            .is_some()
    );

    // B steals the shard; A is fenced on every shard-owned write.
    let held_b = acquire(&b, held_a).await;
    let err = a
        .executions
        .commit(SHARD, held_a, &[create("run-stale", 2)])
        .await
        .expect_err("A is stale");
    assert_eq!(
        err,
        CommitError::ShardOwnershipLost {
            held: held_a,
            actual: held_b,
        }
    );
    let err = a
        .executions
        .delete_execution(SHARD, held_a, &key_a)
        .await
        .expect_err("A cannot delete");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: held_a,
            actual: held_b,
        }
    );
    b.executions
        .commit(SHARD, held_b, &[create("run-b", 3)])
        .await
        .expect("B commits");

    // A sees B's writes, and nothing of its own refused commit.
    let tasks = a
        .executions
        .get_tasks(
            SHARD,
            TaskCategory::Transfer,
            TaskKey::MIN,
            TaskKey::MAX,
            10,
        )
        .await
        .expect("A reads tasks");
    assert_eq!(
        tasks.iter().map(|t| t.key.task_id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(
        a.executions
            .get_execution(SHARD, &create("run-stale", 2).key)
            .await
            .expect("A reads")
            .is_none()
    );

    // Task queue leases fence across stores too.
    let q = TaskQueueKey {
        namespace_id: NamespaceId("ns".to_owned()),
        name: "q".to_owned(),
        task_type: 1,
        partition: 0,
    };
    let lease_a = a.task_queues.lease_task_queue(&q).await.expect("A leases");
    let lease_b = b.task_queues.lease_task_queue(&q).await.expect("B leases");
    assert!(lease_b.range_id > lease_a.range_id);
    let err = a
        .task_queues
        .update_task_queue(&q, lease_a.range_id, 5)
        .await
        .expect_err("A's lease is gone");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: lease_a.range_id,
            actual: lease_b.range_id,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_stores_on_one_file_have_one_winner() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("race.db");
    let stores: Vec<Persistence> = (0..4).map(|_| open(&path)).collect();
    let shard = stores[0]
        .executions
        .get_or_create_shard(SHARD, b"")
        .await
        .expect("create shard");

    // Every store tries to take the shard from the same range: one wins.
    let mut racers = Vec::new();
    for p in stores.iter().cloned() {
        racers.push(tokio::spawn(async move {
            p.executions
                .update_shard(
                    shard.range_id,
                    &ShardRecord {
                        shard_id: SHARD,
                        range_id: RangeId(shard.range_id.0 + 1),
                        info: vec![],
                    },
                )
                .await
        }));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(()) => won += 1,
            Err(err) => assert_eq!(
                err,
                StoreError::OwnershipLost {
                    held: shard.range_id,
                    actual: RangeId(shard.range_id.0 + 1),
                }
            ),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn reopening_keeps_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reopen.db");
    {
        let p = open(&path);
        p.executions
            .get_or_create_shard(SHARD, b"kept")
            .await
            .expect("create shard");
    }
    let p = open(&path);
    let shard = p
        .executions
        .get_or_create_shard(SHARD, b"new")
        .await
        .expect("read shard");
    assert_eq!(shard.info, b"kept");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("newer.db");
    drop(SqliteStore::open(&path).expect("create"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.execute(
        "INSERT INTO schema_version (version, applied_at_ms) VALUES (?1, 0)",
        [LATEST_SCHEMA_VERSION + 1],
    )
    .expect("pretend a newer temper migrated it");
    drop(conn);
    let err = SqliteStore::open(&path).expect_err("newer schema");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[test]
fn not_a_database_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0xA5; 8192]).expect("write garbage");
    let err = SqliteStore::open(&path).expect_err("garbage file");
    assert!(
        matches!(err, StoreError::Invalid(_) | StoreError::Internal(_)),
        "{err:?}"
    );
}

/// The nodes of a local cluster start together: several openers of one new file (WAL
/// switch, schema migration) all succeed instead of one failing with "database is locked".
#[test]
fn many_openers_of_a_new_file_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(format!("race-{round}.sqlite"));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SqliteStore::open(&path).map(|_| ()))
            })
            .collect();
        for o in openers {
            o.join().expect("opener thread").expect("open succeeds");
        }
    }
}
