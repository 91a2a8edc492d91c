//! What the routing clients share: where a shard or partition lives now ([`Placement`]),
//! connections to other nodes, and the retry loop that follows an owner when it moves.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Where a call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// This process serves it: call the local service.
    Local,
    /// Another node, by its gRPC address (`host:port`).
    Remote(String),
}

/// The cluster's current answer to "who owns this". Implemented by the binary over the
/// membership rings; it may change between two calls.
pub trait Placement: Send + Sync + 'static {
    /// The node owning history shard `shard` (1-based); `None` while no history node is
    /// known.
    fn history_shard(&self, shard: u32) -> Option<Target>;
    /// The node owning the task-queue partition with this routing key
    /// (`temper_types::partition::routing_key`); `None` while no matching node is known.
    fn matching_partition(&self, routing_key: &str) -> Option<Target>;
}

/// How hard the routers try before giving the caller an error.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// A call is retried while it keeps failing with a retryable status (the owner moved,
    /// the node went away, the shard is being acquired) for at most this long in total.
    /// Shards move within a few seconds of a node's death, so this outlasts that.
    pub budget: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest a single call to another node may take (long polls wait up to ~70 s). A
    /// node that stops answering is found sooner, by HTTP/2 keep-alive.
    pub remote_call_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(20),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            remote_call_timeout: Duration::from_secs(90),
        }
    }
}

/// Whether a failed call may be sent again, possibly to another node: the owner was not
/// there (shard not owned, being acquired or closing), the node could not be reached or
/// went away mid-call. Every internal call is safe to repeat: history dedupes by request
/// id or finds the task already started / completed.
pub fn is_retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable || is_transport_error(status)
}

/// The call failed in the connection (the peer died mid-call: a broken pipe, a reset
/// stream), which tonic reports as `Unknown` "transport error".
fn is_transport_error(status: &Status) -> bool {
    use std::error::Error as _;
    let mut source = status.source();
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    status.code() == Code::Unknown && status.message() == "transport error"
}

/// One lazily connected channel per node address, reused by every call to that node.
#[derive(Default)]
pub struct Channels {
    channels: Mutex<HashMap<String, Channel>>,
    /// Internode mTLS; plaintext when `None`.
    tls: Option<temper_tls::InternodeClient>,
}

impl Channels {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Channels that connect over internode mTLS (each new connection with the files in
    /// force then).
    pub fn with_tls(tls: temper_tls::InternodeClient) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::default(),
            tls: Some(tls),
        })
    }

    /// The channel to `address` (`host:port`), connecting on first use. HTTP/2 keep-alive
    /// pings every second and drops a connection whose peer does not answer within 3 s, so
    /// calls to a paused or unplugged node fail instead of hanging.
    pub fn get(&self, address: &str) -> Result<Channel, Status> {
        let mut map = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(address) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Status::internal(format!("bad node address {address}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let channel = match &self.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(tls.connector()),
            None => endpoint.connect_lazy(),
        };
        map.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// Run `attempt` against the current owner until it succeeds, fails for good, or the
/// retry budget is spent. `place` is asked again before every attempt, so a call follows
/// a shard or partition to its new owner.
pub async fn with_retries<T, P, A, F>(
    policy: &RetryPolicy,
    what: &str,
    place: P,
    mut attempt: A,
) -> Result<T, Status>
where
    P: Fn() -> Option<Target>,
    A: FnMut(Target) -> F,
    F: Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let mut backoff = policy.initial_backoff;
    loop {
        let result = match place() {
            Some(target) => attempt(target).await,
            None => Err(Status::unavailable(format!("no node serves {what} yet"))),
        };
        match result {
            Err(s) if is_retryable(&s) && started.elapsed() + backoff < policy.budget => {
                tracing::debug!(what, status = %s.message(), "retrying on the current owner");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
            r => return r,
        }
    }
}

/// A remote call bounded by the policy's per-call timeout.
pub async fn remote_call<T>(
    policy: &RetryPolicy,
    address: &str,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<tonic::Response<T>, Status> {
    match tokio::time::timeout(policy.remote_call_timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(Status::unavailable(format!(
            "node {address} did not answer within {:?}",
            policy.remote_call_timeout
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            budget: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            remote_call_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn follows_the_owner_until_it_answers() {
        let calls = AtomicU32::new(0);
        let r = with_retries(
            &fast(),
            "shard 1",
            || {
                let n = calls.load(Ordering::SeqCst);
                Some(if n < 2 {
                    Target::Remote(format!("n{n}"))
                } else {
                    Target::Local
                })
            },
            |t| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match t {
                        Target::Local => Ok(7),
                        Target::Remote(a) => {
                            Err(Status::unavailable(format!("{a} does not own it")))
                        }
                    }
                }
            },
        )
        .await;
        assert_eq!(r.expect("third attempt succeeds"), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_broken_connection_is_retryable() {
        let broken = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "stream closed because of a broken pipe",
        )));
        assert!(is_retryable(&broken), "{broken:?}");
        assert!(is_retryable(&Status::unknown("transport error")));
        assert!(!is_retryable(&Status::unknown("workflow panicked")));
        assert!(!is_retryable(&Status::invalid_argument("bad")));
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), Status> = with_retries(
            &fast(),
            "shard 1",
            || Some(Target::Local),
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(crate::status::not_found("workflow execution not found")) }
            },
        )
        .await;
        assert_eq!(r.expect_err("fails").code(), Code::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_budget() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let r: Result<(), Status> = with_retries(
            &fast(),
            "shard 9",
            || None,
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            },
        )
        .await;
        let e = r.expect_err("nobody owns shard 9");
        assert_eq!(e.code(), Code::Unavailable);
        assert!(e.message().contains("shard 9"), "{}", e.message());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert!(started.elapsed() <= Duration::from_secs(5));
        assert!(started.elapsed() >= Duration::from_secs(4));
    }
}
