//! The macro's validation: mounted configs that would silently open or break the server or its
//! sentinels, and scale-downs that would remove the master.

use super::expand::{normalize_path, same_path};
use super::{
    CONF_D, CONF_PATH, MASTER_NAME, MAX_DOWN_AFTER_MS, MIN_DOWN_AFTER_MS, REDIS_PORT,
    SENTINEL_CONF_D, SENTINEL_PORT,
};
use crate::{RedisSpec, ResourceRef};
use std::fmt;

/// One reason a redis block is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisProblem {
    /// Where: `volumes[0]`, `replicas`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl RedisProblem {
    pub(crate) fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            help: help.into(),
        }
    }
}

impl fmt::Display for RedisProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n  help: {}", self.field, self.message, self.help)
    }
}

impl std::error::Error for RedisProblem {}

/// Checks a data redis block. `mounted_files` holds, for each operator volume index whose
/// source is an asset, that file's content (the server looks it up).
///
/// Files mounted under `/etc/redis/conf.d/` (and a replacement `/etc/redis/redis.conf` while the
/// macro's entrypoint is in use) are read the way Redis reads a config: blank lines and `#`
/// comments skipped, arguments split with Redis' quoting rules, directive names
/// case-insensitive. Rejected:
/// - `aclfile` and `user default ...`: both replace the `default` user vd manages, either with
///   one that lets anyone in (`nopass`) or with a password replicas do not authenticate with;
/// - in conf.d, the settings the entrypoint manages per pod (`requirepass`, `masterauth`,
///   `masteruser`, `bind`, `replicaof`/`slaveof`, `replica-announce-ip`, `port` other than 6379):
///   the entrypoint's values come later and would silently win, or replication would break;
/// - unbalanced quotes (Redis would refuse to start).
///
/// Also rejected: two operator volumes with the same destination, and a conf.d destination that
/// the `include /etc/redis/conf.d/*.conf` glob does not match (it would be silently ignored).
/// The sentinel block is checked elsewhere.
pub fn validate(spec: &RedisSpec, mounted_files: &[(usize, &str)]) -> Vec<RedisProblem> {
    let mut problems = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let field = format!("volumes[{i}]");
        if let Some(j) = spec.volumes[..i]
            .iter()
            .position(|w| same_path(&w.target, &v.target))
        {
            problems.push(RedisProblem::new(
                &field,
                format!("`{}` is already the destination of volumes[{j}]", v.target),
                "keep one entry per destination (an entry replaces the macro's file at the same \
                 destination on its own)",
            ));
        }
        if let Some(file) = conf_d_entry(CONF_D, &v.target) {
            let included = file.len() > ".conf".len()
                && file.ends_with(".conf")
                && !file.starts_with('.')
                && !file.contains('/');
            if !included {
                problems.push(RedisProblem::new(
                    &field,
                    format!(
                        "`{}` is never read: redis includes only {CONF_D}/*.conf",
                        v.target
                    ),
                    format!("mount the file directly in {CONF_D}/ with a name ending in `.conf`, e.g. {CONF_D}/tuning.conf"),
                ));
            }
        }
    }

    for &(i, content) in mounted_files {
        let Some(v) = spec.volumes.get(i) else {
            continue;
        };
        let in_conf_d = conf_d_entry(CONF_D, &v.target).is_some();
        // A replaced base config is still included by the entrypoint, unless the operator also
        // replaced the command: then the macro's config is bypassed and they own it all.
        let base = same_path(&v.target, CONF_PATH) && spec.command.is_none();
        if !in_conf_d && !base {
            continue;
        }
        let field = format!("volumes[{i}]");
        let at = |n: usize| format!("`{}` line {n}", v.target);
        for (n, line) in config_lines(content) {
            let args = match split_args(line) {
                Some(a) if !a.is_empty() => a,
                Some(_) => continue,
                None => {
                    problems.push(RedisProblem::new(
                        &field,
                        format!("{}: unbalanced quotes", at(n)),
                        "close the quote (redis refuses to start on this line); inside \"...\" \
                         write \\\" for a quote and \\\\ for a backslash",
                    ));
                    continue;
                }
            };
            let directive = args[0].to_ascii_lowercase();
            if directive == "aclfile" {
                problems.push(RedisProblem::new(
                    &field,
                    format!("{}: the `aclfile` directive is not allowed", at(n)),
                    "declare users inline instead, as `user NAME on >password ~keys +@commands` lines \
                     in a file mounted at /etc/redis/conf.d/<name>.conf. With an ACL file, either \
                     the file lacks `user default` and Redis resets `default` to \
                     `on nopass ~* +@all` (anyone gets in; requirepass becomes a no-op), or it \
                     defines `default` with its own password, which differs from the one replicas \
                     authenticate with (masterauth), so replication silently stops in a WRONGPASS \
                     loop",
                ));
            } else if directive == "user" && args.get(1).map(String::as_str) == Some("default") {
                problems.push(RedisProblem::new(
                    &field,
                    format!("{}: declares `user default`", at(n)),
                    "remove the line and declare your own users (e.g. `user appwriter on \
                     >secret ~app:* +@write +@read`). vd manages the `default` user itself: its \
                     password is REDIS_PASSWORD, set as requirepass and masterauth. A `user \
                     default` line overrides that: without a password (`nopass`) it lets anyone \
                     in, and with a different one replicas can no longer authenticate to the \
                     master",
                ));
            } else if in_conf_d {
                if let Some(why) = managed(&directive, &args) {
                    problems.push(RedisProblem::new(
                        &field,
                        format!(
                            "{}: `{}` is managed by vd and cannot be set here",
                            at(n),
                            args[0]
                        ),
                        why,
                    ));
                }
            }
        }
    }
    problems
}

