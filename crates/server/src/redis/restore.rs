//! `vd redis:restore`: replaces a redis's data with an RDB file.
//!
//! The order is what makes it safe. The file is checked first (the `REDIS` magic and the
//! CRC64, streamed, [`vd_redisctl::rdb::Verifier`]), and so are the refusals (a sentinel
//! sibling watching without `--with-sentinel`, `appendonly yes` without `--force`), so a bad
//! file or a refused request stops or changes nothing. Then automatic failover is paused and
//! the master pod is held stopped ([`crate::orchestration::supervisor::PodHold`]): neither its supervisor nor
//! the reconcile loop restarts it. Its `dump.rdb` is replaced in its data volume (temporary
//! file beside it, checked again while copied, fsync, rename, fsync of the directory), the
//! master is started and loads it, and the replicas, whose link dropped, full-sync from it.
//! The pause and the hold are guards: an error anywhere releases them, so the master comes
//! back with whatever data it then has, and the error says which.
//!
//! The master is stopped before its files change because Redis saves `dump.rdb` on shutdown
//! (with `save` configured, as the macro's redis.conf has it): a file replaced under a running
//! master would be overwritten by its own data.
//!
//! With `appendonly yes` Redis loads the AOF at boot and ignores `dump.rdb` (the macro's
//! trade-off: it turns AOF off by default so restores stay simple). With `--force` the AOF
//! directory is rebuilt around the restored file: Redis 7's multi-part AOF takes an RDB as its
//! base file (`<appendfilename>.1.base.rdb` named in the manifest), so the master loads the
//! restored data and appends new writes after it. The old AOF directory is kept aside until
//! the master has loaded, then removed.
//!
//! With a sentinel sibling and `--with-sentinel`, every sentinel stops monitoring the master
//! (`SENTINEL REMOVE`) before it is stopped, or the sentinels would promote a replica holding
//! the old data, and monitors it again afterwards (`SENTINEL MONITOR` with the quorum and
//! timings each sentinel had, and the password), whatever the outcome.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{auth, load, master_ordinal, redis_ref, Auth, SentinelAuth};
use crate::redis::ops::Ops;
use crate::redis::state::FailoverState;
use crate::types::PodState;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::naming::{pod_hostnames, pod_name, volume_name};
use vd_core::redis::{self as macro_, MASTER_NAME, SENTINEL_PORT};
use vd_core::{RedisSpec, ResourceRef, VolumeClaim};
use vd_redisctl::info::Info;
use vd_redisctl::rdb::{Checksum, RdbError, Verified, Verifier};
use vd_redisctl::{Node, Role, Sentinel};

/// Connecting to a pod or a sentinel, and each reply.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The master's stop: the supervisor's 10 s grace before SIGKILL, and a margin.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Read and write buffer for the RDB.
const BUFFER: usize = 1 << 20;
/// Sentinels monitoring the master again and seeing their peers.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the waits look again.
const POLL: Duration = Duration::from_millis(200);
/// What `vd get pods` shows for the held master.
const HELD: &str = "held stopped by vd redis:restore while its dump.rdb is replaced";

/// `POST /v1/redis/{scope}/{name}/restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// An absolute path on the server's host (the CLI resolves a relative one), or
    /// `s3://bucket/key`.
    pub from: String,
    /// Remove the monitor from the sentinels watching the redis, restore, re-add it.
    #[serde(default)]
    pub with_sentinel: bool,
    /// Restore although `appendonly yes` is in effect (the AOF is rebuilt from the file).
    #[serde(default)]
    pub force: bool,
}

/// How one replica came out of the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSync {
    /// Its ordinal.
    pub ordinal: u32,
    /// Its pod.
    pub pod: String,
    /// Whether it follows the restarted master with the same number of keys.
    pub synced: bool,
    /// `master_link_status` as last seen (`up`, `down`), when it answered.
    pub link: Option<String>,
    /// Its keys as last seen.
    pub keys: Option<u64>,
    /// Why it is not synced (not running, unreachable, still syncing when the wait ended).
    pub detail: Option<String>,
    /// From the master's start until it was seen synced, ms.
    pub sync_ms: Option<u64>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreReport {
    /// `scope/name`.
    pub redis: String,
    /// The source as asked (`/path/file.rdb`, `s3://…`).
    pub from: String,
    /// The RDB's size.
    pub bytes: u64,
    /// The RDB format version.
    pub rdb_version: u16,
    /// `crc64 <hex>`, `disabled` (written with `rdbchecksum no`: framing checked, data not),
    /// or `absent` (RDB older than version 5).
    pub checksum: String,
    /// The master's ordinal.
    pub master: u32,
    /// The master's pod.
    pub master_pod: String,
    /// Keys the master holds after loading the file.
    pub keys: u64,
    /// From the request until the replicas were synced, ms.
    pub duration_ms: u64,
    /// How long the master was down (stop, file replaced, start, load), ms.
    pub downtime_ms: u64,
    /// Whether the AOF was rebuilt from the file (`--force` with `appendonly yes`).
    pub aof_rebuilt: bool,
    /// The sentinel sibling that monitors the master again, when there is one.
    pub sentinel: Option<String>,
    /// One row per replica.
    pub replicas: Vec<ReplicaSync>,
}

/// `POST /v1/redis/{scope}/{name}/restore`.
pub async fn api_restore(
    State(ops): State<Arc<Ops>>,
    UrlPath((scope, name)): UrlPath<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<RestoreRequest>,
) -> Result<Json<RestoreReport>, ServerError> {
    Ok(Json(restore(&ops, &scope, &name, &req).await?))
}

// ----- pure decisions

/// Where a restore reads its RDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on the server's host.
    Local(PathBuf),
    /// An object.
    S3 {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
    },
}

