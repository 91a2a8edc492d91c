//! Visibility records: written atomically with the commit, versioned, listed in the default
//! order with a keyset cursor, filtered and counted.

use crate::conformance::{SHARD, acquire, create, key, ns, update};
use crate::{CommitError, Persistence, VisibilityCursor, VisibilityFilter, VisibilityRecord};

const RUNNING: i32 = 1;
const COMPLETED: i32 = 2;
const FAILED: i32 = 3;

/// A record of run `run_id` of `workflow_id`, started at `start` (ns), closed at `close`.
pub(crate) fn record(
    workflow_id: &str,
    run_id: &str,
    start: i64,
    close: Option<i64>,
    version: i64,
) -> VisibilityRecord {
    VisibilityRecord {
        namespace_id: ns(),
        workflow_id: workflow_id.to_owned(),
        run_id: run_id.to_owned(),
        workflow_type: "type-a".to_owned(),
        task_queue: "queue".to_owned(),
        status: if close.is_some() { COMPLETED } else { RUNNING },
        start_time_ns: start,
        execution_time_ns: start,
        close_time_ns: close,
        history_length: 3,
        history_size_bytes: 300,
        state_transition_count: 2,
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: workflow_id.to_owned(),
        root_run_id: run_id.to_owned(),
        namespace_division: None,
        memo: b"memo".to_vec(),
        search_attributes: b"attrs".to_vec(),
        keywords: Some(vec![]),
        version,
    }
}

async fn list_all(
    p: &Persistence,
    filter: &VisibilityFilter,
    page: usize,
) -> Vec<VisibilityRecord> {
    let mut out: Vec<VisibilityRecord> = Vec::new();
    loop {
        let after = out.last().map(VisibilityRecord::cursor);
        let batch = p
            .visibility
            .list_visibility(&ns(), filter, after.as_ref(), page)
            .await
            .expect("list_visibility");
        let done = batch.len() < page;
        out.extend(batch);
        if done {
            return out;
        }
    }
}

/// The stored record of run `run_id` of `workflow_id`, if any.
async fn visible(p: &Persistence, workflow_id: &str, run_id: &str) -> Option<VisibilityRecord> {
    p.visibility
        .get_visibility(&key(workflow_id, run_id))
        .await
        .expect("get")
}

pub async fn case_visibility_written_with_the_commit(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    let mut w = create("wf", "r1", vec![]);
    w.visibility = Some(record("wf", "r1", 100, None, 1));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
    let got = visible(p, "wf", "r1").await;
    assert_eq!(got, Some(record("wf", "r1", 100, None, 1)));

    // A commit that fails its condition writes no record either.
    let mut w = update("wf", "r1", 7, vec![]);
    w.visibility = Some(record("wf", "r1", 100, Some(200), 8));
    let err = p
        .executions
        .commit(SHARD, range, &[w])
        .await
        .expect_err("stale version");
    assert!(matches!(err, CommitError::Conflict { .. }), "{err:?}");
    let got = visible(p, "wf", "r1").await;
    assert_eq!(got.map(|r| r.version), Some(1));

    // A commit without a record leaves the stored one.
    p.executions
        .commit(SHARD, range, &[update("wf", "r1", 1, vec![])])
        .await
        .expect("commit");
    let mut w = update("wf", "r1", 2, vec![]);
    w.visibility = Some(record("wf", "r1", 100, Some(200), 3));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
    let got = visible(p, "wf", "r1").await;
    assert_eq!(got, Some(record("wf", "r1", 100, Some(200), 3)));
    assert_eq!(visible(p, "wf", "nope").await, None);
}

pub async fn case_visibility_older_version_never_wins(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    let mut w = create("wf", "r1", vec![]);
    w.visibility = Some(record("wf", "r1", 100, Some(500), 5));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
    let mut w = update("wf", "r1", 1, vec![]);
    w.visibility = Some(record("wf", "r1", 100, None, 4));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
    let got = visible(p, "wf", "r1").await;
    assert_eq!(
        got.map(|r| (r.version, r.close_time_ns)),
        Some((5, Some(500)))
    );
}

