//! Finding the master: the controller's feed (read every few milliseconds: it knows first),
//! the sentinels' `+switch-master` and `GET-MASTER-ADDR-BY-NAME`, and each upstream's own
//! `ROLE`, which confirms any name before the proxy switches to it. Publishes a [`Target`].

use crate::feed::{self, Feed};
use crate::route::{self, Seen};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use vd_redisctl::{Access, Node, Role, Sentinel, TlsTrust};

/// How often the feed file is read.
const FEED_EVERY: Duration = Duration::from_millis(2);
/// How often every upstream is asked for its `ROLE`.
const ROLE_EVERY: Duration = Duration::from_millis(100);
/// How often the sentinels are asked for the master.
const SENTINEL_EVERY: Duration = Duration::from_secs(1);
/// Connect and reply timeout of the proxy's own checks.
const CHECK_TIMEOUT: Duration = Duration::from_millis(300);
/// A hold the controller never released is dropped after this (the controller died).
const HOLD_MAX: Duration = Duration::from_secs(5);

/// Where commands go now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The master's `host:port`, once known.
    pub master: Option<String>,
    /// Replicas with their link up, for the read port.
    pub replicas: Vec<String>,
    /// Send nothing new: a planned failover is under way.
    pub hold: bool,
    /// Counts the master changes that were not planned (no hold before them). A planned
    /// handover moves the master only once it has every write the old one took, so a
    /// connection's writes carry over; after an unplanned one, writes the old master took may
    /// be missing on the new one, and a WAIT there cannot vouch for them.
    pub lineage: u64,
}

/// What discovery watches.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data pods, `host:port`.
    pub upstreams: Vec<String>,
    /// Sentinels, `host:port`.
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor.
    pub master_name: String,
    /// The controller's feed file.
    pub feed: Option<PathBuf>,
    /// This proxy's name in hold acknowledgements.
    pub id: String,
    /// The data pods' password, for `ROLE`.
    pub password: Option<String>,
    /// The sentinels' password.
    pub sentinel_password: Option<String>,
    /// The CA to verify the data pods and sentinels with, when they speak TLS only.
    pub tls: Option<TlsTrust>,
}

enum Event {
    Seen(String, Seen),
    Sentinel(String),
}

fn split(addr: &str) -> Option<(&str, u16)> {
    let (h, p) = addr.rsplit_once(':')?;
    Some((h, p.parse().ok()?))
}

/// The proxy's own passwords: those its environment gave at start, each replaced by the
/// controller's secrets file beside the feed when that names one. Read at every new
/// connection, so after a rotation a reconnect uses the new password.
#[derive(Debug, Clone)]
struct Creds {
    file: Option<PathBuf>,
    env: feed::Secrets,
    /// The CA the data pods' and sentinels' certificates chain to, when they speak TLS only.
    tls: Option<TlsTrust>,
}

impl Creds {
    fn now(&self) -> feed::Secrets {
        let file = self
            .file
            .as_deref()
            .and_then(feed::read_secrets)
            .unwrap_or_default();
        feed::Secrets {
            password: file.password.or_else(|| self.env.password.clone()),
            sentinel_password: file
                .sentinel_password
                .or_else(|| self.env.sentinel_password.clone()),
        }
    }
}

async fn role(addr: &str, creds: &Creds, node: &mut Option<Node>) -> Seen {
    // A kept connection may have been closed under us (a promotion by the sentinels kills
    // every client connection of the promoted replica): that says nothing about the upstream,
    // so a failed check on a kept connection is retried once on a fresh one before it counts
    // as down. Reporting the new master down for a moment would send commands to the old one.
    let kept = node.is_some();
    match role_once(addr, creds, node).await {
        Seen::Down if kept => role_once(addr, creds, node).await,
        seen => seen,
    }
}

