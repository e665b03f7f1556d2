//! `vd get`, `vd ps`, `vd describe`, `vd delete`, `vd restart`, `vd scale`, `vd stop`,
//! `vd start`, `vd events`.

use super::Ctx;
use crate::args::Output;
use crate::error::CliError;
use crate::render::{self, age, table};
use vd_core::{Kind, ResourceRef, Spec};
use vd_server::types::{DescribeView, Event, PodView, ResourceView};

/// Parses KIND/SCOPE/NAME, or SCOPE/NAME naming the one workload with that scope and name.
pub async fn resolve_ref(ctx: &Ctx, s: &str) -> Result<ResourceRef, CliError> {
    if s.split('/').count() == 3 {
        return ResourceRef::parse(s)
            .map_err(|e| CliError::usage(e, "e.g. statefulset/data/cache"));
    }
    let Some((scope, name)) = s.split_once('/') else {
        return Err(CliError::usage(
            format!("`{s}` is not a reference"),
            "write SCOPE/NAME or KIND/SCOPE/NAME",
        ));
    };
    let all: Vec<ResourceView> = ctx.client.get("/v1/resources").await?;
    let hits: Vec<ResourceRef> = all
        .into_iter()
        .map(|v| v.id)
        .filter(|id| {
            id.scope == scope && id.name == name && (id.kind.has_pods() || id.kind == Kind::Cronjob)
        })
        .collect();
    match hits.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::usage(
            format!("no workload {scope}/{name}"),
            "see `vd get`",
        )),
        _ => Err(CliError::usage(
            format!("{scope}/{name} is ambiguous"),
            "write KIND/SCOPE/NAME",
        )),
    }
}

fn path(id: &ResourceRef) -> String {
    format!("/v1/resources/{}/{}/{}", id.kind, id.scope, id.name)
}

/// `vd get [KIND]`.
pub async fn get(ctx: &Ctx, kind: Option<&str>) -> Result<(), CliError> {
    if matches!(kind, Some("redis")) {
        return super::redis::list(ctx).await;
    }
    if kind.and_then(Kind::parse) == Some(Kind::Cronjob) {
        return super::run::list(ctx).await;
    }
    if matches!(kind, Some("pods" | "pod" | "po")) {
        let pods: Vec<PodView> = ctx.client.get("/v1/pods").await?;
        render::print(ctx.output, &pods, || {
            let mut t = table(&[
                "POD", "KIND", "READY", "STATE", "RESTARTS", "ADDRESS", "PID", "AGE",
            ]);
            for p in &pods {
                t.add_row(vec![
                    p.pod.clone(),
                    p.kind.to_string(),
                    if p.ready { "yes" } else { "no" }.to_string(),
                    p.state.to_string(),
                    p.restarts.to_string(),
                    p.address.join(","),
                    p.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    age(p.started_ms),
                ]);
            }
            t
        });
        return Ok(());
    }
    let q = match kind {
        None => String::new(),
        Some(k) => {
            let kind = Kind::parse(k).ok_or_else(|| {
                CliError::usage(
                    format!("unknown kind `{k}`"),
                    "use statefulset, deployment, asset, redis, cronjob or pods",
                )
            })?;
            format!("?kind={kind}")
        }
    };
    let list: Vec<ResourceView> = ctx.client.get(&format!("/v1/resources{q}")).await?;
    render::print(ctx.output, &list, || {
        let mut t = table(&["KIND", "SCOPE", "NAME", "READY", "REVISION", "STATUS"]);
        for v in &list {
            let (ready, status) = match &v.status {
                Some(s) => (
                    format!("{}/{}", s.ready, s.desired),
                    if s.stopped {
                        "stopped".to_string()
                    } else if s.converged {
                        "ready".to_string()
                    } else {
                        s.message.clone().unwrap_or_else(|| "progressing".into())
                    },
                ),
                None => ("-".into(), "-".into()),
            };
            t.add_row(vec![
                v.id.kind.to_string(),
                v.id.scope.clone(),
                v.id.name.clone(),
                ready,
                v.revision.to_string(),
                status,
            ]);
        }
        t
    });
    Ok(())
}

