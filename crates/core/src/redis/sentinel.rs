//! The sentinel sibling: `redis "scope" "name" { sentinel { monitor = "scope/other" } }`
//! becomes a statefulset of sentinels watching the data redis `other`.

use super::expand::{asset_source, merge_volumes};
use super::{
    quorum, sentinel_entrypoint_script, Expansion, DEFAULT_IMAGE, SENTINEL_DEFAULT_REPLICAS,
    SENTINEL_ENTRYPOINT_KEY, SENTINEL_ENTRYPOINT_PATH, SENTINEL_PASSWORD_VAR, SENTINEL_PORT,
};
use crate::{
    PortSpec, Probe, ProbeAction, Probes, RedisSpec, ResourceRef, VolumeClaim, VolumeMount,
    WorkloadSpec,
};
use std::collections::BTreeMap;

/// Expands a sentinel sibling `id` watching the data redis `monitor`, with the same merge rules
/// as [`expand`](super::expand): the macro's defaults for every field the operator left unset
/// (3 sentinels, the sentinel entrypoint, port 26379, a `data` claim at `/data` for the config
/// sentinel rewrites), env deep-merged (operator wins per key), volumes merged by destination,
/// probes replaced wholesale (`Some(empty)` disables).
///
/// The env holds `VOODU_SENTINEL_MONITOR` (the monitored name) and `VOODU_SENTINEL_QUORUM`
/// ([`quorum`] of the replicas), and `env_from` ends with the monitored redis's bucket
/// `<scope>/<name>` (added by the macro, the operator need not write it), through which the
/// pods read `REDIS_PASSWORD` and `REDIS_MASTER_ORDINAL`. The sentinels' own password,
/// `REDIS_SENTINEL_PASSWORD`, comes from the sibling's own bucket (every pod reads its own);
/// `REDISCLI_AUTH` is set to it, so `redis-cli` in a probe or a `vd exec` authenticates to the
/// sentinel without the password in its argv.
pub fn expand_sentinel(id: &ResourceRef, spec: &RedisSpec, monitor: &ResourceRef) -> Expansion {
    let replicas = spec.replicas.unwrap_or(SENTINEL_DEFAULT_REPLICAS);
    let mut env = BTreeMap::from([
        ("VOODU_SENTINEL_MONITOR".to_string(), monitor.name.clone()),
        (
            "VOODU_SENTINEL_QUORUM".to_string(),
            quorum(replicas).to_string(),
        ),
        (
            "REDISCLI_AUTH".to_string(),
            format!("${{{SENTINEL_PASSWORD_VAR}}}"),
        ),
    ]);
    let tls = super::tls::is_tls(spec);
    if tls {
        env.insert(super::TLS_ENV.to_string(), "yes".to_string());
    }
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));

    let mut env_from = spec.env_from.clone();
    let bucket = format!("{}/{}", monitor.scope, monitor.name);
    if !env_from.contains(&bucket) {
        env_from.push(bucket);
    }

    let mut volume_claims = vec![VolumeClaim {
        name: "data".into(),
        mount_path: "/data".into(),
    }];
    volume_claims.extend(spec.volume_claims.iter().cloned());

    let entrypoint = VolumeMount {
        source: asset_source(id, SENTINEL_ENTRYPOINT_KEY),
        target: SENTINEL_ENTRYPOINT_PATH.into(),
        read_only: true,
    };

    let workload = WorkloadSpec {
        image: Some(spec.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into())),
        replicas,
        command: spec
            .command
            .clone()
            .unwrap_or_else(|| vec!["sh".into(), SENTINEL_ENTRYPOINT_PATH.into()]),
        env,
        env_from,
        ports: spec.ports.clone().unwrap_or_else(|| {
            vec![PortSpec {
                host_ip: None,
                port: SENTINEL_PORT,
            }]
        }),
        volume_claims,
        volumes: merge_volumes(vec![entrypoint], &spec.volumes),
        probes: spec.probes.clone().unwrap_or_else(|| sentinel_probes(tls)),
        resources: spec.resources.clone(),
        certificate: tls.then(|| super::TLS_DIR.to_string()),
    };
    let files = BTreeMap::from([(
        SENTINEL_ENTRYPOINT_KEY.to_string(),
        sentinel_entrypoint_script(),
    )]);
    Expansion { workload, files }
}

