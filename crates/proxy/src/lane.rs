//! Lanes: upstream connections shared by clients. Commands that leave no state on a connection
//! (a plain GET or SET, not MULTI, WATCH, SUBSCRIBE, a blocking pop or CLIENT ...) from every
//! client whose connection state (AUTH, HELLO, SELECT, SETNAME) is the same go to one upstream
//! connection per address, written in batches; the replies come back in order and are cut
//! apart by count. On loopback a request's cost is mostly its socket calls: sharing the
//! upstream side means Redis reads many clients' commands per call and the proxy writes them
//! in one, where a connection per client pays two calls per request on each side (the model
//! twemproxy uses; docs/benchmarks.md has both measured).
//!
//! A lane lives while some client holds it: the registry keeps only weak handles, so when the
//! last client moves to a new master or disconnects, the lane's task ends and its connection
//! closes.

use crate::resp::{self, ReplyKind, RespError};
use crate::tls::Stream;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const READ_CHUNK: usize = 16 << 10;

/// What a lane sends back to a client.
#[derive(Debug)]
pub enum Reply {
    /// Complete reply frames, in order.
    Data(Vec<u8>),
    /// The upstream connection ended; the replies still owed will not come.
    Lost,
}

/// Commands for a lane and where their replies go.
#[derive(Debug)]
pub struct Request {
    /// Complete commands.
    pub bytes: Vec<u8>,
    /// How many replies they produce.
    pub replies: usize,
    /// The client's reply channel.
    pub to: mpsc::UnboundedSender<Reply>,
}

/// A client's handle on a lane.
#[derive(Debug, Clone)]
pub struct Lane {
    tx: mpsc::UnboundedSender<Request>,
}

impl Lane {
    /// Queues commands; false when the lane has ended (nothing was sent).
    pub fn send(&self, req: Request) -> bool {
        self.tx.send(req).is_ok()
    }

    /// Whether the lane's task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

type Weak = mpsc::WeakUnboundedSender<Request>;
/// Lanes by upstream address: each one's state key and handle.
type ByAddress = HashMap<String, Vec<(Vec<u8>, Weak)>>;
/// (upstream address, connection-state key).
type AddrKey = (String, Vec<u8>);
/// A server's answer to a state, by address and state key.
type Refusals = HashMap<AddrKey, Vec<u8>>;
/// The lock held by whoever opens a lane, by address and state key.
type Openers = HashMap<AddrKey, Arc<tokio::sync::Mutex<()>>>;

/// The live lanes, by upstream address and connection-state key.
#[derive(Debug, Default)]
pub struct Lanes {
    map: Mutex<ByAddress>,
    /// Lasting refusals of a state (e.g. CLIENT SETINFO on Redis 7.0), by address and key, so
    /// each new client is answered without a connection of its own.
    refusals: Mutex<Refusals>,
    /// One opener per (address, key): clients that arrive together (a pool connecting, a
    /// failover moving everyone) wait for the first one's lane instead of each opening its own.
    opening: Mutex<Openers>,
}

/// Refusals remembered at most; beyond it the oldest are not kept (a client cycling through
/// database numbers must not grow the map).
const MAX_REFUSALS: usize = 64;

impl Lanes {
    /// The running lane to `addr` with state `key`, if any.
    pub fn find(&self, addr: &str, key: &[u8]) -> Option<Lane> {
        let map = self.map.lock().ok()?;
        map.get(addr)?
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, w)| w.upgrade())
            .filter(|tx| !tx.is_closed())
            .map(|tx| Lane { tx })
    }

    /// The remembered refusal of state `key` at `addr`.
    pub fn refused(&self, addr: &str, key: &[u8]) -> Option<Vec<u8>> {
        let map = self.refusals.lock().ok()?;
        map.get(&(addr.to_string(), key.to_vec())).cloned()
    }

    /// Remembers that `addr` answers state `key` with `reply`.
    pub fn remember_refusal(&self, addr: &str, key: &[u8], reply: &[u8]) {
        if let Ok(mut map) = self.refusals.lock() {
            if map.len() < MAX_REFUSALS {
                map.insert((addr.to_string(), key.to_vec()), reply.to_vec());
            }
        }
    }

    /// The lock whoever opens the lane to `addr` with state `key` holds while it connects;
    /// the others wait on it, then find the lane. Give it back with [`Lanes::opened`].
    pub fn opener(&self, addr: &str, key: &[u8]) -> Arc<tokio::sync::Mutex<()>> {
        match self.opening.lock() {
            Ok(mut map) => map
                .entry((addr.to_string(), key.to_vec()))
                .or_default()
                .clone(),
            // A poisoned map only costs the sharing: the caller opens a lane of its own.
            Err(_) => Arc::default(),
        }
    }

    /// The opening of the lane to `addr` with state `key` is over (whatever its outcome):
    /// clients still waiting hold the lock themselves; later ones find the lane.
    pub fn opened(&self, addr: &str, key: &[u8]) {
        if let Ok(mut map) = self.opening.lock() {
            map.remove(&(addr.to_string(), key.to_vec()));
        }
    }

    /// Starts a lane over `stream`, already connected to `addr` and set to state `key`.
    pub fn start(&self, addr: &str, key: Vec<u8>, stream: Stream) -> Lane {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut map) = self.map.lock() {
            let lanes = map.entry(addr.to_string()).or_default();
            lanes.retain(|(k, w)| *k != key && w.strong_count() > 0);
            lanes.push((key, tx.downgrade()));
            map.retain(|_, v| !v.is_empty());
        }
        tokio::spawn(run(stream, rx, addr.to_string()));
        Lane { tx }
    }
}

