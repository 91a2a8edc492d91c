//! `temper-loadtest fuzz`: arbitrary and mutated requests to every WorkflowService and
//! OperatorService RPC, each answer classified as fine (OK or an error a client can cause)
//! or bad (INTERNAL, UNKNOWN, a dropped connection...), and a health check at the end.
//!
//! Request `i` of seed `s` is a pure function of `(s, i)` and of the few values the run
//! learned at its start (workflow ids it started, task tokens it polled), so
//! `--seed s --only-index i` sends the same request again.

mod generate;
mod mutate;
mod report;
mod schema;
mod wire;

use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use temporalio_protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::temporal::api::schedule::v1::{
    Schedule, ScheduleAction, schedule_action::Action,
};
use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CreateScheduleRequest, DescribeNamespaceRequest, PollWorkflowTaskQueueRequest,
    StartWorkflowExecutionRequest,
};
use tonic::transport::{Channel, Endpoint};

pub use generate::Known;
pub use report::{Outcome, Report, Verdict};
use schema::Method;

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// The server's frontend, HOST:PORT (plain HTTP/2, no TLS).
    #[arg(long, default_value = "127.0.0.1:7233")]
    pub target: String,
    /// How many requests to send.
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Seed of the request generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Send only request number N of the seed (to reproduce a bad answer).
    #[arg(long, value_name = "N")]
    pub only_index: Option<u64>,
    /// With --only-index: also write that request's encoded body to FILE (to replay it with
    /// another client).
    #[arg(long, value_name = "FILE", requires = "only_index")]
    pub dump_request: Option<std::path::PathBuf>,
    /// The server's process id: report its resident memory before and after.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Deadline of each call (long polls answer DEADLINE_EXCEEDED after it).
    #[arg(long, default_value = "2s", value_parser = crate::cli::parse_duration)]
    pub deadline: Duration,
}

/// How a request was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Random fields of the method's request type.
    Random,
    /// A valid request with one field corrupted.
    Mutated,
    /// An encoded request broken at the byte level.
    Malformed,
}

/// One generated request.
pub struct Planned {
    pub method: usize,
    pub mode: Mode,
    pub body: Vec<u8>,
}

