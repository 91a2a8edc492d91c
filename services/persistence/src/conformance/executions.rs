//! The conditional commit batch: fencing, versions, current-run pointers, the outbox.

use temper_types::{RangeId, ShardId};

use super::{
    SHARD, acquire, all_tasks, create, current, every_task, key, ns, task_keys, timer, transfer,
    update,
};
use crate::{
    BranchId, CommitError, ConflictKind, CurrentRunCondition, CurrentRunWrite, ExecutionRecord,
    HistoryNode, Persistence, StoreError, TaskCategory, run_state,
};

async fn execution(p: &Persistence, workflow_id: &str, run_id: &str) -> Option<ExecutionRecord> {
    p.executions
        .get_execution(SHARD, &key(workflow_id, run_id))
        .await
        .expect("get_execution")
}

async fn current_of(p: &Persistence, workflow_id: &str) -> Option<crate::CurrentExecution> {
    p.executions
        .get_current_execution(SHARD, &ns(), workflow_id)
        .await
        .expect("get_current_execution")
}

/// A commit under a range id the shard no longer has writes nothing at all.
pub async fn case_commit_under_stale_range_writes_nothing(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    let stale = RangeId(held.0 - 1);
    let write = create("wf", "run-1", vec![transfer(10), timer(500, 11)]);

    let err = p
        .executions
        .commit(SHARD, stale, std::slice::from_ref(&write))
        .await
        .expect_err("stale range must be refused");
    assert_eq!(
        err,
        CommitError::ShardOwnershipLost {
            held: stale,
            actual: held,
        }
    );
    let ahead = RangeId(held.0 + 1);
    let err = p
        .executions
        .commit(SHARD, ahead, std::slice::from_ref(&write))
        .await
        .expect_err("a range the store does not have must be refused");
    assert_eq!(
        err,
        CommitError::ShardOwnershipLost {
            held: ahead,
            actual: held,
        }
    );

    assert_eq!(execution(p, "wf", "run-1").await, None);
    assert_eq!(current_of(p, "wf").await, None);
    assert!(every_task(p, SHARD).await.is_empty());

    // A shard that does not exist cannot be written either.
    let missing = ShardId(99);
    p.executions
        .commit(missing, RangeId(0), std::slice::from_ref(&write))
        .await
        .expect_err("commit to a shard without a row must fail");
    assert!(every_task(p, missing).await.is_empty());
    assert_eq!(
        p.executions
            .get_execution(missing, &write.key)
            .await
            .expect("get_execution"),
        None
    );

    // The held range works.
    p.executions
        .commit(SHARD, held, &[write])
        .await
        .expect("commit under the held range");
    assert!(execution(p, "wf", "run-1").await.is_some());
}

/// Creation writes the execution row, the current-run pointer and the tasks together;
/// creating again conflicts and changes nothing.
pub async fn case_commit_creates_execution_current_and_tasks(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    let write = create("wf", "run-1", vec![transfer(10), timer(500, 11)]);
    p.executions
        .commit(SHARD, held, std::slice::from_ref(&write))
        .await
        .expect("create");

    assert_eq!(
        execution(p, "wf", "run-1").await,
        Some(ExecutionRecord {
            state: write.state.clone(),
            db_record_version: 1,
        })
    );
    let pointer = current(&write.key.run_id, run_state::RUNNING);
    assert_eq!(current_of(p, "wf").await, Some(pointer.clone()));
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Transfer).await,
        vec![transfer(10)]
    );
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Timer).await,
        vec![timer(500, 11)]
    );

    // The same creation again: the row exists and so does the pointer.
    let mut again = write.clone();
    again.state = b"second creation".to_vec();
    again.tasks = vec![transfer(20)];
    let err = p
        .executions
        .commit(SHARD, held, &[again])
        .await
        .expect_err("creating an existing run must conflict");
    match err {
        CommitError::Conflict {
            index: 0,
            kind:
                ConflictKind::VersionMismatch {
                    expected: None,
                    actual: Some(1),
                },
        } => {}
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::CurrentRunMismatch { actual },
        } => assert_eq!(actual, Some(pointer.clone())),
        other => panic!("unexpected error for a duplicate create: {other:?}"),
    }

    // A new run of the same workflow id while one is current: pointer conflict.
    let second_run = create("wf", "run-2", vec![transfer(21)]);
    let err = p
        .executions
        .commit(SHARD, held, &[second_run])
        .await
        .expect_err("MustNotExist with a current run must conflict");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::CurrentRunMismatch {
                actual: Some(pointer.clone()),
            },
        }
    );

    // Nothing of the refused writes is visible.
    assert_eq!(
        execution(p, "wf", "run-1").await.map(|r| r.state),
        Some(write.state.clone())
    );
    assert_eq!(execution(p, "wf", "run-2").await, None);
    assert_eq!(current_of(p, "wf").await, Some(pointer));
    assert_eq!(
        task_keys(&every_task(p, SHARD).await),
        vec![(0, 10), (500, 11)]
    );
}

