//! The redis macro's server side: apply-time checks and password creation, links, live
//! switchover, info, and connection URLs. Decisions (link env, validation) are pure functions
//! in `vd_core::redis`; this module gathers their inputs and performs the IO.

use crate::controller::Controller;
use crate::error::ServerError;
use crate::types::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vd_core::env::EnvMap;
use vd_core::redis::{self as macro_, LinkMode};
use vd_core::template::{self, TemplateRef};
use vd_core::{AssetSpec, Kind, RedisSpec, Resource, ResourceRef, Spec};
use vd_redisctl::Node;

/// Bucket key of the generated password.
pub const PASSWORD: &str = "REDIS_PASSWORD";
/// Bucket key of the ordinal that boots as master.
pub const MASTER_ORDINAL: &str = "REDIS_MASTER_ORDINAL";
/// Bucket key listing linked consumers.
pub const CONSUMERS: &str = "REDIS_LINKED_CONSUMERS";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn problem(
    id: &ResourceRef,
    field: &str,
    message: String,
    help: Option<String>,
) -> Problem {
    Problem {
        resource: Some(id.clone()),
        field: field.to_string(),
        message,
        help,
    }
}

/// The redis spec of a stored or applied resource.
pub fn spec_of(r: &Resource) -> Option<&RedisSpec> {
    match &r.spec {
        Spec::Redis(s) => Some(s),
        _ => None,
    }
}

