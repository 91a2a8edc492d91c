//! The Prometheus endpoint: installs the global `metrics` recorder and serves the scrape page
//! (`GET /metrics`) on its own port. Plain HTTP is the exporter's own listener (it answers any
//! path but `/health` with the page); HTTPS (`[metrics] tls`) is served here, `/metrics`
//! alone, with the gRPC port's certificate, once the node has loaded it.
//! Every `*_seconds` series is a histogram with [`BUCKETS`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Histogram buckets, in seconds: from half a millisecond (a cached read) to two minutes
/// (beyond a long poll's 60 s).
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// How often histograms are drained when we serve the page ourselves (the exporter's
/// listener does it every 5 s too).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// An installed recorder whose page is not served yet: HTTPS waits for the TLS material,
/// which is loaded after the recorder (loading records the certificates' expiry).
pub struct PendingHttps {
    listen: SocketAddr,
    handle: PrometheusHandle,
}

/// What [`install`] did.
pub enum Installed {
    /// Metrics off: nothing is recorded (the `metrics` macros stay no-ops).
    Off,
    /// Recording, and served over plain HTTP already.
    Http,
    /// Recording; serve the page with [`PendingHttps::serve`].
    Https(PendingHttps),
}

impl Installed {
    pub fn is_on(&self) -> bool {
        !matches!(self, Installed::Off)
    }
}

fn builder() -> anyhow::Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .context("metrics buckets")
}

/// Record metrics when `listen` is set, served over HTTPS when `tls` (see [`Installed`]).
/// Call once, inside the runtime, before the services start.
pub fn install(listen: Option<SocketAddr>, tls: bool) -> anyhow::Result<Installed> {
    let Some(listen) = listen else {
        return Ok(Installed::Off);
    };
    let installed = if tls {
        let handle = builder()?
            .install_recorder()
            .context("installing the metrics recorder")?;
        Installed::Https(PendingHttps { listen, handle })
    } else {
        builder()?
            .with_http_listener(listen)
            .install()
            .with_context(|| format!("serving metrics on {listen}"))?;
        tracing::info!(address = %listen, "serving Prometheus metrics on /metrics");
        Installed::Http
    };
    temper_frontend::metrics::enable();
    Ok(installed)
}

impl PendingHttps {
    /// Serve `GET /metrics` over TLS with the node's certificate until `stop`, draining the
    /// histograms every few seconds meanwhile.
    pub async fn serve(
        self,
        tls: &temper_tls::ServerTls,
        stop: CancellationToken,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let listen = self.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the metrics address {listen}"))?;
        let app = axum::Router::new()
            .route("/metrics", get(page))
            .with_state(self.handle.clone());
        let server = crate::tls::serve_http("metrics", listener, app, Some(tls), stop.clone())?;
        tracing::info!(address = %listen, "serving Prometheus metrics on /metrics over TLS");
        let handle = self.handle;
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(UPKEEP_INTERVAL) => {}
                }
                let h = handle.clone();
                let _ = tokio::task::spawn_blocking(move || h.run_upkeep()).await;
            }
            let _ = server.await;
        }))
    }
}

/// The scrape page. Rendering walks every series, so it runs off the async threads.
async fn page(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    match tokio::task::spawn_blocking(move || handle.render()).await {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("rendering the metrics failed: {e}\n"),
        ),
    }
}
