//! The redis macro block: statefulset passthrough kept as written, `plugin`, `sentinel`, and
//! the sentinel validation rules with their messages and places; `failover` and `proxy` and
//! their rules.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use vd_core::{
    AssetSpec, FailoverSpec, Kind, Limits, PortSpec, Probe, ProbeAction, Probes, ProxySpec,
    RedisSpec, Resource, ResourceRef, Resources, SentinelSpec, Spec, VolumeClaim, VolumeMount,
};
use vd_manifest::{load_files, parse_str, Diagnostic, Manifest};

const PATH: &str = "/nonexistent/m.hcl";

fn parse(text: &str) -> Manifest {
    match parse_str(Path::new(PATH), text) {
        Ok(m) => m,
        Err(e) => panic!("expected a valid manifest, got:\n{e:#}"),
    }
}

/// Writes `files` and the manifest into a temporary directory and loads it from disk, so that
/// the examples' `file("./conf/...")` calls resolve.
fn load_with_files(text: &str, files: &[(&str, &str)]) -> Manifest {
    let dir = tempfile::tempdir().unwrap();
    for (rel, body) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let path = dir.path().join("voodu.hcl");
    std::fs::write(&path, text).unwrap();
    load_files(&[path]).unwrap_or_else(|e| panic!("{e:#}"))
}

fn redis(m: &Manifest, scope: &str, name: &str) -> RedisSpec {
    let r = ResourceRef::new(Kind::Redis, scope, name);
    match m.get(&r).map(|r| &r.spec) {
        Some(Spec::Redis(s)) => s.clone(),
        other => panic!("{r}: expected a redis, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn sentinel(monitor: &str) -> Option<SentinelSpec> {
    Some(SentinelSpec {
        enabled: true,
        monitor: Some(monitor.into()),
    })
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(Path::new(PATH), text) {
        Ok(m) => panic!("expected errors, parsed {:?}", m.resources),
        Err(e) => e.0,
    }
}

fn render(errs: &[Diagnostic]) -> String {
    errs.iter()
        .map(|d| format!("{d}\n  help: {:?}", d.help()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts `text` fails with exactly one error, with this message at this place; returns it.
fn single(text: &str, message: &str, line: usize, col: usize) -> Diagnostic {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got:\n{}", render(&errs));
    let d = errs.into_iter().next().unwrap();
    assert_eq!(d.message(), message);
    assert_eq!(d.location(), Some((PathBuf::from(PATH), line, col)), "{d}");
    assert!(d.help().is_some_and(|h| !h.is_empty()), "no help for {d}");
    d
}

fn help(d: &Diagnostic) -> &str {
    d.help().unwrap_or_default()
}

// ----- whole manifests: a lone standalone, HA clusters with their apps, custom configs -----

#[test]
fn seed_minimal_standalone_is_all_defaults() {
    let m = parse("redis \"data\" \"cache\" {}\n");
    assert_eq!(m.resources.len(), 1);
    assert_eq!(
        m.resources[0].id,
        ResourceRef::new(Kind::Redis, "data", "cache")
    );
    let r = redis(&m, "data", "cache");
    assert_eq!(r, RedisSpec::default());
    // Spelled out: every operator-settable field is unset, so the macro's defaults apply.
    assert_eq!(r.image, None);
    assert_eq!(r.replicas, None);
    assert_eq!(r.command, None);
    assert_eq!(r.ports, None);
    assert_eq!(r.probes, None);
    assert!(r.env.is_empty() && r.env_from.is_empty());
    assert!(r.volumes.is_empty() && r.volume_claims.is_empty());
    assert_eq!(r.resources, Resources::default());
    assert_eq!(r.plugin_version, None);
    assert_eq!(r.sentinel, None);
    assert_eq!(r.failover, None);
    assert_eq!(r.proxy, None);
    let id = ResourceRef::new(Kind::Redis, "data", "cache");
    assert_eq!(m.spans.fields(&id).collect::<Vec<_>>(), [""]);
}

#[test]
fn seed_synopsis_sentinel_sibling() {
    let m = parse(
        r#"redis "scope" "redis-ha" {
  image = "redis:7-alpine"

  sentinel {
    monitor = "scope/redis"
  }
}
"#,
    );
    assert_eq!(
        redis(&m, "scope", "redis-ha"),
        RedisSpec {
            image: Some("redis:7-alpine".into()),
            sentinel: sentinel("scope/redis"),
            ..RedisSpec::default()
        }
    );
}

#[test]
fn seed_two_resource_ha_cluster() {
    let m = parse(
        r#"redis "clowk-lp" "redis" {
  image    = "redis:8"
  replicas = 3
}

redis "clowk-lp" "redis-quorum" {
  image = "redis:8"

  sentinel {
    monitor = "clowk-lp/redis"
  }
}
"#,
    );
    assert_eq!(m.resources.len(), 2);
    assert_eq!(
        redis(&m, "clowk-lp", "redis"),
        RedisSpec {
            image: Some("redis:8".into()),
            replicas: Some(3),
            ..RedisSpec::default()
        }
    );
    assert_eq!(
        redis(&m, "clowk-lp", "redis-quorum"),
        RedisSpec {
            image: Some("redis:8".into()),
            sentinel: sentinel("clowk-lp/redis"),
            ..RedisSpec::default()
        }
    );
    // Spans of the sentinel block, for the server's own errors (e.g. monitor target missing).
    let q = ResourceRef::new(Kind::Redis, "clowk-lp", "redis-quorum");
    let at = |field: &str| {
        m.diagnostic_at(&q, field, "x", None)
            .location()
            .map(|(_, l, c)| (l, c))
    };
    assert_eq!(at(""), Some((6, 1)));
    assert_eq!(at("image"), Some((7, 11)));
    assert_eq!(at("sentinel"), Some((9, 3)));
    assert_eq!(at("sentinel.monitor"), Some((10, 15)));
}

#[test]
fn seed_linked_app_examples() {
    let m = parse(
        r#"redis "clowk-lp" "redis" {
  image = "redis:8"
}

deployment "clowk-lp" "web" {
  image = "ghcr.io/clowk/web:latest"
  ports = ["3000"]
}
"#,
    );
    assert_eq!(
        redis(&m, "clowk-lp", "redis"),
        RedisSpec {
            image: Some("redis:8".into()),
            ..RedisSpec::default()
        }
    );
    assert_eq!(
        m.resources.iter().map(|r| r.id.kind).collect::<Vec<_>>(),
        [Kind::Redis, Kind::Deployment]
    );
    let m = parse(
        r#"redis "clowk-lp" "redis" {
  image    = "redis:8"
  replicas = 3
}
"#,
    );
    assert_eq!(redis(&m, "clowk-lp", "redis").replicas, Some(3));
}

#[test]
fn seed_custom_redis_conf_via_asset() {
    let m = load_with_files(
        r#"asset "data" "redis-config" {
  conf = file("./conf/redis-prod.conf")
}

redis "data" "cache" {
  command = ["redis-server", "/etc/redis/redis.conf"]   # override wrapper

  volumes = [
    "${asset.data.redis-config.conf}:/etc/redis/redis.conf:ro"
  ]
}
"#,
        &[("conf/redis-prod.conf", "maxmemory 256mb\n")],
    );
    let Spec::Asset(AssetSpec { files }) = &m.resources[0].spec else {
        panic!("{:?}", m.resources[0])
    };
    assert_eq!(files["conf"], "maxmemory 256mb\n");
    assert_eq!(
        redis(&m, "data", "cache"),
        RedisSpec {
            command: Some(strings(&["redis-server", "/etc/redis/redis.conf"])),
            volumes: vec![VolumeMount {
                source: "${asset.data.redis-config.conf}".into(),
                target: "/etc/redis/redis.conf".into(),
                read_only: true,
            }],
            ..RedisSpec::default()
        }
    );
}

