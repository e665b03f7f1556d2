//! Manifests that must parse, and what they must parse to.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use vd_core::{
    AssetSpec, Kind, Limits, PortSpec, Probe, ProbeAction, Probes, Resource, ResourceRef,
    Resources, Spec, VolumeClaim, VolumeMount, WorkloadSpec,
};
use vd_manifest::{load_files, parse_str, Manifest};

fn parse(text: &str) -> Manifest {
    match parse_str(Path::new("/nonexistent/m.hcl"), text) {
        Ok(m) => m,
        Err(e) => panic!("expected a valid manifest, got:\n{e:#}"),
    }
}

fn workload(m: &Manifest, kind: Kind, scope: &str, name: &str) -> WorkloadSpec {
    let r = ResourceRef::new(kind, scope, name);
    match m.get(&r).map(|r| &r.spec) {
        Some(Spec::Workload(w)) => w.clone(),
        other => panic!("{r}: expected a workload, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const FULL: &str = r#"statefulset "data" "cache" {
  image    = "redis:7-alpine"
  replicas = 3
  command  = ["redis-server", "--appendonly", "yes", "--requirepass", "${REDIS_PASSWORD}"]

  env = {
    MODE        = "primary"
    PORT        = 6379
    DEBUG       = false
    "CONF_PATH" = "${asset.data.redis-config.conf}"
    LITERAL     = "cost: $${HOME}"
  }
  env_from = ["data", "data/cache"]
  ports    = ["6379", 16379, "0.0.0.0:26379/tcp"]
  volumes = [
    "${asset.data.redis-config.conf}:/etc/redis/redis.conf:ro",
    "/srv/shared:/shared",
  ]

  volume_claim "data" {
    mount_path = "/data"
  }
  volume_claims = [{ name = "wal", mount_path = "/wal" }]

  probes {
    liveness {
      tcp_socket { port = 6379 }
      period            = "5s"
      timeout           = "500ms"
      initial_delay     = "1m"
      failure_threshold = 5
      success_threshold = 2
    }
    readiness {
      exec { command = ["redis-cli", "ping"] }
    }
    startup {
      http_get {
        port = 8080
        path = "/healthz"
      }
    }
  }

  resources {
    limits {
      cpu    = "0.5"
      memory = "256Mi"
    }
  }
}
"#;

#[test]
fn full_statefulset_parses_to_the_expected_spec() {
    let m = parse(FULL);
    assert_eq!(m.resources.len(), 1);
    let expected = WorkloadSpec {
        image: Some("redis:7-alpine".into()),
        replicas: 3,
        command: strings(&[
            "redis-server",
            "--appendonly",
            "yes",
            "--requirepass",
            "${REDIS_PASSWORD}",
        ]),
        env: BTreeMap::from([
            ("MODE".to_string(), "primary".to_string()),
            ("PORT".to_string(), "6379".to_string()),
            ("DEBUG".to_string(), "false".to_string()),
            (
                "CONF_PATH".to_string(),
                "${asset.data.redis-config.conf}".to_string(),
            ),
            // The literal `${` stays escaped so the server renders it back to `${HOME}`.
            ("LITERAL".to_string(), "cost: $${HOME}".to_string()),
        ]),
        env_from: strings(&["data", "data/cache"]),
        ports: vec![
            PortSpec {
                host_ip: None,
                port: 6379,
            },
            PortSpec {
                host_ip: None,
                port: 16379,
            },
            PortSpec {
                host_ip: Some("0.0.0.0".into()),
                port: 26379,
            },
        ],
        volume_claims: vec![
            VolumeClaim {
                name: "data".into(),
                mount_path: "/data".into(),
            },
            VolumeClaim {
                name: "wal".into(),
                mount_path: "/wal".into(),
            },
        ],
        volumes: vec![
            VolumeMount {
                source: "${asset.data.redis-config.conf}".into(),
                target: "/etc/redis/redis.conf".into(),
                read_only: true,
            },
            VolumeMount {
                source: "/srv/shared".into(),
                target: "/shared".into(),
                read_only: false,
            },
        ],
        probes: Probes {
            liveness: Some(Probe {
                action: ProbeAction::TcpSocket { port: 6379 },
                period_ms: 5_000,
                timeout_ms: 500,
                initial_delay_ms: 60_000,
                failure_threshold: 5,
                success_threshold: 2,
            }),
            readiness: Some(Probe::new(ProbeAction::Exec {
                command: strings(&["redis-cli", "ping"]),
            })),
            startup: Some(Probe::new(ProbeAction::HttpGet {
                port: 8080,
                path: "/healthz".into(),
            })),
        },
        resources: Resources {
            limits: Limits {
                cpu_millis: Some(500),
                memory_bytes: Some(256 << 20),
            },
        },
        certificate: None,
    };
    assert_eq!(workload(&m, Kind::Statefulset, "data", "cache"), expected);
    // The model round-trips through JSON, which is how the CLI sends it to the server.
    let json = serde_json::to_string(&m.resources).unwrap();
    let back: Vec<Resource> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m.resources);
}

#[test]
fn defaults_and_minimal_blocks() {
    let m = parse(
        r#"
statefulset "data" "a" {
  probes {}
}
deployment "web" "app" {
  image = "ghcr.io/org/app:1"
  probes {
    readiness {
      http_get { port = 8080 }
    }
  }
}
"#,
    );
    let a = workload(&m, Kind::Statefulset, "data", "a");
    assert_eq!(
        a,
        WorkloadSpec {
            replicas: 1,
            ..WorkloadSpec::default()
        }
    );
    let web = workload(&m, Kind::Deployment, "web", "app");
    assert_eq!(web.replicas, 1);
    assert_eq!(
        web.probes.readiness,
        Some(Probe::new(ProbeAction::HttpGet {
            port: 8080,
            path: "/".into()
        }))
    );
    assert_eq!(
        m.resources.iter().map(|r| r.id.kind).collect::<Vec<_>>(),
        [Kind::Statefulset, Kind::Deployment]
    );
}

/// Two typical statefulsets: postgres with a data claim, redis with its own command.
const STATEFULSET_EXAMPLES: &str = r#"
statefulset "data" "pg" {
  image    = "postgres:15-alpine"
  replicas = 3

  env = {
    POSTGRES_DB = "myapp"
    PGDATA      = "/var/lib/postgresql/data/pgdata"
  }

  ports = ["5432"]

  volume_claim "data" {
    mount_path = "/var/lib/postgresql/data"
  }
}

statefulset "data" "cache" {
  image    = "redis:7-alpine"
  replicas = 1

  command = ["redis-server", "--appendonly", "yes"]
  ports   = ["6379"]

  volume_claim "data" {
    mount_path = "/data"
  }
}
"#;

#[test]
fn seed_001_statefulsets_parse() {
    let m = parse(STATEFULSET_EXAMPLES);
    let pg = workload(&m, Kind::Statefulset, "data", "pg");
    assert_eq!(pg.image.as_deref(), Some("postgres:15-alpine"));
    assert_eq!(pg.replicas, 3);
    assert_eq!(
        pg.env.get("PGDATA").map(String::as_str),
        Some("/var/lib/postgresql/data/pgdata")
    );
    assert_eq!(
        pg.ports,
        vec![PortSpec {
            host_ip: None,
            port: 5432
        }]
    );
    assert_eq!(
        pg.volume_claims,
        vec![VolumeClaim {
            name: "data".into(),
            mount_path: "/var/lib/postgresql/data".into()
        }]
    );
    let cache = workload(&m, Kind::Statefulset, "data", "cache");
    assert_eq!(
        cache.command,
        strings(&["redis-server", "--appendonly", "yes"])
    );
    assert_eq!(cache.volume_claims[0].mount_path, "/data");
}

#[test]
fn seed_001_assets_parse_with_files_and_urls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("configs")).unwrap();
    for (name, body) in [
        ("postgresql.conf", "max_connections = 100\n"),
        ("pg_hba.conf", "host all all 0.0.0.0/0 md5\n"),
        ("redis.conf", "appendonly yes\n"),
    ] {
        std::fs::write(dir.path().join("configs").join(name), body).unwrap();
    }
    let (url, server) = serve_once("user app on >secret ~* +@all\n");
    // Typical asset blocks: files from disk, and one from a URL (served locally here).
    let text = format!(
        r#"
asset "data" "pg-config" {{
  postgresql_conf = file("./configs/postgresql.conf")
  pg_hba_conf     = file("./configs/pg_hba.conf")
}}

asset "data" "redis-config" {{
  configuration = file("./configs/redis.conf")
  users_acl     = url("{url}/voodu/redis-users.acl")
}}
"#
    );
    let path = dir.path().join("voodu.hcl");
    std::fs::write(&path, &text).unwrap();
    let m = load_files(&[path]).unwrap_or_else(|e| panic!("{e:#}"));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /voodu/redis-users.acl "),
        "{request}"
    );
    let files = |name: &str| match &m
        .get(&ResourceRef::new(Kind::Asset, "data", name))
        .unwrap()
        .spec
    {
        Spec::Asset(a) => a.files.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        files("pg-config"),
        BTreeMap::from([
            (
                "postgresql_conf".to_string(),
                "max_connections = 100\n".to_string()
            ),
            (
                "pg_hba_conf".to_string(),
                "host all all 0.0.0.0/0 md5\n".to_string()
            ),
        ])
    );
    assert_eq!(
        files("redis-config"),
        BTreeMap::from([
            ("configuration".to_string(), "appendonly yes\n".to_string()),
            (
                "users_acl".to_string(),
                "user app on >secret ~* +@all\n".to_string()
            ),
        ])
    );
}

