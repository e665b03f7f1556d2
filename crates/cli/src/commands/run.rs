//! `vd run cronjob/SCOPE/NAME`, `vd get cronjobs`, the cronjob part of `vd describe`, and
//! `vd logs cronjob/...` (a run's log file, read from the root like pod logs).

use super::Ctx;
use crate::args::Output;
use crate::error::CliError;
use crate::render::{self, age, table};
use vd_core::{CronjobSpec, Kind, ResourceRef};
use vd_server::orchestration::cronjob::describe_end;
use vd_server::types::{CronjobView, RunRecord, RunRequest, RunResult, RunStatus};

/// `cronjob/SCOPE/NAME`, or `SCOPE/NAME` meaning a cronjob.
pub fn cronjob_ref(s: &str) -> Result<ResourceRef, CliError> {
    let help = "write cronjob/SCOPE/NAME, e.g. cronjob/clowk-lp/redis-backup";
    let id = match s.split('/').count() {
        3 => ResourceRef::parse(s).map_err(|e| CliError::usage(e, help))?,
        2 => {
            let (scope, name) = s.split_once('/').unwrap_or_default();
            ResourceRef::new(Kind::Cronjob, scope, name)
        }
        _ => return Err(CliError::usage(format!("`{s}` is not a reference"), help)),
    };
    if id.kind != Kind::Cronjob {
        return Err(CliError::usage(
            format!("{id} is not a cronjob; `vd run` runs cronjobs"),
            help,
        ));
    }
    Ok(id)
}

fn api_path(id: &ResourceRef) -> String {
    format!("/v1/cronjobs/{}/{}", id.scope, id.name)
}

/// `2026-11-21 06:00 UTC` for unix seconds.
fn utc(secs: i64) -> String {
    vd_server::orchestration::time::iso(secs)
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// `1.2s`, `3m4s`.
fn took(r: &RunRecord) -> String {
    let Some(end) = r.ended_ms else {
        return "-".into();
    };
    let ms = (end - r.started_ms).max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{}s", ms / 60_000, ms / 1000 % 60)
    }
}

