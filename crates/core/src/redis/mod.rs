//! The redis macro: `redis "scope" "name" {}` becomes a statefulset plus two generated files (a
//! base `redis.conf` and a POSIX-sh entrypoint), with the macro's defaults for what the operator
//! left unset and its merge rules for what they wrote; plus the macro's validation, scale guard
//! and link env. A sentinel sibling
//! (`sentinel { monitor = "scope/name" }`) becomes a statefulset of sentinels plus one generated
//! file, the sentinel entrypoint. Pure: no IO.
//!
//! The generated files are served by the server as a virtual asset registered under
//! `(scope, generated_asset_name(name))` with the keys [`CONF_KEY`] and [`ENTRYPOINT_KEY`] (data
//! redis) or [`SENTINEL_ENTRYPOINT_KEY`] (sentinel); the statefulset mounts them through ordinary
//! `${asset.<scope>.<name>@redis.<key>}` templates.

pub mod backup;
pub mod cluster;
mod conf;
mod entrypoint;
mod expand;
pub mod failover;
mod link;
pub mod probe;
pub mod proxy;
mod sentinel;
mod sentinel_entrypoint;
pub mod switchover;
pub mod tls;
pub mod topology;
mod validate;

pub use backup::validate_backup;
pub use conf::redis_conf;
pub use entrypoint::entrypoint_script;
pub use expand::{
    default_probes, expand, fast_probes, fast_tls_probes, readiness_command, tls_ca_path,
    Expansion, CLUSTER_ENV,
};
pub use link::{
    cluster_link_env, format_consumers, link_env, parse_consumers, proxy_link_env, sentinel_hosts,
    sentinel_link_env, sentinel_url, with_tls, LinkMode, CA_CERT_VAR, LINK_VARS,
};
pub use sentinel::{default_sentinel_probes, expand_sentinel, sentinel_readiness_command};
pub use sentinel_entrypoint::sentinel_entrypoint_script;
pub use validate::{
    check_scale, is_sentinel_override_target, two_failure_detectors, validate, validate_failover,
    validate_proxy, validate_sentinel_overrides, RedisProblem, MAX_PROXY_REPLICAS,
};

/// The image when the block does not name one.
pub const DEFAULT_IMAGE: &str = "redis:7-alpine";
/// Where the entrypoint wrapper is mounted inside the pod.
pub const ENTRYPOINT_PATH: &str = "/usr/local/bin/voodu-redis-entrypoint";
/// Where the macro's base `redis.conf` is mounted inside the pod.
pub const CONF_PATH: &str = "/etc/redis/redis.conf";
/// Operator overrides: every `*.conf` mounted here is included after the base config.
pub const CONF_D: &str = "/etc/redis/conf.d";
/// The sentinel master name. Fixed, not configurable: a sentinel sibling watches exactly one
/// data redis, so one name serves every sibling, and linked apps and overrides can rely on it.
pub const MASTER_NAME: &str = "voodu-master";
/// The port every redis pod listens on.
pub const REDIS_PORT: u16 = 6379;
/// Where the entrypoint writes the per-pod runtime config unless `VOODU_REDIS_RUN_DIR` is set.
pub const RUN_DIR: &str = "/run/voodu-redis";
/// Key of the generated base config in [`Expansion::files`]. No dot: the template parser splits
/// `${asset.S.N.K}` on `.`, so `redis.conf` could not be referenced as a key.
pub const CONF_KEY: &str = "redis-conf";
/// Key of the generated entrypoint in [`Expansion::files`].
pub const ENTRYPOINT_KEY: &str = "entrypoint";

/// Where a TLS redis pod's certificate, key and CA are mounted (a directory, so a renewed
/// certificate written beside the old one and renamed over it is seen inside the pod).
pub const TLS_DIR: &str = "/etc/redis/tls";
/// Set to `yes` in the pods of a TLS redis: the entrypoint then listens on TLS only.
pub const TLS_ENV: &str = "VOODU_REDIS_TLS";

