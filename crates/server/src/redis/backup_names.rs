//! Backup files: their names (`<scope>-<name>-<YYYYMMDDTHHMMSSZ>.rdb`, which sort by time and
//! parse back to the second; `….sched.rdb` for those a `backup {}` schedule took; a cluster
//! backup is an index `….cluster.json` and one `….shard-N.rdb` per shard), how a listing shows
//! them and which a pruning run removes (only the schedule's own). Pure, shared by local and
//! S3 destinations.

use serde::{Deserialize, Serialize};
use vd_core::ResourceRef;

pub use crate::orchestration::time::{iso, parse_stamp, stamp};

/// Who took a backup: its name says so, so pruning (which removes only the schedule's) needs
/// no record beside the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// `vd redis:backup`.
    Hand,
    /// A `backup {}` block's schedule.
    Schedule,
}

impl Origin {
    fn mark(self) -> &'static str {
        match self {
            Origin::Hand => "",
            Origin::Schedule => ".sched",
        }
    }
}

fn base(id: &ResourceRef, secs: i64, origin: Origin) -> String {
    format!("{}-{}-{}{}", id.scope, id.name, stamp(secs), origin.mark())
}

/// `<scope>-<name>-<stamp>[.sched].rdb`.
pub fn file_name(id: &ResourceRef, secs: i64, origin: Origin) -> String {
    format!("{}.rdb", base(id, secs, origin))
}

/// When a single-file backup of `id` named `file` was taken; `None` when the name is not one
/// of `id`'s (another redis's whose name shares a prefix, such as `cache-2`, a temporary
/// file, ...).
pub fn parse_file_name(id: &ResourceRef, file: &str) -> Option<i64> {
    classify(id, file)
        .filter(|f| f.part == Part::Rdb)
        .map(|f| f.taken)
}

/// `<scope>-<name>-<stamp>[.sched].cluster.json`: a cluster backup's index.
pub fn index_name(id: &ResourceRef, secs: i64, origin: Origin) -> String {
    format!("{}.cluster.json", base(id, secs, origin))
}

/// `<scope>-<name>-<stamp>[.sched].shard-<n>.rdb`: shard `n`'s file of a cluster backup.
pub fn shard_file_name(id: &ResourceRef, secs: i64, origin: Origin, shard: usize) -> String {
    format!("{}.shard-{shard}.rdb", base(id, secs, origin))
}

/// Which part of a backup a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A whole backup, one RDB.
    Rdb,
    /// A cluster backup's index: the backup as listed, restored and pruned.
    ClusterIndex,
    /// One shard's RDB of a cluster backup; alone it is no backup.
    ClusterShard(u32),
}

/// What a file at a destination is to one redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupFile {
    /// When the backup it belongs to was taken, unix seconds.
    pub taken: i64,
    /// Who took it.
    pub origin: Origin,
    /// Which part it is.
    pub part: Part,
}

impl BackupFile {
    /// When the backup it belongs to was taken.
    pub fn taken(self) -> i64 {
        self.taken
    }

    /// Whether it is a backup on its own (listed, counted by `keep`).
    pub fn is_backup(self) -> bool {
        !matches!(self.part, Part::ClusterShard(_))
    }

    /// The backup it belongs to: its time and origin (a shard file and its index share them).
    fn backup(self) -> (i64, Origin) {
        (self.taken, self.origin)
    }
}

/// `<stamp>[.sched]`.
fn stamp_and_origin(s: &str) -> Option<(i64, Origin)> {
    match s.strip_suffix(Origin::Schedule.mark()) {
        Some(st) => Some((parse_stamp(st)?, Origin::Schedule)),
        None => Some((parse_stamp(s)?, Origin::Hand)),
    }
}

