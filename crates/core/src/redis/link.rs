//! Link env: the variables `vd redis:link` writes into a consumer's
//! bucket, and the provider's `REDIS_LINKED_CONSUMERS` list.

use super::{MASTER_NAME, REDIS_PORT, SENTINEL_PORT};
use crate::env::EnvMap;
use crate::naming::{alias_hostnames, pod_hostnames};
use crate::ResourceRef;

/// Which URLs a link writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// `REDIS_URL` for writes; plus `REDIS_READ_URL` when there are replicas to read from.
    #[default]
    Default,
    /// `--reads`: a single `REDIS_URL` on the round-robin alias, for read-only consumers.
    Reads,
}

/// Every name a link may write ([`link_env`] in any [`LinkMode`], [`sentinel_link_env`]), so
/// unlinking, or relinking in another mode, can remove them all.
pub const LINK_VARS: [&str; 7] = [
    "REDIS_URL",
    "REDIS_READ_URL",
    "REDIS_SENTINEL_HOSTS",
    "REDIS_MASTER_NAME",
    "REDIS_SENTINEL_PASSWORD",
    "REDIS_CLUSTER_NODES",
    CA_CERT_VAR,
];

/// The link variable holding the CA certificate (PEM) of a TLS redis, which clients verify the
/// server's certificate against (redis-py `ssl_ca_data`, ioredis `tls.ca`, go-redis
/// `tls.Config.RootCAs`, Sidekiq/redis-rb `ssl_params: {ca_file:}` after writing it out). Apps
/// that want a file mount the same PEM from the server (`${VD_TLS_CA}`).
pub const CA_CERT_VAR: &str = "REDIS_CA_CERT";

/// A link of a TLS redis: every URL of `env` with the `rediss://` scheme, and the CA that
/// signed the pods' certificates in [`CA_CERT_VAR`]. The host names in the URLs are what the
/// certificates cover, so a client that verifies them needs nothing else.
pub fn with_tls(mut env: EnvMap, ca_pem: &str) -> EnvMap {
    for key in ["REDIS_URL", "REDIS_READ_URL"] {
        if let Some(v) = env.get_mut(key) {
            if let Some(rest) = v.strip_prefix("redis://") {
                *v = format!("rediss://{rest}");
            }
        }
    }
    env.insert(CA_CERT_VAR.into(), ca_pem.to_string());
    env
}

/// The link of a redis in cluster mode, exactly two variables:
/// - `REDIS_URL`: `redis://default:<pw>@<name>.<scope>.voodu:6379`, the shared alias over the
///   ready nodes, which a cluster client starts from (it then asks the cluster for its slots
///   and connects to each node itself);
/// - `REDIS_CLUSTER_NODES`: every node as `<name>-<ord>.<scope>.voodu:6379`, comma-separated,
///   for clients configured with a list of startup nodes.
///
/// The password is percent-encoded as in [`link_env`]. Failovers and resharding change
/// neither: they name no master.
pub fn cluster_link_env(id: &ResourceRef, nodes: u32, password: &str) -> EnvMap {
    let [_, alias] = alias_hostnames(id);
    let list: Vec<String> = (0..nodes)
        .map(|o| {
            let [_, host] = pod_hostnames(id, o);
            format!("{host}:{REDIS_PORT}")
        })
        .collect();
    EnvMap::from([
        ("REDIS_URL".into(), url(&alias, password)),
        ("REDIS_CLUSTER_NODES".into(), list.join(",")),
    ])
}

/// Exactly these variables, which linked apps rely on:
/// - one pod (`replicas <= 1`): `REDIS_URL` on the shared alias
///   `redis://default:<pw>@<name>.<scope>.voodu:6379`;
/// - several pods: `REDIS_URL` pinned to the master's pod name `<name>-<M>.<scope>.voodu` and
///   `REDIS_READ_URL` on the shared alias;
/// - [`LinkMode::Reads`]: a single `REDIS_URL` on the shared alias.
///
/// The password is percent-encoded (anything but RFC 3986 unreserved characters), so any
/// password round-trips through a URL parser; the generated hex passwords are unchanged.
pub fn link_env(
    id: &ResourceRef,
    replicas: u32,
    master_ordinal: u32,
    password: &str,
    mode: LinkMode,
) -> EnvMap {
    let [_, alias] = alias_hostnames(id);
    let mut env = EnvMap::new();
    match mode {
        LinkMode::Default if replicas > 1 => {
            let [_, master] = pod_hostnames(id, master_ordinal);
            env.insert("REDIS_URL".into(), url(&master, password));
            env.insert("REDIS_READ_URL".into(), url(&alias, password));
        }
        LinkMode::Default | LinkMode::Reads => {
            env.insert("REDIS_URL".into(), url(&alias, password));
        }
    }
    env
}

