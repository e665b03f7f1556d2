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
use vd_server::types::{
    ApplyRequest, ApplyResponse, ChangeKind, PodView, ResourceView, WorkloadStatus,
};

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

/// What to wait for after an apply: a workload converged at its revision and at the
/// generation of the desired hash the apply produced, or a later one.
#[derive(Debug, Clone)]
pub struct Target {
    revision: u64,
    hash: Option<String>,
    generation: Option<u64>,
}

impl Target {
    /// Whether `st` shows this change rolled out. By generation: a later change to the desired
    /// hash (a bucket write by the controller, another apply) supersedes this one instead of
    /// leaving the waiter waiting for a hash that will never come back. A server that reports
    /// no generation is matched by the exact hash.
    fn reached(&self, st: &WorkloadStatus) -> bool {
        let at = match (self.generation, st.generation) {
            (Some(want), got) if got > 0 => got >= want,
            _ => self.hash.as_ref().is_none_or(|h| *h == st.hash),
        };
        st.revision >= self.revision && st.converged && at
    }
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
                    generation: c.generation,
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
            .map(|c| serde_json::json!({ "id": c.id, "change": c.change, "revision": c.revision, "notes": c.notes }))
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
        for n in &c.notes {
            outln!("  note: {n}");
        }
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
            let ok = want.reached(&st);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(revision: u64, hash: &str, generation: u64, converged: bool) -> WorkloadStatus {
        WorkloadStatus {
            revision,
            hash: hash.into(),
            generation,
            converged,
            ..WorkloadStatus::default()
        }
    }

    #[test]
    fn a_change_is_reached_at_its_generation_or_any_later_one() {
        let want = Target {
            revision: 3,
            hash: Some("h1".into()),
            generation: Some(10),
        };
        let cases = [
            ("converged at it", status(3, "h1", 10, true), true),
            ("not converged yet", status(3, "h1", 10, false), false),
            ("an older generation", status(3, "h0", 9, true), false),
            ("an older revision", status(2, "h1", 10, true), false),
            // A bucket write by the controller moved the hash on: waiting for h1 would never
            // end.
            ("superseded and converged", status(3, "h2", 11, true), true),
            ("superseded, rolling", status(3, "h2", 11, false), false),
        ];
        for (what, st, reached) in cases {
            assert_eq!(want.reached(&st), reached, "{what}");
        }
        // A server that reports no generation: the exact hash.
        assert!(want.reached(&status(3, "h1", 0, true)));
        assert!(!want.reached(&status(3, "h2", 0, true)));
        let no_generation = Target {
            generation: None,
            ..want
        };
        assert!(no_generation.reached(&status(3, "h1", 12, true)));
        assert!(!no_generation.reached(&status(3, "h2", 12, true)));
    }
}
