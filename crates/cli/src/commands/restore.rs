//! `vd redis:restore`. The server verifies the file, stops the master, replaces its
//! `dump.rdb` and waits for the replicas; a relative `--from` is resolved here, against the
//! CLI's current directory (the server reads the file on the same host).

use super::backup::{human_bytes, human_ms};
use super::redis::split;
use super::Ctx;
use crate::args::Output;
use crate::error::CliError;
use crate::render::table;
use vd_server::redis::restore::{RestoreReport, RestoreRequest};

/// `--from` as the server needs it: `s3://…` as given, a path made absolute.
fn absolute(from: &str) -> Result<String, CliError> {
    if from.contains("://") {
        return Ok(from.to_string());
    }
    std::path::absolute(from)
        .map(|p| p.display().to_string())
        .map_err(|e| CliError::io(format!("resolve --from {from}"), e))
}

/// `vd redis:restore`.
pub async fn restore(
    ctx: &Ctx,
    reference: &str,
    from: &str,
    with_sentinel: bool,
    force: bool,
) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let req = RestoreRequest {
        from: absolute(from)?,
        with_sentinel,
        force,
    };
    let r: RestoreReport = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/restore"), &req)
        .await?;
    if ctx.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return behind(&r, &s, &n);
    }
    let check = match r.checksum.as_str() {
        "disabled" => "CRC64 not checked (written with `rdbchecksum no`)".to_string(),
        c => format!("RDB version {}, {c} verified", r.rdb_version),
    };
    outln!(
        "redis {s}/{n}: restored {} ({}; {check})",
        r.from,
        human_bytes(r.bytes)
    );
    outln!(
        "{} keys loaded by {} (master down {}), {} in all",
        r.keys,
        r.master_pod,
        human_ms(r.downtime_ms),
        human_ms(r.duration_ms)
    );
    if r.aof_rebuilt {
        outln!("appendonly yes: the AOF was rebuilt with the restored file as its base");
    }
    if let Some(sentinel) = &r.sentinel {
        outln!("the sentinels of {sentinel} monitor {} again", r.master_pod);
    }
    if !r.replicas.is_empty() {
        let mut t = table(&["REPLICA", "SYNCED", "LINK", "KEYS", "DETAIL"]);
        for row in &r.replicas {
            t.add_row(vec![
                row.pod.clone(),
                match row.sync_ms {
                    Some(ms) if row.synced => format!("yes ({})", human_ms(ms)),
                    _ => "no".into(),
                },
                row.link.clone().unwrap_or_else(|| "-".into()),
                row.keys
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "-".into()),
                row.detail.clone().unwrap_or_default(),
            ]);
        }
        outln!("{t}");
    }
    behind(&r, &s, &n)
}

/// A restore whose replicas did not all resync in time is not done: the data is on the master,
/// but a failover now would promote a replica without it.
fn behind(r: &RestoreReport, scope: &str, name: &str) -> Result<(), CliError> {
    let late: Vec<&str> = r
        .replicas
        .iter()
        .filter(|x| !x.synced)
        .map(|x| x.pod.as_str())
        .collect();
    if late.is_empty() {
        return Ok(());
    }
    Err(CliError::Incomplete {
        message: format!(
            "{scope}/{name} is restored on {}, but {} of {} replicas did not resync in time: {}",
            r.master_pod,
            late.len(),
            r.replicas.len(),
            late.join(", ")
        ),
        help: Some(format!(
            "they go on syncing from the restored master; `vd redis:info {scope}/{name}` shows when their offsets reach the master's (a failover before then would promote a replica without the restored data)"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_made_absolute() {
        assert_eq!(absolute("s3://b/k.rdb").unwrap(), "s3://b/k.rdb");
        assert_eq!(absolute("/x/y.rdb").unwrap(), "/x/y.rdb");
        let rel = absolute("y.rdb").unwrap();
        assert!(rel.starts_with('/') && rel.ends_with("/y.rdb"), "{rel}");
    }
}