pub async fn case_visibility_default_order_and_keyset_paging(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    // Running first (newest start first), then closed by close time desc, then start time
    // desc, then run id ascending.
    let records = [
        record("a", "r-a", 10, Some(1_000), 1),
        record("b", "r-b", 20, Some(1_000), 1),
        record("c", "r-c", 20, Some(1_000), 1),
        record("d", "r-d", 5, Some(2_000), 1),
        record("e", "r-e", 1, None, 1),
        record("f", "r-f", 30, None, 1),
        record("g", "r-g", 30, None, 1),
    ];
    for r in &records {
        let mut w = create(&r.workflow_id, &r.run_id, vec![]);
        w.visibility = Some(r.clone());
        p.executions
            .commit(SHARD, range, &[w])
            .await
            .expect("commit");
    }
    let expected = ["r-f", "r-g", "r-e", "r-d", "r-b", "r-c", "r-a"];
    for page in [1, 2, 3, 100] {
        let got = list_all(p, &VisibilityFilter::default(), page).await;
        let ids: Vec<_> = got.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, expected, "page size {page}");
    }
    // A cursor need not be a stored record.
    let after = VisibilityCursor {
        close_time_ns: Some(1_500),
        start_time_ns: 0,
        run_id: String::new(),
    };
    let got = p
        .visibility
        .list_visibility(&ns(), &VisibilityFilter::default(), Some(&after), 10)
        .await
        .expect("list");
    let ids: Vec<_> = got.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["r-b", "r-c", "r-a"]);
    // Other namespaces see nothing.
    let other = temper_types::NamespaceId("other-ns".to_owned());
    let got = p
        .visibility
        .list_visibility(&other, &VisibilityFilter::default(), None, 10)
        .await
        .expect("list");
    assert!(got.is_empty());
}

pub async fn case_visibility_filters_and_counts(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    let mut failed = record("f", "r-f", 40, Some(400), 1);
    failed.status = FAILED;
    failed.workflow_type = "type-b".to_owned();
    let mut divided = record("d", "r-d", 50, None, 1);
    divided.namespace_division = Some("TemporalScheduler".to_owned());
    let records = [
        record("a", "r-a", 10, None, 1),
        record("b", "r-b", 20, Some(200), 1),
        record("c", "r-c", 30, Some(300), 1),
        failed,
        divided,
    ];
    for r in &records {
        let mut w = create(&r.workflow_id, &r.run_id, vec![]);
        w.visibility = Some(r.clone());
        p.executions
            .commit(SHARD, range, &[w])
            .await
            .expect("commit");
    }
    let cases = [
        (
            VisibilityFilter::default(),
            vec!["r-d", "r-a", "r-f", "r-c", "r-b"],
        ),
        (
            VisibilityFilter {
                no_namespace_division: true,
                ..Default::default()
            },
            vec!["r-a", "r-f", "r-c", "r-b"],
        ),
        (
            VisibilityFilter {
                statuses: Some(vec![COMPLETED, FAILED]),
                ..Default::default()
            },
            vec!["r-f", "r-c", "r-b"],
        ),
        (
            VisibilityFilter {
                workflow_type: Some("type-b".to_owned()),
                ..Default::default()
            },
            vec!["r-f"],
        ),
        (
            VisibilityFilter {
                workflow_id: Some("c".to_owned()),
                ..Default::default()
            },
            vec!["r-c"],
        ),
        (
            VisibilityFilter {
                start_time_min_ns: Some(20),
                start_time_max_ns: Some(40),
                ..Default::default()
            },
            vec!["r-f", "r-c", "r-b"],
        ),
        (
            VisibilityFilter {
                close_time_min_ns: Some(0),
                close_time_max_ns: Some(300),
                ..Default::default()
            },
            vec!["r-c", "r-b"],
        ),
    ];
    for (filter, expected) in cases {
        let got = list_all(p, &filter, 2).await;
        let ids: Vec<_> = got.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, expected, "{filter:?}");
        assert!(got.iter().all(|r| filter.matches(r)), "{filter:?}");
        let count = p
            .visibility
            .count_visibility(&ns(), &filter)
            .await
            .expect("count");
        assert_eq!(count, expected.len() as u64, "{filter:?}");
    }
    let groups = p
        .visibility
        .count_visibility_by_status(&ns(), &VisibilityFilter::default())
        .await
        .expect("count by status");
    assert_eq!(groups, vec![(RUNNING, 2), (COMPLETED, 2), (FAILED, 1)]);
}

pub async fn case_visibility_deleted_with_the_execution(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    for run in ["r1", "r2"] {
        let mut w = create(&format!("wf-{run}"), run, vec![]);
        w.visibility = Some(record(&format!("wf-{run}"), run, 1, None, 1));
        p.executions
            .commit(SHARD, range, &[w])
            .await
            .expect("commit");
    }
    p.executions
        .delete_execution(SHARD, range, &key("wf-r1", "r1"))
        .await
        .expect("delete");
    assert_eq!(visible(p, "wf-r1", "r1").await, None);
    p.visibility
        .delete_visibility(&key("wf-r2", "r2"))
        .await
        .expect("delete visibility");
    p.visibility
        .delete_visibility(&key("wf-r2", "r2"))
        .await
        .expect("deleting twice");
    let got = list_all(p, &VisibilityFilter::default(), 10).await;
    assert!(got.is_empty(), "{got:?}");
}

