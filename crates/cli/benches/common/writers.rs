//! The client side the rollout and soak benchmarks share: a writer thread that sends
//! `SET` (+ `WAIT 1 100`) and records every acknowledged write, a reader that reads the
//! writer's latest acknowledged key back, and the connections they use (straight to the pod
//! that answers `ROLE` master, or to one address such as a proxy). Included by those two
//! programs only (`#[path = "common/writers.rs"] mod writers;`).

use crate::common::ms;
use crate::ha;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONNECT: Duration = Duration::from_millis(500);

/// A writer's record since it was last drained: the instant of every acknowledged write, and
/// its key.
#[derive(Default)]
pub struct Record {
    pub acks: Vec<(Instant, String)>,
}

/// Something that hands out a connection to write to (None: nothing answers now).
pub type Connector = Arc<dyn Fn() -> Option<redis::Connection> + Send + Sync>;

pub struct Writer {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    record: Arc<Mutex<Record>>,
    /// The number of the latest acknowledged write (0: none yet); its key is `<name>:<n>`.
    latest: Arc<AtomicU64>,
    pub name: String,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Writes `<name>:<i>` = i back to back (pausing `pace` between writes); with `wait`, a
    /// write counts only once `WAIT 1 100` says a replica has it.
    pub fn start(name: String, wait: bool, pace: Duration, connect: Connector) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let record: Arc<Mutex<Record>> = Arc::default();
        let latest = Arc::new(AtomicU64::new(0));
        let (s, e, r, l, n) = (
            stop.clone(),
            errors.clone(),
            record.clone(),
            latest.clone(),
            name.clone(),
        );
        let handle = std::thread::spawn(move || {
            let mut conn = None;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                if conn.is_none() {
                    conn = connect();
                }
                let Some(c) = conn.as_mut() else {
                    e.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                i += 1;
                let key = format!("{n}:{i}");
                let set: redis::RedisResult<()> = redis::cmd("SET").arg(&key).arg(i).query(c);
                let wrote = set.and_then(|()| {
                    if wait {
                        redis::cmd("WAIT").arg(1).arg(100).query::<i64>(c)
                    } else {
                        Ok(1)
                    }
                });
                match wrote {
                    Ok(k) if k >= 1 => {
                        if let Ok(mut r) = r.lock() {
                            r.acks.push((Instant::now(), key));
                        }
                        l.store(i, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        e.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
                if !pace.is_zero() {
                    std::thread::sleep(pace);
                }
            }
        });
        Writer {
            stop,
            errors,
            record,
            latest,
            name,
            handle: Some(handle),
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The latest acknowledged write's number (0: none yet).
    pub fn latest(&self) -> Arc<AtomicU64> {
        self.latest.clone()
    }

    /// Whether a write was acknowledged after `t` (and not drained since).
    pub fn acked_since(&self, t: Instant) -> bool {
        self.record
            .lock()
            .ok()
            .and_then(|r| r.acks.last().map(|(at, _)| *at > t))
            .unwrap_or(false)
    }

    /// Takes what was recorded since the last drain.
    pub fn drain(&self) -> Record {
        self.record
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    /// Stops it: (longest gap between acknowledgements in ms, errors, acknowledged keys).
    pub fn stop(mut self) -> (f64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let r = self.drain();
        let gap = longest_gap(&r.acks, None);
        (
            gap,
            self.errors(),
            r.acks.into_iter().map(|(_, k)| k).collect(),
        )
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The longest time in ms between two acknowledgements in `acks`, counting from `from` (when
/// given) to the first of them.
pub fn longest_gap(acks: &[(Instant, String)], from: Option<Instant>) -> f64 {
    let times = from.into_iter().chain(acks.iter().map(|(t, _)| *t));
    let mut gap = 0.0_f64;
    let mut prev: Option<Instant> = None;
    for t in times {
        if let Some(p) = prev {
            gap = gap.max(ms(t.saturating_duration_since(p)));
        }
        prev = Some(t);
    }
    gap
}

/// What a reader saw: reads answered, errors, and acknowledged keys that read back empty.
#[derive(Default, Clone, Copy)]
pub struct ReadCounts {
    pub reads: u64,
    pub errors: u64,
    pub missing: u64,
}

/// Reads a writer's latest acknowledged key back, over and over, through `connect`.
pub struct Reader {
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<ReadCounts>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    pub fn start(of: &Writer, pace: Duration, connect: Connector) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Mutex<ReadCounts>> = Arc::default();
        let (s, c, latest, name) = (stop.clone(), counts.clone(), of.latest(), of.name.clone());
        let handle = std::thread::spawn(move || {
            let mut conn = None;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(pace);
                let i = latest.load(Ordering::Relaxed);
                if i == 0 {
                    continue;
                }
                if conn.is_none() {
                    conn = connect();
                }
                let Some(k) = conn.as_mut() else {
                    if let Ok(mut c) = c.lock() {
                        c.errors += 1;
                    }
                    continue;
                };
                let got: redis::RedisResult<Option<u64>> =
                    redis::cmd("GET").arg(format!("{name}:{i}")).query(k);
                let Ok(mut c) = c.lock() else { continue };
                match got {
                    Ok(Some(_)) => c.reads += 1,
                    Ok(None) => {
                        c.reads += 1;
                        c.missing += 1;
                    }
                    Err(_) => {
                        c.errors += 1;
                        conn = None;
                    }
                }
            }
        });
        Reader {
            stop,
            counts,
            handle: Some(handle),
        }
    }

    /// What it saw since the last call.
    pub fn take(&self) -> ReadCounts {
        self.counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A client connection: connecting may take 500 ms, a reply 5 s (a realistic client's
/// timeout; a proxy holding commands during a sentinel failover answers after it).
pub fn client(ip: &str, pw: &str) -> Option<redis::Connection> {
    let c = ha::connect(ip, 6379, Some(pw), CONNECT).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(c)
}

/// A connection to whichever of `ips` answers `ROLE` master.
pub fn master_of(ips: &[String], pw: &str) -> Option<redis::Connection> {
    ips.iter().find_map(|ip| {
        let mut c = client(ip, pw)?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
        matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master").then_some(c)
    })
}

/// How many of `keys` the master reached through `conn` does not have.
pub fn missing(conn: &mut redis::Connection, keys: &[String]) -> Result<Vec<String>, String> {
    let mut gone = Vec::new();
    for chunk in keys.chunks(500) {
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg(chunk)
            .query(conn)
            .map_err(|e| format!("MGET: {e}"))?;
        gone.extend(
            chunk
                .iter()
                .zip(vals)
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone()),
        );
    }
    Ok(gone)
}