/// A sentinel's default probes. Liveness: a TCP connect to 26379 every 10 s, 3 failures.
/// Readiness: `redis-cli -h ${VOODU_POD_IP} -p 26379 ping` every 2 s, ready on the first
/// answer, unready on the first failure.
///
/// - `-h ${VOODU_POD_IP}`: the entrypoint binds the sentinel to the pod's own address (a
///   127.x.y.z per pod on the process runtime, the container's address on docker), not
///   127.0.0.1, so the default host would be refused. The server fills `VOODU_*` in exec probe
///   commands.
/// - `-e`: an error reply (a wrong password) fails the probe. No dataset to load, so a
///   sentinel answers `PING` with `PONG` as soon as it listens. `redis-cli` authenticates with
///   `REDISCLI_AUTH` from the pod's env.
///
/// Timeout 1 s and no initial delay, as [`Probe::new`].
pub fn default_sentinel_probes() -> Probes {
    sentinel_probes(false)
}

/// [`default_sentinel_probes`], the readiness check over TLS for a TLS sibling.
fn sentinel_probes(tls: bool) -> Probes {
    let liveness = Probe {
        period_ms: 10_000,
        failure_threshold: 3,
        ..Probe::new(ProbeAction::TcpSocket {
            port: SENTINEL_PORT,
        })
    };
    let readiness = Probe {
        period_ms: 2_000,
        failure_threshold: 1,
        success_threshold: 1,
        ..Probe::new(ProbeAction::Exec {
            command: sentinel_readiness_command(tls),
        })
    };
    Probes {
        liveness: Some(liveness),
        readiness: Some(readiness),
        startup: None,
    }
}