/// Per-status counts of the runs users see, after starts, closes, a late older write,
/// a run turning divided, and deletes.
pub async fn case_visibility_counts_follow_every_change(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    let visible_runs = VisibilityFilter {
        no_namespace_division: true,
        ..Default::default()
    };
    let counts = |filter: VisibilityFilter| async move {
        p.visibility
            .count_visibility_by_status(&ns(), &filter)
            .await
            .expect("count by status")
    };
    for (wf, run) in [("a", "r-a"), ("b", "r-b"), ("c", "r-c")] {
        let mut w = create(wf, run, vec![]);
        w.visibility = Some(record(wf, run, 10, None, 1));
        p.executions
            .commit(SHARD, range, &[w])
            .await
            .expect("commit");
    }
    assert_eq!(counts(visible_runs.clone()).await, vec![(RUNNING, 3)]);

    let write = |r: VisibilityRecord| async move {
        let key = r.key();
        let mut w = update(&key.workflow_id, &key.run_id, r.version - 1, vec![]);
        w.visibility = Some(r);
        p.executions
            .commit(SHARD, range, &[w])
            .await
            .expect("commit");
    };
    write(record("a", "r-a", 10, Some(20), 2)).await;
    let mut failed = record("b", "r-b", 10, Some(30), 2);
    failed.status = FAILED;
    write(failed).await;
    assert_eq!(
        counts(visible_runs.clone()).await,
        vec![(RUNNING, 1), (COMPLETED, 1), (FAILED, 1)]
    );
    let only_closed = VisibilityFilter {
        statuses: Some(vec![COMPLETED, FAILED]),
        ..visible_runs.clone()
    };
    assert_eq!(
        counts(only_closed.clone()).await,
        vec![(COMPLETED, 1), (FAILED, 1)]
    );
    assert_eq!(
        p.visibility
            .count_visibility(&ns(), &only_closed)
            .await
            .expect("count"),
        2
    );

    // A run that gains a namespace division leaves the counts users see.
    let mut divided = record("c", "r-c", 10, None, 2);
    divided.namespace_division = Some("TemporalScheduler".to_owned());
    write(divided).await;
    assert_eq!(
        counts(visible_runs.clone()).await,
        vec![(COMPLETED, 1), (FAILED, 1)]
    );
    assert_eq!(
        counts(VisibilityFilter::default()).await,
        vec![(RUNNING, 1), (COMPLETED, 1), (FAILED, 1)]
    );

    p.executions
        .delete_execution(SHARD, range, &key("a", "r-a"))
        .await
        .expect("delete");
    assert_eq!(counts(visible_runs).await, vec![(FAILED, 1)]);
}

