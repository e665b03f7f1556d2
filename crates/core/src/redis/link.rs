//! Link env (seed 000 "Linked app"): the variables `vd redis:link` writes into a consumer's
//! bucket, and the provider's `REDIS_LINKED_CONSUMERS` list.

use super::REDIS_PORT;
use crate::env::EnvMap;
use crate::naming::{alias_hostnames, pod_hostnames};
use crate::ResourceRef;

/// Which URLs a link writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// `REDIS_URL` for writes; plus `REDIS_READ_URL` when there are replicas to read from.
    #[default]
    Default,
    /// `--reads`: a single `REDIS_URL` on the round-robin alias, for read-only consumers.
    Reads,
}

/// Names [`link_env`] may write, so unlinking can remove them all.
pub const LINK_VARS: [&str; 2] = ["REDIS_URL", "REDIS_READ_URL"];

/// Exactly seed 000's variables:
/// - one pod (`replicas <= 1`): `REDIS_URL` on the shared alias
///   `redis://default:<pw>@<name>.<scope>.voodu:6379`;
/// - several pods: `REDIS_URL` pinned to the master's pod name `<name>-<M>.<scope>.voodu` and
///   `REDIS_READ_URL` on the shared alias;
/// - [`LinkMode::Reads`]: a single `REDIS_URL` on the shared alias.
///
/// The password is percent-encoded (anything but RFC 3986 unreserved characters), so any
/// password round-trips through a URL parser; the generated hex passwords are unchanged.
pub fn link_env(
    id: &ResourceRef,
    replicas: u32,
    master_ordinal: u32,
    password: &str,
    mode: LinkMode,
) -> EnvMap {
    let url = |host: &str| {
        format!(
            "redis://default:{}@{host}:{REDIS_PORT}",
            percent_encode(password)
        )
    };
    let [_, alias] = alias_hostnames(id);
    let mut env = EnvMap::new();
    match mode {
        LinkMode::Default if replicas > 1 => {
            let [_, master] = pod_hostnames(id, master_ordinal);
            env.insert("REDIS_URL".into(), url(&master));
            env.insert("REDIS_READ_URL".into(), url(&alias));
        }
        LinkMode::Default | LinkMode::Reads => {
            env.insert("REDIS_URL".into(), url(&alias));
        }
    }
    env
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the provider's `REDIS_LINKED_CONSUMERS` value: comma-separated `scope/name`, returned
/// sorted and deduplicated (blanks and surrounding spaces ignored).
pub fn parse_consumers(s: &str) -> Vec<String> {
    normalize(s.split(',').map(str::trim).filter(|c| !c.is_empty()))
}

/// Writes a `REDIS_LINKED_CONSUMERS` value: sorted, deduplicated, comma-separated.
pub fn format_consumers(v: &[String]) -> String {
    normalize(v.iter().map(|c| c.trim()).filter(|c| !c.is_empty())).join(",")
}

fn normalize<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = it.map(str::to_string).collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn id() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "clowk-lp", "redis")
    }

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn single_primary_uses_the_shared_alias() {
        assert_eq!(
            link_env(&id(), 1, 0, "pwd", LinkMode::Default),
            env(&[("REDIS_URL", "redis://default:pwd@redis.clowk-lp.voodu:6379")])
        );
    }

    #[test]
    fn replicas_pin_writes_to_the_master_and_read_round_robin() {
        assert_eq!(
            link_env(&id(), 3, 0, "pwd", LinkMode::Default),
            env(&[
                (
                    "REDIS_URL",
                    "redis://default:pwd@redis-0.clowk-lp.voodu:6379"
                ),
                (
                    "REDIS_READ_URL",
                    "redis://default:pwd@redis.clowk-lp.voodu:6379"
                ),
            ])
        );
        // After a failover to ordinal 2 the pin follows.
        assert_eq!(
            link_env(&id(), 3, 2, "pwd", LinkMode::Default)["REDIS_URL"],
            "redis://default:pwd@redis-2.clowk-lp.voodu:6379"
        );
    }

    #[test]
    fn reads_is_a_single_round_robin_url() {
        for replicas in [1, 3] {
            assert_eq!(
                link_env(&id(), replicas, 1, "pwd", LinkMode::Reads),
                env(&[("REDIS_URL", "redis://default:pwd@redis.clowk-lp.voodu:6379")])
            );
        }
    }

    #[test]
    fn only_link_vars_are_written() {
        for (r, m) in [
            (1, LinkMode::Default),
            (3, LinkMode::Default),
            (3, LinkMode::Reads),
        ] {
            for k in link_env(&id(), r, 0, "p", m).keys() {
                assert!(LINK_VARS.contains(&k.as_str()), "{k}");
            }
        }
    }

    #[test]
    fn passwords_are_percent_encoded() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            link_env(&id(), 1, 0, hex, LinkMode::Default)["REDIS_URL"],
            format!("redis://default:{hex}@redis.clowk-lp.voodu:6379")
        );
        assert_eq!(
            link_env(&id(), 1, 0, "a@b:c/d%e f~_.-é", LinkMode::Default)["REDIS_URL"],
            "redis://default:a%40b%3Ac%2Fd%25e%20f~_.-%C3%A9@redis.clowk-lp.voodu:6379"
        );
    }

    #[test]
    fn consumers_round_trip_sorted_and_unique() {
        let v = parse_consumers(" web/b, api/a ,,web/b,");
        assert_eq!(v, ["api/a", "web/b"]);
        assert_eq!(format_consumers(&v), "api/a,web/b");
        assert_eq!(
            format_consumers(&["z/1".into(), "a/2".into(), "z/1".into()]),
            "a/2,z/1"
        );
        assert!(parse_consumers("").is_empty());
        assert_eq!(format_consumers(&[]), "");
    }
}
