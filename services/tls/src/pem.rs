//! Reading PEM files into what rustls takes, with errors that name the config key and file.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::TlsError;
use crate::files::Identity;

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file, in order; at least one.
pub(crate) fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            key,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            key,
            path: path.to_owned(),
        },
        e => TlsError::BadPem {
            key,
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })
}

/// A certificate chain and its key (`keys`: their config keys), checked to belong together,
/// with the leaf's expiry recorded as `label`.
pub(crate) fn identity(
    keys: (&'static str, &'static str),
    label: &'static str,
    id: &Identity,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certificates(keys.0, &id.cert)?;
    let der = private_key(keys.1, &id.key)?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadKey {
            key: keys.1,
            path: id.key.clone(),
            reason: e.to_string(),
        })?;
    let expiry =
        crate::expiry::not_after(&chain[0]).map_err(|reason| TlsError::BadCertificate {
            key: keys.0,
            path: id.cert.clone(),
            reason,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                key: keys.1,
                key_path: id.key.clone(),
                cert_path: id.cert.clone(),
            });
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                key: keys.0,
                path: id.cert.clone(),
                reason: e.to_string(),
            });
        }
    }
    crate::expiry::record(label, expiry);
    Ok(Arc::new(certified))
}

/// A CA bundle as trust anchors, with its earliest expiry recorded as `label`.
pub(crate) fn roots(
    key: &'static str,
    label: &'static str,
    path: &Path,
) -> Result<RootCertStore, TlsError> {
    let certs = certificates(key, path)?;
    let mut store = RootCertStore::empty();
    let mut earliest = i64::MAX;
    for cert in certs {
        let bad = |reason: String| TlsError::BadCertificate {
            key,
            path: path.to_owned(),
            reason,
        };
        earliest = earliest.min(crate::expiry::not_after(&cert).map_err(bad)?);
        store.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    crate::expiry::record(label, earliest);
    Ok(store)
}
