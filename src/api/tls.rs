//! TLS for the API listener (rustls), with optional client certificates.
//!
//! [`TlsListener`] is an `axum::serve` listener: a task accepts TCP
//! connections and runs each handshake in its own task (with a time limit,
//! so a slow client holds up nobody), and hands finished connections to
//! axum with the peer's address and verified certificate ([`ClientInfo`]).
//! With a client CA configured, a client that presents a certificate must
//! chain to that CA or the handshake fails; a client without one may still
//! authenticate with a bearer token (unless certificates are required).

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A TLS handshake that takes longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's certificate and key are, and whom it asks for certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server certificate chain.
    pub certificate: PathBuf,
    /// PEM: its private key.
    pub key: PathBuf,
    /// PEM: the CA(s) client certificates must chain to; `None`: no client
    /// certificates (bearer tokens only).
    pub client_ca: Option<PathBuf>,
    /// PEM: certificate revocation lists of the client CA.
    pub client_crls: Vec<PathBuf>,
    /// Refuse connections without a client certificate.
    pub require_client_certificate: bool,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub address: SocketAddr,
    /// The client's leaf certificate (DER), verified against the client CA.
    pub certificate: Option<Arc<Vec<u8>>>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for ClientInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        ClientInfo {
            address: *stream.remote_addr(),
            certificate: None,
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ClientInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))
}

/// Builds the rustls server configuration (aws-lc-rs, TLS 1.2 and 1.3, h1).
pub fn server_config(settings: &TlsSettings) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&settings.certificate)?)
            .collect::<Result<_, _>>()
            .map_err(|error| format!("{}: {error}", settings.certificate.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{}: no certificate in the file",
            settings.certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&settings.key)?)
        .map_err(|error| format!("{}: {error}", settings.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let builder = match &settings.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&read(ca)?) {
                let certificate =
                    certificate.map_err(|error| format!("{}: {error}", ca.display()))?;
                roots
                    .add(certificate)
                    .map_err(|error| format!("{}: {error}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no CA certificate in the file", ca.display()));
            }
            let mut crls = Vec::new();
            for path in &settings.client_crls {
                for crl in
                    rustls::pki_types::CertificateRevocationListDer::pem_slice_iter(&read(path)?)
                {
                    crls.push(crl.map_err(|error| format!("{}: {error}", path.display()))?);
                }
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .with_crls(crls);
            let verifier = if settings.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|error| error.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates, key)
        .map_err(|error| error.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An `axum::serve` listener that hands over finished TLS connections.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, ClientInfo)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        config: rustls::ServerConfig,
    ) -> std::io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, address) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let certificate = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|leaf| Arc::new(leaf.as_ref().to_vec()));
                            let _ = sender
                                .send((
                                    tls,
                                    ClientInfo {
                                        address,
                                        certificate,
                                    },
                                ))
                                .await;
                        }
                        Ok(Err(error)) => {
                            tracing::info!(%address, %error, "TLS handshake refused");
                        }
                        Err(_) => tracing::info!(%address, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local_addr,
            ready,
            accept_task,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = ClientInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept task never ends on its own; if it did, wait forever
            // (shutdown is the server's graceful signal, not this).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ClientInfo {
            address: self.local_addr,
            certificate: None,
        })
    }
}