/// Serves one HTTP response on a local port; returns the base URL and the request it got.
fn serve_once(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut request = Vec::new();
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(response.as_bytes()).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (url, handle)
}

#[test]
fn heredoc_file_and_interpolation_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    // file() content is taken verbatim: `${` in it is not an interpolation.
    std::fs::write(
        dir.path().join("conf/redis.conf"),
        "port 6379\n# ${not a template}\n",
    )
    .unwrap();
    let text = r#"
asset "data" "redis-config" {
  conf  = file("conf/redis.conf")
  users = <<-EOT
    user app on >secret ~* +@all
      user ro on >ro ~* +@read
    EOT
  motd = <<EOT
literal $${not_interp} and %%{ not_directive }
EOT
}

statefulset "data" "cache" {
  command = ["redis-server", "${asset.data.redis-config.conf}"]
  volumes = ["${asset.data.redis-config.users}:/etc/redis/users.acl:ro"]
  env = {
    GREETING = <<-EOT
      hello ${NAME}
      costs $${5}
    EOT
  }
}
"#;
    let path = dir.path().join("m.hcl");
    std::fs::write(&path, text).unwrap();
    let m = load_files(&[path]).unwrap_or_else(|e| panic!("{e:#}"));
    let Spec::Asset(AssetSpec { files }) = &m.resources[0].spec else {
        panic!("{:?}", m.resources[0])
    };
    assert_eq!(files["conf"], "port 6379\n# ${not a template}\n");
    // `<<-` strips the common indentation, keeping relative indentation and the final newline.
    assert_eq!(
        files["users"],
        "user app on >secret ~* +@all\n  user ro on >ro ~* +@read\n"
    );
    assert_eq!(
        files["motd"],
        "literal ${not_interp} and %{ not_directive }\n"
    );

    let w = workload(&m, Kind::Statefulset, "data", "cache");
    assert_eq!(w.command[1], "${asset.data.redis-config.conf}");
    assert_eq!(w.volumes[0].source, "${asset.data.redis-config.users}");
    assert_eq!(w.env["GREETING"], "hello ${NAME}\ncosts $${5}\n");
    // What the server will do with it: resolve references, unescape `$${`.
    let rendered = vd_core::template::render(&w.env["GREETING"], |r| match r {
        vd_core::template::TemplateRef::Var(v) if v == "NAME" => Ok("World".into()),
        other => Err(format!("unexpected {other:?}")),
    })
    .unwrap();
    assert_eq!(rendered, "hello World\ncosts ${5}\n");
    let refs = vd_core::template::refs(&w.command[1]).unwrap();
    assert_eq!(
        refs,
        vec![vd_core::template::TemplateRef::Asset {
            scope: "data".into(),
            name: "redis-config".into(),
            key: "conf".into()
        }]
    );
}

