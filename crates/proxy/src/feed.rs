//! The controller's push feed: a small JSON file the controller rewrites (temporary file and
//! rename) the moment it knows of a new master or starts a planned failover, in a directory
//! bind-mounted into every proxy pod. Each proxy answers a hold with a `held.<id>` file once it
//! has no command in flight, so the controller knows it may promote.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The feed file's name inside the feed directory.
pub const FILE: &str = "feed.json";

/// What the controller tells its proxies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Feed {
    /// Increases with every change the controller publishes.
    pub epoch: u64,
    /// `host:port` of the master, as the proxy's upstreams are named.
    pub master: Option<String>,
    /// A planned failover is about to start: send nothing new until the next feed.
    #[serde(default)]
    pub hold: bool,
}

/// Why the feed could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FeedError + 'a {
    move |source| FeedError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the feed; `None` when it is missing or unreadable (a proxy then relies on ROLE).
pub fn read(path: &Path) -> Option<Feed> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Replaces the feed atomically, so a proxy never reads half of it.
pub fn write(dir: &Path, feed: &Feed) -> Result<(), FeedError> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let text = serde_json::to_vec(feed).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))
}

/// Where proxy `id` acknowledges a hold.
pub fn held_path(feed_path: &Path, id: &str) -> PathBuf {
    let dir = feed_path.parent().unwrap_or_else(|| Path::new("."));
    dir.join(format!("held.{id}"))
}

/// Records that proxy `id` holds every command for `epoch`.
pub fn write_held(feed_path: &Path, id: &str, epoch: u64) -> Result<(), FeedError> {
    let path = held_path(feed_path, id);
    std::fs::write(&path, epoch.to_string()).map_err(io("write", &path))
}

/// The epoch proxy `id` last acknowledged a hold for.
pub fn read_held(dir: &Path, id: &str) -> Option<u64> {
    let text = std::fs::read_to_string(held_path(&dir.join(FILE), id)).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_acknowledges() {
        let dir = tempfile::tempdir().unwrap();
        let f = Feed {
            epoch: 3,
            master: Some("cache-1.data.voodu:6379".into()),
            hold: true,
        };
        write(dir.path(), &f).unwrap();
        assert_eq!(read(&dir.path().join(FILE)), Some(f));
        write_held(&dir.path().join(FILE), "data-cache-proxy.0", 3).unwrap();
        assert_eq!(read_held(dir.path(), "data-cache-proxy.0"), Some(3));
        assert_eq!(read_held(dir.path(), "other"), None);
        assert_eq!(read(&dir.path().join("missing.json")), None);
    }
}
