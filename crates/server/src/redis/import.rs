//! `vd redis:import REF --from redis://[user:password@]host[:port][/db]`: bring another Redis
//! server's dataset into a vd redis.
//!
//! Live (the default): the target's master replicates from the source until it has the
//! source's data and offset, then is detached (`REPLICAOF NO ONE` keeps the data) and gets
//! its own `masteruser`/`masterauth` back; its replicas, which kept following it (chained
//! replication), are checked to be following it and caught up. The controller's automatic
//! failover is paused meanwhile ([`crate::redis::state::FailoverState::pause`]): without that its
//! planner would see a master that follows an outside server and "repair" it. Nothing else in
//! the controller re-points a pod of a redis without sentinels, and a redis a sentinel
//! sibling watches is not imported live (its sentinels would see the master turn replica).
//! On a failure after anything changed, the master is detached and its settings restored,
//! and the error says which data it holds.
//!
//! Copy: `SCAN` + `DUMP`/`PTTL` -> `RESTORE … REPLACE` from the controller
//! ([`vd_redisctl::migrate::copy_db`]), database by database. Used with `--mode copy`, for a
//! URL naming one database, and automatically when live replication cannot work: the source
//! refuses `SYNC`/`PSYNC` (renamed, ACL), the replication connection is refused, or the
//! target's pods cannot reach the source (a loopback source seen from docker containers).
//!
//! The source URL carries a password: it is parsed once, and only its redacted form
//! ([`SourceUrl::redacted`]) is ever logged, stored in events or returned.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{auth, load, master_ordinal, pod_ips, redis_ref, Auth};
use crate::redis::ops::Ops;
use crate::redis::state::FailoverState;
use crate::types::Problem;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::redis::REDIS_PORT;
use vd_core::ResourceRef;
use vd_redisctl::migrate::{self, Refusal, Source, SourceError, SourceUrl};
use vd_redisctl::{Node, Role};
use vd_store::{MetaKey, StoreError};

/// Connecting to a pod or the source, and each reply.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the replication link may take to start a sync before the source counts as
/// refusing it (a handshake takes milliseconds; a refused one retries every second).
const LINK_TIMEOUT: Duration = Duration::from_secs(15);
/// Default limit for the whole import.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The least time the replicas get to catch up after the data is on the master.
const REPLICAS_MIN: Duration = Duration::from_secs(60);
/// Keys per copy round trip.
const COPY_BATCH: usize = 1000;
/// Per-reply limit of the copy's connections (a batch of large keys takes a while).
const COPY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// Replicate from the source, then detach.
    Live,
    /// `SCAN` + `DUMP`/`RESTORE`.
    Copy,
}

/// `POST /v1/redis/{scope}/{name}/import`. Its `Debug` hides the URL's password.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    /// `redis://[user:password@]host[:port][/db]`.
    pub from: String,
    /// `None`: live, falling back to copy when the source refuses replication; `Live`: live
    /// or fail; `Copy`: copy.
    #[serde(default)]
    pub mode: Option<ImportMode>,
    /// Import into a redis that holds keys (live replaces all of them; copy overwrites keys
    /// of the same name).
    #[serde(default)]
    pub force: bool,
    /// Limit for the whole import, seconds (default 600).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field(
                "from",
                &migrate::parse_url(&self.from)
                    .map(|u| u.redacted())
                    .unwrap_or_else(|_| "(unparsed)".into()),
            )
            .field("mode", &self.mode)
            .field("force", &self.force)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Keys of one logical database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbKeys {
    /// Index.
    pub db: u32,
    /// Keys on the target's master afterwards.
    pub keys: u64,
    /// Keys restored (copy mode).
    #[serde(default)]
    pub copied: Option<u64>,
    /// Keys that expired or vanished during the copy (copy mode).
    #[serde(default)]
    pub skipped: Option<u64>,
}

/// One replica of the target after the import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Ordinal.
    pub ordinal: u32,
    /// Keys over all databases.
    pub keys: u64,
    /// Following the master, link up, at its offset.
    pub in_sync: bool,
    /// What is wrong, when not in sync.
    #[serde(default)]
    pub problem: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportReport {
    /// `scope/name`.
    pub redis: String,
    /// The source URL, password redacted.
    pub source: String,
    /// `live` or `copy`.
    pub mode: ImportMode,
    /// Why copy was used when live was not asked against.
    #[serde(default)]
    pub fallback: Option<String>,
    /// The master that received the data.
    pub master: u32,
    /// Keys on the master afterwards, over all databases.
    pub keys: u64,
    /// Per database.
    pub databases: Vec<DbKeys>,
    /// The master's replicas.
    pub replicas: Vec<ReplicaState>,
    /// The whole import, ms.
    pub duration_ms: u64,
    /// Live: from `REPLICAOF` to the link up with the sync done, ms.
    #[serde(default)]
    pub sync_ms: Option<u64>,
}

