//! `vd redis:backup` and `vd redis:backups`: an RDB snapshot streamed from a pod over the
//! replication protocol ([`vd_redisctl::rdb`]), checked, and written atomically under a name
//! that says whose and when it is; and the listing of those files.
//!
//! Names are `<scope>-<name>-<YYYYMMDDTHHMMSSZ>.rdb` (UTC, the moment the snapshot was asked
//! for), in `<root>/backups/<scope>/<name>/` unless the request names another directory or an
//! `s3://bucket/prefix` ([`crate::redis::objstore`]: the verified file is staged under
//! `<root>/tmp/backups/` and uploaded). The
//! source is the highest-ordinal replica whose link to its master is up (a snapshot forks the
//! source: better a replica than the master), the master only for a one-pod redis or when asked.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{auth, load, redis_ref, Auth};
use crate::types::PodState;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vd_core::event::{Level, Reason};
use vd_core::redis as macro_;
use vd_core::redis::backup::Destination;
use vd_core::ResourceRef;
use vd_redisctl::rdb::{self, Checksum, RdbError};
use vd_redisctl::{Node, Role};

/// Connecting to the source, and each reply before `SYNC`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait for the next bytes of the snapshot.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Write buffer for the backup file.
const WRITE_BUFFER: usize = 1 << 20;
/// How long a replica source is given to reach the master's offset before its snapshot is
/// taken: a backup holds every write acknowledged before it was asked for.
const CATCH_UP: Duration = Duration::from_secs(10);

/// `POST /v1/redis/{scope}/{name}/backup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupRequest {
    /// An absolute directory (the CLI resolves a relative one) or `s3://bucket[/prefix]`;
    /// default `<root>/backups/<scope>/<name>`.
    #[serde(default)]
    pub destination: Option<String>,
    /// The ordinal to stream from (default: the highest-ordinal connected replica).
    #[serde(default)]
    pub source: Option<u32>,
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    /// `scope/name`.
    pub redis: String,
    /// The file's name.
    pub file: String,
    /// Its absolute path, or `s3://bucket/key`.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// From the request to the file being durable, ms.
    pub duration_ms: u64,
    /// The ordinal it came from.
    pub source: u32,
    /// That pod (`data-cache.2`).
    pub source_pod: String,
    /// `replica` or `master`.
    pub source_role: String,
    /// When it was taken, UTC (`2024-05-01T12:00:00Z`).
    pub taken_at: String,
    /// The RDB format version.
    pub rdb_version: u16,
    /// `crc64 <hex>` when checked, `disabled` when the source runs with `rdbchecksum no`
    /// (framing checked, data not), `absent` for an RDB older than version 5.
    pub checksum: String,
    /// Streamed from the source's fork (diskless) rather than from a file it saved.
    pub diskless: bool,
}

/// Query of `GET /v1/redis/{scope}/{name}/backups`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupsQuery {
    /// An absolute directory or `s3://bucket[/prefix]`; default `<root>/backups/<scope>/<name>`.
    #[serde(default)]
    pub destination: Option<String>,
}

/// `POST /v1/redis/{scope}/{name}/backup`.
pub async fn api_backup(
    State(ctl): State<Arc<Controller>>,
    UrlPath((scope, name)): UrlPath<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<BackupRequest>,
) -> Result<Json<BackupReport>, ServerError> {
    Ok(Json(backup(&ctl, &scope, &name, &req).await?))
}

/// `GET /v1/redis/{scope}/{name}/backups[?destination=DIR]`.
pub async fn api_backups(
    State(ctl): State<Arc<Controller>>,
    UrlPath((scope, name)): UrlPath<(String, String)>,
    crate::extract::Params(q): crate::extract::Params<BackupsQuery>,
) -> Result<Json<BackupList>, ServerError> {
    let asked = q.destination.as_deref();
    if let Some(url) = asked.filter(|d| Destination::is_s3(d)) {
        return Ok(Json(
            crate::redis::objstore::list_s3(&ctl, &scope, &name, url).await?,
        ));
    }
    Ok(Json(list(&ctl, &scope, &name, asked)?))
}

