//! `vd redis:backup` and `vd redis:backups`. The server streams and writes the snapshot; a
//! relative `--destination` is resolved here, against the CLI's current directory.

use super::redis::split;
use super::Ctx;
use crate::args::Output;
use crate::error::CliError;
use crate::render::{self, table};
use std::path::Path;
use vd_server::redis::backup::{BackupList, BackupReport, BackupRequest};

/// `--destination` as the server needs it: absolute, relative ones taken from the current
/// directory; `s3://` URLs as written.
fn absolute(destination: Option<&Path>) -> Result<Option<String>, CliError> {
    destination
        .map(|d| {
            if let Some(url) = d.to_str().filter(|s| s.starts_with("s3://")) {
                return Ok(url.to_string());
            }
            std::path::absolute(d)
                .map(|p| p.display().to_string())
                .map_err(|e| CliError::io(format!("resolve --destination {}", d.display()), e))
        })
        .transpose()
}

/// `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `350 ms`, `2.4 s`.
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `vd redis:backup`.
pub async fn backup(
    ctx: &Ctx,
    reference: &str,
    destination: Option<&Path>,
    source: Option<u32>,
) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let req = BackupRequest {
        destination: absolute(destination)?,
        source,
    };
    let r: BackupReport = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/backup"), &req)
        .await?;
    if ctx.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    outln!(
        "redis {s}/{n}: backed up from {} ({}) to {}",
        r.source_pod,
        r.source_role,
        r.path
    );
    let check = if r.checksum == "disabled" {
        "CRC64 not checked: the source runs with `rdbchecksum no`, so only the RDB's framing was verified".to_string()
    } else {
        format!("RDB version {}, {} verified", r.rdb_version, r.checksum)
    };
    let size = match human_bytes(r.bytes) {
        h if h.ends_with(" B") => h,
        h => format!("{h} ({} bytes)", r.bytes),
    };
    outln!("{size} in {}; {check}", human_ms(r.duration_ms));
    Ok(())
}

/// `vd redis:backups`.
pub async fn list(ctx: &Ctx, reference: &str, destination: Option<&Path>) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let mut path = format!("/v1/redis/{s}/{n}/backups");
    if let Some(d) = absolute(destination)? {
        path = format!("{path}?destination={}", encode(&d));
    }
    let l: BackupList = ctx.client.get(&path).await?;
    if ctx.output == Output::Table && l.backups.is_empty() {
        outln!("no backups of redis {s}/{n} in {}", l.directory);
        return Ok(());
    }
    render::print(ctx.output, &l, || {
        let mut t = table(&["FILE", "SIZE", "TAKEN (UTC)", "BY"]);
        for b in &l.backups {
            t.add_row(vec![
                b.file.clone(),
                human_bytes(b.bytes),
                b.taken_at.replace('T', " ").replace('Z', ""),
                if b.scheduled { "schedule" } else { "hand" }.to_string(),
            ]);
        }
        t
    });
    if ctx.output == Output::Table {
        outln!("in {}", l.directory);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_query_values() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_ms(350), "350 ms");
        assert_eq!(human_ms(2400), "2.4 s");
        assert_eq!(encode("/a b/ü&x=1"), "%2Fa%20b%2F%C3%BC%26x%3D1");
        assert_eq!(
            absolute(Some(Path::new("s3://bkt/a/b")))
                .unwrap()
                .as_deref(),
            Some("s3://bkt/a/b")
        );
        assert!(absolute(Some(Path::new("rel")))
            .unwrap()
            .is_some_and(|p| p.starts_with('/')));
    }
}
