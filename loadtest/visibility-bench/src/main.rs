//! The visibility benchmark's two halves (`loadtest/visibility` runs them around a server):
//!
//! - `fill` writes visibility records for many runs straight into a stopped server's store
//!   (a million runs through the API would take a quarter of an hour; through the store it
//!   takes seconds), with a custom Keyword attribute, several workflow types, every closed
//!   status and start times spread over the last 30 days;
//! - `register` adds that custom attribute to the namespace through the OperatorService;
//! - `query` times List and Count through the Temporal API against a running server, so the
//!   numbers include everything a client waits for.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use prost::Message;
use temper_persistence::{NamespaceStore, VisibilityRecord};
use temper_persistence_sqlite::SqliteStore;
use temper_types::NamespaceId;
use temporalio_protos::temporal::api::common::v1::{Memo, Payload, SearchAttributes};
use temporalio_protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_protos::temporal::api::operatorservice::v1::AddSearchAttributesRequest;
use temporalio_protos::temporal::api::operatorservice::v1::operator_service_client::OperatorServiceClient;
use temporalio_protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CountWorkflowExecutionsRequest, ListWorkflowExecutionsRequest,
};
use tonic::transport::Channel;

/// The custom Keyword attribute every filled run carries.
const KEYWORD: &str = "BenchKeyword";
/// Distinct values of [`KEYWORD`]: `customer-0` .. `customer-999`.
const KEYWORD_VALUES: u64 = 1000;
/// Workflow types: `BenchType0` .. `BenchType9`.
const TYPES: u64 = 10;
const DAY_NS: i64 = 86_400 * 1_000_000_000;
const HOUR_NS: i64 = 3_600 * 1_000_000_000;
/// Closed runs start within this many days before the fill.
const SPREAD_DAYS: i64 = 30;

#[derive(Parser)]
#[command(name = "temper-visibility-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add the benchmark's custom Keyword attribute to a namespace of a running server.
    Register {
        #[arg(long, default_value = "127.0.0.1:7233")]
        target: String,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Write visibility records straight into a stopped temper's SQLite file.
    Fill {
        /// The server's SQLite file (`start-dev --db-file`); the namespace must exist in it.
        #[arg(long)]
        db_file: std::path::PathBuf,
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long, default_value_t = 1_000_000)]
        closed: u64,
        #[arg(long, default_value_t = 10_000)]
        running: u64,
    },
    /// Time the benchmark's queries through the API; prints one JSON object.
    Query {
        #[arg(long, default_value = "127.0.0.1:7233")]
        target: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Timed calls per query (after one untimed call).
        #[arg(long, default_value_t = 20)]
        repeat: u32,
        /// Page size of the List queries.
        #[arg(long, default_value_t = 100)]
        page_size: i32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Register { target, namespace } => register(&target, &namespace).await,
        Command::Fill {
            db_file,
            namespace,
            closed,
            running,
        } => fill(&db_file, &namespace, closed, running).await,
        Command::Query {
            target,
            namespace,
            repeat,
            page_size,
        } => query(&target, &namespace, repeat, page_size).await,
    }
}

async fn channel(target: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(format!("http://{target}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {target}"))
}

async fn register(target: &str, namespace: &str) -> anyhow::Result<()> {
    let mut client = OperatorServiceClient::new(channel(target).await?);
    let request = AddSearchAttributesRequest {
        namespace: namespace.to_owned(),
        search_attributes: [(KEYWORD.to_owned(), IndexedValueType::Keyword as i32)].into(),
    };
    match client.add_search_attributes(request).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => bail!("AddSearchAttributes: {s}"),
    }
}

/// A deterministic spread of `i` over `0..n` (the splitmix64 finalizer), so neighbouring
/// runs get unrelated types, attribute values and times.
fn spread(i: u64, salt: u64, n: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % n
}

fn keyword_attribute(value: &str) -> Vec<u8> {
    let payload = Payload {
        metadata: [
            ("encoding".to_owned(), b"json/plain".to_vec()),
            ("type".to_owned(), b"Keyword".to_vec()),
        ]
        .into(),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    };
    SearchAttributes {
        indexed_fields: [(KEYWORD.to_owned(), payload)].into(),
    }
    .encode_to_vec()
}

