//! TLS for temper: what the gRPC port serves and what nodes present to each other.
//!
//! One port carries both the Temporal API and the internal services (history, matching,
//! admin), so one TLS listener serves two identities: the frontend certificate to clients,
//! and the internode certificate to nodes, which ask for it by its server name (SNI). A
//! client certificate is checked against the frontend client CA and the internode CA; a
//! connection whose certificate chains to the internode CA is an internode peer
//! ([`PeerInfo::internode`]), and only those reach the internal services ([`InternodeOnly`]).
//!
//! Every file is read again when its contents change ([`Reloading`]), so certificates rotate
//! without a restart; each load logs a line and sets the gauge
//! `temper_tls_certificate_expiry_seconds{cert=...}`.

mod client;
mod error;
mod expiry;
mod files;
mod guard;
mod pem;
mod reload;
mod server;

pub use client::{InternodeClient, InternodeConnector};
pub use error::TlsError;
pub use expiry::{EXPIRY_GAUGE, not_after};
pub use files::{Identity, InternodeFiles, ServerFiles};
pub use guard::InternodeOnly;
pub use reload::{RELOAD_INTERVAL, Reloading};
pub use server::{PeerInfo, ServerTls, TlsConn, TlsIncoming};

/// The TLS library's cryptography: aws-lc-rs, the provider rustls and tonic use here.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Protocol temper speaks over TLS (ALPN): HTTP/2, as gRPC requires.
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// Protocol of the HTTP endpoints (health, metrics) over TLS (ALPN): HTTP/1.1.
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";