/// For a destination inside the directory `dir`, the path below it.
fn conf_d_entry(dir: &str, target: &str) -> Option<String> {
    normalize_path(target)
        .strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_string)
}

/// Whether a volume destination lies inside [`SENTINEL_CONF_D`] (`/etc/sentinel/conf.d/`), where
/// a sentinel sibling's override files go: the files [`validate_sentinel_overrides`] checks.
pub fn is_sentinel_override_target(target: &str) -> bool {
    conf_d_entry(SENTINEL_CONF_D, target).is_some()
}

/// Sentinel options whose first argument is a master name (Redis 7's sentinel.c).
const PER_MASTER_OPTIONS: [&str; 14] = [
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
    "notification-script",
    "client-reconfig-script",
    "auth-pass",
    "auth-user",
    "config-epoch",
    "leader-epoch",
    "known-replica",
    "known-slave",
    "known-sentinel",
    "rename-command",
    "master-reboot-down-after-period",
];

/// Checks a sentinel sibling's override files (custom sentinel tuning): `mounted`
/// holds, for each operator volume index whose destination is under `/etc/sentinel/conf.d/`
/// ([`is_sentinel_override_target`]), that file's content. They are read as sentinel reads
/// them (see [`validate`]); the sentinel config includes them last, so whatever they set wins.
/// Rejected:
/// - `sentinel monitor`: the macro writes the one monitor line, for `voodu-master`; another for
///   that name makes sentinel exit with "Duplicated master name", and one for another name
///   would make these sentinels watch a redis vd does not know of;
/// - a per-master option (`sentinel down-after-milliseconds <master> ...`) for any master but
///   `voodu-master` (the one master name, fixed), which sentinel refuses to start on;
/// - what the entrypoint manages: the password (`auth-pass`, `auth-user`), the per-pod
///   announcement (`announce-ip`, `announce-port`, `resolve-hostnames`, `announce-hostnames`,
///   `bind`, `port` other than 26379) and sentinel's own state (`myid`, epochs, `known-*`);
/// - unbalanced quotes (sentinel would refuse to start).
pub fn validate_sentinel_overrides(mounted: &[(usize, &str)]) -> Vec<RedisProblem> {
    let mut problems = Vec::new();
    for &(i, content) in mounted {
        let field = format!("volumes[{i}]");
        for (n, line) in config_lines(content) {
            let args = match split_args(line) {
                Some(a) if !a.is_empty() => a,
                Some(_) => continue,
                None => {
                    problems.push(RedisProblem::new(
                        &field,
                        format!("line {n}: unbalanced quotes"),
                        "close the quote (sentinel refuses to start on this line); inside \"...\" \
                         write \\\" for a quote and \\\\ for a backslash",
                    ));
                    continue;
                }
            };
            let directive = args[0].to_ascii_lowercase();
            if directive != "sentinel" {
                if let Some(why) = sentinel_managed(&directive, &args) {
                    problems.push(RedisProblem::new(
                        &field,
                        format!(
                            "line {n}: `{}` is managed by vd and cannot be set here",
                            args[0]
                        ),
                        why,
                    ));
                }
                continue;
            }
            let Some(option) = args.get(1).map(|o| o.to_ascii_lowercase()) else {
                continue;
            };
            if option == "monitor" {
                problems.push(RedisProblem::new(
                    &field,
                    format!("line {n}: `sentinel monitor` is written by vd and cannot be set here"),
                    format!(
                        "remove the line. vd writes the one monitor line, `sentinel monitor \
                         {MASTER_NAME} <master> 6379 <quorum>`, for the redis named in `sentinel \
                         {{ monitor = \"scope/name\" }}`; a second one for {MASTER_NAME} makes \
                         sentinel exit with \"Duplicated master name\". To watch another redis, \
                         declare another sentinel sibling"
                    ),
                ));
            } else if let Some(why) = sentinel_managed(&format!("sentinel {option}"), &args) {
                problems.push(RedisProblem::new(
                    &field,
                    format!(
                        "line {n}: `sentinel {}` is managed by vd and cannot be set here",
                        args[1]
                    ),
                    why,
                ));
            } else if PER_MASTER_OPTIONS.contains(&option.as_str())
                && args.get(2).map(String::as_str) != Some(MASTER_NAME)
            {
                let names = match args.get(2) {
                    Some(m) => format!("names the master `{m}`"),
                    None => "names no master".to_string(),
                };
                problems.push(RedisProblem::new(
                    &field,
                    format!(
                        "line {n}: `sentinel {}` {names}; vd's sentinels monitor only \
                         `{MASTER_NAME}`",
                        args[1]
                    ),
                    format!(
                        "write it as `sentinel {option} {MASTER_NAME} ...`: the master name is \
                         fixed, and sentinel refuses to start on a setting for a master it does \
                         not monitor"
                    ),
                ));
            }
        }
    }
    problems
}