/// `vd describe KIND/SCOPE/NAME`.
pub async fn describe(ctx: &Ctx, reference: &str, expanded: bool) -> Result<(), CliError> {
    let id = resolve_ref(ctx, reference).await?;
    let d: DescribeView = ctx.client.get(&path(&id)).await?;
    if expanded {
        // Expansion is pure, so the CLI shows exactly what the server runs. The generated files
        // hold no secrets: the password only reaches pods through their env.
        let Spec::Redis(spec) = &d.resource.spec else {
            return Err(CliError::usage(
                format!("{id} is not a macro"),
                "--expanded is for redis resources",
            ));
        };
        let x = vd_core::redis::expand(&id, spec);
        if ctx.output == Output::Json {
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "statefulset": x.workload, "files": x.files })
                )
                .unwrap_or_default()
            );
            return Ok(());
        }
        outln!(
            "# statefulset {}/{} (expanded from {id})",
            id.scope,
            id.name
        );
        outln!(
            "{}",
            serde_json::to_string_pretty(&x.workload).unwrap_or_default()
        );
        for (key, content) in &x.files {
            outln!(
                "\n# file asset {}/{}.{key}",
                id.scope,
                vd_core::redis::generated_asset_name(&id.name)
            );
            out!("{content}");
        }
        return Ok(());
    }
    if ctx.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        return Ok(());
    }
    outln!(
        "{}  (revision {}, runtime {})",
        d.resource.id,
        d.resource.revision,
        d.runtime
    );
    match &d.resource.spec {
        Spec::Asset(a) => {
            for (k, v) in &a.files {
                outln!(
                    "  file {k}: {} bytes, sha256 {}",
                    v.len(),
                    vd_core::hash::short(&vd_core::hash::content_digest(v.as_bytes()))
                );
            }
        }
        Spec::Redis(r) => {
            outln!(
                "  redis:     {}",
                serde_json::to_string(r).unwrap_or_default()
            );
            if let Some(f) = &r.failover {
                let mode = if f.automatic { "automatic" } else { "off" };
                outln!("  failover:  {mode}, down after {}ms", f.down_after_ms);
            }
        }
        Spec::Cronjob(c) => super::run::describe(c, d.cronjob.as_ref()),
        Spec::Workload(w) => {
            if let Some(s) = &d.resource.status {
                outln!(
                    "  status:    {}/{} ready, {} current, spec {}{}",
                    s.ready,
                    s.desired,
                    s.current,
                    vd_core::hash::short(&s.hash),
                    s.message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                );
            }
            if let Some(img) = &w.image {
                outln!("  image:     {img}");
            }
            outln!("  command:   {}", w.command.join(" "));
            outln!(
                "  ports:     {}",
                w.ports
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for c in &w.volume_claims {
                outln!("  claim:     {} at {}", c.name, c.mount_path);
            }
            for v in &w.volumes {
                outln!(
                    "  volume:    {} -> {}{}",
                    v.source,
                    v.target,
                    if v.read_only { " (ro)" } else { "" }
                );
            }
            if !w.env.is_empty() {
                outln!(
                    "  env:       {}",
                    w.env.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            if !w.env_from.is_empty() {
                outln!("  env_from:  {}", w.env_from.join(", "));
            }
            for (slot, p) in [
                ("liveness", &w.probes.liveness),
                ("readiness", &w.probes.readiness),
                ("startup", &w.probes.startup),
            ] {
                if let Some(p) = p {
                    outln!(
                        "  {slot:<10} {:?} every {}ms, fail after {}",
                        p.action,
                        p.period_ms,
                        p.failure_threshold
                    );
                }
            }
            if let Some(l) = &d.limits {
                outln!("  limits:    {l}");
            }
        }
    }
    if !d.pods.is_empty() {
        outln!();
        let mut t = table(&[
            "POD", "READY", "STATE", "RESTARTS", "ADDRESS", "PID", "MESSAGE",
        ]);
        for p in &d.pods {
            t.add_row(vec![
                p.pod.clone(),
                if p.ready { "yes" } else { "no" }.into(),
                p.state.to_string(),
                p.restarts.to_string(),
                p.address.join(","),
                p.pid.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                p.message.clone().unwrap_or_default(),
            ]);
        }
        outln!("{}", t.to_string().trim_end());
    }
    if !d.events.is_empty() {
        outln!();
    }
    print_events(&d.events);
    Ok(())
}

fn print_events(events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let mut t = table(&["AGE", "LEVEL", "OBJECT", "REASON", "MESSAGE"]);
    for e in events {
        let obj = e
            .pod
            .clone()
            .or_else(|| e.resource.as_ref().map(|r| r.to_string()))
            .unwrap_or_default();
        t.add_row(vec![
            age(Some(e.ts_ms)),
            e.level.clone(),
            obj,
            e.reason.clone(),
            e.message.clone(),
        ]);
    }
    outln!("{}", t.to_string().trim_end());
}

/// `vd delete KIND/SCOPE/NAME [--prune]`.
pub async fn delete(ctx: &Ctx, reference: &str, prune: bool) -> Result<(), CliError> {
    let id = resolve_ref(ctx, reference).await?;
    let out: serde_json::Value = ctx
        .client
        .delete(&format!("{}?prune={prune}", path(&id)))
        .await?;
    if ctx.output == Output::Json {
        outln!("{out}");
        return Ok(());
    }
    outln!("{id} deleted");
    if let Some(v) = out["pruned_volumes"].as_array() {
        for name in v.iter().filter_map(|v| v.as_str()) {
            outln!("volume {name} destroyed");
        }
    }
    if !prune && id.kind == Kind::Statefulset {
        outln!("volumes kept; `vd delete {id} --prune` destroys them");
    }
    Ok(())
}

/// `vd restart REF`.
pub async fn restart(ctx: &Ctx, reference: &str) -> Result<(), CliError> {
    let id = resolve_ref(ctx, reference).await?;
    let _: serde_json::Value = ctx
        .client
        .post(&format!("{}/restart", path(&id)), &())
        .await?;
    outln!("{id}: rolling restart started");
    Ok(())
}

/// `vd events [REF]`.
pub async fn events(ctx: &Ctx, reference: Option<&str>, limit: usize) -> Result<(), CliError> {
    let q = match reference {
        Some(r) => {
            let id = resolve_ref(ctx, r).await?;
            format!(
                "?kind={}&scope={}&name={}&limit={limit}",
                id.kind, id.scope, id.name
            )
        }
        None => format!("?limit={limit}"),
    };
    let events: Vec<Event> = ctx.client.get(&format!("/v1/events{q}")).await?;
    if ctx.output == Output::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&events).unwrap_or_default()
        );
    } else if events.is_empty() {
        outln!("no events");
    } else {
        print_events(&events);
    }
    Ok(())
}

