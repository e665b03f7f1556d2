//! `vd logs`: pod log files, read straight from the root.

use super::resources::resolve_ref;
use super::Ctx;
use crate::error::CliError;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use vd_server::types::PodView;

/// `vd logs REF [-f] [--ordinal N] [--tail N]`; for a cronjob, `[--run N]`.
pub async fn logs(
    ctx: &Ctx,
    reference: &str,
    follow: bool,
    (ordinal, run): (Option<u32>, Option<u64>),
    tail: usize,
) -> Result<(), CliError> {
    // A pod's own name (`data-cache.1`), as `vd get pods` lists it.
    if !reference.contains('/') && vd_core::naming::parse_pod_name(reference).is_some() {
        let path = ctx.root.join("logs").join(format!("{reference}.log"));
        if !path.exists() {
            return Err(CliError::usage(
                format!("pod {reference} has no log"),
                "see `vd get pods` for pod names",
            ));
        }
        return print_logs(ctx, &[reference.to_string()], follow, tail).await;
    }
    let id = resolve_ref(ctx, reference).await?;
    if id.kind == vd_core::Kind::Cronjob {
        return super::run::logs(ctx, &id, run, follow, tail).await;
    }
    let pods: Vec<PodView> = ctx.client.get("/v1/pods").await?;
    let mut names: Vec<String> = pods
        .iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .filter(|p| ordinal.is_none_or(|o| o == p.ordinal))
        .map(|p| p.pod.clone())
        .collect();
    if names.is_empty() {
        // Stopped pods keep their logs; fall back to the files.
        let prefix = format!("{}-{}.", id.scope, id.name);
        if let Ok(rd) = std::fs::read_dir(ctx.root.join("logs")) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if let Some(pod) = f.strip_suffix(".log").filter(|p| {
                    p.strip_prefix(&prefix).is_some_and(|o| {
                        o.parse::<u32>()
                            .is_ok_and(|o| ordinal.is_none_or(|w| w == o))
                    })
                }) {
                    names.push(pod.to_string());
                }
            }
        }
        names.sort();
    }
    if names.is_empty() {
        return Err(CliError::usage(
            format!("{id} has no pods and no logs"),
            "see `vd get pods`",
        ));
    }
    print_logs(ctx, &names, follow, tail).await
}

/// Prints the logs of `names` (prefixed by pod when there are several), following them with
/// `follow`.
async fn print_logs(
    ctx: &Ctx,
    names: &[String],
    follow: bool,
    tail: usize,
) -> Result<(), CliError> {
    let prefix = names.len() > 1;
    let mut offsets = Vec::new();
    for pod in names {
        let path = ctx.root.join("logs").join(format!("{pod}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = if tail == 0 {
            0
        } else {
            lines.len().saturating_sub(tail)
        };
        for l in &lines[from..] {
            if prefix {
                outln!("[{pod}] {l}");
            } else {
                outln!("{l}");
            }
        }
        offsets.push((pod.clone(), path, text.len() as u64));
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (pod, path, off) in offsets.iter_mut() {
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < *off {
                *off = 0; // rotated
            }
            if len == *off || f.seek(SeekFrom::Start(*off)).is_err() {
                continue;
            }
            let mut buf = String::new();
            if f.read_to_string(&mut buf).is_ok() {
                *off += buf.len() as u64;
                for l in buf.lines() {
                    if prefix {
                        outln!("[{pod}] {l}");
                    } else {
                        outln!("{l}");
                    }
                }
            }
        }
    }
}
