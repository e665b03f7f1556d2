//! Bad manifests: each must fail with a clear message, a help, and the right line and column.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use vd_manifest::{load_files, parse_str, Diagnostic};

const PATH: &str = "/nonexistent/m.hcl";

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(Path::new(PATH), text) {
        Ok(m) => panic!("expected errors, parsed {:?}", m.resources),
        Err(e) => e.0,
    }
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

/// Asserts some error of `text` starts with `prefix` and sits at this place; returns it.
fn has(text: &str, prefix: &str, line: usize, col: usize) -> Diagnostic {
    let errs = errors(text);
    let found = errs
        .iter()
        .find(|d| d.message().starts_with(prefix))
        .cloned();
    let Some(d) = found else {
        panic!("no error starting with {prefix:?} in:\n{}", render(&errs))
    };
    assert_eq!(d.location(), Some((PathBuf::from(PATH), line, col)), "{d}");
    assert!(d.help().is_some_and(|h| !h.is_empty()), "no help for {d}");
    d
}

fn render(errs: &[Diagnostic]) -> String {
    errs.iter()
        .map(|d| format!("{d}\n  help: {:?}", d.help()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sts(body: &str) -> String {
    format!("statefulset \"data\" \"pg\" {{\n{body}}}\n")
}

#[test]
fn syntax_error_is_located() {
    let d = has(
        &sts("  image = \n"),
        "syntax error: invalid expression",
        2,
        11,
    );
    assert!(d.help().unwrap().contains("KIND \"scope\" \"name\""));
    // Unclosed block at the end of the file.
    has(
        "statefulset \"data\" \"pg\" {\n  image = \"x\"\n",
        "syntax error:",
        3,
        1,
    );
    // The Display form is path:line:col: message.
    assert!(d
        .to_string()
        .starts_with("/nonexistent/m.hcl:2:11: syntax error"));
}

#[test]
fn unsupported_kinds_are_rejected_at_the_kind() {
    for kind in ["app", "postgres", "ingress", "job"] {
        let d = single(
            &format!("asset \"a\" \"b\" {{}}\n\n  {kind} \"data\" \"x\" {{\n  image = \"y\"\n}}\n"),
            &format!("kind `{kind}` is not supported yet"),
            3,
            3,
        );
        assert!(
            d.help()
                .unwrap()
                .contains("statefulset, redis, deployment, asset and cronjob"),
            "{:?}",
            d.help()
        );
    }
    let d = single(
        "statefulsets \"a\" \"b\" {}\n",
        "kind `statefulsets` is not supported yet",
        1,
        1,
    );
    assert!(d.help().unwrap().starts_with("did you mean `statefulset`?"));
    let d = single(
        "rediss \"a\" \"b\" {}\n",
        "kind `rediss` is not supported yet",
        1,
        1,
    );
    assert!(d.help().unwrap().starts_with("did you mean `redis`?"));
    // `redis` itself is supported: the same block parses.
    assert!(parse_str(
        Path::new(PATH),
        "redis \"data\" \"x\" {\n  image = \"y\"\n}\n"
    )
    .is_ok());
}

#[test]
fn unknown_field_suggests_the_close_one() {
    let d = single(
        &sts("  image   = \"x\"\n  replica = 3\n"),
        "unknown field `replica` in statefulset",
        3,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `replicas`?"));
    let d = single(
        &sts("  flavour = \"x\"\n"),
        "unknown field `flavour` in statefulset",
        2,
        3,
    );
    assert!(
        d.help()
            .unwrap()
            .starts_with("valid fields here: image, replicas, command"),
        "{:?}",
        d.help()
    );
    let d = single(
        &sts("  probes {\n    liveness {\n      exec { command = [\"true\"] }\n      perod = \"1s\"\n    }\n  }\n"),
        "unknown field `perod` in probes.liveness",
        5,
        7,
    );
    assert_eq!(d.help(), Some("did you mean `period`?"));
    let d = single(
        &sts("  resources {\n    limits {\n      memroy = \"1Gi\"\n    }\n  }\n"),
        "unknown field `memroy` in resources.limits",
        4,
        7,
    );
    assert_eq!(d.help(), Some("did you mean `memory`?"));
}

#[test]
fn wrong_types_name_what_was_found() {
    let d = single(
        &sts("  replicas = \"3\"\n"),
        "`replicas` must be a whole number, found a string",
        2,
        14,
    );
    assert_eq!(d.help(), Some("write replicas = 3 (no quotes)"));
    single(
        &sts("  image = 7\n"),
        "`image` must be a string, found a number",
        2,
        11,
    );
    let d = single(
        &sts("  command = \"redis-server --appendonly yes\"\n"),
        "`command` must be a list, found a string",
        2,
        13,
    );
    assert_eq!(
        d.help(),
        Some("write a list: command = [\"redis-server\", \"--appendonly\", \"yes\"]")
    );
    single(
        &sts("  command = [\"redis-server\", 6379]\n"),
        "`command[1]` must be a string, found a number",
        2,
        30,
    );
    single(
        &sts("  env = [\"A=b\"]\n"),
        "`env` must be an object, found a list",
        2,
        9,
    );
    single(
        &sts("  probes = {}\n"),
        "`probes` is a block, not an attribute",
        2,
        3,
    );
    single(
        &sts("  env {\n    A = \"b\"\n  }\n"),
        "`env` is an attribute, not a block",
        2,
        3,
    );
}

#[test]
fn missing_or_bad_labels() {
    let d = single(
        "statefulset \"data\" {\n}\n",
        "`statefulset` block has one label; it needs a scope and a name",
        1,
        1,
    );
    assert!(
        d.help()
            .unwrap()
            .contains("`statefulset \"scope\" \"name\" { ... }`"),
        "{:?}",
        d.help()
    );
    single(
        "asset {\n}\n",
        "`asset` block has no labels; it needs a scope and a name",
        1,
        1,
    );
    single(
        "deployment \"a\" \"b\" \"c\" {\n}\n",
        "`deployment` block has 3 labels; it needs exactly two, a scope and a name",
        1,
        20,
    );
    has(
        "statefulset \"Data\" \"pg\" {\n}\n",
        "scope `Data` must be 1-63 lowercase letters",
        1,
        13,
    );
    single(
        "statefulset data \"pg\" {\n}\n",
        "the scope label must be a quoted string",
        1,
        13,
    );
}

#[test]
fn duplicate_resources_point_at_the_first() {
    single(
        "statefulset \"data\" \"pg\" {\n}\n\nstatefulset \"data\" \"pg\" {\n}\n",
        "statefulset/data/pg is already declared at /nonexistent/m.hcl:1:1",
        4,
        1,
    );
    // Same labels, different kind: fine.
    parse_str(
        Path::new(PATH),
        "statefulset \"data\" \"pg\" {\n}\nasset \"data\" \"pg\" {\n}\n",
    )
    .unwrap();
    // Across files.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.hcl"), dir.path().join("b.hcl"));
    std::fs::write(&a, "asset \"s\" \"n\" {\n}\n").unwrap();
    std::fs::write(&b, "\n\nasset \"s\" \"n\" {\n}\n").unwrap();
    let errs = load_files(&[a.clone(), b.clone()]).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message(),
        format!("asset/s/n is already declared at {}:1:1", a.display())
    );
    assert_eq!(errs[0].location(), Some((b, 3, 1)));
}

#[test]
fn duplicate_attributes_and_blocks() {
    single(
        &sts("  image = \"a\"\n  image = \"b\"\n"),
        "attribute `image` is set twice in this block",
        3,
        3,
    );
    single(
        &sts("  env = { A = \"1\", A = \"2\" }\n"),
        "key `A` appears twice in this object",
        2,
        20,
    );
    single(
        &sts("  probes {}\n  probes {}\n"),
        "`probes` appears twice in this statefulset",
        3,
        3,
    );
}

#[test]
fn bad_ports() {
    let d = single(
        &sts("  ports = [\"6379\", \"70000\"]\n"),
        "port `70000` is not a port number; use 1-65535, e.g. \"6379\" or \"127.0.0.1:6379\"",
        2,
        20,
    );
    assert!(d.help().unwrap().contains("[\"6379\"]"));
    has(
        &sts("  ports = [\"localhost:80\"]\n"),
        "port `localhost:80`: `localhost` is not an IP address",
        2,
        12,
    );
    single(
        &sts("  ports = [6379, \"6379\"]\n"),
        "port 6379 is listed twice",
        2,
        18,
    );
    single(
        &sts("  ports = [1.5]\n"),
        "port `1.5` is not a port number; use 1-65535, e.g. \"6379\" or \"127.0.0.1:6379\"",
        2,
        12,
    );
}

#[test]
fn bad_replicas() {
    single(
        &sts("  replicas = -2\n"),
        "`replicas` cannot be negative, found -2",
        2,
        14,
    );
    single(
        &sts("  replicas = 1.5\n"),
        "`replicas` must be a whole number, found 1.5",
        2,
        14,
    );
    single(
        &sts("  replicas = 1025\n"),
        "`replicas` is too large: 1025 (at most 1024)",
        2,
        14,
    );
    single(
        &sts("  replicas = 99999999999\n"),
        "`replicas` is too large: 99999999999 (at most 1024)",
        2,
        14,
    );
    single(
        &sts("  replicas = 1e30\n"),
        "`replicas` is too large: 1e30 (at most 1024)",
        2,
        14,
    );
}

#[test]
fn missing_file_names_the_resolved_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.hcl");
    std::fs::write(
        &path,
        "asset \"data\" \"cfg\" {\n  conf = file(\"./conf/nope.conf\")\n}\n",
    )
    .unwrap();
    let errs = load_files(std::slice::from_ref(&path)).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    let resolved = dir.path().join("conf/nope.conf");
    assert!(
        errs[0]
            .message()
            .starts_with(&format!("cannot read `{}`: ", resolved.display())),
        "{}",
        errs[0].message()
    );
    assert_eq!(errs[0].location(), Some((path, 2, 15)));
    assert!(errs[0]
        .help()
        .unwrap()
        .contains(&dir.path().display().to_string()));
    // A directory is not a file either.
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let errs = parse_str(
        &dir.path().join("m.hcl"),
        "asset \"data\" \"cfg\" {\n  conf = file(\"conf\")\n}\n",
    )
    .unwrap_err()
    .0;
    assert!(
        errs[0].message().ends_with("conf` is not a regular file"),
        "{}",
        errs[0]
    );
}

#[test]
fn bad_url() {
    // Nothing listens on port 1 of loopback, so this fails fast without touching the network.
    let d = has(
        "asset \"data\" \"cfg\" {\n  acl = url(\"http://127.0.0.1:1/users.acl\")\n}\n",
        "cannot fetch `http://127.0.0.1:1/users.acl`",
        2,
        13,
    );
    assert!(d.help().unwrap().contains("url()"));
    single(
        "asset \"data\" \"cfg\" {\n  acl = url(\"ftp://x/y\")\n}\n",
        "`ftp://x/y` is not an http(s) URL",
        2,
        13,
    );
}

#[test]
fn bad_durations() {
    has(
        &sts("  probes {\n    liveness {\n      exec { command = [\"true\"] }\n      period = \"10 parsecs\"\n    }\n  }\n"),
        "`probes.liveness.period`: `10 parsecs` is not a duration",
        5,
        16,
    );
    let d = single(
        &sts("  probes {\n    startup {\n      exec { command = [\"true\"] }\n      timeout = 5\n    }\n  }\n"),
        "`probes.startup.timeout` must be a duration string, found the number 5",
        5,
        17,
    );
    assert!(d.help().unwrap().contains("\"5s\""));
    single(
        &sts("  probes {\n    startup {\n      exec { command = [\"true\"] }\n      period = \"0s\"\n    }\n  }\n"),
        "`probes.startup.period` must be at least 1ms, found `0s`",
        5,
        16,
    );
}

#[test]
fn bad_probes() {
    let d = single(
        &sts("  probes {\n    liveness {\n      period = \"5s\"\n    }\n  }\n"),
        "`probes.liveness` has no check",
        3,
        5,
    );
    assert!(d.help().unwrap().contains("tcp_socket"));
    single(
        &sts("  probes {\n    readiness {\n      tcp_socket { port = 6379 }\n      exec { command = [\"true\"] }\n    }\n  }\n"),
        "`probes.readiness` has more than one check",
        5,
        7,
    );
    single(
        &sts("  probes {\n    liveness {\n      tcp_socket { port = 6379 }\n      failure_threshold = 0\n    }\n  }\n"),
        "`probes.liveness.failure_threshold` must be at least 1, found 0",
        5,
        27,
    );
    single(
        &sts("  probes {\n    liveness {\n      tcp_socket { port = 0 }\n    }\n  }\n"),
        "`probes.liveness.tcp_socket.port` must be at least 1, found 0",
        4,
        27,
    );
    single(
        &sts("  probes {\n    liveness {\n      tcp_socket {}\n    }\n  }\n"),
        "`probes.liveness.tcp_socket` has no port",
        4,
        7,
    );
    single(
        &sts("  probes {\n    liveness {\n      exec { command = [] }\n    }\n  }\n"),
        "`probes.liveness.exec.command` is empty",
        4,
        24,
    );
    single(
        &sts("  probes {\n    liveness {\n      http_get {\n        port = 80\n        path = \"healthz\"\n      }\n    }\n  }\n"),
        "http_get path `healthz` must start with `/`",
        6,
        16,
    );
    single(
        &sts("  probes {\n    liveliness {}\n  }\n"),
        "unknown field `liveliness` in probes",
        3,
        5,
    );
}

#[test]
fn bad_resources() {
    has(
        &sts("  resources {\n    limits {\n      memory = \"12 parsecs\"\n    }\n  }\n"),
        "memory `12 parsecs` is not a size",
        4,
        16,
    );
    has(
        &sts("  resources {\n    limits {\n      cpu = \"lots\"\n    }\n  }\n"),
        "cpu `lots` is not a CPU amount",
        4,
        13,
    );
}

#[test]
fn bad_env() {
    let d = single(
        &sts("  env = {\n    GOOD = \"x\"\n    \"1BAD\" = \"y\"\n  }\n"),
        "`1BAD` is not a valid environment variable name",
        4,
        5,
    );
    assert!(d.help().unwrap().contains("REDIS_URL"));
    single(
        &sts("  env = { A = [\"x\"] }\n"),
        "`env.A` must be a string, found a list",
        2,
        15,
    );
    single(
        &sts("  env_from = [\"Data/x\"]\n"),
        "`Data/x` is not a config bucket",
        2,
        15,
    );
}

#[test]
fn unsupported_interpolations_and_directives() {
    let text = sts("  command = [\n    \"${var.x}\",\n    \"a ${1+2} b\",\n    \"%{ if true }x%{ endif }\",\n  ]\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{}", render(&errs));
    assert_eq!(
        errs[0].message(),
        "`${var.x}` is not supported; use `${asset.SCOPE.NAME.KEY}`, `${VAR}` or `${VAR:-default}` with VAR from env_from"
    );
    assert_eq!(errs[0].location().map(|l| (l.1, l.2)), Some((3, 6)));
    assert_eq!(
        errs[1].message(),
        "`${1+2}` is not supported; use `${asset.SCOPE.NAME.KEY}`, `${VAR}` or `${VAR:-default}` with VAR from env_from"
    );
    assert_eq!(errs[1].location().map(|l| (l.1, l.2)), Some((4, 8)));
    assert_eq!(
        errs[2].message(),
        "template directives (`%{ if }`, `%{ for }`) are not supported"
    );
    assert_eq!(errs[2].location().map(|l| (l.1, l.2)), Some((5, 6)));
    assert!(errs[0].help().unwrap().contains("$${"));
    // References that can never resolve.
    single(&sts("  image = \"${asset.Data.cfg.conf}\"\n"), "in `${asset.Data.cfg.conf}`: asset scope `Data` must be 1-63 lowercase letters, digits or `-`, not starting or ending with `-` (it becomes part of host names)", 2, 12);
    single(&sts("  image = \"${asset.data.cfg[\"x\"]}\"\n"), "`${asset.data.cfg[\"x\"]}` is not supported; use `${asset.SCOPE.NAME.KEY}`, `${VAR}` or `${VAR:-default}` with VAR from env_from", 2, 12);
    // Fields that are not templates.
    single(
        &sts("  ports = [\"${PORT}\"]\n"),
        "`ports[0]` cannot use `${...}` interpolation",
        2,
        13,
    );
    single(
        "asset \"a\" \"b\" {\n  conf = \"x ${Y}\"\n}\n",
        "`files.conf` cannot use `${...}` interpolation",
        2,
        13,
    );
    // A reference outside a string.
    let d = single(
        &sts("  image = asset.a.b.c\n"),
        "`image` must be a string, found a reference",
        2,
        11,
    );
    assert_eq!(
        d.help(),
        Some("references go inside a string: \"${asset.a.b.c}\"")
    );
}

#[test]
fn volume_claims_in_deployments_and_bad_claims() {
    let d = single(
        "deployment \"web\" \"app\" {\n  image = \"x\"\n  volume_claim \"data\" {\n    mount_path = \"/data\"\n  }\n}\n",
        "`volume_claim` is not allowed in a deployment",
        3,
        3,
    );
    assert!(d
        .help()
        .unwrap()
        .starts_with("use a statefulset for per-pod volumes"));
    single(
        "deployment \"web\" \"app\" {\n  volume_claims = []\n}\n",
        "`volume_claims` is not allowed in a deployment",
        2,
        3,
    );
    single(
        &sts("  volume_claim \"data\" {\n    mount_path = \"data\"\n  }\n"),
        "mount_path `data` must be an absolute path",
        3,
        18,
    );
    single(
        &sts("  volume_claim \"data\" {\n  }\n"),
        "`volume_claim` has no mount_path",
        2,
        3,
    );
    single(
        &sts("  volume_claim {\n    mount_path = \"/d\"\n  }\n"),
        "`volume_claim` needs one label, the claim name",
        2,
        3,
    );
    single(
        &sts("  volume_claim \"data\" {\n    mount_path = \"/a\"\n  }\n  volume_claims = [{ name = \"data\", mount_path = \"/b\" }]\n"),
        "volume claim `data` is declared twice",
        5,
        29,
    );
    single(
        &sts(
            "  volume_claims = [{ name = \"a\", mount_path = \"/d\" }]\n  volumes = [\"/x:/d\"]\n",
        ),
        "mount path `/d` is used twice",
        3,
        14,
    );
    single(
        &sts("  volume_claims = [{ name = \"a\" }]\n"),
        "`volume_claims[0]` has no mount_path",
        2,
        20,
    );
    single(
        &sts("  volumes = [\"/x\"]\n"),
        "volume `/x` is not `SOURCE:DEST[:ro]`, e.g. \"${asset.data.conf.file}:/etc/app.conf:ro\"",
        2,
        14,
    );
}

#[test]
fn functions() {
    let d = single(
        "asset \"a\" \"b\" {\n  conf = fle(\"x\")\n}\n",
        "unknown function `fle`",
        2,
        10,
    );
    assert!(d.help().unwrap().starts_with("did you mean `file`?"));
    assert!(d.help().unwrap().contains("url("));
    let d = single(
        &sts("  image = file(\"x\")\n"),
        "`file()` can only be used in asset blocks",
        2,
        11,
    );
    assert!(d.help().unwrap().contains("${asset.scope.name.key}"));
    single(
        "asset \"a\" \"b\" {\n  conf = file()\n}\n",
        "`file()` takes exactly one argument",
        2,
        10,
    );
    single(
        "asset \"a\" \"b\" {\n  conf = file(\"a\", \"b\")\n}\n",
        "`file()` takes exactly one argument",
        2,
        10,
    );
}

#[test]
fn asset_shapes() {
    single(
        "asset \"a\" \"b\" {\n  conf = 3\n}\n",
        "`files.conf` must be a string, file(...) or url(...), found a number",
        2,
        10,
    );
    single(
        "asset \"a\" \"b\" {\n  nested {\n  }\n}\n",
        "unexpected block `nested` in asset",
        2,
        3,
    );
    single(
        "asset \"a\" \"b\" {\n  ünï = \"x\"\n}\n",
        "asset key `ünï` is not a valid file name",
        2,
        3,
    );
}

#[test]
fn top_level_attributes_are_rejected() {
    single(
        "image = \"x\"\n",
        "attribute `image` outside of a block",
        1,
        1,
    );
}

#[test]
fn all_errors_of_a_file_are_collected() {
    let text = "\
statefulset \"data\" \"pg\" {
  replica  = 3
  ports    = [\"0\"]
  env      = { \"bad-key\" = \"x\" }
  resources {
    limits {
      memory = \"lots\"
    }
  }
}
app \"x\" \"y\" {}
deployment \"web\" \"app\" {
  volume_claim \"d\" {
    mount_path = \"/d\"
  }
}
";
    let errs = errors(text);
    let places: Vec<(usize, usize)> = errs
        .iter()
        .filter_map(|d| d.location())
        .map(|(_, l, c)| (l, c))
        .collect();
    assert_eq!(
        places,
        vec![(2, 3), (3, 15), (4, 16), (7, 16), (11, 1), (13, 3)],
        "{}",
        render(&errs)
    );
    let all = vd_manifest::Diagnostics(errs);
    assert_eq!(all.to_string(), "the manifest has 6 errors");
    assert_eq!(format!("{all:#}").lines().count(), 6);
}

#[test]
fn unreadable_manifest_files() {
    let errs = load_files(&[PathBuf::from("/nonexistent/dir/m.hcl")])
        .unwrap_err()
        .0;
    assert_eq!(errs.len(), 1);
    assert!(errs[0]
        .message()
        .starts_with("cannot read manifest `/nonexistent/dir/m.hcl`"));
    assert_eq!(errs[0].location(), None);
}
