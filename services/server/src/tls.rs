//! TLS of a running node: the gRPC port's server config and the internode client, loaded at
//! start (a bad file is a start-up error naming it) and reloaded while the node runs; and the
//! HTTP endpoints (health, metrics) served over the same certificate when they ask for it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use temper_tls::{InternodeClient, ServerFiles, ServerTls, TlsConn, TlsIncoming};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::config::TlsSection;

/// The node's TLS material and the tasks that keep it current.
pub struct NodeTls {
    pub server: ServerTls,
    /// Present on cluster nodes with `[tls.internode]`.
    pub internode: Option<InternodeClient>,
    stop: CancellationToken,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl NodeTls {
    /// A cluster node's TLS from `[tls]`; `None` when TLS is off.
    pub fn from_config(section: &TlsSection) -> anyhow::Result<Option<Self>> {
        let Some(files) = section.server_files() else {
            return Ok(None);
        };
        let internode = section
            .internode_files()
            .map(InternodeClient::load)
            .transpose()
            .context("loading the internode TLS files")?;
        let mut tls = Self::load(files)?;
        tls.internode = internode;
        tls.watch(section.reload_interval());
        Ok(Some(tls))
    }

    /// The gRPC port's TLS alone (start-dev: one process, no internode traffic).
    pub fn serve_only(files: ServerFiles, reload_interval: Duration) -> anyhow::Result<Self> {
        let mut tls = Self::load(files)?;
        tls.watch(reload_interval);
        Ok(tls)
    }

    fn load(files: ServerFiles) -> anyhow::Result<Self> {
        let server = ServerTls::load(files).context("loading the TLS files")?;
        Ok(Self {
            server,
            internode: None,
            stop: CancellationToken::new(),
            watchers: Vec::new(),
        })
    }

    /// Start re-reading the files every `interval`.
    fn watch(&mut self, interval: Duration) {
        self.watchers
            .push(self.server.reloading().watch(interval, self.stop.clone()));
        if let Some(i) = &self.internode {
            self.watchers
                .push(i.reloading().watch(interval, self.stop.clone()));
        }
    }

    /// Stop watching the files.
    pub async fn stop(self) {
        self.stop.cancel();
        for w in self.watchers {
            let _ = w.await;
        }
    }
}

/// Serve `app`, an HTTP/1.1 endpoint (health, metrics), on `listener` until `stop`: HTTPS
/// with the gRPC port's certificate and client verification when `tls` is given (handshakes
/// side by side, certificates reloaded with the gRPC port's), plain HTTP otherwise.
pub fn serve_http(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    tls: Option<&ServerTls>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let local = listener
        .local_addr()
        .with_context(|| format!("the {what} endpoint's address"))?;
    let https = match tls {
        Some(tls) => Ok(HttpsListener {
            incoming: tls.incoming_http(listener, stop.clone()),
            local,
        }),
        None => Err(listener),
    };
    let shutdown = {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    };
    Ok(tokio::spawn(async move {
        let served = match https {
            Ok(https) => {
                axum::serve(https, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Err(plain) => {
                axum::serve(plain, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::warn!(error = %e, "{what} endpoint stopped");
        }
    }))
}

/// Accepted TLS connections as axum takes them.
struct HttpsListener {
    incoming: TlsIncoming,
    local: SocketAddr,
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let peer = conn.connect_info().remote_addr;
                    return (conn, peer);
                }
                // The accept loop logs what it drops and sends no errors; skip one if it does.
                Some(Err(_)) => continue,
                // Stopped: graceful shutdown ends the server; accept nothing more meanwhile.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
