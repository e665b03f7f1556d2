//! The connections: a client's commands go over a lane (an upstream connection shared by
//! clients in the same connection state, see [`crate::lane`]) until it sends one that needs
//! a connection of its own (MULTI, WATCH, SUBSCRIBE, a blocking pop, CLIENT ...), from then on
//! over its own upstream. Either is opened at the first command and moved to a new master only
//! between two commands (nothing in flight, no transaction, no watch, no subscription), with
//! its AUTH/HELLO/SELECT/SETNAME replayed. Bytes are forwarded as they came; only frame
//! boundaries are parsed.

use crate::command::{self, Class};
use crate::discovery::Target;
use crate::lane::{self, Lane, Lanes};
use crate::metrics::{PortCounters, Stats};
use crate::resp::{self, ReplyKind};
use crate::session::{self, Session, Verdict};
use crate::tls::{Stream, Tls};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long a command waits for a master (a failover in progress) before it gets an error.
pub const MASTER_WAIT: Duration = Duration::from_secs(2);
/// Pause before re-sending a write a new master refused for want of replicas.
const RETRY_LATER: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause before connecting to the master again after a failed attempt.
const CONNECT_RETRY: Duration = Duration::from_millis(50);
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
    /// Whether clients share upstream connections (the default; off with `vd proxy --dedicated`).
    multiplex: bool,
    lanes: Lanes,
    stats: Stats,
    /// TLS at both ends, for a redis that speaks TLS only.
    tls: Option<Arc<Tls>>,
}

impl Shared {
    /// Shares `target` and `busy` between connections; `multiplex` lets clients share
    /// upstream connections; connections count into `stats`; with `tls`, clients and
    /// upstreams speak TLS.
    pub fn new(
        target: watch::Receiver<Target>,
        busy: Arc<AtomicUsize>,
        multiplex: bool,
        stats: Stats,
        tls: Option<Arc<Tls>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            target,
            busy,
            rr: AtomicUsize::new(0),
            multiplex,
            lanes: Lanes::default(),
            stats,
            tls,
        })
    }
}

impl Port {
    /// The port's metric label.
    fn label(self) -> &'static str {
        match self {
            Port::Master => "master",
            Port::Read => "read",
        }
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
            // The handshake in the connection's own task: a slow client holds up no other.
            let stream = match &shared.tls {
                Some(tls) => match tls.accept(stream).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => Stream::Plain(stream),
            };
            let mut c = Conn::new(stream, port, shared);
            c.counters.connections.inc();
            c.counters.open.inc();
            if let Err(e) = c.run().await {
                tracing::debug!(%peer, error = %e, "client connection ended");
            }
            c.counters.open.dec();
            c.set_busy(false);
        });
    }
}

enum Link {
    /// The client's own connection.
    Own(Stream),
    /// A lane shared with clients in the same state.
    Shared(Lane),
}

struct Upstream {
    link: Link,
    addr: String,
    /// The lane's state key (empty for an own connection).
    key: Vec<u8>,
}

struct Conn {
    port: Port,
    client: Stream,
    up: Option<Upstream>,
    /// Where lanes send this client's replies.
    replies_tx: mpsc::UnboundedSender<lane::Reply>,
    replies: mpsc::UnboundedReceiver<lane::Reply>,
    /// Sent a command that needs its own upstream: no lanes any more.
    dedicated: bool,
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
    /// This port's counters.
    counters: PortCounters,
}

type Result<T> = std::result::Result<T, std::io::Error>;

fn proto(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// Reads more reply bytes (0: the upstream is gone), or waits forever without an upstream.
async fn read_up(
    up: &mut Option<Upstream>,
    replies: &mut mpsc::UnboundedReceiver<lane::Reply>,
    buf: &mut Vec<u8>,
) -> Result<usize> {
    match up {
        Some(Upstream {
            link: Link::Own(stream),
            ..
        }) => {
            buf.reserve(READ_CHUNK);
            stream.read_buf(buf).await
        }
        Some(Upstream {
            link: Link::Shared(_),
            ..
        }) => match replies.recv().await {
            Some(lane::Reply::Data(d)) => {
                buf.extend_from_slice(&d);
                Ok(d.len())
            }
            Some(lane::Reply::Lost) | None => Ok(0),
        },
        None => std::future::pending().await,
    }
}

/// Why [`open`] failed.
enum OpenError {
    /// The server refused replayed command number `index`; `reply` is its answer.
    Refused { index: usize, reply: Vec<u8> },
    /// Connecting, writing or reading failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> Self {
        OpenError::Io(e)
    }
}

impl From<OpenError> for std::io::Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Io(e) => e,
            OpenError::Refused { reply, .. } => proto(format!(
                "the server refused the connection's state: {}",
                String::from_utf8_lossy(&reply).trim_end()
            )),
        }
    }
}