/// `POST /v1/redis/{scope}/{name}/import`.
pub async fn api_import(
    State(ops): State<Arc<Ops>>,
    UrlPath((scope, name)): UrlPath<(String, String)>,
    crate::extract::Body(req): crate::extract::Body<ImportRequest>,
) -> Result<Json<ImportReport>, ServerError> {
    Ok(Json(import(&ops, &scope, &name, &req).await?))
}

// ----- the decision (pure)

/// What rules live replication out, as facts about the import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveBlockers {
    /// The URL names one database.
    pub db: Option<u32>,
    /// A sentinel sibling watches the target (`scope/name`).
    pub sentinel: Option<String>,
    /// The runtime is docker and the source's host is a loopback address.
    pub loopback_from_containers: bool,
    /// The target speaks TLS only, replication included, and the source (a `redis://` URL)
    /// does not.
    pub tls_target: bool,
    /// The source said it refuses replication.
    pub refused: Option<Refusal>,
}

impl LiveBlockers {
    fn first(&self) -> Option<String> {
        if let Some(db) = self.db {
            return Some(format!(
                "the URL names database {db}, and replication copies every database"
            ));
        }
        if let Some(s) = &self.sentinel {
            return Some(format!(
                "the sentinel sibling {s} watches it, and would see its master turn into a replica of an outside server"
            ));
        }
        if self.loopback_from_containers {
            return Some(
                "the source's host is a loopback address, which the target's pods cannot reach: each has a network of its own (a source on this host that listens on its pods' network address, `vd redis:url --external` shows the network, is reached live)".into(),
            );
        }
        if self.tls_target {
            return Some(
                "the target speaks TLS only, to its master too, and the source is plain TCP".into(),
            );
        }
        self.refused.map(|r| r.explain().to_string())
    }
}

/// Live replication was asked for and cannot work; says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LiveRuledOut(pub String);

/// Pure: the mode to use and, for copy, why; `Err` when live was asked for and cannot work.
pub fn choose_mode(
    asked: Option<ImportMode>,
    blockers: &LiveBlockers,
) -> Result<(ImportMode, Option<String>), LiveRuledOut> {
    match (asked, blockers.first()) {
        (Some(ImportMode::Copy), _) => Ok((ImportMode::Copy, None)),
        (_, None) => Ok((ImportMode::Live, None)),
        (Some(ImportMode::Live), Some(why)) => Err(LiveRuledOut(why)),
        (None, Some(why)) => Ok((ImportMode::Copy, Some(why))),
    }
}

/// Pure: what a live import that failed after `REPLICAOF` left on the target's master.
pub fn data_state(sync_seen: bool, loading_seen: bool, link_seen: bool) -> &'static str {
    if link_seen {
        "the target's master holds the source's data as of the failure"
    } else if loading_seen {
        "the target's master was loading the source's data: it holds the source's data or none"
    } else if sync_seen {
        "a full sync had started but not loaded: the target's master keeps its previous data"
    } else {
        "no sync started: the target's data is unchanged"
    }
}

fn source_err(id: &ResourceRef, e: SourceError) -> ServerError {
    let help = match &e {
        SourceError::WrongPassword { .. } => {
            "check the user and password in the URL (percent-encode special characters)"
        }
        SourceError::NeedsPassword { .. } => "give it in the URL: redis://:PASSWORD@host:port",
        SourceError::NoPasswordSet { .. } => "drop the password from the URL",
        _ => "check the source's address and that it is running",
    };
    ServerError::conflict(
        format!("{e}; nothing was changed on {id}"),
        help.to_string(),
    )
}

fn target_err(what: &str, e: vd_redisctl::RedisError) -> ServerError {
    ServerError::Conflict {
        message: format!("{what}: {e}"),
        help: None,
    }
}

// ----- the import