/// What `file` is to `id`; `None` for anything else (another redis's files, temporaries).
pub fn classify(id: &ResourceRef, file: &str) -> Option<BackupFile> {
    let rest = file.strip_prefix(&format!("{}-{}-", id.scope, id.name))?;
    let file = |(taken, origin), part| BackupFile {
        taken,
        origin,
        part,
    };
    if let Some(so) = rest
        .strip_suffix(".cluster.json")
        .and_then(stamp_and_origin)
    {
        return Some(file(so, Part::ClusterIndex));
    }
    let rest = rest.strip_suffix(".rdb")?;
    if let Some(so) = stamp_and_origin(rest) {
        return Some(file(so, Part::Rdb));
    }
    let (stamp_part, shard) = rest.split_once(".shard-")?;
    // Digits only: `u32::from_str` would also take a leading `+`.
    if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(file(
        stamp_and_origin(stamp_part)?,
        Part::ClusterShard(shard.parse().ok()?),
    ))
}

/// What a pruning run removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruning {
    /// The backups removed (RDB files and cluster indexes), oldest first: what to report.
    pub backups: Vec<String>,
    /// Every file to delete, in order: a cluster backup's index before its shard files, so a
    /// run stopped halfway never leaves an index naming a missing file.
    pub files: Vec<String>,
}

/// Of the files at a destination, what keeping the newest `keep` of `id`'s scheduled backups
/// removes: the older ones with their shard files, and the shard files of runs that never wrote
/// their index (a failed or killed cluster backup) once a newer backup exists. Backups taken by
/// hand are never counted or removed; shard files newer than every backup are left alone (they
/// may be a backup still being written).
pub fn to_remove(id: &ResourceRef, files: &[String], keep: u32) -> Pruning {
    let classified: Vec<(BackupFile, &String)> = files
        .iter()
        .filter_map(|f| Some((classify(id, f)?, f)))
        .collect();
    let backups: Vec<(i64, String)> = classified
        .iter()
        .filter(|(k, _)| k.is_backup() && k.origin == Origin::Schedule)
        .map(|(k, f)| (k.taken, (*f).clone()))
        .collect();
    let doomed = vd_core::redis::backup::to_prune(&backups, keep);
    let newest = classified
        .iter()
        .filter(|(k, _)| k.is_backup())
        .map(|(k, _)| k.taken)
        .max();
    let indexes: std::collections::BTreeSet<(i64, Origin)> = classified
        .iter()
        .filter(|(k, _)| k.part == Part::ClusterIndex)
        .map(|(k, _)| k.backup())
        .collect();
    let mut out = Pruning::default();
    let shards_of = |b: (i64, Origin), out: &mut Pruning| {
        let mut s: Vec<(u32, &String)> = classified
            .iter()
            .filter_map(|(k, f)| match k.part {
                Part::ClusterShard(n) if k.backup() == b => Some((n, *f)),
                _ => None,
            })
            .collect();
        s.sort();
        out.files.extend(s.into_iter().map(|(_, f)| f.clone()));
    };
    for name in doomed {
        out.files.push(name.clone());
        if let Some(k) = classify(id, &name).filter(|k| k.part == Part::ClusterIndex) {
            shards_of(k.backup(), &mut out);
        }
        out.backups.push(name);
    }
    let orphans: std::collections::BTreeSet<(i64, Origin)> = classified
        .iter()
        .filter(|(k, _)| matches!(k.part, Part::ClusterShard(_)))
        .map(|(k, _)| k.backup())
        .filter(|b| !indexes.contains(b) && newest.is_some_and(|n| b.0 < n))
        .collect();
    for b in orphans {
        shards_of(b, &mut out);
    }
    out
}

/// One file of `vd redis:backups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    /// The file's name.
    pub file: String,
    /// Its absolute path, or `s3://bucket/key`.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// When it was taken, UTC, from its name.
    pub taken_at: String,
    /// Taken by a `backup {}` schedule (pruned to its `keep`), not by hand.
    #[serde(default)]
    pub scheduled: bool,
}

