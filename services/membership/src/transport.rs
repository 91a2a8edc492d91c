//! The socket handed to chitchat: opened by us before chitchat starts, so a bind error
//! reaches the caller before anything runs and a port-0 bind can advertise the port it got;
//! and receiving is shielded so that a datagram that made decoding panic is dropped instead
//! of stopping gossip. Production gossips over UDP ([`bind`]); tests may open the socket on
//! another [`Transport`] ([`open`]), such as chitchat's in-memory `ChannelTransport`.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket};
use futures::FutureExt;

use crate::MembershipError;

/// Bind the gossip socket.
pub(crate) async fn bind(addr: SocketAddr) -> Result<Box<dyn Socket>, MembershipError> {
    let socket = UdpSocket::open(addr).await.map_err(|e| {
        // chitchat wraps the io::Error in context; keep its kind for the message.
        let source = match e.downcast_ref::<std::io::Error>() {
            Some(io) => std::io::Error::new(io.kind(), io.to_string()),
            None => std::io::Error::other(e.to_string()),
        };
        MembershipError::Bind { addr, source }
    })?;
    Ok(Box::new(Shielded(Box::new(socket))))
}

/// Open the gossip socket on `transport`.
pub(crate) async fn open(
    transport: &dyn Transport,
    addr: SocketAddr,
) -> Result<Box<dyn Socket>, MembershipError> {
    let socket = transport.open(addr).await.map_err(|e| {
        MembershipError::Gossip(format!("cannot open the gossip transport on {addr}: {e:#}"))
    })?;
    Ok(Box::new(Shielded(socket)))
}

/// A [`Transport`] whose `open` hands out one socket bound beforehand.
pub(crate) struct PreBound(Mutex<Option<Box<dyn Socket>>>);

impl PreBound {
    pub(crate) fn new(socket: Box<dyn Socket>) -> Self {
        Self(Mutex::new(Some(socket)))
    }
}

#[async_trait]
impl Transport for PreBound {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        self.0
            .lock()
            .map_err(|_| anyhow::anyhow!("gossip socket lock poisoned"))?
            .take()
            .ok_or_else(|| anyhow::anyhow!("gossip socket {listen_addr} was already handed out"))
    }
}

/// A socket with panics in receive/decode turned into dropped datagrams.
struct Shielded(Box<dyn Socket>);

#[async_trait]
impl Socket for Shielded {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.0.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        self.0.send(to, envelope).await
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            match AssertUnwindSafe(self.0.recv()).catch_unwind().await {
                Ok(outcome) => return outcome,
                Err(_) => {
                    tracing::warn!("dropped a gossip datagram whose decoding panicked");
                }
            }
        }
    }
}
