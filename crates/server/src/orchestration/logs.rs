//! Pod logs: files under the root, rotated by copy-truncate when they grow past 10 MiB.

use crate::orchestration::controller::Controller;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

impl Controller {
    /// Runs for the server's lifetime: every 30 s, rotates the log of every pod over 10 MiB.
    pub async fn rotate_logs_loop(self: Arc<Self>) {
        const MAX: u64 = 10 << 20;
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let pods: Vec<String> = self
                .pods
                .lock()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            for pod in pods {
                let path = self.runtime.log_path(&pod);
                if std::fs::metadata(&path)
                    .map(|m| m.len() > MAX)
                    .unwrap_or(false)
                {
                    rotate(&path);
                }
            }
        }
    }
}

/// Copy-truncate rotation keeping three old files: the pod holds its log open with O_APPEND,
/// so truncating in place is safe and the pod needs no signal.
fn rotate(path: &Path) {
    let old = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..3).rev() {
        if let Err(e) = std::fs::rename(old(n), old(n + 1)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %old(n).display(), error = %e, "could not rotate a log");
            }
        }
    }
    // Truncated only once copied: a failed copy keeps the log growing rather than losing it.
    match std::fs::copy(path, old(1)) {
        Ok(_) => crate::tidy::log_failure(
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(0)),
            "truncate a rotated log",
        ),
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not rotate a log"),
    }
}