/// `redis://default:<percent-encoded password>@<host>:6379`.
fn url(host: &str, password: &str) -> String {
    url_on(host, REDIS_PORT, password)
}

fn url_on(host: &str, port: u16, password: &str) -> String {
    format!("redis://default:{}@{host}:{port}", percent_encode(password))
}

/// `vd redis:link --proxy` (and the default link of a redis with a proxy): `REDIS_URL` on the
/// proxy's master port, `REDIS_READ_URL` on its read port, both on the proxy's shared alias
/// `<name>-proxy.<scope>.voodu`. They name no pod, so a failover changes neither.
pub fn proxy_link_env(id: &ResourceRef, password: &str) -> EnvMap {
    let proxy = ResourceRef::new(id.kind, &id.scope, super::proxy::proxy_name(&id.name));
    let [_, alias] = alias_hostnames(&proxy);
    EnvMap::from([
        (
            "REDIS_URL".into(),
            url_on(&alias, super::proxy::PROXY_PORT, password),
        ),
        (
            "REDIS_READ_URL".into(),
            url_on(&alias, super::proxy::PROXY_READ_PORT, password),
        ),
    ])
}

/// The sentinel sibling's pods as `host:port`: `<name>-<ord>.<scope>.voodu:26379` for each of
/// its `replicas` ordinals. Per-pod names, not the shared alias: a sentinel client asks each
/// sentinel in turn, and the alias would hide all but one behind a single name.
pub fn sentinel_hosts(sentinel: &ResourceRef, replicas: u32) -> Vec<String> {
    (0..replicas)
        .map(|ord| {
            let [_, host] = pod_hostnames(sentinel, ord);
            format!("{host}:{SENTINEL_PORT}")
        })
        .collect()
}

/// The sentinels as one URL, `redis-sentinel://<host:port>,<host:port>,.../voodu-master`, for
/// `vd redis:sentinel-url`. It holds no password: client libraries disagree on where a
/// sentinel password goes in such a URL (most take it as a separate option), so it is handed
/// out on its own as `REDIS_SENTINEL_PASSWORD`.
pub fn sentinel_url(sentinel: &ResourceRef, replicas: u32) -> String {
    format!(
        "redis-sentinel://{}/{MASTER_NAME}",
        sentinel_hosts(sentinel, replicas).join(",")
    )
}