#[test]
fn seed_custom_acls() {
    let m = load_with_files(
        r#"asset "clowk-lp" "redis" {
  users = file("./conf/users.conf")
}

redis "clowk-lp" "redis" {
  image    = "redis:8"
  replicas = 2

  volumes = [
    "${asset.clowk-lp.redis.users}:/etc/redis/conf.d/users.conf:ro"
  ]
}
"#,
        &[(
            "conf/users.conf",
            "user appwriter on >app-secret ~app:* +@write +@read\nuser appreader on >read-secret ~app:* +@read\n",
        )],
    );
    // An asset and a redis may share scope and name: identities include the kind.
    assert_eq!(m.resources.len(), 2);
    assert_eq!(
        redis(&m, "clowk-lp", "redis"),
        RedisSpec {
            image: Some("redis:8".into()),
            // Two data replicas are fine; the quorum rule is about sentinels.
            replicas: Some(2),
            volumes: vec![VolumeMount {
                source: "${asset.clowk-lp.redis.users}".into(),
                target: "/etc/redis/conf.d/users.conf".into(),
                read_only: true,
            }],
            ..RedisSpec::default()
        }
    );
}

#[test]
fn seed_custom_sentinel_tuning() {
    let m = load_with_files(
        r#"asset "clowk-lp" "redis-ha-overrides" {
  defs = file("./conf/sentinel-overrides.conf")
}

redis "clowk-lp" "redis-ha" {
  sentinel { monitor = "clowk-lp/redis" }

  volumes = [
    "${asset.clowk-lp.redis-ha-overrides.defs}:/etc/sentinel/conf.d/overrides.conf:ro"
  ]
}
"#,
        &[(
            "conf/sentinel-overrides.conf",
            "sentinel down-after-milliseconds voodu-master 2000\n",
        )],
    );
    assert_eq!(
        redis(&m, "clowk-lp", "redis-ha"),
        RedisSpec {
            volumes: vec![VolumeMount {
                source: "${asset.clowk-lp.redis-ha-overrides.defs}".into(),
                target: "/etc/sentinel/conf.d/overrides.conf".into(),
                read_only: true,
            }],
            sentinel: sentinel("clowk-lp/redis"),
            ..RedisSpec::default()
        }
    );
}

// ----- passthrough, plugin, probes -----

const FULL: &str = r#"redis "data" "cache" {
  image    = "redis:8"
  replicas = 3
  command  = ["redis-server", "--requirepass", "${REDIS_PASSWORD}"]
  env      = { MAXMEMORY = "256mb", PORT = 6379 }
  env_from = ["data", "aws/cli"]
  ports    = ["127.0.0.1:6379"]
  volumes  = ["${asset.data.cfg.conf}:/etc/redis/conf.d/extra.conf:ro"]

  volume_claim "backups" {
    mount_path = "/backups"
  }
  volume_claims = [{ name = "wal", mount_path = "/wal" }]

  probes {}

  resources {
    limits {
      cpu    = "1"
      memory = "512Mi"
    }
  }

  plugin {
    version = "0.14.0"
  }

  sentinel {
    enabled = false
  }

  failover {
    automatic  = true
    down_after = "1.5s"
  }

  proxy {
    enabled  = true
    replicas = 2
  }
}
"#;

#[test]
fn every_statefulset_field_passes_through_as_written() {
    let m = parse(FULL);
    let expected = RedisSpec {
        image: Some("redis:8".into()),
        replicas: Some(3),
        command: Some(strings(&[
            "redis-server",
            "--requirepass",
            "${REDIS_PASSWORD}",
        ])),
        env: [("MAXMEMORY", "256mb"), ("PORT", "6379")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env_from: strings(&["data", "aws/cli"]),
        ports: Some(vec![PortSpec {
            host_ip: Some("127.0.0.1".into()),
            port: 6379,
        }]),
        volume_claims: vec![
            VolumeClaim {
                name: "backups".into(),
                mount_path: "/backups".into(),
            },
            VolumeClaim {
                name: "wal".into(),
                mount_path: "/wal".into(),
            },
        ],
        volumes: vec![VolumeMount {
            source: "${asset.data.cfg.conf}".into(),
            target: "/etc/redis/conf.d/extra.conf".into(),
            read_only: true,
        }],
        // Written empty: disables the macro's default probes, which `None` would keep.
        probes: Some(Probes::default()),
        resources: Resources {
            limits: Limits {
                cpu_millis: Some(1000),
                memory_bytes: Some(512 << 20),
            },
        },
        plugin_version: Some("0.14.0".into()),
        // `enabled = false` keeps the block, off, and needs no monitor.
        sentinel: Some(SentinelSpec {
            enabled: false,
            monitor: None,
        }),
        failover: Some(FailoverSpec {
            automatic: true,
            down_after_ms: 1500,
        }),
        proxy: Some(ProxySpec {
            enabled: true,
            replicas: 2,
        }),
        backup: None,
        cluster: None,
        tls: None,
    };
    assert_eq!(redis(&m, "data", "cache"), expected);
    // The model round-trips through JSON, which is how the CLI sends it to the server.
    let json = serde_json::to_string(&m.resources).unwrap();
    let back: Vec<Resource> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m.resources);
}

#[test]
fn redis_spans_locate_fields() {
    let m = parse(FULL);
    let r = ResourceRef::new(Kind::Redis, "data", "cache");
    let at = |field: &str| {
        let (_, line, col) = m
            .diagnostic_at(&r, field, "x", None)
            .location()
            .unwrap_or_else(|| panic!("{field} is not located"));
        (line, col)
    };
    assert_eq!(at(""), (1, 1));
    assert_eq!(at("image"), (2, 14));
    assert_eq!(at("replicas"), (3, 14));
    assert_eq!(at("command[2]"), (4, 48));
    assert_eq!(at("env.PORT"), (5, 44));
    assert_eq!(at("env_from[1]"), (6, 23));
    assert_eq!(at("ports[0]"), (7, 15));
    assert_eq!(at("volumes[0]"), (8, 15));
    assert_eq!(at("volume_claims[0]"), (10, 3));
    assert_eq!(at("volume_claims[1].mount_path"), (13, 49));
    assert_eq!(at("probes"), (15, 3));
    assert_eq!(at("resources.limits.memory"), (20, 16));
    assert_eq!(at("plugin"), (24, 3));
    assert_eq!(at("plugin.version"), (25, 15));
    assert_eq!(at("sentinel"), (28, 3));
    assert_eq!(at("sentinel.enabled"), (29, 15));
    // Not written: falls back to the block.
    assert_eq!(at("sentinel.monitor"), (28, 3));
    assert_eq!(at("failover"), (32, 3));
    assert_eq!(at("failover.automatic"), (33, 18));
    assert_eq!(at("failover.down_after"), (34, 18));
    assert_eq!(at("proxy"), (37, 3));
    assert_eq!(at("proxy.enabled"), (38, 16));
    assert_eq!(at("proxy.replicas"), (39, 16));
    let fields: Vec<&str> = m.spans.fields(&r).collect();
    for f in [
        "plugin.version",
        "sentinel",
        "sentinel.enabled",
        "failover",
        "failover.automatic",
        "failover.down_after",
        "proxy",
        "proxy.enabled",
        "proxy.replicas",
        "probes",
        "volume_claims",
        "env_from[0]",
    ] {
        assert!(fields.contains(&f), "no span for {f:?}; have {fields:?}");
    }
}

