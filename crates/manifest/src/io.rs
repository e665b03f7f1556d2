//! The two functions that reach outside the manifest: `file()` and `url()`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Asset contents larger than this are refused: assets are config files, and an unbounded read
/// (`file("/dev/zero")`, a huge download) would hang or exhaust memory.
pub(crate) const MAX_ASSET_BYTES: u64 = 16 << 20;

/// Reads a regular file as UTF-8 text, at most `MAX_ASSET_BYTES`.
pub(crate) fn read_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{shown}` is not a regular file"));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let mut buf = Vec::new();
    file.take(MAX_ASSET_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if buf.len() as u64 > MAX_ASSET_BYTES {
        return Err(format!(
            "`{shown}` is larger than {} MiB",
            MAX_ASSET_BYTES >> 20
        ));
    }
    String::from_utf8(buf).map_err(|_| format!("`{shown}` is not UTF-8 text"))
}

/// Fetches an http(s) URL as UTF-8 text, at most `MAX_ASSET_BYTES`, within `timeout`.
pub(crate) fn fetch_url(url: &str, timeout: Duration) -> Result<String, String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build();
    let agent: ureq::Agent = config.into();
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("cannot fetch `{url}`: {e}"))?;
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_ASSET_BYTES)
        .read_to_vec()
        .map_err(|e| format!("cannot fetch `{url}`: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("`{url}` did not return UTF-8 text"))
}