async fn role_once(addr: &str, creds: &Creds, node: &mut Option<Node>) -> Seen {
    let Some((host, port)) = split(addr) else {
        return Seen::Down;
    };
    if node.is_none() {
        let pw = creds.now().password;
        let access = Access {
            password: pw.as_deref(),
            tls: creds.tls.as_ref(),
        };
        *node = Node::connect_with(host, port, access, CHECK_TIMEOUT)
            .await
            .ok();
    }
    let Some(n) = node.as_mut() else {
        return Seen::Down;
    };
    match tokio::time::timeout(CHECK_TIMEOUT, n.role()).await {
        Ok(Ok((Role::Master, _))) => Seen::Master,
        Ok(Ok((_, link))) => Seen::Replica(link),
        _ => {
            *node = None;
            Seen::Down
        }
    }
}

/// Asks `addr` for its role now, on a fresh connection, and reports it.
fn confirm(addr: String, creds: Arc<Creds>, tx: mpsc::UnboundedSender<Event>) {
    tokio::spawn(async move {
        let seen = role(&addr, &creds, &mut None).await;
        let _ = tx.send(Event::Seen(addr, seen));
    });
}

fn poll_roles(addr: String, creds: Arc<Creds>, tx: mpsc::UnboundedSender<Event>) {
    tokio::spawn(async move {
        let mut node = None;
        let mut every = tokio::time::interval(ROLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let seen = role(&addr, &creds, &mut node).await;
            if tx.send(Event::Seen(addr.clone(), seen)).is_err() {
                return;
            }
        }
    });
}

