//! Fill a fresh keyspace with visibility records through the store (the commit path, as the
//! history service writes them) and report, for the query shapes of the visibility
//! benchmark, how long each takes and how many partitions, pages and rows the planner read.
//!
//! ```sh
//! cargo run -p temper-persistence-cassandra --example visibility_reads -- \
//!     127.0.0.1:9042 100000 1000
//! ```
//!
//! Arguments: contact points, closed runs (default 100,000), running runs (default 1,000).
//! The keyspace `temper_visreads_<random>` is dropped at the end. Loopback clusters only:
//! this is a measurement, not a test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use temper_persistence::{
    CurrentExecution, CurrentRunCondition, CurrentRunWrite, ExecutionKey, ExecutionWrite,
    ShardRecord, VisibilityFilter, VisibilityRecord,
};
use temper_persistence_cassandra::schema::{self, Replication};
use temper_persistence_cassandra::{CassandraConfig, CassandraStore, VisibilityReadTotals};
use temper_types::{NamespaceId, RangeId, ShardId};

const SHARDS: u32 = 16;
const PER_COMMIT: usize = 40;
const TYPES: usize = 10;
const HOUR_NS: i64 = 3_600_000_000_000;

fn record(i: usize, now_ns: i64, closed: bool) -> VisibilityRecord {
    // Starts spread over the last 24 hours; closes a few minutes after the start.
    let start = now_ns - (i as i64 % 86_400) * 1_000_000_000 - 600 * 1_000_000_000;
    let close = closed.then_some(start + (i as i64 % 300) * 1_000_000_000);
    let status = match (closed, i % 20) {
        (false, _) => 1,
        (true, 0) => 3,
        (true, 1) => 5,
        (true, _) => 2,
    };
    VisibilityRecord {
        namespace_id: NamespaceId("bench-ns".into()),
        workflow_id: format!("wf-{i}"),
        run_id: format!("run-{i:08}"),
        workflow_type: format!("Type{}", i % TYPES),
        task_queue: "bench".into(),
        status,
        start_time_ns: start,
        execution_time_ns: start,
        close_time_ns: close,
        history_length: 11,
        history_size_bytes: 2_048,
        state_transition_count: 7,
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: format!("wf-{i}"),
        root_run_id: format!("run-{i:08}"),
        namespace_division: None,
        memo: Vec::new(),
        search_attributes: b"custom attributes".to_vec(),
        keywords: Some(vec![("Customer".into(), format!("c-{}", i % 100))]),
        version: 3,
    }
}

fn write(r: VisibilityRecord) -> ExecutionWrite {
    ExecutionWrite {
        key: ExecutionKey {
            namespace_id: r.namespace_id.clone(),
            workflow_id: r.workflow_id.clone(),
            run_id: r.run_id.clone(),
        },
        expected_version: None,
        new_version: 3,
        state: b"state".to_vec(),
        current: Some(CurrentRunWrite {
            condition: CurrentRunCondition::MustNotExist,
            record: CurrentExecution {
                run_id: r.run_id.clone(),
                create_request_id: "req".into(),
                state: 1,
                status: r.status,
                start_time_ms: r.start_time_ns / 1_000_000,
            },
        }),
        tasks: Vec::new(),
        visibility: Some(r),
    }
}

fn shard_of(workflow_id: &str) -> u32 {
    let h = workflow_id
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    h % SHARDS + 1
}

