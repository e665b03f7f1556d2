//! The expansion of a data redis into the statefulset it runs as.

use super::{
    entrypoint_script, generated_asset_name, redis_conf, CONF_KEY, CONF_PATH, DEFAULT_IMAGE,
    ENTRYPOINT_KEY, ENTRYPOINT_PATH, REDIS_PORT, TLS_DIR, TLS_ENV,
};
use crate::{
    PortSpec, Probe, ProbeAction, Probes, RedisSpec, ResourceRef, VolumeClaim, VolumeMount,
    WorkloadSpec,
};
use std::collections::BTreeMap;

/// Set to `yes` in the pods of a cluster: the entrypoint then writes the cluster settings
/// instead of `replicaof`.
pub const CLUSTER_ENV: &str = "VOODU_REDIS_CLUSTER";

/// What a redis block becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The statefulset the macro becomes.
    pub workload: WorkloadSpec,
    /// The generated asset files, by key: [`CONF_KEY`] (`redis-conf`) and [`ENTRYPOINT_KEY`]
    /// (`entrypoint`) for a data redis, [`SENTINEL_ENTRYPOINT_KEY`](super::SENTINEL_ENTRYPOINT_KEY)
    /// (`sentinel-entrypoint`) for a sentinel sibling. The server registers them as the asset
    /// `(scope, generated_asset_name(name))` that the workload's volumes reference.
    pub files: BTreeMap<String, String>,
}

/// Expands a data redis (sentinel `None` or `enabled = false`): the macro's
/// defaults for every field the operator left unset, env deep-merged (operator wins per key),
/// volumes merged by destination (an operator entry replaces the macro's entry for the same
/// destination; others are appended), probes replaced wholesale (`Some(empty)` disables).
pub fn expand(id: &ResourceRef, spec: &RedisSpec) -> Expansion {
    let mut env = BTreeMap::from([(
        "REDISCLI_AUTH".to_string(),
        // A template: the server fills it from the resource's bucket when it launches the pod,
        // so `redis-cli` in probes (and in `vd exec`) authenticates without `-a` in argv.
        "${REDIS_PASSWORD}".to_string(),
    )]);
    let tls = spec.tls.is_some();
    if tls {
        // Also what makes turning TLS on or off roll the pods: the env is in the spec hash.
        env.insert(TLS_ENV.to_string(), "yes".to_string());
    }
    if super::cluster::is_cluster(spec) {
        // The entrypoint's switch into cluster mode; in the macro's env, not the bucket, so
        // it is part of the pods' spec hash.
        env.insert(CLUSTER_ENV.to_string(), "yes".to_string());
    }
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));

    let mut volume_claims = vec![VolumeClaim {
        name: "data".into(),
        mount_path: "/data".into(),
    }];
    volume_claims.extend(spec.volume_claims.iter().cloned());

    let workload = WorkloadSpec {
        image: Some(spec.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into())),
        replicas: match spec.cluster.filter(|_| super::cluster::is_cluster(spec)) {
            Some(c) => c.nodes(),
            None => spec.replicas.unwrap_or(1),
        },
        command: spec
            .command
            .clone()
            .unwrap_or_else(|| vec!["sh".into(), ENTRYPOINT_PATH.into()]),
        env,
        env_from: spec.env_from.clone(),
        ports: spec.ports.clone().unwrap_or_else(|| {
            vec![PortSpec {
                host_ip: None,
                port: REDIS_PORT,
            }]
        }),
        volume_claims,
        volumes: merge_volumes(macro_volumes(id), &spec.volumes),
        probes: spec
            .probes
            .clone()
            .unwrap_or_else(|| probes_with(5, 2, 10, tls)),
        resources: spec.resources.clone(),
        certificate: tls.then(|| TLS_DIR.to_string()),
    };
    let files = BTreeMap::from([
        (CONF_KEY.to_string(), redis_conf()),
        (ENTRYPOINT_KEY.to_string(), entrypoint_script()),
    ]);
    Expansion { workload, files }
}

/// `${asset.<scope>.<name>@redis.<key>}`. Scope and name are validated labels (lowercase
/// letters, digits, `-`), so they can hold neither `$`, `{`, `}` nor `.`; the template parser
/// splits on `.` and accepts `@` in the name segment.
pub(super) fn asset_source(id: &ResourceRef, key: &str) -> String {
    format!(
        "${{asset.{}.{}.{}}}",
        id.scope,
        generated_asset_name(&id.name),
        key
    )
}

