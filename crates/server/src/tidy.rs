//! Best-effort cleanup that never hides a failure: removing a leftover file or directory is
//! done when it can be, and a failure other than "already gone" is logged with what it was
//! for, so a full disk or a permission problem shows up in the server's log.

use std::io::ErrorKind;
use std::path::Path;

/// Removes a file; a missing one is fine, any other failure is logged with `what`.
pub fn remove_file(path: impl AsRef<Path>, what: &str) {
    let path = path.as_ref();
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove {what}");
        }
    }
}

/// Removes a directory tree; a missing one is fine, any other failure is logged with `what`.
pub fn remove_dir(path: impl AsRef<Path>, what: &str) {
    let path = path.as_ref();
    if let Err(e) = std::fs::remove_dir_all(path) {
        if e.kind() != ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove {what}");
        }
    }
}

/// Logs a failed step the caller carries on from (it is retried, or only costs tidiness).
pub fn log_failure<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_are_fine_and_present_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        remove_file(&f, "a test file");
        assert!(!f.exists());
        remove_file(&f, "a test file");
        let d = dir.path().join("d/e");
        std::fs::create_dir_all(&d).unwrap();
        remove_dir(dir.path().join("d"), "a test dir");
        assert!(!d.exists());
        remove_dir(dir.path().join("d"), "a test dir");
    }
}
