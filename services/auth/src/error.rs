//! Why authentication could not be set up, or why a caller's credentials were refused.

use std::path::PathBuf;

/// A key source that cannot be used: a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("auth.key_file: {path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("auth.jwks_url: {url}: {why}")]
    Url { url: String, why: String },
    #[error("auth.jwks_ca_file: {path}: {why}")]
    CaFile { path: PathBuf, why: String },
}

/// Why a call's credentials were refused (`UNAUTHENTICATED`); the message goes to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "no credentials: send a JWT in the `authorization` header (`Bearer <token>`; the SDKs' api_key, the CLI's --api-key)"
    )]
    Missing,
    #[error("the authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
}