/// Current master ordinal from the resource's bucket (0 when unset or unreadable).
pub fn master_ordinal(ctl: &Controller, id: &ResourceRef) -> Result<u32, ServerError> {
    Ok(ctl
        .store
        .config_effective(&id.scope, &id.name)?
        .get(MASTER_ORDINAL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Seed 000's validation for one redis resource of an apply (`applied`: the whole apply).
pub fn validate(
    ctl: &Controller,
    r: &Resource,
    spec: &RedisSpec,
    assets: &BTreeMap<(String, String), AssetSpec>,
    applied: &[Resource],
) -> Result<Vec<Problem>, ServerError> {
    let mut out = Vec::new();
    let mut mounted: Vec<(usize, String)> = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        if let Ok(refs) = template::refs(&v.source) {
            for t in refs {
                if let TemplateRef::Asset { scope, name, key } = t {
                    if let Some(content) =
                        assets.get(&(scope, name)).and_then(|a| a.files.get(&key))
                    {
                        mounted.push((i, content.clone()));
                    }
                }
            }
        }
    }
    let mounted_refs: Vec<(usize, &str)> = mounted.iter().map(|(i, c)| (*i, c.as_str())).collect();
    // Before the split: it also refuses a `failover` block in a sentinel sibling.
    for p in macro_::validate_failover(spec)
        .into_iter()
        .chain(macro_::validate_proxy(spec))
        .chain(macro_::validate_backup(spec))
    {
        out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
    }
    if crate::workloads::is_sentinel(spec) {
        let overrides: Vec<(usize, &str)> = mounted_refs
            .iter()
            .filter(|(i, _)| macro_::is_sentinel_override_target(&spec.volumes[*i].target))
            .copied()
            .collect();
        for p in macro_::validate_sentinel_overrides(&overrides) {
            out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
        }
        out.extend(crate::sentinel::validate_monitor(ctl, r, spec, applied)?);
        return Ok(out);
    }
    for p in macro_::validate(spec, &mounted_refs) {
        out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
    }
    if crate::workloads::automatic_failover(spec) {
        // Sentinel siblings watching this redis once the apply is done: the stored ones it
        // does not replace, and its own (`sentinel::validate_monitor` covers a new sibling of a
        // stored redis).
        let stored = ctl.store.list(Some(Kind::Redis))?.into_iter();
        let after = stored
            .map(|s| s.resource)
            .filter(|s| !applied.iter().any(|a| a.id == s.id))
            .chain(applied.iter().cloned());
        for s in after {
            if spec_of(&s).and_then(crate::workloads::monitor_of).as_ref() == Some(&r.id) {
                let p = macro_::two_failure_detectors("failover", &r.id, &s.id);
                out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
            }
        }
    }
    if ctl.store.get(&r.id)?.is_some() {
        let m = master_ordinal(ctl, &r.id)?;
        if let Err(p) = macro_::check_scale(spec.replicas.unwrap_or(1), m) {
            out.push(problem(&r.id, &p.field, p.message, Some(p.help)));
        }
    }
    Ok(out)
}

/// A stand-in password so an apply can be validated before the real one is created.
pub fn password_overlay(ctl: &Controller, r: &Resource) -> Result<Option<EnvMap>, ServerError> {
    // A derived proxy reads the password of the redis it fronts, created with that redis.
    let bucket = match spec_of(r) {
        Some(_) => r.id.clone(),
        None => match crate::proxy::fronted(r) {
            Some(data) => data,
            None => return Ok(None),
        },
    };
    let own = ctl.store.config_effective(&bucket.scope, &bucket.name)?;
    Ok((!own.contains_key(PASSWORD))
        .then(|| EnvMap::from([(PASSWORD.to_string(), "validation".to_string())])))
}

/// 32 random bytes from the OS CSPRNG, hex.
pub fn new_password() -> Result<String, ServerError> {
    use rand::TryRngCore;
    let mut buf = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut buf).map_err(|e| {
        ServerError::io(
            "read the OS random source",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates the resource's password once; later applies reuse it.
pub fn ensure_password(ctl: &Controller, id: &ResourceRef) -> Result<(), ServerError> {
    let bucket = ctl.store.config_get(&id.scope, Some(&id.name))?;
    if !bucket.contains_key(PASSWORD) {
        let set = BTreeMap::from([(PASSWORD.to_string(), new_password()?)]);
        ctl.store
            .config_update(&id.scope, Some(&id.name), &set, &[])?;
        ctl.event(
            "info",
            Some(id),
            None,
            "PasswordCreated",
            "generated REDIS_PASSWORD in the resource's bucket",
        );
    }
    Ok(())
}

pub(crate) fn redis_ref(scope: &str, name: &str) -> ResourceRef {
    ResourceRef::new(Kind::Redis, scope, name)
}

pub(crate) fn load(ctl: &Controller, id: &ResourceRef) -> Result<RedisSpec, ServerError> {
    let stored = ctl
        .store
        .get(id)?
        .ok_or_else(|| ServerError::NotFound(format!("{id} does not exist")))?;
    match stored.resource.spec {
        Spec::Redis(s) => Ok(s),
        _ => Err(ServerError::NotFound(format!("{id} is not a redis"))),
    }
}

pub(crate) fn password(ctl: &Controller, id: &ResourceRef) -> Result<String, ServerError> {
    ctl.store
        .config_effective(&id.scope, &id.name)?
        .get(PASSWORD)
        .cloned()
        .ok_or_else(|| ServerError::Conflict {
            message: format!("{id} has no REDIS_PASSWORD in its bucket"),
            help: Some("re-apply the manifest; vd creates it".into()),
        })
}

/// `POST /v1/redis/{scope}/{name}/link`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRequest {
    /// `scope/name` of the consumer's bucket.
    pub consumer: String,
    /// Only a round-robin URL.
    #[serde(default)]
    pub reads: bool,
    /// Seed 000's sentinel variables (REDIS_URL, REDIS_SENTINEL_HOSTS, REDIS_MASTER_NAME).
    #[serde(default)]
    pub sentinel: bool,
    /// REDIS_URL and REDIS_READ_URL on the redis's proxy.
    #[serde(default)]
    pub proxy: bool,
    /// Don't roll the consumer.
    #[serde(default)]
    pub no_restart: bool,
}

fn link_key(provider: &ResourceRef, consumer: &str) -> String {
    format!("redis-link:{provider}:{consumer}")
}

fn split_consumer(c: &str) -> Result<(String, String), ServerError> {
    match c.split_once('/') {
        Some((s, n))
            if vd_core::validate_label("scope", s).is_ok()
                && vd_core::validate_label("name", n).is_ok() =>
        {
            Ok((s.to_string(), n.to_string()))
        }
        _ => Err(ServerError::invalid(Problem {
            resource: None,
            field: "consumer".into(),
            message: format!("consumer `{c}` is not SCOPE/NAME"),
            help: Some("e.g. vd redis:link data/cache web/app".into()),
        })),
    }
}

/// How a consumer is linked (stored per link so rewrites keep the mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `REDIS_URL` (+ `REDIS_READ_URL`), or `--reads`.
    Plain(LinkMode),
    /// `--sentinel`.
    Sentinel,
    /// `--proxy`, and a default link while the redis has a proxy.
    Proxy,
}

impl Link {
    fn stored(&self) -> &'static str {
        match self {
            Link::Plain(LinkMode::Reads) => "reads",
            Link::Plain(LinkMode::Default) => "default",
            Link::Sentinel => "sentinel",
            Link::Proxy => "proxy",
        }
    }

    fn from_stored(s: Option<&str>) -> Link {
        match s {
            Some("reads") => Link::Plain(LinkMode::Reads),
            Some("sentinel") => Link::Sentinel,
            Some("proxy") => Link::Proxy,
            _ => Link::Plain(LinkMode::Default),
        }
    }
}

fn no_proxy(provider: &ResourceRef) -> ServerError {
    ServerError::Conflict {
        message: format!("{provider} has no proxy"),
        help: Some(format!(
            "add `proxy {{}}` to `redis \"{}\" \"{}\"` and apply it, or link without --proxy",
            provider.scope, provider.name
        )),
    }
}

fn no_sentinel(provider: &ResourceRef) -> ServerError {
    ServerError::Conflict {
        message: format!("no sentinel sibling watches {provider}"),
        help: Some(format!(
            "declare `redis \"{}\" \"{}-ha\" {{ sentinel {{ monitor = \"{}/{}\" }} }}` and apply it, or link without --sentinel",
            provider.scope, provider.name, provider.scope, provider.name
        )),
    }
}

/// Writes one consumer's link env for the provider's current state.
fn write_link(
    ctl: &Controller,
    provider: &ResourceRef,
    consumer: &str,
    mode: Link,
    no_restart: bool,
) -> Result<(), ServerError> {
    let spec = load(ctl, provider)?;
    let (scope, name) = split_consumer(consumer)?;
    let master = master_ordinal(ctl, provider)?;
    let pw = password(ctl, provider)?;
    let env = match mode {
        Link::Proxy => {
            if !crate::proxy::has_proxy(ctl, provider)? {
                return Err(no_proxy(provider));
            }
            macro_::proxy_link_env(provider, &pw)
        }
        Link::Plain(LinkMode::Default) if crate::proxy::has_proxy(ctl, provider)? => {
            macro_::proxy_link_env(provider, &pw)
        }
        Link::Plain(mode) => {
            macro_::link_env(provider, spec.replicas.unwrap_or(1), master, &pw, mode)
        }
        Link::Sentinel => {
            let (sid, sspec) =
                crate::sentinel::watcher_of(ctl, provider)?.ok_or_else(|| no_sentinel(provider))?;
            macro_::sentinel_link_env(
                provider,
                master,
                &pw,
                &sid,
                sspec.replicas.unwrap_or(macro_::SENTINEL_DEFAULT_REPLICAS),
            )
        }
    };
    let unset: Vec<String> = macro_::LINK_VARS
        .iter()
        .filter(|k| !env.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    ctl.update_config(&scope, Some(&name), &env, &unset, no_restart)?;
    Ok(())
}

/// `vd redis:link`.
pub fn link(
    ctl: &Controller,
    scope: &str,
    name: &str,
    req: &LinkRequest,
) -> Result<EnvMap, ServerError> {
    let provider = redis_ref(scope, name);
    let spec = load(ctl, &provider)?;
    if crate::workloads::is_sentinel(&spec) {
        return Err(ServerError::Conflict {
            message: format!("{provider} is a sentinel sibling; link the data redis it watches"),
            help: Some(format!(
                "vd redis:link {} {} --sentinel",
                spec.sentinel
                    .as_ref()
                    .and_then(|s| s.monitor.clone())
                    .unwrap_or_else(|| "SCOPE/NAME".into()),
                req.consumer
            )),
        });
    }
    let mode = match (req.reads, req.sentinel, req.proxy) {
        (false, false, false) => Link::Plain(LinkMode::Default),
        (true, false, false) => Link::Plain(LinkMode::Reads),
        (false, true, false) => Link::Sentinel,
        (false, false, true) => Link::Proxy,
        _ => {
            return Err(ServerError::Conflict {
                message: "--reads, --sentinel and --proxy exclude each other".into(),
                help: Some("pick one".into()),
            })
        }
    };
    write_link(ctl, &provider, &req.consumer, mode, req.no_restart)?;
    ctl.store
        .meta_set(&link_key(&provider, &req.consumer), mode.stored())?;
    let mut consumers = consumers(ctl, &provider)?;
    consumers.push(req.consumer.clone());
    let set = BTreeMap::from([(CONSUMERS.to_string(), macro_::format_consumers(&consumers))]);
    ctl.update_config(scope, Some(name), &set, &[], true)?;
    ctl.event(
        "info",
        Some(&provider),
        None,
        "Linked",
        &format!("{} ({})", req.consumer, mode.stored()),
    );
    let (cs, cn) = split_consumer(&req.consumer)?;
    let vars = ctl.store.config_get(&cs, Some(&cn))?;
    Ok(vars
        .into_iter()
        .filter(|(k, _)| macro_::LINK_VARS.contains(&k.as_str()))
        .collect())
}

fn consumers(ctl: &Controller, provider: &ResourceRef) -> Result<Vec<String>, ServerError> {
    Ok(ctl
        .store
        .config_get(&provider.scope, Some(&provider.name))?
        .get(CONSUMERS)
        .map(|v| macro_::parse_consumers(v))
        .unwrap_or_default())
}

/// `vd redis:unlink`: removes exactly what link added.
pub fn unlink(
    ctl: &Controller,
    scope: &str,
    name: &str,
    consumer: &str,
    no_restart: bool,
) -> Result<(), ServerError> {
    let provider = redis_ref(scope, name);
    let (cs, cn) = split_consumer(consumer)?;
    let mut list = consumers(ctl, &provider)?;
    if !list.iter().any(|c| c == consumer) {
        return Err(ServerError::NotFound(format!(
            "{consumer} is not linked to {provider}"
        )));
    }
    list.retain(|c| c != consumer);
    let unset: Vec<String> = macro_::LINK_VARS.iter().map(|k| k.to_string()).collect();
    ctl.update_config(&cs, Some(&cn), &BTreeMap::new(), &unset, no_restart)?;
    if list.is_empty() {
        ctl.update_config(
            scope,
            Some(name),
            &BTreeMap::new(),
            &[CONSUMERS.to_string()],
            true,
        )?;
    } else {
        let set = BTreeMap::from([(CONSUMERS.to_string(), macro_::format_consumers(&list))]);
        ctl.update_config(scope, Some(name), &set, &[], true)?;
    }
    ctl.store.meta_delete(&link_key(&provider, consumer))?;
    ctl.event("info", Some(&provider), None, "Unlinked", consumer);
    Ok(())
}

/// Rewrites every consumer's link (after a failover or password change).
pub fn rewrite_consumers(
    ctl: &Controller,
    provider: &ResourceRef,
    no_restart: bool,
) -> Result<(), ServerError> {
    for c in consumers(ctl, provider)? {
        let mode = Link::from_stored(ctl.store.meta_get(&link_key(provider, &c))?.as_deref());
        write_link(ctl, provider, &c, mode, no_restart)?;
    }
    Ok(())
}

/// The pods of a redis as (ordinal, ip).
pub(crate) fn pod_ips(ctl: &Controller, id: &ResourceRef) -> BTreeMap<u32, String> {
    ctl.pod_views()
        .into_iter()
        .filter(|p| {
            p.kind == id.kind && p.scope == id.scope && p.name == id.name && !p.ip.is_empty()
        })
        .map(|p| (p.ordinal, p.ip))
        .collect()
}

pub(crate) async fn connect(ip: &str, pw: &str) -> Result<Node, ServerError> {
    Node::connect(ip, macro_::REDIS_PORT, Some(pw), CONNECT_TIMEOUT)
        .await
        .map_err(redis_err)
}

pub(crate) fn redis_err(e: vd_redisctl::RedisError) -> ServerError {
    ServerError::Conflict {
        message: e.to_string(),
        help: None,
    }
}

/// `POST /v1/redis/{scope}/{name}/failover`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FailoverRequest {
    /// Ordinal to promote (default: the replica with the highest offset).
    pub replica: Option<u32>,
    /// Don't roll linked consumers.
    #[serde(default)]
    pub no_restart: bool,
}

/// What a switchover did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverReport {
    /// Old master ordinal.
    pub from: u32,
    /// New master ordinal.
    pub to: u32,
    /// How long writes were held, ms (with sentinels: how long they took to agree).
    pub write_pause_ms: u64,
    /// Whether sentinels performed it.
    #[serde(default)]
    pub by_sentinels: bool,
}

/// `vd redis:failover`: a live switchover, no pod restarted, no acknowledged write lost.
pub async fn failover(
    ctl: &Arc<Controller>,
    scope: &str,
    name: &str,
    req: &FailoverRequest,
) -> Result<FailoverReport, ServerError> {
    let id = redis_ref(scope, name);
    let spec = load(ctl, &id)?;
    if let Some((sid, sspec)) = crate::sentinel::watcher_of(ctl, &id)? {
        return crate::sentinel::failover(ctl, &id, &sid, &sspec, req).await;
    }
    let replicas = spec.replicas.unwrap_or(1);
    let _paused = ctl.failover.pause(&id);
    let from = master_ordinal(ctl, &id)?;
    let conflict = |m: String, h: &str| ServerError::Conflict {
        message: m,
        help: Some(h.to_string()),
    };
    if replicas < 2 {
        return Err(conflict(
            format!("{id} has one pod; there is no replica to promote"),
            "scale it to replicas = 3 first",
        ));
    }
    let pw = password(ctl, &id)?;
    let ips = pod_ips(ctl, &id);
    let to = match req.replica {
        Some(n) if n >= replicas => {
            return Err(conflict(
                format!("{id} has no ordinal {n} (replicas = {replicas})"),
                "pick an ordinal from `vd redis:info`",
            ))
        }
        Some(n) if n == from => {
            return Err(conflict(
                format!("ordinal {n} is already the master"),
                "pick a replica",
            ))
        }
        Some(n) => n,
        None => {
            let mut best: Option<(i64, u32)> = None;
            for (o, ip) in &ips {
                if *o == from {
                    continue;
                }
                if let Ok(mut n) = connect(ip, &pw).await {
                    if let Ok(r) = n.replication().await {
                        let off = r.replica_repl_offset.unwrap_or(0);
                        if r.link_up && best.is_none_or(|(b, _)| off > b) {
                            best = Some((off, *o));
                        }
                    }
                }
            }
            best.map(|(_, o)| o).ok_or_else(|| {
                conflict(
                    "no replica is connected to the master".into(),
                    "check `vd redis:info`",
                )
            })?
        }
    };
    let (Some(master_ip), Some(target_ip)) = (ips.get(&from), ips.get(&to)) else {
        return Err(conflict(
            format!("pods {from} and {to} must both be running"),
            "check `vd get pods`",
        ));
    };
    let mut master = connect(master_ip, &pw).await?;
    let mut target = connect(target_ip, &pw).await?;
    let mut others = Vec::new();
    for (o, ip) in &ips {
        if *o != from && *o != to {
            others.push(connect(ip, &pw).await?);
        }
    }
    let target_host = vd_core::naming::pod_hostnames(&id, to)[1].clone();
    // Proxies hold new commands and finish those in flight before writes pause, so their
    // clients see a delay, not an error.
    crate::proxy::hold(ctl, &id, from).await?;
    let switched = vd_redisctl::switchover::switchover(
        &mut master,
        &mut target,
        &mut others,
        &target_host,
        macro_::REDIS_PORT,
        Duration::from_secs(5),
    )
    .await;
    let now = if switched.is_ok() { to } else { from };
    crate::proxy::publish(ctl, &id, now, false)?;
    let report = switched.map_err(redis_err)?;
    // The redis pods keep running as they are: the new ordinal reaches them on their next
    // restart (their entrypoint then boots the right role).
    let set = BTreeMap::from([(MASTER_ORDINAL.to_string(), to.to_string())]);
    ctl.update_config(scope, Some(name), &set, &[], true)?;
    rewrite_consumers(ctl, &id, req.no_restart)?;
    let pause = report.write_pause.as_millis() as u64;
    ctl.metrics
        .failover(&id, "manual", report.write_pause.as_secs_f64());
    ctl.event(
        "info",
        Some(&id),
        None,
        "Failover",
        &format!("master {from} -> {to}, writes paused {pause} ms"),
    );
    Ok(FailoverReport {
        from,
        to,
        write_pause_ms: pause,
        by_sentinels: false,
    })
}

/// `vd redis:new-password`: every pod accepts the new password before anything else changes,
/// consumers get it next, and only then is the old one revoked, so no consumer ever holds a
/// password the server rejects. No redis pod restarts.
pub async fn rotate_password(
    ctl: &Controller,
    scope: &str,
    name: &str,
    no_restart: bool,
) -> Result<(), ServerError> {
    let id = redis_ref(scope, name);
    load(ctl, &id)?;
    let old = password(ctl, &id)?;
    let new = new_password()?;
    let ips = pod_ips(ctl, &id);
    let mut nodes = Vec::new();
    for (o, ip) in &ips {
        nodes.push(connect(ip, &old).await.map_err(|e| ServerError::Conflict {
            message: format!("pod {o} is unreachable ({e}); nothing changed"),
            help: Some("wait until every pod is ready (`vd get pods`), then retry".into()),
        })?);
    }
    for n in nodes.iter_mut() {
        n.add_default_password(&new).await.map_err(redis_err)?;
        n.config_set("masterauth", &new).await.map_err(redis_err)?;
    }
    // Sentinels authenticate to the pods too: they move to the new password while both work.
    crate::sentinel::set_auth_pass(ctl, &id, &new).await?;
    // The pods keep running: their env (REDISCLI_AUTH for probes) is refreshed in place and
    // the new password is what their entrypoint uses on the next restart.
    let set = BTreeMap::from([(PASSWORD.to_string(), new.clone())]);
    ctl.update_config(scope, Some(name), &set, &[], true)?;
    ctl.refresh_probe_env(&id);
    rewrite_consumers(ctl, &id, no_restart)?;
    for n in nodes.iter_mut() {
        n.remove_default_password(&old).await.map_err(redis_err)?;
    }
    ctl.event(
        "info",
        Some(&id),
        None,
        "PasswordRotated",
        "REDIS_PASSWORD replaced on every pod and linked consumer",
    );
    Ok(())
}

/// One row of `vd redis:info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Ordinal.
    pub ordinal: u32,
    /// ip:port.
    pub address: String,
    /// master / replica / unreachable.
    pub role: String,
    /// Replication offset.
    pub offset: i64,
    /// Bytes behind the master (replicas).
    pub lag_bytes: Option<i64>,
    /// Link to master up (replicas).
    pub link: Option<String>,
    /// used_memory_human.
    pub memory: String,
    /// connected_clients.
    pub clients: i64,
    /// Error talking to it.
    pub error: Option<String>,
}