fn follow_sentinel(
    addr: String,
    name: String,
    creds: Arc<Creds>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let Some((host, port)) = split(&addr).map(|(h, p)| (h.to_string(), p)) else {
        return;
    };
    // Events: `+switch-master` as it happens.
    let (sw_tx, mut sw_rx) = mpsc::unbounded_channel();
    let (h, events) = (host.clone(), tx.clone());
    let wanted = name.clone();
    let watch_creds = creds.clone();
    tokio::spawn(async move {
        loop {
            let pw = watch_creds.now().sentinel_password;
            let access = Access {
                password: pw.as_deref(),
                tls: watch_creds.tls.as_ref(),
            };
            let r = vd_redisctl::watch_failovers(&h, port, access, CHECK_TIMEOUT, sw_tx.clone());
            if r.await.is_ok() {
                return;
            }
            tokio::time::sleep(SENTINEL_EVERY).await;
        }
    });
    tokio::spawn(async move {
        while let Some(ev) = sw_rx.recv().await {
            // Clients follow the master the sentinels name, which a promotion does not change.
            let vd_redisctl::FailoverEvent::Switched(sw) = ev else {
                continue;
            };
            if sw.master == wanted {
                let to = format!("{}:{}", sw.new_host, sw.new_port);
                if events.send(Event::Sentinel(to)).is_err() {
                    return;
                }
            }
        }
    });
    // The backstop: what the sentinel believes, every second.
    tokio::spawn(async move {
        loop {
            let pw = creds.now().sentinel_password;
            let access = Access {
                password: pw.as_deref(),
                tls: creds.tls.as_ref(),
            };
            if let Ok(mut s) = Sentinel::connect_with(&host, port, access, CHECK_TIMEOUT).await {
                while let Ok(Ok(Some((h, p)))) =
                    tokio::time::timeout(CHECK_TIMEOUT, s.master_addr(&name)).await
                {
                    if tx.send(Event::Sentinel(format!("{h}:{p}"))).is_err() {
                        return;
                    }
                    tokio::time::sleep(SENTINEL_EVERY).await;
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(SENTINEL_EVERY).await;
        }
    });
}

/// Watches every source and publishes the target on `out` until the receivers are gone.
/// `busy` counts connections with a command in flight; a hold is acknowledged once it is 0.
/// Master switches and holds count into `stats`.
pub async fn run(
    cfg: Config,
    out: watch::Sender<Target>,
    busy: Arc<AtomicUsize>,
    stats: crate::metrics::Stats,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut seen: BTreeMap<String, Seen> = cfg
        .upstreams
        .iter()
        .map(|u| (u.clone(), Seen::Down))
        .collect();
    let creds = Arc::new(Creds {
        file: cfg.feed.as_deref().map(feed::secrets_path),
        env: feed::Secrets {
            password: cfg.password.clone(),
            sentinel_password: cfg.sentinel_password.clone(),
        },
        tls: cfg.tls.clone(),
    });
    for u in &cfg.upstreams {
        poll_roles(u.clone(), creds.clone(), tx.clone());
    }
    for s in &cfg.sentinels {
        follow_sentinel(
            s.clone(),
            cfg.master_name.clone(),
            creds.clone(),
            tx.clone(),
        );
    }
    let mut fed: Option<Feed> = None;
    let mut hold_since: Option<Instant> = None;
    let mut acked = None;
    let mut sentinel: Option<String> = None;
    let mut current: Option<String> = None;
    // The last master seen, for counting switches.
    let mut known: Option<String> = None;
    let mut lineage = 0u64;
    let mut tick = tokio::time::interval(FEED_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = out.closed() => return,
            // Without a feed nothing needs the tick: the loop wakes only for ROLE and
            // sentinel news instead of 500 times a second.
            _ = tick.tick(), if cfg.feed.is_some() => {
                if let Some(path) = &cfg.feed {
                    let now = feed::read(path);
                    if now != fed {
                        if let Some(m) = now.as_ref().and_then(|f| f.master.clone()) {
                            if fed.as_ref().and_then(|f| f.master.as_ref()) != Some(&m) {
                                tracing::info!(master = %m, "feed names a master; confirming with ROLE");
                                confirm(m, creds.clone(), tx.clone());
                            }
                        }
                        if now.as_ref().is_some_and(|f| f.hold) && hold_since.is_none() {
                            hold_since = Some(Instant::now());
                            stats.holds.inc();
                        }
                        fed = now;
                    }
                }
            }
            ev = rx.recv() => match ev {
                Some(Event::Seen(addr, s)) => {
                    if let Some(slot) = seen.get_mut(&addr) {
                        *slot = s;
                    }
                }
                Some(Event::Sentinel(addr)) => {
                    if sentinel.as_ref() != Some(&addr) && seen.contains_key(&addr) {
                        tracing::info!(master = %addr, "sentinels name a master; confirming with ROLE");
                        confirm(addr.clone(), creds.clone(), tx.clone());
                        sentinel = Some(addr);
                    }
                }
                None => return,
            },
        }
        let feed_master = fed.as_ref().and_then(|f| f.master.as_deref());
        let master = route::master(&route::Inputs {
            feed: feed_master,
            sentinel: sentinel.as_deref(),
            current: current.as_deref(),
            seen: &seen,
        });
        if master != current {
            tracing::info!(from = ?current, to = ?master, "master switched");
            // A switch is a master other than the last one known: not the first one found, and
            // not losing sight of one for a while.
            if let Some(m) = &master {
                if known.as_ref().is_some_and(|k| k != m) {
                    stats.master_switches.inc();
                    if hold_since.is_none() {
                        lineage += 1;
                    }
                }
                known = Some(m.clone());
            }
            current = master.clone();
        }
        // A hold lasts past its release until the named master is confirmed: released
        // commands must reach the new master, not the one just demoted.
        let hold = route::hold(&route::Hold {
            asked: fed.as_ref().is_some_and(|f| f.hold),
            held_for: hold_since.map(|t| t.elapsed()),
            max: HOLD_MAX,
            master: master.as_deref(),
            feed: feed_master,
        });
        if !hold.on {
            if let Some(t) = hold_since.take() {
                stats.hold_seconds.inc_by(t.elapsed().as_secs_f64());
            }
        }
        let hold = hold.now;
        let target = Target {
            master,
            replicas: route::readable(&seen),
            hold,
            lineage,
        };
        out.send_if_modified(|t| {
            let changed = *t != target;
            if changed {
                *t = target;
            }
            changed
        });
        if hold && busy.load(Ordering::SeqCst) == 0 {
            let epoch = fed.as_ref().map(|f| f.epoch);
            if let (Some(path), Some(e)) = (&cfg.feed, epoch) {
                if acked != Some(e) && feed::write_held(path, &cfg.id, e).is_ok() {
                    tracing::info!(epoch = e, "holding every command for a planned failover");
                    acked = Some(e);
                }
            }
        }
    }
}
