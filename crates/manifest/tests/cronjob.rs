//! `cronjob` blocks: a typical backup job lowers field by field; bad fields are located.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use vd_core::{Concurrency, Kind, ResourceRef, Spec};
use vd_manifest::{parse_str, Diagnostic};

const PATH: &str = "/nonexistent/m.hcl";

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(Path::new(PATH), text) {
        Ok(m) => panic!("expected errors, parsed {:?}", m.resources),
        Err(e) => e.0,
    }
}

/// Asserts exactly one error, starting with `prefix`, at this place, with a help.
fn single(text: &str, prefix: &str, line: usize, col: usize) -> Diagnostic {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    let d = errs.into_iter().next().unwrap();
    assert!(d.message().starts_with(prefix), "{}", d.message());
    assert_eq!(d.location(), Some((PathBuf::from(PATH), line, col)), "{d}");
    assert!(d.help().is_some_and(|h| !h.is_empty()), "no help for {d}");
    d
}

fn cj(body: &str) -> String {
    format!("cronjob \"clowk-lp\" \"backup\" {{\n{body}}}\n")
}

/// A redis backup job every six hours, writing to a local directory.
const BACKUP_JOB: &str = r#"
cronjob "clowk-lp" "redis-backup" {
  schedule = "0 */6 * * *"
  image    = "alpine:latest"

  env_from = ["clowk-lp/redis"]
  volumes  = ["/var/backups/redis:/backups"]

  command = ["sh", "-c", <<-EOT
    set -eu
    redis-cli -h redis-2.clowk-lp.voodu -a "$REDIS_PASSWORD" --no-auth-warning --rdb /backups/redis-$(date +%Y%m%d-%H%M%S).rdb
  EOT
  ]
}
"#;

#[test]
fn seed_example_lowers() {
    let m = parse_str(Path::new(PATH), BACKUP_JOB).unwrap_or_else(|e| panic!("{e:#}"));
    let id = ResourceRef::new(Kind::Cronjob, "clowk-lp", "redis-backup");
    let Some(Spec::Cronjob(c)) = m.get(&id).map(|r| &r.spec) else {
        panic!("{:?}", m.resources)
    };
    assert_eq!(c.schedule, "0 */6 * * *");
    assert_eq!(c.image.as_deref(), Some("alpine:latest"));
    assert_eq!(c.env_from, vec!["clowk-lp/redis"]);
    assert_eq!(c.volumes[0].target, "/backups");
    assert_eq!(c.command[..2], ["sh", "-c"]);
    // `$(...)` and `$VAR` are the shell's, kept as written.
    assert!(
        c.command[2].contains("\"$REDIS_PASSWORD\""),
        "{}",
        c.command[2]
    );
    assert!(c.command[2].contains("$(date +%Y%m%d-%H%M%S)"));
    assert_eq!(c.keep, 5);
    assert_eq!(c.concurrency, Concurrency::Forbid);
}

#[test]
fn optional_fields() {
    let text = cj(
        "  schedule = \"@hourly\"\n  command = [\"true\"]\n  concurrency = \"allow\"\n  keep = 2\n  timeout = \"90s\"\n",
    );
    let m = parse_str(Path::new(PATH), &text).unwrap_or_else(|e| panic!("{e:#}"));
    let Spec::Cronjob(c) = &m.resources[0].spec else {
        panic!()
    };
    assert_eq!(
        (c.concurrency, c.keep, c.timeout_ms),
        (Concurrency::Allow, 2, Some(90_000))
    );
}

#[test]
fn bad_schedule_is_located_with_the_parsers_reason() {
    let d = single(
        &cj("  schedule = \"0 */6 * *\"\n  command = [\"true\"]\n"),
        "invalid schedule \"0 */6 * *\": it has 4 fields, not 5",
        2,
        14,
    );
    assert!(d.message().contains("five fields"));
    single(
        &cj("  schedule = \"61 * * * *\"\n  command = [\"true\"]\n"),
        "invalid schedule \"61 * * * *\"",
        2,
        14,
    );
}

#[test]
fn missing_schedule_points_at_the_block() {
    single(
        &cj("  command = [\"true\"]\n"),
        "`cronjob` has no schedule",
        1,
        1,
    );
}

#[test]
fn unknown_fields_get_a_suggestion() {
    let d = single(
        &cj("  schedule = \"@daily\"\n  comand = [\"true\"]\n"),
        "unknown field `comand` in cronjob",
        3,
        3,
    );
    assert_eq!(d.help(), Some("did you mean `command`?"));
    let d = single(
        &cj("  schedule = \"@daily\"\n  replicas = 2\n"),
        "unknown field `replicas` in cronjob",
        3,
        3,
    );
    assert!(d.help().unwrap().contains("schedule"), "{:?}", d.help());
}

#[test]
fn bad_values_are_located() {
    single(
        &cj("  schedule = \"@daily\"\n  concurrency = \"sometimes\"\n"),
        "`concurrency` must be",
        3,
        17,
    );
    single(
        &cj("  schedule = \"@daily\"\n  keep = 0\n"),
        "`keep` must be at least 1",
        3,
        10,
    );
    single(
        &cj("  schedule = \"@daily\"\n  timeout = 30\n"),
        "`timeout` must be a duration string",
        3,
        13,
    );
    single(
        &cj("  schedule = \"@daily\"\n  command = []\n"),
        "`command` is empty",
        3,
        13,
    );
}