/// `vd redis:info`.
pub async fn info(ctl: &Controller, scope: &str, name: &str) -> Result<Vec<NodeInfo>, ServerError> {
    let id = redis_ref(scope, name);
    load(ctl, &id)?;
    let pw = password(ctl, &id)?;
    let mut rows = Vec::new();
    let mut master_offset = None;
    for (o, ip) in pod_ips(ctl, &id) {
        let address = format!("{ip}:{}", macro_::REDIS_PORT);
        let row = match connect(&ip, &pw).await {
            Ok(mut n) => match n.info(None).await {
                Ok(info) => {
                    let r = info.replication();
                    let role = match r.role {
                        vd_redisctl::Role::Master => "master",
                        vd_redisctl::Role::Replica => "replica",
                        vd_redisctl::Role::Unknown => "unknown",
                    };
                    if role == "master" {
                        master_offset = Some(r.master_repl_offset);
                    }
                    NodeInfo {
                        ordinal: o,
                        address,
                        role: role.into(),
                        offset: r.replica_repl_offset.unwrap_or(r.master_repl_offset),
                        lag_bytes: None,
                        link: (role == "replica").then(|| {
                            if r.link_up {
                                "up".into()
                            } else {
                                "down".into()
                            }
                        }),
                        memory: info.get("used_memory_human").unwrap_or("-").to_string(),
                        clients: info.num("connected_clients"),
                        error: None,
                    }
                }
                Err(e) => unreachable_row(o, address, e.to_string()),
            },
            Err(e) => unreachable_row(o, address, e.to_string()),
        };
        rows.push(row);
    }
    if let Some(m) = master_offset {
        for r in rows.iter_mut().filter(|r| r.role == "replica") {
            r.lag_bytes = Some((m - r.offset).max(0));
        }
    }
    Ok(rows)
}

