//! The subject of a client's TLS certificate (mutual TLS): who the audit log names when no
//! token is sent, and, through `auth.cert_permissions`, roles by common name.

use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The whole distinguished name, `CN=worker-a, O=Example`.
    pub dn: String,
    /// The first common name, or empty.
    pub common_name: String,
}

/// The subject of the leaf certificate the peer presented, if any.
pub fn subject(peer: &temper_tls::PeerInfo) -> Option<Subject> {
    let leaf = peer.certs.as_ref()?.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let name = cert.subject();
    let common_name = name
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    Some(Subject {
        dn: name.to_string(),
        common_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_and_common_name_of_a_client_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["worker-a".into()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "worker-a");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let cert = params.self_signed(&key).expect("cert");
        let peer = temper_tls::PeerInfo {
            remote_addr: "127.0.0.1:1".parse().expect("addr"),
            internode: false,
            certs: Some(std::sync::Arc::new(vec![cert.der().clone()])),
        };
        let s = subject(&peer).expect("a subject");
        assert_eq!(s.common_name, "worker-a");
        assert!(s.dn.contains("CN=worker-a"), "{}", s.dn);
        let none = temper_tls::PeerInfo {
            certs: None,
            ..peer
        };
        assert_eq!(subject(&none), None);
    }
}
