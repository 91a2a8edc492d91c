//! Which files hold the TLS material, as the config names them.

use std::path::PathBuf;

/// A certificate chain (leaf first) and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What nodes use with each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternodeFiles {
    /// This node's certificate and key, presented both as a server (to nodes that ask for
    /// `server_name`) and as a client.
    pub identity: Identity,
    /// The internode CA bundle: a peer's certificate must chain to it.
    pub ca: PathBuf,
    /// The name nodes ask for (SNI) and check in each other's certificates.
    pub server_name: String,
}

/// What the gRPC port serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The certificate clients see.
    pub frontend: Identity,
    /// When set, every client must present a certificate that chains to this bundle (or to
    /// the internode CA).
    pub client_ca: Option<PathBuf>,
    pub internode: Option<InternodeFiles>,
}

impl ServerFiles {
    /// Every file, for change detection.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![self.frontend.cert.clone(), self.frontend.key.clone()];
        v.extend(self.client_ca.clone());
        if let Some(i) = &self.internode {
            v.extend(i.paths());
        }
        v
    }
}

impl InternodeFiles {
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        vec![
            self.identity.cert.clone(),
            self.identity.key.clone(),
            self.ca.clone(),
        ]
    }
}
