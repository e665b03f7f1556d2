//! `vd redis:*` commands.

use super::Ctx;
use crate::args::Output;
use crate::error::CliError;
use crate::render::{self, table};
use std::collections::BTreeMap;
use vd_server::redis::cluster::ClusterReport;
use vd_server::redis::info::{Endpoints, NodeInfo, RedisView};
use vd_server::redis::link::LinkRequest;
use vd_server::redis::sentinel::SentinelReport;
use vd_server::types::{FailoverReport, FailoverRequest};

pub(super) fn split(reference: &str) -> Result<(String, String), CliError> {
    let r = reference.strip_prefix("redis/").unwrap_or(reference);
    match r.split_once('/') {
        Some((s, n)) if !s.is_empty() && !n.is_empty() && !n.contains('/') => {
            Ok((s.to_string(), n.to_string()))
        }
        _ => Err(CliError::usage(
            format!("`{reference}` is not SCOPE/NAME"),
            "e.g. vd redis:info data/cache",
        )),
    }
}

/// `vd get redis`.
pub async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let list: Vec<RedisView> = ctx.client.get("/v1/redis").await?;
    render::print(ctx.output, &list, || {
        let mut t = table(&["SCOPE", "NAME", "READY", "MASTER", "MODE"]);
        for r in &list {
            t.add_row(vec![
                r.scope.clone(),
                r.name.clone(),
                format!("{}/{}", r.ready, r.replicas),
                r.master_pod.clone(),
                r.mode.clone(),
            ]);
        }
        t
    });
    Ok(())
}

/// `vd redis:link`.
pub async fn link(
    ctx: &Ctx,
    provider: &str,
    consumer: &str,
    (reads, sentinel, proxy): (bool, bool, bool),
    no_restart: bool,
) -> Result<(), CliError> {
    let (s, n) = split(provider)?;
    let req = LinkRequest {
        consumer: consumer.to_string(),
        reads,
        sentinel,
        proxy,
        no_restart,
    };
    let vars: BTreeMap<String, String> = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/link"), &req)
        .await?;
    if ctx.output == Output::Json {
        let keys: Vec<&String> = vars.keys().collect();
        outln!(
            "{}",
            serde_json::json!({ "linked": consumer, "vars": keys })
        );
        return Ok(());
    }
    outln!(
        "{consumer} linked to redis {s}/{n}: {}",
        vars.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    if !no_restart {
        outln!("{consumer}'s pods roll to pick it up");
    }
    Ok(())
}

/// `vd redis:unlink`.
pub async fn unlink(
    ctx: &Ctx,
    provider: &str,
    consumer: &str,
    no_restart: bool,
) -> Result<(), CliError> {
    let (s, n) = split(provider)?;
    let body = serde_json::json!({ "consumer": consumer, "no_restart": no_restart });
    let _: serde_json::Value = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/unlink"), &body)
        .await?;
    outln!("{consumer} unlinked from redis {s}/{n}");
    Ok(())
}

/// `vd redis:failover`.
pub async fn failover(
    ctx: &Ctx,
    reference: &str,
    replica: Option<u32>,
    shard: Option<u32>,
    no_restart: bool,
) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let req = FailoverRequest {
        replica,
        shard,
        no_restart,
    };
    let r: FailoverReport = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/failover"), &req)
        .await?;
    if ctx.output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else if let Some(shard) = shard {
        outln!(
            "redis {s}/{n}: shard {shard}'s master is now {n}-{} (was {n}-{}); switched in {} ms",
            r.to,
            r.from,
            r.write_pause_ms
        );
    } else if r.by_sentinels {
        outln!(
            "redis {s}/{n}: the sentinels promoted {n}-{} (was {n}-{}) and agreed in {} ms",
            r.to,
            r.from,
            r.write_pause_ms
        );
    } else {
        outln!(
            "redis {s}/{n}: master is now {n}-{} (was {n}-{}); writes were held {} ms",
            r.to,
            r.from,
            r.write_pause_ms
        );
    }
    Ok(())
}

async fn endpoints(ctx: &Ctx, reference: &str) -> Result<Endpoints, CliError> {
    let (s, n) = split(reference)?;
    ctx.client
        .get(&format!("/v1/redis/{s}/{n}/endpoints"))
        .await
}