#[test]
fn spans_locate_fields_for_server_errors() {
    let m = parse(FULL);
    let r = ResourceRef::new(Kind::Statefulset, "data", "cache");
    let line_of = |field: &str| {
        let d = m.diagnostic_at(&r, field, "server says no", Some("do something else"));
        assert_eq!(d.message(), "server says no");
        assert_eq!(d.help(), Some("do something else"));
        let (path, line, col) = d
            .location()
            .unwrap_or_else(|| panic!("{field} is not located"));
        assert_eq!(path, PathBuf::from("/nonexistent/m.hcl"));
        (line, col)
    };
    assert_eq!(line_of(""), (1, 1));
    assert_eq!(line_of("image"), (2, 14));
    assert_eq!(line_of("replicas"), (3, 14));
    assert_eq!(line_of("command[4]"), (4, 71));
    assert_eq!(line_of("env.PORT"), (8, 19));
    assert_eq!(line_of("env.CONF_PATH"), (10, 19));
    assert_eq!(line_of("ports[1]"), (14, 23));
    assert_eq!(line_of("volumes[0]"), (16, 5));
    assert_eq!(line_of("volumes[1]"), (17, 5));
    assert_eq!(line_of("volume_claims[0]"), (20, 3));
    assert_eq!(line_of("volume_claims[1]"), (23, 20));
    assert_eq!(line_of("probes.liveness"), (26, 5));
    assert_eq!(line_of("probes.liveness.tcp_socket.port"), (27, 27));
    assert_eq!(line_of("probes.liveness.period"), (28, 27));
    assert_eq!(line_of("probes.readiness.exec.command[1]"), (35, 38));
    assert_eq!(line_of("probes.startup.http_get.path"), (40, 16));
    assert_eq!(line_of("resources.limits.memory"), (48, 16));
    // Unknown sub-fields fall back to the nearest parent that was recorded.
    assert_eq!(line_of("probes.liveness.bogus"), (26, 5));
    assert_eq!(line_of("env.MISSING"), (6, 9));
    let d = m.diagnostic_at(&r, "volumes[1]", "cannot mount /srv/shared", None);
    assert_eq!(
        d.to_string(),
        "/nonexistent/m.hcl:17:5: cannot mount /srv/shared"
    );
    assert_eq!(
        m.sources[0].text.get(d.span().unwrap()),
        Some("\"/srv/shared:/shared\"")
    );
    // A resource the manifest does not declare: still a diagnostic, just without a place.
    let other = ResourceRef::new(Kind::Asset, "data", "nope");
    let d = m.diagnostic_at(&other, "files.x", "missing asset", None);
    assert_eq!(d.location(), None);
    assert_eq!(d.to_string(), "missing asset");
}