/// Why `--from`, a file name or a pod cannot be used by a restore. The messages are what the
/// answer tells the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreInputError {
    /// `s3://` without a bucket and a key.
    #[error("`{0}` does not name an object: write s3://<bucket>/<key>")]
    NotAnObject(String),
    /// Another URL scheme.
    #[error("`{0}`: only local files and s3://bucket/key sources are supported")]
    Scheme(String),
    /// A relative path reached the server.
    #[error("`{0}` is not an absolute path; the vd CLI resolves a relative --from against its current directory, API clients must send an absolute one")]
    Relative(String),
    /// A Redis file name setting that is not a single plain path component.
    #[error("{what} is `{name}`; vd only restores into a plain file name")]
    NotPlain {
        /// The setting (`dbfilename`, ...).
        what: String,
        /// Its value.
        name: String,
    },
}

/// Why a pod could not be asked, or did not get where a restore waits for it.
#[derive(Debug, thiserror::Error)]
pub enum PodWaitError {
    /// The pod is not in the pod table.
    #[error("not supervised")]
    NotSupervised,
    /// Its process does not run.
    #[error("not running ({0})")]
    NotRunning(PodState),
    /// It did not answer.
    #[error("{0}")]
    Redis(#[from] vd_redisctl::RedisError),
    /// It took the connection but did not answer `INFO` in time (a hung process).
    #[error("no answer within 4 s")]
    Silent,
    /// It did not become a loaded master in time.
    #[error("not ready within {secs} s ({last})")]
    NotReady {
        /// How long it was given.
        secs: u64,
        /// What it was last seen doing.
        last: String,
    },
    /// Sentinels did not confirm the master (or could not be told about it).
    #[error("{0}")]
    Sentinels(String),
}

/// Parses `--from`: an absolute path or `s3://bucket/key`.
pub fn parse_source(from: &str) -> Result<Source, RestoreInputError> {
    if let Some(rest) = from.strip_prefix("s3://") {
        return match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                Ok(Source::S3 {
                    bucket: bucket.into(),
                    key: key.into(),
                })
            }
            _ => Err(RestoreInputError::NotAnObject(from.to_string())),
        };
    }
    if from.contains("://") {
        return Err(RestoreInputError::Scheme(from.to_string()));
    }
    let p = Path::new(from);
    if !p.is_absolute() {
        return Err(RestoreInputError::Relative(from.to_string()));
    }
    Ok(Source::Local(p.to_path_buf()))
}

/// The claim mounted at `dir` (Redis's `CONFIG GET dir`, a path inside the pod) and the path
/// below it: `/data` on the `data` claim is `("data", "")`.
pub fn claim_for_dir<'a>(claims: &'a [VolumeClaim], dir: &str) -> Option<(&'a str, PathBuf)> {
    let dir = Path::new(dir);
    claims
        .iter()
        .filter_map(|c| {
            dir.strip_prefix(&c.mount_path)
                .ok()
                .map(|rest| (c.name.as_str(), c.mount_path.len(), rest.to_path_buf()))
        })
        // The deepest mount wins, as in the pod.
        .max_by_key(|(_, len, _)| *len)
        .map(|(name, _, rest)| (name, rest))
}

/// A file name Redis's config gives (`dbfilename`, `appendfilename`, `appenddirname`): a
/// single path component, or `Err` saying why not.
pub fn plain_name<'a>(what: &str, name: &'a str) -> Result<&'a str, RestoreInputError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'');
    if ok {
        Ok(name)
    } else {
        Err(RestoreInputError::NotPlain {
            what: what.to_string(),
            name: name.to_string(),
        })
    }
}

/// The AOF directory's contents that make an RDB the whole dataset: the base file's name and
/// the manifest (Redis 7's multi-part AOF: `file <name> seq <n> type b`). Redis opens a new
/// incremental file itself when it starts.
pub fn aof_manifest(appendfilename: &str) -> (String, String) {
    let base = format!("{appendfilename}.1.base.rdb");
    let manifest = format!("file {base} seq 1 type b\n");
    (base, manifest)
}

