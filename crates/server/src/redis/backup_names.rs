//! Backup files: their names (`<scope>-<name>-<YYYYMMDDTHHMMSSZ>.rdb`, which sort by time and
//! parse back to the second; a cluster backup is an index `….cluster.json` and one
//! `….shard-N.rdb` per shard), how a listing shows them and which a pruning run removes. Pure,
//! shared by local and S3 destinations.

use serde::{Deserialize, Serialize};
use vd_core::ResourceRef;

pub use crate::orchestration::time::{iso, parse_stamp, stamp};

/// `<scope>-<name>-<stamp>.rdb`.
pub fn file_name(id: &ResourceRef, secs: i64) -> String {
    format!("{}-{}-{}.rdb", id.scope, id.name, stamp(secs))
}

/// When a backup of `id` named `file` was taken; `None` when the name is not one of `id`'s
/// (another redis's whose name shares a prefix, such as `cache-2`, a temporary file, ...).
pub fn parse_file_name(id: &ResourceRef, file: &str) -> Option<i64> {
    let rest = file.strip_prefix(&format!("{}-{}-", id.scope, id.name))?;
    parse_stamp(rest.strip_suffix(".rdb")?)
}

/// `<scope>-<name>-<stamp>.cluster.json`: a cluster backup's index.
pub fn index_name(id: &ResourceRef, secs: i64) -> String {
    format!("{}-{}-{}.cluster.json", id.scope, id.name, stamp(secs))
}

/// `<scope>-<name>-<stamp>.shard-<n>.rdb`: shard `n`'s file of a cluster backup.
pub fn shard_file_name(id: &ResourceRef, secs: i64, shard: usize) -> String {
    format!("{}-{}-{}.shard-{shard}.rdb", id.scope, id.name, stamp(secs))
}

/// What a file at a destination is to one redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupFile {
    /// A whole backup, one RDB.
    Rdb(i64),
    /// A cluster backup's index: the backup as listed, restored and pruned.
    ClusterIndex(i64),
    /// One shard's RDB of the cluster backup taken then; alone it is no backup.
    ClusterShard(i64, u32),
}

impl BackupFile {
    /// When the backup it belongs to was taken.
    pub fn taken(self) -> i64 {
        match self {
            BackupFile::Rdb(t) | BackupFile::ClusterIndex(t) | BackupFile::ClusterShard(t, _) => t,
        }
    }

    /// Whether it is a backup on its own (listed, counted by `keep`).
    pub fn is_backup(self) -> bool {
        !matches!(self, BackupFile::ClusterShard(..))
    }
}