// ----- naming (pure)

pub use crate::redis::backup_names::{
    classify, file_name, iso, parse_file_name, parse_stamp, stamp, BackupEntry, BackupList, Origin,
};

/// `<root>/backups/<scope>/<name>`.
pub fn default_destination(root: &Path, id: &ResourceRef) -> PathBuf {
    root.join("backups").join(&id.scope).join(&id.name)
}

fn destination(
    ctl: &Controller,
    id: &ResourceRef,
    asked: Option<&str>,
) -> Result<PathBuf, ServerError> {
    match asked {
        Some(d) if Destination::is_s3(d) => Err(ServerError::Conflict {
            message: format!("{d} is not a local directory"),
            help: None,
        }),
        None => Ok(default_destination(&ctl.root, id)),
        Some(d) if Path::new(d).is_absolute() => Ok(PathBuf::from(d)),
        Some(d) => Err(ServerError::Conflict {
            message: format!("the destination `{d}` is not an absolute path"),
            help: Some("the vd CLI resolves a relative --destination against its current directory; API clients must send an absolute one".into()),
        }),
    }
}

/// Where one backup is written: a local directory, or an S3 bucket through a local staging
/// directory.
pub(crate) enum Target {
    Local(PathBuf),
    #[cfg(feature = "s3")]
    S3 {
        staging: PathBuf,
        store: crate::redis::objstore::S3Store,
    },
}

impl Target {
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Target::Local(d) => d,
            #[cfg(feature = "s3")]
            Target::S3 { staging, .. } => staging,
        }
    }
}

pub(crate) fn target(
    ctl: &Controller,
    id: &ResourceRef,
    asked: Option<&str>,
) -> Result<Target, ServerError> {
    match asked {
        Some(url) if Destination::is_s3(url) => {
            #[cfg(feature = "s3")]
            {
                let store = crate::redis::objstore::open_s3(ctl, id, url)?;
                let staging = ctl.root.join("tmp").join("backups");
                Ok(Target::S3 { staging, store })
            }
            #[cfg(not(feature = "s3"))]
            match crate::redis::objstore::open_s3(ctl, id, url)? {}
        }
        _ => destination(ctl, id, asked).map(Target::Local),
    }
}

// ----- the source

/// What the default source choice saw of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not running (its state).
    Down(String),
    /// Did not answer `ROLE`.
    Unreachable(String),
    /// A master.
    Master,
    /// A replica, with its link to the master up or not.
    Replica {
        /// `master_link_status:up`.
        connected: bool,
    },
}

/// No pod can be the default source of a backup; says what each pod was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pods}")]
pub struct NoSource {
    /// One clause per pod, highest ordinal first.
    pub pods: String,
}

