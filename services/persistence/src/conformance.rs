//! The backend-independent conformance suite: what every store must do, written once.
//!
//! Each `case_*` function takes a [`Persistence`] over an empty store and panics on the
//! first behaviour that breaks the contract. A backend crate runs all of them with one line
//! in a test target (it needs `tokio` as a dev-dependency):
//!
//! ```ignore
//! async fn make() -> temper_persistence::Persistence { /* a fresh, empty store */ }
//! temper_persistence::persistence_conformance_tests!(make);
//! ```
//!
//! `make` is anything callable with no argument returning a future of a [`Harness`]: a
//! bare `Persistence`, or `(Persistence, guard)` when something (a temp dir, a keyspace to
//! drop) must live as long as the test and be dropped after the store.
//!
//! Cases use fixed ids and expect a store nobody else writes to during the case.

mod executions;
mod history;
mod membership;
mod namespaces;
mod nexus_endpoints;
mod shards;
mod task_queues;
mod tasks;
mod visibility;

pub use executions::*;
pub use history::*;
pub use membership::*;
pub use namespaces::*;
pub use nexus_endpoints::*;
pub use shards::*;
pub use task_queues::*;
pub use tasks::*;
pub use visibility::*;

use temper_types::{NamespaceId, RangeId, ShardId, TaskId};

use crate::{
    CurrentExecution, CurrentRunCondition, CurrentRunWrite, ExecutionKey, ExecutionWrite,
    Persistence, ShardRecord, TaskCategory, TaskKey, TaskRecord, run_state,
};

/// What a conformance test's factory returns: the store, plus whatever must outlive it.
pub trait Harness: Send {
    fn persistence(&self) -> &Persistence;
}

impl Harness for Persistence {
    fn persistence(&self) -> &Persistence {
        self
    }
}

/// The store, then a guard dropped after it (tuple fields drop in order).
impl<G: Send> Harness for (Persistence, G) {
    fn persistence(&self) -> &Persistence {
        &self.0
    }
}

