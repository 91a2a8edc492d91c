//! Only nodes reach the internal services: when internode TLS is on, a call to history,
//! matching or admin over a connection whose certificate does not chain to the internode
//! CA is refused with `PERMISSION_DENIED`, before the service sees it.

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

use crate::PeerInfo;

/// Wraps an internal service; `enforce: false` (plaintext clusters) passes every call.
#[derive(Clone)]
pub struct InternodeOnly<S> {
    inner: S,
    enforce: bool,
}

impl<S> InternodeOnly<S> {
    pub fn new(inner: S, enforce: bool) -> Self {
        Self { inner, enforce }
    }
}

impl<S: NamedService> NamedService for InternodeOnly<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for InternodeOnly<S>
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
        let allowed = !self.enforce
            || req
                .extensions()
                .get::<PeerInfo>()
                .is_some_and(|p| p.internode);
        if allowed {
            return Box::pin(self.inner.call(req));
        }
        let peer = req
            .extensions()
            .get::<PeerInfo>()
            .map(|p| p.remote_addr.to_string())
            .unwrap_or_else(|| "unknown".into());
        tracing::warn!(%peer, service = S::NAME, "refused an internal call from a peer without an internode certificate");
        let status = tonic::Status::permission_denied(format!(
            "{} is only for temper nodes: present a certificate signed by the internode CA",
            S::NAME
        ));
        Box::pin(async move { Ok(status.into_http()) })
    }
}
