//! `vd get`, `vd describe`, `vd delete`, `vd restart`, `vd events`.

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
                    if s.converged {
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
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "statefulset": x.workload, "files": x.files })
                )
                .unwrap_or_default()
            );
            return Ok(());
        }
        println!(
            "# statefulset {}/{} (expanded from {id})",
            id.scope, id.name
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&x.workload).unwrap_or_default()
        );
        for (key, content) in &x.files {
            println!(
                "\n# file asset {}/{}.{key}",
                id.scope,
                vd_core::redis::generated_asset_name(&id.name)
            );
            print!("{content}");
        }
        return Ok(());
    }
    if ctx.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{}  (revision {}, runtime {})",
        d.resource.id, d.resource.revision, d.runtime
    );
    match &d.resource.spec {
        Spec::Asset(a) => {
            for (k, v) in &a.files {
                println!(
                    "  file {k}: {} bytes, sha256 {}",
                    v.len(),
                    vd_core::hash::short(&vd_core::hash::content_digest(v.as_bytes()))
                );
            }
        }
        Spec::Redis(r) => {
            println!(
                "  redis:     {}",
                serde_json::to_string(r).unwrap_or_default()
            );
            if let Some(f) = &r.failover {
                let mode = if f.automatic { "automatic" } else { "off" };
                println!("  failover:  {mode}, down after {}ms", f.down_after_ms);
            }
        }
        Spec::Cronjob(c) => super::run::describe(c, d.cronjob.as_ref()),
        Spec::Workload(w) => {
            if let Some(s) = &d.resource.status {
                println!(
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
                println!("  image:     {img}");
            }
            println!("  command:   {}", w.command.join(" "));
            println!(
                "  ports:     {}",
                w.ports
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for c in &w.volume_claims {
                println!("  claim:     {} at {}", c.name, c.mount_path);
            }
            for v in &w.volumes {
                println!(
                    "  volume:    {} -> {}{}",
                    v.source,
                    v.target,
                    if v.read_only { " (ro)" } else { "" }
                );
            }
            if !w.env.is_empty() {
                println!(
                    "  env:       {}",
                    w.env.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            if !w.env_from.is_empty() {
                println!("  env_from:  {}", w.env_from.join(", "));
            }
            for (slot, p) in [
                ("liveness", &w.probes.liveness),
                ("readiness", &w.probes.readiness),
                ("startup", &w.probes.startup),
            ] {
                if let Some(p) = p {
                    println!(
                        "  {slot:<10} {:?} every {}ms, fail after {}",
                        p.action, p.period_ms, p.failure_threshold
                    );
                }
            }
            if let Some(l) = &d.limits {
                println!("  limits:    {l}");
            }
        }
    }
    if !d.pods.is_empty() {
        println!();
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
        println!("{}", t.to_string().trim_end());
    }
    print_events(&d.events);
    Ok(())
}

fn print_events(events: &[Event]) {
    if events.is_empty() {
        return;
    }
    println!();
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
    println!("{}", t.to_string().trim_end());
}

/// `vd delete KIND/SCOPE/NAME [--prune]`.
pub async fn delete(ctx: &Ctx, reference: &str, prune: bool) -> Result<(), CliError> {
    let id = resolve_ref(ctx, reference).await?;
    let out: serde_json::Value = ctx
        .client
        .delete(&format!("{}?prune={prune}", path(&id)))
        .await?;
    if ctx.output == Output::Json {
        println!("{out}");
        return Ok(());
    }
    println!("{id} deleted");
    if let Some(v) = out["pruned_volumes"].as_array() {
        for name in v.iter().filter_map(|v| v.as_str()) {
            println!("volume {name} destroyed");
        }
    }
    if !prune && id.kind == Kind::Statefulset {
        println!("volumes kept; `vd delete {id} --prune` destroys them");
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
    println!("{id}: rolling restart started");
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
        println!(
            "{}",
            serde_json::to_string_pretty(&events).unwrap_or_default()
        );
    } else if events.is_empty() {
        println!("no events");
    } else {
        print_events(&events);
    }
    Ok(())
}
