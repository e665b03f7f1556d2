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

/// The secrets file's name inside the feed directory.
pub const SECRETS_FILE: &str = "secrets.json";

/// The passwords the proxy itself uses (its `ROLE` checks, the sentinels), which the controller
/// rewrites on a rotation: a proxy that outlives a rotation reconnects with the new ones.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Secrets {
    /// The data pods' `REDIS_PASSWORD`.
    #[serde(default)]
    pub password: Option<String>,
    /// The sentinels' `REDIS_SENTINEL_PASSWORD`.
    #[serde(default)]
    pub sentinel_password: Option<String>,
}

// Hand-written so a password never reaches a log through `{:?}`.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// The secrets file beside the feed file.
pub fn secrets_path(feed_path: &Path) -> PathBuf {
    let dir = feed_path.parent().unwrap_or_else(|| Path::new("."));
    dir.join(SECRETS_FILE)
}

/// Reads the secrets; `None` when missing or unreadable (the proxy keeps its environment's).
pub fn read_secrets(path: &Path) -> Option<Secrets> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Replaces the secrets file atomically, mode 0600.
pub fn write_secrets(dir: &Path, secrets: &Secrets) -> Result<(), FeedError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let path = dir.join(SECRETS_FILE);
    let tmp = dir.join(format!(".{SECRETS_FILE}.tmp"));
    let text = serde_json::to_vec(secrets).unwrap_or_default();
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text))
        .map_err(io("write", &tmp))?;
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

    #[test]
    fn secrets_round_trip_privately_and_never_print() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets {
            password: Some("p@ss".into()),
            sentinel_password: None,
        };
        write_secrets(dir.path(), &s).unwrap();
        let path = secrets_path(&dir.path().join(FILE));
        assert_eq!(read_secrets(&path), Some(s.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{s:?}").contains("p@ss"));
        assert_eq!(read_secrets(&dir.path().join("none.json")), None);
    }
}