/// The sentinel-aware link (`vd redis:link --sentinel`), exactly four variables:
/// - `REDIS_URL`: the current master's pod, `redis://default:<pw>@<name>-<M>.<scope>.voodu:6379`
///   (whatever the replica count), for libraries that don't speak sentinel;
/// - `REDIS_SENTINEL_HOSTS`: [`sentinel_hosts`] of the sentinel sibling, comma-separated;
/// - `REDIS_MASTER_NAME`: `voodu-master`;
/// - `REDIS_SENTINEL_PASSWORD`: the sentinels' own password, as is (not a URL), which the
///   client sends to the sentinels (redis-py `sentinel_kwargs={"password": …}`, ioredis
///   `sentinelPassword`, go-redis `SentinelPassword`). Left out for sentinels that have none
///   (applied before sentinels had passwords).
///
/// The password in `REDIS_URL` is percent-encoded as in [`link_env`].
pub fn sentinel_link_env(
    id: &ResourceRef,
    master_ordinal: u32,
    password: &str,
    sentinel: &ResourceRef,
    sentinel_replicas: u32,
    sentinel_password: Option<&str>,
) -> EnvMap {
    let [_, master] = pod_hostnames(id, master_ordinal);
    let mut env = EnvMap::from([
        ("REDIS_URL".into(), url(&master, password)),
        (
            "REDIS_SENTINEL_HOSTS".into(),
            sentinel_hosts(sentinel, sentinel_replicas).join(","),
        ),
        ("REDIS_MASTER_NAME".into(), MASTER_NAME.into()),
    ]);
    if let Some(p) = sentinel_password {
        env.insert(super::SENTINEL_PASSWORD_VAR.into(), p.into());
    }
    env
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the provider's `REDIS_LINKED_CONSUMERS` value: comma-separated `scope/name`, returned
/// sorted and deduplicated (blanks and surrounding spaces ignored).
pub fn parse_consumers(s: &str) -> Vec<String> {
    normalize(s.split(',').map(str::trim).filter(|c| !c.is_empty()))
}

/// Writes a `REDIS_LINKED_CONSUMERS` value: sorted, deduplicated, comma-separated.
pub fn format_consumers(v: &[String]) -> String {
    normalize(v.iter().map(|c| c.trim()).filter(|c| !c.is_empty())).join(",")
}

fn normalize<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = it.map(str::to_string).collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_link_has_rediss_urls_and_the_ca() {
        let id = id();
        let env = with_tls(link_env(&id, 3, 1, "pw", LinkMode::Default), "PEM");
        assert_eq!(
            env,
            EnvMap::from([
                (
                    "REDIS_URL".into(),
                    "rediss://default:pw@redis-1.clowk-lp.voodu:6379".into()
                ),
                (
                    "REDIS_READ_URL".into(),
                    "rediss://default:pw@redis.clowk-lp.voodu:6379".into()
                ),
                ("REDIS_CA_CERT".into(), "PEM".into()),
            ])
        );
        let cluster = with_tls(cluster_link_env(&id, 6, "pw"), "PEM");
        assert!(cluster["REDIS_URL"].starts_with("rediss://"));
        assert!(!cluster["REDIS_CLUSTER_NODES"].contains("://"));
        for k in env.keys() {
            assert!(LINK_VARS.contains(&k.as_str()), "{k}");
        }
    }
    use crate::Kind;

    fn id() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "clowk-lp", "redis")
    }

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn single_primary_uses_the_shared_alias() {
        assert_eq!(
            link_env(&id(), 1, 0, "pwd", LinkMode::Default),
            env(&[("REDIS_URL", "redis://default:pwd@redis.clowk-lp.voodu:6379")])
        );
    }

    #[test]
    fn replicas_pin_writes_to_the_master_and_read_round_robin() {
        assert_eq!(
            link_env(&id(), 3, 0, "pwd", LinkMode::Default),
            env(&[
                (
                    "REDIS_URL",
                    "redis://default:pwd@redis-0.clowk-lp.voodu:6379"
                ),
                (
                    "REDIS_READ_URL",
                    "redis://default:pwd@redis.clowk-lp.voodu:6379"
                ),
            ])
        );
        // After a failover to ordinal 2 the pin follows.
        assert_eq!(
            link_env(&id(), 3, 2, "pwd", LinkMode::Default)["REDIS_URL"],
            "redis://default:pwd@redis-2.clowk-lp.voodu:6379"
        );
    }

    #[test]
    fn reads_is_a_single_round_robin_url() {
        for replicas in [1, 3] {
            assert_eq!(
                link_env(&id(), replicas, 1, "pwd", LinkMode::Reads),
                env(&[("REDIS_URL", "redis://default:pwd@redis.clowk-lp.voodu:6379")])
            );
        }
    }

    fn quorum_id() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "clowk-lp", "redis-quorum")
    }

    #[test]
    fn only_link_vars_are_written() {
        let mut written: Vec<String> = Vec::new();
        for (r, m) in [
            (1, LinkMode::Default),
            (3, LinkMode::Default),
            (3, LinkMode::Reads),
        ] {
            written.extend(link_env(&id(), r, 0, "p", m).into_keys());
        }
        written.extend(sentinel_link_env(&id(), 0, "p", &quorum_id(), 3, Some("s")).into_keys());
        written.extend(cluster_link_env(&id(), 6, "p").into_keys());
        written.extend(with_tls(link_env(&id(), 1, 0, "p", LinkMode::Default), "PEM").into_keys());
        for k in &written {
            assert!(LINK_VARS.contains(&k.as_str()), "{k}");
        }
        // And every listed name is written by some mode.
        for k in LINK_VARS {
            assert!(written.iter().any(|w| w == k), "{k}");
        }
    }

    #[test]
    fn sentinel_hosts_and_url_list_every_sentinel_pod() {
        assert_eq!(
            sentinel_hosts(&quorum_id(), 3),
            [
                "redis-quorum-0.clowk-lp.voodu:26379",
                "redis-quorum-1.clowk-lp.voodu:26379",
                "redis-quorum-2.clowk-lp.voodu:26379",
            ]
        );
        assert_eq!(
            sentinel_url(&quorum_id(), 3),
            "redis-sentinel://redis-quorum-0.clowk-lp.voodu:26379,\
             redis-quorum-1.clowk-lp.voodu:26379,redis-quorum-2.clowk-lp.voodu:26379/voodu-master"
        );
        assert_eq!(
            sentinel_url(&quorum_id(), 1),
            "redis-sentinel://redis-quorum-0.clowk-lp.voodu:26379/voodu-master"
        );
        assert!(sentinel_hosts(&quorum_id(), 0).is_empty());
    }

    #[test]
    fn sentinel_link_is_exactly_four_variables() {
        // Data redis clowk-lp/redis, sentinels clowk-lp/redis-quorum.
        assert_eq!(
            sentinel_link_env(&id(), 0, "pwd", &quorum_id(), 3, Some("s@pw")),
            env(&[
                (
                    "REDIS_URL",
                    "redis://default:pwd@redis-0.clowk-lp.voodu:6379"
                ),
                (
                    "REDIS_SENTINEL_HOSTS",
                    "redis-quorum-0.clowk-lp.voodu:26379,redis-quorum-1.clowk-lp.voodu:26379,\
                     redis-quorum-2.clowk-lp.voodu:26379"
                ),
                ("REDIS_MASTER_NAME", "voodu-master"),
                // As is: it is no URL.
                ("REDIS_SENTINEL_PASSWORD", "s@pw"),
            ])
        );
        // REDIS_URL follows the master and encodes the password like the other links;
        // sentinels without a password of their own give none.
        let e = sentinel_link_env(&id(), 2, "a@b:c", &quorum_id(), 5, None);
        assert!(!e.contains_key("REDIS_SENTINEL_PASSWORD"));
        assert_eq!(
            e["REDIS_URL"],
            "redis://default:a%40b%3Ac@redis-2.clowk-lp.voodu:6379"
        );
        assert_eq!(e["REDIS_SENTINEL_HOSTS"].split(',').count(), 5);
    }

    #[test]
    fn passwords_are_percent_encoded() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            link_env(&id(), 1, 0, hex, LinkMode::Default)["REDIS_URL"],
            format!("redis://default:{hex}@redis.clowk-lp.voodu:6379")
        );
        assert_eq!(
            link_env(&id(), 1, 0, "a@b:c/d%e f~_.-é", LinkMode::Default)["REDIS_URL"],
            "redis://default:a%40b%3Ac%2Fd%25e%20f~_.-%C3%A9@redis.clowk-lp.voodu:6379"
        );
    }

    #[test]
    fn consumers_round_trip_sorted_and_unique() {
        let v = parse_consumers(" web/b, api/a ,,web/b,");
        assert_eq!(v, ["api/a", "web/b"]);
        assert_eq!(format_consumers(&v), "api/a,web/b");
        assert_eq!(
            format_consumers(&["z/1".into(), "a/2".into(), "z/1".into()]),
            "a/2,z/1"
        );
        assert!(parse_consumers("").is_empty());
        assert_eq!(format_consumers(&[]), "");
    }

    #[test]
    fn a_cluster_link_names_the_alias_and_every_node() {
        let id = ResourceRef::new(crate::Kind::Redis, "data", "shop");
        let env = cluster_link_env(&id, 3, "p@ss");
        assert_eq!(
            env,
            EnvMap::from([
                (
                    "REDIS_URL".into(),
                    "redis://default:p%40ss@shop.data.voodu:6379".into()
                ),
                (
                    "REDIS_CLUSTER_NODES".into(),
                    "shop-0.data.voodu:6379,shop-1.data.voodu:6379,shop-2.data.voodu:6379".into()
                ),
            ])
        );
        assert!(env.keys().all(|k| LINK_VARS.contains(&k.as_str())));
    }
}
