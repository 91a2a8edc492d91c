//! Store metrics: [`Instrumented`] is the [`Around`] hook that times every call.
//!
//! Every method of the store traits records, under `operation` (the method's name,
//! [`Operation::name`]): `temper_persistence_requests_total`,
//! `temper_persistence_latency_seconds` (a histogram), and on failure
//! `temper_persistence_errors_total` with the error's `kind` ([`OpError::kind`]). Labels are
//! static strings, so a call allocates nothing for its metrics; with no recorder installed
//! (tests, a node without a metrics endpoint) the `metrics` macros do nothing.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::Persistence;
use crate::decorator::{Around, Decorated, OpError, Operation};

/// Requests per operation.
pub const REQUESTS: &str = "temper_persistence_requests_total";
/// Failed requests per operation and error kind.
pub const ERRORS: &str = "temper_persistence_errors_total";
/// Latency per operation, in seconds.
pub const LATENCY: &str = "temper_persistence_latency_seconds";

/// Record one finished call of `operation`.
fn record<E: OpError>(operation: &'static str, took: Duration, error: Option<&E>) {
    metrics::counter!(REQUESTS, "operation" => operation).increment(1);
    metrics::histogram!(LATENCY, "operation" => operation).record(took.as_secs_f64());
    if let Some(e) = error {
        metrics::counter!(ERRORS, "operation" => operation, "kind" => e.kind()).increment(1);
    }
}

/// The hook that times and counts every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Instrumented;

impl Around for Instrumented {
    async fn around<T, E, F>(&self, op: Operation, _batch: Option<usize>, call: F) -> Result<T, E>
    where
        T: Send,
        E: OpError,
        F: Future<Output = Result<T, E>> + Send,
    {
        let start = Instant::now();
        let result = call.await;
        record(op.name(), start.elapsed(), result.as_ref().err());
        result
    }
}

impl Persistence {
    /// This store with every call timed and counted (see [`crate::instrumented`]).
    pub fn instrumented(self) -> Persistence {
        Decorated::new(self, Instrumented).into_persistence()
    }
}
