//! Trace export: a `temper server start-dev --otlp-endpoint` sends its RPC spans, with the
//! namespace and workflow id, to an OTLP/gRPC collector (a fake one here), continuing the
//! trace a caller's `traceparent` names.

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use temper_proto::temporal::api::common::v1::WorkflowType;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
use temper_proto::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    resource: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Exported>>>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn flatten(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().expect("spans");
        for rs in request.into_inner().resource_spans {
            let resource = flatten(
                rs.resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default(),
            );
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Exported {
                        name: s.name,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        attributes: flatten(&s.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Wait up to 20 s for a span that `matches`.
    async fn wait_for(&self, what: &str, matches: impl Fn(&Exported) -> bool) -> Exported {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.0.lock().expect("spans").iter().find(|s| matches(s)) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no exported span {what}; got {:#?}",
                self.0.lock().expect("spans")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn start_request(workflow_id: &str) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType {
            name: "Traced".into(),
        }),
        task_queue: Some(TaskQueue {
            name: "otlp-test".into(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
        identity: "otlp-test".into(),
        ..Default::default()
    }
}

impl Collector {
    /// A collector listening on a loopback port; returns its endpoint URL.
    async fn start() -> (Self, String) {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("collector port");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (collector, format!("http://127.0.0.1:{port}"))
    }
}

/// Kills the process when dropped, so a failed assertion leaves nothing running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(port: u16) -> WorkflowServiceClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match WorkflowServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "temper did not listen: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn traced_request(
    workflow_id: &str,
    trace_id: &str,
    span_id: &str,
) -> tonic::Request<StartWorkflowExecutionRequest> {
    let mut request = tonic::Request::new(start_request(workflow_id));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{span_id}-01")
            .parse()
            .expect("ascii"),
    );
    request
}

#[tokio::test]
async fn rpc_spans_reach_the_collector_with_their_workflow_and_the_callers_trace() {
    let (collector, endpoint) = Collector::start().await;

    let port = support::free_port();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_temper"))
            .args(["server", "start-dev", "--ephemeral", "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--log-level", "warn"])
            .args(["--otlp-endpoint", &endpoint])
            // Export every 200 ms instead of every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("temper starts"),
    );
    let mut client = connect(port).await;

    // A call that continues a caller's trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let run_id = client
        .start_workflow_execution(traced_request("otlp-traced", trace_id, caller_span))
        .await
        .expect("started")
        .into_inner()
        .run_id;
    // And one that starts its own.
    client
        .start_workflow_execution(start_request("otlp-untraced"))
        .await
        .expect("started");

    let traced = collector
        .wait_for("for the traced start", |s| {
            s.attributes.get("workflow_id").map(String::as_str) == Some("otlp-traced")
        })
        .await;
    assert_eq!(traced.name, "rpc");
    assert_eq!(traced.trace_id, trace_id, "the caller's trace continues");
    assert_eq!(
        traced.parent_span_id, caller_span,
        "under the caller's span"
    );
    assert_eq!(traced.attributes["method"], "StartWorkflowExecution");
    assert_eq!(traced.attributes["service"], "WorkflowService");
    assert_eq!(traced.attributes["namespace"], "default");
    assert_eq!(traced.resource["service.name"], "temper");
    assert_eq!(
        traced.resource["service.instance.id"],
        format!("127.0.0.1:{port}")
    );
    assert!(!run_id.is_empty());

    let untraced = collector
        .wait_for("for the untraced start", |s| {
            s.attributes.get("workflow_id").map(String::as_str) == Some("otlp-untraced")
        })
        .await;
    assert_ne!(untraced.trace_id, trace_id, "a new trace");
    assert!(untraced.parent_span_id.is_empty(), "a root span");
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// A frontend-only node passes the trace on to the history node it calls: the history
/// node's span is in the caller's trace, under the frontend's span.
#[tokio::test]
async fn a_trace_continues_from_the_frontend_node_to_the_history_node() {
    let (collector, endpoint) = Collector::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("cluster.sqlite");
    let front_port = support::free_port();
    let back_port = support::free_port();
    let front_gossip = free_udp_port();
    let back_gossip = free_udp_port();
    let node = |name: &str, roles: &str, port: u16, gossip: u16, seed: u16| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_temper"));
        command.args(["server", "start"]);
        for set in [
            format!("node.name={name}"),
            format!("node.roles={roles}"),
            format!("node.grpc_address=127.0.0.1:{port}"),
            format!("node.membership_address=127.0.0.1:{gossip}"),
            format!("cluster.seeds=[\"127.0.0.1:{seed}\"]"),
            "cluster.num_shards=4".into(),
            "cluster.dead_after_ms=2000".into(),
            "store.kind=sqlite".into(),
            format!("store.path={}", db.display()),
            "log.level=warn".into(),
            format!("tracing.otlp_endpoint={endpoint}"),
        ] {
            command.args(["--set", &set]);
        }
        Killed(
            command
                .env("OTEL_BSP_SCHEDULE_DELAY", "200")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("temper starts"),
        )
    };
    let _back = node(
        "back",
        "[\"history\", \"matching\"]",
        back_port,
        back_gossip,
        front_gossip,
    );
    let _front = node(
        "front",
        "[\"frontend\"]",
        front_port,
        front_gossip,
        back_gossip,
    );

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    connect(front_port)
        .await
        .start_workflow_execution(traced_request("otlp-cluster", trace_id, caller_span))
        .await
        .expect("started through the frontend node");

    let front = collector
        .wait_for("from the frontend node", |s| {
            s.trace_id == trace_id
                && s.attributes.get("service").map(String::as_str) == Some("WorkflowService")
        })
        .await;
    assert_eq!(front.resource["service.instance.id"], "front");
    assert_eq!(front.parent_span_id, caller_span);
    let back = collector
        .wait_for("from the history node", |s| {
            s.trace_id == trace_id
                && s.attributes.get("service").map(String::as_str) == Some("HistoryService")
        })
        .await;
    assert_eq!(back.resource["service.instance.id"], "back");
    assert_eq!(back.attributes["method"], "StartWorkflowExecution");
    assert_eq!(
        back.parent_span_id, front.span_id,
        "under the frontend's span"
    );
}