#[test]
fn spans_are_recorded_for_every_field() {
    let m = parse(FULL);
    let r = ResourceRef::new(Kind::Statefulset, "data", "cache");
    let fields: Vec<&str> = m.spans.fields(&r).collect();
    for f in [
        "",
        "image",
        "replicas",
        "command",
        "command[0]",
        "env",
        "env.MODE",
        "env_from",
        "env_from[1]",
        "ports",
        "ports[2]",
        "volumes",
        "volumes[1]",
        "volume_claims",
        "volume_claims[0]",
        "volume_claims[1]",
        "volume_claims[1].mount_path",
        "probes",
        "probes.liveness",
        "probes.liveness.timeout",
        "probes.liveness.initial_delay",
        "probes.liveness.failure_threshold",
        "probes.liveness.success_threshold",
        "probes.readiness.exec",
        "probes.startup.http_get.port",
        "resources",
        "resources.limits",
        "resources.limits.cpu",
    ] {
        assert!(fields.contains(&f), "no span for {f:?}; have {fields:?}");
    }
}

#[test]
fn multiple_files_resolve_file_relative_to_each() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/conf")).unwrap();
    std::fs::create_dir_all(dir.path().join("b/conf")).unwrap();
    std::fs::write(dir.path().join("a/conf/x"), "from a").unwrap();
    std::fs::write(dir.path().join("b/conf/x"), "from b").unwrap();
    std::fs::write(
        dir.path().join("a/m.hcl"),
        "asset \"s\" \"a\" {\n  x = file(\"conf/x\")\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b/m.hcl"),
        "asset \"s\" \"b\" {\n  x = file(\"conf/x\")\n}\nstatefulset \"s\" \"db\" {\n  replicas = 0\n}\n",
    )
    .unwrap();
    let m = load_files(&[dir.path().join("a/m.hcl"), dir.path().join("b/m.hcl")])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let content = |name: &str| match &m
        .get(&ResourceRef::new(Kind::Asset, "s", name))
        .unwrap()
        .spec
    {
        Spec::Asset(a) => a.files["x"].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(content("a"), "from a");
    assert_eq!(content("b"), "from b");
    assert_eq!(m.sources.len(), 2);
    // Spans point into the right file.
    let d = m.diagnostic_at(
        &ResourceRef::new(Kind::Statefulset, "s", "db"),
        "replicas",
        "x",
        None,
    );
    let (path, line, col) = d.location().unwrap();
    assert_eq!((path, line, col), (dir.path().join("b/m.hcl"), 5, 14));
    assert_eq!(workload(&m, Kind::Statefulset, "s", "db").replicas, 0);
}

