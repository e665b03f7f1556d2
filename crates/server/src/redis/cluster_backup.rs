//! Backups and restores of a Redis Cluster: one verified RDB per shard (streamed from a
//! replica where one is up) and an index saying which slots each file holds; a restore puts
//! each shard's file back on its master, shard by shard, and refuses a backup whose shards do
//! not match the cluster's.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::backup::{write_atomically, BackupReport, BackupRequest};
use crate::redis::backup_names::{classify, index_name, iso, shard_file_name, Origin, Part};
use crate::redis::facts::{self as r, Auth};
use crate::redis::ops::Ops;
use crate::redis::restore::{RestoreReport, RestoreRequest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vd_core::event::{Level, Reason};
use vd_core::redis::cluster::{shards, Peer};
use vd_core::ResourceRef;
use vd_redisctl::rdb::{self, Checksum};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The index of a cluster backup, `<scope>-<name>-<stamp>.cluster.json`, next to its shard
/// files. Written last: an index is only there for a backup whose every file is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIndex {
    /// `scope/name`.
    pub redis: String,
    /// When it was taken, UTC.
    pub taken_at: String,
    /// One entry per shard, numbered by its lowest slot.
    pub shards: Vec<ShardFile>,
}

/// One shard of a cluster backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// The shard's number.
    pub index: u32,
    /// The slots it served, inclusive ranges.
    pub slots: Vec<(u16, u16)>,
    /// The RDB's file name, in the index's directory.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// `crc64 <hex>`, `disabled` or `absent`.
    pub checksum: String,
    /// The pod it was streamed from.
    pub source_pod: String,
}

fn checksum_text(c: Checksum) -> String {
    match c {
        Checksum::Matched(c) => format!("crc64 {c:016x}"),
        Checksum::Disabled => "disabled".into(),
        Checksum::Absent => "absent".into(),
    }
}

/// The pod to stream a shard from: a connected replica that is one of ours, else its master.
fn source_of(
    s: &vd_core::redis::cluster::Shard<'_>,
    ordinal: impl Fn(&Peer) -> Option<u32>,
) -> Option<u32> {
    s.replicas
        .iter()
        .filter(|p| p.connected && !p.failed && !p.suspected)
        .filter_map(|p| ordinal(p))
        .max()
        .or_else(|| ordinal(s.master))
}

