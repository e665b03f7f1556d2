//! Importing another Redis server's dataset (`vd redis:import`): the source's URL, a connection
//! to the source with its own credentials (errors say which part was wrong, never the
//! password), whether the source lets a replica sync from it, and the key-by-key copy
//! (`SCAN` + `DUMP`/`PTTL` -> `RESTORE … REPLACE`) used when it does not.
//!
//! The live path itself (the target replicating from the source) is driven by the server
//! with [`crate::Node`]; this module gives it the source side and the pure decisions.

use crate::conn::{Access, Conn, RedisError};
use crate::info::{Info, Replication};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The port of a URL that names none.
pub const DEFAULT_PORT: u16 = 6379;

/// A parsed `redis://[user:password@]host[:port][/db]`. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl {
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// ACL user (`AUTH user password`); `None`: the default user.
    pub user: Option<String>,
    /// Password; `None` when the URL has none.
    pub password: Option<String>,
    /// The one logical database to import; `None`: all of them.
    pub db: Option<u32>,
}

impl SourceUrl {
    /// `host:port` (`[v6]:port`), for messages and for connecting.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL with the password replaced by `***`: the only form that may be logged or shown.
    pub fn redacted(&self) -> String {
        let auth = match (&self.user, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}:@"),
            (None, Some(_)) => ":***@".to_string(),
            (None, None) => String::new(),
        };
        let db = self.db.map(|d| format!("/{d}")).unwrap_or_default();
        format!("redis://{auth}{}{db}", self.addr())
    }

    /// Whether the host is a loopback address or `localhost` (not reachable from a container).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Why a source URL is not usable. No variant carries the password or the whole URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `redis://…`.
    #[error("the source must be a redis:// URL: redis://[user:password@]host[:port][/db]")]
    NotRedis,
    /// `rediss://`.
    #[error("rediss:// (TLS) sources are not supported: the target's replication connection would need TLS too")]
    Tls,
    /// Nothing between `@` and the port.
    #[error("the source URL names no host")]
    NoHost,
    /// Not a port.
    #[error("the source URL's port `{0}` is not a number from 1 to 65535")]
    Port(String),
    /// Not a database number.
    #[error("the source URL's database `{0}` is not a number")]
    Db(String),
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    #[error("the source URL's {0} has a bad percent-escape (write a literal `%` as %25)")]
    Escape(&'static str),
    /// `?` or `#`.
    #[error("the source URL has a query or fragment; percent-encode `?`, `#` and `/` in a password (%3F, %23, %2F)")]
    Query,
}

fn percent_decode(s: &str, what: &'static str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(UrlError::Escape(what))?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| UrlError::Escape(what))?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(UrlError::Escape(what));
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Escape(what))
}

/// Parses `redis://[user:password@]host[:port][/db]` as `redis-cli -u` reads it: user and
/// password are percent-decoded, a lone `secret@` is the default user's password, the port
/// defaults to 6379, an IPv6 host goes in brackets.
pub fn parse_url(s: &str) -> Result<SourceUrl, UrlError> {
    let s = s.trim();
    let (scheme, rest) = s.split_once("://").ok_or(UrlError::NotRedis)?;
    if scheme.eq_ignore_ascii_case("rediss") {
        return Err(UrlError::Tls);
    }
    if !scheme.eq_ignore_ascii_case("redis") {
        return Err(UrlError::NotRedis);
    }
    // The password may hold an unencoded `@`: the host starts after the last one.
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if hostpart.contains(['?', '#']) {
        return Err(UrlError::Query);
    }
    let (authority, path) = match hostpart.find('/') {
        Some(i) => (&hostpart[..i], &hostpart[i + 1..]),
        None => (hostpart, ""),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(UrlError::Port(after.to_string())),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|c| c.is_ascii_digit()) => n,
            _ => return Err(UrlError::Port(p.to_string())),
        },
    };
    let db = match path.trim_end_matches('/') {
        "" => None,
        d if d.bytes().all(|c| c.is_ascii_digit()) => {
            Some(d.parse().map_err(|_| UrlError::Db(d.to_string()))?)
        }
        d => return Err(UrlError::Db(d.to_string())),
    };
    let (user, password) = match userinfo {
        None => (String::new(), String::new()),
        Some(ui) => match ui.split_once(':') {
            Some((u, p)) => (
                percent_decode(u, "user name")?,
                percent_decode(p, "password")?,
            ),
            None => (String::new(), percent_decode(ui, "password")?),
        },
    };
    Ok(SourceUrl {
        host: host.to_string(),
        port,
        user: (!user.is_empty()).then_some(user),
        password: (!password.is_empty()).then_some(password),
        db,
    })
}

