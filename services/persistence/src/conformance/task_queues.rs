//! Matching backlog: leases, fenced task writes, reads and deletes.

use temper_types::{NamespaceId, RangeId};

use super::ns;
use crate::{Persistence, QueueTask, StoreError, TaskQueueKey};

fn queue(name: &str, task_type: i32, partition: u32) -> TaskQueueKey {
    TaskQueueKey {
        namespace_id: ns(),
        name: name.to_owned(),
        task_type,
        partition,
    }
}

fn qtask(task_id: i64) -> QueueTask {
    QueueTask {
        task_id,
        priority: QueueTask::DEFAULT_PRIORITY,
        data: format!("matching task {task_id}").into_bytes(),
    }
}

fn task_ids(tasks: &[QueueTask]) -> Vec<i64> {
    tasks.iter().map(|t| t.task_id).collect()
}

async fn lease(p: &Persistence, key: &TaskQueueKey) -> RangeId {
    p.task_queues
        .lease_task_queue(key)
        .await
        .expect("lease_task_queue")
        .range_id
}

async fn tasks_of(p: &Persistence, key: &TaskQueueKey) -> Vec<QueueTask> {
    p.task_queues
        .get_queue_tasks(key, QueueTask::DEFAULT_PRIORITY, i64::MIN, 10_000)
        .await
        .expect("get_queue_tasks")
}

/// The first lease creates the row with range 1; each lease bumps it; the ack level is kept.
pub async fn case_task_queue_lease(p: &Persistence) {
    let q = queue("orders", 1, 0);
    let first = p
        .task_queues
        .lease_task_queue(&q)
        .await
        .expect("first lease");
    assert_eq!(first.range_id, RangeId(1));
    let second = p
        .task_queues
        .lease_task_queue(&q)
        .await
        .expect("second lease");
    assert_eq!(second.range_id, RangeId(2));
    assert_eq!(second.ack_level, first.ack_level);

    p.task_queues
        .update_task_queue(&q, RangeId(2), 41)
        .await
        .expect("save ack level");
    let third = p
        .task_queues
        .lease_task_queue(&q)
        .await
        .expect("third lease");
    assert_eq!(third.range_id, RangeId(3));
    assert_eq!(third.ack_level, 41, "a new lease sees the saved ack level");

    // The previous holder can no longer save its ack level.
    let err = p
        .task_queues
        .update_task_queue(&q, RangeId(2), 99)
        .await
        .expect_err("stale lease");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: RangeId(2),
            actual: RangeId(3),
        }
    );
    let fourth = p
        .task_queues
        .lease_task_queue(&q)
        .await
        .expect("fourth lease");
    assert_eq!(fourth.range_id, RangeId(4));
    assert_eq!(fourth.ack_level, 41, "a fenced update changes nothing");
}

/// Concurrent leases of one queue each get a distinct range id.
pub async fn case_concurrent_leases_are_distinct(p: &Persistence) {
    let q = queue("contended", 1, 0);
    let mut leasers = Vec::new();
    for _ in 0..8 {
        let p = p.clone();
        let q = q.clone();
        leasers.push(tokio::spawn(async move {
            p.task_queues.lease_task_queue(&q).await
        }));
    }
    // Every lease gets a range of its own. On a replicated store the leasers' consensus
    // rounds contend, and a lease may time out with its outcome unknown (its range id is
    // then skipped or taken): the leases granted are still distinct.
    let mut ranges = Vec::new();
    let mut unknown = 0;
    for leaser in leasers {
        match leaser.await.expect("lease task") {
            Ok(lease) => ranges.push(lease.range_id.0),
            Err(StoreError::OutcomeUnknown(_) | StoreError::Unavailable(_)) => unknown += 1,
            Err(e) => panic!("lease: {e}"),
        }
    }
    ranges.sort_unstable();
    if unknown == 0 {
        assert_eq!(ranges, (1..=8).collect::<Vec<_>>());
    } else {
        assert!(!ranges.is_empty(), "no lease was granted");
        let mut distinct = ranges.clone();
        distinct.dedup();
        assert_eq!(distinct, ranges, "two leases got the same range");
        assert!(ranges.iter().all(|r| (1..=8).contains(r)), "{ranges:?}");
    }
}

