//! A data redis's `proxy {}` block becomes `<name>-proxy` pods running `vd proxy`:
//! `:6379` always reaches the master, `:6380` spreads reads over ready replicas. The vd binary
//! and the controller's feed directory are bind-mounted from the host (`${VD_EXE}`,
//! `${VD_RUN_DIR}`, filled by the server), so any image with a C library runs it.

use super::{DEFAULT_IMAGE, REDIS_PORT, SENTINEL_PORT};
use crate::naming::pod_hostnames;
use crate::{
    Kind, PortSpec, Probe, ProbeAction, Probes, ProxySpec, RedisSpec, ResourceRef, VolumeMount,
    WorkloadSpec,
};
use std::collections::BTreeMap;

/// The proxy's master port.
pub const PROXY_PORT: u16 = 6379;
/// The proxy's read port.
pub const PROXY_READ_PORT: u16 = 6380;
/// The port of the proxy's Prometheus metrics (`/metrics`), on the pod's address.
pub const PROXY_METRICS_PORT: u16 = 9121;
/// Where the vd binary is mounted in a proxy pod.
pub const PROXY_EXE_PATH: &str = "/usr/local/bin/vd";
/// Where the feed directory is mounted in a proxy pod.
pub const PROXY_FEED_DIR: &str = "/run/vd-proxy";

/// The derived proxy resource's name: `<name>-proxy`.
pub fn proxy_name(redis: &str) -> String {
    format!("{redis}-proxy")
}

/// The feed directory of a data redis, relative to the server's run directory.
pub fn feed_subdir(scope: &str, redis: &str) -> String {
    format!("proxy/{scope}-{redis}")
}

/// The `host:port` a proxy knows a data pod by; the controller's feed uses the same.
pub fn upstream(data: &ResourceRef, ordinal: u32) -> String {
    let [_, long] = pod_hostnames(data, ordinal);
    format!("{long}:{REDIS_PORT}")
}

/// What a proxy must know of the data redis it fronts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyFor {
    /// The data redis.
    pub data: ResourceRef,
    /// Its pod count: the proxy's upstreams are its ordinals.
    pub upstreams: u32,
    /// A sentinel sibling watching it: (its name, its pod count).
    pub sentinels: Option<(String, u32)>,
}

/// The statefulset the server stores as `statefulset/<scope>/<name>-proxy` for a data redis
/// with an enabled proxy block, or `None` without one.
pub fn derive(spec: &RedisSpec, of: &ProxyFor) -> Option<(ResourceRef, WorkloadSpec)> {
    let p: ProxySpec = spec.proxy.filter(|p| p.enabled)?;
    let id = ResourceRef::new(Kind::Statefulset, &of.data.scope, proxy_name(&of.data.name));
    Some((id, expand_proxy(spec, p, of)))
}