/// Cuts the complete replies at the front of `buf` among the requests waiting for them, in
/// order (`owed` holds each one's count). Returns, per request it reached, its index in `owed`
/// and the end of its bytes in `buf` (each run starts where the previous ended, the first at
/// 0), and how many requests were answered in full (they are removed from `owed`). A push
/// frame travels with the request at the front and is not counted.
pub fn split(
    buf: &[u8],
    owed: &mut VecDeque<usize>,
) -> Result<(Vec<(usize, usize)>, usize), RespError> {
    let mut runs = Vec::new();
    let mut at = 0;
    let mut idx = 0;
    let mut done = 0;
    while idx < owed.len() {
        let Some(r) = resp::parse_reply(&buf[at..])? else {
            break;
        };
        at += r.len;
        if r.kind == ReplyKind::Push {
            continue;
        }
        owed[idx] -= 1;
        if owed[idx] == 0 {
            runs.push((idx, at));
            idx += 1;
            done += 1;
        }
    }
    if at > runs.last().map_or(0, |&(_, end)| end) {
        runs.push((idx, at));
    }
    owed.drain(..done);
    Ok((runs, done))
}

async fn run(mut stream: Stream, mut rx: mpsc::UnboundedReceiver<Request>, addr: String) {
    let mut owed: VecDeque<usize> = VecDeque::new();
    let mut to: VecDeque<mpsc::UnboundedSender<Reply>> = VecDeque::new();
    let mut wbuf = Vec::with_capacity(READ_CHUNK);
    let mut rbuf = Vec::with_capacity(READ_CHUNK);
    // False once every client let go: finish what is owed, then end.
    let mut open = true;
    let why = loop {
        if !open && owed.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            n = stream.read_buf(&mut rbuf), if !owed.is_empty() => {
                match n {
                    Ok(n) if n > 0 => {}
                    Ok(_) => break "closed by the server".to_string(),
                    Err(e) => break e.to_string(),
                }
                let (runs, done) = match split(&rbuf, &mut owed) {
                    Ok(s) => s,
                    Err(e) => break format!("unreadable reply: {e}"),
                };
                let mut from = 0;
                for (idx, end) in runs {
                    if let Some(t) = to.get(idx) {
                        // A client that went away just misses its replies.
                        let _ = t.send(Reply::Data(rbuf[from..end].to_vec()));
                    }
                    from = end;
                }
                to.drain(..done);
                rbuf.drain(..from);
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                    rbuf.reserve(READ_CHUNK);
                }
            }
            req = rx.recv(), if open => {
                let Some(req) = req else {
                    open = false;
                    continue;
                };
                let mut queue = |r: Request| {
                    wbuf.extend_from_slice(&r.bytes);
                    if r.replies > 0 {
                        owed.push_back(r.replies);
                        to.push_back(r.to);
                    }
                };
                queue(req);
                while let Ok(r) = rx.try_recv() {
                    queue(r);
                }
                if let Err(e) = stream.write_all(&wbuf).await {
                    break e.to_string();
                }
                wbuf.clear();
            }
        }
    };
    tracing::debug!(upstream = %addr, reason = %why, "shared upstream connection ended");
    rx.close();
    let mut waiting: Vec<mpsc::UnboundedSender<Reply>> = to.into();
    while let Ok(r) = rx.try_recv() {
        waiting.push(r.to);
    }
    // One `Lost` per client: a second one would reach it after it moved to another upstream.
    let mut told: Vec<mpsc::UnboundedSender<Reply>> = Vec::new();
    for t in waiting {
        if !told.iter().any(|x| x.same_channel(&t)) {
            let _ = t.send(Reply::Lost);
            told.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_replies_by_count_across_reads() {
        let mut owed: VecDeque<usize> = [1, 2, 1].into();
        let buf = b"+OK\r\n:1\r\n$3\r\nabc\r\n$2\r\nx";
        let (runs, done) = split(buf, &mut owed).unwrap();
        // First request: "+OK"; second: both of its replies; third: nothing complete yet.
        assert_eq!(runs, vec![(0, 5), (1, 18)]);
        assert_eq!(done, 2);
        assert_eq!(owed, VecDeque::from([1]));
    }

    #[test]
    fn a_partly_answered_request_gets_what_is_complete() {
        let mut owed: VecDeque<usize> = [3].into();
        let (runs, done) = split(b"+a\r\n+b\r\n+c", &mut owed).unwrap();
        assert_eq!(runs, vec![(0, 8)]);
        assert_eq!(done, 0);
        assert_eq!(owed, VecDeque::from([1]));
    }

    #[test]
    fn pushes_ride_along_uncounted() {
        let mut owed: VecDeque<usize> = [1].into();
        let buf = b">2\r\n+invalidate\r\n*0\r\n+OK\r\n";
        let (runs, done) = split(buf, &mut owed).unwrap();
        assert_eq!(runs, vec![(0, buf.len())]);
        assert_eq!(done, 1);
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        let mut owed: VecDeque<usize> = [1].into();
        assert!(split(b"?nonsense\r\n", &mut owed).is_err());
        let mut none: VecDeque<usize> = VecDeque::new();
        assert_eq!(split(b"+OK\r\n", &mut none).unwrap(), (vec![], 0));
    }
}