/// What `file` is to `id`; `None` for anything else (another redis's files, temporaries).
pub fn classify(id: &ResourceRef, file: &str) -> Option<BackupFile> {
    let rest = file.strip_prefix(&format!("{}-{}-", id.scope, id.name))?;
    if let Some(t) = rest.strip_suffix(".rdb").and_then(parse_stamp) {
        return Some(BackupFile::Rdb(t));
    }
    if let Some(t) = rest.strip_suffix(".cluster.json").and_then(parse_stamp) {
        return Some(BackupFile::ClusterIndex(t));
    }
    let (stamp_part, shard) = rest.strip_suffix(".rdb")?.split_once(".shard-")?;
    // Digits only: `u32::from_str` would also take a leading `+`.
    if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(BackupFile::ClusterShard(
        parse_stamp(stamp_part)?,
        shard.parse().ok()?,
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

/// Of the files at a destination, what keeping `id`'s newest `keep` backups removes: the older
/// backups with their shard files, and the shard files of runs that never wrote their index
/// (a failed or killed cluster backup) when a newer backup exists. Shard files newer than
/// every backup are left alone: they may be a backup still being written.
pub fn to_remove(id: &ResourceRef, files: &[String], keep: u32) -> Pruning {
    let classified: Vec<(BackupFile, &String)> = files
        .iter()
        .filter_map(|f| Some((classify(id, f)?, f)))
        .collect();
    let backups: Vec<(i64, String)> = classified
        .iter()
        .filter(|(k, _)| k.is_backup())
        .map(|(k, f)| (k.taken(), (*f).clone()))
        .collect();
    let doomed = vd_core::redis::backup::to_prune(&backups, keep);
    let newest = backups.iter().map(|(t, _)| *t).max();
    let indexes: std::collections::BTreeSet<i64> = classified
        .iter()
        .filter(|(k, _)| matches!(k, BackupFile::ClusterIndex(_)))
        .map(|(k, _)| k.taken())
        .collect();
    let mut out = Pruning::default();
    let shards_of = |t: i64, out: &mut Pruning| {
        let mut s: Vec<(u32, &String)> = classified
            .iter()
            .filter_map(|(k, f)| match k {
                BackupFile::ClusterShard(st, n) if *st == t => Some((*n, *f)),
                _ => None,
            })
            .collect();
        s.sort();
        out.files.extend(s.into_iter().map(|(_, f)| f.clone()));
    };
    for name in doomed {
        out.files.push(name.clone());
        if let Some(BackupFile::ClusterIndex(t)) = classify(id, &name) {
            shards_of(t, &mut out);
        }
        out.backups.push(name);
    }
    let orphans: std::collections::BTreeSet<i64> = classified
        .iter()
        .filter_map(|(k, _)| match k {
            BackupFile::ClusterShard(t, _)
                if !indexes.contains(t) && newest.is_some_and(|n| *t < n) =>
            {
                Some(*t)
            }
            _ => None,
        })
        .collect();
    for t in orphans {
        shards_of(t, &mut out);
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

    #[test]
    fn files_are_classified_by_name() {
        let id = shop();
        let t = 1_709_251_199;
        assert_eq!(classify(&id, &file_name(&id, t)), Some(BackupFile::Rdb(t)));
        assert_eq!(
            classify(&id, &index_name(&id, t)),
            Some(BackupFile::ClusterIndex(t))
        );
        assert_eq!(
            classify(&id, &shard_file_name(&id, t, 12)),
            Some(BackupFile::ClusterShard(t, 12))
        );
        for other in [
            "data-shop-2-20240229T235959Z.rdb",
            "data-shop-20240229T235959Z.shard-.rdb",
            "data-shop-20240229T235959Z.shard-+1.rdb",
            "data-shop-20240229T235959Z.shard-1.rdb.tmp",
            ".data-shop-20240229T235959Z.cluster.json.tmp",
            "data-shop-latest.rdb",
            "data-shop-20240230T000000Z.cluster.json",
            "notes.txt",
        ] {
            assert_eq!(classify(&id, other), None, "{other}");
        }
        // A redis whose name extends another's is not confused with it.
        let other = ResourceRef::new(Kind::Redis, "data", "shop-2");
        assert_eq!(classify(&id, &index_name(&other, t)), None);
    }

    #[test]
    fn pruning_removes_whole_cluster_backups_and_orphans() {
        let id = shop();
        let mut files = vec![
            file_name(&id, 100),
            index_name(&id, 200),
            shard_file_name(&id, 200, 1),
            shard_file_name(&id, 200, 0),
            // A run that died before its index, older than the newest backup.
            shard_file_name(&id, 250, 0),
            index_name(&id, 300),
            shard_file_name(&id, 300, 0),
            // A run still writing (newer than every backup).
            shard_file_name(&id, 400, 0),
            "notes.txt".into(),
            file_name(&ResourceRef::new(Kind::Redis, "data", "shop-2"), 1),
        ];
        files.reverse();
        let p = to_remove(&id, &files, 1);
        assert_eq!(p.backups, [file_name(&id, 100), index_name(&id, 200)]);
        assert_eq!(
            p.files,
            [
                file_name(&id, 100),
                index_name(&id, 200),
                shard_file_name(&id, 200, 0),
                shard_file_name(&id, 200, 1),
                shard_file_name(&id, 250, 0),
            ]
        );
        // Keeping everything still clears the orphan, never the run in progress.
        let p = to_remove(&id, &files, 5);
        assert!(p.backups.is_empty());
        assert_eq!(p.files, [shard_file_name(&id, 250, 0)]);
        // Nothing but shard files: no backup is newer, so none is an orphan yet.
        let p = to_remove(&id, &[shard_file_name(&id, 1, 0)], 1);
        assert_eq!(p, Pruning::default());
    }
}