/// A wrong expected version is reported precisely and applies nothing.
pub async fn case_commit_version_conflict_applies_nothing(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    p.executions
        .commit(SHARD, held, &[create("wf", "run-1", vec![])])
        .await
        .expect("create");

    let mut wrong = update("wf", "run-1", 5, vec![transfer(30)]);
    wrong.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("run-1".to_owned()),
        record: current("run-1", run_state::COMPLETED),
    });
    let err = p
        .executions
        .commit(SHARD, held, &[wrong])
        .await
        .expect_err("wrong expected version");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::VersionMismatch {
                expected: Some(5),
                actual: Some(1),
            },
        }
    );
    let row = execution(p, "wf", "run-1").await.expect("row still there");
    assert_eq!(row.db_record_version, 1);
    assert_eq!(row.state, create("wf", "run-1", vec![]).state);
    assert_eq!(
        current_of(p, "wf").await.map(|c| c.state),
        Some(run_state::RUNNING),
        "the pointer update of a refused write must not apply"
    );
    assert!(every_task(p, SHARD).await.is_empty());

    // Updating a row that does not exist.
    let err = p
        .executions
        .commit(
            SHARD,
            held,
            &[update("wf", "no-such-run", 1, vec![transfer(31)])],
        )
        .await
        .expect_err("update of a missing row");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::VersionMismatch {
                expected: Some(1),
                actual: None,
            },
        }
    );
    assert_eq!(execution(p, "wf", "no-such-run").await, None);
    assert!(every_task(p, SHARD).await.is_empty());

    // The right version applies state, version and tasks.
    let right = update("wf", "run-1", 1, vec![transfer(32)]);
    p.executions
        .commit(SHARD, held, std::slice::from_ref(&right))
        .await
        .expect("right version");
    assert_eq!(
        execution(p, "wf", "run-1").await,
        Some(ExecutionRecord {
            state: right.state,
            db_record_version: 2,
        })
    );
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Transfer).await,
        vec![transfer(32)]
    );

    // And the version it replaced is now stale.
    let err = p
        .executions
        .commit(SHARD, held, &[update("wf", "run-1", 1, vec![])])
        .await
        .expect_err("old version is stale");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::VersionMismatch {
                expected: Some(1),
                actual: Some(2),
            },
        }
    );
}

