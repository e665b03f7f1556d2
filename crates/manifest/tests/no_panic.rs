//! Arbitrary and mangled input must produce resources or located errors, never a panic.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::path::Path;
use vd_manifest::{parse_str, Diagnostics, Manifest};

const SEEDS: [&str; 7] = [
    r#"statefulset "data" "cache" {
  image    = "redis:7-alpine"
  replicas = 3
  command  = ["redis-server", "--requirepass", "${PASS}", "$${lit}"]
  env      = { A = "1", "B" = 2, C = true, D = <<-EOT
    x ${asset.data.cfg.conf}
    EOT
  }
  env_from = ["data", "data/cache"]
  ports    = ["6379", 16379]
  volumes  = ["${asset.data.cfg.conf}:/etc/redis.conf:ro"]
  volume_claim "data" {
    mount_path = "/data"
  }
  volume_claims = [{ name = "wal", mount_path = "/wal" }]
  probes {
    liveness {
      tcp_socket { port = 6379 }
      period = "5s"
      failure_threshold = 2
    }
    readiness {
      exec { command = ["redis-cli", "ping"] }
    }
    startup {
      http_get {
        port = 80
        path = "/"
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
"#,
    r#"redis "clowk-lp" "redis-ha" {
  image    = "redis:8"
  replicas = 3
  env      = { MAXMEMORY = "256mb" }
  volumes  = ["${asset.clowk-lp.ha.defs}:/etc/sentinel/conf.d/overrides.conf:ro"]
  volume_claim "backups" {
    mount_path = "/backups"
  }
  probes {}
  plugin {
    version = "0.14.0"
  }
  sentinel {
    enabled = true
    monitor = "clowk-lp/redis"
  }
}
redis "data" "cache" {
  replicas = 3
  failover {
    automatic  = true
    down_after = "1.5s"
  }
  proxy {
    enabled  = true
    replicas = 2
  }
}
"#,
    r#"asset "data" "cfg" {
  conf  = file("./conf/redis.conf")
  users = <<EOT
user a on
EOT
  motd  = "hello %%{ x } $${y}"
}
"#,
    r#"deployment "web" "app" {
  image = (("x"))
  replicas = -1.5e3
  ports = [for p in [1] : p]
  env = { X = 1 + 2, Y = a ? b : c, Z = [*] }
}
app "a" "b" { tls { email = "x" } }
"#,
    "statefulset \"a\" \"b\" {\n  image = \"${ asset . a . b . c }${~ X ~}%{ for x in y }${x}%{ endfor }\"\n}\n",
    r#"redis "a" "b" {
  replicas = 2
  sentinel { monitor = "c/b" }
  volume_claims = [{ name = "data", mount_path = "/data" }]
  plugin { version = 1, x = 2 }
}
redis "a" "c" {
  sentinel {
    enabled = "yes"
    monitor = "a/c"
  }
  sentinel {}
}
statefulset "a" "d" {
  plugin { version = "1" }
  sentinel = { monitor = "a/b" }
  failover { automatic = true }
  proxy { replicas = 1 }
}
redis "a" "e" {
  replicas = 1
  failover {
    automatic  = "yes"
    down_after = 1000
    quorum     = 2
  }
  failover = {}
  proxy {
    enabled  = "no"
    replicas = 17
    port     = 6380
  }
  proxy = {}
}
redis "a" "f" {
  sentinel { monitor = "a/e" }
  failover { down_after = "-1s" }
  proxy "x" { replicas = -1 }
}
"#,
    r#"redis "a" "b" { sentinel { monitor = "a/b/c" } }
redis "a" "d" { sentinel { monitor = 7 } }
redis "A" "e" { sentinel {} }
redis "a" "g" { failover { down_after = "11m" } }
redis "a" "h" { proxy { replicas = 0 } }
redis "a" "i" { proxy { replicas = 1.5, enabled = false } }
"#,
];

/// Checks what a parse returned is self-consistent: errors located inside the text, spans valid.
fn check(text: &str, result: Result<Manifest, Diagnostics>) {
    match result {
        Ok(m) => {
            for r in &m.resources {
                let (src, span) = m
                    .spans
                    .get(&r.id, "")
                    .expect("every resource has a header span");
                assert_eq!(src, 0);
                assert!(span.end <= text.len());
                assert!(m
                    .diagnostic_at(&r.id, "image", "x", None)
                    .location()
                    .is_some());
            }
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            for d in &e.0 {
                assert!(!d.message().is_empty());
                if let Some((_, line, col)) = d.location() {
                    assert!(line >= 1 && col >= 1);
                    let span = d.span().expect("located errors have a span");
                    assert!(
                        span.start <= span.end && span.end <= text.len(),
                        "{span:?} in {} bytes",
                        text.len()
                    );
                }
            }
            let _ = format!("{e}{e:#}");
        }
    }
}

