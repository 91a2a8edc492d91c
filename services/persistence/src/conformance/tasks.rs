//! The shard's task queues (the outbox): order, bounds, deletion, independence.

use temper_types::{RangeId, ShardId};

use super::{SHARD, acquire, all_tasks, create, task, task_keys, timer, transfer, update};
use crate::{Persistence, TaskCategory, TaskKey, TaskRecord};

/// Write `tasks` into `shard_id` through commits (the only way tasks are created).
async fn write_tasks(p: &Persistence, shard_id: ShardId, held: RangeId, tasks: Vec<TaskRecord>) {
    let wf = format!("task-writer-{}", tasks.first().map_or(0, |t| t.key.task_id));
    p.executions
        .commit(shard_id, held, &[create(&wf, "run", tasks)])
        .await
        .expect("commit tasks");
}

/// Transfer (and visibility) tasks come back in task id order, within exclusive bounds.
pub async fn case_transfer_tasks_in_id_order(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    write_tasks(p, SHARD, held, vec![transfer(5), transfer(1), transfer(3)]).await;
    // A second commit interleaving ids.
    p.executions
        .commit(
            SHARD,
            held,
            &[update(
                "task-writer-5",
                "run",
                1,
                vec![transfer(4), transfer(2)],
            )],
        )
        .await
        .expect("second commit");

    let all = all_tasks(p, SHARD, TaskCategory::Transfer).await;
    assert_eq!(
        all,
        vec![
            transfer(1),
            transfer(2),
            transfer(3),
            transfer(4),
            transfer(5)
        ]
    );

    let get = |min: i64, max: i64, limit: usize| {
        p.executions.get_tasks(
            SHARD,
            TaskCategory::Transfer,
            TaskKey::immediate(min),
            TaskKey::immediate(max),
            limit,
        )
    };
    let between = get(1, 5, 100).await.expect("get_tasks");
    assert_eq!(
        task_keys(&between),
        vec![(0, 2), (0, 3), (0, 4)],
        "bounds are exclusive"
    );
    let limited = get(0, 100, 2).await.expect("get_tasks");
    assert_eq!(task_keys(&limited), vec![(0, 1), (0, 2)]);
    let next_page = get(2, 100, 2).await.expect("get_tasks");
    assert_eq!(task_keys(&next_page), vec![(0, 3), (0, 4)]);
    let last_page = get(4, 100, 2).await.expect("get_tasks");
    assert_eq!(task_keys(&last_page), vec![(0, 5)]);
    assert!(get(5, 100, 2).await.expect("get_tasks").is_empty());
    assert!(get(3, 4, 10).await.expect("get_tasks").is_empty());
}

/// Timer tasks come back by fire time, then task id.
pub async fn case_timer_tasks_in_fire_time_order(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    write_tasks(
        p,
        SHARD,
        held,
        vec![
            timer(200, 1),
            timer(100, 3),
            timer(300, 0),
            timer(100, 2),
            timer(200, 4),
        ],
    )
    .await;

    let all = all_tasks(p, SHARD, TaskCategory::Timer).await;
    assert_eq!(
        all,
        vec![
            timer(100, 2),
            timer(100, 3),
            timer(200, 1),
            timer(200, 4),
            timer(300, 0)
        ]
    );

    let get = |min: TaskKey, max: TaskKey, limit: usize| {
        p.executions
            .get_tasks(SHARD, TaskCategory::Timer, min, max, limit)
    };
    let k = |fire_time_ms, task_id| TaskKey {
        fire_time_ms,
        task_id,
    };
    // Exclusive on both ends, comparing (fire time, id) as a pair.
    let between = get(k(100, 2), k(300, 0), 100).await.expect("get_tasks");
    assert_eq!(task_keys(&between), vec![(100, 3), (200, 1), (200, 4)]);
    // Everything due before a time.
    let due = get(TaskKey::MIN, k(200, i64::MIN), 100)
        .await
        .expect("get_tasks");
    assert_eq!(task_keys(&due), vec![(100, 2), (100, 3)]);
    // A page boundary inside one fire time.
    let page = get(k(200, 1), TaskKey::MAX, 1).await.expect("get_tasks");
    assert_eq!(task_keys(&page), vec![(200, 4)]);
    // A small id at a later time still sorts after a large id at an earlier time.
    let after = get(k(200, 4), TaskKey::MAX, 10).await.expect("get_tasks");
    assert_eq!(task_keys(&after), vec![(300, 0)]);
}

