//! The connection layer under every client in this crate: opening an authenticated connection
//! to one address, sending commands through it, and the error type they all report.

use std::time::Duration;

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Could not connect in time.
    #[error("cannot reach redis at {addr}: {reason}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// The server answered with an error.
    #[error("redis at {addr}: {source}")]
    Command {
        /// host:port.
        addr: String,
        /// Cause.
        #[source]
        source: redis::RedisError,
    },
    /// An operation did not complete in time.
    #[error("{0}")]
    Timeout(String),
    /// The cluster is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
}

/// The CA (PEM) that the certificates of a TLS-only redis chain to. A connection through it
/// speaks TLS only and accepts the server only if its certificate chains to this CA and covers
/// the host connected to (a pod's address or name).
#[derive(Clone)]
pub struct TlsTrust {
    ca_pem: Vec<u8>,
}

impl TlsTrust {
    /// Trust the CA certificate(s) in `ca_pem`.
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> TlsTrust {
        TlsTrust {
            ca_pem: ca_pem.into(),
        }
    }
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust").finish_non_exhaustive()
    }
}

/// How vd reaches a redis: the `default` user's password, and the CA when the redis speaks
/// TLS only.
#[derive(Clone, Copy, Default)]
pub struct Access<'a> {
    /// Authenticates as `default` when set.
    pub password: Option<&'a str>,
    /// TLS, verified against this CA, when set; plain TCP otherwise.
    pub tls: Option<&'a TlsTrust>,
}

impl<'a> Access<'a> {
    /// Plain TCP, with `password` when set.
    pub fn plain(password: Option<&'a str>) -> Access<'a> {
        Access {
            password,
            tls: None,
        }
    }
}

/// Makes ring the TLS provider of this process once, before the first TLS client is built:
/// the redis client asks rustls for the process default, and with more than one provider
/// compiled in (another dependency may bring one) rustls will not choose by itself. Called by
/// every TLS connection of this crate; a program that builds redis TLS clients of its own
/// calls it first.
pub fn tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another part of the process installed one first; that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A TLS stream to `host:port`, the server verified against `trust` and `host` (a name or an
/// address): for the raw replication protocol of an RDB fetch, which the redis client does not
/// speak.
pub(crate) async fn tls_stream(
    host: &str,
    port: u16,
    trust: &TlsTrust,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&trust.ca_pem) {
        let cert = cert.map_err(|e| format!("the CA certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA certificate: {e}"))?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// A client for `host:port` that authenticates as `default` when `access` has a password, over
/// TLS when it has a CA. Opens no connection yet. Shared by the node and sentinel clients and
/// the sentinel watch.
pub(crate) fn client_with(
    host: &str,
    port: u16,
    access: Access<'_>,
) -> Result<redis::Client, RedisError> {
    let unreachable = |reason: String| RedisError::Unreachable {
        addr: format!("{host}:{port}"),
        reason,
    };
    use redis::IntoConnectionInfo;
    let addr = match access.tls {
        Some(_) => redis::ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        },
        None => redis::ConnectionAddr::Tcp(host.to_string(), port),
    };
    let info = addr
        .into_connection_info()
        .map_err(|e| unreachable(e.to_string()))?;
    let info = match access.password {
        Some(p) => info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(p)),
        None => info,
    };
    match access.tls {
        Some(trust) => {
            tls_provider();
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(trust.ca_pem.clone()),
            };
            redis::Client::build_with_tls(info, certs).map_err(|e| unreachable(e.to_string()))
        }
        None => redis::Client::open(info).map_err(|e| unreachable(e.to_string())),
    }
}

/// An authenticated connection to `host:port` whose errors name that address; what the node,
/// sentinel and migration-source clients send their commands through.
pub(crate) struct Conn {
    pub(crate) addr: String,
    conn: redis::aio::MultiplexedConnection,
}

impl Conn {
    /// Connects and authenticates within `timeout`; every later reply must also arrive within it.
    pub(crate) async fn open(
        host: &str,
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Conn, RedisError> {
        Conn::open_with(host, port, Access::plain(password), timeout).await
    }

    /// [`Conn::open`], over TLS when `access` says so.
    pub(crate) async fn open_with(
        host: &str,
        port: u16,
        access: Access<'_>,
        timeout: Duration,
    ) -> Result<Conn, RedisError> {
        let addr = format!("{host}:{port}");
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = client_with(host, port, access)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisError::Unreachable {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        Ok(Conn { addr, conn })
    }

    /// Sends a pipeline; the replies come back in order.
    pub(crate) async fn pipe<T: redis::FromRedisValue>(
        &mut self,
        p: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        p.query_async(&mut self.conn)
            .await
            .map_err(|source| RedisError::Command {
                addr: self.addr.clone(),
                source,
            })
    }

    /// Sends one command.
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        cmd.query_async(&mut self.conn)
            .await
            .map_err(|source| RedisError::Command {
                addr: self.addr.clone(),
                source,
            })
    }
}

/// The rotation's first and last steps on the `default` user, shared by data pods and
/// sentinels (both run ACLs).
#[derive(Clone, Copy)]
pub(crate) enum DefaultPassword<'a> {
    /// `ACL SETUSER default >pw`: accept `pw` too.
    Add(&'a str),
    /// `ACL SETUSER default <pw`: stop accepting `pw`.
    Remove(&'a str),
}

impl Conn {
    /// Changes the `default` user's passwords.
    pub(crate) async fn default_password(
        &mut self,
        change: DefaultPassword<'_>,
    ) -> Result<(), RedisError> {
        let rule = match change {
            DefaultPassword::Add(pw) => format!(">{pw}"),
            DefaultPassword::Remove(pw) => format!("<{pw}"),
        };
        let _: String = self
            .run(redis::cmd("ACL").arg("SETUSER").arg("default").arg(rule))
            .await?;
        Ok(())
    }
}
