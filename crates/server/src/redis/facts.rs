//! Facts about a redis that every Redis operation needs: its spec, password, master ordinal,
//! pod addresses, who watches it (sentinels) and what fronts it (a proxy), and one way to
//! connect to its pods. Read from the store and the pod table; nothing here changes anything.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::types::Problem;
use std::collections::BTreeMap;
use std::time::Duration;
use vd_core::redis as macro_;
use vd_core::redis::failover::{NodeInfo, NodeRole};
use vd_core::redis::proxy as proxy_core;
use vd_core::{Kind, RedisSpec, Resource, ResourceRef, Spec};
use vd_redisctl::{Access, Info, Node, Role, TlsTrust};
use vd_store::MetaKey;

/// Bucket key of the generated password.
pub const PASSWORD: &str = macro_::PASSWORD_VAR;

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

/// How vd's connections reach a data redis's pods: as `default` with its password, and over
/// TLS, trusting the root's CA, when it speaks TLS only. Every connection to its pods goes
/// through one of these, so none can forget the TLS.
#[derive(Clone)]
pub(crate) struct Auth {
    /// `REDIS_PASSWORD`.
    pub password: String,
    /// The CA its pods' certificates chain to, when it speaks TLS only.
    pub tls: Option<TlsTrust>,
}

// Hand-written so the password never reaches a log through `{:?}`.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// What a connection of vd-redisctl takes.
    pub fn access(&self) -> Access<'_> {
        Access {
            password: Some(&self.password),
            tls: self.tls.as_ref(),
        }
    }
}

/// How vd reaches the pods of the data redis `id`: its password and, when its spec has `tls`,
/// the root's CA.
pub(crate) fn auth(ctl: &Controller, id: &ResourceRef) -> Result<Auth, ServerError> {
    let password = password(ctl, id)?;
    let spec = load(ctl, id)?;
    let tls = if macro_::tls::is_tls(&spec) {
        Some(TlsTrust::new(
            ctl.certs.ca_pem().map_err(ServerError::from)?,
        ))
    } else {
        None
    };
    Ok(Auth { password, tls })
}

/// The password of a sentinel sibling's sentinels, from its own bucket level (the scope level
/// may hold another resource's). `None` for sentinels applied before sentinels had passwords:
/// they run without one until the sibling is applied again.
pub(crate) fn sentinel_password(
    ctl: &Controller,
    sentinel: &ResourceRef,
) -> Result<Option<String>, ServerError> {
    Ok(ctl
        .store
        .config_get(&sentinel.scope, Some(&sentinel.name))?
        .get(macro_::SENTINEL_PASSWORD_VAR)
        .filter(|p| !p.is_empty())
        .cloned())
}

/// How vd reaches a sentinel sibling's sentinels: with their password (`None` for sentinels
/// applied before sentinels had one) and, for a TLS sibling, over TLS trusting the root's CA.
#[derive(Clone, Default)]
pub(crate) struct SentinelAuth {
    /// `REDIS_SENTINEL_PASSWORD`.
    pub password: Option<String>,
    /// The CA the sentinels' certificates chain to, when they speak TLS only.
    pub tls: Option<TlsTrust>,
}

// Hand-written so the password never reaches a log through `{:?}`.
impl std::fmt::Debug for SentinelAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelAuth")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl SentinelAuth {
    /// What a connection of vd-redisctl takes.
    pub fn access(&self) -> Access<'_> {
        Access {
            password: self.password.as_deref(),
            tls: self.tls.as_ref(),
        }
    }
}