/// One failing write refuses the whole batch, and the error names its index.
pub async fn case_commit_batch_is_all_or_nothing(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    p.executions
        .commit(
            SHARD,
            held,
            &[
                create("wf-a", "run-a", vec![]),
                create("wf-b", "run-b", vec![]),
            ],
        )
        .await
        .expect("create two executions in one batch");
    assert!(execution(p, "wf-a", "run-a").await.is_some());
    assert!(execution(p, "wf-b", "run-b").await.is_some());

    let batch = [
        update("wf-a", "run-a", 1, vec![transfer(40), timer(900, 41)]),
        update("wf-b", "run-b", 3, vec![transfer(42)]),
        create("wf-c", "run-c", vec![transfer(43)]),
    ];
    let err = p
        .executions
        .commit(SHARD, held, &batch)
        .await
        .expect_err("write 1 conflicts");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 1,
            kind: ConflictKind::VersionMismatch {
                expected: Some(3),
                actual: Some(1),
            },
        }
    );
    assert_eq!(
        execution(p, "wf-a", "run-a")
            .await
            .map(|r| r.db_record_version),
        Some(1),
        "write 0 of a refused batch must not apply"
    );
    assert_eq!(execution(p, "wf-c", "run-c").await, None);
    assert_eq!(current_of(p, "wf-c").await, None);
    assert!(every_task(p, SHARD).await.is_empty());

    // A pointer conflict later in the batch refuses it all the same.
    let batch = [
        update("wf-a", "run-a", 1, vec![transfer(44)]),
        create("wf-b", "run-b2", vec![transfer(45)]),
    ];
    let err = p
        .executions
        .commit(SHARD, held, &batch)
        .await
        .expect_err("write 1's pointer conflicts");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 1,
            kind: ConflictKind::CurrentRunMismatch {
                actual: Some(current("run-b", run_state::RUNNING)),
            },
        }
    );
    assert_eq!(
        execution(p, "wf-a", "run-a")
            .await
            .map(|r| r.db_record_version),
        Some(1)
    );
    assert!(every_task(p, SHARD).await.is_empty());

    // With the conflict fixed, every write applies.
    let batch = [
        update("wf-a", "run-a", 1, vec![transfer(46), timer(900, 47)]),
        update("wf-b", "run-b", 1, vec![transfer(48)]),
    ];
    p.executions
        .commit(SHARD, held, &batch)
        .await
        .expect("fixed batch");
    assert_eq!(
        execution(p, "wf-a", "run-a")
            .await
            .map(|r| r.db_record_version),
        Some(2)
    );
    assert_eq!(
        execution(p, "wf-b", "run-b")
            .await
            .map(|r| r.db_record_version),
        Some(2)
    );
    assert_eq!(
        task_keys(&every_task(p, SHARD).await),
        vec![(0, 46), (0, 48), (900, 47)]
    );
}

/// `RunIdIs(x)` holds only while the pointer is at `x`, and moves it.
pub async fn case_current_run_pointer_conditions(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    assert_eq!(current_of(p, "wf").await, None);

    // RunIdIs with no pointer at all.
    let mut orphan = create("wf", "run-0", vec![]);
    orphan.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("run-x".to_owned()),
        record: current("run-0", run_state::RUNNING),
    });
    let err = p
        .executions
        .commit(SHARD, held, &[orphan])
        .await
        .expect_err("RunIdIs without a pointer");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::CurrentRunMismatch { actual: None },
        }
    );
    assert_eq!(execution(p, "wf", "run-0").await, None);

    p.executions
        .commit(SHARD, held, &[create("wf", "run-1", vec![])])
        .await
        .expect("first run");

    // Close run 1 while updating it: the pointer's state changes, the run id stays.
    let mut close = update("wf", "run-1", 1, vec![]);
    close.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("run-1".to_owned()),
        record: current("run-1", run_state::COMPLETED),
    });
    p.executions
        .commit(SHARD, held, &[close])
        .await
        .expect("close run 1");
    assert_eq!(
        current_of(p, "wf").await,
        Some(current("run-1", run_state::COMPLETED))
    );

    // A new run replaces the closed one.
    let mut second = create("wf", "run-2", vec![transfer(50)]);
    second.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("run-1".to_owned()),
        record: current("run-2", run_state::RUNNING),
    });
    p.executions
        .commit(SHARD, held, &[second])
        .await
        .expect("replace run 1 with run 2");
    assert_eq!(
        current_of(p, "wf").await,
        Some(current("run-2", run_state::RUNNING))
    );
    assert!(
        execution(p, "wf", "run-1").await.is_some(),
        "the old run's row stays"
    );

    // Someone still believing run 1 is current loses.
    let mut third = create("wf", "run-3", vec![transfer(51)]);
    third.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("run-1".to_owned()),
        record: current("run-3", run_state::RUNNING),
    });
    let err = p
        .executions
        .commit(SHARD, held, &[third])
        .await
        .expect_err("pointer moved on");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::CurrentRunMismatch {
                actual: Some(current("run-2", run_state::RUNNING)),
            },
        }
    );
    assert_eq!(execution(p, "wf", "run-3").await, None);
    assert_eq!(
        current_of(p, "wf").await,
        Some(current("run-2", run_state::RUNNING))
    );
    assert_eq!(
        task_keys(&all_tasks(p, SHARD, TaskCategory::Transfer).await),
        vec![(0, 50)]
    );

    // Pointers are per workflow id (and per shard).
    assert_eq!(current_of(p, "other-wf").await, None);
    assert_eq!(
        p.executions
            .get_current_execution(ShardId(2), &ns(), "wf")
            .await
            .expect("get_current_execution"),
        None
    );
}