/// Opens `addr` (over TLS with `tls`) and sends it `replay` (`count` commands: the client's
/// connection state).
async fn open(
    addr: &str,
    replay: &[u8],
    count: usize,
    tls: Option<&Tls>,
) -> std::result::Result<Stream, OpenError> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        match tls {
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                tls.connect(host, tcp).await
            }
            None => Ok(Stream::Plain(tcp)),
        }
    };
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    if count == 0 {
        return Ok(stream);
    }
    stream.write_all(replay).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut answered = 0;
    while answered < count {
        match resp::parse_reply(&buf).map_err(proto)? {
            Some(r) => {
                if matches!(r.kind, ReplyKind::Error | ReplyKind::BlobError) {
                    return Err(OpenError::Refused {
                        index: answered,
                        reply: buf[..r.len].to_vec(),
                    });
                }
                buf.drain(..r.len);
                if r.kind != ReplyKind::Push {
                    answered += 1;
                }
            }
            None => {
                let read = tokio::time::timeout(CONNECT_TIMEOUT, stream.read_buf(&mut buf));
                match read.await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => {
                        return Err(OpenError::Io(proto(format!(
                            "{addr} did not answer the replay"
                        ))))
                    }
                }
            }
        }
    }
    Ok(stream)
}

/// How many commands `bytes` holds (a session key: whole frames back to back).
fn commands_in(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while let Ok(Some(c)) = resp::parse_command(bytes) {
        bytes = &bytes[c.len..];
        n += 1;
    }
    n
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    fn new(client: Stream, port: Port, shared: Arc<Shared>) -> Self {
        let rx = shared.target.clone();
        let target = rx.borrow().clone();
        let counters = shared.stats.port(port.label());
        let (replies_tx, replies) = mpsc::unbounded_channel();
        Self {
            port,
            client,
            up: None,
            replies_tx,
            replies,
            dedicated: !shared.multiplex,
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
            counters,
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
                n = read_up(&mut self.up, &mut self.replies, &mut self.ubuf) => match n {
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
        // Commands in `..sent_upto` (each owes one reply).
        let mut sent = 0;
        self.partial = false;
        loop {
            let cmd = match resp::parse_command(&self.cbuf[sent_upto..]) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    self.partial = true;
                    break;
                }
                Err(e) => {
                    self.flush(sent_upto, sent).await?;
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
            let wait = command::confirms_nothing(buf, &cmd);
            if let Some(refusal) = refused(buf, &cmd, class) {
                // Answered here, so it must come after every reply already owed.
                if sent_upto > 0 || self.session.outstanding() > 0 {
                    self.flush(sent_upto, sent).await?;
                    return Ok(());
                }
                self.client.write_all(refusal.as_bytes()).await?;
                self.cbuf.drain(..cmd.len);
                continue;
            }
            if self.port == Port::Master && class != Class::Blocking {
                // Busy before looking at the hold: discovery publishes a hold, then waits for
                // no busy connection before acknowledging it, so either it sees this one busy
                // or this one sees the hold (a target cached before the select! noticed the
                // change would let a write through after the acknowledgement).
                self.set_busy(true);
                if self.rx.has_changed().unwrap_or(false) {
                    self.target = self.rx.borrow_and_update().clone();
                }
            }
            if self.port == Port::Master && self.target.hold {
                break;
            }
            if let (Port::Master, Some(nothing)) = (self.port, wait) {
                if self.session.wait_confirms_nothing(self.target.lineage) {
                    // The writes it asks about went to a master failed over since: the new
                    // one may not have them, and a WAIT there would count its replicas for
                    // them anyway. Answered here, after every reply already owed.
                    if sent_upto > 0 || self.session.outstanding() > 0 {
                        self.flush(sent_upto, sent).await?;
                        return Ok(());
                    }
                    self.client.write_all(nothing).await?;
                    self.session.wait_answered_here();
                    self.cbuf.drain(..cmd.len);
                    continue;
                }
            }
            if self.backoff.is_some_and(|t| t > Instant::now()) {
                break;
            }
            let share = !self.dedicated && !self.session.pinned() && session::shareable(class);
            if !share && !self.dedicated {
                // From here on this client needs an upstream of its own.
                if sent_upto > 0 || self.session.outstanding() > 0 {
                    break;
                }
                self.dedicated = true;
                self.up = None;
            }
            // A state command goes to the lane of the state it sets, which its connection
            // already has, so it is answered as it would be, without changing the lane.
            let key_after = (share && session::changes_key(class)).then(|| {
                self.session
                    .key_after(class, &self.cbuf[sent_upto..sent_upto + cmd.len])
            });
            let dest = self.destination();
            let fits = match (&self.up, &dest) {
                (Some(u), Some(d)) if u.addr == *d => match &u.link {
                    Link::Own(_) => true,
                    Link::Shared(l) => {
                        !l.is_closed()
                            && match &key_after {
                                Some(k) => u.key == *k,
                                None => u.key == self.session.key(),
                            }
                    }
                },
                _ => false,
            };
            if !fits {
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
                let linked = if self.dedicated {
                    self.connect(&dest).await
                } else {
                    match self.join_lane(&dest, key_after, class).await {
                        Ok(Some(refusal)) => {
                            // The state command itself was refused: that is its answer, and
                            // the first one owed (nothing is in flight).
                            self.client.write_all(&refusal).await?;
                            self.cbuf.drain(..cmd.len);
                            continue;
                        }
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    }
                };
                if let Err(e) = linked {
                    tracing::debug!(upstream = %dest, error = %e, "cannot reach upstream");
                    self.counters.upstream_errors.inc();
                    self.up = None;
                    if self.port == Port::Master {
                        // The master is the only place to go: try it again shortly (a connect
                        // that timed out under load), until MASTER_WAIT runs out or discovery
                        // names another. Avoiding it would fail the command at MASTER_WAIT
                        // however soon it answers again.
                        self.backoff = Some(Instant::now() + CONNECT_RETRY);
                    } else {
                        self.avoid = Some(dest);
                    }
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
            self.session
                .on_sent_under(self.target.lineage, class, wait.is_some());
            sent_upto += cmd.len;
            sent += 1;
        }
        self.flush(sent_upto, sent).await
    }

    /// Sends the first `n` bytes of client input (`commands` commands) upstream.
    async fn flush(&mut self, n: usize, commands: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let result = match self.up.as_mut().map(|u| &mut u.link) {
            Some(Link::Own(stream)) => stream.write_all(&self.cbuf[..n]).await,
            Some(Link::Shared(lane)) => {
                let sent = lane.send(lane::Request {
                    bytes: self.cbuf[..n].to_vec(),
                    replies: commands,
                    to: self.replies_tx.clone(),
                });
                if sent {
                    Ok(())
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the shared upstream connection ended",
                    ))
                }
            }
            None => Ok(()),
        };
        self.cbuf.drain(..n);
        if result.is_ok() {
            self.counters.commands.inc_by(commands as u64);
        }
        result
    }

    /// Opens an own connection to `addr` and tells it what the client told the previous one.
    async fn connect(&mut self, addr: &str) -> Result<()> {
        self.up = None;
        let key = self.session.key().to_vec();
        let stream = open(addr, &key, commands_in(&key), self.shared.tls.as_deref()).await?;

        tracing::debug!(upstream = addr, "connected");
        self.up = Some(Upstream {
            link: Link::Own(stream),
            addr: addr.to_string(),
            key: Vec::new(),
        });
        self.avoid = None;
        Ok(())
    }

    /// Joins the lane to `addr` for the client's state (or `key_after`, the state the command
    /// about to go sets), opening it if there is none. When the server refuses that command
    /// (a wrong password, an unknown CLIENT SETINFO), returns its answer instead: the client
    /// gets it and keeps its state. A refused earlier state (the password changed since) is
    /// no lane's: the client gets an own connection, as without lanes.
    async fn join_lane(
        &mut self,
        addr: &str,
        key_after: Option<Vec<u8>>,
        class: Class,
    ) -> Result<Option<Vec<u8>>> {
        self.up = None;
        let new_state = key_after.is_some();
        let key = key_after.unwrap_or_else(|| self.session.key().to_vec());
        let lanes = &self.shared.lanes;
        // Found without waiting in the common case; otherwise one client opens the lane and
        // the others that came meanwhile wait for it, so they end up sharing it.
        let mut found = lanes.find(addr, &key);
        let opener = found.is_none().then(|| lanes.opener(addr, &key));
        let _opening = match &opener {
            Some(lock) => {
                let guard = lock.lock().await;
                found = lanes.find(addr, &key);
                Some(guard)
            }
            None => None,
        };
        let lane = match found {
            Some(l) => l,
            None => {
                if let Some(refusal) = lanes.refused(addr, &key) {
                    lanes.opened(addr, &key);
                    return Ok(Some(refusal));
                }
                let count = commands_in(&key);
                let opened = open(addr, &key, count, self.shared.tls.as_deref()).await;
                lanes.opened(addr, &key);
                match opened {
                    Ok(stream) => {
                        tracing::debug!(upstream = addr, "shared connection opened");
                        lanes.start(addr, key.clone(), stream)
                    }
                    Err(OpenError::Refused { index, reply }) if new_state && index + 1 == count => {
                        // A server that has no CLIENT SETINFO or fewer databases keeps saying
                        // so; a password may change any time, so AUTH is always asked.
                        if matches!(class, Class::ClientSetName | Class::Select) {
                            lanes.remember_refusal(addr, &key, &reply);
                        }
                        return Ok(Some(reply));
                    }
                    Err(OpenError::Refused { .. }) => {
                        self.dedicated = true;
                        self.connect(addr).await?;
                        return Ok(None);
                    }
                    Err(OpenError::Io(e)) => return Err(e),
                }
            }
        };
        self.up = Some(Upstream {
            link: Link::Shared(lane),
            addr: addr.to_string(),
            key,
        });
        self.avoid = None;
        Ok(None)
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
        self.counters.upstream_errors.inc();
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
        Class::Other
            if cmd.arg(buf, 0).is_some_and(|a| {
                a.eq_ignore_ascii_case(b"SYNC") || a.eq_ignore_ascii_case(b"PSYNC")
            }) =>
        {
            Some("-ERR replication (SYNC, PSYNC) is not supported through vd proxy; connect to a pod\r\n")
        }
        _ => None,
    }
}