/// `vd redis:url`.
pub async fn url(ctx: &Ctx, reference: &str, external: bool) -> Result<(), CliError> {
    let e = endpoints(ctx, reference).await?;
    if external {
        let host = e
            .external_host
            .ok_or_else(|| CliError::usage("the master pod is not running", "see `vd get pods`"))?;
        // The scheme and the password as the internal URL has them (`rediss://` for TLS, the
        // password percent-encoded). A TLS pod's certificate covers this address too.
        let (scheme, rest) = e.url.split_once("://").unwrap_or(("redis", &e.url));
        let pw = rest
            .strip_prefix("default:")
            .and_then(|r| r.rsplit_once('@'))
            .map_or(e.password.clone(), |(pw, _)| pw.to_string());
        outln!("{scheme}://default:{pw}@{host}:{}", e.port);
    } else {
        outln!("{}", e.url);
    }
    Ok(())
}

/// `vd redis:sentinel-url`.
pub async fn sentinel_url(ctx: &Ctx, reference: &str) -> Result<(), CliError> {
    let e = endpoints(ctx, reference).await?;
    let url = e.sentinel_url.ok_or_else(|| {
        CliError::usage(
            format!("no sentinel sibling watches {reference}"),
            "declare one: redis \"SCOPE\" \"NAME-ha\" { sentinel { monitor = \"SCOPE/NAME\" } }",
        )
    })?;
    outln!("{url}");
    // The URL carries no password (client libraries disagree on where one goes in it); how
    // to pass it goes to stderr, so scripts can still take the URL from stdout.
    if let Some(sentinel) = e.sentinel {
        eprintln!(
            "The sentinels require a password: REDIS_SENTINEL_PASSWORD in the bucket {sentinel} \
             (`vd config {sentinel} get REDIS_SENTINEL_PASSWORD`; `vd redis:link {reference} APP --sentinel` \
             writes it into an app's bucket). Clients pass it as the sentinels' password, apart from \
             the master's: redis-py `Sentinel(hosts, sentinel_kwargs={{\"password\": ...}})`, \
             ioredis `sentinelPassword`, go-redis `SentinelPassword`, redis-rb/Sidekiq \
             `sentinels: [{{host:, port:, password:}}]`."
        );
    }
    Ok(())
}

/// `vd redis:ca`.
pub async fn ca(ctx: &Ctx, reference: &str) -> Result<(), CliError> {
    let e = endpoints(ctx, reference).await?;
    let pem = e.ca_pem.ok_or_else(|| {
        CliError::usage(
            format!("{reference} does not speak TLS, so it has no CA"),
            "add `tls {}` to its redis block and apply",
        )
    })?;
    out!("{pem}");
    Ok(())
}

/// `vd redis:cli`: the password reaches redis-cli through REDISCLI_AUTH, never argv.
pub async fn cli(ctx: &Ctx, reference: &str, args: &[String]) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let e = endpoints(ctx, reference).await?;
    let host = e
        .external_host
        .ok_or_else(|| CliError::usage("the master pod is not running", "see `vd get pods`"))?;
    let mut cmd = std::process::Command::new("redis-cli");
    cmd.args(["-h", &host, "-p", &e.port.to_string()]);
    if let Some(ca) = &e.ca_file {
        cmd.args(["--tls", "--cacert", ca]);
    }
    if e.cluster {
        // Follow MOVED/ASK redirects to the node that serves each key's slot.
        cmd.arg("-c");
    }
    let err = cmd.args(args).env("REDISCLI_AUTH", &e.password).exec();
    Err(CliError::io(
        "run redis-cli (apt-get install redis-tools)",
        err,
    ))
}