#[test]
fn probes_are_none_unless_written_and_kept_whole_when_written() {
    let m = parse(
        r#"redis "data" "a" {
  probes {}
}
redis "data" "b" {
  probes {
    liveness {
      tcp_socket { port = 6379 }
      period = "10s"
    }
  }
}
redis "data" "c" {
  ports = []
  command = []
}
"#,
    );
    assert_eq!(redis(&m, "data", "a").probes, Some(Probes::default()));
    let mut live = Probe::new(ProbeAction::TcpSocket { port: 6379 });
    live.period_ms = 10_000;
    assert_eq!(
        redis(&m, "data", "b").probes,
        Some(Probes {
            liveness: Some(live),
            ..Probes::default()
        })
    );
    // Written empty is not the same as not written.
    let c = redis(&m, "data", "c");
    assert_eq!(c.ports, Some(vec![]));
    assert_eq!(c.command, Some(vec![]));
    assert_eq!(c.probes, None);
}

#[test]
fn sentinel_block_forms() {
    let m = parse(
        r#"redis "s" "redis" {}
redis "s" "ha" {
  replicas = 3
  sentinel {
    enabled = true
    monitor = "s/redis"
  }
}
redis "s" "observer" {
  replicas = 1
  sentinel { monitor = "s/redis" }
}
redis "s" "off" {
  replicas = 2
  sentinel {
    enabled = false
    monitor = "s/redis"
  }
}
"#,
    );
    assert_eq!(redis(&m, "s", "redis").sentinel, None);
    let ha = redis(&m, "s", "ha");
    assert_eq!(ha.sentinel, sentinel("s/redis"));
    assert_eq!(ha.replicas, Some(3));
    assert_eq!(redis(&m, "s", "observer").sentinel, sentinel("s/redis"));
    // Off: a plain data redis, so two replicas are fine; the monitor is kept as written.
    let off = redis(&m, "s", "off");
    assert_eq!(off.replicas, Some(2));
    assert_eq!(
        off.sentinel,
        Some(SentinelSpec {
            enabled: false,
            monitor: Some("s/redis".into())
        })
    );
}

// ----- sentinel validation -----

#[test]
fn sentinel_monitor_is_required_when_enabled() {
    let d = single(
        "redis \"clowk-lp\" \"redis-ha\" {\n  image = \"redis:8\"\n  sentinel {}\n}\n",
        "`sentinel` has no monitor",
        3,
        3,
    );
    assert!(
        help(&d).contains("monitor = \"clowk-lp/NAME\""),
        "{:?}",
        d.help()
    );
    assert!(help(&d).contains("enabled = false"), "{:?}", d.help());
    let d = single(
        "redis \"a\" \"b\" {\n  sentinel {\n    enabled = true\n  }\n}\n",
        "`sentinel` has no monitor",
        2,
        3,
    );
    assert!(help(&d).contains("monitor = \"a/NAME\""));
}

#[test]
fn sentinel_monitor_must_be_scope_slash_name() {
    for (monitor, message) in [
        (
            "redis",
            "`sentinel.monitor` must be \"scope/name\", found \"redis\"",
        ),
        (
            "a/b/c",
            "`sentinel.monitor` must be \"scope/name\", found \"a/b/c\"",
        ),
        ("", "`sentinel.monitor` must be \"scope/name\", found \"\""),
        (
            "a/",
            "in `sentinel.monitor`: monitor name `` must be 1-63 lowercase letters, digits or `-`, not starting or ending with `-` (it becomes part of host names)",
        ),
        (
            "Clowk/redis",
            "in `sentinel.monitor`: monitor scope `Clowk` must be 1-63 lowercase letters, digits or `-`, not starting or ending with `-` (it becomes part of host names)",
        ),
    ] {
        let d = single(
            &format!("redis \"clowk-lp\" \"ha\" {{\n  sentinel {{\n    monitor = \"{monitor}\"\n  }}\n}}\n"),
            message,
            3,
            15,
        );
        assert!(
            help(&d).contains("\"scope/name\", e.g. monitor = \"clowk-lp/redis\""),
            "{:?}",
            d.help()
        );
    }
    // Not a string at all.
    single(
        "redis \"a\" \"ha\" {\n  sentinel { monitor = 3 }\n}\n",
        "`sentinel.monitor` must be a string, found a number",
        2,
        24,
    );
    // Interpolation is not resolved in the monitor: it names a resource, not a template.
    single(
        "redis \"a\" \"ha\" {\n  sentinel { monitor = \"a/${X}\" }\n}\n",
        "`sentinel.monitor` cannot use `${...}` interpolation",
        2,
        27,
    );
}

#[test]
fn sentinel_monitor_cross_scope_is_rejected() {
    let d = single(
        "redis \"clowk-lp\" \"redis-ha\" {\n  sentinel {\n    monitor = \"other/redis\"\n  }\n}\n",
        "`sentinel.monitor` \"other/redis\" is in scope `other`, but this redis is in scope `clowk-lp`",
        3,
        15,
    );
    assert!(
        help(&d).starts_with("sentinel siblings must watch a redis in the same scope; multi-scope clusters need their own sentinel siblings"),
        "{:?}",
        d.help()
    );
    assert!(help(&d).contains("declare a sentinel sibling in scope `other`"));
}

#[test]
fn sentinel_monitor_pointing_at_itself_is_rejected() {
    let d = single(
        "redis \"clowk-lp\" \"redis\" {\n  sentinel { monitor = \"clowk-lp/redis\" }\n}\n",
        "`sentinel.monitor` points at this redis itself (\"clowk-lp/redis\")",
        2,
        24,
    );
    assert!(
        help(&d).contains("declare the data redis as its own block"),
        "{:?}",
        d.help()
    );
}

#[test]
fn two_sentinels_are_rejected_with_the_quorum_math() {
    let quorum = "quorum floor(2/2)+1 = 2: any single sentinel outage blocks failover, strictly worse than 1";
    // Before the block and after it: the check sees the whole resource.
    for (text, line, col) in [
        (
            "redis \"s\" \"ha\" {\n  replicas = 2\n  sentinel { monitor = \"s/redis\" }\n}\n",
            2,
            14,
        ),
        (
            "redis \"s\" \"ha\" {\n  sentinel { monitor = \"s/redis\" }\n\n  replicas   = 2\n}\n",
            4,
            16,
        ),
    ] {
        let d = single(
            text,
            &format!("`replicas = 2` is rejected for a sentinel sibling: {quorum}"),
            line,
            col,
        );
        assert!(
            help(&d).starts_with("use 1 (observer) or 3+"),
            "{:?}",
            d.help()
        );
    }
    // A missing monitor and two replicas: both reported.
    let errs = errors("redis \"s\" \"ha\" {\n  replicas = 2\n  sentinel {}\n}\n");
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(messages.len(), 2, "{}", render(&errs));
    assert_eq!(messages[0], "`sentinel` has no monitor");
    assert!(messages[1].contains(quorum));
}