#[test]
fn comments_numbers_and_parentheses() {
    let m = parse(
        r#"
# a comment
// another
/* and a block comment */
deployment "web" "app" {
  replicas = (2)  # inline
  ports    = [8080]
  env      = { RATIO = 1.5, BIG = 10000000000 }
  resources {
    limits {
      cpu    = 2
      memory = 1048576
    }
  }
}
"#,
    );
    let w = workload(&m, Kind::Deployment, "web", "app");
    assert_eq!(w.replicas, 2);
    assert_eq!(w.env["RATIO"], "1.5");
    assert_eq!(w.env["BIG"], "10000000000");
    assert_eq!(
        w.resources.limits,
        Limits {
            cpu_millis: Some(2000),
            memory_bytes: Some(1 << 20)
        }
    );
}

#[test]
fn miette_renders_every_error_with_its_snippet() {
    let err = parse_str(
        Path::new("m.hcl"),
        "statefulset \"data\" \"pg\" {\n  replica = 3\n  ports = [\"0\"]\n}\napp \"a\" \"b\" {}\n",
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 3);
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, &err)
        .unwrap();
    assert!(out.contains("the manifest has 3 errors"), "{out}");
    for needle in [
        "unknown field `replica`",
        "did you mean `replicas`?",
        "port `0`",
        "kind `app`",
        "[m.hcl:2:3]",
        "[m.hcl:5:1]",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn repository_examples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no examples in {}", dir.display());
    for path in paths {
        let m = load_files(std::slice::from_ref(&path))
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert!(
            !m.resources.is_empty(),
            "{} declares nothing",
            path.display()
        );
    }
}

#[test]
fn shell_style_defaults_lower_as_written_and_keep_their_spans() {
    let text = "statefulset \"data\" \"cache\" {\n  image = \"redis:${VERSION:-7-alpine}\"\n  command = [\"redis-server\", \"--port\", \"${PORT:-6379}\"]\n  env = { GREETING = \"${GREETING:- hello there }\", LIT = \"$${X:-y}\" }\n}\n";
    let m = parse(text);
    let w = workload(&m, Kind::Statefulset, "data", "cache");
    assert_eq!(w.image.as_deref(), Some("redis:${VERSION:-7-alpine}"));
    assert_eq!(w.command[2], "${PORT:-6379}");
    assert_eq!(w.env["GREETING"], "${GREETING:- hello there }");
    // `$${` stays a literal `${`: escaped again for the server's renderer.
    assert_eq!(w.env["LIT"], "$${X:-y}");
    let rendered = vd_core::template::render(&w.image.clone().unwrap_or_default(), |r| match r {
        vd_core::template::TemplateRef::VarOr { name, default } if name == "VERSION" => {
            Ok(vd_core::template::or_default(None, default))
        }
        other => Err(format!("unexpected {other:?}")),
    })
    .unwrap();
    assert_eq!(rendered, "redis:7-alpine");
    // A field a server problem names is located where the manifest wrote it.
    let r = ResourceRef::new(Kind::Statefulset, "data", "cache");
    let d = m.diagnostic_at(&r, "image", "variable `VERSION` is not set", None);
    let (_, line, col) = d.location().unwrap();
    assert_eq!((line, col), (2, 11));
    let d = m.diagnostic_at(&r, "env.LIT", "x", None);
    assert_eq!(d.location().map(|(_, l, _)| l), Some(4));
}