/// `GET /v1/redis/{scope}/{name}/backups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupList {
    /// The directory (or `s3://bucket/prefix`) listed.
    pub directory: String,
    /// Oldest first.
    pub backups: Vec<BackupEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::Kind;

    fn shop() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "data", "shop")
    }

    const H: Origin = Origin::Hand;
    const S: Origin = Origin::Schedule;

    #[test]
    fn files_are_classified_by_name() {
        let id = shop();
        let t = 1_709_251_199;
        let f = |origin, part| {
            Some(BackupFile {
                taken: t,
                origin,
                part,
            })
        };
        assert_eq!(file_name(&id, t, H), "data-shop-20240229T235959Z.rdb");
        assert_eq!(file_name(&id, t, S), "data-shop-20240229T235959Z.sched.rdb");
        for o in [H, S] {
            assert_eq!(classify(&id, &file_name(&id, t, o)), f(o, Part::Rdb));
            assert_eq!(
                classify(&id, &index_name(&id, t, o)),
                f(o, Part::ClusterIndex)
            );
            assert_eq!(
                classify(&id, &shard_file_name(&id, t, o, 12)),
                f(o, Part::ClusterShard(12))
            );
        }
        assert_eq!(parse_file_name(&id, &file_name(&id, t, S)), Some(t));
        assert_eq!(parse_file_name(&id, &index_name(&id, t, H)), None);
        for other in [
            "data-shop-2-20240229T235959Z.rdb",
            "data-shop-20240229T235959Z.shard-.rdb",
            "data-shop-20240229T235959Z.shard-+1.rdb",
            "data-shop-20240229T235959Z.shard-1.rdb.tmp",
            "data-shop-20240229T235959Z.sched.sched.rdb",
            "data-shop-20240229T235959Z.hand.rdb",
            ".data-shop-20240229T235959Z.cluster.json.tmp",
            "data-shop-latest.rdb",
            "data-shop-20240230T000000Z.cluster.json",
            "notes.txt",
        ] {
            assert_eq!(classify(&id, other), None, "{other}");
        }
        // A redis whose name extends another's is not confused with it.
        let other = ResourceRef::new(Kind::Redis, "data", "shop-2");
        assert_eq!(classify(&id, &index_name(&other, t, H)), None);
    }

    #[test]
    fn pruning_removes_whole_scheduled_backups_and_orphans() {
        let id = shop();
        let mut files = vec![
            file_name(&id, 100, S),
            // Taken by hand: never counted, never removed.
            file_name(&id, 150, H),
            index_name(&id, 160, H),
            shard_file_name(&id, 160, H, 0),
            index_name(&id, 200, S),
            shard_file_name(&id, 200, S, 1),
            shard_file_name(&id, 200, S, 0),
            // A run that died before its index, older than the newest backup.
            shard_file_name(&id, 250, S, 0),
            index_name(&id, 300, S),
            shard_file_name(&id, 300, S, 0),
            // A run still writing (newer than every backup).
            shard_file_name(&id, 400, S, 0),
            "notes.txt".into(),
            file_name(&ResourceRef::new(Kind::Redis, "data", "shop-2"), 1, S),
        ];
        files.reverse();
        let p = to_remove(&id, &files, 1);
        assert_eq!(p.backups, [file_name(&id, 100, S), index_name(&id, 200, S)]);
        assert_eq!(
            p.files,
            [
                file_name(&id, 100, S),
                index_name(&id, 200, S),
                shard_file_name(&id, 200, S, 0),
                shard_file_name(&id, 200, S, 1),
                shard_file_name(&id, 250, S, 0),
            ]
        );
        // Keeping everything still clears the orphan, never the run in progress.
        let p = to_remove(&id, &files, 5);
        assert!(p.backups.is_empty());
        assert_eq!(p.files, [shard_file_name(&id, 250, S, 0)]);
        // Nothing but shard files: no backup is newer, so none is an orphan yet.
        let p = to_remove(&id, &[shard_file_name(&id, 1, S, 0)], 1);
        assert_eq!(p, Pruning::default());
        // Only backups taken by hand: nothing to prune.
        let hand = [
            file_name(&id, 1, H),
            file_name(&id, 2, H),
            file_name(&id, 3, H),
        ];
        assert_eq!(to_remove(&id, &hand, 1), Pruning::default());
    }
}
