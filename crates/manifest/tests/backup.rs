//! The `backup { schedule keep destination source }` block of a data redis: its forms,
//! its rules, and where each diagnostic points.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use vd_core::{BackupSpec, Kind, RedisSpec, Resource, ResourceRef, Spec};
use vd_manifest::{parse_str, Diagnostic, Manifest};

const PATH: &str = "/nonexistent/m.hcl";

fn parse(text: &str) -> Manifest {
    match parse_str(Path::new(PATH), text) {
        Ok(m) => m,
        Err(e) => panic!("expected a valid manifest, got:\n{e:#}"),
    }
}

fn redis(m: &Manifest, name: &str) -> RedisSpec {
    let r = ResourceRef::new(Kind::Redis, "d", name);
    match m.get(&r).map(|r| &r.spec) {
        Some(Spec::Redis(s)) => s.clone(),
        other => panic!("{r}: expected a redis, got {other:?}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(Path::new(PATH), text) {
        Ok(m) => panic!("expected errors, parsed {:?}", m.resources),
        Err(e) => e.0,
    }
}

/// Asserts `text` fails with exactly one error, with this message at this place; returns it.
fn single(text: &str, message: &str, line: usize, col: usize) -> Diagnostic {
    let errs = errors(text);
    let all: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
    assert_eq!(errs.len(), 1, "expected one error, got: {all:#?}");
    let d = errs.into_iter().next().unwrap();
    assert_eq!(d.message(), message);
    assert_eq!(d.location(), Some((PathBuf::from(PATH), line, col)), "{d}");
    assert!(d.help().is_some_and(|h| !h.is_empty()), "no help for {d}");
    d
}

#[test]
fn block_forms() {
    let m = parse(
        r#"redis "d" "min" {
  backup { schedule = "0 */6 * * *" }
}
redis "d" "full" {
  replicas = 3
  backup {
    schedule    = "@daily"
    keep        = 2
    destination = "s3://bkt/redis/full/"
    source      = 2
    env_from    = ["aws", "d/keys"]
  }
}
redis "d" "local" {
  backup {
    schedule    = "* * * * *"
    keep        = 1
    destination = "/var/backups/redis"
  }
}
redis "d" "plain" {}
"#,
    );
    assert_eq!(
        redis(&m, "min").backup,
        Some(BackupSpec {
            schedule: "0 */6 * * *".into(),
            keep: 10,
            destination: None,
            source: None,
            env_from: vec![],
        })
    );
    assert_eq!(
        redis(&m, "full").backup,
        Some(BackupSpec {
            schedule: "@daily".into(),
            keep: 2,
            destination: Some("s3://bkt/redis/full/".into()),
            source: Some(2),
            env_from: vec!["aws".into(), "d/keys".into()],
        })
    );
    assert_eq!(
        redis(&m, "local").backup.and_then(|b| b.destination),
        Some("/var/backups/redis".into())
    );
    assert_eq!(redis(&m, "plain").backup, None);
    let json = serde_json::to_string(&m.resources).unwrap();
    let back: Vec<Resource> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m.resources);
}

#[test]
fn rules_point_at_the_field() {
    let d = single(
        "redis \"d\" \"c\" {\n  backup {\n    schedule = \"every hour\"\n  }\n}\n",
        "`backup.schedule`: invalid schedule \"every hour\": it has 2 fields, not 5; expected five fields \"minute hour day-of-month month day-of-week\" in UTC, e.g. \"0 */6 * * *\", or @hourly/@daily/@weekly/@monthly",
        3,
        16,
    );
    assert!(d.help().unwrap_or_default().contains("0 */6 * * *"));
    let errs = errors("redis \"d\" \"c\" {\n  backup {\n    schedule = \"61 * * * *\"\n  }\n}\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .message()
            .starts_with("`backup.schedule`: invalid schedule \"61 * * * *\": "),
        "{}",
        errs[0]
    );
    assert_eq!(errs[0].location(), Some((PathBuf::from(PATH), 3, 16)));
    single(
        "redis \"d\" \"c\" {\n  backup {\n    schedule = \"@daily\"\n    keep = 0\n  }\n}\n",
        "`backup.keep` must be at least 1, found 0",
        4,
        12,
    );
    single(
        "redis \"d\" \"c\" {\n  backup {\n    schedule = \"@daily\"\n    destination = \"backups\"\n  }\n}\n",
        "`backup.destination`: the destination \"backups\" is not an absolute path",
        4,
        19,
    );
    single(
        "redis \"d\" \"c\" {\n  backup {\n    schedule = \"@daily\"\n    destination = \"s3://Bad_Bucket/x\"\n  }\n}\n",
        "`backup.destination`: `Bad_Bucket` in \"s3://Bad_Bucket/x\" is not a valid S3 bucket name",
        4,
        19,
    );
    single(
        "redis \"d\" \"c\" {\n  replicas = 2\n  backup {\n    schedule = \"@daily\"\n    source = 2\n  }\n}\n",
        "`backup.source` = 2, but this redis has no ordinal 2 (replicas = 2)",
        5,
        14,
    );
    single(
        "redis \"d\" \"c\" {\n  backup {\n    keep = 3\n  }\n}\n",
        "`backup` needs a `schedule`",
        2,
        3,
    );
    let d = single(
        "redis \"d\" \"c\" {\n  backup {\n    schedule = \"@daily\"\n    kep = 3\n  }\n}\n",
        "unknown field `kep` in backup",
        4,
        5,
    );
    assert!(
        d.help().unwrap_or_default().contains("keep"),
        "{:?}",
        d.help()
    );
    single(
        "redis \"d\" \"c\" {\n  backup {\n    schedule = 6\n  }\n}\n",
        "`backup.schedule` must be a string, found a number",
        3,
        16,
    );
}

#[test]
fn not_in_a_sentinel_sibling_nor_outside_redis() {
    let d = single(
        "redis \"d\" \"c-ha\" {\n  sentinel { monitor = \"d/c\" }\n  backup { schedule = \"@daily\" }\n}\n",
        "`backup` is not allowed in a sentinel sibling",
        3,
        3,
    );
    assert!(d.help().unwrap_or_default().contains("`d/c`"));
    single(
        "statefulset \"d\" \"s\" {\n  image = \"x\"\n  backup { schedule = \"@daily\" }\n}\n",
        "`backup` is not allowed in a statefulset",
        3,
        3,
    );
    single(
        "redis \"d\" \"c\" {\n  backup { schedule = \"@daily\" }\n  backup { schedule = \"@hourly\" }\n}\n",
        "`backup` appears twice in this redis",
        3,
        3,
    );
}
