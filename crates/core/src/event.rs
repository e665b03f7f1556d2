//! The vocabulary of events: their levels and their reasons.
//!
//! Every event the server records has a [`Level`] and a [`Reason`]. Both are stored and sent
//! over the API as plain strings (`"info"`, `"Started"`), so tools reading `vd events -o json`
//! match on those strings; the enums here are the one place that lists them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// How much an event matters. Serialized lowercase: `info`, `warning`, `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Something happened as intended (a pod started, a backup was written).
    Info,
    /// Something went wrong and vd is handling it (a pod exited, a failover found no candidate).
    Warning,
    /// Something went wrong that vd cannot handle by itself.
    Error,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 3] = [Level::Info, Level::Warning, Level::Error];

    /// The stored and serialized name: `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not `info`, `warning` or `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event level `{0}` is not one of info, warning, error")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

/// Declares [`Reason`] from one list: each entry gives the variant (whose name is also its
/// serialized string), the level it is recorded at, and when it is recorded. The variant's doc
/// comment and its row in the table on [`Reason`] both come from that sentence, so the
/// documented list cannot drift from the enum.
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        pub enum Reason {
            $( $variant:ident : $level:literal => $when:literal; )*
        }
    ) => {
        $(#[$meta])*
        ///
        /// | Reason | Level | Recorded when |
        /// |---|---|---|
        $( #[doc = concat!("| `", stringify!($variant), "` | ", $level, " | ", $when, " |")] )*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(
                #[doc = concat!("*", $level, "*: ", $when)]
                $variant,
            )*
            /// A reason not in this vocabulary, kept verbatim: read back from a store or an API
            /// answer written by another version of vd. This vd's server never records one.
            Other(String),
        }

        impl Reason {
            /// Every reason of the vocabulary (all but [`Reason::Other`]), in documented order.
            pub const KNOWN: &'static [Reason] = &[$(Reason::$variant),*];

            /// The stored and serialized name, e.g. `"Started"`; for [`Reason::Other`], the
            /// string it holds.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Reason::$variant => stringify!($variant), )*
                    Reason::Other(s) => s,
                }
            }

            /// The reason a name denotes, if it is in the vocabulary.
            pub fn known(s: &str) -> Option<Reason> {
                match s {
                    $( stringify!($variant) => Some(Reason::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    /// Why an event was recorded: one short CamelCase name per kind of happening. Serialized
    /// as that name (`"Started"`), exactly as events have always been stored, so the JSON of
    /// `vd events` is unchanged.
    ///
    /// Reading never fails: a name outside the vocabulary (recorded by an older or newer vd)
    /// parses to [`Reason::Other`] holding it verbatim, and serializes back to the same string.
    /// Writers name a variant; a new kind of event gets a new variant here, which also adds its
    /// row to the table below.
    ///
    /// The level is the one the server records the reason at; the message (shown by
    /// `vd events`) carries the details.
    pub enum Reason {
        // Resources and config.
        Created: "info" => "An apply stored a resource that did not exist; the message gives its revision.";
        Changed: "info" => "An apply changed a resource's spec; the message gives its new revision.";
        Deleted: "info" => "A resource was deleted, by `vd delete` or because a redis lost the proxy block that derived it.";
        Restart: "info" => "A rolling restart of a workload was requested (`vd restart`).";
        ConfigChanged: "info" => "A config bucket changed; the message names the bucket and the variables set or unset (never their values).";
        Scaled: "info" => "A workload's replica count was changed with `vd scale`; the message gives the new count.";
        WorkloadStopped: "info" => "A workload was stopped with `vd stop`: its pods are removed, its spec and volumes kept.";
        WorkloadStarted: "info" => "A stopped workload was started again with `vd start`.";

        // Pods.
        Adopted: "info" => "A pod that kept running across a controller restart was taken over again.";
        Removing: "info" => "The rollout stops a pod beyond the wanted replicas (scale down); its volumes stay.";
        Replacing: "info" => "The rollout replaces a pod whose spec, config or restart generation changed.";
        Started: "info" => "A pod's process started; the message gives its pid.";
        FailedStart: "warning" => "A pod could not be started (its spec did not resolve or the runtime refused it); it is retried with backoff.";
        Exited: "warning" => "A pod's process exited on its own; the message gives the exit status and its last log line. It is restarted with backoff.";
        Unhealthy: "warning" => "A pod failed its startup or liveness probe too many times in a row and is restarted; the message says which probe and why.";
        NotReady: "warning" => "A ready pod failed its readiness probe often enough to be taken out of service.";
        StopFailed: "warning" => "Stopping a pod failed; the message gives the runtime's error.";
        Stopped: "info" => "A pod was stopped.";
        CertificateRenewed: "info" => "A running pod's certificate was issued again before it expired (or because its names, addresses or CA changed) and the pod was told to load it, with no restart.";
        CertificateReloadFailed: "warning" => "A pod's renewed certificate was written but the pod could not be told to load it; it is retried, and a restart loads it.";

        // Redis: passwords and links.
        PasswordCreated: "info" => "A redis got its generated `REDIS_PASSWORD` (first apply).";
        PasswordRotated: "info" => "A redis's password was replaced on every pod and linked consumer.";
        Linked: "info" => "A consumer was linked to a redis; the message names it and the link mode.";
        Unlinked: "info" => "A consumer was unlinked from a redis.";

        // Redis: failover and sentinels.
        Failover: "info" => "The master moved to another pod: a manual failover, or an automatic one (the message then says why, with the epoch and timings).";
        Handover: "info" => "A rollout moved the master to an up-to-date replica with a live switchover before replacing the old master's pod; the message gives the write pause.";
        HandoverFailed: "warning" => "A rollout could not move the master off the pod it replaces next; the rollout waits and tries again, and the message says why.";
        NoFailoverCandidate: "warning" => "Automatic failover wants to move the master but no replica may be promoted; the message says why.";
        MasterDemoted: "warning" => "A pod acting as a second master was made a replica of the real one and its clients disconnected.";
        WaitingForFailover: "info" => "A master pod that went down waits, before restarting, for a replica to be promoted.";
        NoFailover: "warning" => "A waiting master pod restarts as it was, because no failover came; the message says why.";
        MasterSwitched: "info" => "The sentinels moved the master; vd recorded the new master and rewrote the linked consumers.";
        SentinelReset: "warning" => "The sentinels disagreed about the master, or one did not see all its peers; each was reset in turn.";

        // Redis: cluster mode.
        ClusterChanged: "info" => "The cluster manager changed a cluster: met nodes, assigned slots, attached or moved a replica, forgot a node that is gone; the message says what.";
        ClusterHealthy: "info" => "A cluster serves every slot with its shards and replicas in place (after forming, or after a fault).";
        ClusterDegraded: "warning" => "A cluster needs something vd cannot do by itself (a shard whose master is down has no replica); the message says what.";

        // Redis: backups, restores and imports.
        BackedUp: "info" => "A backup was written and verified; the message gives its path, size, checksum and source pod.";
        BackupFailed: "warning" => "A backup failed, or a scheduled one was skipped because the previous one still ran.";
        BackupsPruned: "info" => "Scheduled backups beyond the `keep` count were removed.";
        BackupPruneFailed: "warning" => "Removing backups beyond the `keep` count failed.";
        Restored: "info" => "A backup was loaded into a redis; the message gives keys, downtime and replica sync.";
        RestoreFailed: "warning" => "A restore failed; the message says at which step and what state the redis is in.";
        Imported: "info or warning" => "Data was imported from another redis; a warning when some replicas had not caught up yet.";
        ImportInterrupted: "warning" => "A live import was cut short by a server restart; the master was detached from the source (or could not be).";

        // Cronjobs.
        RunStarted: "info" => "A cronjob run's pod started; the message says whether the schedule or a manual trigger started it.";
        RunSucceeded: "info" => "A cronjob run exited 0.";
        RunFailed: "warning" => "A cronjob run failed (non-zero exit, signal, timeout, or it could not start), or a scheduled run could not be launched.";
        RunUnknown: "warning" => "A cronjob run ended without an exit code or signal to tell how (e.g. the server restarted while it ran).";
        RunSkipped: "warning" => "A scheduled cronjob run was skipped because an earlier run still ran (`concurrency = \"forbid\"`).";
        BadSchedule: "warning" => "A stored cronjob's schedule does not parse; reported once per schedule.";
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Reason {
    /// The reason a name denotes; a name outside the vocabulary becomes [`Reason::Other`].
    fn from(s: &str) -> Self {
        Reason::known(s).unwrap_or_else(|| Reason::Other(s.to_string()))
    }
}

impl From<String> for Reason {
    /// The reason a name denotes; a name outside the vocabulary becomes [`Reason::Other`].
    fn from(s: String) -> Self {
        Reason::known(&s).unwrap_or(Reason::Other(s))
    }
}

impl FromStr for Reason {
    /// Never fails: unknown names become [`Reason::Other`].
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Reason::from(s))
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Reason::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_keep_their_strings() {
        for (level, s) in [
            (Level::Info, "info"),
            (Level::Warning, "warning"),
            (Level::Error, "error"),
        ] {
            assert_eq!(level.as_str(), s);
            assert_eq!(level.to_string(), s);
            assert_eq!(serde_json::to_string(&level).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<Level>(&format!("\"{s}\"")).unwrap(),
                level
            );
            assert_eq!(s.parse::<Level>().unwrap(), level);
        }
        assert_eq!("debug".parse::<Level>(), Err(UnknownLevel("debug".into())));
        assert_eq!("Info".parse::<Level>(), Err(UnknownLevel("Info".into())));
        assert!(serde_json::from_str::<Level>("\"debug\"").is_err());
    }

    #[test]
    fn every_reason_round_trips_as_its_name() {
        assert_eq!(Reason::KNOWN.len(), 50);
        for r in Reason::KNOWN {
            let s = r.as_str();
            assert!(
                s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && s.chars().all(|c| c.is_ascii_alphanumeric()),
                "{s} is not CamelCase"
            );
            assert_eq!(r.to_string(), s);
            assert_eq!(s.parse::<Reason>().unwrap(), *r);
            assert_eq!(Reason::known(s).as_ref(), Some(r));
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *r);
        }
        let mut names: Vec<&str> = Reason::KNOWN.iter().map(Reason::as_str).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::KNOWN.len(), "a name is listed twice");
    }

    #[test]
    fn strings_the_server_has_always_recorded_are_known() {
        for s in [
            "Created",
            "Changed",
            "Deleted",
            "Restart",
            "ConfigChanged",
            "Adopted",
            "Removing",
            "Replacing",
            "Started",
            "FailedStart",
            "Exited",
            "Unhealthy",
            "NotReady",
            "StopFailed",
            "Stopped",
            "PasswordCreated",
            "PasswordRotated",
            "Linked",
            "Unlinked",
            "Failover",
            "Handover",
            "HandoverFailed",
            "NoFailoverCandidate",
            "MasterDemoted",
            "WaitingForFailover",
            "NoFailover",
            "MasterSwitched",
            "SentinelReset",
            "BackedUp",
            "BackupFailed",
            "BackupsPruned",
            "BackupPruneFailed",
            "Restored",
            "RestoreFailed",
            "Imported",
            "ImportInterrupted",
            "RunStarted",
            "RunSucceeded",
            "RunFailed",
            "RunUnknown",
            "RunSkipped",
            "BadSchedule",
        ] {
            assert!(Reason::known(s).is_some(), "{s} is missing");
        }
    }

    #[test]
    fn unknown_reasons_are_kept_verbatim() {
        let r: Reason = serde_json::from_str("\"FailedOver\"").unwrap();
        assert_eq!(r, Reason::Other("FailedOver".into()));
        assert_eq!(r.as_str(), "FailedOver");
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"FailedOver\"");
        // Matching is exact: another case is another name.
        assert_eq!(
            "started".parse::<Reason>().unwrap(),
            Reason::Other("started".into())
        );
        assert_eq!(Reason::from(String::from("Exited")), Reason::Exited);
        assert_eq!(Reason::from(String::new()), Reason::Other(String::new()));
    }
}