/// `vd redis:backup` of a cluster, or a scheduled run of it (which says so in its event).
pub async fn backup(
    ctl: &Controller,
    id: &ResourceRef,
    req: &BackupRequest,
    scheduled: bool,
) -> Result<BackupReport, ServerError> {
    let started = Instant::now();
    let target = crate::redis::backup::target(ctl, id, req.destination.as_deref())?;
    let dir = target.dir().to_path_buf();
    if req.source.is_some() {
        return Err(ServerError::Conflict {
            message: "--source names one pod; a cluster backup takes one from every shard".into(),
            help: Some("leave --source out: each shard's file comes from its replica".into()),
        });
    }
    let _running = crate::redis::exclusive::claim(id, crate::redis::exclusive::Operation::Backup)?;
    let pw = r::auth(ctl, id)?;
    let (_, _, peers) = crate::redis::cluster::any_node(ctl, id, &pw).await?;
    let ids = crate::redis::cluster::layout(ctl, id);
    let ordinal = |p: &Peer| ids.get(&p.id).copied();
    let ips = r::pod_ips(ctl, id);
    let all = shards(&peers);
    let served: u32 = all.iter().map(|s| s.master.slot_count()).sum();
    if served < u32::from(vd_core::redis::cluster::SLOTS) {
        return Err(ServerError::Conflict {
            message: format!(
                "{id} serves {served} of 16384 slots; a backup of part of its keys would restore as all of them"
            ),
            help: Some("wait until `vd get redis` shows 16384/16384 slots, then retry".into()),
        });
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(|e| ServerError::Conflict {
        message: format!("cannot create the destination {}: {e}", dir.display()),
        help: Some("pick a directory the vd server can write with --destination".into()),
    })?;
    let taken = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let origin = if scheduled {
        Origin::Schedule
    } else {
        Origin::Hand
    };
    let index_file = index_name(id, taken, origin);
    if dir.join(&index_file).exists() {
        return Err(ServerError::Conflict {
            message: format!("{} already exists", dir.join(&index_file).display()),
            help: Some("backups are named to the second: retry in a second".into()),
        });
    }
    let mut files = Vec::new();
    // Shard files go when the backup fails (alone they are no backup), and always from an S3
    // staging directory; a local backup's stay once its index is written.
    let mut written_files = Written {
        dir: dir.clone(),
        files: Vec::new(),
    };
    for (i, s) in all.iter().enumerate() {
        let source = source_of(s, ordinal).ok_or_else(|| ServerError::Conflict {
            message: format!("shard {i} of {id} has no pod of its own to stream from"),
            help: Some("see `vd redis:info`".into()),
        })?;
        let ip = ips
            .get(&source)
            .cloned()
            .ok_or_else(|| ServerError::Unavailable {
                message: format!("{}-{source} is not running", id.name),
                help: Some("see `vd get pods`".into()),
            })?;
        let pod = vd_core::naming::pod_name(id, source);
        if let Some(m) = ordinal(s.master).filter(|m| *m != source) {
            let master_ip = ips.get(&m).ok_or_else(|| ServerError::Unavailable {
                message: format!(
                    "shard {i}'s master {}-{m} is not running; no index was written",
                    id.name
                ),
                help: Some("retry once the shard's pods are up (`vd redis:info`)".into()),
            })?;
            crate::redis::backup::replica_caught_up(id, &pod, &ip, (m, master_ip), &pw).await?;
        }
        let file = shard_file_name(id, taken, origin, i);
        let pw2 = pw.clone();
        let written = write_atomically(&dir, &file, |mut w| async move {
            let got = rdb::fetch(
                &ip,
                vd_core::redis::REDIS_PORT,
                pw2.access(),
                &mut w,
                CONNECT_TIMEOUT,
                IDLE_TIMEOUT,
            )
            .await;
            (w, got)
        })
        .await
        .map_err(|e| ServerError::Conflict {
            message: format!("cannot write {file} in {}: {e}", dir.display()),
            help: Some("check the destination's space and permissions".into()),
        })?;
        written_files.files.push(file.clone());
        let payload = written.map_err(|e| ServerError::Conflict {
            message: format!(
                "backup of shard {i} of {id} from {pod} failed: {e}; no index was written"
            ),
            help: Some("retry once the shard's pods are up (`vd redis:info`)".into()),
        })?;
        files.push(ShardFile {
            index: i as u32,
            slots: s.master.slots.clone(),
            file,
            bytes: payload.verified.bytes,
            checksum: checksum_text(payload.verified.checksum),
            source_pod: pod,
        });
    }
    let index = ClusterIndex {
        redis: format!("{}/{}", id.scope, id.name),
        taken_at: iso(taken),
        shards: files,
    };
    let text = serde_json::to_vec_pretty(&index).map_err(|e| ServerError::Conflict {
        message: format!("cannot encode the index: {e}"),
        help: None,
    })?;
    write_index(&dir, &index_file, &text).map_err(|e| ServerError::Conflict {
        message: format!(
            "cannot write the index {index_file} in {}: {e}",
            dir.display()
        ),
        help: Some("check the destination's space and permissions".into()),
    })?;
    written_files.files.push(index_file.clone());
    let path = match &target {
        crate::redis::backup::Target::Local(_) => {
            written_files.files.clear();
            dir.join(&index_file).display().to_string()
        }
        #[cfg(feature = "s3")]
        crate::redis::backup::Target::S3 { store, .. } => {
            // The index last, as on disk: an index in the bucket means every file is there.
            for f in &written_files.files {
                store.upload(&dir.join(f), f).await?;
            }
            store.object_url(&index_file)
        }
    };
    let bytes: u64 = index.shards.iter().map(|s| s.bytes).sum();
    let duration_ms = started.elapsed().as_millis() as u64;
    let sources: Vec<String> = index.shards.iter().map(|s| s.source_pod.clone()).collect();
    ctl.event(
        Level::Info,
        Some(id),
        None,
        Reason::BackedUp,
        &format!(
            "{}{path}: {} shards, {bytes} bytes, from {} in {duration_ms} ms",
            if scheduled { "scheduled: " } else { "" },
            index.shards.len(),
            sources.join(", ")
        ),
    );
    Ok(BackupReport {
        redis: index.redis.clone(),
        file: index_file,
        path,
        bytes,
        duration_ms,
        source: 0,
        source_pod: sources.join(","),
        source_role: "shards".into(),
        taken_at: index.taken_at.clone(),
        rdb_version: 0,
        checksum: index
            .shards
            .iter()
            .map(|s| s.checksum.clone())
            .collect::<Vec<_>>()
            .join(","),
        diskless: true,
    })
}

/// Files of a backup being taken, removed on drop (a failed backup, an S3 staging
/// directory) unless the list was emptied.
struct Written {
    dir: PathBuf,
    files: Vec<String>,
}

impl Drop for Written {
    fn drop(&mut self) {
        for f in &self.files {
            if let Err(e) = std::fs::remove_file(self.dir.join(f)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %f, error = %e, "could not remove a cluster backup's file");
                }
            }
        }
    }
}

