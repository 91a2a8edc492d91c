//! [`MembershipError`]: why a node could not start gossiping.

use std::net::SocketAddr;

/// Why [`crate::Membership::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The UDP gossip socket could not be bound.
    #[error("cannot bind gossip address {addr}: {}", describe_bind_error(source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A setting that cannot work.
    #[error("invalid membership config: {0}")]
    Config(String),
    /// chitchat refused to start, or a test transport could not open the gossip address.
    #[error("cannot start gossip: {0}")]
    Gossip(String),
}

fn describe_bind_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => "address in use (is another temper running on this port?)".into(),
        ErrorKind::AddrNotAvailable => "no such address on this host".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
