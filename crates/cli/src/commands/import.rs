//! `vd redis:import`. The server does the work; the source URL (and its password) goes to it
//! over the 0600 socket and is never printed: the server answers with its redacted form.

use super::redis::split;
use super::Ctx;
use crate::args::Output;
use crate::error::CliError;
use crate::render::table;
use std::time::Duration;
use vd_server::redis::import::{ImportMode, ImportReport, ImportRequest};

/// `350 ms`, `2.4 s`.
fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The lines printed for a report (pure, for the table output).
fn summary(r: &ImportReport) -> Vec<String> {
    let how = match r.mode {
        ImportMode::Live => "live replication".to_string(),
        ImportMode::Copy => "key-by-key copy (SCAN + DUMP/RESTORE)".to_string(),
    };
    let mut out = vec![format!(
        "redis {}: imported {} keys from {} by {how} in {}{}",
        r.redis,
        r.keys,
        r.source,
        human_ms(r.duration_ms),
        r.sync_ms
            .map(|s| format!(" (sync {})", human_ms(s)))
            .unwrap_or_default()
    )];
    if let Some(f) = &r.fallback {
        out.push(format!("copied key by key because {f}"));
    }
    let skipped: u64 = r.databases.iter().filter_map(|d| d.skipped).sum();
    if skipped > 0 {
        out.push(format!(
            "{skipped} keys expired or were deleted on the source during the copy and were skipped"
        ));
    }
    for rep in &r.replicas {
        out.push(match (&rep.problem, rep.in_sync) {
            (_, true) => format!(
                "replica {}: in sync with the master, {} keys",
                rep.ordinal, rep.keys
            ),
            (Some(p), false) => format!("replica {}: NOT in sync yet ({p})", rep.ordinal),
            (None, false) => format!("replica {}: NOT in sync yet", rep.ordinal),
        });
    }
    out
}

/// `vd redis:import`.
pub async fn import(
    ctx: &Ctx,
    reference: &str,
    from: &str,
    mode: Option<&str>,
    force: bool,
    timeout: Duration,
) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let req = ImportRequest {
        from: from.to_string(),
        mode: match mode {
            Some("copy") => Some(ImportMode::Copy),
            Some("live") => Some(ImportMode::Live),
            _ => None,
        },
        force,
        timeout_secs: Some(timeout.as_secs().max(1)),
    };
    let r: ImportReport = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/import"), &req)
        .await?;
    if ctx.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    for line in summary(&r) {
        outln!("{line}");
    }
    if r.databases.len() > 1 || r.mode == ImportMode::Copy {
        let mut t = table(&["DB", "KEYS", "COPIED", "SKIPPED"]);
        let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        for d in &r.databases {
            t.add_row(vec![
                d.db.to_string(),
                d.keys.to_string(),
                opt(d.copied),
                opt(d.skipped),
            ]);
        }
        outln!("{}", t.to_string().trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_server::redis::import::{DbKeys, ReplicaState};

    #[test]
    fn summary_lines() {
        let r = ImportReport {
            redis: "data/cache".into(),
            source: "redis://:***@10.0.0.5:6379".into(),
            mode: ImportMode::Copy,
            fallback: Some("the source has SYNC/PSYNC disabled or renamed".into()),
            master: 0,
            keys: 10,
            databases: vec![DbKeys {
                db: 0,
                keys: 10,
                copied: Some(10),
                skipped: Some(2),
            }],
            replicas: vec![
                ReplicaState {
                    ordinal: 1,
                    keys: 10,
                    in_sync: true,
                    problem: None,
                },
                ReplicaState {
                    ordinal: 2,
                    keys: 3,
                    in_sync: false,
                    problem: Some("syncing from the master".into()),
                },
            ],
            duration_ms: 2400,
            sync_ms: None,
        };
        let s = summary(&r).join("\n");
        assert!(s.contains("imported 10 keys from redis://:***@10.0.0.5:6379 by key-by-key copy"));
        assert!(s.contains("in 2.4 s"));
        assert!(s.contains("because the source has SYNC/PSYNC disabled"));
        assert!(s.contains("2 keys expired"));
        assert!(s.contains("replica 1: in sync"));
        assert!(s.contains("replica 2: NOT in sync yet (syncing from the master)"));
    }
}
