//! Prometheus metrics. Failover and controller-error counters live in memory for the server's
//! lifetime; per-instance Redis gauges are collected at scrape time by asking every data pod
//! (not sentinel pods) concurrently with a short timeout, the way redis_exporter does, so a
//! scrape never reports a state older than itself and a dead pod shows as `vd_redis_up 0`.
//! The exposition is OpenMetrics text (what `prometheus-client` writes; Prometheus reads it).

use crate::orchestration::controller::Controller;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::time::Duration;
use vd_core::{Kind, ResourceRef, Spec};
use vd_redisctl::{Replication, Role};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long one pod may take to connect and answer `INFO` during a scrape: a hung pod must not
/// hold the scrape past Prometheus' own timeout (10 s by default), and every pod is asked at
/// once, so this bounds the whole scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);

/// Failover durations: a sentinel-less switchover takes tens of milliseconds, a sentinel
/// failover seconds (down-after plus election), a stuck one up to the failover timeout.
const FAILOVER_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 45.0, 60.0,
];

/// Components that count errors, exported at 0 from the start so `rate()` works before the
/// first error.
const COMPONENTS: [&str; 4] = ["sentinel", "metrics", "backup", "cluster"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailoverLabels {
    redis: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedisLabels {
    redis: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    redis: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    redis: String,
    pod: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    redis: String,
    pod: String,
    role: String,
}

/// A metric whose HELP and TYPE are written even before it has a sample (prometheus-client
/// leaves empty families out), so dashboards and alerts can rely on every name being there.
#[derive(Debug)]
struct Described<M>(M);

impl<M: EncodeMetric> EncodeMetric for Described<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

fn failover_histogram() -> Histogram {
    Histogram::new(FAILOVER_BUCKETS)
}

/// The `redis` label: `scope/name`.
fn redis_label(r: &ResourceRef) -> String {
    format!("{}/{}", r.scope, r.name)
}

/// The server's metrics; owned by the [`Controller`].
#[derive(Debug)]
pub struct Metrics {
    failovers: Family<FailoverLabels, Counter>,
    failover_seconds: Family<RedisLabels, Histogram, fn() -> Histogram>,
    errors: Family<ComponentLabels, Counter>,
    backups: Family<BackupLabels, Counter>,
    /// Each cluster as its manager last saw it, by `redis` label.
    clusters: std::sync::Mutex<BTreeMap<String, ClusterSample>>,
}

/// A cluster as its manager saw it on its last tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSample {
    /// Every slot served, the shards and replicas in place, every pod up.
    pub healthy: bool,
    /// Slots no master serves.
    pub uncovered: u32,
    /// Slots served, by master pod name.
    pub masters: BTreeMap<String, u32>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters; error counters of the known components at 0.
    pub fn new() -> Metrics {
        let m = Metrics {
            failovers: Family::default(),
            failover_seconds: Family::new_with_constructor(failover_histogram as fn() -> Histogram),
            errors: Family::default(),
            backups: Family::default(),
            clusters: std::sync::Mutex::new(BTreeMap::new()),
        };
        for c in COMPONENTS {
            m.errors
                .get_or_create(&ComponentLabels {
                    component: c.to_string(),
                })
                .inc_by(0);
        }
        m
    }

    /// What a cluster's manager saw on its last tick (`None`: the cluster is gone).
    pub fn cluster(&self, redis: &ResourceRef, sample: Option<ClusterSample>) {
        if let Ok(mut m) = self.clusters.lock() {
            match sample {
                Some(s) => m.insert(redis_label(redis), s),
                None => m.remove(&redis_label(redis)),
            };
        }
    }

    /// A failover of `redis` by `mode` that took `seconds`: counted and its duration observed.
    pub fn failover(&self, redis: &ResourceRef, mode: &str, seconds: f64) {
        self.switch_observed(redis, mode);
        self.failover_seconds
            .get_or_create(&RedisLabels {
                redis: redis_label(redis),
            })
            .observe(seconds);
    }

    /// A master switch whose duration is unknown (seen after the fact): counted only.
    pub fn switch_observed(&self, redis: &ResourceRef, mode: &str) {
        self.failovers
            .get_or_create(&FailoverLabels {
                redis: redis_label(redis),
                mode: mode.to_string(),
            })
            .inc();
    }

    /// A scheduled backup of `redis` that succeeded or failed.
    pub fn scheduled_backup(&self, redis: &ResourceRef, ok: bool) {
        self.backups
            .get_or_create(&BackupLabels {
                redis: redis_label(redis),
                result: if ok { "succeeded" } else { "failed" }.to_string(),
            })
            .inc();
    }

    /// An error the controller logged and carried on from.
    pub fn controller_error(&self, component: &str) {
        self.errors
            .get_or_create(&ComponentLabels {
                component: component.to_string(),
            })
            .inc();
    }

    /// The exposition: the counters plus every data pod's state, asked now.
    pub async fn render(&self, ctl: &Controller) -> String {
        let samples = collect(ctl, self).await;
        self.render_samples(&samples)
    }

    /// The exposition for already-collected instance samples.
    pub fn render_samples(&self, samples: &[InstanceSample]) -> String {
        let mut reg = Registry::default();
        reg.register(
            "vd_redis_failovers",
            "Master changes of a redis, by who performed them (mode)",
            Described(self.failovers.clone()),
        );
        reg.register_with_unit(
            "vd_redis_failover_duration",
            "How long failovers took, from start until the new master was recorded",
            Unit::Seconds,
            Described(self.failover_seconds.clone()),
        );
        reg.register(
            "vd_controller_errors",
            "Errors the controller logged and carried on from, by component",
            Described(self.errors.clone()),
        );
        reg.register(
            "vd_redis_scheduled_backups",
            "Scheduled backups of a redis, by result (succeeded or failed)",
            Described(self.backups.clone()),
        );
        let up = Family::<PodLabels, Gauge>::default();
        let role = Family::<RoleLabels, Gauge>::default();
        let lag = Family::<PodLabels, Gauge>::default();
        let replicas = Family::<PodLabels, Gauge>::default();
        for s in samples {
            let pod = PodLabels {
                redis: s.redis.clone(),
                pod: s.pod.clone(),
            };
            up.get_or_create(&pod).set(i64::from(s.up));
            if let Some(r) = s.role {
                role.get_or_create(&RoleLabels {
                    redis: s.redis.clone(),
                    pod: s.pod.clone(),
                    role: r.to_string(),
                })
                .set(1);
            }
            if let Some(l) = s.lag_bytes {
                lag.get_or_create(&pod).set(l);
            }
            if let Some(n) = s.connected_replicas {
                replicas.get_or_create(&pod).set(i64::from(n));
            }
        }
        reg.register(
            "vd_redis_up",
            "Whether the data pod answered INFO within the scrape timeout (1) or not (0)",
            Described(up),
        );
        reg.register(
            "vd_redis_role",
            "The data pod's replication role (1 on the line naming it)",
            Described(role),
        );
        reg.register_with_unit(
            "vd_redis_replication_lag",
            "Bytes of replication stream a replica has not processed yet (0 on the master)",
            Unit::Bytes,
            Described(lag),
        );
        reg.register(
            "vd_redis_connected_replicas",
            "Replicas connected to the data pod",
            Described(replicas),
        );
        let healthy = Family::<RedisLabels, Gauge>::default();
        let uncovered = Family::<RedisLabels, Gauge>::default();
        let served = Family::<PodLabels, Gauge>::default();
        let clusters = self.clusters.lock().map(|m| m.clone()).unwrap_or_default();
        for (redis, c) in &clusters {
            let r = RedisLabels {
                redis: redis.clone(),
            };
            healthy.get_or_create(&r).set(i64::from(c.healthy));
            uncovered.get_or_create(&r).set(i64::from(c.uncovered));
            for (pod, slots) in &c.masters {
                served
                    .get_or_create(&PodLabels {
                        redis: redis.clone(),
                        pod: pod.clone(),
                    })
                    .set(i64::from(*slots));
            }
        }
        reg.register(
            "vd_redis_cluster_healthy",
            "A cluster serves every slot with its shards, replicas and pods in place (1) or not (0)",
            Described(healthy),
        );
        reg.register(
            "vd_redis_cluster_slots_uncovered",
            "Hash slots of a cluster that no master serves",
            Described(uncovered),
        );
        reg.register(
            "vd_redis_cluster_shard_slots",
            "Hash slots each shard master of a cluster serves (one line per shard)",
            Described(served),
        );
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            tracing::warn!(error = %e, "could not encode the metrics");
        }
        out
    }
}

