//! The keys of the store's free-form `meta` table, as a type.
//!
//! Each [`MetaKey`] variant is one family of keys the server keeps there; [`MetaKey::key`]
//! renders the exact string the table has always used, so stores written before this type
//! existed keep working. Families whose value is one of a few words have a value type here
//! too ([`HaState`], [`StoredLinkMode`], [`DERIVED_MARKER`]).

use std::fmt;
use std::str::FromStr;
use vd_core::{Kind, ResourceRef};

/// The value a [`MetaKey::ProxyDerived`] key holds: its presence is what counts.
pub const DERIVED_MARKER: &str = "1";

/// One key of the `meta` table.
///
/// Resource ids render as `kind/scope/name` unless said otherwise. Values are plain strings
/// unless said otherwise; JSON values go through [`crate::Store::meta_json`] and
/// [`crate::Store::set_meta_json`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetaKey {
    /// `pod-hash:<pod>`: the spec hash a running pod is declared current for, set when a
    /// config change is applied without restarting it (`--no-restart`); cleared when the pod
    /// is started fresh. Holds the pod name, e.g. `data-cache.0`.
    PodHash(String),
    /// `restart:<kind/scope/name>`: the restart generation of a workload, an opaque string
    /// (unix nanoseconds of the last `vd restart`) hashed into its pods' spec hash.
    Restart(ResourceRef),
    /// `failover-epoch:<kind/scope/name>`: the last failover epoch of a redis, a decimal
    /// `u64`. Written before the failover acts.
    FailoverEpoch(ResourceRef),
    /// `failover-pending:<kind/scope/name>`: a failover of a redis that was decided but not yet
    /// finished, as JSON; removed once it is done.
    FailoverPending(ResourceRef),
    /// `failover-history:<kind/scope/name>`: the master a redis last had, as the JSON pair
    /// `[ordinal, replid]`.
    FailoverHistory(ResourceRef),
    /// `backup-slot:<kind/scope/name>`: the last schedule slot of a redis's scheduled backups,
    /// unix seconds as a decimal `i64`.
    BackupSlot(ResourceRef),
    /// `cronjob:<scope>/<name>`: a cronjob's state (its runs) as JSON. Only the scope and name
    /// are in the key: the kind is always cronjob, and [`MetaKey::parse`] gives
    /// [`Kind::Cronjob`].
    CronjobState(ResourceRef),
    /// `redis-link:<kind/scope/name>:<consumer>`: the mode a consumer is linked to a redis
    /// in, a [`StoredLinkMode`]. The consumer is the `scope/name` of its config bucket.
    RedisLink {
        /// The redis that provides the link.
        provider: ResourceRef,
        /// The consumer's bucket, `scope/name`.
        consumer: String,
    },
    /// `ha-settings:<kind/scope/name>`: how far the HA write guard of a redis has been set up,
    /// a [`HaState`]. Its presence also means the guard was written to the bucket once, so an
    /// operator who unsets it keeps it unset.
    HaSettings(ResourceRef),
    /// `proxy-derived:<kind/scope/name>`: marks a statefulset as a proxy the server derived
    /// from a redis's proxy block; holds [`DERIVED_MARKER`]. The id is the proxy
    /// statefulset's, not the redis's.
    ProxyDerived(ResourceRef),
    /// `import-underway:<scope>/<name>`: a live import into a redis that has not finished, as
    /// JSON (the master's ordinal and the settings to restore). Only the scope and name are in
    /// the key: the kind is always redis, and [`MetaKey::parse`] gives [`Kind::Redis`].
    ImportUnderway(ResourceRef),
    /// `cluster-layout:<kind/scope/name>`: the node id of each pod of a redis in cluster mode,
    /// as a JSON object from ordinal to id; written by the cluster manager as it sees them.
    ClusterLayout(ResourceRef),
    /// `stopped:<kind/scope/name>`: a workload stopped with `vd stop` (its pods removed, its
    /// volumes kept) until `vd start`; the value is the unix-ms time it was stopped.
    Stopped(ResourceRef),
}

