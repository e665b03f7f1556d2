//! Backup files: their names (`<scope>-<name>-<YYYYMMDDTHHMMSSZ>.rdb`, which sort by time and
//! parse back to the second) and how a listing shows them. Pure, shared by local and S3
//! destinations.

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