/// Writes the index durably under its final name: a temporary file, synced, renamed, and the
/// directory synced, so a crash leaves either no index or the whole one.
fn write_index(dir: &Path, name: &str, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads and checks a cluster backup's index: each file it names must be a shard file of
/// `id`'s (a plain name in the index's directory, never a path elsewhere).
fn read_index(id: &ResourceRef, path: &Path) -> Result<ClusterIndex, ServerError> {
    let text = std::fs::read(path).map_err(|e| ServerError::Conflict {
        message: format!("cannot read {}: {e}; nothing was changed", path.display()),
        help: Some("pass the backup's .cluster.json index with --from".into()),
    })?;
    let index: ClusterIndex = serde_json::from_slice(&text).map_err(|e| ServerError::Conflict {
        message: format!(
            "{} is not a cluster backup index ({e}); nothing was changed",
            path.display()
        ),
        help: Some("pass the .cluster.json file `vd redis:backup` wrote".into()),
    })?;
    for f in &index.shards {
        if !classify(id, &f.file).is_some_and(|k| matches!(k.part, Part::ClusterShard(_))) {
            return Err(ServerError::Conflict {
                message: format!(
                    "{} names {:?}, which is not a shard file of {id}; nothing was changed",
                    path.display(),
                    f.file
                ),
                help: Some(
                    "restore a redis from its own backups (`vd redis:backups` lists them)".into(),
                ),
            });
        }
    }
    Ok(index)
}

/// Downloads a cluster backup from S3 (`url` names its index) into a private directory under
/// the root, removed when the returned guard drops: the index first, then the files it names.
async fn stage_from_s3(
    ctl: &Controller,
    id: &ResourceRef,
    url: &str,
) -> Result<(crate::redis::restore::Temp, PathBuf), ServerError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = ctl
        .root
        .join("tmp")
        .join(format!("restore-{}-{}-{nanos}", id.scope, id.name));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| ServerError::io(format!("create {}", dir.display()), e))?;
    let guard = crate::redis::restore::Temp::new(dir.clone());
    let (base, name) = url.rsplit_once('/').unwrap_or(("", url));
    let index_path = dir.join(name);
    let nothing_changed = |e: ServerError| match e {
        ServerError::Conflict { message, help } => ServerError::Conflict {
            message: format!("{message}; nothing was changed"),
            help,
        },
        e => e,
    };
    crate::redis::objstore::fetch_to(ctl, id, url, &index_path)
        .await
        .map_err(nothing_changed)?;
    for f in read_index(id, &index_path)?.shards {
        crate::redis::objstore::fetch_to(
            ctl,
            id,
            &format!("{base}/{}", f.file),
            &dir.join(&f.file),
        )
        .await
        .map_err(nothing_changed)?;
    }
    Ok((guard, index_path))
}