/// Applies one edit at a char boundary near `at` (a fraction of the length).
fn mutate(text: &str, op: u8, at: f64, len: usize, ch: char) -> String {
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let pick = |f: f64| {
        boundaries[((f * (boundaries.len() - 1) as f64) as usize).min(boundaries.len() - 1)]
    };
    let i = pick(at);
    let j = boundaries
        .iter()
        .copied()
        .find(|&b| b >= i + len)
        .unwrap_or(text.len());
    let mut out = String::with_capacity(text.len() + 8);
    match op % 5 {
        0 => {
            out.push_str(&text[..i]);
            out.push(ch);
            out.push_str(&text[i..]);
        }
        1 => {
            out.push_str(&text[..i]);
            out.push_str(&text[j..]);
        }
        2 => {
            out.push_str(&text[..j]);
            out.push_str(&text[i..]);
        }
        3 => {
            out.push_str(&text[..i]);
            out.push(ch);
            out.push_str(&text[j..]);
        }
        _ => {
            // Swap the halves around the edit point: breaks nesting in interesting ways.
            out.push_str(&text[i..]);
            out.push_str(&text[..i]);
        }
    }
    out
}

fn path() -> &'static Path {
    Path::new("/nonexistent/fuzz.hcl")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(text in any::<String>()) {
        check(&text, parse_str(path(), &text));
    }

    #[test]
    fn hcl_shaped_noise_never_panics(text in "[a-z_\"{}\\[\\]=,.$%<>#/\\\\ \n0-9()~*:?!+-]{0,160}") {
        check(&text, parse_str(path(), &text));
    }

    #[test]
    fn mutated_manifests_never_panic(
        seed in 0usize..SEEDS.len(),
        edits in proptest::collection::vec(
            (any::<u8>(), 0.0f64..1.0, 0usize..12, prop::sample::select(vec!['"', '{', '}', '[', ']', '=', '$', '%', '\n', ' ', '-', '.', '~', 'é', '<', '0', 'a', '#', ','])),
            1..6,
        ),
    ) {
        let mut text = SEEDS[seed].to_string();
        for (op, at, len, ch) in edits {
            text = mutate(&text, op, at, len, ch);
        }
        check(&text, parse_str(path(), &text));
    }
}

#[test]
fn seeds_exercise_both_outcomes() {
    // The first two seeds are valid; the rest fail in many ways at once. Either way, no panic.
    for seed in &SEEDS[..2] {
        check(seed, parse_str(path(), seed));
        assert!(parse_str(path(), seed).is_ok(), "{seed}");
    }
    for seed in &SEEDS[2..] {
        let errs = parse_str(path(), seed).unwrap_err();
        check(seed, Err(errs));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let n = 50_000;
    let cases = [
        format!(
            "statefulset \"a\" \"b\" {{\n{}{}}}\n",
            "probes {\n".repeat(n),
            "}\n".repeat(n)
        ),
        format!(
            "statefulset \"a\" \"b\" {{\n  image = {}1{}\n}}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
        format!(
            "statefulset \"a\" \"b\" {{\n  image = {}1{}\n}}\n",
            "(".repeat(n),
            ")".repeat(n)
        ),
        format!(
            "statefulset \"a\" \"b\" {{\n  image = {}x{}\n}}\n",
            "\"${".repeat(n),
            "}\"".repeat(n)
        ),
        format!(
            "statefulset \"a\" \"b\" {{\n  image = \"{}x{}\"\n}}\n",
            "%{ if a }".repeat(n),
            "%{ endif }".repeat(n)
        ),
        format!(
            "statefulset \"a\" \"b\" {{\n  image = {}1\n}}\n",
            "1+".repeat(n)
        ),
        format!(
            "statefulset \"a\" \"b\" {{\n  image = {}b\n}}\n",
            "a.".repeat(n)
        ),
    ];
    for text in cases {
        let errs = parse_str(path(), &text).unwrap_err();
        check(&text, Err(errs));
    }
}
