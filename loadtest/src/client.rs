//! gRPC clients for the target server: several HTTP/2 connections used round robin (one
//! connection serializes its streams through one socket and one server task), gzip both
//! ways, and request helpers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use temporalio_protos::temporal::api::operatorservice::v1::operator_service_client::OperatorServiceClient;
use temporalio_protos::temporal::api::workflowservice::v1::workflow_service_client::WorkflowServiceClient;
use temporalio_protos::temporal::api::workflowservice::v1::{
    DescribeNamespaceRequest, DescribeTaskQueueRequest, GetSystemInfoRequest,
    RegisterNamespaceRequest,
};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

pub type Client = WorkflowServiceClient<Channel>;
pub type OperatorClient = OperatorServiceClient<Channel>;

/// Deadline of an ordinary RPC.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a long poll; servers answer empty polls after about 60 s.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(70);
/// How long to keep trying to reach a server that is still starting.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
/// Largest message accepted (a long history page).
const MAX_MESSAGE: usize = 128 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {target} (is the server running there?): {detail}")]
    Connect { target: String, detail: String },
    #[error("{target} does not answer GetSystemInfo: {status} (is it a Temporal API server?)")]
    NotTemporal { target: String, status: Status },
    #[error("namespace {namespace}: {status}")]
    Namespace { namespace: String, status: Status },
    #[error("namespace {namespace} was registered but did not become usable within {waited:?}")]
    NamespaceNotReady { namespace: String, waited: Duration },
}

/// The connections to the target.
pub struct Clients {
    clients: Vec<Client>,
    /// OperatorService on the first connection (a few setup calls per run).
    operator: OperatorClient,
    next: AtomicUsize,
}

impl Clients {
    /// Open `connections` connections to `uri` (`http://host:port`) and check that a Temporal
    /// API server answers, retrying for up to `CONNECT_PATIENCE` while it is still coming up.
    pub async fn connect(uri: &str, connections: usize, gzip: bool) -> Result<Self, ConnectError> {
        let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
        loop {
            match Self::try_connect(uri, connections, gzip).await {
                Ok(c) => return Ok(c),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(ConnectError::NotTemporal { status, .. })
                    if status.code() != Code::Unavailable =>
                {
                    return Err(ConnectError::NotTemporal {
                        target: uri.to_string(),
                        status,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn try_connect(uri: &str, connections: usize, gzip: bool) -> Result<Self, ConnectError> {
        let err = |e: tonic::transport::Error| ConnectError::Connect {
            target: uri.to_string(),
            detail: error_chain(&e),
        };
        let endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(err)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let mut clients = Vec::with_capacity(connections);
        let mut operator = None;
        for _ in 0..connections.max(1) {
            let channel = endpoint.connect().await.map_err(err)?;
            operator.get_or_insert_with(|| OperatorServiceClient::new(channel.clone()));
            let mut c = WorkflowServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            if gzip {
                c = c
                    .send_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Gzip);
            }
            clients.push(c);
        }
        let me = Self {
            clients,
            operator: operator.expect("at least one connection was made"),
            next: AtomicUsize::new(0),
        };
        me.get()
            .get_system_info(req(GetSystemInfoRequest::default()))
            .await
            .map_err(|status| ConnectError::NotTemporal {
                target: uri.to_string(),
                status,
            })?;
        Ok(me)
    }

    /// The next connection, round robin.
    pub fn get(&self) -> Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        self.clients[i].clone()
    }

    pub fn operator(&self) -> OperatorClient {
        self.operator.clone()
    }

    /// Register `namespace` unless it exists, and wait until the server accepts calls in it
    /// (Temporal's frontends learn of a new namespace from a cache refreshed every few
    /// seconds).
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), ConnectError> {
        let ns_err = |status| ConnectError::Namespace {
            namespace: namespace.to_string(),
            status,
        };
        let describe = self
            .get()
            .describe_namespace(req(DescribeNamespaceRequest {
                namespace: namespace.to_string(),
                ..Default::default()
            }))
            .await;
        match describe {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(ns_err(s)),
        }
        let register = self
            .get()
            .register_namespace(req(RegisterNamespaceRequest {
                namespace: namespace.to_string(),
                description: "registered by temper-loadtest".to_string(),
                workflow_execution_retention_period: Some(prost_wkt_types::Duration {
                    seconds: 24 * 3600,
                    nanos: 0,
                }),
                ..Default::default()
            }))
            .await;
        match register {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(ns_err(s)),
        }
        let waited = Duration::from_secs(30);
        let deadline = tokio::time::Instant::now() + waited;
        loop {
            // Any namespace-scoped call goes through the frontend's namespace cache.
            let probe = self
                .get()
                .describe_task_queue(req(DescribeTaskQueueRequest {
                    namespace: namespace.to_string(),
                    task_queue: Some(crate::scenario::normal_queue("loadtest-namespace-probe")),
                    ..Default::default()
                }))
                .await;
            match probe {
                Ok(_) => return Ok(()),
                Err(s) if s.code() == Code::NotFound || s.code() == Code::Unavailable => {}
                // Some servers answer the probe itself with an error that is not about the
                // namespace (unimplemented, bad request): the namespace is known.
                Err(_) => return Ok(()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectError::NamespaceNotReady {
                    namespace: namespace.to_string(),
                    waited,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// An error and its causes on one line, without the repeats transport errors carry.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let msg = err.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.retain(|p| !msg.contains(p.as_str()));
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A request with the ordinary deadline.
pub fn req<T>(msg: T) -> Request<T> {
    with_timeout(msg, RPC_TIMEOUT)
}

pub fn with_timeout<T>(msg: T, timeout: Duration) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(timeout);
    r
}

/// Errors worth another try: the server or the connection is busy or briefly away.
pub fn is_transient(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Unknown
    )
}

/// Run `call` up to four times while it fails with a transient error.
pub async fn retry<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut backoff = Duration::from_millis(20);
    for _ in 0..3 {
        match call().await {
            Err(s) if is_transient(&s) => {
                tokio::time::sleep(backoff).await;
                backoff *= 4;
            }
            other => return other,
        }
    }
    call().await
}

/// A short, single-line form of a status for failure reasons (ids and long details cut).
pub fn status_reason(s: &Status) -> String {
    let msg: String = s.message().chars().take(200).collect();
    format!("{:?}: {msg}", s.code())
}