async fn measure<T>(
    store: &CassandraStore,
    name: &str,
    run: impl AsyncFnOnce() -> T,
    describe: impl Fn(&T) -> String,
) {
    let before: VisibilityReadTotals = store.visibility_read_totals();
    let started = Instant::now();
    let out = run().await;
    let took = started.elapsed();
    let after = store.visibility_read_totals();
    println!(
        "{name:<44} {:>8.1} ms  partitions {:>4}  pages {:>5}  rows {:>7}  -> {}",
        took.as_secs_f64() * 1000.0,
        after.reads.partitions - before.reads.partitions,
        after.reads.pages - before.reads.pages,
        after.reads.rows - before.reads.rows,
        describe(&out)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let points = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9042".into());
    let closed: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let running: usize = args.get(2).map_or(Ok(1_000), |a| a.parse())?;
    let random = uuid::Uuid::new_v4().simple().to_string();
    let config = CassandraConfig {
        contact_points: CassandraConfig::parse_contact_points(&points),
        keyspace: format!("temper_visreads_{}", &random[..12]),
        ..CassandraConfig::default()
    };
    schema::setup(config.clone(), &Replication::Simple { factor: 1 }).await?;
    let store = CassandraStore::connect(config.clone()).await?;
    let p = store.clone().into_persistence();

    let mut ranges = Vec::new();
    for s in 1..=SHARDS {
        let row = p.executions.get_or_create_shard(ShardId(s), b"").await?;
        let held = RangeId(row.range_id.0 + 1);
        p.executions
            .update_shard(
                row.range_id,
                &ShardRecord {
                    shard_id: ShardId(s),
                    range_id: held,
                    info: Vec::new(),
                },
            )
            .await?;
        ranges.push(held);
    }

    let now_ns = temper_types::wall_clock_millis().saturating_mul(1_000_000);
    let filled = Instant::now();
    let mut per_shard: Vec<Vec<ExecutionWrite>> = vec![Vec::new(); SHARDS as usize];
    for i in 0..closed + running {
        let r = record(i, now_ns, i < closed);
        per_shard[(shard_of(&r.workflow_id) - 1) as usize].push(write(r));
    }
    let p = Arc::new(p);
    let mut tasks = tokio::task::JoinSet::new();
    for (s, writes) in per_shard.into_iter().enumerate() {
        let p = p.clone();
        let range = ranges[s];
        tasks.spawn(async move {
            for chunk in writes.chunks(PER_COMMIT) {
                p.executions
                    .commit(ShardId(s as u32 + 1), range, chunk)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    println!(
        "filled {closed} closed + {running} running runs in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let ns = NamespaceId("bench-ns".into());
    let v = &p.visibility;
    let list = |f: VisibilityFilter| {
        let ns = ns.clone();
        async move { v.list_visibility(&ns, &f, None, 100).await.map(|r| r.len()) }
    };
    let page = |r: &Result<usize, _>| format!("{r:?} rows");
    measure(
        &store,
        "first page of 100 (default order)",
        async || list(VisibilityFilter::default()).await,
        page,
    )
    .await;
    measure(
        &store,
        "WorkflowType = 'Type3' AND Running",
        async || {
            list(VisibilityFilter {
                workflow_type: Some("Type3".into()),
                statuses: Some(vec![1]),
                ..Default::default()
            })
            .await
        },
        page,
    )
    .await;
    measure(
        &store,
        "WorkflowType = 'Type3' (any status)",
        async || {
            list(VisibilityFilter {
                workflow_type: Some("Type3".into()),
                ..Default::default()
            })
            .await
        },
        page,
    )
    .await;
    measure(
        &store,
        "ExecutionStatus = 'Failed'",
        async || {
            list(VisibilityFilter {
                statuses: Some(vec![3]),
                ..Default::default()
            })
            .await
        },
        page,
    )
    .await;
    measure(
        &store,
        "StartTime in the hour 6 hours ago",
        async || {
            list(VisibilityFilter {
                start_time_min_ns: Some(now_ns - 7 * HOUR_NS),
                start_time_max_ns: Some(now_ns - 6 * HOUR_NS),
                ..Default::default()
            })
            .await
        },
        page,
    )
    .await;
    // This store does not index keywords: the frontend reads the default order in batches
    // and keeps the runs that match, until the page is full. One run in a hundred matches.
    measure(
        &store,
        "Customer = 'c-42' (custom Keyword)",
        async || {
            let wanted = VisibilityFilter {
                keywords: vec![("Customer".into(), vec!["c-42".into()])],
                ..Default::default()
            };
            let mut cursor = None;
            let mut found = 0;
            while found < 100 {
                let batch = v
                    .list_visibility(&ns, &VisibilityFilter::default(), cursor.as_ref(), 500)
                    .await?;
                found += batch.iter().filter(|r| wanted.matches(r)).count();
                match batch.last() {
                    Some(last) if batch.len() == 500 => cursor = Some(last.cursor()),
                    _ => break,
                }
            }
            Ok::<usize, temper_persistence::StoreError>(found.min(100))
        },
        page,
    )
    .await;
    measure(
        &store,
        "WorkflowId = 'wf-4242'",
        async || {
            list(VisibilityFilter {
                workflow_id: Some("wf-4242".into()),
                ..Default::default()
            })
            .await
        },
        page,
    )
    .await;
    measure(
        &store,
        "Count GROUP BY ExecutionStatus",
        async || {
            v.count_visibility_by_status(&ns, &VisibilityFilter::default())
                .await
        },
        |r| format!("{r:?}"),
    )
    .await;
    measure(
        &store,
        "Count WorkflowType = 'Type3'",
        async || {
            v.count_visibility(
                &ns,
                &VisibilityFilter {
                    workflow_type: Some("Type3".into()),
                    ..Default::default()
                },
            )
            .await
        },
        |r| format!("{r:?}"),
    )
    .await;

    drop(store);
    tokio::time::sleep(Duration::from_millis(100)).await;
    schema::drop_keyspace(config).await?;
    Ok(())
}
