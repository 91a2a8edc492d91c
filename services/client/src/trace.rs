//! Trace context across nodes: a call one node makes to another carries the W3C
//! `traceparent` of the span it is made in, so the receiving node's RPC span joins the same
//! trace. Nothing is added unless a propagator is installed (the binary installs one when
//! OTLP export is configured).

use opentelemetry::propagation::{Extractor, Injector};
use tonic::Request;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes propagation fields into gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Reads propagation fields from HTTP headers (the gRPC metadata of an incoming call).
pub struct HeaderExtractor<'a>(pub &'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `request` with the current span's trace context in its metadata.
pub fn traced<T>(mut request: Request<T>) -> Request<T> {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
    });
    request
}

/// The trace context an incoming call carries (empty when it carries none).
pub fn remote_parent(headers: &tonic::codegen::http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_call_carries_the_trace_of_its_span_and_the_receiver_joins_it() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("rpc");
            let sent = outer.in_scope(|| traced(Request::new(())));
            let sender = outer.context().span().span_context().clone();
            assert!(sender.is_valid(), "the span has an OpenTelemetry context");

            let header = sent
                .metadata()
                .get("traceparent")
                .expect("traceparent sent")
                .to_str()
                .expect("ascii")
                .to_owned();
            assert!(
                header.contains(&sender.trace_id().to_string())
                    && header.contains(&sender.span_id().to_string()),
                "{header} names the sender's trace and span"
            );

            let headers = sent.into_parts().0.into_headers();
            let parent = remote_parent(&headers);
            let received = tracing::info_span!("rpc");
            received.set_parent(parent).expect("parent set");
            let receiver = received.context().span().span_context().clone();
            assert_eq!(receiver.trace_id(), sender.trace_id(), "one trace");
            assert_ne!(receiver.span_id(), sender.span_id(), "its own span");
        });
    }

    #[test]
    fn outside_any_trace_nothing_is_added() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let sent = traced(Request::new(()));
        assert!(sent.metadata().get("traceparent").is_none());
    }
}
