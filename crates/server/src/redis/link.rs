//! `vd redis:link` and `vd redis:unlink`: the consumer's bucket gets exactly the variables the
//! pure `vd_core::redis::link_env` computes for the provider's current state; the provider
//! keeps `REDIS_LINKED_CONSUMERS` and each link's mode, so a failover or a password change
//! rewrites every consumer the way it was linked.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{self, load, master_ordinal, redis_ref, CONSUMERS};
use crate::types::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vd_core::env::EnvMap;
use vd_core::event::{Level, Reason};
use vd_core::redis::{self as macro_, LinkMode};
use vd_core::ResourceRef;
use vd_store::{MetaKey, StoredLinkMode};

/// `POST /v1/redis/{scope}/{name}/link`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRequest {
    /// `scope/name` of the consumer's bucket.
    pub consumer: String,
    /// Only a round-robin URL.
    #[serde(default)]
    pub reads: bool,
    /// The sentinel variables (REDIS_URL, REDIS_SENTINEL_HOSTS, REDIS_MASTER_NAME).
    #[serde(default)]
    pub sentinel: bool,
    /// REDIS_URL and REDIS_READ_URL on the redis's proxy.
    #[serde(default)]
    pub proxy: bool,
    /// Don't roll the consumer.
    #[serde(default)]
    pub no_restart: bool,
}

fn link_key(provider: &ResourceRef, consumer: &str) -> MetaKey {
    MetaKey::RedisLink {
        provider: provider.clone(),
        consumer: consumer.to_string(),
    }
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
    fn stored(&self) -> StoredLinkMode {
        match self {
            Link::Plain(LinkMode::Reads) => StoredLinkMode::Reads,
            Link::Plain(LinkMode::Default) => StoredLinkMode::Default,
            Link::Sentinel => StoredLinkMode::Sentinel,
            Link::Proxy => StoredLinkMode::Proxy,
        }
    }

    fn from_stored(s: Option<&str>) -> Link {
        match StoredLinkMode::from_stored(s) {
            StoredLinkMode::Reads => Link::Plain(LinkMode::Reads),
            StoredLinkMode::Default => Link::Plain(LinkMode::Default),
            StoredLinkMode::Sentinel => Link::Sentinel,
            StoredLinkMode::Proxy => Link::Proxy,
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
    let pw = facts::password(ctl, provider)?;
    let env = match mode {
        Link::Proxy => {
            if !crate::redis::facts::has_proxy(ctl, provider)? {
                return Err(no_proxy(provider));
            }
            macro_::proxy_link_env(provider, &pw)
        }
        Link::Plain(_) if vd_core::redis::cluster::is_cluster(&spec) => {
            let nodes = spec.cluster.map_or(0, |c| c.nodes());
            macro_::cluster_link_env(provider, nodes, &pw)
        }
        Link::Plain(LinkMode::Default) if crate::redis::facts::has_proxy(ctl, provider)? => {
            macro_::proxy_link_env(provider, &pw)
        }
        Link::Plain(mode) => {
            macro_::link_env(provider, spec.replicas.unwrap_or(1), master, &pw, mode)
        }
        Link::Sentinel => {
            let (sid, sspec) = crate::redis::facts::watcher_of(ctl, provider)?
                .ok_or_else(|| no_sentinel(provider))?;
            macro_::sentinel_link_env(
                provider,
                master,
                &pw,
                &sid,
                sspec.replicas.unwrap_or(macro_::SENTINEL_DEFAULT_REPLICAS),
                crate::redis::facts::sentinel_password(ctl, &sid)?.as_deref(),
            )
        }
    };
    let env = if macro_::tls::is_tls(&spec) {
        macro_::with_tls(env, &ctl.certs.ca_pem().map_err(ServerError::from)?)
    } else {
        env
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
    if vd_core::redis::topology::is_sentinel(&spec) {
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
        .set_meta(&link_key(&provider, &req.consumer), mode.stored().as_str())?;
    let mut consumers = consumers(ctl, &provider)?;
    consumers.push(req.consumer.clone());
    let set = BTreeMap::from([(CONSUMERS.to_string(), macro_::format_consumers(&consumers))]);
    ctl.update_config(scope, Some(name), &set, &[], true)?;
    ctl.event(
        Level::Info,
        Some(&provider),
        None,
        Reason::Linked,
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
    ctl.store.delete_meta(&link_key(&provider, consumer))?;
    ctl.event(
        Level::Info,
        Some(&provider),
        None,
        Reason::Unlinked,
        consumer,
    );
    Ok(())
}

/// Rewrites every consumer's link (after a failover or password change).
pub fn rewrite_consumers(
    ctl: &Controller,
    provider: &ResourceRef,
    no_restart: bool,
) -> Result<(), ServerError> {
    for c in consumers(ctl, provider)? {
        let mode = Link::from_stored(ctl.store.meta(&link_key(provider, &c))?.as_deref());
        write_link(ctl, provider, &c, mode, no_restart)?;
    }
    Ok(())
}
