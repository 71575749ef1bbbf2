//! TLS to PostgreSQL, chosen by the URL as libpq chooses it.
//!
//! `sslmode` (default `prefer`, as libpq):
//!
//! | mode | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` | if the server offers it, else plain | not checked |
//! | `require` | always (a server without TLS is refused) | not checked — unless a root certificate is given or `~/.postgresql/root.crt` exists: then as `verify-ca` (libpq does the same) |
//! | `verify-ca` | always | chains to a CA of `sslrootcert` |
//! | `verify-full` | always | chains to a CA of `sslrootcert` and names the host (DNS name, or IP address for a numeric host) |
//!
//! `sslrootcert`: a PEM file of CA certificates (default
//! `~/.postgresql/root.crt`, as libpq; `verify-ca`/`verify-full` without
//! one is refused before connecting), or `system` for the operating
//! system's trust store (which then implies `verify-full` unless the mode
//! says otherwise, as in libpq 16).
//!
//! Unix-domain sockets never use TLS (libpq ignores `sslmode` there too).
//! Not supported, and refused with a clear error rather than ignored:
//! client certificates (`sslcert`, `sslkey`, `sslpassword`) and revocation
//! lists (`sslcrl`, `sslcrldir`). Unlike libpq, `prefer` does not retry in
//! plain text when a TLS handshake the server accepted then fails.
//!
//! The TLS stack is rustls (already compiled in for the API and reqwest)
//! through `tokio-postgres-rustls`, with the aws-lc-rs provider.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries plain text first: ringmaster never
            // downgrades a connection on purpose.
            other => {
                return Err(format!(
                    "sslmode={other} is not supported; use disable, prefer, require, \
                     verify-ca or verify-full"
                ));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    /// `~/.postgresql/root.crt`, if it exists.
    Default,
    /// `sslrootcert=PATH`.
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
}

/// The TLS part of a store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_certificates: RootCertificates,
}

/// Parameters libpq knows that this build refuses rather than ignores.
const UNSUPPORTED: [(&str, &str); 5] = [
    ("sslcert", "client certificates are not supported"),
    ("sslkey", "client certificates are not supported"),
    ("sslpassword", "client certificates are not supported"),
    ("sslcrl", "certificate revocation lists are not supported"),
    (
        "sslcrldir",
        "certificate revocation lists are not supported",
    ),
];

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query
/// (the PostgreSQL client knows only the first three modes, and not
/// `sslrootcert`); the URL that is left, and the TLS settings. The error
/// is a reason, without the URL.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut mode = None;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|query| query.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("the value of {key} is not UTF-8"))?
            .into_owned();
        match key {
            "sslmode" => mode = Some(SslMode::parse(&decoded)?),
            "sslrootcert" => {
                if decoded.is_empty() {
                    return Err("sslrootcert is empty".to_string());
                }
                root = Some(if decoded == "system" {
                    RootCertificates::System
                } else {
                    RootCertificates::File(PathBuf::from(decoded))
                });
            }
            key => {
                if let Some((_, why)) = UNSUPPORTED.iter().find(|(name, _)| *name == key) {
                    return Err(format!("{key} is not supported: {why} in this build"));
                }
                kept.push(pair);
            }
        }
    }
    let root_certificates = root.unwrap_or(RootCertificates::Default);
    let mode = mode.unwrap_or(if root_certificates == RootCertificates::System {
        SslMode::VerifyFull
    } else {
        SslMode::Prefer
    });
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((
        url,
        TlsSettings {
            mode,
            root_certificates,
        },
    ))
}

