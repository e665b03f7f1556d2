//! `vd exec`: a command inside a pod, through the server (so both runtimes work the same).

use super::resources::resolve_ref;
use super::Ctx;
use crate::error::CliError;
use std::io::Write;
use std::time::Duration;
use vd_server::api::ExecRequest;
use vd_server::types::PodView;

/// The pod `reference` names: a pod name, or a workload's pod `ordinal` (default: its first
/// running pod).
async fn pod_of(ctx: &Ctx, reference: &str, ordinal: Option<u32>) -> Result<String, CliError> {
    let pods: Vec<PodView> = ctx.client.get("/v1/pods").await?;
    if !reference.contains('/') {
        return pods
            .iter()
            .find(|p| p.pod == reference)
            .map(|p| p.pod.clone())
            .ok_or_else(|| CliError::usage(format!("no pod {reference}"), "see `vd get pods`"));
    }
    let id = resolve_ref(ctx, reference).await?;
    let mut mine: Vec<&PodView> = pods
        .iter()
        .filter(|p| p.kind == id.kind && p.scope == id.scope && p.name == id.name)
        .filter(|p| ordinal.is_none_or(|o| o == p.ordinal))
        .filter(|p| p.pid.is_some() || p.id.is_some())
        .collect();
    mine.sort_by_key(|p| p.ordinal);
    mine.first().map(|p| p.pod.clone()).ok_or_else(|| {
        CliError::usage(
            match ordinal {
                Some(o) => format!("{id} has no running pod {o}"),
                None => format!("{id} has no running pod"),
            },
            "see `vd get pods`",
        )
    })
}

/// `vd exec REF [--ordinal N] -- COMMAND…`: prints the command's output and exits with its
/// exit code.
pub async fn exec(
    ctx: &Ctx,
    reference: &str,
    ordinal: Option<u32>,
    timeout: Duration,
    command: &[String],
) -> Result<i32, CliError> {
    let pod = pod_of(ctx, reference, ordinal).await?;
    let out: vd_runtime::ExecOutput = ctx
        .client
        .post(
            &format!("/v1/pods/{pod}/exec"),
            &ExecRequest {
                command: command.to_vec(),
                timeout_ms: Some(timeout.as_millis() as u64),
            },
        )
        .await?;
    let mut err = std::io::stderr().lock();
    // Output first, as the command printed it; a reader that went away ends quietly.
    crate::render::write_bytes(&out.stdout);
    let _ = err.write_all(&out.stderr);
    if out.truncated {
        let _ = writeln!(
            err,
            "vd: output cut at {} bytes per stream",
            vd_runtime::ExecOutput::LIMIT
        );
    }
    Ok(out.code)
}