fn unreachable_row(ordinal: u32, address: String, error: String) -> NodeInfo {
    NodeInfo {
        ordinal,
        address,
        role: "unreachable".into(),
        offset: 0,
        lag_bytes: None,
        link: None,
        memory: "-".into(),
        clients: 0,
        error: Some(error),
    }
}

/// Connection facts for `vd redis:url` and `vd redis:cli` (the password is only ever handed
/// to the local CLI over the 0600 socket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    /// Internal URL of the master (per-pod name).
    pub url: String,
    /// Internal round-robin URL.
    pub read_url: String,
    /// Master address reachable from the host.
    pub external_host: Option<String>,
    /// Port.
    pub port: u16,
    /// Master ordinal.
    pub master: u32,
    /// Password.
    pub password: String,
    /// `redis-sentinel://h1:26379,.../voodu-master` when sentinels watch it.
    pub sentinel_url: Option<String>,
}

/// `vd redis:url` / `vd redis:cli`.
pub fn endpoints(ctl: &Controller, scope: &str, name: &str) -> Result<Endpoints, ServerError> {
    let asked = redis_ref(scope, name);
    let asked_spec = load(ctl, &asked)?;
    // A sentinel sibling answers for the redis it watches.
    let (id, spec) = match crate::workloads::monitor_of(&asked_spec) {
        Some(data) => {
            let spec = load(ctl, &data)?;
            (data, spec)
        }
        None => (asked, asked_spec),
    };
    let sentinel_url = crate::sentinel::watcher_of(ctl, &id)?.map(|(sid, sspec)| {
        macro_::sentinel_url(
            &sid,
            sspec.replicas.unwrap_or(macro_::SENTINEL_DEFAULT_REPLICAS),
        )
    });
    let pw = password(ctl, &id)?;
    let master = master_ordinal(ctl, &id)?;
    let env = macro_::link_env(
        &id,
        spec.replicas.unwrap_or(1),
        master,
        &pw,
        LinkMode::Default,
    );
    let url = env.get("REDIS_URL").cloned().unwrap_or_default();
    let read_url = env
        .get("REDIS_READ_URL")
        .cloned()
        .unwrap_or_else(|| url.clone());
    Ok(Endpoints {
        url,
        read_url,
        external_host: pod_ips(ctl, &id).get(&master).cloned(),
        port: macro_::REDIS_PORT,
        master,
        password: pw,
        sentinel_url,
    })
}