/// The default source: the highest ordinal that is a replica connected to its master; for a
/// one-pod redis, that pod when it is a master. `Err` says what each pod was.
pub fn pick_source(replicas: u32, seen: &[(u32, Seen)]) -> Result<u32, NoSource> {
    let mut sorted: Vec<&(u32, Seen)> = seen.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.0));
    if let Some((o, _)) = sorted
        .iter()
        .find(|(_, s)| *s == Seen::Replica { connected: true })
    {
        return Ok(*o);
    }
    if replicas == 1 {
        if let Some((o, Seen::Master)) = sorted.first() {
            return Ok(*o);
        }
    }
    let pods = sorted
        .iter()
        .map(|(o, s)| {
            let what = match s {
                Seen::Down(state) => format!("not running ({state})"),
                Seen::Unreachable(e) => format!("unreachable ({e})"),
                Seen::Master => "the master".into(),
                Seen::Replica { .. } => "a replica whose link to the master is down".into(),
            };
            format!("ordinal {o}: {what}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(NoSource { pods })
}

struct Source {
    ordinal: u32,
    pod: String,
    ip: String,
    role: Role,
}

async fn observe(ip: &str, pw: &Auth) -> Result<(Role, bool), vd_redisctl::RedisError> {
    let mut n = Node::connect_with(ip, macro_::REDIS_PORT, pw.access(), CONNECT_TIMEOUT).await?;
    n.role().await
}

async fn choose_source(
    ctl: &Controller,
    id: &ResourceRef,
    replicas: u32,
    pw: &Auth,
    asked: Option<u32>,
) -> Result<Source, ServerError> {
    let pods: std::collections::BTreeMap<u32, crate::types::PodView> = ctl
        .pod_views()
        .into_iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .map(|p| (p.ordinal, p))
        .collect();
    let pod_name = |o: u32| vd_core::naming::pod_name(id, o);
    let running = |o: u32| {
        pods.get(&o)
            .filter(|p| p.state == PodState::Running && !p.ip.is_empty())
            .map(|p| p.ip.clone())
    };
    let state = |o: u32| {
        pods.get(&o)
            .map(|p| p.state.to_string())
            .unwrap_or_else(|| "not started".into())
    };
    let conflict = |message: String, help: String| ServerError::Conflict {
        message,
        help: Some(help),
    };
    let reference = format!("{}/{}", id.scope, id.name);
    if let Some(n) = asked {
        if n >= replicas {
            return Err(conflict(
                format!("{id} has no ordinal {n} (replicas = {replicas})"),
                format!(
                    "pick an ordinal from 0 to {} (`vd redis:info {reference}`)",
                    replicas - 1
                ),
            ));
        }
        let ip = running(n).ok_or_else(|| {
            conflict(
                format!("pod {} is not running ({})", pod_name(n), state(n)),
                format!("wait until it is ready (`vd get pods`), or pick another --source (`vd redis:info {reference}`)"),
            )
        })?;
        let (role, _) = observe(&ip, pw).await.map_err(|e| {
            ServerError::unavailable(
                format!("pod {} does not answer: {e}", pod_name(n)),
                "check it with `vd logs` and `vd get pods`, or pick another --source",
            )
        })?;
        return Ok(Source {
            ordinal: n,
            pod: pod_name(n),
            ip,
            role,
        });
    }
    let mut seen = Vec::new();
    let mut ips = std::collections::BTreeMap::new();
    for o in (0..replicas).rev() {
        let s = match running(o) {
            None => Seen::Down(state(o)),
            Some(ip) => {
                let s = match observe(&ip, pw).await {
                    Ok((Role::Replica, connected)) => Seen::Replica { connected },
                    Ok((_, _)) => Seen::Master,
                    Err(e) => Seen::Unreachable(e.to_string()),
                };
                ips.insert(o, ip);
                s
            }
        };
        let done = s == Seen::Replica { connected: true };
        seen.push((o, s));
        if done {
            break;
        }
    }
    match pick_source(replicas, &seen) {
        Ok(o) => Ok(Source {
            ordinal: o,
            pod: pod_name(o),
            ip: ips.remove(&o).unwrap_or_default(),
            role: match seen.iter().find(|(s, _)| *s == o) {
                Some((_, Seen::Master)) => Role::Master,
                _ => Role::Replica,
            },
        }),
        Err(what) if replicas == 1 => Err(conflict(
            format!("{id} has no running master to back up ({what})"),
            "wait until its pod is ready (`vd get pods`)".into(),
        )),
        Err(what) => {
            let m = crate::redis::facts::master_ordinal(ctl, id)?;
            Err(conflict(
                format!("no replica of {id} is running with its link to the master up ({what})"),
                format!("wait for the replicas (`vd redis:info {reference}`), or take the snapshot from the master with --source {m} (the master forks for it)"),
            ))
        }
    }
}

/// Waits until the replica at `replica_ip` has every write the master at `master_ip` had
/// acknowledged, so a snapshot streamed from it right after holds them all. A replica that
/// stays behind for [`CATCH_UP`] is refused: its snapshot would silently miss writes.
pub(crate) async fn replica_caught_up(
    id: &ResourceRef,
    pod: &str,
    replica_ip: &str,
    master: (u32, &str),
    pw: &Auth,
) -> Result<(), ServerError> {
    let reference = format!("{}/{}", id.scope, id.name);
    let (m, master_ip) = master;
    let mut master_node = crate::redis::facts::connect(master_ip, pw).await?;
    if master_node
        .role()
        .await
        .map_err(crate::redis::facts::redis_err)?
        .0
        != Role::Master
    {
        return Err(ServerError::Conflict {
            message: format!(
                "the master of {id} is moving (ordinal {m} is no longer the master); nothing was written"
            ),
            help: Some(format!(
                "retry once `vd redis:info {reference}` shows a master"
            )),
        });
    }
    let mut replica = crate::redis::facts::connect(replica_ip, pw).await?;
    vd_redisctl::switchover::caught_up(&mut master_node, &mut replica, CATCH_UP)
        .await
        .map(|_| ())
        .map_err(|e| ServerError::Conflict {
            message: format!(
                "{pod} is behind the master, so its snapshot would miss writes: {e}; nothing was written"
            ),
            help: Some(format!(
                "take it from the master with --source {m} (the master forks for it), or retry once `vd redis:info {reference}` shows the replica caught up"
            )),
        })
}

// ----- taking a backup

/// A temporary file in the destination, removed on drop unless [`Partial::commit`]ted.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            crate::tidy::remove_file(&self.path, "a partial backup file");
        }
    }
}

