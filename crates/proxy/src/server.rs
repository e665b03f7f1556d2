//! The connections: each client gets one upstream connection, opened at its first command
//! and moved to a new master only between two commands (nothing in flight, no transaction,
//! no watch, no subscription), with its AUTH/HELLO/SELECT/SETNAME replayed. Bytes are
//! forwarded as they came; only frame boundaries are parsed.

use crate::command::{self, Class};
use crate::discovery::Target;
use crate::resp::{self, ReplyKind};
use crate::session::{Session, Verdict};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a command waits for a master (a failover in progress) before it gets an error.
pub const MASTER_WAIT: Duration = Duration::from_secs(2);
/// Pause before re-sending a write a new master refused for want of replicas.
const RETRY_LATER: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Stop reading from a client that has this much unsent input.
const MAX_PENDING: usize = 4 << 20;
const READ_CHUNK: usize = 16 << 10;

/// Which port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Everything goes to the master.
    Master,
    /// Reads: a replica picked per connection, round-robin, or the master when none is up.
    Read,
}

/// What every connection shares.
pub struct Shared {
    /// Where commands go.
    pub target: watch::Receiver<Target>,
    /// Connections with a non-blocking command in flight (a hold waits for 0).
    pub busy: Arc<AtomicUsize>,
    rr: AtomicUsize,
}

impl Shared {
    /// Shares `target` and `busy` between connections.
    pub fn new(target: watch::Receiver<Target>, busy: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(Self {
            target,
            busy,
            rr: AtomicUsize::new(0),
        })
    }
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, port: Port, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut c = Conn::new(stream, port, shared);
            if let Err(e) = c.run().await {
                tracing::debug!(%peer, error = %e, "client connection ended");
            }
            c.set_busy(false);
        });
    }
}

struct Upstream {
    stream: TcpStream,
    addr: String,
}

struct Conn {
    port: Port,
    client: TcpStream,
    up: Option<Upstream>,
    /// Client bytes not yet sent upstream.
    cbuf: Vec<u8>,
    /// Upstream bytes not yet parsed.
    ubuf: Vec<u8>,
    session: Session,
    target: Target,
    rx: watch::Receiver<Target>,
    shared: Arc<Shared>,
    busy: bool,
    /// An upstream not to send to again (it refused a write as a replica, or went away).
    avoid: Option<String>,
    /// Since when the next command has waited for somewhere to go.
    waiting: Option<Instant>,
    /// Not before this instant is the next command sent (a refused write's retry).
    backoff: Option<Instant>,
    /// The refusal swallowed for a retry, given to the client if the wait runs out.
    refusal: Option<Vec<u8>>,
    closing: bool,
    /// Everything sendable was sent and the input ends in an incomplete command: keep reading
    /// whatever its size (a large value), as the limit on unsent input is for commands that wait.
    partial: bool,
}

type Result<T> = std::result::Result<T, std::io::Error>;