/// Why a directive in a sentinel override file is refused: the entrypoint sets it (it would
/// silently win over the entrypoint's value, included last) or sentinel records it itself.
/// `directive` is lowercase, `sentinel <option>` for sentinel options.
fn sentinel_managed(directive: &str, args: &[String]) -> Option<String> {
    let why = match directive {
        "sentinel auth-pass" | "sentinel auth-user" => {
            "sentinels authenticate to the monitored redis as `default` with its REDIS_PASSWORD, \
             which the entrypoint writes at boot from that redis's bucket; this line would \
             override it. Change the password on the monitored redis instead"
        }
        "requirepass" | "sentinel sentinel-pass" | "sentinel sentinel-user" => {
            "the sentinels' password is REDIS_SENTINEL_PASSWORD from this resource's config \
             bucket: every sentinel requires it of its clients and sends it to the others, and \
             vd and linked apps use it; this line would lock them out. Rotate it with `vd \
             redis:new-password SCOPE/NAME` on this resource instead"
        }
        "sentinel announce-ip" | "sentinel announce-port" | "bind" => {
            "each sentinel binds its own address and announces its own name \
             <name>-<ord>.<scope>.voodu:26379 to the others; remove the line"
        }
        "sentinel resolve-hostnames" | "sentinel announce-hostnames" => {
            "vd addresses redis and sentinel pods by name, which survives a restart on a new \
             address; both are on for that. Remove the line"
        }
        "sentinel myid"
        | "sentinel current-epoch"
        | "sentinel config-epoch"
        | "sentinel leader-epoch"
        | "sentinel known-replica"
        | "sentinel known-slave"
        | "sentinel known-sentinel" => {
            "this is state each sentinel records itself in its own /data/sentinel.conf (an id \
             in a shared file would give every sentinel the same one); remove the line, and use \
             `SENTINEL RESET voodu-master` to make a sentinel forget stale peers"
        }
        "port" if args.get(1).map(String::as_str) != Some(&SENTINEL_PORT.to_string()) => {
            "probes, links and the other sentinels use port 26379 inside the pod; publish a \
             different host port with `ports` instead"
        }
        _ => return None,
    };
    Some(why.to_string())
}

/// Why a conf.d directive is refused: the entrypoint sets it per pod after the includes (so the
/// operator's value would be silently overridden) or the macro relies on it.
fn managed(directive: &str, args: &[String]) -> Option<String> {
    let why = match directive {
        "requirepass" | "masterauth" => {
            "the password is REDIS_PASSWORD from the resource's config bucket; the entrypoint \
             sets requirepass and masterauth from it at boot, overriding this line. Change the \
             password in the bucket instead"
        }
        "masteruser" => {
            "replicas authenticate to the master as `default` with REDIS_PASSWORD; another user \
             breaks replication. Remove the line"
        }
        "replicaof" | "slaveof" => {
            "the entrypoint makes every pod but REDIS_MASTER_ORDINAL a replica of that pod; move \
             the master with `vd redis:failover` instead"
        }
        "replica-announce-ip" | "slave-announce-ip" => {
            "each pod announces its own name <name>-<ord>.<scope>.voodu; remove the line"
        }
        "bind" => {
            "each pod binds its own address; to reach redis from outside, publish the port with \
             `ports = [\"0.0.0.0:6379\"]`"
        }
        "cluster-enabled" => {
            "cluster mode is the block's `cluster {}`: with it vd turns cluster mode on, forms \
             the cluster and manages its slots; remove the line and write `cluster {}` in the \
             redis block"
        }
        "cluster-config-file"
        | "cluster-announce-ip"
        | "cluster-announce-port"
        | "cluster-announce-bus-port"
        | "cluster-announce-hostname"
        | "cluster-port" => {
            "in cluster mode the entrypoint keeps nodes.conf on the pod's data claim and each \
             node announces its own address and name; vd's controller relies on both. Remove \
             the line"
        }
        "port" if args.get(1).map(String::as_str) != Some(&REDIS_PORT.to_string()) => {
            "probes, links and replication use port 6379 inside the pod; publish a different \
             host port with `ports` instead"
        }
        _ => return None,
    };
    Some(why.to_string())
}