/// Racing writers of the same version: exactly one wins, the others see its version.
pub async fn case_concurrent_commits_one_wins(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    p.executions
        .commit(SHARD, held, &[create("wf", "run-1", vec![])])
        .await
        .expect("create");

    let mut racers = Vec::new();
    for i in 0..8_i64 {
        let p = p.clone();
        racers.push(tokio::spawn(async move {
            let mut write = update("wf", "run-1", 1, vec![transfer(100 + i)]);
            write.state = format!("racer {i}").into_bytes();
            p.executions.commit(SHARD, held, &[write]).await.map(|()| i)
        }));
    }
    // Each loser learns it lost (a version conflict), or, on a replicated store where the
    // racers' consensus rounds contend, that the outcome of its write is unknown (it timed
    // out): never that it won when it did not. The row then holds exactly one racer's write.
    let mut winners = Vec::new();
    let mut unknown = Vec::new();
    for (i, racer) in racers.into_iter().enumerate() {
        match racer.await.expect("racer task") {
            Ok(i) => winners.push(i),
            Err(CommitError::Store(
                StoreError::OutcomeUnknown(why) | StoreError::Unavailable(why),
            )) => unknown.push((i, why)),
            Err(err) => assert_eq!(
                err,
                CommitError::Conflict {
                    index: 0,
                    kind: ConflictKind::VersionMismatch {
                        expected: Some(1),
                        actual: Some(2),
                    },
                }
            ),
        }
    }
    assert!(winners.len() <= 1, "at most one racer may win: {winners:?}");
    let stored = execution(p, "wf", "run-1").await.expect("the run exists");
    let winner = (0..8_i64)
        .find(|i| stored.state == format!("racer {i}").into_bytes())
        .unwrap_or_else(|| panic!("the row holds no racer's state: {stored:?}"));
    assert!(
        winners == [winner]
            || (winners.is_empty() && unknown.iter().any(|(i, _)| *i == winner as usize)),
        "racer {winner} is stored, but the winners were {winners:?} (unknown: {unknown:?})"
    );
    assert_eq!(
        execution(p, "wf", "run-1").await,
        Some(ExecutionRecord {
            state: format!("racer {winner}").into_bytes(),
            db_record_version: 2,
        })
    );
    assert_eq!(
        task_keys(&every_task(p, SHARD).await),
        vec![(0, 100 + winner)],
        "only the winner's tasks are written"
    );
}

/// `delete_execution` is fenced, and clears the pointer only if it is at that run.
pub async fn case_delete_execution(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    p.executions
        .commit(SHARD, held, &[create("wf", "run-1", vec![])])
        .await
        .expect("create run 1");

    let err = p
        .executions
        .delete_execution(SHARD, RangeId(held.0 - 1), &key("wf", "run-1"))
        .await
        .expect_err("stale range");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: RangeId(held.0 - 1),
            actual: held,
        }
    );
    assert!(execution(p, "wf", "run-1").await.is_some());
    assert!(current_of(p, "wf").await.is_some());

    p.executions
        .delete_execution(SHARD, held, &key("wf", "run-1"))
        .await
        .expect("delete run 1");
    assert_eq!(execution(p, "wf", "run-1").await, None);
    assert_eq!(current_of(p, "wf").await, None);

    // Deleting an old run keeps the pointer at the newer one.
    p.executions
        .commit(SHARD, held, &[create("wf2", "run-a", vec![])])
        .await
        .expect("create run a");
    let mut replace = create("wf2", "run-b", vec![]);
    replace.current = Some(CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs("run-a".to_owned()),
        record: current("run-b", run_state::RUNNING),
    });
    p.executions
        .commit(SHARD, held, &[replace])
        .await
        .expect("run b replaces run a");
    p.executions
        .delete_execution(SHARD, held, &key("wf2", "run-a"))
        .await
        .expect("delete run a");
    assert_eq!(execution(p, "wf2", "run-a").await, None);
    assert!(execution(p, "wf2", "run-b").await.is_some());
    assert_eq!(
        current_of(p, "wf2").await,
        Some(current("run-b", run_state::RUNNING))
    );

    // Deleting what is not there is not an error.
    p.executions
        .delete_execution(SHARD, held, &key("wf2", "run-a"))
        .await
        .expect("delete is idempotent");
}