/// Total keys of every database in `INFO keyspace` (`db0:keys=3,expires=1,avg_ttl=0`).
pub fn keyspace_keys(info: &Info) -> u64 {
    info.sections
        .get("keyspace")
        .map(|s| {
            s.iter()
                .filter(|(k, _)| k.starts_with("db"))
                .filter_map(|(_, v)| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("keys="))
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The per-master settings of `SENTINEL MASTER` that `SENTINEL MONITOR` does not set, to give
/// back with `SENTINEL SET` after it (the macro's timings or an operator's conf.d overrides).
pub fn monitor_settings(master: &BTreeMap<String, String>) -> Vec<(String, String)> {
    [
        "down-after-milliseconds",
        "failover-timeout",
        "parallel-syncs",
    ]
    .iter()
    .filter_map(|k| {
        master
            .get(*k)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .map(|v| (k.to_string(), v.clone()))
    })
    .collect()
}

/// Whether a replica follows the restarted master with its data: its link is up, it is on
/// the master's replication id (a replica still on the old history has not resynced), and it
/// holds as many keys.
pub fn replica_synced(master_replid: &str, master_keys: u64, replica: &Info) -> bool {
    let r = replica.replication();
    r.role == Role::Replica
        && r.link_up
        && !r.loading
        && !r.sync_in_progress
        && r.replid == master_replid
        && keyspace_keys(replica) == master_keys
}

fn checksum_text(c: Checksum) -> String {
    match c {
        Checksum::Matched(c) => format!("crc64 {c:016x}"),
        Checksum::Disabled => "disabled".into(),
        Checksum::Absent => "absent".into(),
    }
}

// ----- the file

/// Reads `path` through a [`Verifier`], writing the bytes to `out` as they go.
fn stream_verified(path: &Path, mut out: Option<&mut std::fs::File>) -> std::io::Result<Verifier> {
    let mut f = std::fs::File::open(path)?;
    let mut v = Verifier::new();
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        v.update(&buf[..n]);
        if let Some(o) = out.as_deref_mut() {
            o.write_all(&buf[..n])?;
        }
    }
    Ok(v)
}

/// Checks that `path` is a whole RDB, streaming (constant memory for any size).
pub(crate) async fn verify_file(path: &Path, from: &str) -> Result<Verified, ServerError> {
    let p = path.to_path_buf();
    let v = tokio::task::spawn_blocking(move || stream_verified(&p, None))
        .await
        .map_err(|e| ServerError::io("verify the RDB", std::io::Error::other(e)))?
        .map_err(|e| {
            ServerError::conflict(
                format!("cannot read {from}: {e}; nothing was stopped or changed"),
                "name a file the vd server can read (it reads the path on its own host)",
            )
        })?;
    v.finish().map_err(|e| {
        ServerError::conflict(
            format!("{from} is not a whole RDB: {e}; nothing was stopped or changed"),
            match e {
                RdbError::TooShort { .. } | RdbError::NoEnd => {
                    "the file is truncated (an interrupted copy or download?): restore from a complete copy; `vd redis:backups` lists the backups"
                }
                RdbError::BadMagic { .. } => {
                    "restore from an RDB file (`vd redis:backup` writes them; `vd redis:backups` lists them)"
                }
                _ => "the file is damaged: restore from another copy; `vd redis:backups` lists the backups",
            },
        )
    })
}

/// Who owns `dir`: new files there get the same owner, so the pod's user (the redis user of a
/// container image, not the controller's) can read and later replace them.
fn owner_of(dir: &Path) -> std::io::Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    Ok((m.uid(), m.gid()))
}

/// A temporary path (file or directory) removed on drop unless kept.
pub(crate) struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Temp {
    pub(crate) fn new(path: PathBuf) -> Temp {
        Temp { path, keep: false }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ =
                std::fs::remove_file(&self.path).or_else(|_| std::fs::remove_dir_all(&self.path));
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Copies `src` to `dir/name` atomically, checking it again on the way (it could have changed
/// since it was verified): temporary file beside the target, fsync, owner of `dir`, rename,
/// fsync of `dir`. `Ok(Err(_))` when the copy is not a whole RDB (nothing replaced).
fn install_rdb(src: &Path, dir: &Path, name: &str) -> std::io::Result<Result<Verified, RdbError>> {
    use std::os::unix::fs::OpenOptionsExt;
    let (uid, gid) = owner_of(dir)?;
    let mut tmp = Temp {
        path: dir.join(format!(".{name}.vd-restore.partial")),
        keep: false,
    };
    crate::tidy::remove_file(
        &tmp.path,
        "a partial restore file left by an earlier restore",
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp.path)?;
    let v = stream_verified(src, Some(&mut f))?;
    let verified = match v.finish() {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    f.sync_all()?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    drop(f);
    std::fs::rename(&tmp.path, dir.join(name))?;
    tmp.keep = true;
    sync_dir(dir)?;
    Ok(Ok(verified))
}

/// With `--force` and AOF on: a new AOF directory whose base is the restored `dump.rdb`,
/// swapped in for the old one, which is moved aside (returned, to be removed once the master
/// has loaded).
fn rebuild_aof(
    dir: &Path,
    dbfilename: &str,
    aof_dir: &str,
    aof_file: &str,
) -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let (uid, gid) = owner_of(dir)?;
    let fresh = Temp {
        path: dir.join(format!(".{aof_dir}.vd-restore")),
        keep: false,
    };
    crate::tidy::remove_dir(&fresh.path, "an AOF directory left by an earlier restore");
    std::fs::DirBuilder::new().mode(0o755).create(&fresh.path)?;
    std::os::unix::fs::chown(&fresh.path, Some(uid), Some(gid))?;
    let (base, manifest) = aof_manifest(aof_file);
    // A second name for the same file (same directory tree, same filesystem); Redis never
    // writes into a base file, it replaces them.
    let base_path = fresh.path.join(&base);
    if std::fs::hard_link(dir.join(dbfilename), &base_path).is_err() {
        std::fs::copy(dir.join(dbfilename), &base_path)?;
        std::fs::File::open(&base_path)?.sync_all()?;
        std::os::unix::fs::chown(&base_path, Some(uid), Some(gid))?;
    }
    let manifest_path = fresh.path.join(format!("{aof_file}.manifest"));
    let mut m = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&manifest_path)?;
    m.write_all(manifest.as_bytes())?;
    m.sync_all()?;
    std::os::unix::fs::fchown(&m, Some(uid), Some(gid))?;
    drop(m);
    sync_dir(&fresh.path)?;
    let current = dir.join(aof_dir);
    let aside = dir.join(format!(".{aof_dir}.vd-before-restore"));
    let moved = if current.exists() {
        crate::tidy::remove_dir(&aside, "an AOF directory set aside by an earlier restore");
        std::fs::rename(&current, &aside)?;
        Some(aside)
    } else {
        None
    };
    let mut fresh = fresh;
    std::fs::rename(&fresh.path, &current)?;
    fresh.keep = true;
    sync_dir(dir)?;
    Ok(moved)
}

// ----- sentinels

/// A sentinel whose monitor was removed, and what to give it back.
struct Unmonitored {
    /// How to reach the sentinels (their password, TLS).
    sentinel_pw: SentinelAuth,
    ordinal: u32,
    ip: String,
    quorum: u32,
    settings: Vec<(String, String)>,
}

/// `SENTINEL REMOVE` on every sentinel of `sid`, after noting each one's settings. All or
/// nothing: if one fails, those already removed are monitored again.
async fn remove_monitors(
    sid: &ResourceRef,
    sspec: &RedisSpec,
    ips: BTreeMap<u32, String>,
    sentinel_pw: SentinelAuth,
    host: &str,
    pw: &Auth,
) -> Result<Vec<Unmonitored>, ServerError> {
    let n = sspec.replicas.unwrap_or(macro_::SENTINEL_DEFAULT_REPLICAS);
    if (ips.len() as u32) < n {
        return Err(ServerError::conflict(
            format!(
                "only {} of the {n} sentinels of {sid} are running; nothing was stopped or changed",
                ips.len()
            ),
            "--with-sentinel removes the monitor from every sentinel, so a stopped one could not fail the master over during the restore: wait until they all run (`vd get pods`)",
        ));
    }
    let mut done = Vec::new();
    for (ordinal, ip) in ips {
        let step = async {
            let mut s =
                Sentinel::connect_with(&ip, SENTINEL_PORT, sentinel_pw.access(), CONNECT_TIMEOUT)
                    .await?;
            let m = s.master(MASTER_NAME).await?;
            let quorum = m
                .get("quorum")
                .and_then(|q| q.parse().ok())
                .unwrap_or(macro_::quorum(n));
            s.remove(MASTER_NAME).await?;
            Ok::<_, vd_redisctl::RedisError>(Unmonitored {
                sentinel_pw: sentinel_pw.clone(),
                ordinal,
                ip: ip.clone(),
                quorum,
                settings: monitor_settings(&m),
            })
        };
        match step.await {
            Ok(u) => done.push(u),
            Err(e) => {
                // Put back what was already taken; each failure is named in the answer.
                let failed = add_monitors(&done, host, &pw.password).await;
                if !failed.is_empty() {
                    tracing::warn!(sentinel = %sid, failed = %failed.join("; "), "could not give the monitor back to every sentinel");
                }
                return Err(ServerError::conflict(
                    format!("sentinel {ordinal} of {sid} did not give up the monitor: {e}; nothing was stopped or changed"),
                    "check the sentinels with `vd redis:info`, then retry",
                ));
            }
        }
    }
    Ok(done)
}

/// `SENTINEL MONITOR` with each sentinel's quorum, the password and its timings; the
/// sentinels that could not be told.
async fn add_monitors(removed: &[Unmonitored], host: &str, pw: &str) -> Vec<String> {
    let mut failed = Vec::new();
    for u in removed {
        let step = async {
            let spw = u.sentinel_pw.access();
            let mut s = Sentinel::connect_with(&u.ip, SENTINEL_PORT, spw, CONNECT_TIMEOUT).await?;
            s.monitor(MASTER_NAME, host, macro_::REDIS_PORT, u.quorum)
                .await?;
            s.set(MASTER_NAME, "auth-pass", pw).await?;
            for (k, v) in &u.settings {
                s.set(MASTER_NAME, k, v).await?;
            }
            Ok::<_, vd_redisctl::RedisError>(())
        };
        if let Err(e) = step.await {
            failed.push(format!("sentinel {}: {e}", u.ordinal));
        }
    }
    failed
}

/// Waits until every sentinel names `host` as the master and passes `SENTINEL CKQUORUM` (it
/// found its peers again); `Err` says which did not.
async fn sentinels_see(removed: &[Unmonitored], host: &str) -> Result<(), PodWaitError> {
    let deadline = Instant::now() + SENTINEL_TIMEOUT;
    loop {
        let mut missing = Vec::new();
        for u in removed {
            let ok = async {
                let spw = u.sentinel_pw.access();
                let mut s = Sentinel::connect_with(&u.ip, SENTINEL_PORT, spw, CONNECT_TIMEOUT)
                    .await
                    .ok()?;
                let (h, _) = s.master_addr(MASTER_NAME).await.ok()??;
                let q = s.ckquorum(MASTER_NAME).await.ok()?;
                (h == host && q.starts_with("OK")).then_some(())
            }
            .await;
            if ok.is_none() {
                missing.push(u.ordinal.to_string());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PodWaitError::Sentinels(format!(
                "sentinel(s) {} did not confirm {host} with a quorum within {} s",
                missing.join(", "),
                SENTINEL_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

// ----- the master

/// What the master's config says about its files.
struct Persistence {
    dir: String,
    dbfilename: String,
    appendonly: bool,
    appenddirname: String,
    appendfilename: String,
}

async fn persistence(node: &mut Node) -> Result<Persistence, vd_redisctl::RedisError> {
    let mut v = Vec::new();
    for k in [
        "dir",
        "dbfilename",
        "appendonly",
        "appenddirname",
        "appendfilename",
    ] {
        v.push(node.config_get(k).await?.unwrap_or_default());
    }
    let [dir, dbfilename, appendonly, appenddirname, appendfilename]: [String; 5] =
        v.try_into().unwrap_or_default();
    Ok(Persistence {
        dir,
        dbfilename,
        appendonly: appendonly == "yes",
        appenddirname,
        appendfilename,
    })
}

fn pod_of(ctl: &Controller, id: &ResourceRef, ordinal: u32) -> Option<crate::types::PodView> {
    ctl.pod_views().into_iter().find(|p| {
        p.kind == id.kind && p.scope == id.scope && p.name == id.name && p.ordinal == ordinal
    })
}

/// `INFO` of a running pod.
async fn info_of(
    ctl: &Controller,
    id: &ResourceRef,
    ordinal: u32,
    pw: &Auth,
) -> Result<Info, PodWaitError> {
    let p = pod_of(ctl, id, ordinal).ok_or(PodWaitError::NotSupervised)?;
    if p.state != PodState::Running || p.ip.is_empty() {
        return Err(PodWaitError::NotRunning(p.state));
    }
    // Bounded as a whole: a hung pod accepts the connection (its kernel does) and then never
    // answers, which would stall the polling of every other pod behind it.
    let ask = async {
        let mut n =
            Node::connect_with(&p.ip, macro_::REDIS_PORT, pw.access(), CONNECT_TIMEOUT).await?;
        Ok::<_, PodWaitError>(n.info(None).await?)
    };
    tokio::time::timeout(CONNECT_TIMEOUT * 2, ask)
        .await
        .unwrap_or(Err(PodWaitError::Silent))
}

/// Waits until the master runs, has loaded its data and is a master; its `INFO`.
async fn wait_loaded(
    ctl: &Controller,
    id: &ResourceRef,
    m: u32,
    pw: &Auth,
    limit: Duration,
) -> Result<Info, PodWaitError> {
    let deadline = Instant::now() + limit;
    loop {
        let last;
        match info_of(ctl, id, m, pw).await {
            Ok(info) => {
                let r = info.replication();
                if r.loading {
                    last = "still loading".into();
                } else if r.role != Role::Master {
                    last = "running as a replica".into();
                } else {
                    return Ok(info);
                }
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > deadline {
            return Err(PodWaitError::NotReady {
                secs: limit.as_secs(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (up to `limit`) for every replica to follow the master with its keys.
async fn wait_replicas(
    ctl: &Controller,
    id: &ResourceRef,
    replicas: &[u32],
    m: u32,
    pw: &Auth,
    limit: Duration,
    since: Instant,
) -> Vec<ReplicaSync> {
    let deadline = Instant::now() + limit;
    let mut rows: Vec<ReplicaSync> = replicas
        .iter()
        .copied()
        .filter(|o| *o != m)
        .map(|o| ReplicaSync {
            ordinal: o,
            pod: pod_name(id, o),
            synced: false,
            link: None,
            keys: None,
            detail: None,
            sync_ms: None,
        })
        .collect();
    loop {
        let master = info_of(ctl, id, m, pw).await;
        for row in rows.iter_mut().filter(|r| !r.synced) {
            let Ok(mi) = &master else { break };
            let replid = mi.replication().replid;
            let keys = keyspace_keys(mi);
            match info_of(ctl, id, row.ordinal, pw).await {
                Ok(info) => {
                    row.link = info.get("master_link_status").map(str::to_string);
                    row.keys = Some(keyspace_keys(&info));
                    row.synced = replica_synced(&replid, keys, &info);
                    row.detail = (!row.synced).then(|| "still syncing".to_string());
                    if row.synced {
                        row.sync_ms = Some(since.elapsed().as_millis() as u64);
                    }
                }
                Err(e) => row.detail = Some(e.to_string()),
            }
        }
        if rows.iter().all(|r| r.synced) || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Time allowed for loading or streaming `bytes` of RDB: a minute, plus a second per 20 MiB
/// (loading runs at well over that on any disk).
fn allowance(bytes: u64) -> Duration {
    Duration::from_secs(60 + bytes / (20 << 20))
}

struct Done {
    keys: u64,
    downtime_ms: u64,
    replicas: Vec<ReplicaSync>,
}

/// Pause, hold, replace, start, wait: the part that stops the master. Every error says what
/// the master runs with afterwards.
#[allow(clippy::too_many_arguments)]
async fn replace_and_restart(
    ctl: &Controller,
    failover: &FailoverState,
    id: &ResourceRef,
    replicas: &[u32],
    m: u32,
    pw: &Auth,
    src: &Path,
    host_dir: &Path,
    p: &Persistence,
    bytes: u64,
) -> Result<Done, ServerError> {
    let pod = pod_name(id, m);
    let _paused = failover.pause(id);
    let hold = ctl.hold_pod(&pod, HELD).map_err(|e| {
        ServerError::conflict(
            format!("cannot stop {pod}: {e}; nothing was changed"),
            "retry once the pod is running (`vd get pods`)",
        )
    })?;
    let stopping = Instant::now();
    while !hold.stopped() {
        if stopping.elapsed() > STOP_TIMEOUT {
            drop(hold);
            return Err(ServerError::conflict(
                format!(
                    "{pod} did not stop within {} s; nothing was changed, it keeps running",
                    STOP_TIMEOUT.as_secs()
                ),
                format!("see `vd logs {}/{}` and retry", id.scope, id.name),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped_at = Instant::now();
    let (src2, dir, dbf) = (
        src.to_path_buf(),
        host_dir.to_path_buf(),
        p.dbfilename.clone(),
    );
    let aof = p
        .appendonly
        .then(|| (p.appenddirname.clone(), p.appendfilename.clone()));
    let written = tokio::task::spawn_blocking(
        move || -> std::io::Result<Result<Option<PathBuf>, RdbError>> {
            if let Err(e) = install_rdb(&src2, &dir, &dbf)? {
                return Ok(Err(e));
            }
            match aof {
                Some((adir, afile)) => rebuild_aof(&dir, &dbf, &adir, &afile).map(Ok),
                None => Ok(Ok(None)),
            }
        },
    )
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    // From here the master starts again whatever happened; errors say with what.
    drop(hold);
    let aside = match written {
        Ok(Ok(aside)) => aside,
        Ok(Err(e)) => {
            return Err(ServerError::conflict(
                format!("the file changed since it was checked and is no longer a whole RDB ({e}); {pod} was started again with its own data, unchanged"),
                "restore from a file nothing is writing to",
            ))
        }
        Err(e) => {
            return Err(ServerError::conflict(
                format!("cannot write {} into {pod}'s volume ({}): {e}; {pod} was started again with the data it had (dump.rdb is replaced by rename, so it is either the old or the restored file)", p.dbfilename, host_dir.display()),
                "check the free space and permissions of the volume, then retry",
            ))
        }
    };
    let info = wait_loaded(ctl, id, m, pw, allowance(bytes))
        .await
        .map_err(|e| {
            ServerError::conflict(
                format!(
                    "the restored file is in place but {pod} did not come back as the master: {e}"
                ),
                format!("see `vd logs {}/{}` and `vd get pods`", id.scope, id.name),
            )
        })?;
    let downtime_ms = stopped_at.elapsed().as_millis() as u64;
    if let Some(old) = aside {
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(dir = %old.display(), error = %e, "could not remove the AOF moved aside by the restore");
        }
    }
    let started = Instant::now();
    let rows = wait_replicas(ctl, id, replicas, m, pw, allowance(bytes) * 2, started).await;
    let keys = match info_of(ctl, id, m, pw).await {
        Ok(i) => keyspace_keys(&i),
        Err(_) => keyspace_keys(&info),
    };
    Ok(Done {
        keys,
        downtime_ms,
        replicas: rows,
    })
}

/// Whether a master's persistence lets its `dump.rdb` be replaced: refused (nothing stopped)
/// with `appendonly yes` unless `force` (the AOF is then rebuilt from the file), and when a
/// file name it would write is not a plain name.
fn check_persistence(p: &Persistence, force: bool, master_pod: &str) -> Result<(), ServerError> {
    if p.appendonly && !force {
        return Err(ServerError::conflict(
            format!("{master_pod} runs with appendonly yes: at boot Redis loads its AOF and ignores dump.rdb, so a replaced dump.rdb would have no effect; nothing was stopped or changed"),
            "vd keeps AOF off by default so restores stay simple. Pass --force to rebuild the AOF from the file (its base becomes the restored RDB; the current AOF is discarded once the master has loaded), or turn appendonly off first",
        ));
    }
    let names = [
        plain_name("dbfilename", &p.dbfilename),
        plain_name("appenddirname", &p.appenddirname),
        plain_name("appendfilename", &p.appendfilename),
    ];
    for n in names.iter().take(if p.appendonly { 3 } else { 1 }) {
        if let Err(e) = n {
            return Err(ServerError::conflict(
                format!("{e}; nothing was stopped or changed"),
                "set a plain file name in a conf.d file",
            ));
        }
    }
    Ok(())
}

/// What restoring one master did.
pub(crate) struct NodeRestored {
    /// Keys it holds after loading.
    pub keys: u64,
    /// How long it was down.
    pub downtime_ms: u64,
    /// Its replicas' sync.
    pub replicas: Vec<ReplicaSync>,
    /// Its AOF was rebuilt from the file.
    pub aof_rebuilt: bool,
}

/// Replaces the data of one master, `m`, with the verified RDB at `src` and waits for its
/// `replicas` to follow it: the checks of its persistence settings, then
/// `replace_and_restart`. A cluster restore runs it once per shard.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn restore_node(
    ctl: &Controller,
    failover: &FailoverState,
    id: &ResourceRef,
    m: u32,
    replicas: &[u32],
    pw: &Auth,
    src: &Path,
    verified: &Verified,
    force: bool,
) -> Result<NodeRestored, ServerError> {
    let master_pod = pod_name(id, m);
    let ip = pod_of(ctl, id, m)
        .filter(|p| p.state == PodState::Running && !p.ip.is_empty())
        .map(|p| p.ip)
        .ok_or_else(|| {
            ServerError::conflict(
                format!("{master_pod} is not running; nothing was stopped or changed"),
                "wait until it is ready (`vd get pods`), then retry",
            )
        })?;
    let unreachable = |e: vd_redisctl::RedisError| {
        ServerError::unavailable(
            format!("{master_pod} does not answer: {e}; nothing was stopped or changed"),
            "check it with `vd redis:info` and retry",
        )
    };
    let mut node = Node::connect_with(&ip, macro_::REDIS_PORT, pw.access(), CONNECT_TIMEOUT)
        .await
        .map_err(unreachable)?;
    let p = persistence(&mut node).await.map_err(unreachable)?;
    drop(node);
    check_persistence(&p, force, &master_pod)?;
    let host_dir = data_dir(ctl, id, m, &p.dir).await?;
    let done = replace_and_restart(
        ctl,
        failover,
        id,
        replicas,
        m,
        pw,
        src,
        &host_dir,
        &p,
        verified.bytes,
    )
    .await?;
    Ok(NodeRestored {
        keys: done.keys,
        downtime_ms: done.downtime_ms,
        replicas: done.replicas,
        aof_rebuilt: p.appendonly,
    })
}

/// Where the master's Redis `dir` is on this host.
async fn data_dir(
    ctl: &Controller,
    id: &ResourceRef,
    m: u32,
    dir: &str,
) -> Result<PathBuf, ServerError> {
    let stored = ctl
        .store
        .get(id)?
        .ok_or_else(|| ServerError::NotFound(format!("{id} does not exist")))?;
    let claims = vd_core::workload::workload_of(&stored.resource)
        .map(|w| w.volume_claims)
        .unwrap_or_default();
    let (claim, rest) = claim_for_dir(&claims, dir).ok_or_else(|| {
        ServerError::conflict(
            format!("the master's Redis `dir` is {dir}, which is on no volume claim of {id}; nothing was stopped or changed"),
            "keep `dir` on the data claim (the macro's /data); a conf.d file may have moved it",
        )
    })?;
    let volume = volume_name(id, claim, m);
    let base = ctl.runtime.volume_path(&volume).await.map_err(|e| {
        ServerError::conflict(
            format!("cannot reach the volume {volume}: {e}; nothing was stopped or changed"),
            "the vd server must run on the pods' host with access to their volumes",
        )
    })?;
    let path = base.join(rest);
    if !path.is_dir() {
        return Err(ServerError::conflict(
            format!(
                "{} (the master's {dir}) is not a directory; nothing was stopped or changed",
                path.display()
            ),
            "check the pod's volume",
        ));
    }
    Ok(path)
}

/// Downloads an `s3://` source (credentials from the redis's `env_from` buckets, as scheduled
/// backups use them) into a private file under the root, removed when the returned guard
/// drops; the path is then restored like a local file.
async fn s3_source(ctl: &Controller, id: &ResourceRef, url: &str) -> Result<Temp, ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = ctl.root.join("tmp");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| ServerError::io(format!("create {}", dir.display()), e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = Temp {
        path: dir.join(format!("restore-{}-{}-{nanos}.rdb", id.scope, id.name)),
        keep: false,
    };
    crate::redis::objstore::fetch_to(ctl, id, url, &tmp.path)
        .await
        .map_err(|e| match e {
            ServerError::Conflict { message, help } => ServerError::Conflict {
                message: format!("{message}; nothing was stopped or changed"),
                help,
            },
            e => e,
        })?;
    Ok(tmp)
}

/// `vd redis:restore`.
pub async fn restore(
    ops: &Ops,
    scope: &str,
    name: &str,
    req: &RestoreRequest,
) -> Result<RestoreReport, ServerError> {
    let ctl: &Controller = &ops.ctl;
    let begun = Instant::now();
    let id = redis_ref(scope, name);
    let reference = format!("{scope}/{name}");
    let spec = load(ctl, &id).map_err(|e| match e {
        ServerError::NotFound(_) => ServerError::NotFound(format!(
            "redis {reference} does not exist (`vd get redis` lists them)"
        )),
        e => e,
    })?;
    if let Some(data) = vd_core::redis::topology::monitor_of(&spec) {
        return Err(ServerError::conflict(
            format!("{id} is a sentinel sibling; it holds no data"),
            format!(
                "restore the redis it watches: vd redis:restore {}/{} --from …",
                data.scope, data.name
            ),
        ));
    }
    let _running =
        crate::redis::exclusive::claim(&id, crate::redis::exclusive::Operation::Restore)?;

    // 1. The file, before anything else.
    let mut _download = None;
    let src = match parse_source(&req.from).map_err(|e| {
        ServerError::conflict(e.to_string(), "pass --from FILE or --from s3://bucket/key")
    })? {
        Source::Local(p) => p,
        Source::S3 { .. } => {
            let tmp = s3_source(ctl, &id, &req.from).await?;
            let p = tmp.path.clone();
            _download = Some(tmp);
            p
        }
    };
    let verified = verify_file(&src, &req.from).await?;

    // 2. Refusals.
    let watcher = crate::redis::facts::watcher_of(ctl, &id)?;
    if let (Some((sid, _)), false) = (&watcher, req.with_sentinel) {
        return Err(ServerError::conflict(
            format!("{sid} watches {id}: its sentinels would promote a replica, with the old data, while the master is stopped, and the master would then resync from it; nothing was stopped or changed"),
            format!("pass --with-sentinel: vd removes the monitor from every sentinel, restores, and monitors the master again (vd redis:restore {reference} --from {} --with-sentinel)", req.from),
        ));
    }
    let pw = auth(ctl, &id)?;
    let m = master_ordinal(ctl, &id)?;
    let master_pod = pod_name(&id, m);
    let ip = pod_of(ctl, &id, m)
        .filter(|p| p.state == PodState::Running && !p.ip.is_empty())
        .map(|p| p.ip)
        .ok_or_else(|| {
            ServerError::conflict(
                format!("the master {master_pod} is not running; nothing was stopped or changed"),
                "wait until it is ready (`vd get pods`), then retry",
            )
        })?;
    let unreachable = |e: vd_redisctl::RedisError| {
        ServerError::unavailable(
            format!("the master {master_pod} does not answer: {e}; nothing was stopped or changed"),
            format!("check it with `vd redis:info {reference}` and retry"),
        )
    };
    let mut node = Node::connect_with(&ip, macro_::REDIS_PORT, pw.access(), CONNECT_TIMEOUT)
        .await
        .map_err(unreachable)?;
    let (role, _) = node.role().await.map_err(unreachable)?;
    if role != Role::Master {
        return Err(ServerError::conflict(
            format!("{master_pod}, the recorded master, answers as a replica (a failover is under way?); nothing was stopped or changed"),
            format!("check `vd redis:info {reference}` and retry once it settled"),
        ));
    }
    let p = persistence(&mut node).await.map_err(unreachable)?;
    drop(node);
    check_persistence(&p, req.force, &master_pod)?;
    let host_dir = data_dir(ctl, &id, m, &p.dir).await?;

    // 3. Sentinels let go of the master.
    let host = pod_hostnames(&id, m)[1].clone();
    let removed = match &watcher {
        Some((sid, sspec)) => Some((
            sid.clone(),
            remove_monitors(
                sid,
                sspec,
                crate::redis::facts::pod_ips(ctl, sid),
                crate::redis::facts::sentinel_auth(ctl, sid)?,
                &host,
                &pw,
            )
            .await?,
        )),
        None => None,
    };

    // 4. Stop, replace, start.
    let replicas: Vec<u32> = (0..spec.replicas.unwrap_or(1)).collect();
    let result = replace_and_restart(
        ctl,
        &ops.failover,
        &id,
        &replicas,
        m,
        &pw,
        &src,
        &host_dir,
        &p,
        verified.bytes,
    )
    .await;

    // 5. Sentinels watch it again, whatever happened.
    let mut sentinel_problem = None;
    let sentinel = match &removed {
        Some((sid, list)) => {
            let failed = add_monitors(list, &host, &pw.password).await;
            let seen = if failed.is_empty() {
                sentinels_see(list, &host).await
            } else {
                Err(PodWaitError::Sentinels(failed.join("; ")))
            };
            if let Err(e) = seen {
                sentinel_problem = Some(format!("{sid}: {e}"));
            }
            Some(sid.to_string())
        }
        None => None,
    };

    let done = match result {
        Ok(d) => d,
        Err(e) => {
            let e = match (e, &sentinel_problem) {
                (ServerError::Conflict { message, help }, Some(s)) => ServerError::Conflict {
                    message: format!(
                        "{message}; and the sentinels are not all monitoring it again ({s})"
                    ),
                    help,
                },
                (e, _) => e,
            };
            ctl.event(
                Level::Warning,
                Some(&id),
                Some(&master_pod),
                Reason::RestoreFailed,
                &e.to_string(),
            );
            return Err(e);
        }
    };
    if let Some(s) = sentinel_problem {
        let e = ServerError::conflict(
            format!("{reference} was restored ({} keys), but the sentinels are not all monitoring it again: {s}", done.keys),
            format!("check `vd redis:info {reference}`; until they agree there is no automatic failover"),
        );
        ctl.event(
            Level::Warning,
            Some(&id),
            Some(&master_pod),
            Reason::RestoreFailed,
            &e.to_string(),
        );
        return Err(e);
    }
    let synced = done.replicas.iter().filter(|r| r.synced).count();
    let duration_ms = begun.elapsed().as_millis() as u64;
    ctl.event(
        Level::Info,
        Some(&id),
        Some(&master_pod),
        Reason::Restored,
        &format!(
            "{} ({} bytes) loaded by {master_pod}: {} keys, master down {} ms, {synced}/{} replicas synced, {duration_ms} ms in all",
            req.from,
            verified.bytes,
            done.keys,
            done.downtime_ms,
            done.replicas.len()
        ));
    Ok(RestoreReport {
        redis: reference,
        from: req.from.clone(),
        bytes: verified.bytes,
        rdb_version: verified.version,
        checksum: checksum_text(verified.checksum),
        master: m,
        master_pod,
        keys: done.keys,
        duration_ms,
        downtime_ms: done.downtime_ms,
        aof_rebuilt: p.appendonly,
        sentinel,
        replicas: done.replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            parse_source("/b/x.rdb"),
            Ok(Source::Local("/b/x.rdb".into()))
        );
        assert_eq!(
            parse_source("s3://bk/a/b.rdb"),
            Ok(Source::S3 {
                bucket: "bk".into(),
                key: "a/b.rdb".into()
            })
        );
        for bad in [
            "x.rdb",
            "./x.rdb",
            "s3://bk",
            "s3://bk/",
            "s3:///k",
            "http://h/x",
        ] {
            assert!(parse_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dir_maps_to_its_claim() {
        let claims = vec![
            VolumeClaim {
                name: "data".into(),
                mount_path: "/data".into(),
            },
            VolumeClaim {
                name: "deep".into(),
                mount_path: "/data/deep".into(),
            },
        ];
        assert_eq!(
            claim_for_dir(&claims, "/data"),
            Some(("data", PathBuf::new()))
        );
        assert_eq!(
            claim_for_dir(&claims, "/data/sub"),
            Some(("data", PathBuf::from("sub")))
        );
        assert_eq!(
            claim_for_dir(&claims, "/data/deep/x"),
            Some(("deep", PathBuf::from("x")))
        );
        assert_eq!(claim_for_dir(&claims, "/database"), None);
        assert_eq!(claim_for_dir(&claims, "/var/lib/redis"), None);
    }

    #[test]
    fn names_and_manifest() {
        assert_eq!(plain_name("dbfilename", "dump.rdb"), Ok("dump.rdb"));
        for bad in ["", ".", "..", "a/b", "a b", "a\"b"] {
            assert!(plain_name("dbfilename", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            aof_manifest("appendonly.aof"),
            (
                "appendonly.aof.1.base.rdb".to_string(),
                "file appendonly.aof.1.base.rdb seq 1 type b\n".to_string()
            )
        );
    }

    #[test]
    fn keys_and_sync() {
        let master = Info::parse("# Replication\r\nrole:master\r\nmaster_replid:new\r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=5\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n");
        assert_eq!(keyspace_keys(&master), 15);
        assert_eq!(keyspace_keys(&Info::parse("# Keyspace\r\n")), 0);
        let replica = |replid: &str, link: &str, keys: u64| {
            Info::parse(&format!("# Replication\nrole:slave\nmaster_link_status:{link}\nmaster_sync_in_progress:0\nmaster_replid:{replid}\n# Persistence\nloading:0\n# Keyspace\ndb0:keys={keys},expires=0,avg_ttl=0\n"))
        };
        assert!(replica_synced("new", 15, &replica("new", "up", 15)));
        assert!(
            !replica_synced("new", 15, &replica("old", "up", 15)),
            "still on the old history"
        );
        assert!(!replica_synced("new", 15, &replica("new", "down", 15)));
        assert!(!replica_synced("new", 15, &replica("new", "up", 14)));
        assert!(
            !replica_synced("new", 15, &master),
            "a master is not a synced replica"
        );
    }

    #[test]
    fn sentinel_settings_come_back() {
        let m: BTreeMap<String, String> = [
            ("name", "voodu-master"),
            ("quorum", "2"),
            ("down-after-milliseconds", "1000"),
            ("failover-timeout", "5000"),
            ("parallel-syncs", "1"),
            ("flags", "master"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            monitor_settings(&m),
            [
                ("down-after-milliseconds".to_string(), "1000".to_string()),
                ("failover-timeout".into(), "5000".into()),
                ("parallel-syncs".into(), "1".into()),
            ]
        );
    }

    fn rdb_bytes() -> Vec<u8> {
        // A tiny RDB with Redis's CRC64 (bitwise, independent of the code under test).
        let mut out = b"REDIS0010\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff".to_vec();
        let mut crc = 0u64;
        for b in &out {
            crc ^= u64::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    crc >> 1
                };
            }
        }
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn install_replaces_whole_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let good = rdb_bytes();
        std::fs::write(dir.path().join("dump.rdb"), b"old").unwrap();
        let mut bad = good.clone();
        bad[12] ^= 1;
        std::fs::write(src.path().join("bad.rdb"), &bad).unwrap();
        let e = install_rdb(&src.path().join("bad.rdb"), dir.path(), "dump.rdb")
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, RdbError::ChecksumMismatch { .. }), "{e}");
        assert_eq!(std::fs::read(dir.path().join("dump.rdb")).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["dump.rdb"], "no temporary file is left");

        std::fs::write(src.path().join("good.rdb"), &good).unwrap();
        let v = install_rdb(&src.path().join("good.rdb"), dir.path(), "dump.rdb")
            .unwrap()
            .unwrap();
        assert_eq!(v.bytes, good.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("dump.rdb")).unwrap(), good);
        assert_eq!(names(dir.path()), ["dump.rdb"]);

        // The AOF is rebuilt around it; the old one is moved aside, not lost.
        std::fs::create_dir(dir.path().join("appendonlydir")).unwrap();
        std::fs::write(
            dir.path().join("appendonlydir/appendonly.aof.1.incr.aof"),
            "x",
        )
        .unwrap();
        let aside = rebuild_aof(dir.path(), "dump.rdb", "appendonlydir", "appendonly.aof")
            .unwrap()
            .unwrap();
        assert_eq!(names(&aside), ["appendonly.aof.1.incr.aof"]);
        let aof = dir.path().join("appendonlydir");
        assert_eq!(
            names(&aof),
            ["appendonly.aof.1.base.rdb", "appendonly.aof.manifest"]
        );
        assert_eq!(
            std::fs::read(aof.join("appendonly.aof.1.base.rdb")).unwrap(),
            good
        );
        assert_eq!(
            std::fs::read_to_string(aof.join("appendonly.aof.manifest")).unwrap(),
            "file appendonly.aof.1.base.rdb seq 1 type b\n"
        );
    }
}