/// `vd redis:import`.
pub async fn import(
    ops: &Ops,
    scope: &str,
    name: &str,
    req: &ImportRequest,
) -> Result<ImportReport, ServerError> {
    let ctl = &ops.ctl;
    let started = Instant::now();
    let id = redis_ref(scope, name);
    let spec = load(ctl, &id)?;
    if vd_core::redis::topology::is_sentinel(&spec) {
        return Err(ServerError::conflict(
            format!("{id} is a sentinel sibling; it holds no data"),
            "import into the data redis it watches",
        ));
    }
    let url = migrate::parse_url(&req.from).map_err(|e| {
        ServerError::invalid(Problem {
            resource: Some(id.clone()),
            field: "from".into(),
            message: e.to_string(),
            help: Some("e.g. --from redis://:PASSWORD@10.0.0.5:6379".into()),
        })
    })?;
    let deadline = started
        + req
            .timeout_secs
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let _running = crate::redis::exclusive::claim(&id, crate::redis::exclusive::Operation::Import)?;
    let pw = auth(ctl, &id)?;
    let master = master_ordinal(ctl, &id)?;
    let ips = pod_ips(ctl, &id);
    let master_ip = ips.get(&master).cloned().ok_or_else(|| {
        ServerError::conflict(
            format!(
                "the master pod {} is not running",
                vd_core::naming::pod_name(&id, master)
            ),
            "wait until it is ready (`vd get pods`)",
        )
    })?;
    let mut target = Node::connect_with(&master_ip, REDIS_PORT, pw.access(), CONNECT_TIMEOUT)
        .await
        .map_err(|e| target_err("the target's master", e))?;
    if target
        .role()
        .await
        .map_err(|e| target_err("the target's master", e))?
        .0
        != Role::Master
    {
        return Err(ServerError::conflict(
            format!("{}-{master}, the master of {id}, is not acting as a master", id.name),
            format!("check `vd redis:info {scope}/{name}` (a failover or another import may be unfinished)"),
        ));
    }

    let mut source = Source::connect(&url, None, CONNECT_TIMEOUT)
        .await
        .map_err(|e| source_err(&id, e))?;
    refuse_self(&id, &ips, &pw, &url, &mut source, &mut target).await?;
    let target_keys = total(&target_keyspace(&mut target).await?);
    if target_keys > 0 && !req.force {
        return Err(ServerError::conflict(
            format!("{id} holds {target_keys} keys; nothing was changed"),
            "pass --force to import anyway: live replaces every key of the target, copy overwrites keys of the same name and keeps the others",
        ));
    }

    let mut blockers = LiveBlockers {
        db: url.db,
        sentinel: crate::redis::facts::watcher_of(ctl, &id)?
            .map(|(s, _)| format!("{}/{}", s.scope, s.name)),
        // Every pod has a network of its own: the host's loopback is not theirs. On the process
        // runtime the host is reachable at its address on the pods' network, `127.X.0.1`.
        loopback_from_containers: url.is_loopback()
            && !(ctl.runtime.name() == "process"
                && url.host.starts_with(&format!("{}.", ctl.store.subnet()?))),
        tls_target: pw.tls.is_some(),
        refused: None,
    };
    if req.mode != Some(ImportMode::Copy) && blockers.first().is_none() {
        blockers.refused = source.refuses_replication().await;
    }
    let live_refused = |why: String| {
        ServerError::conflict(
            format!("cannot import into {id} live: {why}; nothing was changed"),
            "use --mode copy (SCAN + DUMP/RESTORE from the controller)",
        )
    };
    let (mut mode, mut fallback) =
        choose_mode(req.mode, &blockers).map_err(|e| live_refused(e.0))?;
    tracing::info!(redis = %id, source = %url.redacted(), ?mode, "import starting");
    let mut sync_ms = None;
    let mut copied: BTreeMap<u32, migrate::DbCopy> = BTreeMap::new();
    if mode == ImportMode::Live {
        let job = LiveJob {
            ctl,
            failover: &ops.failover,
            id: &id,
            master,
            url: &url,
            deadline,
        };
        match live(&job, &mut target, &mut source).await {
            Ok(ms) => sync_ms = Some(ms),
            Err(LiveError::Refused(why)) if req.mode.is_none() => {
                tracing::info!(redis = %id, why = %why, "live import refused; copying keys instead");
                mode = ImportMode::Copy;
                fallback = Some(why);
            }
            Err(LiveError::Refused(why)) => return Err(live_refused(why)),
            Err(LiveError::Failed(e)) => return Err(e),
        }
    }
    if mode == ImportMode::Copy {
        copied = copy(
            &id,
            &master_ip,
            &pw,
            &url,
            &mut source,
            &mut target,
            deadline,
        )
        .await?;
    }

    let keyspace = target_keyspace(&mut target).await?;
    let replicas = settle_replicas(ctl, &id, master, &pw, &mut target, deadline).await;
    let mut dbs: BTreeSet<u32> = keyspace.keys().copied().collect();
    dbs.extend(copied.keys());
    let databases = dbs
        .into_iter()
        .map(|db| DbKeys {
            db,
            keys: keyspace.get(&db).copied().unwrap_or(0),
            copied: copied.get(&db).map(|c| c.copied),
            skipped: copied.get(&db).map(|c| c.skipped),
        })
        .collect();
    let report = ImportReport {
        redis: format!("{scope}/{name}"),
        source: url.redacted(),
        mode,
        fallback,
        master,
        keys: total(&keyspace),
        databases,
        replicas,
        duration_ms: started.elapsed().as_millis() as u64,
        sync_ms,
    };
    let lagging = report.replicas.iter().filter(|r| !r.in_sync).count();
    ctl.event(
        if lagging == 0 {
            Level::Info
        } else {
            Level::Warning
        },
        Some(&id),
        None,
        Reason::Imported,
        &format!(
            "{} keys from {} ({}{}) in {} ms{}",
            report.keys,
            report.source,
            match mode {
                ImportMode::Live => "live",
                ImportMode::Copy => "copy",
            },
            report
                .fallback
                .as_ref()
                .map(|f| format!(": {f}"))
                .unwrap_or_default(),
            report.duration_ms,
            if lagging == 0 {
                String::new()
            } else {
                format!("; {lagging} replica(s) not in sync yet")
            }
        ),
    );
    Ok(report)
}