#[test]
fn sentinel_block_field_errors() {
    let d = single(
        "redis \"s\" \"ha\" {\n  sentinel {\n    enabled = \"false\"\n  }\n}\n",
        "`sentinel.enabled` must be true or false, found a string",
        3,
        15,
    );
    assert_eq!(d.help(), Some("write enabled = false (no quotes)"));
    let d = single(
        "redis \"s\" \"ha\" {\n  sentinel {\n    enabled = false\n    monitr = \"s/redis\"\n  }\n}\n",
        "unknown field `monitr` in sentinel",
        4,
        5,
    );
    assert_eq!(d.help(), Some("did you mean `monitor`?"));
    // Enabled (the default), a misspelled monitor is also a missing one.
    let errs = errors("redis \"s\" \"ha\" {\n  sentinel {\n    monitr = \"s/redis\"\n  }\n}\n");
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(
        messages,
        [
            "unknown field `monitr` in sentinel",
            "`sentinel` has no monitor"
        ]
    );
    let d = single(
        "redis \"s\" \"ha\" {\n  sentinel {\n    enabled = false\n    quorum = 2\n  }\n}\n",
        "unknown field `quorum` in sentinel",
        4,
        5,
    );
    assert_eq!(d.help(), Some("valid fields here: enabled, monitor"));
    single(
        "redis \"s\" \"ha\" {\n  sentinel \"x\" { monitor = \"s/redis\" }\n}\n",
        "`sentinel` takes no labels",
        2,
        12,
    );
    single(
        "redis \"s\" \"ha\" {\n  sentinel { monitor = \"s/redis\" }\n  sentinel { monitor = \"s/redis\" }\n}\n",
        "`sentinel` appears twice in this redis",
        3,
        3,
    );
    let d = single(
        "redis \"s\" \"ha\" {\n  sentinel = { monitor = \"s/redis\" }\n}\n",
        "`sentinel` is a block, not an attribute",
        2,
        3,
    );
    assert_eq!(d.help(), Some("write `sentinel { ... }` without `=`"));
}

// ----- failover -----

fn failover(automatic: bool, down_after_ms: u64) -> Option<FailoverSpec> {
    Some(FailoverSpec {
        automatic,
        down_after_ms,
    })
}

#[test]
fn failover_block_forms() {
    let m = parse(
        r#"redis "d" "empty" {
  replicas = 3
  failover {}
}
redis "d" "full" {
  replicas = 2
  failover {
    automatic  = true
    down_after = "500ms"
  }
}
redis "d" "minutes" {
  replicas = 3
  failover { down_after = "2m" }
}
redis "d" "mixed" {
  replicas = 3
  failover { down_after = "1m 30s" }
}
redis "d" "fraction" {
  replicas = 3
  failover { down_after = ("1.5s") }
}
redis "d" "shortest" {
  replicas = 3
  failover { down_after = "100ms" }
}
redis "d" "longest" {
  replicas = 3
  failover { down_after = "10m" }
}
redis "d" "off" {
  failover { automatic = false }
}
redis "d" "sentinel-off" {
  replicas = 3
  sentinel { enabled = false }
  failover {}
}
redis "d" "plain" {}
"#,
    );
    let f = |name: &str| redis(&m, "d", name).failover;
    // Present and empty: on, with the default 1s.
    assert_eq!(f("empty"), failover(true, 1000));
    assert_eq!(f("full"), failover(true, 500));
    assert_eq!(f("minutes"), failover(true, 120_000));
    assert_eq!(f("mixed"), failover(true, 90_000));
    assert_eq!(f("fraction"), failover(true, 1500));
    assert_eq!(f("shortest"), failover(true, 100));
    assert_eq!(f("longest"), failover(true, 600_000));
    // Off: recorded, and one pod is fine since nothing is promoted.
    assert_eq!(f("off"), failover(false, 1000));
    assert_eq!(redis(&m, "d", "off").replicas, None);
    // Sentinel mode off makes it a data redis, where the block belongs.
    assert_eq!(f("sentinel-off"), failover(true, 1000));
    assert_eq!(f("plain"), None);
}

#[test]
fn automatic_failover_needs_two_replicas() {
    let one = "`failover { automatic = true }` needs replicas >= 2, found replicas = 1";
    // At the replicas value, before or after the block.
    for (text, line, col) in [
        (
            "redis \"d\" \"c\" {\n  replicas = 1\n  failover {\n    automatic = true\n  }\n}\n",
            2,
            14,
        ),
        (
            "redis \"d\" \"c\" {\n  failover {}\n\n  replicas   = 1\n}\n",
            4,
            16,
        ),
    ] {
        let d = single(text, one, line, col);
        assert!(
            help(&d).starts_with("automatic failover promotes a replica when the master fails, and with one pod there is no replica to promote: set replicas = 3"),
            "{:?}",
            d.help()
        );
        assert!(help(&d).contains("automatic = false"), "{:?}", d.help());
    }
    // Replicas not written: at `automatic` if written, else at the block.
    let unset =
        "`failover { automatic = true }` needs replicas >= 2, found no replicas (the default is 1)";
    single(
        "redis \"d\" \"c\" {\n  failover { automatic = true }\n}\n",
        unset,
        2,
        26,
    );
    single("redis \"d\" \"c\" {\n  failover {}\n}\n", unset, 2, 3);
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 0\n  failover {}\n}\n",
        "`failover { automatic = true }` needs replicas >= 2, found replicas = 0",
        2,
        14,
    );
    assert!(help(&d).contains("with no pods there is no replica to promote"));
    // An `automatic` that is not a bool has its own error; its intent is unknown.
    single(
        "redis \"d\" \"c\" {\n  replicas = 1\n  failover { automatic = \"yes\" }\n}\n",
        "`failover.automatic` must be true or false, found a string",
        3,
        26,
    );
}