/// Task writes need the current lease; a stale one writes nothing.
pub async fn case_queue_task_writes_are_fenced(p: &Persistence) {
    let q = queue("orders", 1, 0);
    let old = lease(p, &q).await;
    p.task_queues
        .create_queue_tasks(&q, old, &[qtask(1)])
        .await
        .expect("write under the lease");
    let new = lease(p, &q).await;
    assert!(new > old);

    let err = p
        .task_queues
        .create_queue_tasks(&q, old, &[qtask(2), qtask(3)])
        .await
        .expect_err("stale lease");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: old,
            actual: new,
        }
    );
    assert_eq!(
        tasks_of(p, &q).await,
        vec![qtask(1)],
        "nothing of the batch is written"
    );

    p.task_queues
        .create_queue_tasks(&q, new, &[qtask(3), qtask(2)])
        .await
        .expect("write under the new lease");
    assert_eq!(tasks_of(p, &q).await, vec![qtask(1), qtask(2), qtask(3)]);

    // A queue never leased cannot be written.
    let unleased = queue("never-leased", 1, 0);
    p.task_queues
        .create_queue_tasks(&unleased, RangeId(1), &[qtask(1)])
        .await
        .expect_err("no lease row");
    assert!(tasks_of(p, &unleased).await.is_empty());
}

/// Reads are ascending from an exclusive minimum with a limit; deletes by one or through.
pub async fn case_queue_task_reads_and_deletes(p: &Persistence) {
    let q = queue("orders", 2, 0);
    let held = lease(p, &q).await;
    p.task_queues
        .create_queue_tasks(
            &q,
            held,
            &[qtask(30), qtask(10), qtask(50), qtask(20), qtask(40)],
        )
        .await
        .expect("create_queue_tasks");

    let get = |min: i64, limit: usize| {
        p.task_queues
            .get_queue_tasks(&q, QueueTask::DEFAULT_PRIORITY, min, limit)
    };
    let all = get(0, 100).await.expect("get_queue_tasks");
    assert_eq!(
        all,
        vec![qtask(10), qtask(20), qtask(30), qtask(40), qtask(50)]
    );
    assert_eq!(task_ids(&get(0, 2).await.expect("get")), vec![10, 20]);
    assert_eq!(
        task_ids(&get(20, 2).await.expect("get")),
        vec![30, 40],
        "min is exclusive"
    );
    assert_eq!(
        task_ids(&get(25, 100).await.expect("get")),
        vec![30, 40, 50]
    );
    assert!(get(50, 100).await.expect("get").is_empty());

    p.task_queues
        .delete_queue_task(&q, QueueTask::DEFAULT_PRIORITY, 30)
        .await
        .expect("delete_queue_task");
    assert_eq!(
        task_ids(&get(0, 100).await.expect("get")),
        vec![10, 20, 40, 50]
    );

    p.task_queues
        .delete_queue_tasks_through(&q, QueueTask::DEFAULT_PRIORITY, 40)
        .await
        .expect("delete_queue_tasks_through");
    assert_eq!(
        task_ids(&get(0, 100).await.expect("get")),
        vec![50],
        "the bound itself is deleted"
    );
    p.task_queues
        .delete_queue_tasks_through(&q, QueueTask::DEFAULT_PRIORITY, 49)
        .await
        .expect("delete_queue_tasks_through");
    assert_eq!(task_ids(&get(0, 100).await.expect("get")), vec![50]);
}