/// Why the target cannot replicate from the source: grounds for the key-by-key copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `SYNC`/`PSYNC` are unknown to the source (renamed or disabled, as managed services do).
    SyncDisabled,
    /// The source's ACL user may not run the replication commands.
    NoPermission,
    /// The replication connection could not authenticate.
    Auth,
    /// The target's pods cannot reach the source's address.
    Unreachable,
}

impl Refusal {
    /// One sentence for the report.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::SyncDisabled => "the source has SYNC/PSYNC disabled or renamed",
            Refusal::NoPermission => "the source's user may not run the replication commands (ACL)",
            Refusal::Auth => "the source refused the replication connection's credentials",
            Refusal::Unreachable => "the target's pods cannot reach the source's address",
        }
    }
}

/// Pure: what an error reply, or a line a replica logged about its master, says about live
/// replication; `None` when it is no reason to give up on it.
pub fn refusal(text: &str) -> Option<Refusal> {
    let t = text.to_ascii_lowercase();
    if t.contains("noperm") {
        Some(Refusal::NoPermission)
    } else if t.contains("unknown command") {
        Some(Refusal::SyncDisabled)
    } else if t.contains("wrongpass") || t.contains("noauth") || t.contains("unable to auth") {
        Some(Refusal::Auth)
    } else if [
        "error condition on socket for sync",
        "unable to connect to master",
        "timeout connecting to the master",
        "connection refused",
        "no route to host",
        "name or service not known",
    ]
    .iter()
    .any(|p| t.contains(p))
    {
        Some(Refusal::Unreachable)
    } else {
        None
    }
}

/// Pure: the last line of a replica's log that explains why its replication fails, with
/// what it says.
pub fn last_refusal(log: &str) -> Option<(Refusal, String)> {
    log.lines()
        .rev()
        .find_map(|l| refusal(l).map(|r| (r, l.trim().to_string())))
}

