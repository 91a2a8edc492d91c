//! Why TLS material could not be loaded. Every variant names the file, so a bad config
//! fails at start-up with a message that says which file to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error("{key}: {path} is not valid PEM: {reason}")]
    BadPem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}: {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { key: &'static str, path: PathBuf },
    #[error("{key}: the private key in {path} cannot be used: {reason}")]
    BadKey {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}: the private key in {key_path} does not match the certificate in {cert_path}")]
    KeyMismatch {
        key: &'static str,
        key_path: PathBuf,
        cert_path: PathBuf,
    },
    #[error("{key}: a certificate in {path} cannot be used: {reason}")]
    BadCertificate {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}: {name:?} is not a valid DNS name")]
    BadServerName { key: &'static str, name: String },
    #[error("TLS setup: {0}")]
    Rustls(String),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e.to_string())
    }
}
