//! Scheduled backups (`backup { schedule keep destination source }` in a data redis):
//! the block's rules, where backups go (a local directory or `s3://bucket/prefix`), and which
//! old ones a run removes. Pure: the server takes, uploads, lists and deletes.

use super::validate::RedisProblem;
use crate::schedule::Schedule;
use crate::RedisSpec;
use std::fmt;
use std::path::PathBuf;

/// Backups kept when the block does not say.
pub const DEFAULT_KEEP: u32 = 10;

/// Where backups of a redis are written and listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An absolute directory on the server's host.
    Local(PathBuf),
    /// An S3 (or S3-compatible) bucket, with a key prefix (`""`, or `a/b` without slashes at
    /// either end).
    S3 {
        /// The bucket's name.
        bucket: String,
        /// Keys start with `prefix/` (nothing when empty).
        prefix: String,
    },
}

/// Why a destination was refused; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DestinationError {
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub help: String,
}

fn refuse(message: impl Into<String>, help: impl Into<String>) -> DestinationError {
    DestinationError {
        message: message.into(),
        help: help.into(),
    }
}

const S3_HELP: &str = "write s3://BUCKET or s3://BUCKET/PREFIX, e.g. \"s3://backups/redis/cache\"; the credentials come from the redis's env_from buckets (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL)";