/// A redis as `vd get redis` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisView {
    /// Scope.
    pub scope: String,
    /// Name.
    pub name: String,
    /// Ready pods.
    pub ready: u32,
    /// Desired pods.
    pub replicas: u32,
    /// Master ordinal.
    pub master: u32,
    /// The master pod (`cache-0`); for a sentinel sibling, that of the redis it watches.
    pub master_pod: String,
    /// standalone, replicated, HA, sentinel.
    pub mode: String,
}

/// `vd get redis`.
pub fn list(ctl: &Controller) -> Result<Vec<RedisView>, ServerError> {
    let mut out = Vec::new();
    for s in ctl.store.list(Some(Kind::Redis))? {
        let Some(spec) = spec_of(&s.resource) else {
            continue;
        };
        let replicas = spec
            .replicas
            .unwrap_or(if crate::workloads::is_sentinel(spec) {
                macro_::SENTINEL_DEFAULT_REPLICAS
            } else {
                1
            });
        let st = ctl.workload_status(&s.resource.id).unwrap_or_default();
        let data = crate::workloads::monitor_of(spec).unwrap_or_else(|| s.resource.id.clone());
        let master = master_ordinal(ctl, &data)?;
        out.push(RedisView {
            scope: s.resource.id.scope.clone(),
            name: s.resource.id.name.clone(),
            ready: st.ready,
            replicas,
            master,
            master_pod: format!("{}-{master}", data.name),
            mode: if let Some(m) = crate::workloads::monitor_of(spec) {
                format!("sentinel (watches {}/{})", m.scope, m.name)
            } else if let Some((sid, _)) = crate::sentinel::watcher_of(ctl, &s.resource.id)? {
                format!("HA (sentinel {}/{})", sid.scope, sid.name)
            } else if replicas > 1 {
                "replicated (manual failover)".into()
            } else {
                "standalone".into()
            },
        });
    }
    Ok(out)
}