fn total(keyspace: &BTreeMap<u32, u64>) -> u64 {
    keyspace.values().sum()
}

async fn target_keyspace(target: &mut Node) -> Result<BTreeMap<u32, u64>, ServerError> {
    let info = target
        .info(Some("keyspace"))
        .await
        .map_err(|e| target_err("the target's master", e))?;
    Ok(migrate::keyspace(&info))
}

/// Refuses a source that is one of the target's own pods (same `run_id`, whatever address
/// reached it) or shares its replication history (a replica of it).
async fn refuse_self(
    id: &ResourceRef,
    ips: &BTreeMap<u32, String>,
    pw: &Auth,
    url: &SourceUrl,
    source: &mut Source,
    target: &mut Node,
) -> Result<(), ServerError> {
    let info = source
        .info(None)
        .await
        .map_err(|e| source_err(id, e.into()))?;
    let run_id = info.get("run_id").unwrap_or_default().to_string();
    for (o, ip) in ips {
        let Ok(mut n) = Node::connect_with(ip, REDIS_PORT, pw.access(), CONNECT_TIMEOUT).await
        else {
            continue;
        };
        if let Ok(i) = n.info(Some("server")).await {
            if !run_id.is_empty() && i.get("run_id") == Some(run_id.as_str()) {
                return Err(ServerError::conflict(
                    format!(
                        "the source {} is {}, a pod of {id} itself; nothing was changed",
                        url.addr(),
                        vd_core::naming::pod_name(id, *o)
                    ),
                    "import from another redis server",
                ));
            }
        }
    }
    let theirs = info.replication();
    let ours = target
        .replication()
        .await
        .map_err(|e| target_err("the target's master", e))?;
    if !ours.replid.is_empty() && theirs.replid == ours.replid {
        return Err(ServerError::conflict(
            format!(
                "the source {} replicates from {id} (same replication history); importing it would import {id} into itself; nothing was changed",
                url.addr()
            ),
            "import from another redis server",
        ));
    }
    Ok(())
}

// ----- live

enum LiveError {
    /// Replication cannot work with this source; nothing was left changed.
    Refused(String),
    /// Failed; the message says what the target now holds.
    Failed(ServerError),
}

/// The master's replication settings before the import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    user: Option<String>,
    auth: Option<String>,
}

/// A live import under way, kept in the store while the master follows the source, so a
/// server that dies meanwhile detaches the master and restores its settings when it starts
/// again ([`recover`]) instead of leaving it replicating from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Underway {
    /// The master's ordinal.
    ordinal: u32,
    /// Its settings to restore.
    saved: Saved,
}

fn underway_key(id: &ResourceRef) -> MetaKey {
    MetaKey::ImportUnderway(id.clone())
}

/// Drops the record of an import under way; a failure is logged (the next start then finds
/// the record again and detaches a master that is already detached, which is harmless).
fn clear_underway(ctl: &Controller, id: &ResourceRef) {
    if let Err(e) = ctl.store.delete_meta(&underway_key(id)) {
        tracing::warn!(redis = %id, error = %e, "could not drop the record of an import under way");
    }
}

/// How long [`recover`] tries to reach the master of an interrupted import.
const RECOVER_FOR: Duration = Duration::from_secs(120);

/// At server start: every live import a previous server left under way gets its master
/// detached from the source and its settings back. Failover stays paused for that redis
/// until then (taken here, before the failover task starts, so its planner never sees the
/// master following an outside server).
pub fn recover(ops: &Ops) {
    let ctl = &ops.ctl;
    let all = match ctl.store.list(Some(vd_core::Kind::Redis)) {
        Ok(all) => all,
        Err(e) => {
            // Without the list no interrupted import can be found; say so loudly, since a
            // master may still be following an outside server.
            tracing::error!(error = %e, "could not look for interrupted imports");
            return;
        }
    };
    for r in all {
        let id = r.resource.id.clone();
        let underway = match ctl.store.meta_json::<Underway>(&underway_key(&id)) {
            Ok(Some(u)) => u,
            Ok(None) => continue,
            Err(StoreError::CorruptMeta { message, .. }) => {
                tracing::warn!(redis = %id, %message, "unreadable record of an interrupted import; dropped");
                clear_underway(ctl, &id);
                continue;
            }
            Err(e) => {
                tracing::error!(redis = %id, error = %e, "could not read the record of an interrupted import");
                continue;
            }
        };
        let paused = ops.failover.pause(&id);
        let ctl = ctl.clone();
        tokio::spawn(async move {
            let pod = vd_core::naming::pod_name(&id, underway.ordinal);
            let outcome = recover_one(&ctl, &id, &underway).await;
            let (level, message) = match &outcome {
                Ok(()) => (Level::Warning, format!(
                    "an import into {id} was interrupted by a server restart: its master {pod} was detached from the source and its replication settings restored; its data may be partial: run `vd redis:import` again with --force"
                )),
                Err(e) => (Level::Warning, format!(
                    "an import into {id} was interrupted by a server restart and its master {pod} could not be detached from the source: {e}; restart the pod (`vd restart`)"
                )),
            };
            ctl.event(
                level,
                Some(&id),
                Some(&pod),
                Reason::ImportInterrupted,
                &message,
            );
            clear_underway(&ctl, &id);
            drop(paused);
        });
    }
}

