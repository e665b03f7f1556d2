//! TLS at both ends of the proxy, for a redis that speaks TLS only: clients connect over TLS
//! (the proxy serves the certificate vd issued to its pod) and the proxy speaks TLS to the
//! data pods and sentinels (verifying them against the same CA, by the names it dials).
//!
//! The certificate directory holds `tls.crt`, `tls.key` and `ca.crt`. vd renews the
//! certificate in place (a new file renamed over the old one); the proxy notices a changed
//! `tls.crt` within a second and serves the new one to the next clients, with no restart.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How often a handshake may look at the certificate file for a renewal.
const RECHECK: Duration = Duration::from_secs(1);
/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the proxy's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Bad {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The certificate and key in `dir`, ready to serve.
fn load_key(dir: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&cert_path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&cert_path, e))?;
    if certs.is_empty() {
        return Err(bad(&cert_path, "no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?).map_err(|e| bad(&key_path, e))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad(&key_path, e))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(certs, signing)))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The proxy's own certificate, read again when its file changes.
#[derive(Debug)]
struct Reloading {
    dir: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<rustls::sign::CertifiedKey>,
    mtime: Option<SystemTime>,
    checked: Instant,
}

impl rustls::server::ResolvesServerCert for Reloading {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.checked.elapsed() >= RECHECK {
            s.checked = Instant::now();
            let now = modified(&self.dir.join("tls.crt"));
            if now != s.mtime {
                match load_key(&self.dir) {
                    Ok(key) => {
                        s.key = key;
                        s.mtime = now;
                        tracing::info!(dir = %self.dir.display(), "serving a renewed certificate");
                    }
                    // Half-written files cannot be seen (they are renamed into place), so this
                    // is a real problem; the old certificate serves until it is fixed.
                    Err(e) => tracing::warn!(error = %e, "cannot load the renewed certificate"),
                }
            }
        }
        Some(s.key.clone())
    }
}

/// Both ends' TLS settings.
pub struct Tls {
    /// Accepts clients with the proxy's certificate.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Connects to the data pods, verifying them against the CA.
    pub connector: tokio_rustls::TlsConnector,
    /// The CA, for the proxy's own checks (`ROLE`, the sentinels).
    pub trust: vd_redisctl::TlsTrust,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate, key and CA in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Tls, TlsError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        // The provider every TLS client of this process uses (vd-redisctl installs the same).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = load_key(dir)?;
        let ca_path = dir.join("ca.crt");
        let ca_pem = read(&ca_path)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca_pem) {
            let cert = cert.map_err(|e| bad(&ca_path, e))?;
            roots.add(cert).map_err(|e| bad(&ca_path, e))?;
        }
        if roots.is_empty() {
            return Err(bad(&ca_path, "no certificate in it"));
        }
        let resolver = Reloading {
            dir: dir.to_path_buf(),
            state: Mutex::new(Loaded {
                key,
                mtime: modified(&dir.join("tls.crt")),
                checked: Instant::now(),
            }),
        };
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            trust: vd_redisctl::TlsTrust::new(ca_pem),
        })
    }

    /// TLS over `tcp` to `host` (the name or address dialled, which its certificate covers).
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<Stream> {
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let s = self.connector.connect(name, tcp).await?;
        Ok(Stream::Client(Box::new(s)))
    }

    /// A client's handshake over `tcp`.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        let s = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        Ok(Stream::Server(Box::new(s)))
    }
}

/// A connection of the proxy, to a client or to an upstream, plain or TLS.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS from a client.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS to an upstream.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