/// The visibility cases, for stores that have visibility (SQLite and Cassandra), invoked like
/// [`persistence_conformance_tests!`].
#[macro_export]
macro_rules! persistence_visibility_conformance_tests {
    (optional $make:expr) => {
        $crate::__persistence_visibility_all!(optional $make);
    };
    ($make:expr) => {
        $crate::__persistence_visibility_all!(required $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __persistence_visibility_all {
    ($mode:ident $make:expr) => {
        $crate::__persistence_conformance_cases!(
            $mode $make;
            case_visibility_written_with_the_commit,
            case_visibility_older_version_never_wins,
            case_visibility_default_order_and_keyset_paging,
            case_visibility_filters_and_counts,
            case_visibility_deleted_with_the_execution,
            case_visibility_counts_follow_every_change,
            case_visibility_keyword_filters,
            case_visibility_close_moves_the_run_once,
            case_visibility_pages_across_hours_and_filters,
            case_visibility_division_filter,
        );
    };
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store from
/// `$make` (see the module docs). Invoke it once per module; wrap several invocations in
/// modules of their own.
///
/// `persistence_conformance_tests!(optional make)` is for stores that need an external
/// server: `make` returns `Option<harness>`, and `None` (no server configured) makes every
/// case pass without running, after printing why.
#[macro_export]
macro_rules! persistence_conformance_tests {
    (optional $make:expr) => {
        $crate::__persistence_conformance_all!(optional $make);
    };
    ($make:expr) => {
        $crate::__persistence_conformance_all!(required $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __persistence_conformance_all {
    ($mode:ident $make:expr) => {
        $crate::__persistence_conformance_cases!(
            $mode $make;
            case_shard_get_or_create,
            case_shard_update_is_fenced,
            case_commit_under_stale_range_writes_nothing,
            case_commit_creates_execution_current_and_tasks,
            case_commit_version_conflict_applies_nothing,
            case_commit_batch_is_all_or_nothing,
            case_commit_with_history_is_one_transaction,
            case_current_run_pointer_conditions,
            case_a_taken_workflow_id_refuses_with_its_current_run,
            case_concurrent_commits_one_wins,
            case_delete_execution,
            case_transfer_tasks_in_id_order,
            case_timer_tasks_in_fire_time_order,
            case_task_deletion,
            case_task_deletion_under_stale_range_deletes_nothing,
            case_task_categories_and_shards_are_independent,
            case_history_order_and_paging,
            case_history_orphans_across_pages,
            case_history_branches_and_delete,
            case_task_queue_lease,
            case_concurrent_leases_are_distinct,
            case_queue_task_writes_are_fenced,
            case_queue_task_reads_and_deletes,
            case_queue_task_priority_levels,
            case_task_queues_are_independent,
            case_namespace_create_and_get,
            case_namespace_update_is_conditional,
            case_namespace_list_paging,
            case_nexus_endpoint_create_and_get,
            case_nexus_endpoint_concurrent_creates_one_name,
            case_nexus_endpoint_update_is_conditional,
            case_nexus_endpoint_rename,
            case_nexus_endpoint_delete,
            case_nexus_endpoint_list_by_name,
            case_cluster_metadata_first_init_wins,
            case_membership_heartbeat_and_list,
            case_membership_rows_expire,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __persistence_conformance_cases {
    (optional $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(harness) = ($make)().await else {
                    return;
                };
                $crate::conformance::$case(
                    $crate::conformance::Harness::persistence(&harness),
                )
                .await;
            }
        )*
    };
    (required $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = ($make)().await;
                $crate::conformance::$case(
                    $crate::conformance::Harness::persistence(&harness),
                )
                .await;
            }
        )*
    };
}

// ---- helpers shared by the cases ----

pub(crate) const SHARD: ShardId = ShardId(1);

pub(crate) fn ns() -> NamespaceId {
    NamespaceId("conformance-ns".to_owned())
}

pub(crate) fn key(workflow_id: &str, run_id: &str) -> ExecutionKey {
    ExecutionKey {
        namespace_id: ns(),
        workflow_id: workflow_id.to_owned(),
        run_id: run_id.to_owned(),
    }
}

pub(crate) fn current(run_id: &str, state: i32) -> CurrentExecution {
    CurrentExecution {
        run_id: run_id.to_owned(),
        create_request_id: format!("request-{run_id}"),
        state,
        status: if state == run_state::COMPLETED { 2 } else { 1 },
        start_time_ms: 1_700_000_000_000,
    }
}

pub(crate) fn transfer(task_id: TaskId) -> TaskRecord {
    task(TaskCategory::Transfer, TaskKey::immediate(task_id))
}

pub(crate) fn timer(fire_time_ms: i64, task_id: TaskId) -> TaskRecord {
    task(
        TaskCategory::Timer,
        TaskKey {
            fire_time_ms,
            task_id,
        },
    )
}

pub(crate) fn task(category: TaskCategory, key: TaskKey) -> TaskRecord {
    TaskRecord {
        category,
        key,
        data: format!("{category:?}/{}/{}", key.fire_time_ms, key.task_id).into_bytes(),
    }
}

/// A write creating run `run_id` of `workflow_id` as a brand-new workflow id.
pub(crate) fn create(workflow_id: &str, run_id: &str, tasks: Vec<TaskRecord>) -> ExecutionWrite {
    ExecutionWrite {
        key: key(workflow_id, run_id),
        expected_version: None,
        new_version: 1,
        state: format!("state {workflow_id}/{run_id} v1").into_bytes(),
        current: Some(CurrentRunWrite {
            condition: CurrentRunCondition::MustNotExist,
            record: current(run_id, run_state::RUNNING),
        }),
        tasks,
        visibility: None,
    }
}

/// A write moving an existing run from version `from` to `from + 1`, pointer untouched.
pub(crate) fn update(
    workflow_id: &str,
    run_id: &str,
    from: i64,
    tasks: Vec<TaskRecord>,
) -> ExecutionWrite {
    ExecutionWrite {
        key: key(workflow_id, run_id),
        expected_version: Some(from),
        new_version: from + 1,
        state: format!("state {workflow_id}/{run_id} v{}", from + 1).into_bytes(),
        current: None,
        tasks,
        visibility: None,
    }
}

/// Create the shard row and take it over once, as a node acquiring it does; returns the
/// range id now held.
pub(crate) async fn acquire(p: &Persistence, shard_id: ShardId) -> RangeId {
    let row = p
        .executions
        .get_or_create_shard(shard_id, b"info")
        .await
        .expect("get_or_create_shard");
    let held = RangeId(row.range_id.0 + 1);
    p.executions
        .update_shard(
            row.range_id,
            &ShardRecord {
                shard_id,
                range_id: held,
                info: b"owned".to_vec(),
            },
        )
        .await
        .expect("acquire shard");
    held
}

/// Every task of a category in a shard, in key order.
pub(crate) async fn all_tasks(
    p: &Persistence,
    shard_id: ShardId,
    category: TaskCategory,
) -> Vec<TaskRecord> {
    p.executions
        .get_tasks(shard_id, category, TaskKey::MIN, TaskKey::MAX, 10_000)
        .await
        .expect("get_tasks")
}

pub(crate) fn task_keys(tasks: &[TaskRecord]) -> Vec<(i64, TaskId)> {
    tasks
        .iter()
        .map(|t| (t.key.fire_time_ms, t.key.task_id))
        .collect()
}

/// The shard's tasks of every category.
pub(crate) async fn every_task(p: &Persistence, shard_id: ShardId) -> Vec<TaskRecord> {
    let mut out = Vec::new();
    for category in TaskCategory::ALL {
        out.extend(all_tasks(p, shard_id, category).await);
    }
    out
}