/// A commit with its history nodes ([`crate::ExecutionStore::commit_with_history`]) applies
/// both or neither, under the commit's conditions; a store that keeps history apart refuses
/// the call and writes nothing.
pub async fn case_commit_with_history_is_one_transaction(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    let branch = BranchId {
        tree_id: "tree-wf".to_owned(),
        branch_id: "branch-wf".to_owned(),
    };
    let node = |id: i64| HistoryNode {
        node_id: id,
        txn_id: id,
        events: format!("events {id}").into_bytes(),
    };
    let nodes_of = || async {
        p.history
            .read_history_nodes(&branch, 1, i64::MAX, None, 100)
            .await
            .expect("read_history_nodes")
            .into_iter()
            .map(|n| n.node_id)
            .collect::<Vec<_>>()
    };
    let first = create("wf", "run-1", vec![transfer(10)]);
    let result = p
        .executions
        .commit_with_history(
            SHARD,
            held,
            &[(branch.clone(), node(1))],
            std::slice::from_ref(&first),
        )
        .await;
    if !p.executions.commits_history() {
        assert!(
            matches!(result, Err(CommitError::Store(StoreError::Internal(_)))),
            "{result:?}"
        );
        assert_eq!(execution(p, "wf", "run-1").await, None);
        assert!(nodes_of().await.is_empty());
        assert!(every_task(p, SHARD).await.is_empty());
        return;
    }
    result.expect("commit with history");
    assert_eq!(
        execution(p, "wf", "run-1")
            .await
            .map(|r| r.db_record_version),
        Some(1)
    );
    assert_eq!(nodes_of().await, [1]);
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Transfer).await,
        vec![transfer(10)]
    );

    // A write whose condition fails: its nodes are not written either.
    let err = p
        .executions
        .commit_with_history(
            SHARD,
            held,
            &[(branch.clone(), node(2))],
            &[update("wf", "run-1", 5, vec![transfer(11)])],
        )
        .await
        .expect_err("wrong expected version");
    assert!(
        matches!(err, CommitError::Conflict { index: 0, .. }),
        "{err:?}"
    );
    // Nor under a range id the shard no longer has.
    let stale = RangeId(held.0 - 1);
    let err = p
        .executions
        .commit_with_history(
            SHARD,
            stale,
            &[(branch.clone(), node(3))],
            &[update("wf", "run-1", 1, vec![transfer(12)])],
        )
        .await
        .expect_err("stale range");
    assert_eq!(
        err,
        CommitError::ShardOwnershipLost {
            held: stale,
            actual: held,
        }
    );
    assert_eq!(nodes_of().await, [1]);
    assert_eq!(
        execution(p, "wf", "run-1")
            .await
            .map(|r| r.db_record_version),
        Some(1)
    );
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Transfer).await,
        vec![transfer(10)]
    );

    // The right version applies both.
    p.executions
        .commit_with_history(
            SHARD,
            held,
            &[(branch.clone(), node(4))],
            &[update("wf", "run-1", 1, vec![transfer(13)])],
        )
        .await
        .expect("right version");
    assert_eq!(nodes_of().await, [1, 4]);
    assert_eq!(
        execution(p, "wf", "run-1")
            .await
            .map(|r| r.db_record_version),
        Some(2)
    );
}

/// Creating a run under MustNotExist while the id has a current run is refused with that run
/// in the conflict, whole: the history service decides a start on it without reading the
/// pointer again.
pub async fn case_a_taken_workflow_id_refuses_with_its_current_run(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    p.executions
        .commit(SHARD, held, &[create("wf", "run-1", vec![])])
        .await
        .expect("first run");
    let err = p
        .executions
        .commit(SHARD, held, &[create("wf", "run-2", vec![transfer(60)])])
        .await
        .expect_err("the id is taken");
    assert_eq!(
        err,
        CommitError::Conflict {
            index: 0,
            kind: ConflictKind::CurrentRunMismatch {
                actual: Some(current("run-1", run_state::RUNNING)),
            },
        }
    );
    assert_eq!(execution(p, "wf", "run-2").await, None);
    assert!(every_task(p, SHARD).await.is_empty());
}
