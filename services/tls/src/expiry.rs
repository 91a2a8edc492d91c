//! Certificate expiry, read with `x509-parser` and published as a gauge.

use rustls::pki_types::CertificateDer;

/// Seconds since the Unix epoch at which a certificate expires, labelled `cert`
/// (`frontend`, `client_ca`, `internode`, `internode_ca`; a CA bundle reports its earliest).
pub const EXPIRY_GAUGE: &str = "temper_tls_certificate_expiry_seconds";

/// When `cert` stops being valid (its notAfter), in seconds since the Unix epoch.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(parsed.validity().not_after.timestamp())
}

pub(crate) fn record(label: &'static str, not_after: i64) {
    metrics::gauge!(EXPIRY_GAUGE, "cert" => label).set(not_after as f64);
}