/// What the connection asks of the server: `tokio-postgres`'s mode and, if
/// TLS may be used, the rustls connector.
pub struct Negotiation {
    pub ssl_mode: postgres::config::SslMode,
    pub connector: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl TlsSettings {
    /// The mode and connector for a connection to `hosts` (every host a
    /// unix socket: no TLS, as libpq).
    pub fn negotiation(&self, only_unix_sockets: bool) -> Result<Negotiation, String> {
        use postgres::config::SslMode as Wire;
        if self.mode == SslMode::Disable || only_unix_sockets {
            return Ok(Negotiation {
                ssl_mode: Wire::Disable,
                connector: None,
            });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable => unreachable!("handled above"),
            SslMode::Prefer => Arc::new(AnyCertificate::new(provider.clone())),
            SslMode::Require => match self.roots()? {
                Some(roots) => Arc::new(ChainOnly::new(roots, provider.clone())),
                None => Arc::new(AnyCertificate::new(provider.clone())),
            },
            SslMode::VerifyCa => Arc::new(ChainOnly::new(self.required_roots()?, provider.clone())),
            SslMode::VerifyFull => WebPkiServerVerifier::builder_with_provider(
                Arc::new(self.required_roots()?),
                provider.clone(),
            )
            .build()
            .map_err(|error| format!("cannot use the root certificates: {error}"))?,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS setup failed: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Negotiation {
            ssl_mode: if self.mode == SslMode::Prefer {
                Wire::Prefer
            } else {
                Wire::Require
            },
            connector: Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
        })
    }

    fn required_roots(&self) -> Result<RootCertStore, String> {
        self.roots()?.ok_or_else(|| {
            format!(
                "sslmode={} needs the CA certificates to check the server with: \
                 sslrootcert=PATH (a PEM file), sslrootcert=system, or ~/.postgresql/root.crt",
                self.mode.as_str()
            )
        })
    }

    /// The CA certificates, or `None` when none are configured (no
    /// `sslrootcert` and no default file); the caller names what is missing.
    fn roots(&self) -> Result<Option<RootCertStore>, String> {
        let path = match &self.root_certificates {
            RootCertificates::System => {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(
                        "sslrootcert=system: no CA certificate found in the system's trust store"
                            .to_string(),
                    );
                }
                return Ok(Some(roots));
            }
            RootCertificates::File(path) => path.clone(),
            RootCertificates::Default => {
                let Some(home) = std::env::var_os("HOME") else {
                    return Ok(None);
                };
                let path = PathBuf::from(home).join(".postgresql/root.crt");
                if !path.is_file() {
                    return Ok(None);
                }
                path
            }
        };
        let shown = path.display();
        let certificates = CertificateDer::pem_file_iter(&path)
            .map_err(|error| format!("sslrootcert {shown} cannot be read: {error}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("sslrootcert {shown} is not a PEM file: {error}"))?;
        let mut roots = RootCertStore::empty();
        for certificate in certificates {
            roots.add(certificate).map_err(|error| {
                format!("sslrootcert {shown} holds a certificate that is not a CA: {error}")
            })?;
        }
        if roots.is_empty() {
            return Err(format!("sslrootcert {shown} holds no certificate"));
        }
        Ok(Some(roots))
    }
}

/// `verify-ca`: the chain must lead to one of the roots; the name is not
/// checked.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ChainOnly {
    fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> ChainOnly {
        ChainOnly {
            roots: Arc::new(roots),
            provider,
        }
    }
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certificate = rustls::server::ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `prefer` and `require` without roots: encrypted, the certificate not
/// checked (libpq's meaning of those modes). The handshake's signatures
/// are still verified.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl AnyCertificate {
    fn new(provider: Arc<CryptoProvider>) -> AnyCertificate {
        AnyCertificate { provider }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A sentence to add to a connection error that came from TLS, saying what
/// the mode checks.
pub fn hint(settings: &TlsSettings, detail: &str) -> Option<String> {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("does not support tls") {
        return Some(format!(
            "sslmode={} requires TLS and the server does not offer it (set ssl=on on the \
             server, or use sslmode=disable/prefer on a trusted network)",
            settings.mode.as_str()
        ));
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return Some(match settings.mode {
            SslMode::VerifyFull => "sslmode=verify-full: the server's certificate must chain to \
                a CA in sslrootcert and name the host of the URL"
                .to_string(),
            mode => format!(
                "sslmode={}: the server's certificate must chain to a CA in sslrootcert",
                mode.as_str()
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> (String, TlsSettings) {
        split_url(url).unwrap()
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, tls) = settings(
            "postgres://u:p@db:5432/rm?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(url, "postgres://u:p@db:5432/rm?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(
            tls.root_certificates,
            RootCertificates::File(PathBuf::from("/etc/ca.pem"))
        );
        let (url, tls) = settings("postgres://db/rm");
        assert_eq!(url, "postgres://db/rm");
        assert_eq!(tls.mode, SslMode::Prefer, "libpq's default");
        let (_, tls) = settings("postgres://db/rm?sslrootcert=system");
        assert_eq!(
            tls.mode,
            SslMode::VerifyFull,
            "system roots imply verify-full"
        );
        assert_eq!(tls.root_certificates, RootCertificates::System);
    }

    #[test]
    fn unknown_modes_and_client_certificates_are_refused() {
        assert!(split_url("postgres://db/rm?sslmode=allow").is_err());
        assert!(split_url("postgres://db/rm?sslmode=verify").is_err());
        let error = split_url("postgres://db/rm?sslcert=/c.pem").unwrap_err();
        assert!(error.contains("client certificates"), "{error}");
        assert!(split_url("postgres://db/rm?sslrootcert=").is_err());
    }

    #[test]
    fn verification_without_roots_is_refused_before_connecting() {
        let tls = TlsSettings {
            mode: SslMode::VerifyFull,
            root_certificates: RootCertificates::File(PathBuf::from("/nonexistent/ca.pem")),
        };
        let error = tls.negotiation(false).err().unwrap();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        let unix = tls.negotiation(true).unwrap();
        assert!(unix.connector.is_none(), "no TLS over a unix socket");
    }
}
