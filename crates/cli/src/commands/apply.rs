//! `vd apply`, `vd diff`, and waiting for workloads to become ready.

use super::Ctx;
use crate::args::{ApplyArgs, Output};
use crate::error::CliError;
use crate::render;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vd_core::ResourceRef;
use vd_manifest::{Diagnostics, Manifest};
use vd_server::types::{ApplyRequest, ApplyResponse, ChangeKind, PodView, ResourceView};

/// Loads manifests, rendering every diagnostic on failure.
pub fn load(files: &[PathBuf]) -> Result<Manifest, CliError> {
    Ok(vd_manifest::load_files(files)?)
}

/// Sends an apply, turning server-side validation problems into located diagnostics.
pub async fn send(
    ctx: &Ctx,
    manifest: &Manifest,
    dry_run: bool,
) -> Result<ApplyResponse, CliError> {
    let req = ApplyRequest {
        resources: manifest.resources.clone(),
        dry_run,
    };
    match ctx.client.post("/v1/apply", &req).await {
        Err(CliError::Api { problems, .. }) if !problems.is_empty() => {
            let diags = problems
                .iter()
                .map(|p| match &p.resource {
                    Some(r) => manifest.diagnostic_at(r, &p.field, &p.message, p.help.as_deref()),
                    None => vd_manifest::Diagnostic::new(p.message.clone(), p.help.as_deref()),
                })
                .collect();
            Err(CliError::Manifest(Diagnostics(diags)))
        }
        other => other,
    }
}

/// `vd apply -f FILE…`.
pub async fn apply(ctx: &Ctx, args: &ApplyArgs) -> Result<(), CliError> {
    let manifest = load(&args.files)?;
    let resp = send(ctx, &manifest, false).await?;
    print_changes(ctx, &resp);
    if args.no_wait {
        return Ok(());
    }
    wait_ready(ctx, &targets(&resp), args.timeout).await
}

/// What to wait for after an apply: a workload at a revision and spec hash.
#[derive(Debug, Clone)]
pub struct Target {
    revision: u64,
    hash: Option<String>,
}

/// The workloads an apply touched, with the revision and hash to wait for.
pub fn targets(resp: &ApplyResponse) -> BTreeMap<ResourceRef, Target> {
    resp.changes
        .iter()
        .filter(|c| c.id.kind.has_pods())
        .map(|c| {
            (
                c.id.clone(),
                Target {
                    revision: c.revision,
                    hash: c.hash.clone(),
                },
            )
        })
        .collect()
}

fn print_changes(ctx: &Ctx, resp: &ApplyResponse) {
    if ctx.output == Output::Json {
        let short: Vec<_> = resp
            .changes
            .iter()
            .map(|c| serde_json::json!({ "id": c.id, "change": c.change, "revision": c.revision }))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&short).unwrap_or_default()
        );
        return;
    }
    for c in &resp.changes {
        let what = match c.change {
            ChangeKind::Created => "created",
            ChangeKind::Changed => "changed",
            ChangeKind::Unchanged => "unchanged",
        };
        outln!("{} {what} (revision {})", c.id, c.revision);
    }
}

/// Waits until every target workload is converged at (at least) its revision; fails fast
/// when one of their pods fails.
pub async fn wait_ready(
    ctx: &Ctx,
    targets: &BTreeMap<ResourceRef, Target>,
    timeout: Duration,
) -> Result<(), CliError> {
    if targets.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let tty = render::interactive();
    let mut last = String::new();
    loop {
        let list: Vec<ResourceView> = ctx.client.get("/v1/resources").await?;
        let pods: Vec<PodView> = ctx.client.get("/v1/pods").await?;
        let mut lines = Vec::new();
        let mut done = true;
        for (id, want) in targets {
            let Some(v) = list.iter().find(|v| &v.id == id) else {
                return Err(CliError::Failed(format!("{id} disappeared while waiting")));
            };
            let st = v.status.clone().unwrap_or_default();
            let ok = st.revision >= want.revision
                && st.converged
                && want.hash.as_ref().is_none_or(|h| *h == st.hash);
            done &= ok;
            let note = if ok {
                "ready".to_string()
            } else {
                st.message.clone().unwrap_or_else(|| "starting".into())
            };
            lines.push(format!("{id}: {}/{} ready, {note}", st.ready, st.desired));
            if let Some(p) = pods.iter().find(|p| {
                p.kind == id.kind
                    && p.scope == id.scope
                    && p.name == id.name
                    && p.state.is_failing()
            }) {
                if tty {
                    eprintln!();
                }
                let tail = log_tail(ctx, &p.pod, 5);
                return Err(CliError::Failed(format!(
                    "pod {} failed ({}): {}{}",
                    p.pod,
                    p.state,
                    p.message.clone().unwrap_or_default(),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!("\nlast log lines:\n{tail}")
                    }
                )));
            }
        }
        let summary = lines.join("; ");
        if tty {
            eprint!("\r\x1b[K{} {summary}", spinner(start));
        } else if summary != last {
            eprintln!("{summary}");
        }
        last = summary;
        if done {
            if tty {
                eprintln!();
            }
            return Ok(());
        }
        if start.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            // Why each pod that is not ready is not: its failing probe and what it said.
            let why: Vec<String> = pods
                .iter()
                .filter(|p| {
                    !p.ready
                        && targets
                            .keys()
                            .any(|id| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
                })
                .map(|p| match &p.message {
                    Some(m) => format!("pod {} ({}): {m}", p.pod, p.state),
                    None => format!("pod {} ({}): no probe has failed yet", p.pod, p.state),
                })
                .collect();
            let detail = if why.is_empty() {
                String::new()
            } else {
                format!("\n{}", why.join("\n"))
            };
            return Err(CliError::Failed(format!(
                "not ready after {timeout:?}: {last}{detail}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spinner(start: Instant) -> char {
    const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
    FRAMES[(start.elapsed().as_millis() / 150) as usize % 4]
}

/// The last `n` lines of a pod's log.
pub fn log_tail(ctx: &Ctx, pod: &str, n: usize) -> String {
    let path = ctx.root.join("logs").join(format!("{pod}.log"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `vd diff -f FILE…`.
pub async fn diff(ctx: &Ctx, files: &[PathBuf]) -> Result<(), CliError> {
    let manifest = load(files)?;
    let resp = send(ctx, &manifest, true).await?;
    if ctx.output == Output::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&resp.changes).unwrap_or_default()
        );
        return Ok(());
    }
    let mut any = false;
    for c in &resp.changes {
        let pretty =
            |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        match c.change {
            ChangeKind::Unchanged => {}
            ChangeKind::Created => {
                any = true;
                outln!("+ {} (new)", c.id);
                for l in pretty(&c.after).lines() {
                    outln!("+ {l}");
                }
            }
            ChangeKind::Changed => {
                any = true;
                outln!("~ {}", c.id);
                let before = c.before.as_ref().map(pretty).unwrap_or_default();
                let after = pretty(&c.after);
                let d = similar::TextDiff::from_lines(&before, &after);
                out!(
                    "{}",
                    d.unified_diff()
                        .context_radius(2)
                        .header("stored", "manifest")
                );
            }
        }
    }
    if !any {
        outln!("no changes");
    }
    Ok(())
}