/// `delete_task` removes one task; `delete_tasks_before` everything strictly below a key.
pub async fn case_task_deletion(p: &Persistence) {
    let held = acquire(p, SHARD).await;
    write_tasks(
        p,
        SHARD,
        held,
        (1..=6)
            .map(transfer)
            .chain([timer(100, 7), timer(200, 8), timer(200, 9), timer(300, 10)])
            .collect(),
    )
    .await;

    p.executions
        .delete_task(SHARD, TaskCategory::Transfer, TaskKey::immediate(2))
        .await
        .expect("delete_task");
    assert_eq!(
        task_keys(&all_tasks(p, SHARD, TaskCategory::Transfer).await),
        vec![(0, 1), (0, 3), (0, 4), (0, 5), (0, 6)]
    );
    // Deleting a task that is not there is fine.
    p.executions
        .delete_task(SHARD, TaskCategory::Transfer, TaskKey::immediate(2))
        .await
        .expect("delete_task twice");

    p.executions
        .delete_tasks_before(SHARD, held, TaskCategory::Transfer, TaskKey::immediate(4))
        .await
        .expect("delete_tasks_before");
    assert_eq!(
        task_keys(&all_tasks(p, SHARD, TaskCategory::Transfer).await),
        vec![(0, 4), (0, 5), (0, 6)],
        "the bound itself is kept"
    );

    p.executions
        .delete_task(
            SHARD,
            TaskCategory::Timer,
            TaskKey {
                fire_time_ms: 200,
                task_id: 9,
            },
        )
        .await
        .expect("delete timer");
    p.executions
        .delete_tasks_before(
            SHARD,
            held,
            TaskCategory::Timer,
            TaskKey {
                fire_time_ms: 200,
                task_id: 8,
            },
        )
        .await
        .expect("delete timers before");
    assert_eq!(
        task_keys(&all_tasks(p, SHARD, TaskCategory::Timer).await),
        vec![(200, 8), (300, 10)]
    );
    // The transfer queue was not touched by timer deletions.
    assert_eq!(all_tasks(p, SHARD, TaskCategory::Transfer).await.len(), 3);
}

/// Deleting acknowledged tasks is fenced like a commit: under a range id the shard no
/// longer has, nothing goes, not even the tasks written under the old range.
pub async fn case_task_deletion_under_stale_range_deletes_nothing(p: &Persistence) {
    let stale = acquire(p, SHARD).await;
    write_tasks(p, SHARD, stale, vec![transfer(1), timer(500, 2)]).await;
    let held = acquire(p, SHARD).await;
    // The new owner writes a timer that fires before the old owner's.
    write_tasks(p, SHARD, held, vec![timer(100, 3)]).await;
    for category in [TaskCategory::Timer, TaskCategory::Transfer] {
        let refused = p
            .executions
            .delete_tasks_before(SHARD, stale, category, TaskKey::MAX)
            .await;
        assert_eq!(
            refused,
            Err(crate::StoreError::OwnershipLost {
                held: stale,
                actual: held
            }),
            "{category:?}"
        );
    }
    assert_eq!(
        task_keys(&all_tasks(p, SHARD, TaskCategory::Timer).await),
        vec![(100, 3), (500, 2)]
    );
    assert_eq!(all_tasks(p, SHARD, TaskCategory::Transfer).await.len(), 1);
    p.executions
        .delete_tasks_before(SHARD, held, TaskCategory::Timer, TaskKey::MAX)
        .await
        .expect("the owner deletes");
    assert!(all_tasks(p, SHARD, TaskCategory::Timer).await.is_empty());
}

/// Categories and shards are separate queues even for equal keys.
pub async fn case_task_categories_and_shards_are_independent(p: &Persistence) {
    let shard_2 = ShardId(2);
    let held_1 = acquire(p, SHARD).await;
    let held_2 = acquire(p, shard_2).await;
    let same_key = TaskKey::immediate(7);
    let visibility = task(TaskCategory::Visibility, same_key);
    write_tasks(
        p,
        SHARD,
        held_1,
        vec![transfer(7), visibility.clone(), timer(0, 7)],
    )
    .await;
    let mut in_shard_2 = transfer(7);
    in_shard_2.data = b"shard 2".to_vec();
    write_tasks(p, shard_2, held_2, vec![in_shard_2.clone()]).await;

    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Transfer).await,
        vec![transfer(7)]
    );
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Visibility).await,
        vec![visibility.clone()]
    );
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Timer).await,
        vec![timer(0, 7)]
    );
    assert_eq!(
        all_tasks(p, shard_2, TaskCategory::Transfer).await,
        vec![in_shard_2.clone()]
    );
    assert!(
        all_tasks(p, shard_2, TaskCategory::Visibility)
            .await
            .is_empty()
    );

    p.executions
        .delete_task(SHARD, TaskCategory::Transfer, same_key)
        .await
        .expect("delete_task");
    assert!(all_tasks(p, SHARD, TaskCategory::Transfer).await.is_empty());
    assert_eq!(
        all_tasks(p, SHARD, TaskCategory::Visibility).await,
        vec![visibility]
    );
    assert_eq!(all_tasks(p, SHARD, TaskCategory::Timer).await.len(), 1);
    assert_eq!(
        all_tasks(p, shard_2, TaskCategory::Transfer).await,
        vec![in_shard_2]
    );

    p.executions
        .delete_tasks_before(SHARD, held_1, TaskCategory::Visibility, TaskKey::MAX)
        .await
        .expect("delete_tasks_before");
    assert!(
        all_tasks(p, SHARD, TaskCategory::Visibility)
            .await
            .is_empty()
    );
    assert_eq!(all_tasks(p, SHARD, TaskCategory::Timer).await.len(), 1);
    assert_eq!(all_tasks(p, shard_2, TaskCategory::Transfer).await.len(), 1);

    // A shard's writes are fenced by its own range only.
    let new_held_2 = acquire(p, shard_2).await;
    assert!(new_held_2 > held_2);
    p.executions
        .commit(
            shard_2,
            held_2,
            &[create("fenced", "run", vec![transfer(8)])],
        )
        .await
        .expect_err("shard 2's old range is stale");
    write_tasks(p, SHARD, held_1, vec![transfer(9)]).await;
    assert_eq!(
        task_keys(&all_tasks(p, SHARD, TaskCategory::Transfer).await),
        vec![(0, 9)]
    );
    assert_eq!(all_tasks(p, shard_2, TaskCategory::Transfer).await.len(), 1);
}
