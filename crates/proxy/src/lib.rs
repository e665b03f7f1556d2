//! `vd proxy`: one stable address in front of a replicated Redis. Port 6379 sends every
//! command to the current master, port 6380 spreads reads over ready replicas. The proxy
//! parses only what switching needs: command and reply boundaries, and the few commands that
//! carry connection state (AUTH, HELLO, SELECT, MULTI, WATCH, SUBSCRIBE, CLIENT SETNAME).

pub mod command;
pub mod discovery;
pub mod feed;
pub mod lane;
pub mod metrics;
pub mod resp;
pub mod route;
pub mod server;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// What `vd proxy` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The master port's address.
    pub listen: SocketAddr,
    /// The read port's address.
    pub read_listen: Option<SocketAddr>,
    /// Where to find the master.
    pub discovery: discovery::Config,
    /// Share upstream connections between clients in the same state (see [`lane`]).
    pub multiplex: bool,
    /// What the proxy counts.
    pub stats: metrics::Stats,
    /// TLS at both ends (clients and upstreams), for a redis that speaks TLS only.
    pub tls: Option<Arc<tls::Tls>>,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listening address was taken or not local.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Nothing to proxy to.
    #[error("no upstream given; pass --upstream HOST:PORT for each data pod")]
    NoUpstream,
}

/// Listens on both ports and serves until the task is cancelled.
pub async fn run(opts: Options) -> Result<(), ProxyError> {
    if opts.discovery.upstreams.is_empty() {
        return Err(ProxyError::NoUpstream);
    }
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Listen { addr, source })
    };
    let master = bind(opts.listen).await?;
    let read = match opts.read_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let (tx, rx) = tokio::sync::watch::channel(discovery::Target::default());
    let busy = Arc::new(AtomicUsize::new(0));
    let shared = server::Shared::new(
        rx,
        busy.clone(),
        opts.multiplex,
        opts.stats.clone(),
        opts.tls.clone(),
    );
    tracing::info!(listen = %opts.listen, read = ?opts.read_listen, upstreams = ?opts.discovery.upstreams, "vd proxy listening");
    let discovery = tokio::spawn(discovery::run(opts.discovery, tx, busy, opts.stats));
    if let Some(read) = read {
        tokio::spawn(server::serve(read, server::Port::Read, shared.clone()));
    }
    server::serve(master, server::Port::Master, shared).await;
    discovery.abort();
    Ok(())
}