/// `vd describe KIND SCOPE/NAME`: the kind as its own word.
pub fn two_word_ref(kind: &str, name: &str) -> Result<String, CliError> {
    let kind = kind
        .strip_suffix('s')
        .filter(|k| Kind::parse(k).is_some())
        .unwrap_or(kind);
    if Kind::parse(kind).is_none() {
        return Err(CliError::usage(
            format!("`{kind}` is not a kind"),
            "write `vd describe KIND SCOPE/NAME` (statefulset, deployment, redis, cronjob, asset) or `vd describe KIND/SCOPE/NAME`",
        ));
    }
    Ok(format!("{kind}/{name}"))
}

/// `vd delete -f FILE…`: every resource the manifests declare, in reverse order (consumers
/// before what they use).
pub async fn delete_files(
    ctx: &Ctx,
    files: &[std::path::PathBuf],
    prune: bool,
) -> Result<(), CliError> {
    let manifest = super::apply::load(files)?;
    let stored: Vec<ResourceView> = ctx.client.get("/v1/resources").await?;
    let mut deleted = 0;
    for r in manifest.resources.iter().rev() {
        if !stored.iter().any(|v| v.id == r.id) {
            outln!("{} does not exist (skipped)", r.id);
            continue;
        }
        delete(ctx, &r.id.to_string(), prune).await?;
        deleted += 1;
    }
    if deleted == 0 {
        outln!("nothing to delete");
    }
    Ok(())
}

/// `vd scale REF N`.
pub async fn scale(
    ctx: &Ctx,
    reference: &str,
    replicas: u32,
    no_wait: bool,
    timeout: std::time::Duration,
) -> Result<(), CliError> {
    let id = resolve_ref(ctx, reference).await?;
    let resp: vd_server::types::ApplyResponse = ctx
        .client
        .post(
            &format!("{}/scale", path(&id)),
            &vd_server::api::ScaleRequest { replicas },
        )
        .await?;
    outln!("{id} scaled to {replicas}");
    if no_wait {
        return Ok(());
    }
    super::apply::wait_ready(ctx, &super::apply::targets(&resp), timeout).await
}

/// `vd stop REF` / `vd start REF`.
pub async fn stop_or_start(ctx: &Ctx, reference: &str, stop: bool) -> Result<(), CliError> {
    let id = resolve_ref(ctx, reference).await?;
    let verb = if stop { "stop" } else { "start" };
    let out: serde_json::Value = ctx
        .client
        .post(&format!("{}/{verb}", path(&id)), &())
        .await?;
    if ctx.output == Output::Json {
        outln!("{out}");
        return Ok(());
    }
    match (stop, out["changed"].as_bool().unwrap_or(true)) {
        (true, true) => outln!("{id} stopping (volumes kept); `vd start {id}` runs it again"),
        (true, false) => outln!("{id} is stopped already"),
        (false, true) => outln!("{id} starting"),
        (false, false) => outln!("{id} was not stopped"),
    }
    Ok(())
}