async fn recover_one(
    ctl: &Arc<Controller>,
    id: &ResourceRef,
    underway: &Underway,
) -> Result<(), RecoverError> {
    let until = Instant::now() + RECOVER_FOR;
    let pw = auth(ctl, id)?;
    let mut last = String::from("its pod has no address yet");
    while Instant::now() < until {
        if let Some(ip) = pod_ips(ctl, id).get(&underway.ordinal) {
            match Node::connect_with(ip, REDIS_PORT, pw.access(), CONNECT_TIMEOUT).await {
                Ok(mut node) => {
                    let undone = async {
                        // A master already (restarted, or promoted by hand): only the
                        // settings are left to restore.
                        if node.role().await?.0 == Role::Replica {
                            detach(&mut node, until).await?;
                        }
                        restore_settings(&mut node, &underway.saved).await
                    };
                    match undone.await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(RecoverError::Unreachable {
        secs: RECOVER_FOR.as_secs(),
        last,
    })
}

/// Why an interrupted import's master could not be detached at start.
#[derive(Debug, thiserror::Error)]
enum RecoverError {
    /// Its password could not be read.
    #[error("{0}")]
    Password(#[from] ServerError),
    /// It did not answer, or refused, for the whole time allowed.
    #[error("{last} (tried for {secs} s)")]
    Unreachable {
        /// How long it was tried.
        secs: u64,
        /// The last failure.
        last: String,
    },
}

async fn restore_settings(target: &mut Node, saved: &Saved) -> Result<(), vd_redisctl::RedisError> {
    target
        .config_set("masteruser", saved.user.as_deref().unwrap_or(""))
        .await?;
    target
        .config_set("masterauth", saved.auth.as_deref().unwrap_or(""))
        .await
}

/// `REPLICAOF NO ONE`, retried while the node answers `LOADING` (it cannot be interrupted
/// while it loads the RDB it received).
async fn detach(target: &mut Node, until: Instant) -> Result<(), vd_redisctl::RedisError> {
    loop {
        match target.promote().await {
            Err(e) if e.to_string().contains("LOADING") && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}

/// Undoes a failed live import: detach, settings back. Returns whether that worked and what
/// to tell.
async fn undo(target: &mut Node, saved: &Saved, state: &str) -> (bool, String) {
    let until = Instant::now() + Duration::from_secs(120);
    let detached = detach(target, until).await;
    let restored = restore_settings(target, saved).await;
    match (detached, restored) {
        (Ok(()), Ok(())) => (true, format!("the master was detached from the source and its replication settings restored; {state}")),
        (d, r) => {
            let what: Vec<String> = [d.err().map(|e| format!("REPLICAOF NO ONE failed ({e})")), r.err().map(|e| format!("restoring masteruser/masterauth failed ({e})"))]
                .into_iter()
                .flatten()
                .collect();
            (false, format!("{}; {state}; restarting the master pod (`vd restart`) brings it back as the master with its own settings", what.join(", ")))
        }
    }
}

/// Reads what a pod's log gained since `from` (at most the last 64 KiB of it).
fn log_since(path: &std::path::Path, from: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // A rotated (truncated) log starts over.
    let from = if len < from {
        0
    } else {
        from.max(len.saturating_sub(64 << 10))
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        // The log only explains a failure; what could be read is shown.
        if let Err(e) = f.take(64 << 10).read_to_end(&mut buf) {
            tracing::warn!(path = %path.display(), error = %e, "could not read the master's log");
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The live import up to the data being on the master and the master detached with its own
/// settings back. Returns how long the sync took, ms.
async fn live(job: &LiveJob<'_>, target: &mut Node, source: &mut Source) -> Result<u64, LiveError> {
    let LiveJob {
        ctl,
        failover,
        id,
        master,
        ..
    } = *job;
    // The failover planner must not act on a master that follows an outside server.
    let _paused = failover.pause(id);
    let fail = |m: String| live_failed(id, m);
    let saved = Saved {
        user: target.config_get("masteruser").await.map_err(|e| {
            fail(format!(
                "reading the master's masteruser: {e}; nothing was changed"
            ))
        })?,
        auth: target.config_get("masterauth").await.map_err(|e| {
            fail(format!(
                "reading the master's masterauth: {e}; nothing was changed"
            ))
        })?,
    };
    let underway = Underway {
        ordinal: master,
        saved: saved.clone(),
    };
    if let Err(e) = ctl.store.set_meta_json(&underway_key(id), &underway) {
        return Err(fail(format!(
            "recording the import in the store: {e}; nothing was changed"
        )));
    }
    let result = live_attached(job, target, source, &saved).await;
    // Cleared only once the master follows no one: otherwise the next server start still
    // has to detach it.
    if matches!(target.role().await, Ok((Role::Master, _))) {
        clear_underway(ctl, id);
    }
    result
}

/// A live import's failure, pointing at where to look.
fn live_failed(id: &ResourceRef, message: String) -> LiveError {
    LiveError::Failed(ServerError::conflict(
        message,
        format!(
            "check `vd redis:info {}/{}` and the master's log (`vd logs redis/{}/{}`)",
            id.scope, id.name, id.scope, id.name
        ),
    ))
}

/// What a live import works on.
struct LiveJob<'a> {
    ctl: &'a Arc<Controller>,
    failover: &'a FailoverState,
    id: &'a ResourceRef,
    /// The target's master ordinal.
    master: u32,
    url: &'a SourceUrl,
    deadline: Instant,
}

/// [`live`] from pointing the master at the source to detaching it again (or undoing).
async fn live_attached(
    job: &LiveJob<'_>,
    target: &mut Node,
    source: &mut Source,
    saved: &Saved,
) -> Result<u64, LiveError> {
    let LiveJob {
        ctl,
        failover: _,
        id,
        master,
        url,
        deadline,
    } = *job;
    let fail = |m: String| live_failed(id, m);
    let log = ctl.runtime.log_path(&vd_core::naming::pod_name(id, master));
    let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let set = async {
        target
            .config_set("masteruser", url.user.as_deref().unwrap_or(""))
            .await?;
        target
            .config_set("masterauth", url.password.as_deref().unwrap_or(""))
            .await?;
        target.replicaof(&url.host, url.port).await
    };
    if let Err(e) = set.await {
        let (_, undone) = undo(target, saved, data_state(false, false, false)).await;
        return Err(fail(format!(
            "pointing the master at the source failed: {e}; {undone}"
        )));
    }
    let began = Instant::now();
    let (mut sync_seen, mut loading_seen, mut link_seen) = (false, false, false);
    let mut goal: Option<i64> = None;
    let mut last_log = Instant::now();
    let mut failing_since: Option<Instant> = None;
    let outcome: Result<u64, LiveError> = loop {
        if Instant::now() > deadline {
            break Err(fail(format!(
                "the import did not finish within its timeout ({} s after REPLICAOF)",
                began.elapsed().as_secs()
            )));
        }
        let r = match target.replication().await {
            Ok(r) => {
                failing_since = None;
                r
            }
            Err(e) => {
                // A node busy loading a large RDB may answer late: give it a while.
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    break Err(fail(format!("the master stopped answering: {e}")));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if r.role != Role::Replica {
            break Err(fail(
                "the master stopped replicating from the source (it restarted, or someone ran REPLICAOF)".into(),
            ));
        }
        sync_seen |= r.sync_in_progress;
        loading_seen |= r.loading;
        if r.link_up && !r.sync_in_progress && !r.loading {
            link_seen = true;
            let want = match goal {
                Some(g) => g,
                None => match source.replication().await {
                    // Writes the source takes after this moment are not waited for.
                    Ok(s) => *goal.insert(s.master_repl_offset),
                    Err(e) => break Err(fail(format!("the source stopped answering: {e}"))),
                },
            };
            if r.replica_repl_offset.unwrap_or(0) >= want {
                break Ok(began.elapsed().as_millis() as u64);
            }
        }
        // A refused handshake is retried every second and the link never comes up. The
        // transfer state a replica enters right after sending SYNC (before the source's error
        // reply) may be seen in passing, so only a sync in progress now, or a load, counts
        // as the source accepting.
        if !link_seen && !loading_seen && !r.sync_in_progress && began.elapsed() > LINK_TIMEOUT {
            let text = log_since(&log, log_start);
            let why = match migrate::last_refusal(&text) {
                Some((r, line)) => Some(format!("{} (the master logged: {line})", r.explain())),
                None if !sync_seen => Some(format!(
                    "the replication link to the source did not come up within {} s",
                    LINK_TIMEOUT.as_secs()
                )),
                None => None,
            };
            if let Some(why) = why {
                let (undone_ok, undone) =
                    undo(target, saved, data_state(false, false, false)).await;
                if !undone_ok {
                    return Err(fail(format!("{why}; {undone}")));
                }
                tracing::info!(redis = %id, %why, "live import refused");
                return Err(LiveError::Refused(why));
            }
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            let phase = if r.loading {
                "loading the source's RDB"
            } else if r.sync_in_progress {
                "receiving the source's RDB"
            } else if r.link_up {
                "catching up"
            } else {
                "connecting"
            };
            tracing::info!(redis = %id, phase, offset = r.replica_repl_offset.unwrap_or(0), goal = goal.unwrap_or(0), elapsed_s = began.elapsed().as_secs(), "import progress");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    match outcome {
        Ok(ms) => {
            let detached = detach(
                target,
                deadline.max(Instant::now() + Duration::from_secs(30)),
            )
            .await;
            let restored = restore_settings(target, saved).await;
            if let Err(e) = detached.and(restored) {
                let (_, undone) = undo(target, saved, data_state(true, true, true)).await;
                return Err(fail(format!(
                    "detaching the master from the source failed: {e}; {undone}"
                )));
            }
            Ok(ms)
        }
        Err(e) => {
            let state = data_state(sync_seen, loading_seen, link_seen);
            let (_, undone) = undo(target, saved, state).await;
            Err(match e {
                LiveError::Failed(ServerError::Conflict { message, help }) => {
                    LiveError::Failed(ServerError::Conflict {
                        message: format!("{message}; {undone}"),
                        help,
                    })
                }
                other => other,
            })
        }
    }
}

// ----- copy

async fn copy(
    id: &ResourceRef,
    master_ip: &str,
    pw: &Auth,
    url: &SourceUrl,
    source: &mut Source,
    target: &mut Node,
    deadline: Instant,
) -> Result<BTreeMap<u32, migrate::DbCopy>, ServerError> {
    let info = source
        .info(Some("keyspace"))
        .await
        .map_err(|e| source_err(id, e.into()))?;
    let dbs: Vec<u32> = match url.db {
        Some(db) => vec![db],
        None => migrate::keyspace(&info).into_keys().collect(),
    };
    let available: u32 = target
        .config_get("databases")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    if let Some(db) = dbs.iter().find(|d| **d >= available) {
        return Err(ServerError::conflict(
            format!("the source has keys in database {db}, and {id} has databases 0 to {}; nothing was copied", available - 1),
            "raise `databases` on the target (a conf.d file) or import that database into another with a URL naming it",
        ));
    }
    if let Some(n) = source.databases().await {
        tracing::debug!(redis = %id, databases = n, "source databases");
    }
    let mut out = BTreeMap::new();
    let began = Instant::now();
    for db in dbs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut last = Instant::now();
        let mut progress = move |n: u64| {
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                tracing::info!(db, copied = n, "import copy progress");
            }
        };
        let copied = tokio::time::timeout(
            remaining,
            migrate::copy_db(
                url,
                migrate::Target {
                    host: master_ip,
                    port: REDIS_PORT,
                    access: pw.access(),
                },
                db,
                COPY_BATCH,
                COPY_TIMEOUT,
                &mut progress,
            ),
        )
        .await;
        let done = |db: u32, out: &BTreeMap<u32, migrate::DbCopy>| {
            let n: u64 = out.values().map(|c: &migrate::DbCopy| c.copied).sum();
            format!("{n} keys of the databases before db {db} were copied; keys copied so far stay on the target")
        };
        match copied {
            Ok(Ok(c)) => {
                out.insert(db, c);
            }
            Ok(Err(e)) => {
                return Err(ServerError::conflict(
                    format!(
                        "copying from {} failed: {e}; {}",
                        url.addr(),
                        done(db, &out)
                    ),
                    "fix the cause and run the import again with --force (keys are replaced)",
                ))
            }
            Err(_) => {
                return Err(ServerError::conflict(
                    format!(
                        "the copy did not finish within its timeout ({} s); {}",
                        began.elapsed().as_secs(),
                        done(db, &out)
                    ),
                    "raise --timeout and run the import again with --force",
                ))
            }
        }
    }
    Ok(out)
}

// ----- the target's replicas

/// Points every other running pod at the master (if it follows something else) and waits
/// until each is linked, done syncing and at the master's offset; says which are not.
async fn settle_replicas(
    ctl: &Arc<Controller>,
    id: &ResourceRef,
    master: u32,
    pw: &Auth,
    target: &mut Node,
    deadline: Instant,
) -> Vec<ReplicaState> {
    let ips = pod_ips(ctl, id);
    let host = vd_core::naming::pod_hostnames(id, master)[1].clone();
    let until = deadline.max(Instant::now() + REPLICAS_MIN);
    let mut nodes: BTreeMap<u32, Result<Node, vd_redisctl::RedisError>> = BTreeMap::new();
    for (o, ip) in ips.iter().filter(|(o, _)| **o != master) {
        let n = Node::connect_with(ip, REDIS_PORT, pw.access(), CONNECT_TIMEOUT).await;
        nodes.insert(*o, n);
    }
    let mut repointed = BTreeSet::new();
    loop {
        let goal = target
            .replication()
            .await
            .map(|r| r.master_repl_offset)
            .unwrap_or(i64::MAX);
        let mut states = Vec::new();
        for (o, n) in nodes.iter_mut() {
            let state = match n {
                Err(e) => ReplicaState {
                    ordinal: *o,
                    keys: 0,
                    in_sync: false,
                    problem: Some(format!("unreachable: {e}")),
                },
                Ok(n) => replica_state(id, *o, master, &ips, &host, n, goal, &mut repointed).await,
            };
            states.push(state);
        }
        if states.iter().all(|s| s.in_sync) || Instant::now() >= until {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn replica_state(
    id: &ResourceRef,
    ordinal: u32,
    master: u32,
    ips: &BTreeMap<u32, String>,
    host: &str,
    n: &mut Node,
    goal: i64,
    repointed: &mut BTreeSet<u32>,
) -> ReplicaState {
    let mut state = ReplicaState {
        ordinal,
        keys: 0,
        in_sync: false,
        problem: None,
    };
    let info = match n.info(None).await {
        Ok(i) => i,
        Err(e) => {
            state.problem = Some(e.to_string());
            return state;
        }
    };
    state.keys = total(&migrate::keyspace(&info));
    let r = info.replication();
    let follows = r
        .master_host
        .as_deref()
        .and_then(|h| crate::redis::facts::ordinal_of_host(id, h, ips));
    if r.role != Role::Replica || follows != Some(master) {
        if repointed.insert(ordinal) {
            if let Err(e) = n.replicaof(host, REDIS_PORT).await {
                state.problem = Some(format!("could not point it at the master: {e}"));
                return state;
            }
        }
        state.problem = Some("not following the master yet".into());
        return state;
    }
    let at = r.replica_repl_offset.unwrap_or(0);
    state.in_sync = r.link_up && !r.sync_in_progress && !r.loading && at >= goal;
    if !state.in_sync {
        state.problem = Some(if !r.link_up || r.sync_in_progress || r.loading {
            "syncing from the master".into()
        } else {
            format!("{} bytes behind the master", goal - at)
        });
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_choice() {
        let none = LiveBlockers::default();
        assert_eq!(choose_mode(None, &none), Ok((ImportMode::Live, None)));
        assert_eq!(
            choose_mode(Some(ImportMode::Live), &none),
            Ok((ImportMode::Live, None))
        );
        assert_eq!(
            choose_mode(Some(ImportMode::Copy), &none),
            Ok((ImportMode::Copy, None))
        );
        let refused = LiveBlockers {
            refused: Some(Refusal::SyncDisabled),
            ..LiveBlockers::default()
        };
        let (m, why) = choose_mode(None, &refused).unwrap();
        assert_eq!(m, ImportMode::Copy);
        assert!(why.unwrap().contains("SYNC/PSYNC"));
        assert!(choose_mode(Some(ImportMode::Live), &refused)
            .unwrap_err()
            .0
            .contains("SYNC/PSYNC"));
        assert_eq!(
            choose_mode(Some(ImportMode::Copy), &refused),
            Ok((ImportMode::Copy, None))
        );
        let db = LiveBlockers {
            db: Some(3),
            ..LiveBlockers::default()
        };
        assert!(choose_mode(None, &db)
            .unwrap()
            .1
            .unwrap()
            .contains("database 3"));
        let sentinel = LiveBlockers {
            sentinel: Some("data/cache-ha".into()),
            ..LiveBlockers::default()
        };
        assert!(choose_mode(Some(ImportMode::Live), &sentinel)
            .unwrap_err()
            .0
            .contains("data/cache-ha"));
        let docker = LiveBlockers {
            loopback_from_containers: true,
            ..LiveBlockers::default()
        };
        assert!(choose_mode(None, &docker)
            .unwrap()
            .1
            .unwrap()
            .contains("loopback"));
    }

    #[test]
    fn what_a_failed_live_import_left() {
        assert!(data_state(false, false, false).contains("unchanged"));
        assert!(data_state(true, false, false).contains("previous data"));
        assert!(data_state(true, true, false).contains("or none"));
        assert!(data_state(true, true, true).contains("source's data as of"));
    }

    #[test]
    fn request_debug_hides_the_password() {
        let r = ImportRequest {
            from: "redis://u:hunter2@h:1".into(),
            ..ImportRequest::default()
        };
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("u:***@h:1"),
            "{shown}"
        );
    }
}