/// `vd redis:info`.
pub async fn info(ctx: &Ctx, reference: &str) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let rows: Vec<NodeInfo> = ctx.client.get(&format!("/v1/redis/{s}/{n}/info")).await?;
    let sentinels: Option<SentinelReport> = ctx
        .client
        .get(&format!("/v1/redis/{s}/{n}/sentinels"))
        .await?;
    let cluster: Option<ClusterReport> = ctx
        .client
        .get(&format!("/v1/redis/{s}/{n}/cluster"))
        .await?;
    if ctx.output == Output::Json {
        let v = serde_json::json!({ "nodes": rows, "sentinels": sentinels, "cluster": cluster });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    render::print(ctx.output, &rows, || {
        let mut t = table(&[
            "ORDINAL", "ADDRESS", "ROLE", "OFFSET", "LAG", "LINK", "MEMORY", "CLIENTS",
        ]);
        for r in &rows {
            t.add_row(vec![
                r.ordinal.to_string(),
                r.address.clone(),
                r.error
                    .as_ref()
                    .map(|e| format!("{} ({e})", r.role))
                    .unwrap_or_else(|| r.role.clone()),
                r.offset.to_string(),
                r.lag_bytes
                    .map(|l| format!("{l} B"))
                    .unwrap_or_else(|| "-".into()),
                r.link.clone().unwrap_or_else(|| "-".into()),
                r.memory.clone(),
                r.clients.to_string(),
            ]);
        }
        t
    });
    if let Some(c) = cluster {
        outln!(
            "\ncluster_state {} (pod {} says): {}/16384 slots assigned, {} ok, {} of {} shards",
            c.state,
            c.answered_by,
            c.slots_assigned,
            c.slots_ok,
            c.shards.len(),
            c.shards_wanted
        );
        outln!("slot migration: {}", c.slot_migration);
        let pod = |o: Option<u32>| o.map_or_else(|| "?".to_string(), |o| o.to_string());
        let mut t = table(&[
            "SHARD",
            "SLOTS",
            "COUNT",
            "MASTER",
            "OFFSET",
            "REPLICAS (LAG)",
        ]);
        for sh in &c.shards {
            let master = if sh.master_state == "ok" {
                pod(sh.master)
            } else {
                format!("{} ({})", pod(sh.master), sh.master_state)
            };
            let replicas: Vec<String> = sh
                .replicas
                .iter()
                .map(|r| {
                    let lag = r
                        .lag_bytes
                        .map_or_else(|| "?".to_string(), |l| format!("{l} B"));
                    if r.state == "ok" {
                        format!("{} ({lag})", pod(r.pod))
                    } else {
                        format!("{} ({}, {lag})", pod(r.pod), r.state)
                    }
                })
                .collect();
            t.add_row(vec![
                sh.index.to_string(),
                sh.slots.clone(),
                sh.slot_count.to_string(),
                master,
                sh.master_offset
                    .map_or_else(|| "-".to_string(), |o| o.to_string()),
                if replicas.is_empty() {
                    "-".into()
                } else {
                    replicas.join(", ")
                },
            ]);
        }
        outln!("{t}");
    }
    if let Some(rep) = sentinels {
        outln!(
            "\nsentinels {} (quorum {}): {}",
            rep.sentinel,
            rep.quorum,
            if rep.healthy {
                "healthy, all agree"
            } else {
                "NOT healthy"
            }
        );
        let mut t = table(&[
            "ORDINAL", "ADDRESS", "MASTER", "PEERS", "REPLICAS", "CKQUORUM",
        ]);
        for r in &rep.rows {
            let dash = || "-".to_string();
            t.add_row(vec![
                r.ordinal.to_string(),
                r.address.clone(),
                r.error
                    .clone()
                    .map(|e| format!("unreachable ({e})"))
                    .or_else(|| {
                        r.master.as_ref().map(|m| match r.failing_over {
                            true => format!("{m} (failing over)"),
                            false => m.clone(),
                        })
                    })
                    .unwrap_or_else(dash),
                r.other_sentinels
                    .map(|v| v.to_string())
                    .unwrap_or_else(dash),
                r.replicas.map(|v| v.to_string()).unwrap_or_else(dash),
                r.quorum.clone(),
            ]);
        }
        outln!("{t}");
    }
    Ok(())
}

/// `vd redis:new-password`.
pub async fn new_password(ctx: &Ctx, reference: &str, no_restart: bool) -> Result<(), CliError> {
    let (s, n) = split(reference)?;
    let body = serde_json::json!({ "no_restart": no_restart });
    let _: serde_json::Value = ctx
        .client
        .post(&format!("/v1/redis/{s}/{n}/new-password"), &body)
        .await?;
    outln!("redis {s}/{n}: new password set on every pod and linked consumer (on a sentinel sibling: REDIS_SENTINEL_PASSWORD, on every sentinel and consumer linked with --sentinel); the old one no longer works");
    Ok(())
}