/// Lines as Redis' config loader sees them: `(line number, trimmed line)`, blank lines and
/// comments skipped.
fn config_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    content
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_matches([' ', '\t', '\r', '\n'])))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// Redis' `sdssplitargs`: whitespace-separated arguments, `"..."` with `\n \r \t \b \a \xHH`
/// and `\<c>` escapes, `'...'` with `\'`. `None` on unbalanced quotes, or a closing quote not
/// followed by a space, as Redis.
fn split_args(line: &str) -> Option<Vec<String>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            if dq {
                match b.get(i) {
                    None => return None,
                    Some(b'\\')
                        if i + 3 < b.len()
                            && b[i + 1] == b'x'
                            && is_hex(b[i + 2])
                            && is_hex(b[i + 3]) =>
                    {
                        cur.push(hex(b[i + 2]) * 16 + hex(b[i + 3]));
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        i += 1;
                        cur.push(match b[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            c => c,
                        });
                    }
                    Some(b'"') => {
                        if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => cur.push(c),
                }
            } else if sq {
                match b.get(i) {
                    None => return None,
                    Some(b'\\') if b.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if b.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => cur.push(c),
                }
            } else {
                match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(&c) => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(String::from_utf8_lossy(&cur).into_owned());
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    (c as char).to_digit(16).unwrap_or(0) as u8
}

/// When `spec` is an enabled sentinel sibling: how to name the redis it monitors in a message
/// (`otherwise` when it names none). Data-only blocks are refused in siblings.
pub(crate) fn sibling_target(spec: &RedisSpec, otherwise: &str) -> Option<String> {
    let s = spec.sentinel.as_ref().filter(|s| s.enabled)?;
    Some(
        s.monitor
            .as_deref()
            .map_or(otherwise.to_string(), |m| format!("`{m}`")),
    )
}

/// Checks a `failover { automatic down_after }` block on its own; the manifest parser
/// and the server both run it, so API clients get the same answers as manifests. Rejected:
/// - the block in a sentinel sibling: it runs sentinels, not data, so there is nothing of its
///   own to fail over, and the redis it monitors is the sentinels' to fail over;
/// - `automatic = true` with fewer than 2 pods: there is no replica to promote;
/// - `down_after` outside [`MIN_DOWN_AFTER_MS`]..=[`MAX_DOWN_AFTER_MS`].
///
/// A sentinel sibling monitoring a redis with automatic failover needs the other resources and
/// is the server's check (see [`two_failure_detectors`]).
pub fn validate_failover(spec: &RedisSpec) -> Vec<RedisProblem> {
    let Some(f) = &spec.failover else {
        return Vec::new();
    };
    if let Some(target) = sibling_target(spec, "the data redis") {
        // The other problems are moot: the block goes away.
        return vec![RedisProblem::new(
            "failover",
            "`failover` is not allowed in a sentinel sibling",
            format!(
                "a sentinel sibling runs sentinels, not data: it has no master of its own to fail \
                 over, and the redis it monitors is failed over by the sentinels. Remove the \
                 `failover` block; to have vd's controller fail {target} over instead of the \
                 sentinels, delete this sentinel sibling and write `failover {{ automatic = true \
                 }}` in {target}'s block"
            ),
        )];
    }
    let mut problems = Vec::new();
    let replicas = spec.replicas.unwrap_or(1);
    // A cluster's pods come from its shape, and `validate_cluster` judges `replicas` there.
    if f.automatic && replicas < 2 && spec.cluster.is_none() {
        let (field, found) = match spec.replicas {
            Some(n) => ("replicas", format!("replicas = {n}")),
            None => (
                "failover.automatic",
                "no replicas (the default is 1)".to_string(),
            ),
        };
        let pods = if replicas == 1 { "one pod" } else { "no pods" };
        problems.push(RedisProblem::new(
            field,
            format!("`failover {{ automatic = true }}` needs replicas >= 2, found {found}"),
            format!(
                "automatic failover promotes a replica when the master fails, and with {pods} \
                 there is no replica to promote: set replicas = 3 (a master and two replicas; 2 \
                 is the minimum), or write automatic = false (or remove the `failover` block) to \
                 keep the master where it is"
            ),
        ));
    }
    if f.down_after_ms < MIN_DOWN_AFTER_MS {
        problems.push(RedisProblem::new(
            "failover.down_after",
            format!(
                "`failover.down_after` must be at least {}, found {}",
                human_ms(MIN_DOWN_AFTER_MS),
                human_ms(f.down_after_ms)
            ),
            "below 100ms a single slow reply (a fork for BGSAVE, a long command) would count as \
             a dead master and cause a spurious failover; write e.g. down_after = \"1s\" (the \
             default) or \"500ms\"",
        ));
    } else if f.down_after_ms > MAX_DOWN_AFTER_MS {
        problems.push(RedisProblem::new(
            "failover.down_after",
            format!(
                "`failover.down_after` must be at most {}, found {}",
                human_ms(MAX_DOWN_AFTER_MS),
                human_ms(f.down_after_ms)
            ),
            "a hung master would keep writes down this long before vd replaced it; write e.g. \
             down_after = \"30s\", or automatic = false and fail over by hand with `vd \
             redis:failover`",
        ));
    }
    problems
}

/// The most proxy pods a `proxy { replicas }` block may ask for. Every proxy holds its own
/// connections to the master and follows it on its own, so a few already survive the loss of
/// one; beyond 16 the extra pods only add connections to the master.
pub const MAX_PROXY_REPLICAS: u32 = 16;

/// Checks a `proxy { enabled replicas }` block on its own; the manifest parser and
/// the server both run it, so API clients get the same answers as manifests. Rejected:
/// - the block in a sentinel sibling: it runs sentinels, not data, so it has no master to
///   proxy; the block belongs in the data redis the sibling monitors;
/// - `replicas` outside 1..=[`MAX_PROXY_REPLICAS`], whether or not the block is enabled (the
///   value is wrong either way).
///
/// A proxy in front of a single-pod redis is fine: it still gives clients one stable address.
pub fn validate_proxy(spec: &RedisSpec) -> Vec<RedisProblem> {
    let Some(p) = &spec.proxy else {
        return Vec::new();
    };
    if let Some(s) = spec.sentinel.as_ref().filter(|s| s.enabled) {
        let target = s
            .monitor
            .as_deref()
            .map_or("this sibling monitors".to_string(), |m| format!("`{m}`"));
        // The other problems are moot: the block goes away.
        return vec![RedisProblem::new(
            "proxy",
            "`proxy` is not allowed in a sentinel sibling",
            format!(
                "a sentinel sibling has no master to proxy; put `proxy {{}}` in the data redis \
                 {target} and remove it here"
            ),
        )];
    }
    let mut problems = Vec::new();
    if p.replicas == 0 {
        problems.push(RedisProblem::new(
            "proxy.replicas",
            "`proxy.replicas` must be at least 1, found 0",
            format!(
                "a proxy block runs at least one proxy pod: write replicas = 1 (the default) or \
                 more, up to {MAX_PROXY_REPLICAS}; to run no proxy, write enabled = false or \
                 remove the `proxy` block"
            ),
        ));
    } else if p.replicas > MAX_PROXY_REPLICAS {
        problems.push(RedisProblem::new(
            "proxy.replicas",
            format!(
                "`proxy.replicas` must be at most {MAX_PROXY_REPLICAS}, found {}",
                p.replicas
            ),
            format!(
                "each proxy pod follows the master on its own, so a few already survive losing \
                 one, and more only add connections to the master: write replicas = 2 (or any \
                 number from 1 to {MAX_PROXY_REPLICAS})"
            ),
        ));
    }
    problems
}

/// The problem of a data redis with automatic failover that a sentinel sibling monitors: two
/// failure detectors for one master. `field` is where the caller reports it (`failover` on the
/// data redis, `sentinel.monitor` on the sibling).
pub fn two_failure_detectors(
    field: &str,
    data: &ResourceRef,
    sentinel: &ResourceRef,
) -> RedisProblem {
    let d = format!("{}/{}", data.scope, data.name);
    let s = format!("{}/{}", sentinel.scope, sentinel.name);
    RedisProblem::new(
        field,
        format!(
            "{d} has `failover {{ automatic = true }}` and the sentinel sibling {s} monitors it: \
             both the sentinels and vd's controller would detect the same failure and each \
             promote a replica of its own choosing, leaving two masters"
        ),
        format!(
            "choose one failure detector: remove the `failover` block from {d} (or write \
             automatic = false) to let the sentinels decide, or delete the sentinel sibling {s} \
             (drop it from the manifest, or `vd delete redis/{s}` once applied) to let vd's \
             controller decide"
        ),
    )
}

/// `1500` -> `1500ms`, `2000` -> `2s`, `120000` -> `2m`: durations as a manifest writes them.
fn human_ms(ms: u64) -> String {
    if ms > 0 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms > 0 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Refuses a scale-down that would remove the current master
/// (`REDIS_MASTER_ORDINAL >= desired_replicas`). vd never fails over as part of a scale-down:
/// that would bundle the loss of not-yet-replicated writes into a scale operation.
pub fn check_scale(desired_replicas: u32, master_ordinal: u32) -> Result<(), RedisProblem> {
    if master_ordinal < desired_replicas {
        return Ok(());
    }
    let help = if desired_replicas == 0 {
        "a redis keeps at least one pod, the master; set replicas to 1 or more".to_string()
    } else {
        format!(
            "move the master to a pod that stays first with `vd redis:failover` (to an ordinal \
             below {desired_replicas}), then apply again"
        )
    };
    Err(RedisProblem::new(
        "replicas",
        format!(
            "replicas = {desired_replicas} would remove pod {master_ordinal}, the current master \
             (REDIS_MASTER_ORDINAL = {master_ordinal})"
        ),
        help,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VolumeMount;

    fn spec(targets: &[&str]) -> RedisSpec {
        RedisSpec {
            volumes: targets
                .iter()
                .map(|t| VolumeMount {
                    source: "${asset.data.cfg.f}".into(),
                    target: t.to_string(),
                    read_only: true,
                })
                .collect(),
            ..RedisSpec::default()
        }
    }

    const USERS: &str = "/etc/redis/conf.d/users.conf";

    #[test]
    fn inline_users_are_fine() {
        let content = "# app users\n\nuser appwriter on >app-secret ~app:* +@write +@read\n\
                       USER appreader on >read-secret ~app:* +@read\nmaxmemory 100mb\nport 6379\n";
        assert_eq!(validate(&spec(&[USERS]), &[(0, content)]), []);
    }

    #[test]
    fn aclfile_is_rejected_with_both_failure_modes() {
        let p = validate(
            &spec(&["/data/x", USERS]),
            &[(1, "maxmemory 1gb\n  ACLFILE \"/etc/redis/users.acl\"\r\n")],
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "volumes[1]");
        assert_eq!(
            p[0].message,
            "`/etc/redis/conf.d/users.conf` line 2: the `aclfile` directive is not allowed"
        );
        assert!(p[0].help.contains("user NAME on"), "{}", p[0].help);
        assert!(p[0].help.contains("on nopass ~* +@all"));
        assert!(p[0].help.contains("WRONGPASS"));
    }

    #[test]
    fn user_default_is_rejected_however_written() {
        for line in [
            "user default on nopass ~* +@all",
            "User default >other",
            "\tuser \"default\" on >x",
            "user 'default' off",
        ] {
            let p = validate(&spec(&[USERS]), &[(0, line)]);
            assert_eq!(p.len(), 1, "{line}: {p:?}");
            assert_eq!(p[0].field, "volumes[0]");
            assert_eq!(
                p[0].message,
                "`/etc/redis/conf.d/users.conf` line 1: declares `user default`"
            );
            assert!(p[0].help.contains("REDIS_PASSWORD"));
        }
        // Comments and other users named like it are not the default user.
        let ok = "# user default on nopass\nuser defaults on >x ~* +@all\n";
        assert_eq!(validate(&spec(&[USERS]), &[(0, ok)]), []);
    }

    #[test]
    fn replaced_base_conf_is_checked_only_while_the_wrapper_runs_it() {
        let s = spec(&["/etc/redis/redis.conf"]);
        // Stock settings the entrypoint overrides are fine in a full replacement.
        let content = "bind 127.0.0.1\nport 6379\naclfile /x.acl\n";
        let p = validate(&s, &[(0, content)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("line 3: the `aclfile` directive"));
        // Bypassing the macro's redis.conf: with its own command the operator owns it all.
        let bypass = RedisSpec {
            command: Some(vec!["redis-server".into(), "/etc/redis/redis.conf".into()]),
            ..s
        };
        assert_eq!(validate(&bypass, &[(0, content)]), []);
        // Files elsewhere are not configs.
        assert_eq!(validate(&spec(&["/srv/acl"]), &[(0, "aclfile x")]), []);
    }

    #[test]
    fn managed_settings_are_rejected_in_conf_d() {
        let content = "requirepass x\nmasterauth x\nbind 0.0.0.0\nslaveof h 1\nport 6380\n\
                       replica-announce-ip h\nmasteruser u\n";
        let p = validate(&spec(&["/etc/redis/conf.d/x.conf"]), &[(0, content)]);
        let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            msgs,
            (1..=7)
                .zip(["requirepass", "masterauth", "bind", "slaveof", "port", "replica-announce-ip", "masteruser"])
                .map(|(n, d)| format!(
                    "`/etc/redis/conf.d/x.conf` line {n}: `{d}` is managed by vd and cannot be set here"
                ))
                .collect::<Vec<_>>()
        );
        assert!(p[3].help.contains("vd redis:failover"));
        assert!(p[2].help.contains("ports"));
    }

    #[test]
    fn unbalanced_quotes_are_reported() {
        let p = validate(&spec(&[USERS]), &[(0, "user app on \">x\n")]);
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].message,
            "`/etc/redis/conf.d/users.conf` line 1: unbalanced quotes"
        );
    }

    #[test]
    fn conf_d_names_the_glob_misses_and_duplicate_destinations() {
        let p = validate(
            &spec(&[
                "/etc/redis/conf.d/users.acl",
                "/etc/redis/conf.d/sub/x.conf",
                "/etc/redis/conf.d/.hidden.conf",
                "/etc/redis/conf.d//ok.conf",
                "/etc/redis/conf.d/ok.conf",
            ]),
            &[],
        );
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["volumes[0]", "volumes[1]", "volumes[2]", "volumes[4]"],
            "{p:?}"
        );
        assert_eq!(
            p[0].message,
            "`/etc/redis/conf.d/users.acl` is never read: redis includes only /etc/redis/conf.d/*.conf"
        );
        assert_eq!(
            p[3].message,
            "`/etc/redis/conf.d/ok.conf` is already the destination of volumes[3]"
        );
    }

    #[test]
    fn mounted_file_index_out_of_range_is_ignored() {
        assert_eq!(validate(&spec(&[]), &[(3, "aclfile x")]), []);
    }

    #[test]
    fn split_args_follows_redis() {
        let s = |l: &str| split_args(l);
        assert_eq!(s("  a  b\t c ").unwrap(), ["a", "b", "c"]);
        assert_eq!(s(r#"a "b c" 'd e'"#).unwrap(), ["a", "b c", "d e"]);
        assert_eq!(s(r#""\x41\n\"\\""#).unwrap(), ["A\n\"\\"]);
        assert_eq!(s(r"'it\'s'").unwrap(), ["it's"]);
        assert_eq!(s(r#"ab"c d""#).unwrap(), ["abc d"]);
        assert!(s(r#""open"#).is_none());
        assert!(s(r#""a"b"#).is_none());
        assert!(s("'a").is_none());
        assert!(s("").unwrap().is_empty());
    }

    #[test]
    fn sentinel_override_targets() {
        for t in [
            "/etc/sentinel/conf.d/overrides.conf",
            "/etc//sentinel/conf.d/x.conf/",
            "/etc/sentinel/conf.d/sub/x",
        ] {
            assert!(is_sentinel_override_target(t), "{t}");
        }
        for t in [
            "/etc/sentinel/conf.d",
            "/etc/sentinel/conf.d/",
            "/etc/sentinel/conf.dx/a.conf",
            "/etc/redis/conf.d/a.conf",
            "/data/sentinel.conf",
        ] {
            assert!(!is_sentinel_override_target(t), "{t}");
        }
    }

    #[test]
    fn documented_sentinel_tuning_is_fine() {
        let content = "# tuning\n\nsentinel down-after-milliseconds voodu-master 2000\n\
                       sentinel failover-timeout voodu-master 30000\n\
                       SENTINEL parallel-syncs \"voodu-master\" 1\n\
                       sentinel deny-scripts-reconfig yes\n\
                       sentinel notification-script voodu-master /usr/local/bin/notify.sh\n\
                       port 26379\nloglevel verbose\n";
        assert_eq!(validate_sentinel_overrides(&[(0, content)]), []);
        assert_eq!(validate_sentinel_overrides(&[]), []);
    }

    #[test]
    fn sentinel_monitor_is_rejected() {
        let p = validate_sentinel_overrides(&[(
            2,
            "sentinel down-after-milliseconds voodu-master 2000\n\
             sentinel monitor voodu-master redis-0.clowk-lp.voodu 6379 2\n\
             Sentinel MONITOR other 10.0.0.1 6379 1\n",
        )]);
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "volumes[2]",
                    "line 2: `sentinel monitor` is written by vd and cannot be set here"
                ),
                (
                    "volumes[2]",
                    "line 3: `sentinel monitor` is written by vd and cannot be set here"
                ),
            ]
        );
        assert!(
            p[0].help.contains("Duplicated master name"),
            "{}",
            p[0].help
        );
        assert!(p[0].help.contains("another sentinel sibling"));
    }

    #[test]
    fn per_master_options_must_name_voodu_master() {
        let content = "sentinel down-after-milliseconds mymaster 2000\n\
                       sentinel failover-timeout Voodu-Master 30000\n\
                       sentinel parallel-syncs\n\
                       sentinel rename-command voodu-master CONFIG CFG\n\
                       sentinel master-reboot-down-after-period other 0\n";
        let p = validate_sentinel_overrides(&[(0, content)]);
        let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "line 1: `sentinel down-after-milliseconds` names the master `mymaster`; vd's \
                 sentinels monitor only `voodu-master`",
                "line 2: `sentinel failover-timeout` names the master `Voodu-Master`; vd's \
                 sentinels monitor only `voodu-master`",
                "line 3: `sentinel parallel-syncs` names no master; vd's sentinels monitor only \
                 `voodu-master`",
                "line 5: `sentinel master-reboot-down-after-period` names the master `other`; \
                 vd's sentinels monitor only `voodu-master`",
            ]
        );
        assert!(p.iter().all(|p| p.field == "volumes[0]"));
        assert!(p[0]
            .help
            .contains("sentinel down-after-milliseconds voodu-master ..."));
    }

    #[test]
    fn what_the_sentinel_entrypoint_manages_is_rejected() {
        let content = format!(
            "sentinel auth-pass voodu-master x\nsentinel auth-user voodu-master u\n\
             sentinel announce-ip 10.0.0.1\nsentinel announce-port 1\n\
             sentinel resolve-hostnames no\nsentinel announce-hostnames no\n\
             sentinel myid {}\nsentinel current-epoch 1\n\
             sentinel config-epoch voodu-master 1\nsentinel leader-epoch voodu-master 1\n\
             sentinel known-replica voodu-master h 6379\nsentinel known-slave voodu-master h 1\n\
             sentinel known-sentinel voodu-master h 26379 id\nbind 0.0.0.0\nport 26380\n\
             requirepass x\nsentinel sentinel-pass x\nsentinel sentinel-user u\n",
            "a".repeat(40)
        );
        let p = validate_sentinel_overrides(&[(1, &content)]);
        let msgs: Vec<String> = p.iter().map(|p| p.message.clone()).collect();
        let want: Vec<String> = [
            "sentinel auth-pass",
            "sentinel auth-user",
            "sentinel announce-ip",
            "sentinel announce-port",
            "sentinel resolve-hostnames",
            "sentinel announce-hostnames",
            "sentinel myid",
            "sentinel current-epoch",
            "sentinel config-epoch",
            "sentinel leader-epoch",
            "sentinel known-replica",
            "sentinel known-slave",
            "sentinel known-sentinel",
            "bind",
            "port",
            "requirepass",
            "sentinel sentinel-pass",
            "sentinel sentinel-user",
        ]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "line {}: `{d}` is managed by vd and cannot be set here",
                i + 1
            )
        })
        .collect();
        assert_eq!(msgs, want);
        assert!(p[0].help.contains("REDIS_PASSWORD"));
        assert!(p[6].help.contains("same one"));
        assert!(p[14].help.contains("ports"));
        assert!(p[15].help.contains("REDIS_SENTINEL_PASSWORD"));
    }

    #[test]
    fn sentinel_unbalanced_quotes_are_reported() {
        let p = validate_sentinel_overrides(&[(0, "sentinel failover-timeout \"voodu-master 1\n")]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].message, "line 1: unbalanced quotes");
        assert!(p[0].help.contains("sentinel refuses to start"));
    }

    #[test]
    fn scale_down_keeps_the_master() {
        assert_eq!(check_scale(3, 0), Ok(()));
        assert_eq!(check_scale(3, 2), Ok(()));
        assert_eq!(check_scale(1, 0), Ok(()));
        let e = check_scale(2, 2).unwrap_err();
        assert_eq!(e.field, "replicas");
        assert_eq!(
            e.message,
            "replicas = 2 would remove pod 2, the current master (REDIS_MASTER_ORDINAL = 2)"
        );
        assert!(e.help.contains("vd redis:failover"), "{}", e.help);
        assert!(e.help.contains("below 2"));
        let z = check_scale(0, 0).unwrap_err();
        assert!(z.help.contains("1 or more"));
        assert!(z
            .to_string()
            .starts_with("replicas: replicas = 0 would remove pod 0"));
    }

    fn failover(replicas: Option<u32>, automatic: bool, down_after_ms: u64) -> RedisSpec {
        RedisSpec {
            replicas,
            failover: Some(crate::FailoverSpec {
                automatic,
                down_after_ms,
            }),
            ..RedisSpec::default()
        }
    }

    #[test]
    fn failover_defaults_and_valid_blocks() {
        let f = crate::FailoverSpec::default();
        assert!(f.automatic);
        assert_eq!(f.down_after_ms, 1000);
        assert_eq!(validate_failover(&RedisSpec::default()), []);
        assert_eq!(validate_failover(&failover(Some(3), true, 1000)), []);
        assert_eq!(validate_failover(&failover(Some(2), true, 100)), []);
        assert_eq!(validate_failover(&failover(Some(2), true, 600_000)), []);
        // Off: recorded, nothing to promote, so one pod is fine.
        assert_eq!(validate_failover(&failover(None, false, 1000)), []);
        assert_eq!(validate_failover(&failover(Some(1), false, 1000)), []);
    }

    #[test]
    fn automatic_failover_needs_two_pods() {
        for (replicas, field, found, pods) in [
            (Some(1), "replicas", "replicas = 1", "one pod"),
            (Some(0), "replicas", "replicas = 0", "no pods"),
            (
                None,
                "failover.automatic",
                "no replicas (the default is 1)",
                "one pod",
            ),
        ] {
            let p = validate_failover(&failover(replicas, true, 1000));
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].field, field);
            assert_eq!(
                p[0].message,
                format!("`failover {{ automatic = true }}` needs replicas >= 2, found {found}")
            );
            assert!(
                p[0].help.contains(&format!(
                    "with {pods} there is no replica to promote: set replicas = 3"
                )),
                "{}",
                p[0].help
            );
            assert!(p[0].help.contains("automatic = false"));
        }
    }

    #[test]
    fn down_after_bounds() {
        for (ms, message) in [
            (0, "`failover.down_after` must be at least 100ms, found 0ms"),
            (
                99,
                "`failover.down_after` must be at least 100ms, found 99ms",
            ),
            (
                600_001,
                "`failover.down_after` must be at most 10m, found 600001ms",
            ),
            (
                660_000,
                "`failover.down_after` must be at most 10m, found 11m",
            ),
            (
                3_600_000,
                "`failover.down_after` must be at most 10m, found 60m",
            ),
        ] {
            let p = validate_failover(&failover(Some(3), true, ms));
            assert_eq!(p.len(), 1, "{ms}: {p:?}");
            assert_eq!(p[0].field, "failover.down_after");
            assert_eq!(p[0].message, message);
            assert!(p[0].help.contains("down_after = \""), "{}", p[0].help);
        }
        // Checked whether or not the controller acts on it: the value is wrong either way.
        let p = validate_failover(&failover(Some(1), false, 10));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "failover.down_after");
        // Both problems of one block are reported.
        assert_eq!(validate_failover(&failover(Some(1), true, 10)).len(), 2);
        assert_eq!(human_ms(1500), "1500ms");
        assert_eq!(human_ms(2000), "2s");
        assert_eq!(human_ms(120_000), "2m");
    }

    #[test]
    fn failover_is_rejected_in_a_sentinel_sibling() {
        let mut spec = failover(Some(1), true, 10);
        spec.sentinel = Some(crate::SentinelSpec {
            enabled: true,
            monitor: Some("data/cache".into()),
        });
        let p = validate_failover(&spec);
        assert_eq!(p.len(), 1, "only the sibling problem: {p:?}");
        assert_eq!(p[0].field, "failover");
        assert_eq!(
            p[0].message,
            "`failover` is not allowed in a sentinel sibling"
        );
        assert!(
            p[0].help
                .starts_with("a sentinel sibling runs sentinels, not data"),
            "{}",
            p[0].help
        );
        assert!(p[0]
            .help
            .contains("fail `data/cache` over instead of the sentinels"));
        // `automatic = false` does not make it belong there.
        spec.failover = Some(crate::FailoverSpec {
            automatic: false,
            down_after_ms: 1000,
        });
        assert_eq!(validate_failover(&spec).len(), 1);
        // Sentinel mode off: a data redis, where the block belongs.
        spec.replicas = Some(3);
        if let Some(s) = spec.sentinel.as_mut() {
            s.enabled = false;
        }
        assert_eq!(validate_failover(&spec), []);
    }

    fn proxied(replicas: Option<u32>, enabled: bool, proxies: u32) -> RedisSpec {
        RedisSpec {
            replicas,
            proxy: Some(crate::ProxySpec {
                enabled,
                replicas: proxies,
            }),
            ..RedisSpec::default()
        }
    }

    #[test]
    fn proxy_defaults_and_valid_blocks() {
        let p = crate::ProxySpec::default();
        assert!(p.enabled);
        assert_eq!(p.replicas, 1);
        assert_eq!(validate_proxy(&RedisSpec::default()), []);
        assert_eq!(validate_proxy(&proxied(Some(3), true, 1)), []);
        assert_eq!(validate_proxy(&proxied(Some(3), true, 2)), []);
        assert_eq!(
            validate_proxy(&proxied(Some(3), true, MAX_PROXY_REPLICAS)),
            []
        );
        assert_eq!(validate_proxy(&proxied(Some(3), false, 1)), []);
        // One data pod: still a stable address for clients, so no rule.
        assert_eq!(validate_proxy(&proxied(Some(1), true, 1)), []);
        assert_eq!(validate_proxy(&proxied(None, true, 1)), []);
        // Sentinel mode off: a data redis, where the block belongs.
        let mut spec = proxied(Some(3), true, 2);
        spec.sentinel = Some(crate::SentinelSpec {
            enabled: false,
            monitor: None,
        });
        assert_eq!(validate_proxy(&spec), []);
    }

    #[test]
    fn proxy_replicas_bounds() {
        let p = validate_proxy(&proxied(Some(3), true, 0));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "proxy.replicas");
        assert_eq!(p[0].message, "`proxy.replicas` must be at least 1, found 0");
        assert_eq!(
            p[0].help,
            "a proxy block runs at least one proxy pod: write replicas = 1 (the default) or \
             more, up to 16; to run no proxy, write enabled = false or remove the `proxy` block"
        );
        for n in [17, 100, u32::MAX] {
            let p = validate_proxy(&proxied(Some(3), true, n));
            assert_eq!(p.len(), 1, "{n}: {p:?}");
            assert_eq!(p[0].field, "proxy.replicas");
            assert_eq!(
                p[0].message,
                format!("`proxy.replicas` must be at most 16, found {n}")
            );
            assert_eq!(
                p[0].help,
                "each proxy pod follows the master on its own, so a few already survive losing \
                 one, and more only add connections to the master: write replicas = 2 (or any \
                 number from 1 to 16)"
            );
        }
        // Checked whether or not the proxy runs: the value is wrong either way.
        assert_eq!(validate_proxy(&proxied(Some(3), false, 0)).len(), 1);
        assert_eq!(validate_proxy(&proxied(Some(3), false, 17)).len(), 1);
    }

    #[test]
    fn proxy_is_rejected_in_a_sentinel_sibling() {
        let mut spec = proxied(Some(3), true, 0);
        spec.sentinel = Some(crate::SentinelSpec {
            enabled: true,
            monitor: Some("data/cache".into()),
        });
        let p = validate_proxy(&spec);
        assert_eq!(p.len(), 1, "only the sibling problem: {p:?}");
        assert_eq!(p[0].field, "proxy");
        assert_eq!(p[0].message, "`proxy` is not allowed in a sentinel sibling");
        assert_eq!(
            p[0].help,
            "a sentinel sibling has no master to proxy; put `proxy {}` in the data redis \
             `data/cache` and remove it here"
        );
        // `enabled = false` does not make it belong there.
        spec.proxy = Some(crate::ProxySpec {
            enabled: false,
            replicas: 1,
        });
        assert_eq!(validate_proxy(&spec).len(), 1);
        // No monitor (its own error): the help still says where the block goes.
        if let Some(s) = spec.sentinel.as_mut() {
            s.monitor = None;
        }
        let p = validate_proxy(&spec);
        assert_eq!(
            p[0].help,
            "a sentinel sibling has no master to proxy; put `proxy {}` in the data redis this \
             sibling monitors and remove it here"
        );
    }

    #[test]
    fn two_failure_detectors_names_both_and_the_choice() {
        let data = ResourceRef::new(crate::Kind::Redis, "data", "cache");
        let ha = ResourceRef::new(crate::Kind::Redis, "data", "cache-ha");
        let p = two_failure_detectors("failover", &data, &ha);
        assert_eq!(p.field, "failover");
        assert_eq!(
            p.message,
            "data/cache has `failover { automatic = true }` and the sentinel sibling \
             data/cache-ha monitors it: both the sentinels and vd's controller would detect the \
             same failure and each promote a replica of its own choosing, leaving two masters"
        );
        assert!(p.help.starts_with(
            "choose one failure detector: remove the `failover` block from data/cache"
        ));
        assert!(p.help.contains("delete the sentinel sibling data/cache-ha"));
        assert!(p.help.contains("vd delete redis/data/cache-ha"));
    }
}