impl Destination {
    /// Parses `/abs/dir` or `s3://bucket[/prefix]` (a trailing `/` is dropped).
    pub fn parse(text: &str) -> Result<Destination, DestinationError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            return parse_s3(text, rest);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(refuse(
                format!("the destination {text:?} uses `{scheme}://`; only local directories and s3:// are supported"),
                format!("write an absolute directory such as \"/var/backups/redis\", or {S3_HELP}"),
            ));
        }
        if text.is_empty() {
            return Err(refuse(
                "the destination is empty",
                "write an absolute directory such as \"/var/backups/redis\", or leave `destination` out for the server's default (<root>/backups/SCOPE/NAME)",
            ));
        }
        if !text.starts_with('/') {
            return Err(refuse(
                format!("the destination {text:?} is not an absolute path"),
                "the server writes the backups, so a relative path would depend on where it was started: write an absolute directory such as \"/var/backups/redis\"",
            ));
        }
        Ok(Destination::Local(PathBuf::from(text)))
    }

    /// Whether `text` names an S3 destination (it may still be malformed).
    pub fn is_s3(text: &str) -> bool {
        text.starts_with("s3://")
    }

    /// The object key of backup file `file` under an S3 prefix.
    pub fn key(prefix: &str, file: &str) -> String {
        if prefix.is_empty() {
            file.to_string()
        } else {
            format!("{prefix}/{file}")
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Local(p) => write!(f, "{}", p.display()),
            Destination::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

fn parse_s3(text: &str, rest: &str) -> Result<Destination, DestinationError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    if bucket.is_empty() {
        return Err(refuse(
            format!("the destination {text:?} names no bucket"),
            S3_HELP,
        ));
    }
    // S3's bucket naming rules: what a real bucket can be called.
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !valid_chars
        || !ends_ok(bucket.bytes().next())
        || !ends_ok(bucket.bytes().last())
        || bucket.contains("..")
    {
        return Err(refuse(
            format!("`{bucket}` in {text:?} is not a valid S3 bucket name"),
            "bucket names are 3 to 63 characters of lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
        ));
    }
    if !prefix.is_empty()
        && prefix
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(refuse(
            format!("the prefix `{prefix}` in {text:?} has an empty, `.` or `..` segment"),
            S3_HELP,
        ));
    }
    if prefix.chars().any(|c| c.is_control()) {
        return Err(refuse(
            format!("the prefix in {text:?} has a control character"),
            S3_HELP,
        ));
    }
    Ok(Destination::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

/// The backups a run removes: given this redis's backups as (taken at, name), everything but
/// the newest `keep` (ties broken by name, so the choice is stable). Oldest first.
pub fn to_prune(backups: &[(i64, String)], keep: u32) -> Vec<String> {
    let mut sorted: Vec<&(i64, String)> = backups.iter().collect();
    sorted.sort();
    let excess = sorted.len().saturating_sub(keep as usize);
    sorted[..excess].iter().map(|(_, n)| n.clone()).collect()
}

fn problem(field: &str, message: impl Into<String>, help: impl Into<String>) -> RedisProblem {
    RedisProblem {
        field: field.to_string(),
        message: message.into(),
        help: help.into(),
    }
}

/// Checks a `backup { schedule keep destination source }` block on its own; the manifest
/// parser and the server both run it, so API clients get the same answers as manifests.
/// Rejected: the block in a sentinel sibling (it holds no data), a schedule that does not
/// parse, `keep = 0` (a run would delete the backup it just took), a destination that is
/// neither an absolute directory nor `s3://bucket[/prefix]`, and a `source` ordinal the redis
/// does not have.
pub fn validate_backup(spec: &RedisSpec) -> Vec<RedisProblem> {
    let Some(b) = &spec.backup else {
        return Vec::new();
    };
    if let Some(target) = super::validate::sibling_target(spec, "this sibling monitors") {
        // The other problems are moot: the block goes away.
        return vec![problem(
            "backup",
            "`backup` is not allowed in a sentinel sibling",
            format!(
                "a sentinel sibling holds no data to back up; put the `backup {{ ... }}` block \
                 in the data redis {target} and remove it here"
            ),
        )];
    }
    let mut problems = Vec::new();
    if let Err(e) = Schedule::parse(&b.schedule) {
        problems.push(problem(
            "backup.schedule",
            format!("`backup.schedule`: {e}"),
            "e.g. schedule = \"0 */6 * * *\" (every six hours, UTC) or \"@daily\"",
        ));
    }
    if b.keep == 0 {
        problems.push(problem(
            "backup.keep",
            "`backup.keep` must be at least 1, found 0",
            format!(
                "keep is how many backups stay after each run (the newest ones): write keep = \
                 {DEFAULT_KEEP} (the default) or any number from 1"
            ),
        ));
    }
    if let Some(d) = &b.destination {
        if let Err(e) = Destination::parse(d) {
            problems.push(problem(
                "backup.destination",
                format!("`backup.destination`: {}", e.message),
                e.help,
            ));
        }
    }
    // A cluster's rules refuse any `source` (a cluster backup reads every shard).
    if let Some(n) = b.source.filter(|_| spec.cluster.is_none()) {
        let replicas = spec.replicas.unwrap_or(1);
        if n >= replicas {
            problems.push(problem(
                "backup.source",
                format!("`backup.source` = {n}, but this redis has no ordinal {n} (replicas = {replicas})"),
                format!(
                    "pick an ordinal from 0 to {}, or leave `source` out to take each backup \
                     from the highest-ordinal connected replica",
                    replicas.saturating_sub(1)
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackupSpec, SentinelSpec};

    fn s3(bucket: &str, prefix: &str) -> Destination {
        Destination::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn destinations() {
        assert_eq!(
            Destination::parse("/var/backups"),
            Ok(Destination::Local("/var/backups".into()))
        );
        assert_eq!(Destination::parse("s3://bkt"), Ok(s3("bkt", "")));
        assert_eq!(Destination::parse("s3://bkt/"), Ok(s3("bkt", "")));
        assert_eq!(
            Destination::parse("s3://my.bkt-1/redis/cache/"),
            Ok(s3("my.bkt-1", "redis/cache"))
        );
        assert_eq!(s3("b", "").to_string(), "s3://b");
        assert_eq!(s3("bkt", "a/b").to_string(), "s3://bkt/a/b");
        assert_eq!(Destination::key("", "f.rdb"), "f.rdb");
        assert_eq!(Destination::key("a/b", "f.rdb"), "a/b/f.rdb");
        for bad in [
            "",
            "backups",
            "./backups",
            "s3://",
            "s3:///prefix",
            "s3://ab",
            "s3://Upper",
            "s3://-bkt",
            "s3://bkt-",
            "s3://b..k",
            "s3://bkt_1",
            "s3://bkt/a//b",
            "s3://bkt/a/../b",
            "gs://bkt",
            "file:///tmp",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
        assert!(Destination::is_s3("s3://x"));
        assert!(!Destination::is_s3("/s3://x"));
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let b = |t: i64, n: &str| (t, n.to_string());
        let backups = [b(300, "c"), b(100, "a"), b(200, "b"), b(200, "b2")];
        assert_eq!(to_prune(&backups, 2), ["a", "b"]);
        assert_eq!(to_prune(&backups, 1), ["a", "b", "b2"]);
        assert!(to_prune(&backups, 4).is_empty());
        assert!(to_prune(&backups, 10).is_empty());
        assert!(to_prune(&[], 1).is_empty());
    }

    fn with_backup(b: BackupSpec) -> RedisSpec {
        RedisSpec {
            replicas: Some(3),
            backup: Some(b),
            ..RedisSpec::default()
        }
    }

    fn block(schedule: &str, keep: u32) -> BackupSpec {
        BackupSpec {
            schedule: schedule.into(),
            keep,
            destination: None,
            source: None,
            env_from: Vec::new(),
        }
    }

    #[test]
    fn stored_form() {
        // Specs stored before the field existed load, and serialize without it.
        let old: RedisSpec = serde_json::from_str(r#"{"replicas":3}"#).unwrap();
        assert_eq!(old.backup, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("backup"));
        let b: RedisSpec = serde_json::from_str(r#"{"backup":{"schedule":"@daily"}}"#).unwrap();
        assert_eq!(b.backup, Some(block("@daily", DEFAULT_KEEP)));
        let json = serde_json::to_string(&b).unwrap();
        assert!(
            json.contains(r#""backup":{"schedule":"@daily","keep":10}"#),
            "{json}"
        );
    }

    #[test]
    fn block_rules() {
        assert_eq!(validate_backup(&RedisSpec::default()), []);
        assert_eq!(validate_backup(&with_backup(block("0 */6 * * *", 10))), []);
        let mut ok = block("@daily", 1);
        ok.destination = Some("s3://bkt/p".into());
        ok.source = Some(2);
        assert_eq!(validate_backup(&with_backup(ok)), []);

        let mut bad = block("every hour", 0);
        bad.destination = Some("rel/dir".into());
        bad.source = Some(3);
        let p = validate_backup(&with_backup(bad));
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "backup.schedule",
                "backup.keep",
                "backup.destination",
                "backup.source"
            ]
        );
        assert!(p[0].message.contains("it has 2 fields, not 5"), "{}", p[0]);
        assert_eq!(
            p[3].message,
            "`backup.source` = 3, but this redis has no ordinal 3 (replicas = 3)"
        );

        let mut sibling = with_backup(block("bad", 0));
        sibling.sentinel = Some(SentinelSpec {
            enabled: true,
            monitor: Some("data/cache".into()),
        });
        let p = validate_backup(&sibling);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "backup");
        assert_eq!(
            p[0].message,
            "`backup` is not allowed in a sentinel sibling"
        );
        assert!(p[0].help.contains("`data/cache`"), "{}", p[0].help);
    }
}