/// The seed of request `index`: a splitmix64 step over both, so neighbouring indexes get
/// unrelated streams.
fn request_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(index.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Request `index` of `seed`. Methods go round robin, so every method gets its share of
/// even a short run.
pub fn plan(methods: &[Method], known: &Known, seed: u64, index: u64) -> Planned {
    let mut rng = StdRng::seed_from_u64(request_seed(seed, index));
    let method = (index % methods.len() as u64) as usize;
    let m = &methods[method];
    let roll = rng.random_range(0..100);
    let mut g = generate::Gen::new(&mut rng, known);
    if roll < 35
        && let Some(valid) = mutate::valid(&mut g, &m.name)
    {
        // One request in ten of these is sent as it is: the baseline the mutations vary.
        let body = if g.rng.random_bool(0.1) {
            valid
        } else {
            mutate::corrupt_one(&mut g, &m.input, &valid)
        };
        return Planned {
            method,
            mode: Mode::Mutated,
            body,
        };
    }
    g.maps = roll < 90;
    let body = g.message(&m.input, 0).encode_to_vec();
    if roll >= 90 {
        return Planned {
            method,
            mode: Mode::Malformed,
            body: mutate::break_bytes(&mut g, body),
        };
    }
    Planned {
        method,
        mode: Mode::Random,
        body,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error("cannot connect to {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("{bad} bad answer(s) (see above)")]
    BadAnswers { bad: u64 },
    #[error("the server did not answer DescribeNamespace(default) after the run: {0}")]
    Unhealthy(String),
    #[error("cannot write the request: {0}")]
    Dump(String),
    #[error("--only-index {index} is past --requests {requests}")]
    IndexPastEnd { index: u64, requests: u64 },
}

/// Run the fuzzer and print its report; an error if any answer was bad or the server is
/// unhealthy at the end.
pub async fn run(args: FuzzArgs) -> Result<Report, FuzzError> {
    let (_pool, methods, streaming) = schema::load()?;
    let uri = format!("http://{}", args.target);
    let connect_err = |detail: String| FuzzError::Connect {
        target: args.target.clone(),
        detail,
    };
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| connect_err(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let channel = connect(&endpoint).await.map_err(connect_err)?;
    health(&channel).await.map_err(connect_err)?;
    let known = learn(&channel, args.seed).await;
    let rss_before = args.server_pid.and_then(rss_bytes);

    let indexes: Vec<u64> = match args.only_index {
        Some(i) if i >= args.requests && args.requests > 0 => {
            return Err(FuzzError::IndexPastEnd {
                index: i,
                requests: args.requests,
            });
        }
        Some(i) => vec![i],
        None => (0..args.requests).collect(),
    };
    if let (Some(path), Some(&index)) = (&args.dump_request, indexes.first()) {
        let p = plan(&methods, &known, args.seed, index);
        std::fs::write(path, &p.body)
            .map_err(|e| FuzzError::Dump(format!("{}: {e}", path.display())))?;
        eprintln!(
            "fuzz: request {index} ({}) written to {}",
            methods[p.method].path,
            path.display()
        );
    }
    let mut report = Report::new(args.seed, &methods, streaming);
    let started = std::time::Instant::now();
    let total = indexes.len();
    let mut outcomes = futures::stream::iter(indexes)
        .map(|index| {
            let (methods, known, channel) = (&methods, &known, channel.clone());
            let (seed, deadline) = (args.seed, args.deadline);
            async move {
                let p = plan(methods, known, seed, index);
                let size = p.body.len();
                let answer = wire::call(channel, &methods[p.method].path, p.body, deadline).await;
                Outcome::new(index, p.method, p.mode, size, answer)
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    let mut done = 0usize;
    while let Some(outcome) = outcomes.next().await {
        report.add(outcome);
        done += 1;
        if total >= 1000 && done.is_multiple_of(total / 10) {
            eprintln!(
                "fuzz: {done}/{total} requests, {} bad, {:.0?}",
                report.bad_count(),
                started.elapsed()
            );
        }
    }
    report.elapsed = started.elapsed();

    // The server must still answer; allow it a few seconds to finish what it was doing.
    let mut healthy = health(&channel).await;
    for _ in 0..10 {
        if healthy.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        healthy = match connect(&endpoint).await {
            Ok(c) => health(&c).await,
            Err(e) => Err(e),
        };
    }
    report.healthy = healthy.clone().err();
    report.rss = rss_before.zip(args.server_pid.and_then(rss_bytes));
    Ok(report)
}

async fn connect(endpoint: &Endpoint) -> Result<Channel, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match endpoint.connect().await {
            Ok(c) => return Ok(c),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(last)
}

/// The health check: DescribeNamespace of `default`.
async fn health(channel: &Channel) -> Result<(), String> {
    let body = DescribeNamespaceRequest {
        namespace: "default".into(),
        ..Default::default()
    }
    .encode_to_vec();
    wire::call(
        channel.clone(),
        "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace",
        body,
        Duration::from_secs(5),
    )
    .await
    .map(|_| ())
    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// Create a schedule and start a few workflows (ids fixed by the seed) and poll their first
/// workflow tasks, so that fuzzed requests can name a schedule and workflows that exist and
/// carry task tokens the server issued. Best effort: a server that refuses leaves the lists short.
async fn learn(channel: &Channel, seed: u64) -> Known {
    let task_queue = format!("fuzz-{seed}");
    let mut known = Known {
        workflow_ids: Vec::new(),
        task_queue: task_queue.clone(),
        task_tokens: Vec::new(),
        schedule_id: format!("fuzz-{seed}"),
    };
    let wfs = "/temporal.api.workflowservice.v1.WorkflowService/";
    let schedule = CreateScheduleRequest {
        namespace: "default".into(),
        schedule_id: known.schedule_id.clone(),
        schedule: Some(Schedule {
            spec: Some(mutate::spec()),
            action: Some(ScheduleAction {
                action: Some(Action::StartWorkflow(NewWorkflowExecutionInfo {
                    workflow_id: format!("fuzz-{seed}-scheduled"),
                    workflow_type: Some(WorkflowType {
                        name: "fuzz".into(),
                    }),
                    task_queue: Some(crate::scenario::normal_queue(&task_queue)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let path = format!("{wfs}CreateSchedule");
    let _ = wire::call(
        channel.clone(),
        &path,
        schedule.encode_to_vec(),
        Duration::from_secs(5),
    )
    .await;
    for k in 0..4 {
        let workflow_id = format!("fuzz-{seed}-{k}");
        let start = StartWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_id: workflow_id.clone(),
            workflow_type: Some(WorkflowType {
                name: "fuzz".into(),
            }),
            task_queue: Some(crate::scenario::normal_queue(&task_queue)),
            workflow_run_timeout: Some(crate::scenario::proto_duration(Duration::from_secs(3600))),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        let path = format!("{wfs}StartWorkflowExecution");
        let _ = wire::call(
            channel.clone(),
            &path,
            start.encode_to_vec(),
            Duration::from_secs(5),
        )
        .await;
        known.workflow_ids.push(workflow_id);
    }
    for _ in 0..4 {
        let poll = PollWorkflowTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(crate::scenario::normal_queue(&task_queue)),
            identity: "fuzzer".into(),
            ..Default::default()
        };
        let path = format!("{wfs}PollWorkflowTaskQueue");
        let answer = wire::call(
            channel.clone(),
            &path,
            poll.encode_to_vec(),
            Duration::from_secs(3),
        )
        .await;
        let response = answer.ok().and_then(|b| {
            temporalio_protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse::decode(b.as_slice()).ok()
        });
        match response {
            Some(r) if !r.task_token.is_empty() => known.task_tokens.push(r.task_token),
            _ => break,
        }
    }
    known
}

/// Resident memory of `pid`, from /proc (Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_a_function_of_seed_and_index() {
        let (_, methods, _) = schema::load().expect("descriptor set loads");
        let known = Known {
            workflow_ids: vec!["w".into()],
            task_queue: "q".into(),
            task_tokens: vec![vec![1, 2, 3]],
            schedule_id: "s".into(),
        };
        for i in 0..300 {
            let a = plan(&methods, &known, 7, i);
            let b = plan(&methods, &known, 7, i);
            assert_eq!((a.method, a.mode), (b.method, b.mode));
            if a.mode == Mode::Malformed {
                assert_eq!(a.body, b.body, "request {i}");
            } else {
                // The same message, but map entries may come in another order: the same
                // bytes, perhaps in another order.
                let sorted = |body: &[u8]| {
                    let mut b = body.to_vec();
                    b.sort_unstable();
                    b
                };
                assert_eq!(sorted(&a.body), sorted(&b.body), "request {i}");
            }
        }
    }

    #[test]
    fn requests_stay_within_a_few_megabytes() {
        let (_, methods, _) = schema::load().expect("descriptor set loads");
        let known = Known::default();
        let mut modes = std::collections::BTreeMap::new();
        let started = std::time::Instant::now();
        for i in 0..1000 {
            let p = plan(&methods, &known, 3, i);
            assert!(
                p.body.len() < 8 << 20,
                "request {i}: {} bytes",
                p.body.len()
            );
            *modes.entry(p.mode).or_insert(0) += 1;
        }
        assert_eq!(modes.len(), 3, "every mode is used: {modes:?}");
        eprintln!("1000 requests generated in {:?}", started.elapsed());
    }
}