/// A run's output without vd's own marker lines.
fn output(log: &str) -> String {
    log.lines()
        .filter(|l| !l.starts_with("--- vd:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `vd run cronjob/S/N [--detach]`.
pub async fn run(ctx: &Ctx, reference: &str, detach: bool) -> Result<(), CliError> {
    let id = cronjob_ref(reference)?;
    let r: RunResult = ctx
        .client
        .post(&format!("{}/run", api_path(&id)), &RunRequest { detach })
        .await?;
    if ctx.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else if detach {
        outln!(
            "{id}: run {} started (pod {}); `vd describe {id}` shows how it ends",
            r.run.id,
            r.run.pod
        );
    } else {
        out!("{}", output(r.log.as_deref().unwrap_or_default()));
    }
    match r.run.status {
        RunStatus::Succeeded | RunStatus::Running => {
            if ctx.output == Output::Table && !detach {
                outln!("{id}: run {} succeeded in {}", r.run.id, took(&r.run));
            }
            Ok(())
        }
        _ => Err(CliError::JobFailed {
            message: format!("{id}: run {} {}", r.run.id, describe_end(&r.run)),
            code: exit_code(&r.run),
        }),
    }
}

/// What `vd run` exits with for a run that did not succeed, as a shell reports a child: its
/// exit code, 128 + the signal that killed it, or 1 (timed out, never started, unknown).
fn exit_code(r: &RunRecord) -> i32 {
    match (r.exit_code, r.signal) {
        (Some(c), _) if (1..=255).contains(&c) => c,
        (_, Some(s)) if (1..=127).contains(&s) => 128 + s,
        _ => 1,
    }
}

/// `vd get cronjobs`.
pub async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let list: Vec<CronjobView> = ctx.client.get("/v1/cronjobs").await?;
    render::print(ctx.output, &list, || {
        let mut t = table(&[
            "SCOPE", "NAME", "SCHEDULE", "NEXT RUN", "LAST RUN", "STATUS", "RUNNING",
        ]);
        for c in &list {
            let last = c.runs.iter().find(|r| r.status != RunStatus::Running);
            let running = c
                .runs
                .iter()
                .filter(|r| r.status == RunStatus::Running)
                .count();
            t.add_row(vec![
                c.id.scope.clone(),
                c.id.name.clone(),
                c.schedule.clone(),
                c.next_run.map(utc).unwrap_or_else(|| "never".into()),
                last.map(|r| format!("{} ago", age(r.ended_ms)))
                    .unwrap_or_else(|| "-".into()),
                last.map(describe_end).unwrap_or_else(|| "-".into()),
                running.to_string(),
            ]);
        }
        t
    });
    Ok(())
}

/// The cronjob part of `vd describe` (table output).
pub fn describe(spec: &CronjobSpec, view: Option<&CronjobView>) {
    outln!("  schedule:    {} (UTC)", spec.schedule);
    if let Some(next) = view.and_then(|v| v.next_run) {
        outln!("  next run:    {}", utc(next));
    }
    if let Some(img) = &spec.image {
        outln!("  image:       {img}");
    }
    outln!("  command:     {}", spec.command.join(" "));
    if !spec.env.is_empty() {
        outln!(
            "  env:         {}",
            spec.env.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if !spec.env_from.is_empty() {
        outln!("  env_from:    {}", spec.env_from.join(", "));
    }
    for v in &spec.volumes {
        outln!(
            "  volume:      {} -> {}{}",
            v.source,
            v.target,
            if v.read_only { " (ro)" } else { "" }
        );
    }
    let timeout = spec
        .timeout_ms
        .map(|t| format!(", timeout {}s", t / 1000))
        .unwrap_or_default();
    outln!(
        "  concurrency: {}, keep {}{timeout}",
        spec.concurrency.as_str(),
        spec.keep
    );
    let Some(v) = view else { return };
    if v.skipped > 0 {
        outln!(
            "  skipped:     {} slot(s) while a run still went",
            v.skipped
        );
    }
    if v.runs.is_empty() {
        outln!("\nno runs yet; `vd run {}` runs it now", v.id);
        return;
    }
    outln!();
    let mut t = table(&["RUN", "TRIGGER", "STARTED", "TOOK", "STATUS", "LOG"]);
    for r in &v.runs {
        t.add_row(vec![
            r.id.to_string(),
            match r.slot {
                Some(s) => format!("slot {}", utc(s)),
                None => "vd run".into(),
            },
            format!("{} ago", age(Some(r.started_ms))),
            took(r),
            describe_end(r),
            r.log.clone(),
        ]);
    }
    outln!("{}", t.to_string().trim_end());
}

/// `vd logs cronjob/S/N [--run N] [--tail N]`: the last run's log, or run N's.
pub async fn logs(
    ctx: &Ctx,
    id: &ResourceRef,
    run: Option<u64>,
    follow: bool,
    tail: usize,
) -> Result<(), CliError> {
    let v: CronjobView = ctx.client.get(&api_path(id)).await?;
    let r = match run {
        Some(n) => v.runs.iter().find(|r| r.id == n).ok_or_else(|| {
            let kept: Vec<String> = v.runs.iter().map(|r| r.id.to_string()).collect();
            CliError::usage(
                format!("{id} has no run {n}"),
                format!(
                    "kept runs: {}",
                    if kept.is_empty() {
                        "none".into()
                    } else {
                        kept.join(", ")
                    }
                ),
            )
        })?,
        None => v.runs.first().ok_or_else(|| {
            CliError::usage(
                format!("{id} has not run yet"),
                format!("`vd run {id}` runs it now"),
            )
        })?,
    };
    let text = std::fs::read_to_string(&r.log)
        .map_err(|e| CliError::io(format!("read the log of run {} ({})", r.id, r.log), e))?;
    let body = output(&text);
    let lines: Vec<&str> = body.lines().collect();
    let from = if tail == 0 {
        0
    } else {
        lines.len().saturating_sub(tail)
    };
    for l in &lines[from..] {
        outln!("{l}");
    }
    if follow && r.status == RunStatus::Running {
        // Follow this one file until the run ends.
        let mut offset = text.len();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let now = std::fs::read_to_string(&r.log).unwrap_or_default();
            if now.len() > offset {
                out!("{}", output(&now[offset..]));
                offset = now.len();
            }
            let v: CronjobView = ctx.client.get(&api_path(id)).await?;
            let still = v
                .runs
                .iter()
                .any(|x| x.id == r.id && x.status == RunStatus::Running);
            if !still {
                let now = std::fs::read_to_string(&r.log).unwrap_or_default();
                if now.len() > offset {
                    out!("{}", output(&now[offset..]));
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_output() {
        assert_eq!(
            cronjob_ref("cronjob/clowk-lp/redis-backup").unwrap(),
            ResourceRef::new(Kind::Cronjob, "clowk-lp", "redis-backup")
        );
        assert_eq!(
            cronjob_ref("cj/a/b").unwrap(),
            ResourceRef::new(Kind::Cronjob, "a", "b")
        );
        assert_eq!(cronjob_ref("a/b").unwrap().kind, Kind::Cronjob);
        assert!(cronjob_ref("redis/a/b").is_err());
        assert!(cronjob_ref("ab").is_err());
        assert_eq!(
            output("--- vd: starting a.run-1 (spec x)\nhello\n"),
            "hello\n"
        );
        assert_eq!(utc(1_795_219_200), "2026-11-21 00:00:00 UTC");
    }

    #[test]
    fn a_failed_run_exits_as_a_shell_reports_it() {
        let end = |exit_code, signal| RunRecord {
            id: 1,
            pod: "a-b.run-1".into(),
            trigger: vd_server::types::Trigger::Manual,
            slot: None,
            started_ms: 0,
            ended_ms: Some(1),
            status: RunStatus::Failed,
            exit_code,
            signal,
            message: None,
            log: String::new(),
        };
        assert_eq!(exit_code(&end(Some(3), None)), 3);
        assert_eq!(exit_code(&end(None, Some(9))), 137);
        assert_eq!(exit_code(&end(None, None)), 1);
        assert_eq!(exit_code(&end(Some(0), None)), 1, "a failure never exits 0");
        assert_eq!(exit_code(&end(Some(300), None)), 1);
    }
}
