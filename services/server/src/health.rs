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

/// Serve the endpoints on `listen` until `stop`.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let app = axum::Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the health address {listen}"))?;
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "health endpoint stopped");
        }
    }))
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

    #[tokio::test]
    async fn readiness_follows_the_node() {
        let health = Health::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let stop = CancellationToken::new();
        let served = serve(port, health.clone(), stop.clone())
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
}
