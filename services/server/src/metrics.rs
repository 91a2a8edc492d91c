//! The Prometheus endpoint: installs the global `metrics` recorder and serves the scrape page
//! (`GET /metrics`; the exporter answers any path but `/health` with it) on its own port.
//! Every `*_seconds` series is a histogram with [`BUCKETS`].

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Histogram buckets, in seconds: from half a millisecond (a cached read) to two minutes
/// (beyond a long poll's 60 s).
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Serve metrics on `listen`; `None`: record nothing (the `metrics` macros stay no-ops).
/// Call once, inside the runtime, before the services start. Returns whether metrics are on.
pub fn install(listen: Option<SocketAddr>) -> anyhow::Result<bool> {
    let Some(listen) = listen else {
        return Ok(false);
    };
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .context("metrics buckets")?
        .install()
        .with_context(|| format!("serving metrics on {listen}"))?;
    temper_frontend::metrics::enable();
    tracing::info!(address = %listen, "serving Prometheus metrics on /metrics");
    Ok(true)
}