#[test]
fn down_after_must_be_a_duration_in_range() {
    let text = |v: &str| {
        format!(
            "redis \"d\" \"c\" {{\n  replicas = 3\n  failover {{\n    down_after = {v}\n  }}\n}}\n"
        )
    };
    for (value, message) in [
        (
            "\"0s\"",
            "`failover.down_after` must be at least 100ms, found 0ms",
        ),
        (
            "\"0\"",
            "`failover.down_after` must be at least 100ms, found 0ms",
        ),
        (
            "\"50ms\"",
            "`failover.down_after` must be at least 100ms, found 50ms",
        ),
        (
            "\"0.05s\"",
            "`failover.down_after` must be at least 100ms, found 50ms",
        ),
        (
            "\"11m\"",
            "`failover.down_after` must be at most 10m, found 11m",
        ),
        (
            "\"1h\"",
            "`failover.down_after` must be at most 10m, found 60m",
        ),
        (
            "\"600001ms\"",
            "`failover.down_after` must be at most 10m, found 600001ms",
        ),
    ] {
        let d = single(&text(value), message, 4, 18);
        assert!(
            help(&d).contains("down_after = \""),
            "{value}: {:?}",
            d.help()
        );
    }
    let d = single(
        &text("\"10ms\""),
        "`failover.down_after` must be at least 100ms, found 10ms",
        4,
        18,
    );
    assert!(
        help(&d).starts_with("below 100ms a single slow reply"),
        "{:?}",
        d.help()
    );
    let d = single(
        &text("\"1h\""),
        "`failover.down_after` must be at most 10m, found 60m",
        4,
        18,
    );
    assert!(
        help(&d).starts_with("a hung master would keep writes down this long"),
        "{:?}",
        d.help()
    );
    // Not a duration at all.
    for value in ["-1s", "soon", "1000", "", "1s!", "1.s"] {
        let d = single(
            &text(&format!("\"{value}\"")),
            &format!(
                "`failover.down_after`: `{value}` is not a duration ({})",
                vd_core::duration::parse(value).unwrap_err().why
            ),
            4,
            18,
        );
        assert_eq!(
            d.help(),
            Some("write a duration like \"10s\", \"500ms\" or \"1m\"")
        );
    }
    // A bare number: refused, not guessed at (milliseconds as in sentinel, or seconds?).
    let d = single(
        &text("1000"),
        "`failover.down_after` must be a duration string, found the number 1000",
        4,
        18,
    );
    assert_eq!(
        d.help(),
        Some("write the unit: down_after = \"1000ms\" for milliseconds (what sentinel's down-after-milliseconds counts) or \"1000s\" for seconds")
    );
    for n in ["0", "-5", "1.5"] {
        let d = single(
            &text(n),
            &format!("`failover.down_after` must be a duration string, found the number {n}"),
            4,
            18,
        );
        assert!(
            help(&d).starts_with("write a duration with its unit"),
            "{:?}",
            d.help()
        );
    }
    single(
        &text("true"),
        "`failover.down_after` must be a string, found a bool",
        4,
        18,
    );
    single(
        &text("\"${X}s\""),
        "`failover.down_after` cannot use `${...}` interpolation",
        4,
        19,
    );
    // Two problems of one block: both reported.
    let errs = errors("redis \"d\" \"c\" {\n  failover { down_after = \"1ms\" }\n}\n");
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(
        messages,
        [
            "`failover { automatic = true }` needs replicas >= 2, found no replicas (the default is 1)",
            "`failover.down_after` must be at least 100ms, found 1ms",
        ],
        "{}",
        render(&errs)
    );
}

#[test]
fn failover_block_field_errors() {
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover {\n    down_afer = \"1s\"\n  }\n}\n",
        "unknown field `down_afer` in failover",
        4,
        5,
    );
    assert_eq!(d.help(), Some("did you mean `down_after`?"));
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover {\n    quorum = 2\n  }\n}\n",
        "unknown field `quorum` in failover",
        4,
        5,
    );
    assert_eq!(d.help(), Some("valid fields here: automatic, down_after"));
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover {\n    automatic {}\n  }\n}\n",
        "`automatic` is an attribute, not a block",
        4,
        5,
    );
    assert_eq!(
        d.help(),
        Some("write `automatic = ...`, e.g. automatic = true or down_after = \"1s\"")
    );
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover {\n    timing {}\n  }\n}\n",
        "unknown field `timing` in failover",
        4,
        5,
    );
    assert_eq!(d.help(), Some("valid fields here: automatic, down_after"));
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover { automatic = \"true\" }\n}\n",
        "`failover.automatic` must be true or false, found a string",
        3,
        26,
    );
    assert_eq!(d.help(), Some("write automatic = true (no quotes)"));
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover { automatic = 1 }\n}\n",
        "`failover.automatic` must be true or false, found a number",
        3,
        26,
    );
    assert_eq!(
        d.help(),
        Some("write automatic = true or automatic = false")
    );
    single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover \"x\" {}\n}\n",
        "`failover` takes no labels",
        3,
        12,
    );
    single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover {}\n  failover { automatic = false }\n}\n",
        "`failover` appears twice in this redis",
        4,
        3,
    );
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failover = { automatic = true }\n}\n",
        "`failover` is a block, not an attribute",
        3,
        3,
    );
    assert_eq!(d.help(), Some("write `failover { ... }` without `=`"));
    let d = single(
        "redis \"d\" \"c\" {\n  replicas = 3\n  failvoer {}\n}\n",
        "unknown field `failvoer` in redis",
        3,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `failover`?"));
}

#[test]
fn failover_belongs_in_a_data_redis() {
    for (text, message, line) in [
        (
            "statefulset \"d\" \"pg\" {\n  image = \"postgres:16\"\n  failover {\n    automatic = true\n  }\n}\n",
            "`failover` is not allowed in a statefulset",
            3,
        ),
        (
            "deployment \"web\" \"app\" {\n  failover = { automatic = true }\n}\n",
            "`failover` is not allowed in a deployment",
            2,
        ),
    ] {
        let d = single(text, message, line, 3);
        assert!(
            help(&d).starts_with("`failover { automatic = true }` belongs to the redis macro"),
            "{:?}",
            d.help()
        );
        assert!(help(&d).contains("data `redis \"scope\" \"name\" { ... }` block"));
    }
    // A sentinel sibling runs sentinels, not data.
    let sibling = "`failover` is not allowed in a sentinel sibling";
    let d = single(
        "redis \"s\" \"ha\" {\n  sentinel { monitor = \"s/redis\" }\n  failover { automatic = true }\n}\n",
        sibling,
        3,
        3,
    );
    assert!(
        help(&d).starts_with("a sentinel sibling runs sentinels, not data"),
        "{:?}",
        d.help()
    );
    assert!(help(&d)
        .contains("fail `s/redis` over instead of the sentinels, delete this sentinel sibling"));
    // Whatever the block says, and before the sentinel block too.
    single(
        "redis \"s\" \"ha\" {\n  failover { automatic = false }\n  sentinel { monitor = \"s/redis\" }\n}\n",
        sibling,
        2,
        3,
    );
    // With the sibling's own problems: each reported once; the block's values are moot.
    let errs = errors(
        "redis \"s\" \"ha\" {\n  replicas = 2\n  sentinel { monitor = \"s/redis\" }\n  failover { down_after = \"1ms\" }\n}\n",
    );
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(messages.len(), 2, "{}", render(&errs));
    assert!(messages[0].starts_with("`replicas = 2` is rejected for a sentinel sibling"));
    assert_eq!(messages[1], sibling);
    // Sentinel mode unknown (`enabled` not a bool): only what holds either way is reported.
    let errs = errors(
        "redis \"s\" \"ha\" {\n  sentinel {\n    enabled = \"yes\"\n    monitor = \"s/redis\"\n  }\n  failover { down_after = \"1ms\" }\n}\n",
    );
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(
        messages,
        [
            "`sentinel.enabled` must be true or false, found a string",
            "`failover.down_after` must be at least 100ms, found 1ms",
        ],
        "{}",
        render(&errs)
    );
}