/// How vd reaches the sentinels of the sibling `sentinel`.
pub(crate) fn sentinel_auth(
    ctl: &Controller,
    sentinel: &ResourceRef,
) -> Result<SentinelAuth, ServerError> {
    let password = sentinel_password(ctl, sentinel)?;
    let tls = match load(ctl, sentinel) {
        Ok(spec) if macro_::tls::is_tls(&spec) => Some(TlsTrust::new(
            ctl.certs.ca_pem().map_err(ServerError::from)?,
        )),
        _ => None,
    };
    Ok(SentinelAuth { password, tls })
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

pub(crate) async fn connect(ip: &str, auth: &Auth) -> Result<Node, ServerError> {
    Node::connect_with(ip, macro_::REDIS_PORT, auth.access(), CONNECT_TIMEOUT)
        .await
        .map_err(redis_err)
}

/// A Redis client error as the API answers it: a pod that cannot be reached (or dropped the
/// connection) is unavailable (503), one that did not answer in time a timeout (504), and an
/// error reply or a refused state a conflict with the current state (409).
pub(crate) fn redis_err(e: vd_redisctl::RedisError) -> ServerError {
    use vd_redisctl::RedisError as E;
    let message = e.to_string();
    match &e {
        E::Unreachable { .. } => ServerError::Unavailable {
            message,
            help: Some("check the pod with `vd get pods` and `vd logs`".into()),
        },
        E::Command { source, .. } if source.is_timeout() => ServerError::Timeout {
            message,
            help: None,
        },
        E::Command { source, .. } if source.is_io_error() || source.is_connection_dropped() => {
            ServerError::Unavailable {
                message,
                help: Some("check the pod with `vd get pods` and `vd logs`".into()),
            }
        }
        E::Timeout(_) => ServerError::Timeout {
            message,
            help: None,
        },
        E::Command { .. } | E::State(_) => ServerError::Conflict {
            message,
            help: None,
        },
    }
}

/// The sentinel sibling watching `data`, if one is stored.
pub fn watcher_of(
    ctl: &Controller,
    data: &ResourceRef,
) -> Result<Option<(ResourceRef, RedisSpec)>, ServerError> {
    for s in ctl.store.list(Some(Kind::Redis))? {
        if let Spec::Redis(spec) = s.resource.spec {
            if vd_core::redis::topology::monitor_of(&spec).as_ref() == Some(data) {
                return Ok(Some((s.resource.id, spec)));
            }
        }
    }
    Ok(None)
}

/// How many sentinel pods a sibling runs.
pub(crate) fn sentinel_count(spec: &RedisSpec) -> u32 {
    spec.replicas.unwrap_or(macro_::SENTINEL_DEFAULT_REPLICAS)
}

/// The ordinal of a data pod from the host sentinel reports: its announced name
/// (`cache-1.data.voodu`, `cache-1.data`) or, failing that, its address.
pub fn ordinal_of_host(data: &ResourceRef, host: &str, ips: &BTreeMap<u32, String>) -> Option<u32> {
    let prefix = format!("{}-", data.name);
    let suffix = format!(".{}", data.scope);
    let base = host.strip_suffix(".voodu").unwrap_or(host);
    if let Some(ord) = base
        .strip_suffix(&suffix)
        .and_then(|b| b.strip_prefix(&prefix))
        .and_then(|o| o.parse().ok())
    {
        return Some(ord);
    }
    ips.iter()
        .find(|(_, ip)| ip.as_str() == host)
        .map(|(o, _)| *o)
}

/// The derived proxy's id for a data redis.
pub fn proxy_ref(data: &ResourceRef) -> ResourceRef {
    ResourceRef::new(
        Kind::Statefulset,
        &data.scope,
        proxy_core::proxy_name(&data.name),
    )
}

/// The store's record that the server derived `id` (a proxy statefulset).
pub(crate) fn marker(id: &ResourceRef) -> MetaKey {
    MetaKey::ProxyDerived(id.clone())
}

/// The data redis a derived proxy statefulset fronts (from its spec).
pub fn fronted(r: &Resource) -> Option<ResourceRef> {
    let Spec::Workload(w) = &r.spec else {
        return None;
    };
    let is_proxy = r.id.kind == Kind::Statefulset
        && w.command.first().map(String::as_str) == Some(proxy_core::PROXY_EXE_PATH)
        && w.command.get(1).map(String::as_str) == Some("proxy");
    let (scope, name) = w.env_from.first()?.split_once('/')?;
    (is_proxy && proxy_core::proxy_name(name) == r.id.name)
        .then(|| ResourceRef::new(Kind::Redis, scope, name))
}

/// Whether `data` has a proxy the server derived.
pub fn has_proxy(ctl: &Controller, data: &ResourceRef) -> Result<bool, ServerError> {
    let id = proxy_ref(data);
    Ok(ctl.store.meta(&marker(&id))?.is_some() && ctl.store.get(&id)?.is_some())
}

/// Pure: `INFO` as the planner sees it.
pub fn node_info(id: &ResourceRef, info: &Info, ips: &BTreeMap<u32, String>) -> NodeInfo {
    let rep = info.replication();
    let role = match rep.role {
        Role::Master => NodeRole::Master,
        _ => NodeRole::Replica {
            following: rep
                .master_host
                .as_deref()
                .and_then(|h| ordinal_of_host(id, h, ips)),
            link_up: rep.link_up,
        },
    };
    let keys = info
        .sections
        .get("keyspace")
        .map(|dbs| {
            dbs.values()
                .filter_map(|v| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("keys="))
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum()
        })
        .unwrap_or(0);
    NodeInfo {
        role,
        replid: rep.replid,
        replid2: rep.replid2,
        offset: rep.master_repl_offset,
        priority: rep.priority.unwrap_or(100),
        loading: rep.loading,
        run_id: info.get("run_id").unwrap_or_default().to_string(),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn redis_errors_answer_with_what_happened() {
        use vd_redisctl::RedisError as E;
        let status = |e: E| redis_err(e).into_response().status().as_u16();
        let unreachable = E::Unreachable {
            addr: "127.0.0.1:6379".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(status(unreachable), 503);
        assert_eq!(status(E::Timeout("no answer within 2s".into())), 504);
        assert_eq!(status(E::State("not a replica".into())), 409);
    }
}

/// How long a pod has been silent, for `down_after`: since the start of the first check that
/// failed after its last answer. Not since the last answer itself: when checks pause (the
/// controller busy moving slots, a slow first check after a start, a stalled host), a single
/// failed check after the gap would count the whole gap as silence, though the pod may have
/// answered all through it. A cluster master busy in a slot move vd itself ran was failed over
/// with `FORCE` that way, losing a write it had acknowledged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silence {
    since: Option<std::time::Instant>,
}

impl Silence {
    /// The pod answered.
    pub fn answered(&mut self) {
        self.since = None;
    }

    /// A check begun at `started` had no answer by `now`: the silence so far, in ms.
    pub fn failed(&mut self, started: std::time::Instant, now: std::time::Instant) -> u64 {
        let from = *self.since.get_or_insert(started);
        now.saturating_duration_since(from).as_millis() as u64
    }
}

#[cfg(test)]
mod silence_tests {
    use super::Silence;
    use std::time::{Duration, Instant};

    #[test]
    fn silence_counts_from_the_first_failed_check() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // A check begun at 500 ms without an answer at 750: 250 ms of silence; the next ones
        // count from that first check's start.
        let mut s = Silence::default();
        assert_eq!(s.failed(ms(500), ms(750)), 250);
        assert_eq!(s.failed(ms(800), ms(1050)), 550);
        // An answer ends it. Checks then pause for two seconds (the controller was busy): one
        // failed check after the gap is its own 250 ms, not the gap.
        s.answered();
        assert_eq!(s.failed(ms(3000), ms(3250)), 250);
        assert_eq!(s.failed(ms(3300), ms(4100)), 1100);
    }
}