/// A data pod's role as the `role` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceRole {
    /// Accepts writes.
    Master,
    /// Follows a master.
    Replica,
}

impl std::fmt::Display for InstanceRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InstanceRole::Master => "master",
            InstanceRole::Replica => "replica",
        })
    }
}

/// What one data pod said at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSample {
    /// `scope/name` of the redis.
    pub redis: String,
    /// Pod name (`data-cache.0`).
    pub pod: String,
    /// Answered in time.
    pub up: bool,
    /// Role, when it answered with a known one.
    pub role: Option<InstanceRole>,
    /// Bytes behind its master (0 for a master); unknown when its master did not answer.
    pub lag_bytes: Option<i64>,
    /// `connected_slaves`.
    pub connected_replicas: Option<u32>,
}

/// Pure: turns the pods' answers (ordinal -> `INFO replication`, `None` when it did not answer
/// in time) into samples. A replica's lag is its master's `master_repl_offset` minus its own
/// processed offset; its master is the pod its `master_host` names.
pub fn instance_samples(
    data: &ResourceRef,
    ips: &BTreeMap<u32, String>,
    answers: &BTreeMap<u32, Option<Replication>>,
) -> Vec<InstanceSample> {
    let redis = redis_label(data);
    answers
        .iter()
        .map(|(ordinal, answer)| {
            let pod = vd_core::naming::pod_name(data, *ordinal);
            let Some(r) = answer else {
                return InstanceSample {
                    redis: redis.clone(),
                    pod,
                    up: false,
                    role: None,
                    lag_bytes: None,
                    connected_replicas: None,
                };
            };
            let (role, lag_bytes) = match r.role {
                Role::Master => (Some(InstanceRole::Master), Some(0)),
                Role::Replica => {
                    let master = r
                        .master_host
                        .as_deref()
                        .and_then(|h| crate::redis::facts::ordinal_of_host(data, h, ips))
                        .and_then(|o| answers.get(&o).cloned().flatten())
                        .filter(|m| m.role == Role::Master);
                    let own = r.replica_repl_offset.unwrap_or(r.master_repl_offset);
                    (
                        Some(InstanceRole::Replica),
                        master.map(|m| (m.master_repl_offset - own).max(0)),
                    )
                }
                Role::Unknown => (None, None),
            };
            InstanceSample {
                redis: redis.clone(),
                pod,
                up: true,
                role,
                lag_bytes,
                connected_replicas: Some(r.connected_replicas),
            }
        })
        .collect()
}