/// The statefulset a proxy block runs.
fn expand_proxy(spec: &RedisSpec, p: ProxySpec, of: &ProxyFor) -> WorkloadSpec {
    let data = &of.data;
    let mut command: Vec<String> = [
        PROXY_EXE_PATH,
        "proxy",
        "--listen",
        &format!("${{VOODU_POD_IP}}:{PROXY_PORT}"),
        "--read-listen",
        &format!("${{VOODU_POD_IP}}:{PROXY_READ_PORT}"),
        "--feed",
        &format!("{PROXY_FEED_DIR}/feed.json"),
        "--id",
        "${VOODU_REPLICA_ORDINAL}",
        "--metrics-addr",
        &format!("${{VOODU_POD_IP}}:{PROXY_METRICS_PORT}"),
    ]
    .map(String::from)
    .to_vec();
    for o in 0..of.upstreams.max(1) {
        command.push("--upstream".into());
        command.push(upstream(data, o));
    }
    let tls = super::tls::is_tls(spec);
    if tls {
        // Clients, data pods and sentinels all speak TLS; the pod's certificate is mounted here.
        command.push("--tls-dir".into());
        command.push(super::TLS_DIR.into());
    }
    if let Some((name, n)) = &of.sentinels {
        let sid = ResourceRef::new(Kind::Redis, &data.scope, name);
        for o in 0..*n {
            let [_, long] = pod_hostnames(&sid, o);
            command.push("--sentinel".into());
            command.push(format!("{long}:{SENTINEL_PORT}"));
        }
    }
    // The data redis's bucket (REDIS_PASSWORD, for the proxy's own ROLE checks) and, with
    // sentinels, the sibling's (REDIS_SENTINEL_PASSWORD, to follow them). The data bucket
    // comes last, so its variables win should the sibling's bucket hold one of the same name.
    let mut env_from = Vec::new();
    if let Some((name, _)) = &of.sentinels {
        env_from.push(format!("{}/{name}", data.scope));
    }
    env_from.push(format!("{}/{}", data.scope, data.name));
    let readiness = Probe {
        period_ms: 1000,
        failure_threshold: 2,
        ..Probe::new(ProbeAction::Exec {
            // Through the proxy to the master: ready means a client gets an answer.
            command: super::probe::ping_command(Some(PROXY_PORT), tls),
        })
    };
    let liveness = Probe {
        period_ms: 5000,
        ..Probe::new(ProbeAction::TcpSocket { port: PROXY_PORT })
    };
    WorkloadSpec {
        image: Some(spec.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into())),
        replicas: p.replicas,
        command,
        env: BTreeMap::from([("REDISCLI_AUTH".into(), "${REDIS_PASSWORD}".into())]),
        env_from,
        // The metrics port too: on docker the host reaches a pod's ports where they are
        // published, on the pod's own loopback address.
        ports: [PROXY_PORT, PROXY_READ_PORT, PROXY_METRICS_PORT]
            .map(|port| PortSpec {
                host_ip: None,
                port,
            })
            .to_vec(),
        volume_claims: Vec::new(),
        volumes: vec![
            VolumeMount {
                source: "${VD_EXE}".into(),
                target: PROXY_EXE_PATH.into(),
                read_only: true,
            },
            VolumeMount {
                source: format!("${{VD_RUN_DIR}}/{}", feed_subdir(&data.scope, &data.name)),
                target: PROXY_FEED_DIR.into(),
                read_only: false,
            },
        ],
        probes: Probes {
            liveness: Some(liveness),
            readiness: Some(readiness),
            startup: None,
        },
        resources: spec.resources.clone(),
        certificate: tls.then(|| super::TLS_DIR.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_a_proxy_statefulset() {
        let data = ResourceRef::new(Kind::Redis, "data", "cache");
        let spec = RedisSpec {
            replicas: Some(3),
            proxy: Some(ProxySpec::default()),
            ..RedisSpec::default()
        };
        let of = ProxyFor {
            data: data.clone(),
            upstreams: 3,
            sentinels: Some(("cache-ha".into(), 3)),
        };
        let (id, w) = derive(&spec, &of).unwrap();
        assert_eq!(id.to_string(), "statefulset/data/cache-proxy");
        let cmd = w.command.join(" ");
        assert!(cmd.starts_with("/usr/local/bin/vd proxy --listen ${VOODU_POD_IP}:6379"));
        assert!(cmd.contains("--upstream cache-2.data.voodu:6379"));
        assert!(cmd.contains("--sentinel cache-ha-0.data.voodu:26379"));
        assert!(cmd.contains("--metrics-addr ${VOODU_POD_IP}:9121"));
        // The sentinels' bucket first, so the data redis's variables win.
        assert_eq!(w.env_from, ["data/cache-ha", "data/cache"]);
        assert_eq!(w.replicas, 1);
        assert_eq!(w.volumes[1].source, "${VD_RUN_DIR}/proxy/data-cache");
        let off = RedisSpec {
            proxy: Some(ProxySpec {
                enabled: false,
                replicas: 1,
            }),
            ..RedisSpec::default()
        };
        assert!(derive(&off, &of).is_none());
        let alone = ProxyFor {
            sentinels: None,
            ..of.clone()
        };
        assert_eq!(derive(&spec, &alone).unwrap().1.env_from, ["data/cache"]);
        assert!(derive(&RedisSpec::default(), &of).is_none());
    }
}