/// `vd redis:restore` of a cluster: `--from` is the backup's `.cluster.json` index. Refused,
/// changing nothing, when its shards differ from the cluster's (their count, or the slots
/// each holds: a shard's file holds only its own slots' keys).
pub async fn restore(
    ops: &Ops,
    id: &ResourceRef,
    req: &RestoreRequest,
) -> Result<RestoreReport, ServerError> {
    let ctl = &ops.ctl;
    let begun = Instant::now();
    if !req.from.ends_with(".cluster.json") {
        return Err(ServerError::Conflict {
            message: format!("{id} is a cluster: restore it from a cluster backup's index, not {}", req.from),
            help: Some("pass --from <dir>/<scope>-<name>-<stamp>.cluster.json (`vd redis:backups` lists them)".into()),
        });
    }
    let (_staged, from) = if vd_core::redis::backup::Destination::is_s3(&req.from) {
        let (guard, path) = stage_from_s3(ctl, id, &req.from).await?;
        (Some(guard), path)
    } else {
        (None, PathBuf::from(&req.from))
    };
    let index = read_index(id, &from)?;
    let dir = from.parent().map(Path::to_path_buf).unwrap_or_default();
    let pw = r::auth(ctl, id)?;
    let (_, _, peers) = crate::redis::cluster::any_node(ctl, id, &pw).await?;
    let now = shards(&peers);
    if now.len() != index.shards.len() {
        return Err(ServerError::Conflict {
            message: format!(
                "the backup holds {} shards and {id} has {}; nothing was changed",
                index.shards.len(),
                now.len()
            ),
            help: Some(format!(
                "each shard's file holds only the keys of its slots: set `shards = {}` and apply, wait for the slots to settle (`vd redis:info`), then restore",
                index.shards.len()
            )),
        });
    }
    for (s, f) in now.iter().zip(&index.shards) {
        if s.master.slots != f.slots {
            return Err(ServerError::Conflict {
                message: format!(
                    "shard {} of {id} serves other slots than it did in the backup; nothing was changed",
                    f.index
                ),
                help: Some("slots moved since the backup (a reshape); restore into a cluster with the backup's slot layout".into()),
            });
        }
    }
    // Every file, before anything stops.
    let mut verified = Vec::new();
    for f in &index.shards {
        let path = dir.join(&f.file);
        verified.push((
            path.clone(),
            crate::redis::restore::verify_file(&path, &path.display().to_string()).await?,
        ));
    }
    let _running = crate::redis::exclusive::claim(id, crate::redis::exclusive::Operation::Restore)?;
    let _paused = ops.failover.pause(id);
    let ids = crate::redis::cluster::layout(ctl, id);
    let ips = r::pod_ips(ctl, id);
    let mut report = RestoreReport {
        redis: format!("{}/{}", id.scope, id.name),
        from: req.from.clone(),
        bytes: 0,
        rdb_version: 0,
        checksum: String::new(),
        master: 0,
        master_pod: String::new(),
        keys: 0,
        duration_ms: 0,
        downtime_ms: 0,
        aof_rebuilt: false,
        sentinel: None,
        replicas: Vec::new(),
    };
    let mut masters = Vec::new();
    let mut restored = Vec::new();
    for (s, (path, v)) in now.iter().zip(&verified) {
        let m = ids
            .get(&s.master.id)
            .copied()
            .ok_or_else(|| ServerError::Conflict {
                message: format!("a shard master of {id} is not one of its pods"),
                help: None,
            })?;
        let replicas: Vec<u32> = s
            .replicas
            .iter()
            .filter_map(|p| ids.get(&p.id).copied())
            .collect();
        // The nodes must not elect a replica while their master is down for the restore.
        set_no_failover(&ips, &replicas, &pw, true).await;
        let done = crate::redis::restore::restore_node(
            ctl,
            &ops.failover,
            id,
            m,
            &replicas,
            &pw,
            path,
            v,
            req.force,
        )
        .await;
        set_no_failover(&ips, &replicas, &pw, false).await;
        let done = done?;
        report.bytes += v.bytes;
        report.keys += done.keys;
        report.downtime_ms = report.downtime_ms.max(done.downtime_ms);
        report.aof_rebuilt |= done.aof_rebuilt;
        report.replicas.extend(done.replicas);
        masters.push(vd_core::naming::pod_name(id, m));
        restored.push(m);
    }
    // A restarted master refuses commands (CLUSTERDOWN) until it sees the cluster whole
    // again; the restore is done when clients can use it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for o in &restored {
        let Some(ip) = r::pod_ips(ctl, id).get(o).cloned() else {
            continue;
        };
        loop {
            let ok = async {
                let mut n = r::connect(&ip, &pw).await?;
                let info = n.cluster_info().await.map_err(r::redis_err)?;
                Ok::<_, ServerError>(info.get("cluster_state") == Some("ok"))
            };
            if matches!(ok.await, Ok(true)) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    report.master_pod = masters.join(",");
    report.duration_ms = begun.elapsed().as_millis() as u64;
    ctl.event(
        Level::Info,
        Some(id),
        None,
        Reason::Restored,
        &format!(
            "{}: {} shards, {} keys, each master down at most {} ms",
            req.from,
            index.shards.len(),
            report.keys,
            report.downtime_ms
        ),
    );
    Ok(report)
}

async fn set_no_failover(
    ips: &std::collections::BTreeMap<u32, String>,
    replicas: &[u32],
    pw: &Auth,
    on: bool,
) {
    for o in replicas {
        let Some(ip) = ips.get(o) else { continue };
        let set = async {
            let mut n = r::connect(ip, pw).await?;
            n.config_set("cluster-replica-no-failover", if on { "yes" } else { "no" })
                .await
                .map_err(r::redis_err)
        };
        if let Err(e) = set.await {
            tracing::warn!(ordinal = o, error = %e, "cluster-replica-no-failover");
        }
    }
}