/// The visibility record of filled run `i`; runs `0..running` are open.
fn record(ns: &NamespaceId, i: u64, running: u64, now_ns: i64) -> VisibilityRecord {
    let open = i < running;
    let start = if open {
        now_ns - i64::try_from(spread(i, 1, 3_600_000)).unwrap_or(0) * 1_000_000
    } else {
        now_ns
            - HOUR_NS
            - i64::try_from(spread(
                i,
                2,
                (SPREAD_DAYS * DAY_NS - HOUR_NS).unsigned_abs(),
            ))
            .unwrap_or(0)
    };
    let (status, close) = if open {
        (1, None)
    } else {
        // Mostly completed, as in a real namespace, with every other closed status.
        let status = match spread(i, 3, 100) {
            0..90 => 2,  // Completed
            90..95 => 3, // Failed
            95..97 => 4, // Canceled
            97..99 => 5, // Terminated
            _ => 7,      // TimedOut
        };
        let ms = i64::try_from(spread(i, 4, 3_600_000)).unwrap_or(0) + 1;
        (status, Some(start + ms * 1_000_000))
    };
    let run_id =
        uuid::Uuid::from_u128(u128::from(i) << 64 | u128::from(spread(i, 5, u64::MAX))).to_string();
    let workflow_id = format!("bench-{i}");
    let customer = format!("customer-{}", spread(i, 7, KEYWORD_VALUES));
    VisibilityRecord {
        namespace_id: ns.clone(),
        workflow_id: workflow_id.clone(),
        run_id: run_id.clone(),
        workflow_type: format!("BenchType{}", spread(i, 6, TYPES)),
        task_queue: "bench".to_owned(),
        status,
        start_time_ns: start,
        execution_time_ns: start,
        close_time_ns: close,
        history_length: if open { 3 } else { 11 },
        history_size_bytes: if open { 300 } else { 1500 },
        state_transition_count: if open { 2 } else { 6 },
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: workflow_id,
        root_run_id: run_id,
        namespace_division: None,
        memo: Memo::default().encode_to_vec(),
        search_attributes: keyword_attribute(&customer),
        keywords: Some(vec![(KEYWORD.to_owned(), customer)]),
        version: 1,
    }
}

fn now_ns() -> i64 {
    temper_types::wall_clock_millis().saturating_mul(1_000_000)
}

async fn fill(
    db_file: &std::path::Path,
    namespace: &str,
    closed: u64,
    running: u64,
) -> anyhow::Result<()> {
    let store = SqliteStore::open(db_file)?;
    let ns = store
        .get_namespace_by_name(namespace)
        .await?
        .with_context(|| format!("namespace {namespace} is not in {}", db_file.display()))?;
    let ns = ns.id;
    let now = now_ns();
    let total = closed + running;
    let started = Instant::now();
    const BATCH: u64 = 20_000;
    let mut i = 0;
    while i < total {
        let end = (i + BATCH).min(total);
        let records = (i..end).map(|j| record(&ns, j, running, now)).collect();
        store.load_visibility(records).await?;
        i = end;
    }
    eprintln!(
        "filled {total} runs ({running} running) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One benchmark query: what it asks and how.
struct Case {
    name: &'static str,
    query: String,
    count: bool,
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn cases() -> Vec<Case> {
    let now = now_ns();
    let from = now - 10 * DAY_NS;
    let to = from + HOUR_NS;
    let list = |name, query: String| Case {
        name,
        query,
        count: false,
    };
    vec![
        list("default listing", String::new()),
        list(
            "type and running",
            "WorkflowType = 'BenchType3' AND ExecutionStatus = 'Running'".to_owned(),
        ),
        list("custom keyword", format!("{KEYWORD} = 'customer-42'")),
        list(
            "start time range (1 h)",
            format!(
                "StartTime BETWEEN '{}' AND '{}'",
                rfc3339(from),
                rfc3339(to)
            ),
        ),
        Case {
            name: "count group by status",
            query: "GROUP BY ExecutionStatus".to_owned(),
            count: true,
        },
        Case {
            name: "count",
            query: String::new(),
            count: true,
        },
    ]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn query(target: &str, namespace: &str, repeat: u32, page_size: i32) -> anyhow::Result<()> {
    let mut client =
        WorkflowServiceClient::new(channel(target).await?).max_decoding_message_size(64 << 20);
    let mut results = Vec::new();
    for case in cases() {
        let mut times = Vec::new();
        let mut rows = 0u64;
        for n in 0..=repeat {
            let t = Instant::now();
            rows = if case.count {
                let r = client
                    .count_workflow_executions(CountWorkflowExecutionsRequest {
                        namespace: namespace.to_owned(),
                        query: case.query.clone(),
                    })
                    .await
                    .with_context(|| format!("{}: {}", case.name, case.query))?
                    .into_inner();
                r.count.try_into().unwrap_or(0)
            } else {
                let r = client
                    .list_workflow_executions(ListWorkflowExecutionsRequest {
                        namespace: namespace.to_owned(),
                        page_size,
                        query: case.query.clone(),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("{}: {}", case.name, case.query))?
                    .into_inner();
                r.executions.len().try_into().unwrap_or(0)
            };
            if n > 0 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        let pick = |q: f64| {
            let idx = ((times.len() as f64 - 1.0) * q).round() as usize;
            ms(times[idx.min(times.len() - 1)])
        };
        results.push(serde_json::json!({
            "name": case.name,
            "query": case.query,
            "rows": rows,
            "median_ms": pick(0.5),
            "p95_ms": pick(0.95),
            "max_ms": pick(1.0),
        }));
    }
    println!("{}", serde_json::Value::Array(results));
    Ok(())
}