/// Keyword conditions, equality and "one of", match the current keywords of each run only.
/// A store that indexes keywords applies them itself; for one that does not, the keywords it
/// keeps are checked through the filter the frontend then applies to every record.
pub async fn case_visibility_keyword_filters(p: &Persistence) {
    let store_filters = p.visibility.filters_keywords();
    let range = acquire(p, SHARD).await;
    let with = |wf: &str, version: i64, keywords: &[(&str, &str)]| {
        let mut r = record(wf, &format!("r-{wf}"), 10, None, version);
        r.keywords = Some(
            keywords
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        );
        r
    };
    let records = [
        with("a", 1, &[("Customer", "c-1"), ("Tags", "red")]),
        with(
            "b",
            1,
            &[("Customer", "c-2"), ("Tags", "red"), ("Tags", "blue")],
        ),
        with("c", 1, &[]),
    ];
    for r in &records {
        let mut w = create(&r.workflow_id, &r.run_id, vec![]);
        w.visibility = Some(r.clone());
        p.executions
            .commit(SHARD, range, &[w])
            .await
            .expect("commit");
    }
    let runs = |keywords: &[(&str, &[&str])]| {
        let filter = VisibilityFilter {
            keywords: keywords
                .iter()
                .map(|(n, vs)| {
                    (
                        (*n).to_owned(),
                        vs.iter().map(|v| (*v).to_owned()).collect(),
                    )
                })
                .collect(),
            ..Default::default()
        };
        async move {
            let got = if store_filters {
                let got = list_all(p, &filter, 1).await;
                assert!(got.iter().all(|r| filter.matches(r)), "{filter:?}");
                got
            } else {
                let mut all = list_all(p, &VisibilityFilter::default(), 1).await;
                all.retain(|r| filter.matches(r));
                all
            };
            let mut ids: Vec<String> = got.into_iter().map(|r| r.workflow_id).collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(runs(&[("Customer", &["c-1"])]).await, ["a"]);
    assert_eq!(runs(&[("Tags", &["red"])]).await, ["a", "b"]);
    assert_eq!(runs(&[("Tags", &["blue", "green"])]).await, ["b"]);
    assert_eq!(
        runs(&[("Tags", &["red"]), ("Customer", &["c-2"])]).await,
        ["b"]
    );
    assert!(runs(&[("Customer", &["red"])]).await.is_empty());

    // A newer write replaces the run's keywords; an older one changes nothing.
    let mut w = update("a", "r-a", 1, vec![]);
    w.visibility = Some(with("a", 2, &[("Customer", "c-9")]));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
    let mut w = update("a", "r-a", 2, vec![]);
    w.visibility = Some(with("a", 1, &[("Customer", "c-1")]));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
    assert_eq!(
        visible(p, "a", "r-a").await.and_then(|r| r.keywords),
        Some(vec![("Customer".to_owned(), "c-9".to_owned())])
    );
    assert_eq!(runs(&[("Tags", &["red"])]).await, ["b"]);
    assert_eq!(runs(&[("Customer", &["c-9"])]).await, ["a"]);
    assert!(runs(&[("Customer", &["c-1"])]).await.is_empty());

    p.visibility
        .delete_visibility(&key("b", "r-b"))
        .await
        .expect("delete");
    assert!(runs(&[("Tags", &["blue"])]).await.is_empty());
}

/// Commit `r` as the only write of a new execution row named after its run.
async fn commit_new(p: &Persistence, range: temper_types::RangeId, r: &VisibilityRecord) {
    let mut w = create(&r.workflow_id, &r.run_id, vec![]);
    w.visibility = Some(r.clone());
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("commit");
}

fn run_ids(records: &[VisibilityRecord]) -> Vec<&str> {
    records.iter().map(|r| r.run_id.as_str()).collect()
}

pub async fn case_visibility_close_moves_the_run_once(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    commit_new(p, range, &record("wf", "r1", 100, None, 1)).await;
    let running = VisibilityFilter {
        statuses: Some(vec![RUNNING]),
        ..Default::default()
    };
    let closed = VisibilityFilter {
        statuses: Some(vec![COMPLETED]),
        ..Default::default()
    };
    assert_eq!(run_ids(&list_all(p, &running, 10).await), ["r1"]);
    assert!(list_all(p, &closed, 10).await.is_empty());

    let mut w = update("wf", "r1", 1, vec![]);
    w.visibility = Some(record("wf", "r1", 100, Some(7_200_000_000_000), 2));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("close");
    // An older open record arriving late changes nothing.
    let mut w = update("wf", "r1", 2, vec![]);
    w.visibility = Some(record("wf", "r1", 100, None, 1));
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("late write");

    assert!(list_all(p, &running, 10).await.is_empty());
    assert_eq!(run_ids(&list_all(p, &closed, 10).await), ["r1"]);
    let all = list_all(p, &VisibilityFilter::default(), 10).await;
    assert_eq!(run_ids(&all), ["r1"], "listed once");
    assert_eq!(all[0].close_time_ns, Some(7_200_000_000_000));
    assert_eq!(all[0].version, 2);
    let counts = p
        .visibility
        .count_visibility_by_status(&ns(), &VisibilityFilter::default())
        .await
        .expect("count");
    assert_eq!(counts, vec![(COMPLETED, 1)]);
}

pub async fn case_visibility_pages_across_hours_and_filters(p: &Persistence) {
    const HOUR: i64 = 3_600_000_000_000;
    let range = acquire(p, SHARD).await;
    let mut records = Vec::new();
    // Closes spread over five hours (some hours with several closes, one with none),
    // ties on close time, and runs still open.
    for (i, (start, close)) in [
        (10, Some(HOUR + 5)),
        (20, Some(HOUR + 5)),
        (30, Some(3 * HOUR)),
        (40, Some(3 * HOUR + 1)),
        (50, Some(5 * HOUR - 1)),
        (60, Some(5 * HOUR - 1)),
        (5 * HOUR, Some(5 * HOUR + 2)),
        (70, None),
        (80, None),
        (80, None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(&format!("wf-{i}"), &format!("r-{i}"), start, close, 1);
        if i % 3 == 0 {
            r.workflow_type = "type-b".to_owned();
        }
        if i == 2 || i == 5 {
            r.status = FAILED;
        }
        commit_new(p, range, &r).await;
        records.push(r);
    }
    let cases = [
        VisibilityFilter::default(),
        VisibilityFilter {
            workflow_type: Some("type-b".to_owned()),
            ..Default::default()
        },
        VisibilityFilter {
            statuses: Some(vec![FAILED, RUNNING]),
            ..Default::default()
        },
        VisibilityFilter {
            statuses: Some(vec![COMPLETED]),
            workflow_type: Some("type-a".to_owned()),
            ..Default::default()
        },
        VisibilityFilter {
            start_time_min_ns: Some(40),
            ..Default::default()
        },
        VisibilityFilter {
            close_time_min_ns: Some(HOUR + 6),
            close_time_max_ns: Some(5 * HOUR - 1),
            ..Default::default()
        },
    ];
    for filter in cases {
        let mut expected: Vec<VisibilityRecord> = records
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        expected.sort_by(|a, b| {
            let key = |r: &VisibilityRecord| {
                (
                    std::cmp::Reverse(crate::close_sort(r.close_time_ns)),
                    std::cmp::Reverse(r.start_time_ns),
                    r.run_id.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        for page in [1, 2, 3, 100] {
            let got = list_all(p, &filter, page).await;
            assert_eq!(
                run_ids(&got),
                run_ids(&expected),
                "{filter:?}, page size {page}"
            );
        }
        let count = p
            .visibility
            .count_visibility(&ns(), &filter)
            .await
            .expect("count");
        assert_eq!(count, expected.len() as u64, "{filter:?}");
    }
}

/// A namespace division's runs (system workflows) are found by their division alone, open
/// and closed, and stay apart from the runs users see.
pub async fn case_visibility_division_filter(p: &Persistence) {
    let range = acquire(p, SHARD).await;
    let divided = |wf: &str, division: &str, close: Option<i64>| {
        let mut r = record(wf, &format!("r-{wf}"), 10, close, 1);
        r.namespace_division = Some(division.to_owned());
        r
    };
    for r in [
        record("user-open", "r-user-open", 10, None, 1),
        record("user-closed", "r-user-closed", 10, Some(20), 1),
        divided("batch-open", "TemporalBatcher", None),
        divided("batch-closed", "TemporalBatcher", Some(30)),
        divided("sched-open", "TemporalScheduler", None),
    ] {
        commit_new(p, range, &r).await;
    }
    let of = |division: &str, statuses: Option<Vec<i32>>| VisibilityFilter {
        namespace_division: Some(division.to_owned()),
        statuses,
        ..Default::default()
    };
    assert_eq!(
        run_ids(&list_all(p, &of("TemporalBatcher", None), 1).await),
        ["r-batch-open", "r-batch-closed"]
    );
    assert_eq!(
        run_ids(&list_all(p, &of("TemporalBatcher", Some(vec![RUNNING])), 10).await),
        ["r-batch-open"]
    );
    assert_eq!(
        run_ids(&list_all(p, &of("TemporalScheduler", None), 10).await),
        ["r-sched-open"]
    );
    assert!(list_all(p, &of("Other", None), 10).await.is_empty());
    let users = VisibilityFilter {
        no_namespace_division: true,
        ..Default::default()
    };
    assert_eq!(
        run_ids(&list_all(p, &users, 10).await),
        ["r-user-open", "r-user-closed"]
    );
    assert_eq!(
        p.visibility
            .count_visibility_by_status(&ns(), &of("TemporalBatcher", None))
            .await
            .expect("count"),
        vec![(RUNNING, 1), (COMPLETED, 1)]
    );

    // Closing a divided run moves it once, within its division.
    let mut w = update("batch-open", "r-batch-open", 1, vec![]);
    w.visibility = Some({
        let mut r = divided("batch-open", "TemporalBatcher", Some(40));
        r.version = 2;
        r
    });
    p.executions
        .commit(SHARD, range, &[w])
        .await
        .expect("close");
    assert!(
        list_all(p, &of("TemporalBatcher", Some(vec![RUNNING])), 10)
            .await
            .is_empty()
    );
    assert_eq!(
        run_ids(&list_all(p, &of("TemporalBatcher", None), 10).await),
        ["r-batch-open", "r-batch-closed"]
    );
}