impl Partial {
    /// Renames it to `to` and makes the rename durable.
    fn commit(mut self, dir: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.done = true;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Streams `fill`'s RDB into `dir/name` atomically: a temporary file beside it, fsync, rename,
/// fsync of the directory. When `fill` fails nothing is left behind.
pub async fn write_atomically<F, Fut>(
    dir: &Path,
    name: &str,
    fill: F,
) -> Result<Result<rdb::Payload, RdbError>, std::io::Error>
where
    F: FnOnce(tokio::io::BufWriter<tokio::fs::File>) -> Fut,
    Fut: std::future::Future<
        Output = (
            tokio::io::BufWriter<tokio::fs::File>,
            Result<rdb::Payload, RdbError>,
        ),
    >,
{
    let target = dir.join(name);
    let partial = Partial {
        path: dir.join(format!(".{name}.{}.partial", std::process::id())),
        done: false,
    };
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial.path)
        .await?;
    let (writer, result) = fill(tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file)).await;
    let payload = match result {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let file = writer.into_inner();
    file.sync_all().await?;
    drop(file);
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || partial.commit(&dir, &target))
        .await
        .map_err(std::io::Error::other)??;
    Ok(Ok(payload))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What to tell the operator when the snapshot failed.
fn failure(id: &ResourceRef, pod: &str, e: &RdbError) -> ServerError {
    let reference = format!("{}/{}", id.scope, id.name);
    let help = match e {
        RdbError::Unreachable { .. } | RdbError::Read { .. } | RdbError::Stalled { .. } => {
            format!("check the pod (`vd get pods`, `vd logs {reference}`) and retry")
        }
        RdbError::Truncated { .. } | RdbError::Unterminated { .. } => format!(
            "the pod may have restarted or dropped the connection (`vd events redis/{reference}`); retry"
        ),
        RdbError::Refused { .. } => format!(
            "check the pod's state with `vd redis:info {reference}`; a replica must be connected to its master"
        ),
        RdbError::Write(_) => "check that the destination has space and is writable".into(),
        RdbError::BadHeader(_)
        | RdbError::BadMagic { .. }
        | RdbError::TooShort { .. }
        | RdbError::NoEnd
        | RdbError::ChecksumMismatch { .. } => format!(
            "retry; if it happens again the source's memory or disk may be failing: take it from another pod with --source (`vd redis:info {reference}`)"
        ),
    };
    ServerError::Conflict {
        message: format!("backup of {id} from {pod} failed: {e}; nothing was written"),
        help: Some(help),
    }
}

/// `vd redis:backup`.
pub async fn backup(
    ctl: &Controller,
    scope: &str,
    name: &str,
    req: &BackupRequest,
) -> Result<BackupReport, ServerError> {
    take(ctl, scope, name, req, false).await
}

/// Takes one backup; `scheduled` runs (the scheduler records their failures itself) say so in
/// the success event.
pub(crate) async fn take(
    ctl: &Controller,
    scope: &str,
    name: &str,
    req: &BackupRequest,
    scheduled: bool,
) -> Result<BackupReport, ServerError> {
    let started = Instant::now();
    let id = redis_ref(scope, name);
    let spec = load(ctl, &id).map_err(|e| match e {
        ServerError::NotFound(_) => ServerError::NotFound(format!(
            "redis {scope}/{name} does not exist (`vd get redis` lists them)"
        )),
        e => e,
    })?;
    if let Some(data) = vd_core::redis::topology::monitor_of(&spec) {
        return Err(ServerError::Conflict {
            message: format!("{id} is a sentinel sibling; it holds no data"),
            help: Some(format!(
                "back up the redis it watches: vd redis:backup {}/{}",
                data.scope, data.name
            )),
        });
    }
    let target = target(ctl, &id, req.destination.as_deref())?;
    let dir = target.dir().to_path_buf();
    let _running = crate::redis::exclusive::claim(&id, crate::redis::exclusive::Operation::Backup)?;
    let pw = auth(ctl, &id)?;
    let source = choose_source(ctl, &id, spec.replicas.unwrap_or(1), &pw, req.source).await?;
    if source.role == Role::Replica {
        let m = crate::redis::facts::master_ordinal(ctl, &id)?;
        let ips = crate::redis::facts::pod_ips(ctl, &id);
        let master_ip = ips.get(&m).ok_or_else(|| ServerError::Unavailable {
            message: format!(
                "the master of {id} (ordinal {m}) is not running; nothing was written"
            ),
            help: Some(format!(
                "wait for it or its failover (`vd redis:info {scope}/{name}`), then retry"
            )),
        })?;
        replica_caught_up(&id, &source.pod, &source.ip, (m, master_ip), &pw).await?;
    }

    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(|e| ServerError::Conflict {
        message: format!("cannot create the destination {}: {e}", dir.display()),
        help: Some("pick a directory the vd server can write with --destination".into()),
    })?;
    let taken = unix_now();
    let origin = if scheduled {
        Origin::Schedule
    } else {
        Origin::Hand
    };
    let file = file_name(&id, taken, origin);
    let path = dir.join(&file);
    if path.exists() {
        return Err(ServerError::Conflict {
            message: format!("{} already exists", path.display()),
            help: Some("backups are named to the second: retry in a second".into()),
        });
    }

    let ip = source.ip.clone();
    let written = write_atomically(&dir, &file, |mut w| async move {
        let r = rdb::fetch(
            &ip,
            macro_::REDIS_PORT,
            pw.access(),
            &mut w,
            CONNECT_TIMEOUT,
            IDLE_TIMEOUT,
        )
        .await;
        (w, r)
    })
    .await
    .map_err(|e| ServerError::Conflict {
        message: format!("cannot write the backup in {}: {e}", dir.display()),
        help: Some(
            "check that the destination has space and is writable, or pick another with --destination"
                .into(),
        ),
    })?;
    let payload = match written {
        Ok(p) => p,
        Err(e) => {
            let err = failure(&id, &source.pod, &e);
            if !scheduled {
                ctl.event(
                    Level::Warning,
                    Some(&id),
                    Some(&source.pod),
                    Reason::BackupFailed,
                    &err.to_string(),
                );
            }
            return Err(err);
        }
    };
    let path = match &target {
        Target::Local(_) => path.display().to_string(),
        #[cfg(feature = "s3")]
        Target::S3 { store, .. } => {
            // The staged copy goes whether the upload worked or not: S3 is where it belongs.
            let uploaded = store.upload(&path, &file).await;
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(file = %path.display(), error = %e, "could not remove a staged backup");
            }
            uploaded?;
            store.object_url(&file)
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let role = match source.role {
        Role::Replica => "replica",
        _ => "master",
    };
    let checksum = match payload.verified.checksum {
        Checksum::Matched(c) => format!("crc64 {c:016x}"),
        Checksum::Disabled => "disabled".into(),
        Checksum::Absent => "absent".into(),
    };
    ctl.event(
        Level::Info,
        Some(&id),
        Some(&source.pod),
        Reason::BackedUp,
        &format!(
            "{}{path} ({} bytes, checksum {checksum}) from {} ({role}) in {duration_ms} ms",
            if scheduled { "scheduled: " } else { "" },
            payload.verified.bytes,
            source.pod
        ),
    );
    Ok(BackupReport {
        redis: format!("{scope}/{name}"),
        file,
        path,
        bytes: payload.verified.bytes,
        duration_ms,
        source: source.ordinal,
        source_pod: source.pod,
        source_role: role.into(),
        taken_at: iso(taken),
        rdb_version: payload.verified.version,
        checksum,
        diskless: payload.diskless,
    })
}

// ----- listing

/// The backups of `id` in `dir`, oldest first (files whose names are not `id`'s are ignored).
pub fn scan(dir: &Path, id: &ResourceRef) -> std::io::Result<Vec<BackupEntry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A cluster backup is listed by its index (its shard files are not backups alone).
        let Some(kind) = classify(id, &name).filter(|k| k.is_backup()) else {
            continue;
        };
        let secs = kind.taken();
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        out.push((
            secs,
            BackupEntry {
                path: entry.path().display().to_string(),
                file: name,
                bytes: meta.len(),
                taken_at: iso(secs),
                scheduled: kind.origin == Origin::Schedule,
            },
        ));
    }
    out.sort_by(|a, b| (a.0, &a.1.file).cmp(&(b.0, &b.1.file)));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// `vd redis:backups`: also for a redis deleted since, as long as its backups are there.
pub fn list(
    ctl: &Controller,
    scope: &str,
    name: &str,
    asked: Option<&str>,
) -> Result<BackupList, ServerError> {
    let id = redis_ref(scope, name);
    let dir = destination(ctl, &id, asked)?;
    let exists = ctl.store.get(&id)?.is_some();
    let backups = match scan(&dir, &id) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !exists && asked.is_none() {
                return Err(ServerError::NotFound(format!(
                    "redis {scope}/{name} does not exist and has no backups in {}",
                    dir.display()
                )));
            }
            if asked.is_some() {
                return Err(ServerError::Conflict {
                    message: format!("the destination {} does not exist", dir.display()),
                    help: Some("name the directory backups were written to".into()),
                });
            }
            Vec::new()
        }
        Err(e) => {
            return Err(ServerError::Conflict {
                message: format!("cannot list {}: {e}", dir.display()),
                help: Some("check the directory's permissions".into()),
            })
        }
    };
    Ok(BackupList {
        directory: dir.display().to_string(),
        backups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::Kind;

    fn id(scope: &str, name: &str) -> ResourceRef {
        ResourceRef::new(Kind::Redis, scope, name)
    }

    #[test]
    fn stamps_are_utc_and_round_trip() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(stamp(1_709_251_199), "20240229T235959Z");
        assert_eq!(iso(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(stamp(4_102_444_800), "21000101T000000Z");
        for secs in (0..5_000_000_000i64).step_by(86_399 * 7 + 3_601) {
            assert_eq!(parse_stamp(&stamp(secs)), Some(secs), "{}", stamp(secs));
        }
        for bad in [
            "20240230T000000Z",
            "20230229T000000Z",
            "20241301T000000Z",
            "20240101T240000Z",
            "20240101T000060Z",
            "20240101 000000Z",
            "20240101T000000",
            "2024010T000000Z",
            "2024-101T000000Z",
            "20240101T00000+Z",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn file_names_belong_to_one_redis() {
        let cache = id("data", "cache");
        let name = file_name(&cache, 1_709_251_199, Origin::Hand);
        assert_eq!(name, "data-cache-20240229T235959Z.rdb");
        assert_eq!(parse_file_name(&cache, &name), Some(1_709_251_199));
        let other = file_name(&id("data", "cache-2"), 1_709_251_199, Origin::Hand);
        assert_eq!(parse_file_name(&cache, &other), None, "{other}");
        assert_eq!(
            parse_file_name(&id("data-cache", "2"), &other),
            Some(1_709_251_199),
            "scope and name are each labels; the stamp decides"
        );
        for bad in [
            ".data-cache-20240229T235959Z.rdb.1.partial",
            "data-cache-20240229T235959Z.rdb.gz",
            "data-cache-latest.rdb",
        ] {
            assert_eq!(parse_file_name(&cache, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_source_is_the_highest_connected_replica() {
        let r = |connected| Seen::Replica { connected };
        assert_eq!(
            pick_source(3, &[(0, Seen::Master), (1, r(true)), (2, r(true))]),
            Ok(2)
        );
        assert_eq!(
            pick_source(
                3,
                &[
                    (2, Seen::Down("Backoff".into())),
                    (1, r(true)),
                    (0, Seen::Master)
                ]
            ),
            Ok(1)
        );
        // After a failover the master may be the highest ordinal.
        assert_eq!(
            pick_source(3, &[(2, Seen::Master), (1, r(false)), (0, r(true))]),
            Ok(0)
        );
        assert_eq!(pick_source(1, &[(0, Seen::Master)]), Ok(0));
        let err = pick_source(
            3,
            &[
                (2, r(false)),
                (1, Seen::Unreachable("timeout".into())),
                (0, Seen::Master),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.pods,
            "ordinal 2: a replica whose link to the master is down; ordinal 1: unreachable (timeout); ordinal 0: the master"
        );
        assert!(pick_source(1, &[(0, Seen::Down("Pending".into()))]).is_err());
    }

    fn rdb_bytes() -> Vec<u8> {
        let mut out = b"REDIS0010\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff".to_vec();
        let crc = crc_redis(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Redis's crc64 (Jones, reflected), bit by bit: independent of the code under test.
    fn crc_redis(data: &[u8]) -> u64 {
        const POLY: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 reflected
        let mut crc = 0u64;
        for b in data {
            crc ^= u64::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    async fn write(dir: &Path, name: &str, stream: Vec<u8>) -> Result<rdb::Payload, RdbError> {
        write_atomically(dir, name, |mut w| async move {
            let mut reader = &stream[..];
            let r = rdb::read_payload(&mut reader, &mut w, Duration::from_secs(5)).await;
            (w, r)
        })
        .await
        .unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_good_stream_lands_whole_and_a_bad_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let good = rdb_bytes();
        let stream = [format!("${}\r\n", good.len()).as_bytes(), &good].concat();
        let p = write(dir.path(), "a.rdb", stream).await.unwrap();
        assert_eq!(p.verified.bytes, good.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("a.rdb")).unwrap(), good);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a.rdb"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "backups hold every key: owner only");

        let mut damaged = good.clone();
        damaged[12] ^= 1;
        let stream = [format!("${}\r\n", good.len()).as_bytes(), &damaged].concat();
        let e = write(dir.path(), "b.rdb", stream).await.unwrap_err();
        assert!(matches!(e, RdbError::ChecksumMismatch { .. }), "{e}");
        let stream = [
            format!("${}\r\n", good.len()).as_bytes(),
            &good[..good.len() / 2],
        ]
        .concat();
        let e = write(dir.path(), "c.rdb", stream).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the stream ended after {} of {} bytes",
                good.len() / 2,
                good.len()
            )
        );
        assert_eq!(names(dir.path()), ["a.rdb"], "no temporary file is left");

        let cache = id("data", "cache");
        for (secs, body) in [(200, &b"x"[..]), (100, b"yy")] {
            std::fs::write(dir.path().join(file_name(&cache, secs, Origin::Hand)), body).unwrap();
        }
        std::fs::write(
            dir.path()
                .join(file_name(&id("data", "cache-2"), 300, Origin::Hand)),
            "z",
        )
        .unwrap();
        let listed = scan(dir.path(), &cache).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|e| (e.file.as_str(), e.bytes, e.taken_at.as_str()))
                .collect::<Vec<_>>(),
            [
                ("data-cache-19700101T000140Z.rdb", 2, "1970-01-01T00:01:40Z"),
                ("data-cache-19700101T000320Z.rdb", 1, "1970-01-01T00:03:20Z"),
            ]
        );
    }
}