/// The port every sentinel listens on (fixed, not configurable).
pub const SENTINEL_PORT: u16 = 26379;
/// Bucket key of a data redis's generated password (`requirepass` and `masterauth` of its
/// pods, the password in every link URL).
pub const PASSWORD_VAR: &str = "REDIS_PASSWORD";
/// Bucket key of a sentinel sibling's generated password, in the sibling's own bucket: every
/// client of its sentinels authenticates with it (as `default`), and the sentinels with each
/// other. Distinct from the monitored redis's password, so a client that may ask the sentinels
/// where the master is need not be able to write to the master, and each rotates alone.
pub const SENTINEL_PASSWORD_VAR: &str = "REDIS_SENTINEL_PASSWORD";
/// Operator sentinel overrides: every `*.conf` mounted here is included last by the sentinel
/// config, so its settings win (custom sentinel tuning).
pub const SENTINEL_CONF_D: &str = "/etc/sentinel/conf.d";
/// Where the sentinel entrypoint wrapper is mounted inside a sentinel pod.
pub const SENTINEL_ENTRYPOINT_PATH: &str = "/usr/local/bin/voodu-sentinel-entrypoint";
/// Key of the generated sentinel entrypoint in [`Expansion::files`] (no dot, as [`CONF_KEY`]).
pub const SENTINEL_ENTRYPOINT_KEY: &str = "sentinel-entrypoint";
/// `sentinel down-after-milliseconds`: how long the master may be unreachable before a
/// sentinel considers it down: 5000 ms.
pub const DOWN_AFTER_MS: u64 = 5000;
/// `sentinel failover-timeout`: 30 s.
pub const FAILOVER_TIMEOUT_MS: u64 = 30000;
/// `sentinel parallel-syncs`: replicas resyncing with a new master at once; one, so the other
/// replicas keep serving reads meanwhile.
pub const PARALLEL_SYNCS: u32 = 1;
/// Sentinel pods when a sentinel sibling does not set `replicas`: the smallest quorum that
/// survives losing one sentinel.
pub const SENTINEL_DEFAULT_REPLICAS: u32 = 3;

/// `failover { down_after }` when not written: how long a running but unresponsive master may
/// fail the controller's checks before it is replaced (a crashed one is replaced at once). One
/// second, five times quicker than sentinel's 5000 ms default, because the controller also
/// hears of crashes from the runtime and so needs the timer only for hangs.
pub const DEFAULT_DOWN_AFTER_MS: u64 = 1000;
/// The shortest `down_after`: below it one slow reply (a fork for BGSAVE, a long command) would
/// already count as a dead master and cause a spurious failover.
pub const MIN_DOWN_AFTER_MS: u64 = 100;
/// The longest `down_after`: a hung master keeps writes down for this long, and beyond ten
/// minutes that is a manual failover (`vd redis:failover`) in all but name.
pub const MAX_DOWN_AFTER_MS: u64 = 600_000;

/// The sentinel quorum for `sentinels` sentinels: `floor(n/2) + 1`, the
/// number that must agree the master is down before a failover starts. Sentinel itself needs a
/// majority of all sentinels to elect the one that fails over, so a larger quorum would not
/// help and a smaller one would let a minority flag a master down that the rest still see.
pub fn quorum(sentinels: u32) -> u32 {
    sentinels / 2 + 1
}

/// `conf_quote` and `ordinal`, the shell functions both generated entrypoints share (spliced in
/// for `@SHELL_FUNCTIONS@`), so the data and sentinel scripts quote and parse values alike.
const SHELL_FUNCTIONS: &str = include_str!("shell_functions.sh");

/// The asset name the server registers the generated files under: `<name>@redis` (the `@` can
/// never collide with a user's asset label, which is lowercase letters, digits and `-`).
pub fn generated_asset_name(name: &str) -> String {
    format!("{name}@redis")
}

/// A password made of every character the entrypoints' quoting must survive.
#[cfg(test)]
pub(crate) const NASTY: &str = r#"p"a\ss w$rd'`x` *?[a] \\" \x41 #end"#;

/// How Redis's config parser (sdssplitargs) reads a double-quoted value.
#[cfg(test)]
pub(crate) fn redis_unquote(v: &str) -> String {
    let inner = v.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let e = chars.next().unwrap();
            assert!(e == '\\' || e == '"', "unexpected escape \\{e}");
            out.push(e);
        } else {
            assert_ne!(c, '"', "unescaped quote in {v}");
            out.push(c);
        }
    }
    out
}

/// Snapshot checks for the generated files. `VD_UPDATE_SNAPSHOTS=1 cargo test -p vd-core redis`
/// rewrites the snapshots after an intended change (review the diff).
#[cfg(test)]
pub(crate) fn check_snapshot(file: &str, expected: &str, actual: &str) {
    if std::env::var_os("VD_UPDATE_SNAPSHOTS").is_some() {
        let path = format!("{}/src/redis/snapshots/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, actual).unwrap();
        return;
    }
    assert!(
        expected == actual,
        "snapshots/{file} differs from the generated file; if intended, rerun with \
         VD_UPDATE_SNAPSHOTS=1 and review the diff\n--- generated:\n{actual}"
    );
}