// ----- proxy -----

fn proxy(enabled: bool, replicas: u32) -> Option<ProxySpec> {
    Some(ProxySpec { enabled, replicas })
}

#[test]
fn proxy_block_forms() {
    let m = parse(
        r#"redis "d" "empty" {
  replicas = 3
  proxy {}
}
redis "d" "two" {
  replicas = 3
  proxy { replicas = 2 }
}
redis "d" "full" {
  replicas = 2
  proxy {
    enabled  = true
    replicas = 16
  }
}
redis "d" "off" {
  replicas = 3
  proxy { enabled = false }
}
redis "d" "paren" {
  proxy {
    enabled  = (true)
    replicas = (3)
  }
}
redis "d" "single" {
  replicas = 1
  proxy {}
}
redis "d" "unset" {
  proxy {}
}
redis "d" "sentinel-off" {
  replicas = 3
  sentinel { enabled = false }
  proxy {}
}
redis "d" "with-failover" {
  replicas = 3
  failover {}
  proxy { replicas = 2 }
}
redis "d" "plain" {}
"#,
    );
    let p = |name: &str| redis(&m, "d", name).proxy;
    // Present and empty: on, one pod.
    assert_eq!(p("empty"), Some(ProxySpec::default()));
    assert_eq!(p("empty"), proxy(true, 1));
    assert_eq!(p("two"), proxy(true, 2));
    assert_eq!(p("full"), proxy(true, 16));
    // Off: recorded, so the server removes the proxy pods.
    assert_eq!(p("off"), proxy(false, 1));
    assert_eq!(p("paren"), proxy(true, 3));
    // One data pod, written or not: the proxy still gives a stable address.
    assert_eq!(p("single"), proxy(true, 1));
    assert_eq!(p("unset"), proxy(true, 1));
    assert_eq!(redis(&m, "d", "unset").replicas, None);
    // Sentinel mode off makes it a data redis, where the block belongs.
    assert_eq!(p("sentinel-off"), proxy(true, 1));
    assert_eq!(p("with-failover"), proxy(true, 2));
    assert_eq!(
        redis(&m, "d", "with-failover").failover,
        Some(FailoverSpec::default())
    );
    assert_eq!(p("plain"), None);
    // The model round-trips through JSON, which is how the CLI sends it to the server.
    let json = serde_json::to_string(&m.resources).unwrap();
    let back: Vec<Resource> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m.resources);
}

#[test]
fn proxy_replicas_must_be_1_to_16() {
    let text =
        |v: &str| format!("redis \"d\" \"c\" {{\n  proxy {{\n    replicas = {v}\n  }}\n}}\n");
    let d = single(
        &text("0"),
        "`proxy.replicas` must be at least 1, found 0",
        3,
        16,
    );
    assert_eq!(
        d.help(),
        Some("a proxy block runs at least one proxy pod: write replicas = 1 (the default) or more, up to 16; to run no proxy, write enabled = false or remove the `proxy` block")
    );
    for n in ["17", "100", "4294967295"] {
        let d = single(
            &text(n),
            &format!("`proxy.replicas` must be at most 16, found {n}"),
            3,
            16,
        );
        assert_eq!(
            d.help(),
            Some("each proxy pod follows the master on its own, so a few already survive losing one, and more only add connections to the master: write replicas = 2 (or any number from 1 to 16)")
        );
    }
    // Checked whether or not the proxy runs: the value is wrong either way.
    single(
        "redis \"d\" \"c\" {\n  proxy {\n    enabled  = false\n    replicas = 0\n  }\n}\n",
        "`proxy.replicas` must be at least 1, found 0",
        4,
        16,
    );
    // Not a whole number: the same errors as the workload's `replicas`.
    for (value, message, help_text) in [
        (
            "\"2\"",
            "`proxy.replicas` must be a whole number, found a string",
            "write replicas = 2 (no quotes)",
        ),
        (
            "true",
            "`proxy.replicas` must be a whole number, found a bool",
            "write replicas = 2",
        ),
        (
            "1.5",
            "`proxy.replicas` must be a whole number, found 1.5",
            "write replicas = 2",
        ),
        (
            "-1",
            "`proxy.replicas` cannot be negative, found -1",
            "write replicas = 2",
        ),
        (
            "4294967296",
            "`proxy.replicas` is too large: 4294967296 (at most 4294967295)",
            "write replicas = 2",
        ),
    ] {
        let d = single(&text(value), message, 3, 16);
        assert_eq!(d.help(), Some(help_text), "{value}");
    }
}