/// Each priority level is read, and deleted, on its own, in task id order; a task keeps
/// its level.
pub async fn case_queue_task_priority_levels(p: &Persistence) {
    let q = queue("levels", 2, 0);
    let held = lease(p, &q).await;
    let at = |task_id: i64, priority: u8| QueueTask {
        priority,
        ..qtask(task_id)
    };
    p.task_queues
        .create_queue_tasks(
            &q,
            held,
            &[at(1, 5), at(2, 1), at(3, 3), at(4, 1), at(5, 5), at(6, 2)],
        )
        .await
        .expect("create_queue_tasks");
    let get = |priority: u8, min: i64| p.task_queues.get_queue_tasks(&q, priority, min, 100);
    assert_eq!(get(1, 0).await.expect("get"), vec![at(2, 1), at(4, 1)]);
    assert_eq!(get(2, 0).await.expect("get"), vec![at(6, 2)]);
    assert_eq!(get(3, 0).await.expect("get"), vec![at(3, 3)]);
    assert!(get(4, 0).await.expect("get").is_empty());
    assert_eq!(get(5, 0).await.expect("get"), vec![at(1, 5), at(5, 5)]);
    assert_eq!(
        get(5, 1).await.expect("get"),
        vec![at(5, 5)],
        "min is exclusive"
    );

    // Deletes touch their level only.
    p.task_queues
        .delete_queue_tasks_through(&q, 1, 2)
        .await
        .expect("delete_queue_tasks_through");
    assert_eq!(get(1, 0).await.expect("get"), vec![at(4, 1)]);
    assert_eq!(get(5, 0).await.expect("get"), vec![at(1, 5), at(5, 5)]);
    p.task_queues
        .delete_queue_task(&q, 3, 6)
        .await
        .expect("delete_queue_task of another level");
    assert_eq!(get(2, 0).await.expect("get"), vec![at(6, 2)]);
    p.task_queues
        .delete_queue_task(&q, 2, 6)
        .await
        .expect("delete_queue_task");
    assert!(get(2, 0).await.expect("get").is_empty());
    p.task_queues
        .delete_queue_tasks_through(&q, 5, i64::MAX)
        .await
        .expect("delete_queue_tasks_through");
    assert!(get(5, 0).await.expect("get").is_empty());
    assert_eq!(get(3, 0).await.expect("get"), vec![at(3, 3)]);
}

/// Queues differ by namespace, name, type and partition: leases and tasks are separate.
pub async fn case_task_queues_are_independent(p: &Persistence) {
    let base = queue("orders", 1, 0);
    let others = [
        queue("payments", 1, 0),
        queue("orders", 2, 0),
        queue("orders", 1, 3),
        TaskQueueKey {
            namespace_id: NamespaceId("another-ns".to_owned()),
            ..base.clone()
        },
    ];
    assert_eq!(lease(p, &base).await, RangeId(1));
    assert_eq!(lease(p, &base).await, RangeId(2));
    let mut first_leases = Vec::new();
    for other in &others {
        let first = p
            .task_queues
            .lease_task_queue(other)
            .await
            .expect("lease other");
        assert_eq!(first.range_id, RangeId(1), "{other:?} has its own lease");
        first_leases.push(first);
    }

    p.task_queues
        .create_queue_tasks(&base, RangeId(2), &[qtask(1), qtask(2)])
        .await
        .expect("write base");
    for (i, other) in others.iter().enumerate() {
        let id = 100 + i as i64;
        p.task_queues
            .create_queue_tasks(other, RangeId(1), &[qtask(id)])
            .await
            .expect("write other");
    }
    assert_eq!(task_ids(&tasks_of(p, &base).await), vec![1, 2]);
    for (i, other) in others.iter().enumerate() {
        assert_eq!(task_ids(&tasks_of(p, other).await), vec![100 + i as i64]);
    }

    p.task_queues
        .delete_queue_tasks_through(&base, QueueTask::DEFAULT_PRIORITY, i64::MAX)
        .await
        .expect("clear base");
    p.task_queues
        .update_task_queue(&base, RangeId(2), 2)
        .await
        .expect("ack base");
    assert!(tasks_of(p, &base).await.is_empty());
    for (i, other) in others.iter().enumerate() {
        assert_eq!(task_ids(&tasks_of(p, other).await), vec![100 + i as i64]);
        let lease = p
            .task_queues
            .lease_task_queue(other)
            .await
            .expect("lease other");
        assert_eq!(lease.range_id, RangeId(2));
        assert_eq!(
            lease.ack_level, first_leases[i].ack_level,
            "{other:?} kept its own ack level"
        );
    }
}
