//! Materializing asset files under the root so pods can bind them.

use crate::error::ServerError;
use crate::orchestration::resolve::asset_path;
use std::io::Write;
use std::path::Path;
use vd_core::{AssetSpec, ResourceRef};

/// Writes every file of an asset whose content differs from what is on disk. Each file is
/// replaced by rename, so running pods keep the content they were started with until rolled.
pub fn materialize(
    assets_dir: &Path,
    id: &ResourceRef,
    asset: &AssetSpec,
) -> Result<(), ServerError> {
    for (key, content) in &asset.files {
        let path = asset_path(assets_dir, &id.scope, &id.name, key);
        if std::fs::read(&path).ok().as_deref() == Some(content.as_bytes()) {
            continue;
        }
        let dir = path.parent().unwrap_or(assets_dir);
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerError::io(format!("create {}", dir.display()), e))?;
        let tmp = path.with_extension("vd-tmp");
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| ServerError::io(format!("write {}", tmp.display()), e))?;
        f.write_all(content.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| ServerError::io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| ServerError::io(format!("write {}", path.display()), e))?;
    }
    Ok(())
}

/// Removes an asset's files.
pub fn remove(assets_dir: &Path, id: &ResourceRef) {
    crate::tidy::remove_dir(
        assets_dir.join(&id.scope).join(&id.name),
        "a deleted asset's files",
    );
}