/// Bucket keys of the HA-mode write guard (DESIGN.md "Redis macro"): read by the entrypoint.
pub const MIN_REPLICAS_TO_WRITE: &str = "REDIS_MIN_REPLICAS_TO_WRITE";
/// See [`MIN_REPLICAS_TO_WRITE`].
pub const MIN_REPLICAS_MAX_LAG: &str = "REDIS_MIN_REPLICAS_MAX_LAG";

/// In HA modes (a sentinel watches the redis, or automatic failover), a master accepts writes
/// only while a replica acknowledged within 10 s: an isolated or returning old master then
/// refuses writes instead of acknowledging ones the failover will discard. Written once into
/// the bucket at apply (the operator may change or unset the keys there; a file in conf.d
/// also wins), before the apply computes the hash it waits for, without restarting pods.
pub fn ensure_ha_bucket(ctl: &Controller, id: &ResourceRef) -> Result<(), ServerError> {
    let bucket = ctl.store.config_effective(&id.scope, &id.name)?;
    if bucket.contains_key(MIN_REPLICAS_TO_WRITE) || ctl.store.meta_get(&ha_key(id))?.is_some() {
        return Ok(());
    }
    let set = BTreeMap::from([
        (MIN_REPLICAS_TO_WRITE.to_string(), "1".to_string()),
        (MIN_REPLICAS_MAX_LAG.to_string(), "10".to_string()),
    ]);
    ctl.update_config(&id.scope, Some(&id.name), &set, &[], true)?;
    // Once: an operator who unsets the keys later keeps them unset.
    ctl.store.meta_set(&ha_key(id), "pending-live")?;
    Ok(())
}