#[test]
fn proxy_block_field_errors() {
    let d = single(
        "redis \"d\" \"c\" {\n  proxy {\n    replica = 2\n  }\n}\n",
        "unknown field `replica` in proxy",
        3,
        5,
    );
    assert_eq!(d.help(), Some("did you mean `replicas`?"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy {\n    enable = true\n  }\n}\n",
        "unknown field `enable` in proxy",
        3,
        5,
    );
    assert_eq!(d.help(), Some("did you mean `enabled`?"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy {\n    port = 6380\n  }\n}\n",
        "unknown field `port` in proxy",
        3,
        5,
    );
    assert_eq!(d.help(), Some("valid fields here: enabled, replicas"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy {\n    replicas {}\n  }\n}\n",
        "`replicas` is an attribute, not a block",
        3,
        5,
    );
    assert_eq!(
        d.help(),
        Some("write `replicas = ...`, e.g. enabled = true or replicas = 2")
    );
    let d = single(
        "redis \"d\" \"c\" {\n  proxy {\n    tls {}\n  }\n}\n",
        "unknown field `tls` in proxy",
        3,
        5,
    );
    assert_eq!(d.help(), Some("valid fields here: enabled, replicas"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy { enabled = \"false\" }\n}\n",
        "`proxy.enabled` must be true or false, found a string",
        2,
        21,
    );
    assert_eq!(d.help(), Some("write enabled = false (no quotes)"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy { enabled = 1 }\n}\n",
        "`proxy.enabled` must be true or false, found a number",
        2,
        21,
    );
    assert_eq!(d.help(), Some("write enabled = true or enabled = false"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy \"x\" {}\n}\n",
        "`proxy` takes no labels",
        2,
        9,
    );
    assert_eq!(d.help(), Some("write `proxy { ... }`"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy {}\n  proxy { replicas = 2 }\n}\n",
        "`proxy` appears twice in this redis",
        3,
        3,
    );
    assert_eq!(d.help(), Some("merge them into one `proxy { ... }` block"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxy = { replicas = 2 }\n}\n",
        "`proxy` is a block, not an attribute",
        2,
        3,
    );
    assert_eq!(d.help(), Some("write `proxy { ... }` without `=`"));
    let d = single(
        "redis \"d\" \"c\" {\n  proxxy {}\n}\n",
        "unknown field `proxxy` in redis",
        2,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `proxy`?"));
}

#[test]
fn proxy_belongs_in_a_data_redis() {
    for (text, message, line) in [
        (
            "statefulset \"d\" \"pg\" {\n  image = \"postgres:16\"\n  proxy {\n    replicas = 2\n  }\n}\n",
            "`proxy` is not allowed in a statefulset",
            3,
        ),
        (
            "deployment \"web\" \"app\" {\n  proxy = { replicas = 2 }\n}\n",
            "`proxy` is not allowed in a deployment",
            2,
        ),
    ] {
        let d = single(text, message, line, 3);
        let ctx = if line == 3 { "statefulset" } else { "deployment" };
        assert_eq!(
            help(&d),
            format!("`proxy {{ replicas = 1 }}` belongs to the redis macro, which knows which pod is the master: write it inside a data `redis \"scope\" \"name\" {{ ... }}` block, not in a {ctx}")
        );
    }
    // A sentinel sibling has no master of its own.
    let sibling = "`proxy` is not allowed in a sentinel sibling";
    let d = single(
        "redis \"s\" \"ha\" {\n  sentinel { monitor = \"s/redis\" }\n  proxy {}\n}\n",
        sibling,
        3,
        3,
    );
    assert_eq!(
        d.help(),
        Some("a sentinel sibling has no master to proxy; put `proxy {}` in the data redis `s/redis` and remove it here")
    );
    // Whatever the block says, and before the sentinel block too.
    single(
        "redis \"s\" \"ha\" {\n  proxy { enabled = false }\n  sentinel { monitor = \"s/redis\" }\n}\n",
        sibling,
        2,
        3,
    );
    // The block's own values are moot there: only the sibling problem.
    single(
        "redis \"s\" \"ha\" {\n  replicas = 3\n  sentinel { monitor = \"s/redis\" }\n  proxy { replicas = 0 }\n}\n",
        sibling,
        4,
        3,
    );
    // No monitor: both problems, and the help still says where the block goes.
    let errs = errors("redis \"s\" \"ha\" {\n  sentinel {}\n  proxy {}\n}\n");
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(
        messages,
        ["`sentinel` has no monitor", sibling],
        "{}",
        render(&errs)
    );
    assert_eq!(
        errs[1].help(),
        Some("a sentinel sibling has no master to proxy; put `proxy {}` in the data redis this sibling monitors and remove it here")
    );
    // Sentinel mode unknown (`enabled` not a bool): only what holds either way is reported.
    let errs = errors(
        "redis \"s\" \"ha\" {\n  sentinel {\n    enabled = \"yes\"\n    monitor = \"s/redis\"\n  }\n  proxy { replicas = 17 }\n}\n",
    );
    let messages: Vec<&str> = errs.iter().map(Diagnostic::message).collect();
    assert_eq!(
        messages,
        [
            "`sentinel.enabled` must be true or false, found a string",
            "`proxy.replicas` must be at most 16, found 17",
        ],
        "{}",
        render(&errs)
    );
    let errs = errors(
        "redis \"s\" \"ha\" {\n  sentinel {\n    enabled = \"yes\"\n    monitor = \"s/redis\"\n  }\n  proxy {}\n}\n",
    );
    assert_eq!(errs.len(), 1, "{}", render(&errs));
}

// ----- plugin -----

#[test]
fn plugin_block_errors() {
    let d = single(
        "redis \"s\" \"r\" {\n  plugin {\n    versoin = \"1\"\n  }\n}\n",
        "unknown field `versoin` in plugin",
        3,
        5,
    );
    assert_eq!(d.help(), Some("did you mean `version`?"));
    single(
        "redis \"s\" \"r\" {\n  plugin { version = 0.14 }\n}\n",
        "`plugin.version` must be a string, found a number",
        2,
        22,
    );
    single(
        "redis \"s\" \"r\" {\n  plugin { version = \"\" }\n}\n",
        "`plugin.version` is empty",
        2,
        22,
    );
    single(
        "redis \"s\" \"r\" {\n  plugin { version = \"1\" }\n  plugin { version = \"2\" }\n}\n",
        "`plugin` appears twice in this redis",
        3,
        3,
    );
    single(
        "redis \"s\" \"r\" {\n  plugin = { version = \"1\" }\n}\n",
        "`plugin` is a block, not an attribute",
        2,
        3,
    );
    // An empty plugin block records nothing.
    let m = parse("redis \"s\" \"r\" {\n  plugin {}\n}\n");
    assert_eq!(redis(&m, "s", "r").plugin_version, None);
}

#[test]
fn plugin_and_sentinel_belong_to_the_redis_macro() {
    let d = single(
        "statefulset \"data\" \"pg\" {\n  image = \"postgres:16\"\n  plugin {\n    version = \"1\"\n  }\n}\n",
        "`plugin` is not allowed in a statefulset",
        3,
        3,
    );
    assert!(
        help(&d).contains("belongs to macros such as `redis`"),
        "{:?}",
        d.help()
    );
    let d = single(
        "deployment \"web\" \"app\" {\n  plugin = { version = \"1\" }\n}\n",
        "`plugin` is not allowed in a deployment",
        2,
        3,
    );
    assert!(help(&d).contains("belongs to macros such as `redis`"));
    let d = single(
        "statefulset \"data\" \"pg\" {\n  sentinel { monitor = \"data/redis\" }\n}\n",
        "`sentinel` is not allowed in a statefulset",
        2,
        3,
    );
    assert!(
        help(&d).contains("redis \"scope\" \"name-ha\""),
        "{:?}",
        d.help()
    );
}

// ----- passthrough errors -----

#[test]
fn unknown_fields_in_redis_suggest_macro_fields_too() {
    let d = single(
        "redis \"s\" \"r\" {\n  replica = 3\n}\n",
        "unknown field `replica` in redis",
        2,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `replicas`?"));
    let d = single(
        "redis \"s\" \"r\" {\n  sentinal {\n    monitor = \"s/x\"\n  }\n}\n",
        "unknown field `sentinal` in redis",
        2,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `sentinel`?"));
    let d = single(
        "redis \"s\" \"r\" {\n  plugn { version = \"1\" }\n}\n",
        "unknown field `plugn` in redis",
        2,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `plugin`?"));
    let d = single(
        "redis \"s\" \"r\" {\n  flavour = \"x\"\n}\n",
        "unknown field `flavour` in redis",
        2,
        3,
    );
    assert_eq!(
        d.help(),
        Some("valid fields here: image, replicas, command, env, env_from, ports, volumes, volume_claim, volume_claims, probes, resources, plugin, sentinel, failover, proxy, backup, cluster, tls")
    );
}

#[test]
fn statefulset_checks_apply_in_redis() {
    single(
        "redis \"s\" \"r\" {\n  replicas = \"3\"\n}\n",
        "`replicas` must be a whole number, found a string",
        2,
        14,
    );
    single(
        "redis \"s\" \"r\" {\n  ports = [\"0\"]\n}\n",
        "port `0` is not a port number; use 1-65535, e.g. \"6379\" or \"127.0.0.1:6379\"",
        2,
        12,
    );
    single(
        "redis \"s\" \"r\" {\n  probes {\n    liveness {}\n  }\n}\n",
        "`probes.liveness` has no check",
        3,
        5,
    );
    single(
        "redis \"s\" \"r\" {\n  volume_claim \"wal\" {\n    mount_path = \"wal\"\n  }\n}\n",
        "mount_path `wal` must be an absolute path",
        3,
        18,
    );
    single(
        "redis \"s\" \"r\" {\n  image = file(\"x\")\n}\n",
        "`file()` can only be used in asset blocks",
        2,
        11,
    );
    // Several problems in one block are all reported.
    let errs = errors(
        "redis \"s\" \"r\" {\n  replica = 3\n  ports = [\"0\"]\n  sentinel {}\n  plugin { x = 1 }\n}\n",
    );
    assert_eq!(errs.len(), 4, "{}", render(&errs));
}

#[test]
fn the_data_claim_is_reserved_by_the_macro() {
    for (text, line, col) in [
        (
            "redis \"s\" \"r\" {\n  volume_claim \"data\" {\n    mount_path = \"/var/lib/redis\"\n  }\n}\n",
            2,
            16,
        ),
        (
            "redis \"s\" \"r\" {\n  volume_claims = [{ name = \"data\", mount_path = \"/srv\" }]\n}\n",
            2,
            29,
        ),
    ] {
        let d = single(
            text,
            "volume claim `data` is reserved by the redis macro",
            line,
            col,
        );
        assert!(
            help(&d).starts_with("the macro already provides `data` at /data"),
            "{:?}",
            d.help()
        );
    }
    // Its mount path is taken too, by a claim or a bind.
    let d = single(
        "redis \"s\" \"r\" {\n  volume_claim \"store\" {\n    mount_path = \"/data/\"\n  }\n}\n",
        "mount path `/data/` is taken by the redis macro's `data` claim",
        3,
        18,
    );
    assert!(help(&d).contains("mount this claim elsewhere"));
    single(
        "redis \"s\" \"r\" {\n  volumes = [\"/srv/redis:/data\"]\n}\n",
        "mount path `/data` is taken by the redis macro's `data` claim",
        2,
        14,
    );
    // Other claims are additional claims, and duplicates among them are still caught.
    let m = parse(
        "redis \"s\" \"r\" {\n  volume_claim \"backups\" {\n    mount_path = \"/backups\"\n  }\n}\n",
    );
    assert_eq!(
        redis(&m, "s", "r").volume_claims,
        vec![VolumeClaim {
            name: "backups".into(),
            mount_path: "/backups".into()
        }]
    );
    single(
        "redis \"s\" \"r\" {\n  volume_claim \"b\" {\n    mount_path = \"/b\"\n  }\n  volume_claims = [{ name = \"b\", mount_path = \"/c\" }]\n}\n",
        "volume claim `b` is declared twice",
        5,
        29,
    );
    // A statefulset has no macro: `data` is an ordinary claim name there.
    parse("statefulset \"s\" \"r\" {\n  volume_claim \"data\" {\n    mount_path = \"/data\"\n  }\n}\n");
}

#[test]
fn redis_labels_are_checked_like_any_block() {
    single(
        "redis \"data\" {}\n",
        "`redis` block has one label; it needs a scope and a name",
        1,
        1,
    );
    // A bad name does not stop the sentinel checks that need no identity.
    let errs = errors("redis \"data\" \"Cache\" {\n  sentinel {}\n}\n");
    assert_eq!(errs.len(), 2, "{}", render(&errs));
    assert!(errs[0].message().starts_with("name `Cache` must be"));
    assert_eq!(errs[1].message(), "`sentinel` has no monitor");
    assert!(help(&errs[1]).contains("monitor = \"scope/NAME\""));
}

#[test]
fn cluster_block_defaults_and_fields() {
    let m = parse(
        r#"
redis "data" "shop" {
  cluster {}
}
redis "data" "big" {
  cluster {
    shards             = 5
    replicas_per_shard = 0
  }
}
"#,
    );
    assert_eq!(
        redis(&m, "data", "shop").cluster,
        Some(vd_core::ClusterSpec {
            shards: 3,
            replicas_per_shard: 1
        })
    );
    let big = redis(&m, "data", "big").cluster.unwrap();
    assert_eq!((big.shards, big.replicas_per_shard, big.nodes()), (5, 0, 5));
}

#[test]
fn cluster_combinations_that_cannot_work_are_refused_at_their_line() {
    let d = single(
        "redis \"data\" \"shop\" {\n  replicas = 6\n  cluster {}\n}\n",
        "`replicas = 6` cannot be combined with `cluster`",
        2,
        14,
    );
    assert!(help(&d).contains("replicas_per_shard"), "{}", help(&d));
    single(
        "redis \"data\" \"shop\" {\n  cluster {\n    shards = 2\n  }\n}\n",
        "`cluster.shards` must be at least 3, found 2",
        3,
        14,
    );
    single(
        "redis \"data\" \"shop\" {\n  cluster {}\n  proxy {}\n}\n",
        "`proxy` cannot be combined with `cluster` yet",
        3,
        3,
    );
    single(
        "redis \"data\" \"s\" {\n  sentinel {\n    monitor = \"data/x\"\n  }\n  cluster {}\n}\n",
        "`cluster` is not allowed in a sentinel sibling",
        5,
        3,
    );
    single(
        "redis \"data\" \"shop\" {\n  cluster {\n    shards = \"3\"\n  }\n}\n",
        "`cluster.shards` must be a whole number, found a string",
        3,
        14,
    );
}

#[test]
fn tls_block_parses_and_its_mistakes_are_refused_at_their_line() {
    let m = parse("redis \"data\" \"cache\" {\n  replicas = 3\n  tls {}\n}\n");
    assert_eq!(
        redis(&m, "data", "cache").tls,
        Some(vd_core::TlsSpec::default())
    );
    let d = single(
        "redis \"data\" \"cache\" {\n  tls {\n    cert = \"${asset.data.certs.crt}\"\n    ca = \"${asset.data.certs.ca}\"\n  }\n}\n",
        "`tls` sets `cert` and `ca` without `key`",
        3,
        12,
    );
    assert!(help(&d).contains("tls {}"), "{}", help(&d));
    single(
        "redis \"data\" \"cache\" {\n  tls {\n    port = 6380\n  }\n}\n",
        "unknown field `port` in tls",
        3,
        5,
    );
    // A sentinel sibling may speak TLS (with its data redis; the server checks the pair),
    // and says nothing more.
    let m =
        parse("redis \"data\" \"s\" {\n  sentinel {\n    monitor = \"data/x\"\n  }\n  tls {}\n}\n");
    assert!(redis(&m, "data", "s").tls.is_some());
    single(
        "redis \"data\" \"s\" {\n  sentinel {\n    monitor = \"data/x\"\n  }\n  tls {\n    cert = \"x\"\n    key = \"y\"\n    ca = \"z\"\n  }\n}\n",
        "a sentinel sibling's `tls` block takes no settings",
        5,
        3,
    );
    // The proxy of a TLS redis speaks TLS at both ends.
    let m = parse("redis \"data\" \"cache\" {\n  tls {}\n  proxy {}\n}\n");
    assert!(redis(&m, "data", "cache").proxy.is_some());
    // Only the redis macro gives its pods certificates.
    let errs = errors("statefulset \"data\" \"db\" {\n  image = \"redis:7\"\n  tls {}\n}\n");
    assert_eq!(errs.len(), 1, "{}", render(&errs));
    assert_eq!(errs[0].location(), Some((PathBuf::from(PATH), 3, 3)));
    assert!(render(&errs).contains("tls"), "{}", render(&errs));
}
