//! Liveness and readiness for orchestrators: `GET /health/live` answers 200 while the
//! process runs; `GET /health/ready` answers 200 once the node can serve (the store answers
//! and the node runs every shard the ring gives it) and 503 with the reason otherwise.
//! The same readiness drives the gRPC health service (`grpc.health.v1`) of each role.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic_health::pb::health_server::HealthServer;

/// Whether the node is ready, and why not.
#[derive(Default)]
pub struct Health {
    state: Mutex<Readiness>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Starting(String),
    Ready,
    Stopping,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::Starting("starting".into())
    }
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set(&self, r: Readiness) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = r;
    }

    pub fn get(&self) -> Readiness {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn is_ready(&self) -> bool {
        self.get() == Readiness::Ready
    }
}

async fn live() -> &'static str {
    "live\n"
}

async fn ready(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.get() {
        Readiness::Ready => (StatusCode::OK, "ready\n".into()),
        Readiness::Starting(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
        Readiness::Stopping => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: stopping\n".into(),
        ),
    }
}

/// The gRPC health service (`grpc.health.v1`) and the reporter that sets its statuses. Like
/// every service here it takes gzip-compressed requests, as the Temporal server does (the
/// SDKs' clients compress theirs), and compresses answers for clients that accept gzip.
pub fn grpc_health_service() -> (
    tonic_health::server::HealthReporter,
    HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let service = service
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    (reporter, service)
}

/// Serve the endpoints on `listen` until `stop`; over TLS with the node's certificate when
/// `tls` is given.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    tls: Option<&temper_tls::ServerTls>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let app = axum::Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the health address {listen}"))?;
    crate::tls::serve_http("health", listener, app, tls, stop)
}

/// Keeps one slow or failed store call from turning a ready node not-ready: a node that was
/// ready stays ready until the store has failed every check for `window` (a readiness probe
/// that flapped on each timed-out call would pull healthy nodes out of service whenever one
/// store replica is slow). A node that was not ready yet is not ready while the store fails.
#[derive(Debug)]
pub struct StoreFailures {
    window: std::time::Duration,
    failing_since: Option<std::time::Instant>,
}

impl StoreFailures {
    pub fn new(window: std::time::Duration) -> Self {
        Self {
            window,
            failing_since: None,
        }
    }

    /// Readiness from this check of the store (`Err`: why it failed), what the rest of the
    /// node says, and whether the node was ready before.
    pub fn judge(
        &mut self,
        store: Result<(), String>,
        rest: Readiness,
        was_ready: bool,
        now: std::time::Instant,
    ) -> Readiness {
        let why = match store {
            Ok(()) => {
                if let Some(since) = self.failing_since.take() {
                    tracing::info!(
                        failed_for_ms = now.duration_since(since).as_millis() as u64,
                        "the store answers again"
                    );
                }
                return rest;
            }
            Err(why) => why,
        };
        let since = *self.failing_since.get_or_insert(now);
        let failed_for = now.duration_since(since);
        if was_ready && failed_for < self.window {
            tracing::warn!(reason = %why, failed_for_ms = failed_for.as_millis() as u64,
                window_ms = self.window.as_millis() as u64,
                "the store check failed; still ready until it has failed for the whole window");
            return rest;
        }
        Readiness::Starting(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_status(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, out)
    }

    #[test]
    fn one_failed_store_check_does_not_flap_readiness() {
        use std::time::{Duration, Instant};
        let window = Duration::from_secs(10);
        let mut f = StoreFailures::new(window);
        let t0 = Instant::now();
        let err = || Err("the store does not answer: timed out".to_string());
        // Ready, then single failures between successes: stays ready throughout.
        for i in 0..6u64 {
            let t = t0 + Duration::from_secs(i);
            assert_eq!(f.judge(err(), Readiness::Ready, true, t), Readiness::Ready);
            let t = t + Duration::from_millis(500);
            assert_eq!(f.judge(Ok(()), Readiness::Ready, true, t), Readiness::Ready);
        }
        // Failing for the whole window turns it not ready, with the store's reason.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(f.judge(err(), Readiness::Ready, true, t1), Readiness::Ready);
        let almost = t1 + window - Duration::from_millis(1);
        assert_eq!(
            f.judge(err(), Readiness::Ready, true, almost),
            Readiness::Ready
        );
        let over = f.judge(err(), Readiness::Ready, true, t1 + window);
        assert_eq!(
            over,
            Readiness::Starting("the store does not answer: timed out".into())
        );
        // Not ready stays not ready while the store fails, and recovers when it answers.
        let later = t1 + window * 2;
        assert!(matches!(
            f.judge(err(), Readiness::Ready, false, later),
            Readiness::Starting(_)
        ));
        assert_eq!(
            f.judge(Ok(()), Readiness::Ready, false, later),
            Readiness::Ready
        );
        // A node that was never ready is not ready at the first failure.
        let mut g = StoreFailures::new(window);
        assert!(matches!(
            g.judge(err(), Readiness::Ready, false, t0),
            Readiness::Starting(_)
        ));
        // Other reasons (shards not running yet) come through while the store answers or
        // while a failure is tolerated.
        let shards = Readiness::Starting("running 1 of the 2 shards".into());
        let mut h = StoreFailures::new(window);
        assert_eq!(h.judge(Ok(()), shards.clone(), true, t0), shards);
        assert_eq!(h.judge(err(), shards.clone(), true, t0), shards);
    }

    #[tokio::test]
    async fn readiness_follows_the_node() {
        let health = Health::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let stop = CancellationToken::new();
        let served = serve(port, health.clone(), None, stop.clone())
            .await
            .expect("serve");
        assert_eq!(get_status(port, "/health/live").await.0, 200);
        let (code, body) = get_status(port, "/health/ready").await;
        assert_eq!(code, 503);
        assert!(body.contains("not ready: starting"), "{body}");
        health.set(Readiness::Ready);
        assert_eq!(get_status(port, "/health/ready").await.0, 200);
        health.set(Readiness::Stopping);
        assert_eq!(get_status(port, "/health/ready").await.0, 503);
        assert_eq!(get_status(port, "/nope").await.0, 404);
        stop.cancel();
        served.await.expect("stopped");
    }

    #[tokio::test]
    async fn the_grpc_health_service_takes_gzip_requests() {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let (reporter, service) = grpc_health_service();
        reporter
            .set_service_status("temper.Test", tonic_health::ServingStatus::Serving)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move { stopped.cancelled().await },
                ),
        );
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("a valid uri")
            .connect()
            .await
            .expect("connect");
        let mut client = HealthClient::new(channel)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
        let check = |service: &str| HealthCheckRequest {
            service: service.into(),
        };
        let serving = client.check(check("temper.Test")).await.expect("answers");
        assert_eq!(
            serving.into_inner().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        let unknown = client
            .check(check("no.such.Service"))
            .await
            .expect_err("unknown");
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        stop.cancel();
        server.await.expect("joined").expect("served");
    }
}