/// `redis-cli -e -h ${VOODU_POD_IP} -p 26379 ping`, over TLS for a TLS sibling.
pub fn sentinel_readiness_command(tls: bool) -> Vec<String> {
    super::probe::ping_command(Some(SENTINEL_PORT), tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{self, TemplateRef};
    use crate::{Kind, Limits, Resources};

    fn id() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "clowk-lp", "redis-quorum")
    }

    fn monitor() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "clowk-lp", "redis")
    }

    fn vol(s: &str) -> VolumeMount {
        VolumeMount::parse(s).unwrap()
    }

    const ENTRYPOINT: &str = "${asset.clowk-lp.redis-quorum@redis.sentinel-entrypoint}:\
                              /usr/local/bin/voodu-sentinel-entrypoint:ro";

    #[test]
    fn quorum_is_a_majority() {
        let q: Vec<u32> = (0..=7).map(quorum).collect();
        assert_eq!(q, [1, 1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn defaults_of_a_bare_sentinel_block() {
        // redis "clowk-lp" "redis-quorum" { sentinel { monitor = "clowk-lp/redis" } }
        let e = expand_sentinel(&id(), &RedisSpec::default(), &monitor());
        let w = &e.workload;
        assert_eq!(w.image.as_deref(), Some("redis:7-alpine"));
        assert_eq!(w.replicas, 3);
        assert_eq!(
            w.command,
            ["sh", "/usr/local/bin/voodu-sentinel-entrypoint"]
        );
        assert_eq!(w.ports, [PortSpec::parse("26379").unwrap()]);
        assert_eq!(w.ports[0].host_ip, None);
        assert_eq!(
            w.volume_claims,
            [VolumeClaim {
                name: "data".into(),
                mount_path: "/data".into()
            }]
        );
        assert_eq!(w.volumes, [vol(ENTRYPOINT)]);
        assert_eq!(
            w.env,
            BTreeMap::from([
                ("VOODU_SENTINEL_MONITOR".into(), "redis".into()),
                ("VOODU_SENTINEL_QUORUM".into(), "2".into()),
                ("REDISCLI_AUTH".into(), "${REDIS_SENTINEL_PASSWORD}".into()),
            ])
        );
        assert_eq!(w.env_from, ["clowk-lp/redis"]);
        assert_eq!(w.probes, default_sentinel_probes());
        assert_eq!(w.resources, Resources::default());
        assert_eq!(
            e.files,
            BTreeMap::from([(
                "sentinel-entrypoint".to_string(),
                sentinel_entrypoint_script()
            )])
        );
    }

    #[test]
    fn generated_mount_parses_as_an_asset_ref() {
        let e = expand_sentinel(&id(), &RedisSpec::default(), &monitor());
        assert_eq!(
            template::refs(&e.workload.volumes[0].source).unwrap(),
            [TemplateRef::Asset {
                scope: "clowk-lp".into(),
                name: "redis-quorum@redis".into(),
                key: "sentinel-entrypoint".into(),
            }]
        );
        for key in e.files.keys() {
            assert!(
                !key.contains('.'),
                "file key {key} would break ${{asset...}}"
            );
        }
    }

    #[test]
    fn default_probes_exactly() {
        let p = default_sentinel_probes();
        let l = p.liveness.unwrap();
        assert_eq!(l.action, ProbeAction::TcpSocket { port: 26379 });
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
                command: [
                    "redis-cli",
                    "-e",
                    "-h",
                    "${VOODU_POD_IP}",
                    "-p",
                    "26379",
                    "ping"
                ]
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
            (2_000, 1, 1, 1_000, 0)
        );
        assert!(p.startup.is_none());
    }

    #[test]
    fn quorum_follows_replicas_and_operator_env_wins_per_key() {
        let spec = RedisSpec {
            replicas: Some(5),
            env: BTreeMap::from([
                ("TZ".into(), "UTC".into()),
                ("VOODU_SENTINEL_QUORUM".into(), "4".into()),
            ]),
            ..RedisSpec::default()
        };
        let w = expand_sentinel(&id(), &spec, &monitor()).workload;
        assert_eq!(w.replicas, 5);
        assert_eq!(
            w.env,
            BTreeMap::from([
                ("REDISCLI_AUTH".into(), "${REDIS_SENTINEL_PASSWORD}".into()),
                ("TZ".into(), "UTC".into()),
                ("VOODU_SENTINEL_MONITOR".into(), "redis".into()),
                ("VOODU_SENTINEL_QUORUM".into(), "4".into()),
            ])
        );
        let one = RedisSpec {
            replicas: Some(1),
            ..RedisSpec::default()
        };
        let w = expand_sentinel(&id(), &one, &monitor()).workload;
        assert_eq!(w.env["VOODU_SENTINEL_QUORUM"], "1");
    }

    #[test]
    fn monitored_bucket_is_appended_to_env_from_once() {
        let spec = |env_from: &[&str]| RedisSpec {
            env_from: env_from.iter().map(|s| s.to_string()).collect(),
            ..RedisSpec::default()
        };
        let env_from = |s: &RedisSpec| expand_sentinel(&id(), s, &monitor()).workload.env_from;
        assert_eq!(env_from(&spec(&["aws/cli"])), ["aws/cli", "clowk-lp/redis"]);
        // Already listed (anywhere): left where the operator put it.
        assert_eq!(
            env_from(&spec(&["clowk-lp/redis", "aws/cli"])),
            ["clowk-lp/redis", "aws/cli"]
        );
    }

    #[test]
    fn operator_fields_override_and_merge() {
        let spec = RedisSpec {
            image: Some("redis:8".into()),
            command: Some(vec!["redis-server".into(), "/etc/sentinel.conf".into()]),
            ports: Some(vec![PortSpec::parse("0.0.0.0:26379").unwrap()]),
            volume_claims: vec![VolumeClaim {
                name: "logs".into(),
                mount_path: "/logs".into(),
            }],
            volumes: vec![
                vol("${asset.clowk-lp.redis-ha-overrides.defs}:/etc/sentinel/conf.d/overrides.conf:ro"),
                vol("${asset.clowk-lp.mine.sh}:/usr/local/bin//voodu-sentinel-entrypoint:ro"),
            ],
            resources: Resources {
                limits: Limits {
                    cpu_millis: Some(100),
                    memory_bytes: Some(64 << 20),
                },
            },
            ..RedisSpec::default()
        };
        let e = expand_sentinel(&id(), &spec, &monitor());
        let w = &e.workload;
        assert_eq!(w.image.as_deref(), Some("redis:8"));
        assert_eq!(w.command, ["redis-server", "/etc/sentinel.conf"]);
        assert_eq!(w.ports, spec.ports.clone().unwrap());
        assert_eq!(w.volume_claims.len(), 2);
        assert_eq!(w.volume_claims[1], spec.volume_claims[0]);
        // Same destination: the operator's entry takes the macro's place; others append.
        assert_eq!(
            w.volumes,
            [spec.volumes[1].clone(), spec.volumes[0].clone()]
        );
        assert_eq!(w.resources, spec.resources);
        // The generated file still exists.
        assert_eq!(e.files.len(), 1);
    }

    #[test]
    fn probes_replace_wholesale_and_empty_disables() {
        let empty = RedisSpec {
            probes: Some(Probes::default()),
            ..RedisSpec::default()
        };
        assert_eq!(
            expand_sentinel(&id(), &empty, &monitor()).workload.probes,
            Probes::default()
        );
        let only_liveness = Probes {
            liveness: Some(Probe::new(ProbeAction::TcpSocket { port: 26379 })),
            ..Probes::default()
        };
        let spec = RedisSpec {
            probes: Some(only_liveness.clone()),
            ..RedisSpec::default()
        };
        assert_eq!(
            expand_sentinel(&id(), &spec, &monitor()).workload.probes,
            only_liveness
        );
    }
}