impl MetaKey {
    /// The family's prefix, the part of the key before the first `:` (e.g. `failover-epoch`).
    pub fn prefix(&self) -> &'static str {
        match self {
            MetaKey::PodHash(_) => "pod-hash",
            MetaKey::Restart(_) => "restart",
            MetaKey::FailoverEpoch(_) => "failover-epoch",
            MetaKey::FailoverPending(_) => "failover-pending",
            MetaKey::FailoverHistory(_) => "failover-history",
            MetaKey::BackupSlot(_) => "backup-slot",
            MetaKey::CronjobState(_) => "cronjob",
            MetaKey::RedisLink { .. } => "redis-link",
            MetaKey::HaSettings(_) => "ha-settings",
            MetaKey::ProxyDerived(_) => "proxy-derived",
            MetaKey::ImportUnderway(_) => "import-underway",
            MetaKey::Stopped(_) => "stopped",
            MetaKey::ClusterLayout(_) => "cluster-layout",
        }
    }

    /// The key as stored in the `meta` table, e.g. `failover-epoch:redis/data/cache`.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The key a stored string denotes, if it is exactly what [`MetaKey::key`] renders for
    /// some key (so `restart:statefulsets/data/cache`, a spelling `key` never produces, is
    /// `None`).
    pub fn parse(s: &str) -> Option<MetaKey> {
        let (prefix, rest) = s.split_once(':')?;
        let key = match prefix {
            "pod-hash" => {
                vd_core::naming::parse_pod_name(rest)?;
                MetaKey::PodHash(rest.to_string())
            }
            "restart" => MetaKey::Restart(resource(rest)?),
            "failover-epoch" => MetaKey::FailoverEpoch(resource(rest)?),
            "failover-pending" => MetaKey::FailoverPending(resource(rest)?),
            "failover-history" => MetaKey::FailoverHistory(resource(rest)?),
            "backup-slot" => MetaKey::BackupSlot(resource(rest)?),
            "cronjob" => MetaKey::CronjobState(scoped(Kind::Cronjob, rest)?),
            "redis-link" => {
                let (provider, consumer) = rest.split_once(':')?;
                if consumer.is_empty() {
                    return None;
                }
                MetaKey::RedisLink {
                    provider: resource(provider)?,
                    consumer: consumer.to_string(),
                }
            }
            "ha-settings" => MetaKey::HaSettings(resource(rest)?),
            "proxy-derived" => MetaKey::ProxyDerived(resource(rest)?),
            "import-underway" => MetaKey::ImportUnderway(scoped(Kind::Redis, rest)?),
            "stopped" => MetaKey::Stopped(resource(rest)?),
            "cluster-layout" => MetaKey::ClusterLayout(resource(rest)?),
            _ => return None,
        };
        (key.key() == s).then_some(key)
    }
}

impl fmt::Display for MetaKey {
    /// Writes [`MetaKey::key`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.prefix();
        match self {
            MetaKey::PodHash(pod) => write!(f, "{prefix}:{pod}"),
            MetaKey::Restart(id)
            | MetaKey::FailoverEpoch(id)
            | MetaKey::FailoverPending(id)
            | MetaKey::FailoverHistory(id)
            | MetaKey::BackupSlot(id)
            | MetaKey::HaSettings(id)
            | MetaKey::ProxyDerived(id)
            | MetaKey::Stopped(id)
            | MetaKey::ClusterLayout(id) => write!(f, "{prefix}:{id}"),
            MetaKey::CronjobState(id) | MetaKey::ImportUnderway(id) => {
                write!(f, "{prefix}:{}/{}", id.scope, id.name)
            }
            MetaKey::RedisLink { provider, consumer } => {
                write!(f, "{prefix}:{provider}:{consumer}")
            }
        }
    }
}

/// `kind/scope/name`.
fn resource(s: &str) -> Option<ResourceRef> {
    ResourceRef::parse(s).ok()
}

/// `scope/name`, of a family whose kind is fixed.
fn scoped(kind: Kind, s: &str) -> Option<ResourceRef> {
    let (scope, name) = s.split_once('/')?;
    (!scope.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| ResourceRef::new(kind, scope, name))
}