/// The macro's binds: the generated config and entrypoint, read-only.
fn macro_volumes(id: &ResourceRef) -> Vec<VolumeMount> {
    vec![
        VolumeMount {
            source: asset_source(id, CONF_KEY),
            target: CONF_PATH.into(),
            read_only: true,
        },
        VolumeMount {
            source: asset_source(id, ENTRYPOINT_KEY),
            target: ENTRYPOINT_PATH.into(),
            read_only: true,
        },
    ]
}

/// Volumes merge additively by destination path: an operator entry takes the place of the
/// macro's entry already bound at its destination (so list order stays stable); the rest are
/// appended in the operator's order.
pub(super) fn merge_volumes(
    mut merged: Vec<VolumeMount>,
    operator: &[VolumeMount],
) -> Vec<VolumeMount> {
    for v in operator {
        match merged.iter_mut().find(|m| same_path(&m.target, &v.target)) {
            Some(slot) => *slot = v.clone(),
            None => merged.push(v.clone()),
        }
    }
    merged
}

/// Compares two absolute paths ignoring repeated and trailing slashes.
pub(super) fn same_path(a: &str, b: &str) -> bool {
    normalize_path(a) == normalize_path(b)
}

/// `/etc//redis/` -> `/etc/redis`.
pub(super) fn normalize_path(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn secs(s: u64) -> u64 {
    s * 1000
}

/// Liveness: a TCP connect to 6379. Readiness: `redis-cli -e -h ${VOODU_POD_IP} ping`.
///
/// Why not a bare `["redis-cli", "ping"]`:
/// - `-h ${VOODU_POD_IP}`: the entrypoint binds redis to the pod's own address (a 127.x.y.z
///   per pod on the process runtime, the container's address on docker), not 127.0.0.1, so
///   the default host would be refused. The server fills `VOODU_*` in exec probe commands.
/// - `-e`: without it `redis-cli` exits 0 on an error reply, so a pod answering `-NOAUTH` or
///   `-LOADING` (still loading its dataset) would count as ready (checked on redis 7.0.15).
///   `-e` exists in redis-cli 7.0+, which both runtimes ship.
///
/// Authentication comes from `REDISCLI_AUTH` in the pod env, never from argv. With TLS the
/// readiness check speaks TLS, trusting the CA mounted beside the pod's certificate (the TCP
/// liveness check works either way).
fn probes_with(
    readiness_period_s: u64,
    readiness_successes: u32,
    liveness_period_s: u64,
    tls: bool,
) -> Probes {
    let liveness = Probe {
        period_ms: secs(liveness_period_s),
        failure_threshold: 3,
        ..Probe::new(ProbeAction::TcpSocket { port: REDIS_PORT })
    };
    let readiness = Probe {
        period_ms: secs(readiness_period_s),
        failure_threshold: 1,
        success_threshold: readiness_successes,
        ..Probe::new(ProbeAction::Exec {
            command: readiness_command(tls),
        })
    };
    Probes {
        liveness: Some(liveness),
        readiness: Some(readiness),
        startup: None,
    }
}

/// The default probes: liveness every 10 s, 3 failures; readiness every 5 s, 1 failure,
/// 2 successes (a pod is ready ~10 s after redis is up).
/// Timeout 1 s and no initial delay, as [`Probe::new`].
pub fn default_probes() -> Probes {
    probes_with(5, 2, 10, false)
}

/// The readiness check's argv: `redis-cli -e -h ${VOODU_POD_IP} ping`, with `--tls --cacert`
/// for a TLS redis.
pub fn readiness_command(tls: bool) -> Vec<String> {
    super::probe::ping_command(None, tls)
}

/// Where a TLS pod finds the CA its certificate chains to.
pub fn tls_ca_path() -> String {
    format!("{TLS_DIR}/{}", crate::TLS_CA_FILE)
}

/// The default probes with test-friendly timing: readiness every 1 s, 1 success; liveness
/// every 5 s. Tests set `probes` to this to avoid the default ~10 s readiness delay.
pub fn fast_probes() -> Probes {
    probes_with(1, 1, 5, false)
}

/// [`fast_probes`] for a TLS redis.
pub fn fast_tls_probes() -> Probes {
    probes_with(1, 1, 5, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{self, TemplateRef};
    use crate::{Kind, Limits, Resources};

    fn id() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "data", "cache")
    }

    fn vol(s: &str) -> VolumeMount {
        VolumeMount::parse(s).unwrap()
    }

    #[test]
    fn defaults_of_an_empty_block() {
        // redis "data" "cache" {}
        let e = expand(&id(), &RedisSpec::default());
        let w = &e.workload;
        assert_eq!(w.image.as_deref(), Some("redis:7-alpine"));
        assert_eq!(w.replicas, 1);
        assert_eq!(w.command, ["sh", "/usr/local/bin/voodu-redis-entrypoint"]);
        assert_eq!(w.ports, [PortSpec::parse("6379").unwrap()]);
        assert_eq!(
            w.volume_claims,
            [VolumeClaim {
                name: "data".into(),
                mount_path: "/data".into()
            }]
        );
        assert_eq!(
            w.volumes,
            [
                vol("${asset.data.cache@redis.redis-conf}:/etc/redis/redis.conf:ro"),
                vol(
                    "${asset.data.cache@redis.entrypoint}:/usr/local/bin/voodu-redis-entrypoint:ro"
                ),
            ]
        );
        assert_eq!(
            w.env,
            BTreeMap::from([("REDISCLI_AUTH".into(), "${REDIS_PASSWORD}".into())])
        );
        assert!(w.env_from.is_empty());
        assert_eq!(w.probes, default_probes());
        assert_eq!(w.resources, Resources::default());
        assert_eq!(
            e.files.keys().collect::<Vec<_>>(),
            ["entrypoint", "redis-conf"]
        );
        assert_eq!(e.files["redis-conf"], redis_conf());
        assert_eq!(e.files["entrypoint"], entrypoint_script());
    }

    #[test]
    fn generated_mounts_parse_as_asset_refs() {
        let e = expand(&id(), &RedisSpec::default());
        let refs: Vec<TemplateRef> = e
            .workload
            .volumes
            .iter()
            .flat_map(|v| template::refs(&v.source).unwrap())
            .collect();
        let asset = |key: &str| TemplateRef::Asset {
            scope: "data".into(),
            name: "cache@redis".into(),
            key: key.into(),
        };
        assert_eq!(refs, [asset("redis-conf"), asset("entrypoint")]);
        for key in e.files.keys() {
            assert!(
                !key.contains('.'),
                "file key {key} would break ${{asset...}}"
            );
        }
        assert_eq!(generated_asset_name("cache"), "cache@redis");
        // The env template names a variable.
        assert_eq!(
            template::refs(&e.workload.env["REDISCLI_AUTH"]).unwrap(),
            [TemplateRef::Var("REDIS_PASSWORD".into())]
        );
    }

    #[test]
    fn default_probes_exactly() {
        let p = default_probes();
        let l = p.liveness.unwrap();
        assert_eq!(l.action, ProbeAction::TcpSocket { port: 6379 });
        assert_eq!(
            (
                l.period_ms,
                l.failure_threshold,
                l.success_threshold,
                l.timeout_ms,
                l.initial_delay_ms
            ),
            (10_000, 3, 1, 1_000, 0)
        );
        let r = p.readiness.unwrap();
        assert_eq!(
            r.action,
            ProbeAction::Exec {
                command: ["redis-cli", "-e", "-h", "${VOODU_POD_IP}", "ping"]
                    .map(String::from)
                    .to_vec()
            }
        );
        assert_eq!(
            (
                r.period_ms,
                r.failure_threshold,
                r.success_threshold,
                r.timeout_ms,
                r.initial_delay_ms
            ),
            (5_000, 1, 2, 1_000, 0)
        );
        assert!(p.startup.is_none());
        // The pod-IP placeholder is a template the server can fill.
        assert_eq!(
            template::refs("${VOODU_POD_IP}").unwrap(),
            [TemplateRef::Var("VOODU_POD_IP".into())]
        );

        let f = fast_probes();
        let (fl, fr) = (f.liveness.unwrap(), f.readiness.unwrap());
        assert_eq!((fl.period_ms, fl.failure_threshold), (5_000, 3));
        assert_eq!(
            (fr.period_ms, fr.success_threshold, fr.failure_threshold),
            (1_000, 1, 1)
        );
        assert_eq!(fr.action, r.action);
        assert_eq!(fl.action, l.action);
    }

    #[test]
    fn operator_env_wins_per_key_and_env_from_passes_through() {
        let spec = RedisSpec {
            env: BTreeMap::from([
                ("REDISCLI_AUTH".into(), "mine".into()),
                ("TZ".into(), "UTC".into()),
            ]),
            env_from: vec!["data".into(), "aws/cli".into()],
            ..RedisSpec::default()
        };
        let w = expand(&id(), &spec).workload;
        assert_eq!(
            w.env,
            BTreeMap::from([
                ("REDISCLI_AUTH".into(), "mine".into()),
                ("TZ".into(), "UTC".into()),
            ])
        );
        assert_eq!(w.env_from, ["data", "aws/cli"]);
    }

    #[test]
    fn operator_volume_replaces_same_destination_and_others_append() {
        let spec = RedisSpec {
            volumes: vec![
                vol("${asset.data.acl.users}:/etc/redis/conf.d/users.conf:ro"),
                vol("${asset.data.redis-config.conf}:/etc/redis//redis.conf/:ro"),
            ],
            ..RedisSpec::default()
        };
        let w = expand(&id(), &spec).workload;
        assert_eq!(
            w.volumes,
            [
                vol("${asset.data.redis-config.conf}:/etc/redis//redis.conf/:ro"),
                vol(
                    "${asset.data.cache@redis.entrypoint}:/usr/local/bin/voodu-redis-entrypoint:ro"
                ),
                vol("${asset.data.acl.users}:/etc/redis/conf.d/users.conf:ro"),
            ]
        );
    }

    #[test]
    fn probes_replace_wholesale_and_empty_disables() {
        let empty = RedisSpec {
            probes: Some(Probes::default()),
            ..RedisSpec::default()
        };
        assert_eq!(expand(&id(), &empty).workload.probes, Probes::default());

        let only_liveness = Probes {
            liveness: Some(Probe::new(ProbeAction::TcpSocket { port: 6379 })),
            ..Probes::default()
        };
        let spec = RedisSpec {
            probes: Some(only_liveness.clone()),
            ..RedisSpec::default()
        };
        // No field-level merge: the default readiness probe is gone too.
        assert_eq!(expand(&id(), &spec).workload.probes, only_liveness);
    }

    #[test]
    fn command_image_replicas_ports_claims_resources_override() {
        let spec = RedisSpec {
            image: Some("redis:8".into()),
            replicas: Some(3),
            command: Some(vec!["redis-server".into(), "/etc/redis/redis.conf".into()]),
            ports: Some(vec![PortSpec::parse("0.0.0.0:6379").unwrap()]),
            volume_claims: vec![VolumeClaim {
                name: "backups".into(),
                mount_path: "/backups".into(),
            }],
            resources: Resources {
                limits: Limits {
                    cpu_millis: Some(500),
                    memory_bytes: Some(256 << 20),
                },
            },
            ..RedisSpec::default()
        };
        let e = expand(&id(), &spec);
        let w = &e.workload;
        assert_eq!(w.image.as_deref(), Some("redis:8"));
        assert_eq!(w.replicas, 3);
        assert_eq!(w.command, ["redis-server", "/etc/redis/redis.conf"]);
        assert_eq!(w.ports, spec.ports.clone().unwrap());
        assert_eq!(
            w.volume_claims,
            [
                VolumeClaim {
                    name: "data".into(),
                    mount_path: "/data".into()
                },
                spec.volume_claims[0].clone(),
            ]
        );
        assert_eq!(w.resources, spec.resources);
        // The generated files still exist: the macro's asset is emitted even when bypassed.
        assert_eq!(e.files.len(), 2);
    }

    #[test]
    fn paths_normalize() {
        assert_eq!(normalize_path("/etc//redis/"), "/etc/redis");
        assert!(same_path(
            "/etc/redis/redis.conf",
            "/etc/redis//redis.conf/"
        ));
        assert!(!same_path(
            "/etc/redis/redis.conf",
            "/etc/redis/redis.conf.d"
        ));
    }
}