fn proto(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// Reads more bytes, or waits forever without an upstream.
async fn read_up(up: &mut Option<Upstream>, buf: &mut Vec<u8>) -> Result<usize> {
    match up {
        Some(u) => {
            buf.reserve(READ_CHUNK);
            u.stream.read_buf(buf).await
        }
        None => std::future::pending().await,
    }
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    fn new(client: TcpStream, port: Port, shared: Arc<Shared>) -> Self {
        let rx = shared.target.clone();
        let target = rx.borrow().clone();
        Self {
            port,
            client,
            up: None,
            cbuf: Vec::with_capacity(READ_CHUNK),
            ubuf: Vec::with_capacity(READ_CHUNK),
            session: Session::default(),
            target,
            rx,
            shared,
            busy: false,
            avoid: None,
            waiting: None,
            backoff: None,
            refusal: None,
            closing: false,
            partial: false,
        }
    }

    fn set_busy(&mut self, busy: bool) {
        if busy != self.busy {
            self.busy = busy;
            if busy {
                self.shared.busy.fetch_add(1, Ordering::SeqCst);
            } else {
                self.shared.busy.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    async fn run(&mut self) -> Result<()> {
        loop {
            self.pump().await?;
            let busy = !self.session.quiescent();
            self.set_busy(busy);
            if self.closing {
                let _ = self.client.shutdown().await;
                return Ok(());
            }
            let deadline = self.waiting.map(|t| t + MASTER_WAIT);
            let backoff = self.backoff;
            let read_client = self.partial || self.cbuf.len() < MAX_PENDING;
            tokio::select! {
                n = self.client.read_buf(&mut self.cbuf), if read_client => {
                    if n? == 0 {
                        return Ok(());
                    }
                    self.cbuf.reserve(READ_CHUNK);
                }
                n = read_up(&mut self.up, &mut self.ubuf) => match n {
                    Ok(n) if n > 0 => self.forward_replies().await?,
                    _ => self.upstream_lost().await?,
                },
                r = self.rx.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    self.target = self.rx.borrow_and_update().clone();
                }
                _ = wait_until(deadline) => self.give_up_waiting().await?,
                _ = wait_until(backoff) => self.backoff = None,
            }
        }
    }

    /// Where the next command must go, or `None` when there is nowhere yet.
    fn destination(&self) -> Option<String> {
        match self.port {
            Port::Master => self.target.master.clone(),
            Port::Read => {
                if let Some(u) = &self.up {
                    return Some(u.addr.clone());
                }
                let r = &self.target.replicas;
                if r.is_empty() {
                    return self.target.master.clone();
                }
                let i = self.shared.rr.fetch_add(1, Ordering::Relaxed) % r.len();
                r.get(i).cloned()
            }
        }
        .filter(|d| self.avoid.as_ref() != Some(d))
    }

    /// Sends every command that can go now; stops at the first that must wait.
    async fn pump(&mut self) -> Result<()> {
        let mut sent_upto = 0;
        self.partial = false;
        loop {
            let cmd = match resp::parse_command(&self.cbuf[sent_upto..]) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    self.partial = true;
                    break;
                }
                Err(e) => {
                    self.flush(sent_upto).await?;
                    let msg = format!("-ERR Protocol error: {e}\r\n");
                    self.client.write_all(msg.as_bytes()).await?;
                    self.closing = true;
                    return Ok(());
                }
            };
            let buf = &self.cbuf[sent_upto..];
            if cmd.argc == 0 {
                // An empty inline line: Redis ignores it; so can we, if nothing precedes it.
                if sent_upto == 0 {
                    self.cbuf.drain(..cmd.len);
                    continue;
                }
                sent_upto += cmd.len;
                continue;
            }
            let class = command::classify(buf, &cmd);
            if let Some(refusal) = refused(buf, &cmd, class) {
                // Answered here, so it must come after every reply already owed.
                if sent_upto > 0 || self.session.outstanding() > 0 {
                    self.flush(sent_upto).await?;
                    return Ok(());
                }
                self.client.write_all(refusal.as_bytes()).await?;
                self.cbuf.drain(..cmd.len);
                continue;
            }
            if self.port == Port::Master && self.target.hold {
                break;
            }
            if self.backoff.is_some_and(|t| t > Instant::now()) {
                break;
            }
            let dest = self.destination();
            let here = self.up.as_ref().map(|u| &u.addr);
            if dest.is_none() || here != dest.as_ref() {
                if sent_upto > 0 || self.session.outstanding() > 0 {
                    // Move only between commands: first the replies still owed.
                    break;
                }
                if self.up.is_some() && self.session.pinned() {
                    // A transaction, watched keys or subscriptions cannot follow: close at this
                    // command boundary; the client reconnects to the new master.
                    self.closing = true;
                    return Ok(());
                }
                let Some(dest) = dest else {
                    self.waiting.get_or_insert_with(Instant::now);
                    break;
                };
                if let Err(e) = self.connect(&dest).await {
                    tracing::debug!(upstream = %dest, error = %e, "cannot reach upstream");
                    self.up = None;
                    self.avoid = Some(dest);
                    self.waiting.get_or_insert_with(Instant::now);
                    break;
                }
            }
            // A retry keeps its wait running, so repeated refusals end at MASTER_WAIT.
            if self.backoff.take().is_none() && self.refusal.is_none() {
                self.waiting = None;
            }
            let retryable = sent_upto == 0 && self.session.outstanding() == 0;
            let bytes = &self.cbuf[sent_upto..sent_upto + cmd.len];
            self.session.on_send(class, bytes, retryable);
            sent_upto += cmd.len;
        }
        self.flush(sent_upto).await
    }

    async fn flush(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        if let Some(u) = &mut self.up {
            if let Err(e) = u.stream.write_all(&self.cbuf[..n]).await {
                self.cbuf.drain(..n);
                return Err(e);
            }
        }
        self.cbuf.drain(..n);
        Ok(())
    }

    /// Opens `addr` and tells it what the client told the previous upstream.
    async fn connect(&mut self, addr: &str) -> Result<()> {
        self.up = None;
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let replay = self.session.replay();
        if !replay.is_empty() {
            let mut out = Vec::new();
            for c in &replay {
                out.extend_from_slice(c);
            }
            stream.write_all(&out).await?;
            let mut buf = Vec::with_capacity(1024);
            let mut owed = replay.len();
            while owed > 0 {
                match resp::parse_reply(&buf).map_err(proto)? {
                    Some(r) => {
                        if matches!(r.kind, ReplyKind::Error | ReplyKind::BlobError) {
                            return Err(proto(format!(
                                "{addr} refused the connection's state: {}",
                                String::from_utf8_lossy(&buf[r.start..r.len]).trim_end()
                            )));
                        }
                        buf.drain(..r.len);
                        if r.kind != ReplyKind::Push {
                            owed -= 1;
                        }
                    }
                    None => {
                        let read = tokio::time::timeout(CONNECT_TIMEOUT, stream.read_buf(&mut buf));
                        match read.await {
                            Ok(Ok(n)) if n > 0 => {}
                            _ => return Err(proto(format!("{addr} did not answer the replay"))),
                        }
                    }
                }
            }
        }
        tracing::debug!(upstream = addr, "connected");
        self.up = Some(Upstream {
            stream,
            addr: addr.to_string(),
        });
        self.avoid = None;
        Ok(())
    }

    /// Forwards complete replies, keeping count; a refused write or unblocked pop goes back
    /// to the front of the client's queue for the next master instead.
    async fn forward_replies(&mut self) -> Result<()> {
        if self.session.subscribed() {
            // Pushes and replies interleave freely; nothing is counted any more.
            self.client.write_all(&self.ubuf).await?;
            self.ubuf.clear();
            return Ok(());
        }
        let mut done = 0;
        while let Some(r) = resp::parse_reply(&self.ubuf[done..]).map_err(proto)? {
            let frame = &self.ubuf[done..done + r.len];
            let verdict = if r.kind == ReplyKind::Push {
                Verdict::Forward
            } else {
                self.session.on_reply(resp::error_code(frame, &r))
            };
            match verdict {
                Verdict::Forward => {
                    done += r.len;
                    if self.backoff.is_none() {
                        // An answer: whatever was being retried is over.
                        self.waiting = None;
                        self.refusal = None;
                    }
                }
                Verdict::ForwardAndClose => {
                    done += r.len;
                    self.closing = true;
                }
                Verdict::Retry(bytes) => {
                    self.client.write_all(&self.ubuf[..done]).await?;
                    self.ubuf.drain(..done + r.len);
                    done = 0;
                    tracing::debug!(
                        upstream = ?self.up.as_ref().map(|u| &u.addr),
                        "upstream refused or unblocked a command; sending it to the next master"
                    );
                    self.avoid = self.up.take().map(|u| u.addr);
                    self.cbuf.splice(0..0, bytes);
                }
                Verdict::RetryLater(bytes) => {
                    self.client.write_all(&self.ubuf[..done]).await?;
                    self.refusal = Some(self.ubuf[done..done + r.len].to_vec());
                    self.ubuf.drain(..done + r.len);
                    done = 0;
                    self.waiting.get_or_insert_with(Instant::now);
                    self.backoff = Some(Instant::now() + RETRY_LATER);
                    self.cbuf.splice(0..0, bytes);
                }
            }
            if self.session.subscribed() {
                done = self.ubuf.len();
                break;
            }
        }
        if done > 0 {
            self.client.write_all(&self.ubuf[..done]).await?;
            self.ubuf.drain(..done);
        }
        Ok(())
    }

    /// The upstream closed: owed replies become errors (the commands may or may not have
    /// run); a pinned connection is closed, since its state is gone.
    async fn upstream_lost(&mut self) -> Result<()> {
        let addr = self.up.take().map(|u| u.addr).unwrap_or_default();
        self.ubuf.clear();
        tracing::debug!(upstream = %addr, "upstream connection lost");
        if self.session.pinned() {
            self.closing = true;
            return Ok(());
        }
        let owed = self.session.outstanding();
        if owed > 0 {
            let msg = format!(
                "-ERR vd proxy: connection to {addr} lost; the command may or may not have run\r\n"
            );
            for _ in 0..owed {
                self.session.on_reply(Some(b"ERR"));
                self.client.write_all(msg.as_bytes()).await?;
            }
        }
        self.avoid = Some(addr);
        Ok(())
    }

    /// Nowhere to send the next command for [`MASTER_WAIT`]: it fails (with the refusal the
    /// proxy swallowed, if any), later ones wait anew.
    async fn give_up_waiting(&mut self) -> Result<()> {
        self.waiting = None;
        if self.session.outstanding() > 0 {
            // A retry is in flight: its reply decides.
            return Ok(());
        }
        self.backoff = None;
        self.avoid = None;
        let refusal = self.refusal.take();
        let Ok(Some(cmd)) = resp::parse_command(&self.cbuf) else {
            return Ok(());
        };
        self.cbuf.drain(..cmd.len);
        let reply = refusal.unwrap_or_else(|| {
            b"-MASTERDOWN vd proxy: no master answered; retry once the failover is over\r\n"
                .to_vec()
        });
        self.client.write_all(&reply).await
    }
}

/// The reply for commands the proxy answers itself: ones that would break reply counting.
fn refused(buf: &[u8], cmd: &resp::Command, class: Class) -> Option<&'static str> {
    match class {
        Class::Monitor => {
            Some("-ERR MONITOR is not supported through vd proxy; connect to a pod\r\n")
        }
        Class::ClientOther
            if cmd
                .arg(buf, 1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"REPLY")) =>
        {
            Some("-ERR CLIENT REPLY is not supported through vd proxy\r\n")
        }
        _ => None,
    }
}
