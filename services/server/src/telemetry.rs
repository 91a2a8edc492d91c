//! Logs and traces. Log lines go to stderr as text or JSON, filtered by the configured level
//! (or `RUST_LOG`). When an OTLP endpoint is configured, every RPC span (with the spans and
//! events inside it) is also exported over OTLP/gRPC to an OpenTelemetry collector, in
//! batches, sampled by trace id; the export does not depend on the log level. Incoming calls
//! that carry a W3C `traceparent` continue the caller's trace, and calls to other nodes pass
//! theirs on.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tonic::codegen::http;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Where and how to export traces.
#[derive(Debug, Clone)]
pub struct OtlpExport {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// `service.instance.id`: the node's name.
    pub instance: String,
    /// Share of new traces to keep, 0.0 to 1.0 (a trace started by a caller follows the
    /// caller's decision).
    pub sample_ratio: f64,
}

/// How long an export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// What must be shut down to flush the last spans.
#[must_use = "call shutdown() before the process exits, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export the spans still buffered and stop the exporter. Call this outside any async
    /// task, while the Tokio runtime is still alive.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("temper: exporting the last traces failed: {e}");
        }
    }
}

/// Install the global subscriber. With `otlp`, this must run inside a Tokio runtime (the
/// exporter's gRPC channel lives there).
pub fn init(level: &str, format: &str, otlp: Option<&OtlpExport>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .with_context(|| format!("log level {level:?}"))?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        "json" => fmt.json().boxed(),
        "text" => fmt.compact().boxed(),
        other => anyhow::bail!("unknown log format {other:?}: use text or json"),
    };
    let mut layers = vec![fmt.with_filter(filter).boxed()];
    let provider = match otlp {
        Some(otlp) => {
            let (layer, provider) = otlp_layer(otlp)?;
            layers.push(layer);
            Some(provider)
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry { provider })
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

fn otlp_layer(otlp: &OtlpExport) -> anyhow::Result<(BoxedLayer, SdkTracerProvider)> {
    if !(0.0..=1.0).contains(&otlp.sample_ratio) {
        anyhow::bail!(
            "trace sample ratio {} is not between 0 and 1",
            otlp.sample_ratio
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("OTLP endpoint {:?}", otlp.endpoint))?;
    let resource = Resource::builder()
        .with_service_name(otlp.service_name.clone())
        .with_attribute(KeyValue::new("service.instance.id", otlp.instance.clone()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            otlp.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("temper"))
        .with_filter(LevelFilter::INFO)
        .boxed();
    Ok((layer, provider))
}

/// The span of one incoming RPC (see [`temper_frontend::rpc_span`]), continuing the trace
/// the caller sent, if any. Pass to `Server::builder().trace_fn(...)`.
pub fn rpc_span(request: &http::Request<()>) -> Span {
    let span = temper_frontend::rpc_span(request);
    if request.headers().contains_key("traceparent") {
        // Fails only when no OpenTelemetry layer is installed, and then there is no trace.
        let _ = span.set_parent(temper_client::trace::remote_parent(request.headers()));
    }
    span
}