/// A stored meta value that is not one of the words its family allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of {expected}")]
pub struct UnknownValue {
    /// The value found.
    pub value: String,
    /// The words allowed, for the message.
    pub expected: &'static str,
}

/// The value of a [`MetaKey::HaSettings`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaState {
    /// `pending-live`: the guard is in the bucket; the running pods still have to get it
    /// live once the redis is between rollouts.
    PendingLive,
    /// `done`: the running pods have the guard (or get it from the bucket when they start).
    Done,
}

impl HaState {
    /// The stored word: `pending-live` or `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            HaState::PendingLive => "pending-live",
            HaState::Done => "done",
        }
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HaState {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [HaState::PendingLive, HaState::Done]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownValue {
                value: s.to_string(),
                expected: "pending-live, done",
            })
    }
}

/// The value of a [`MetaKey::RedisLink`] key: which URLs the link writes into the
/// consumer's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StoredLinkMode {
    /// `default`: `REDIS_URL` for writes, plus `REDIS_READ_URL` when there are replicas.
    #[default]
    Default,
    /// `reads`: a single `REDIS_URL` on the round-robin alias.
    Reads,
    /// `sentinel`: the sentinel variables, for sentinel-aware clients.
    Sentinel,
    /// `proxy`: `REDIS_URL` and `REDIS_READ_URL` on the redis's proxy.
    Proxy,
}

impl StoredLinkMode {
    /// Every mode.
    pub const ALL: [StoredLinkMode; 4] = [
        StoredLinkMode::Default,
        StoredLinkMode::Reads,
        StoredLinkMode::Sentinel,
        StoredLinkMode::Proxy,
    ];

    /// The stored word: `default`, `reads`, `sentinel` or `proxy`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredLinkMode::Default => "default",
            StoredLinkMode::Reads => "reads",
            StoredLinkMode::Sentinel => "sentinel",
            StoredLinkMode::Proxy => "proxy",
        }
    }

    /// The mode of a stored value, leniently: a missing or unknown value is
    /// [`StoredLinkMode::Default`], the mode links had before the value was recorded.
    pub fn from_stored(value: Option<&str>) -> StoredLinkMode {
        value.and_then(|v| v.parse().ok()).unwrap_or_default()
    }
}

impl fmt::Display for StoredLinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoredLinkMode {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoredLinkMode::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownValue {
                value: s.to_string(),
                expected: "default, reads, sentinel, proxy",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(scope: &str, name: &str) -> ResourceRef {
        ResourceRef::new(Kind::Redis, scope, name)
    }

    /// Every family with the exact string the server built by hand before this type existed.
    fn table() -> Vec<(MetaKey, &'static str)> {
        let cache = redis("data", "cache");
        vec![
            (
                MetaKey::PodHash("data-cache.0".into()),
                "pod-hash:data-cache.0",
            ),
            (
                MetaKey::Restart(ResourceRef::new(Kind::Statefulset, "web", "app")),
                "restart:statefulset/web/app",
            ),
            (
                MetaKey::Restart(ResourceRef::new(Kind::Deployment, "web", "api")),
                "restart:deployment/web/api",
            ),
            (MetaKey::Restart(cache.clone()), "restart:redis/data/cache"),
            (
                MetaKey::FailoverEpoch(cache.clone()),
                "failover-epoch:redis/data/cache",
            ),
            (
                MetaKey::FailoverPending(cache.clone()),
                "failover-pending:redis/data/cache",
            ),
            (
                MetaKey::FailoverHistory(cache.clone()),
                "failover-history:redis/data/cache",
            ),
            (
                MetaKey::BackupSlot(cache.clone()),
                "backup-slot:redis/data/cache",
            ),
            (
                MetaKey::CronjobState(ResourceRef::new(Kind::Cronjob, "clowk-lp", "redis-backup")),
                "cronjob:clowk-lp/redis-backup",
            ),
            (
                MetaKey::RedisLink {
                    provider: cache.clone(),
                    consumer: "web/app".into(),
                },
                "redis-link:redis/data/cache:web/app",
            ),
            (
                MetaKey::HaSettings(cache.clone()),
                "ha-settings:redis/data/cache",
            ),
            (
                MetaKey::ProxyDerived(ResourceRef::new(Kind::Statefulset, "data", "cache-proxy")),
                "proxy-derived:statefulset/data/cache-proxy",
            ),
            (
                MetaKey::ImportUnderway(cache.clone()),
                "import-underway:data/cache",
            ),
            (
                MetaKey::ClusterLayout(cache.clone()),
                "cluster-layout:redis/data/cache",
            ),
            (MetaKey::Stopped(cache), "stopped:redis/data/cache"),
        ]
    }