/// Asks every data pod of every data redis for `INFO replication`, all at once, each within
/// [`SCRAPE_TIMEOUT`]. Problems reading the store are logged and counted; the scrape goes on
/// with what it has.
pub async fn collect(ctl: &Controller, metrics: &Metrics) -> Vec<InstanceSample> {
    let stored = match ctl.store.list(Some(Kind::Redis)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not list redis resources");
            metrics.controller_error("metrics");
            return Vec::new();
        }
    };
    type Asked = (
        ResourceRef,
        BTreeMap<u32, String>,
        Vec<(u32, tokio::task::JoinHandle<Option<Replication>>)>,
    );
    let mut asked: Vec<Asked> = Vec::new();
    for s in stored {
        let Spec::Redis(spec) = &s.resource.spec else {
            continue;
        };
        if vd_core::redis::topology::is_sentinel(spec) {
            continue;
        }
        let id = s.resource.id;
        let ips = crate::redis::facts::pod_ips(ctl, &id);
        // Without the password no pod can be asked; they are reported down, not left out.
        let pw = match crate::redis::facts::auth(ctl, &id) {
            Ok(pw) => Some(pw),
            Err(e) => {
                tracing::warn!(redis = %id, error = %e, "metrics: no password to ask the pods with");
                metrics.controller_error("metrics");
                None
            }
        };
        let tasks = ips
            .iter()
            .map(|(o, ip)| {
                let (ip, pw) = (ip.clone(), pw.clone());
                let task = tokio::spawn(async move {
                    let pw = pw?;
                    let ask = async {
                        let mut node = crate::redis::facts::connect(&ip, &pw).await.ok()?;
                        node.replication().await.ok()
                    };
                    tokio::time::timeout(SCRAPE_TIMEOUT, ask)
                        .await
                        .ok()
                        .flatten()
                });
                (*o, task)
            })
            .collect();
        asked.push((id, ips, tasks));
    }
    let mut out = Vec::new();
    for (id, ips, tasks) in asked {
        let mut answers = BTreeMap::new();
        for (o, task) in tasks {
            answers.insert(o, task.await.ok().flatten());
        }
        out.extend(instance_samples(&id, &ips, &answers));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_redisctl::Info;

    fn cache() -> ResourceRef {
        ResourceRef::new(Kind::Redis, "data", "cache")
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn counters_render_with_help_and_labels() {
        let m = Metrics::new();
        let empty = m.render_samples(&[]);
        for name in [
            "vd_redis_failovers",
            "vd_redis_failover_duration_seconds",
            "vd_controller_errors",
            "vd_redis_up",
            "vd_redis_role",
            "vd_redis_replication_lag_bytes",
            "vd_redis_connected_replicas",
        ] {
            assert!(
                empty.contains(&format!("# HELP {name} ")),
                "{name} has no HELP line:\n{empty}"
            );
        }
        assert!(empty.contains("# TYPE vd_redis_failovers counter"));
        assert!(empty.contains("# TYPE vd_redis_failover_duration_seconds histogram"));
        assert!(empty.contains("vd_controller_errors_total{component=\"sentinel\"} 0"));
        assert!(empty.ends_with("# EOF\n"));

        m.failover(&cache(), "manual", 0.07);
        m.failover(&cache(), "manual", 3.0);
        m.switch_observed(&cache(), "sentinel");
        m.controller_error("sentinel");
        m.controller_error("sentinel");
        let text = m.render_samples(&[]);
        assert!(text.contains("vd_redis_failovers_total{redis=\"data/cache\",mode=\"manual\"} 2"));
        assert!(text.contains("vd_redis_failovers_total{redis=\"data/cache\",mode=\"sentinel\"} 1"));
        assert!(text.contains("vd_controller_errors_total{component=\"sentinel\"} 2"));
        assert!(empty.contains("# TYPE vd_redis_scheduled_backups counter"));
        m.scheduled_backup(&cache(), true);
        m.scheduled_backup(&cache(), true);
        m.scheduled_backup(&cache(), false);
        let backups = m.render_samples(&[]);
        assert!(backups.contains(
            "vd_redis_scheduled_backups_total{redis=\"data/cache\",result=\"succeeded\"} 2"
        ));
        assert!(backups.contains(
            "vd_redis_scheduled_backups_total{redis=\"data/cache\",result=\"failed\"} 1"
        ));
        assert!(text.contains("vd_redis_failover_duration_seconds_count{redis=\"data/cache\"} 2"));
        assert!(text.contains("vd_redis_failover_duration_seconds_sum{redis=\"data/cache\"} 3.07"));
        let bucket = |le: &str| {
            line(
                &text,
                &format!(
                    "vd_redis_failover_duration_seconds_bucket{{le=\"{le}\",redis=\"data/cache\"}}"
                ),
            )
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
        };
        // The switch seen after the fact has no duration: only the two timed ones are observed.
        assert_eq!(bucket("0.05").as_deref(), Some("0"), "{text}");
        assert_eq!(bucket("0.1").as_deref(), Some("1"), "{text}");
        assert_eq!(bucket("5.0").as_deref(), Some("2"), "{text}");
        assert_eq!(bucket("+Inf").as_deref(), Some("2"), "{text}");
    }

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=cache-1.data.voodu,port=6379,state=online,offset=1000,lag=0\r\nmaster_repl_offset:1500\r\n";
    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:cache-0.data.voodu\r\nmaster_port:6379\r\nmaster_link_status:up\r\nslave_repl_offset:1200\r\nmaster_repl_offset:1200\r\nconnected_slaves:0\r\n";

    fn ips() -> BTreeMap<u32, String> {
        (0..3).map(|o| (o, format!("127.9.0.{}", o + 2))).collect()
    }

    #[test]
    fn samples_from_answers() {
        let answers = BTreeMap::from([
            (0, Some(Info::parse(MASTER).replication())),
            (1, Some(Info::parse(REPLICA).replication())),
            (2, None),
        ]);
        let s = instance_samples(&cache(), &ips(), &answers);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].pod, "data-cache.0");
        assert_eq!(s[0].role, Some(InstanceRole::Master));
        assert_eq!(s[0].lag_bytes, Some(0));
        assert_eq!(s[0].connected_replicas, Some(1));
        assert_eq!(s[1].role, Some(InstanceRole::Replica));
        assert_eq!(s[1].lag_bytes, Some(300));
        assert!(!s[2].up);
        assert_eq!(s[2].role, None);

        let text = Metrics::new().render_samples(&s);
        for want in [
            "vd_redis_up{redis=\"data/cache\",pod=\"data-cache.0\"} 1",
            "vd_redis_up{redis=\"data/cache\",pod=\"data-cache.2\"} 0",
            "vd_redis_role{redis=\"data/cache\",pod=\"data-cache.0\",role=\"master\"} 1",
            "vd_redis_role{redis=\"data/cache\",pod=\"data-cache.1\",role=\"replica\"} 1",
            "vd_redis_replication_lag_bytes{redis=\"data/cache\",pod=\"data-cache.1\"} 300",
            "vd_redis_replication_lag_bytes{redis=\"data/cache\",pod=\"data-cache.0\"} 0",
            "vd_redis_connected_replicas{redis=\"data/cache\",pod=\"data-cache.0\"} 1",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
        assert!(!text.contains("pod=\"data-cache.2\",role"), "{text}");
    }

    #[test]
    fn replica_of_an_unanswering_master_has_no_lag() {
        let answers = BTreeMap::from([(0, None), (1, Some(Info::parse(REPLICA).replication()))]);
        let s = instance_samples(&cache(), &ips(), &answers);
        assert_eq!(s[1].role, Some(InstanceRole::Replica));
        assert_eq!(s[1].lag_bytes, None);
    }
}
