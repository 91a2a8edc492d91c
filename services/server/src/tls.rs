//! TLS of a running node: the gRPC port's server config and the internode client, loaded at
//! start (a bad file is a start-up error naming it) and reloaded while the node runs.

use std::time::Duration;

use anyhow::Context;
use temper_tls::{InternodeClient, ServerFiles, ServerTls};
use tokio_util::sync::CancellationToken;

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
