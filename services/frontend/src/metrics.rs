//! Per-RPC metrics: [`RpcMetrics`] wraps a generated gRPC server and records, for every call,
//! `temper_rpc_requests_total`, `temper_rpc_latency_seconds` and on failure
//! `temper_rpc_errors_total` (with the gRPC `code`), labelled `service`, `method` and
//! `namespace`.
//!
//! The namespace is in the request body, which only the handler decodes; so the wrapper runs
//! the call in a task-local slot that [`crate::Namespaces`] fills when it resolves a name.
//! Only namespaces that exist get there, so a request naming garbage cannot grow the label
//! set; calls that resolve none (internal services, cluster-level RPCs) have `namespace=""`.
//! A path that is not one of the service's methods is counted as `method="unknown"`.
//!
//! Being the outermost wrapper of every public service, it also bounds the size of each
//! error's text ([`crate::error_text`]), whether or not metrics are on.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

/// Requests per service, method and namespace.
pub const REQUESTS: &str = "temper_rpc_requests_total";
/// Failed requests, by gRPC code too.
pub const ERRORS: &str = "temper_rpc_errors_total";
/// Time to the response headers (for long polls: the wait), in seconds.
pub const LATENCY: &str = "temper_rpc_latency_seconds";

/// Whether a metrics recorder is installed; until then [`RpcMetrics`] passes calls through
/// untouched, so a node without a metrics endpoint pays nothing per request.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Start recording per-RPC metrics (call once a recorder is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

tokio::task_local! {
    static NAMESPACE: OnceLock<String>;
}

/// Tell the RPC being served (if any) which namespace it is for. The first one wins.
pub(crate) fn note_namespace(name: &str) {
    let _ = NAMESPACE.try_with(|slot| {
        if slot.get().is_none() {
            let _ = slot.set(name.to_string());
        }
    });
}

/// A gRPC server `S` with per-RPC metrics.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S> RpcMetrics<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for RpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for RpcMetrics<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + NamedService,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if !ENABLED.load(Ordering::Relaxed) {
            let call = self.inner.call(req);
            return Box::pin(async move {
                let mut result = call.await;
                if let Ok(response) = &mut result {
                    crate::error_text::bound_message(response.headers_mut());
                }
                result
            });
        }
        let service = short_name(S::NAME);
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let call = NAMESPACE.scope(OnceLock::new(), self.inner.call(req));
        Box::pin(async move {
            let start = Instant::now();
            let mut call = std::pin::pin!(call);
            let mut result = call.as_mut().await;
            let took = start.elapsed();
            if let Ok(response) = &mut result {
                crate::error_text::bound_message(response.headers_mut());
            }
            let namespace = call
                .as_mut()
                .take_value()
                .and_then(OnceLock::into_inner)
                .unwrap_or_default();
            if let Ok(response) = &result {
                record(service, method, namespace, response, took);
            }
            result
        })
    }
}

fn record(
    service: &'static str,
    method: String,
    namespace: String,
    response: &http::Response<Body>,
    took: std::time::Duration,
) {
    let headers = response.headers();
    // A unary call that succeeded sends its status in the trailers; one that failed sends it
    // in the headers (a trailers-only response).
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    // The generated servers answer an unknown path with a bare Unimplemented; handlers that
    // answer Unimplemented always say why.
    let method =
        if code == tonic::Code::Unimplemented as i32 && !headers.contains_key("grpc-message") {
            "unknown".to_string()
        } else {
            method
        };
    let labels = [
        ("service", service.to_string()),
        ("method", method),
        ("namespace", namespace),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(LATENCY, &labels).record(took.as_secs_f64());
    if code != 0 {
        let [s, m, n] = labels;
        let labels = [s, m, n, ("code", code_name(code).to_string())];
        metrics::counter!(ERRORS, &labels).increment(1);
    }
}

/// `temporal.api.workflowservice.v1.WorkflowService` -> `WorkflowService`.
fn short_name(full: &'static str) -> &'static str {
    full.rsplit('.').next().unwrap_or(full)
}

/// gRPC's canonical name of a status code.
fn code_name(code: i32) -> &'static str {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            short_name("temporal.api.workflowservice.v1.WorkflowService"),
            "WorkflowService"
        );
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(999), "UNKNOWN");
    }
}
