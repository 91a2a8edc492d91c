//! One tracing span per RPC: `rpc` with the service and method from the gRPC path, and the
//! namespace, workflow id and run id filled in by the handler once it has read them, so every
//! log line of a request (here and in the history and matching code it calls in-process)
//! carries them.

use tonic::codegen::http;
use tracing::Span;
use tracing::field::Empty;

/// The span of one request; pass to `tonic::transport::Server::builder().trace_fn(...)`.
pub fn rpc_span(request: &http::Request<()>) -> Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", path));
    let service = service.rsplit('.').next().unwrap_or(service);
    tracing::info_span!(
        "rpc",
        service,
        method,
        namespace = Empty,
        workflow_id = Empty,
        run_id = Empty
    )
}

/// Record the request's namespace on the current RPC span.
pub(crate) fn namespace(name: &str) {
    Span::current().record("namespace", name);
}

/// Record the workflow (and run, if known) the request is about on the current RPC span.
pub(crate) fn workflow(workflow_id: &str, run_id: &str) {
    let span = Span::current();
    if !workflow_id.is_empty() {
        span.record("workflow_id", workflow_id);
    }
    if !run_id.is_empty() {
        span.record("run_id", run_id);
    }
}

/// Record the workflow of an execution reference.
pub(crate) fn execution(e: Option<&temper_proto::temporal::api::common::v1::WorkflowExecution>) {
    if let Some(e) = e {
        workflow(&e.workflow_id, &e.run_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::{Layer, Registry};

    use super::*;

    /// Collects every field recorded on any span, as `name=value`.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<Vec<String>>>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .lock()
                .expect("fields")
                .push(format!("{}={:?}", field.name(), value));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0
                .lock()
                .expect("fields")
                .push(format!("{}={value}", field.name()));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Fields {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            attrs.record(&mut self.clone());
        }
        fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
            values.record(&mut self.clone());
        }
    }

    #[test]
    fn a_span_carries_method_namespace_and_workflow() {
        let fields = Fields::default();
        let subscriber = Registry::default().with(fields.clone());
        tracing::subscriber::with_default(subscriber, || {
            let req = http::Request::builder()
                .uri("/temporal.api.workflowservice.v1.WorkflowService/SignalWorkflowExecution")
                .body(())
                .expect("request");
            let span = rpc_span(&req);
            let _entered = span.enter();
            namespace("orders");
            workflow("order-17", "run-1");
        });
        let got = fields.0.lock().expect("fields").clone();
        for want in [
            "service=WorkflowService",
            "method=SignalWorkflowExecution",
            "namespace=orders",
            "workflow_id=order-17",
            "run_id=run-1",
        ] {
            assert!(got.iter().any(|f| f == want), "{want} missing from {got:?}");
        }
    }
}
