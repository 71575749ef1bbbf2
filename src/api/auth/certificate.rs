//! Client certificates: the names a verified certificate carries.
//!
//! rustls has already checked the chain to the configured client CA during
//! the handshake (a certificate from any other CA never gets a connection);
//! this reads the leaf's subject alternative names (DNS names, URIs, email
//! addresses) and the subject's common name, which `principals/` map to a
//! principal through `certificate_subjects`.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names of a DER certificate: every SAN DNS name, URI and email, then
/// the subject's common names. Empty when the certificate does not parse.
pub fn names(der: &[u8]) -> Vec<String> {
    let Ok((_, certificate)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(extension)) = certificate.subject_alternative_name() {
        for name in &extension.value.general_names {
            match name {
                GeneralName::DNSName(value)
                | GeneralName::URI(value)
                | GeneralName::RFC822Name(value) => names.push((*value).to_owned()),
                _ => {}
            }
        }
    }
    for common_name in certificate.subject().iter_common_name() {
        if let Ok(value) = common_name.as_str() {
            names.push(value.to_owned());
        }
    }
    names
}