    #[test]
    fn keys_render_as_before_and_round_trip() {
        for (key, s) in table() {
            assert_eq!(key.key(), s);
            assert_eq!(key.to_string(), s);
            assert!(s.starts_with(&format!("{}:", key.prefix())), "{s}");
            assert_eq!(MetaKey::parse(s), Some(key), "{s}");
        }
    }

    #[test]
    fn every_family_is_in_the_table() {
        let mut prefixes: Vec<&str> = table().iter().map(|(k, _)| k.prefix()).collect();
        prefixes.dedup();
        assert_eq!(prefixes.len(), 13);
    }

    #[test]
    fn families_without_a_kind_in_the_key_parse_to_their_kind() {
        // The key leaves the kind out, so any id renders the same; parsing gives the real one.
        let any = ResourceRef::new(Kind::Statefulset, "data", "nightly");
        assert_eq!(
            MetaKey::CronjobState(any.clone()).key(),
            "cronjob:data/nightly"
        );
        assert_eq!(
            MetaKey::parse("cronjob:data/nightly"),
            Some(MetaKey::CronjobState(ResourceRef::new(
                Kind::Cronjob,
                "data",
                "nightly"
            )))
        );
        assert_eq!(
            MetaKey::ImportUnderway(any).key(),
            "import-underway:data/nightly"
        );
    }

    #[test]
    fn parse_refuses_what_key_never_renders() {
        for s in [
            "",
            "hash",
            "subnet",
            "pod-hash:",
            "pod-hash:data-cache",
            "restart:",
            "restart:data/cache",
            "restart:statefulsets/data/cache",
            "restart:sts/data/cache",
            "restart:widget/data/cache",
            "failover-epoch:redis/data/",
            "cronjob:nightly",
            "cronjob:data/nightly/x",
            "cronjob:/nightly",
            "import-underway:data/",
            "redis-link:redis/data/cache",
            "redis-link:redis/data/cache:",
            "ha-setting:redis/data/cache",
            "Restart:redis/data/cache",
        ] {
            assert_eq!(MetaKey::parse(s), None, "{s}");
        }
    }

    #[test]
    fn ha_state_words() {
        for (v, s) in [
            (HaState::PendingLive, "pending-live"),
            (HaState::Done, "done"),
        ] {
            assert_eq!(v.as_str(), s);
            assert_eq!(v.to_string(), s);
            assert_eq!(s.parse::<HaState>(), Ok(v));
        }
        let err = "Done".parse::<HaState>().unwrap_err();
        assert_eq!(err.to_string(), "`Done` is not one of pending-live, done");
    }

    #[test]
    fn link_mode_words() {
        for (v, s) in [
            (StoredLinkMode::Default, "default"),
            (StoredLinkMode::Reads, "reads"),
            (StoredLinkMode::Sentinel, "sentinel"),
            (StoredLinkMode::Proxy, "proxy"),
        ] {
            assert_eq!(v.as_str(), s);
            assert_eq!(v.to_string(), s);
            assert_eq!(s.parse::<StoredLinkMode>(), Ok(v));
            assert_eq!(StoredLinkMode::from_stored(Some(s)), v);
        }
        assert!("plain".parse::<StoredLinkMode>().is_err());
        // Links recorded before the mode was, or with a word this vd does not know.
        assert_eq!(StoredLinkMode::from_stored(None), StoredLinkMode::Default);
        assert_eq!(
            StoredLinkMode::from_stored(Some("plain")),
            StoredLinkMode::Default
        );
    }
}