/// After [`ensure_ha_bucket`], once the redis is between rollouts: the pods already running
/// get the guard live (`CONFIG SET`), unless they mount conf.d files, whose settings must keep
/// winning; they get it from the bucket on their next start anyway.
pub async fn ensure_ha_live(ctl: &Controller, id: &ResourceRef) -> Result<(), ServerError> {
    if ctl.store.meta_get(&ha_key(id))?.as_deref() != Some("pending-live")
        || !ctl.workload_status(id).is_some_and(|s| s.converged)
    {
        return Ok(());
    }
    let spec = load(ctl, id)?;
    let conf_d = spec
        .volumes
        .iter()
        .any(|v| v.target.starts_with(macro_::CONF_D));
    if !conf_d {
        let pw = password(ctl, id)?;
        for (o, ip) in pod_ips(ctl, id) {
            let applied = async {
                let mut n = connect(&ip, &pw).await?;
                for (k, v) in [
                    ("min-replicas-to-write", "1"),
                    ("min-replicas-max-lag", "10"),
                ] {
                    n.config_set(k, v).await.map_err(redis_err)?;
                }
                Ok::<_, ServerError>(())
            };
            if let Err(e) = applied.await {
                // It gets the setting from the bucket when it next starts.
                tracing::warn!(redis = %id, ordinal = o, error = %e, "could not set min-replicas live");
            }
        }
    }
    ctl.store.meta_set(&ha_key(id), "done")?;
    Ok(())
}

fn ha_key(id: &ResourceRef) -> String {
    format!("ha-settings:{id}")
}