/// Pure: keys per logical database from `INFO keyspace` (`db3:keys=10,expires=2,avg_ttl=0`).
pub fn keyspace(info: &Info) -> BTreeMap<u32, u64> {
    info.sections
        .get("keyspace")
        .map(|dbs| {
            dbs.iter()
                .filter_map(|(k, v)| {
                    let db = k.strip_prefix("db")?.parse().ok()?;
                    let keys = v
                        .split(',')
                        .find_map(|kv| kv.strip_prefix("keys="))?
                        .parse()
                        .ok()?;
                    Some((db, keys))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why the source could not be used. No variant carries the password.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No connection.
    #[error("cannot reach the source at {addr}: {reason}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// `WRONGPASS`.
    #[error("the source at {addr} rejected the credentials: wrong password for {}", user.as_deref().map(|u| format!("user `{u}`")).unwrap_or_else(|| "the default user".into()))]
    WrongPassword {
        /// host:port.
        addr: String,
        /// The user named in the URL.
        user: Option<String>,
    },
    /// `NOAUTH`: the URL has no password.
    #[error("the source at {addr} requires a password and the URL has none")]
    NeedsPassword {
        /// host:port.
        addr: String,
    },
    /// The URL has a password the source does not use.
    #[error("the source at {addr} has no password set, but the URL gives one")]
    NoPasswordSet {
        /// host:port.
        addr: String,
    },
    /// Any other failure.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// A connection to the import's source, authenticated with the URL's credentials.
pub struct Source {
    c: Conn,
}

impl Source {
    /// Connects, authenticates (classifying a refusal) and selects `db` when given.
    pub async fn connect(
        url: &SourceUrl,
        db: Option<u32>,
        timeout: Duration,
    ) -> Result<Source, SourceError> {
        let addr = url.addr();
        let mut c = Conn::open(&url.host, url.port, None, timeout)
            .await
            .map_err(|e| match e {
                RedisError::Unreachable { reason, .. } => SourceError::Unreachable {
                    addr: addr.clone(),
                    reason,
                },
                other => other.into(),
            })?;
        if let Some(pw) = &url.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(u) = &url.user {
                auth.arg(u);
            }
            auth.arg(pw);
            if let Err(e) = c.run::<()>(&auth).await {
                let text = reply_text(&e);
                return Err(
                    if text.contains("WRONGPASS") || text.contains("invalid password") {
                        SourceError::WrongPassword {
                            addr,
                            user: url.user.clone(),
                        }
                    } else if text.contains("without any password configured") {
                        SourceError::NoPasswordSet { addr }
                    } else {
                        // Never the command's arguments: only what the server answered.
                        SourceError::Redis(RedisError::State(format!(
                            "the source at {addr} refused AUTH: {text}"
                        )))
                    },
                );
            }
        }
        if let Err(e) = c.run::<String>(&redis::cmd("PING")).await {
            return Err(if reply_text(&e).contains("NOAUTH") {
                SourceError::NeedsPassword { addr }
            } else {
                e.into()
            });
        }
        if let Some(db) = db {
            c.run::<()>(redis::cmd("SELECT").arg(db)).await?;
        }
        Ok(Source { c })
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.c.addr
    }

    /// `INFO [section]`.
    pub async fn info(&mut self, section: Option<&str>) -> Result<Info, RedisError> {
        let mut c = redis::cmd("INFO");
        if let Some(s) = section {
            c.arg(s);
        }
        let text: String = self.c.run(&c).await?;
        Ok(Info::parse(&text))
    }

    /// `INFO replication` (plus the loading flag).
    pub async fn replication(&mut self) -> Result<Replication, RedisError> {
        let text: String = self
            .c
            .run(redis::cmd("INFO").arg("replication").arg("persistence"))
            .await?;
        Ok(Info::parse(&text).replication())
    }

    /// `CONFIG GET databases`; `None` when `CONFIG` is not allowed (managed services).
    pub async fn databases(&mut self) -> Option<u32> {
        let v: std::collections::HashMap<String, String> = self
            .c
            .run(redis::cmd("CONFIG").arg("GET").arg("databases"))
            .await
            .ok()?;
        v.get("databases")?.parse().ok()
    }

    /// Whether the source visibly refuses replication, asked without starting one: `SYNC` or
    /// `PSYNC` missing from `COMMAND INFO` (renamed or disabled), or the user not allowed to
    /// run `REPLCONF` (ACL; `REPLCONF` without arguments is a no-op that answers `OK`). A
    /// source that hides `COMMAND` gives no answer here; the replica's own attempt tells.
    pub async fn refuses_replication(&mut self) -> Option<Refusal> {
        let listed: Result<Vec<redis::Value>, _> = self
            .c
            .run(redis::cmd("COMMAND").arg("INFO").arg("SYNC").arg("PSYNC"))
            .await;
        if let Ok(v) = listed {
            if v.len() == 2 && v.iter().any(|c| matches!(c, redis::Value::Nil)) {
                return Some(Refusal::SyncDisabled);
            }
        }
        match self.c.run::<()>(&redis::cmd("REPLCONF")).await {
            Err(e) => refusal(&reply_text(&e)),
            Ok(()) => None,
        }
    }
}

/// The server's error reply of a failed command (`WRONGPASS …`), without the address.
fn reply_text(e: &RedisError) -> String {
    match e {
        RedisError::Command { source, .. } => {
            let code = source.code().unwrap_or_default();
            let detail = source.detail().unwrap_or_default();
            let text = format!("{code} {detail}").trim().to_string();
            if text.is_empty() {
                source.to_string()
            } else {
                text
            }
        }
        other => other.to_string(),
    }
}

/// What the copy of one logical database did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbCopy {
    /// The database index.
    pub db: u32,
    /// Keys restored on the target (a key `SCAN` returned twice counts twice).
    pub copied: u64,
    /// Keys that expired or were deleted between `SCAN` and `DUMP`.
    pub skipped: u64,
}

/// Why the key-by-key copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading from the source.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing to the target.
    #[error("the target: {0}")]
    Target(#[source] RedisError),
    /// One key could not be copied.
    #[error("db {db}, key `{key}`: {what}")]
    Key {
        /// Database.
        db: u32,
        /// The key (lossy UTF-8).
        key: String,
        /// What failed.
        what: String,
    },
}

/// Where the copy writes: the target master, authenticated as `default`.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// Address.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// How to reach it: its password, and TLS when it speaks TLS only.
    pub access: Access<'a>,
}

/// Copies database `db` of the source into the same database of the target, `batch` keys
/// per round trip: `SCAN`, then `DUMP` + `PTTL` of each key pipelined on the source, then
/// `RESTORE key ttl payload REPLACE` pipelined on the target. TTLs are kept (relative, so a
/// key lives on the target for what it had left, plus at most one round trip); a key that
/// expired or was deleted meanwhile is skipped. `progress` gets the keys copied so far.
pub async fn copy_db(
    url: &SourceUrl,
    target: Target<'_>,
    db: u32,
    batch: usize,
    timeout: Duration,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DbCopy, CopyError> {
    let mut src = Source::connect(url, Some(db), timeout).await?;
    let mut dst = Conn::open_with(target.host, target.port, target.access, timeout)
        .await
        .map_err(CopyError::Target)?;
    dst.run::<()>(redis::cmd("SELECT").arg(db))
        .await
        .map_err(CopyError::Target)?;
    let mut out = DbCopy {
        db,
        ..DbCopy::default()
    };
    let key_err = |key: &[u8], what: String| CopyError::Key {
        db,
        key: String::from_utf8_lossy(key).into_owned(),
        what,
    };
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = src
            .c
            .run(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(batch))
            .await
            .map_err(SourceError::from)?;
        if !keys.is_empty() {
            let mut read = redis::pipe();
            read.ignore_errors();
            for k in &keys {
                read.cmd("DUMP").arg(k).cmd("PTTL").arg(k);
            }
            let replies: Vec<redis::Value> = src.c.pipe(&read).await.map_err(SourceError::from)?;
            let mut write = redis::pipe();
            write.ignore_errors();
            let mut written: Vec<&[u8]> = Vec::with_capacity(keys.len());
            for (k, pair) in keys.iter().zip(replies.chunks(2)) {
                let (dump, ttl) = match pair {
                    [d, t] => (d, t),
                    _ => return Err(key_err(k, "the source's reply was cut short".into())),
                };
                let payload = match dump {
                    redis::Value::BulkString(b) => b,
                    redis::Value::Nil => {
                        out.skipped += 1;
                        continue;
                    }
                    redis::Value::ServerError(e) => {
                        return Err(key_err(k, format!("DUMP failed: {}", server_error(e))))
                    }
                    other => return Err(key_err(k, format!("DUMP answered {other:?}"))),
                };
                let ttl = match ttl {
                    redis::Value::Int(-2) => {
                        out.skipped += 1;
                        continue;
                    }
                    redis::Value::Int(n) if *n > 0 => *n,
                    redis::Value::Int(_) => 0,
                    other => return Err(key_err(k, format!("PTTL answered {other:?}"))),
                };
                write
                    .cmd("RESTORE")
                    .arg(k)
                    .arg(ttl)
                    .arg(payload.as_slice())
                    .arg("REPLACE");
                written.push(k);
            }
            if !written.is_empty() {
                let acks: Vec<redis::Value> = dst.pipe(&write).await.map_err(CopyError::Target)?;
                for (k, a) in written.iter().zip(&acks) {
                    if let redis::Value::ServerError(e) = a {
                        let e = server_error(e);
                        let hint = if e.contains("payload version") {
                            " (the source runs a newer Redis than the target: RESTORE cannot read its DUMP format)"
                        } else {
                            ""
                        };
                        return Err(key_err(k, format!("RESTORE failed: {e}{hint}")));
                    }
                }
                out.copied += written.len() as u64;
                progress(out.copied);
            }
        }
        cursor = next;
        if cursor == 0 {
            return Ok(out);
        }
    }
}

fn server_error(e: &redis::ServerError) -> String {
    format!("{} {}", e.code(), e.details().unwrap_or_default())
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> SourceUrl {
        parse_url(s).unwrap()
    }

    #[test]
    fn urls() {
        let u = url("redis://10.0.0.5:6380");
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.5", 6380));
        assert_eq!((u.user, u.password, u.db), (None, None, None));

        let u = url("redis://app:s3cr%40t%3A%2F@cache.example.com:7000/3");
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s3cr@t:/"));
        assert_eq!(u.port, 7000);
        assert_eq!(u.db, Some(3));
        assert_eq!(u.addr(), "cache.example.com:7000");

        // redis-cli -u: a lone userinfo is the default user's password.
        let u = url("REDIS://hunter2@h");
        assert_eq!((u.user, u.password.as_deref()), (None, Some("hunter2")));
        assert_eq!(u.port, 6379);
        let u = url("redis://:pw@h:1/");
        assert_eq!(
            (u.user, u.password.as_deref(), u.db),
            (None, Some("pw"), None)
        );
        // An unencoded `@` in the password: the host follows the last one.
        let u = url("redis://:p@ss@h");
        assert_eq!(
            (u.password.as_deref(), u.host.as_str()),
            (Some("p@ss"), "h")
        );
        let u = url("redis://u:@[::1]:6390/0");
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 6390, Some(0)));
        assert_eq!(u.user.as_deref(), Some("u"));
        assert_eq!(u.password, None);
        assert_eq!(u.addr(), "[::1]:6390");
        assert!(u.is_loopback());
        assert!(url("redis://localhost").is_loopback());
        assert!(url("redis://127.3.0.1:1").is_loopback());
        assert!(!url("redis://172.18.0.1:1").is_loopback());
    }

    #[test]
    fn bad_urls_never_echo_the_password() {
        let cases = [
            ("http://h:1", UrlError::NotRedis),
            ("h:6379", UrlError::NotRedis),
            ("rediss://:pw@h", UrlError::Tls),
            ("redis://:pw@", UrlError::NoHost),
            ("redis://:pw@:6379", UrlError::NoHost),
            ("redis://:pw@h:0", UrlError::Port("0".into())),
            ("redis://:pw@h:99999", UrlError::Port("99999".into())),
            ("redis://:pw@h:+1", UrlError::Port("+1".into())),
            ("redis://:pw@h/x", UrlError::Db("x".into())),
            ("redis://:p%zz@h", UrlError::Escape("password")),
            ("redis://:p%4@h", UrlError::Escape("password")),
            ("redis://:p%ff@h", UrlError::Escape("password")),
            ("redis://u%@h", UrlError::Escape("password")),
            ("redis://u%g1:x@h", UrlError::Escape("user name")),
            ("redis://:pw@h?db=1", UrlError::Query),
            ("redis://:pw@h/1#x", UrlError::Query),
        ];
        for (s, want) in cases {
            let e = parse_url(s).unwrap_err();
            assert_eq!(e, want, "{s}");
            let shown = e.to_string();
            assert!(!shown.contains("pw") && !shown.contains("p%"), "{shown}");
        }
    }

    #[test]
    fn debug_and_redacted_hide_the_password() {
        let u = url("redis://app:topsecret@h:1/2");
        assert_eq!(u.redacted(), "redis://app:***@h:1/2");
        assert_eq!(format!("{u:?}"), "redis://app:***@h:1/2");
        assert_eq!(url("redis://:x@h").redacted(), "redis://:***@h:6379");
        assert_eq!(url("redis://h").redacted(), "redis://h:6379");
    }

    #[test]
    fn what_refuses_live_replication() {
        let cases = [
            ("ERR unknown command 'PSYNC', with args beginning with: ", Some(Refusal::SyncDisabled)),
            ("MASTER aborted replication with an error: ERR unknown command 'SYNC', with args beginning with: ", Some(Refusal::SyncDisabled)),
            ("NOPERM User app has no permissions to run the 'psync' command", Some(Refusal::NoPermission)),
            ("1:S 01 Jan 2024 00:00:00.000 # Unable to AUTH to MASTER: -WRONGPASS invalid username-password pair or user is disabled.", Some(Refusal::Auth)),
            ("Error reply to PING from master: '-NOAUTH Authentication required.'", Some(Refusal::Auth)),
            ("# Error condition on socket for SYNC: Connection refused", Some(Refusal::Unreachable)),
            ("# Timeout connecting to the MASTER...", Some(Refusal::Unreachable)),
            ("* Connecting to MASTER 127.0.0.1:7000", None),
            ("* MASTER <-> REPLICA sync started", None),
            ("* Full resync from master: 0b5c:0", None),
            ("READONLY You can't write against a read only replica.", None),
        ];
        for (text, want) in cases {
            assert_eq!(refusal(text), want, "{text}");
        }
        let log = "* Connecting to MASTER h:1\n# Unable to AUTH to MASTER: -WRONGPASS x\n* Connecting to MASTER h:1\n* MASTER <-> REPLICA sync started\n# MASTER aborted replication with an error: NOPERM no sync for you\n* Retrying\n";
        let (r, line) = last_refusal(log).unwrap();
        assert_eq!(r, Refusal::NoPermission);
        assert!(line.contains("aborted replication"));
        assert_eq!(last_refusal("* Connecting\n* Ready\n"), None);
    }

    #[test]
    fn keyspace_per_database() {
        let info = Info::parse(
            "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\nxdb:keys=1\r\ndb4:junk\r\n",
        );
        assert_eq!(keyspace(&info), BTreeMap::from([(0, 10), (3, 5)]));
        assert!(keyspace(&Info::parse("# Server\nrun_id:x\n")).is_empty());
    }
}
