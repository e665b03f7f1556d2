//! What the two high-availability benchmarks (`sentinel.rs`, `failover.rs`) share: the
//! Sentinel HA pair's manifest, what they know of a pair's pods (`Topo`), whether a pair has
//! settled (one master, the others replicating from it, the sentinels and the bucket agreeing),
//! asking a sentinel for the master, the sentinels' log timeline, and the report's small
//! helpers. Included by those two programs only (`#[path = "common/ha.rs"] mod ha;`), so
//! the other benchmarks do not carry it.

use crate::common::{self, sleep, Bench};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The data redis of a pair.
pub const DATA: &str = "cache";
/// Its sentinel sibling.
pub const SENTINEL: &str = "cache-ha";
/// The name the sentinels monitor the master by.
pub const MASTER_NAME: &str = "voodu-master";
/// Data pods per redis, and sentinel pods per sibling.
pub const NODES: u32 = 3;
pub const PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
/// The sentinels' `failover-timeout`.
pub const FAILOVER_TIMEOUT_MS: u64 = 10_000;
/// Connect and I/O timeout of the benchmark's own checks.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a pair may take to settle.
pub const CONVERGE_LIMIT: Duration = Duration::from_secs(120);
/// Sentinel log lines worth timing, in the order a failover logs them: (text, label).
pub const MARKS: [(&str, &str); 7] = [
    ("+sdown master ", "+sdown"),
    ("+odown master ", "+odown"),
    ("+try-failover ", "+try-failover"),
    ("+elected-leader ", "+elected-leader"),
    (
        "+failover-state-send-slaveof-noone ",
        "+failover-state-send-slaveof-noone",
    ),
    ("+promoted-slave ", "+promoted-slave"),
    ("+switch-master ", "+switch-master"),
];

/// The probes of every data redis the benchmarks run: ready within a second, and liveness by
/// TCP (a stopped process still accepts connections, so a hang is not restarted).
pub const DATA_PROBES: &str = r#"  probes {
    liveness {
      tcp_socket { port = 6379 }
      period = "2s"
    }
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
"#;

/// The sentinel HA pair in `scope`: `redis "<scope>" "cache" { replicas = 3 }` (with `data_extra`
/// inside its block) and its 3-sentinel sibling, whose `down-after-milliseconds` and
/// `failover-timeout` come from an asset mounted at /etc/sentinel/conf.d/overrides.conf.
pub fn sentinel_pair(scope: &str, down_after: u64, data_extra: &str) -> String {
    format!(
        r#"
asset "{scope}" "overrides" {{
  defs = <<-EOT
    sentinel down-after-milliseconds {MASTER_NAME} {down_after}
    sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}
  EOT
}}

redis "{scope}" "{DATA}" {{
  replicas = {NODES}
{DATA_PROBES}{data_extra}}}

redis "{scope}" "{SENTINEL}" {{
  sentinel {{
    monitor = "{scope}/{DATA}"
  }}
  volumes = ["${{asset.{scope}.overrides.defs}}:/etc/sentinel/conf.d/overrides.conf:ro"]
  probes {{
    readiness {{
      exec {{ command = ["redis-cli", "-e", "-h", "${{VOODU_POD_IP}}", "-p", "{SENTINEL_PORT}", "ping"] }}
      period = "300ms"
    }}
  }}
}}
"#
    )
}

/// For the benchmarks that roll a redis by changing its conf: an asset `<scope>/tuning` with
/// `maxmemory-policy <policy>`, and the data block's lines that mount it into conf.d and add
/// a proxy.
#[allow(dead_code)] // the HA benchmarks that include this module do not roll
pub fn tuned(scope: &str, policy: &str) -> (String, String) {
    let asset =
        format!("asset \"{scope}\" \"tuning\" {{\n  conf = \"maxmemory-policy {policy}\\n\"\n}}\n");
    let extra = format!(
        "  volumes = [\"${{asset.{scope}.tuning.conf}}:/etc/redis/conf.d/tuning.conf:ro\"]\n  proxy {{}}\n"
    );
    (asset, extra)
}

/// The pod name the nodes and sentinels know a data pod by.
pub fn host(scope: &str, ordinal: u32) -> String {
    format!("{DATA}-{ordinal}.{scope}.voodu")
}

/// The ordinal in a data pod's name (`cache-1.<scope>.voodu`).
pub fn ordinal_of(scope: &str, host: &str) -> Option<u32> {
    host.strip_prefix(DATA)?
        .strip_prefix('-')?
        .strip_suffix(&format!(".{scope}.voodu"))?
        .parse()
        .ok()
}

/// A connection with `timeout` for connecting and for every reply. The handshake is AUTH
/// alone: the `redis` crate also sends two `CLIENT SETINFO` and reads each reply with the
/// whole timeout, so connecting to a hung node would take three timeouts, not one.
pub fn connect(
    ip: &str,
    port: u16,
    password: Option<&str>,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let info =
        redis::IntoConnectionInfo::into_connection_info(format!("redis://{auth}{ip}:{port}/"))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let c = redis::Client::open(info.set_redis_settings(settings))?
        .get_connection_with_timeout(timeout)?;
    c.set_read_timeout(Some(timeout))?;
    c.set_write_timeout(Some(timeout))?;
    Ok(c)
}

/// What a benchmark and its writers know of one pair's pods.
#[derive(Clone)]
pub struct Topo {
    pub scope: String,
    /// Whether a sentinel sibling watches the data redis.
    pub sentinels: bool,
    /// Data pod IP per ordinal.
    pub data_ips: Vec<String>,
    /// Sentinel pod IP per ordinal (empty without sentinels).
    pub sentinel_ips: Vec<String>,
    pub password: String,
    /// The sentinels' own password (empty without sentinels).
    pub sentinel_password: String,
}

impl Topo {
    /// The applied pair in `scope`: its password and pod IPs.
    pub fn load(b: &Bench, scope: &str, sentinels: bool) -> Result<Topo, String> {
        let password = b
            .vd(&[
                "config",
                &format!("{scope}/{DATA}"),
                "get",
                "REDIS_PASSWORD",
            ])?
            .trim()
            .to_string();
        let sentinel_password = if sentinels {
            b.vd(&[
                "config",
                &format!("{scope}/{SENTINEL}"),
                "get",
                "REDIS_SENTINEL_PASSWORD",
            ])?
            .trim()
            .to_string()
        } else {
            String::new()
        };
        let mut t = Topo {
            scope: scope.to_string(),
            sentinels,
            data_ips: vec![],
            sentinel_ips: vec![],
            password,
            sentinel_password,
        };
        refresh(b, &mut t)?;
        Ok(t)
    }

    pub fn data(&self, ordinal: u32) -> Result<redis::Connection, String> {
        self.data_within(ordinal, CONTROL_TIMEOUT)
    }

    /// A connection to data pod `ordinal` whose every reply must come within `timeout`.
    pub fn data_within(
        &self,
        ordinal: u32,
        timeout: Duration,
    ) -> Result<redis::Connection, String> {
        connect(
            &self.data_ips[ordinal as usize],
            PORT,
            Some(&self.password),
            timeout,
        )
        .map_err(|e| format!("connect to {}: {e}", host(&self.scope, ordinal)))
    }

    pub fn sentinel(&self, ordinal: usize) -> Result<redis::Connection, String> {
        connect(
            &self.sentinel_ips[ordinal],
            SENTINEL_PORT,
            Some(&self.sentinel_password),
            CONTROL_TIMEOUT,
        )
        .map_err(|e| format!("connect to sentinel {ordinal}: {e}"))
    }

    /// `<root>/logs/<scope>-cache-ha.<n>.log`, one per sentinel.
    pub fn sentinel_logs(&self, b: &Bench) -> Vec<PathBuf> {
        (0..self.sentinel_ips.len())
            .map(|o| {
                b.root()
                    .join("logs")
                    .join(format!("{}-{SENTINEL}.{o}.log", self.scope))
            })
            .collect()
    }
}

/// The pods of `scope/name`, by ordinal: (IP, pid).
pub fn pods_of(
    pods: &Value,
    scope: &str,
    name: &str,
    n: u32,
) -> Result<Vec<(String, u64)>, String> {
    (0..n)
        .map(|o| {
            let pod = format!("{scope}-{name}.{o}");
            let p = pods
                .as_array()
                .and_then(|a| a.iter().find(|p| p["pod"] == pod.as_str()))
                .ok_or_else(|| format!("no pod {pod}"))?;
            let ip = p["ip"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .ok_or_else(|| format!("no IP for pod {pod}"))?;
            Ok((ip.to_string(), p["pid"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// Refreshes the pod IPs; returns the data pods' pids.
pub fn refresh(b: &Bench, t: &mut Topo) -> Result<Vec<u64>, String> {
    let pods = b.json(&["get", "pods"])?;
    let data = pods_of(&pods, &t.scope, DATA, NODES)?;
    if t.sentinels {
        t.sentinel_ips = pods_of(&pods, &t.scope, SENTINEL, NODES)?
            .into_iter()
            .map(|(ip, _)| ip)
            .collect();
    }
    t.data_ips = data.iter().map(|(ip, _)| ip.clone()).collect();
    Ok(data.into_iter().map(|(_, pid)| pid).collect())
}

/// The bucket's `REDIS_MASTER_ORDINAL` (0 while unset, before the first failover); None if
/// `vd` could not say.
pub fn bucket_master(b: &Bench, scope: &str) -> Option<u32> {
    match b.vd(&[
        "config",
        &format!("{scope}/{DATA}"),
        "get",
        "REDIS_MASTER_ORDINAL",
    ]) {
        Ok(s) => s.trim().parse().ok(),
        Err(e) if e.contains("is not set") => Some(0),
        Err(_) => None,
    }
}

pub fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whether a pair is settled: exactly one master, the other pods replicating from it with the
/// link up, the sentinels (if any) healthy (`vd redis:info`) and naming it, the bucket naming
/// it. Ok(master) when settled, Err(what is not) otherwise.
pub fn settled(b: &Bench, t: &Topo) -> Result<u32, String> {
    let roles = (0..NODES)
        .map(|o| {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut t.data(o)?)
                .map_err(|e| format!("INFO replication on {}: {e}", host(&t.scope, o)))?;
            Ok(info)
        })
        .collect::<Result<Vec<String>, String>>()?;
    let masters: Vec<u32> = (0..NODES)
        .filter(|o| field(&roles[*o as usize], "role") == Some("master"))
        .collect();
    let [m] = masters[..] else {
        return Err(format!("masters: {masters:?}"));
    };
    let want = host(&t.scope, m);
    for o in (0..NODES).filter(|o| *o != m) {
        let info = &roles[o as usize];
        if field(info, "master_host") != Some(want.as_str())
            || field(info, "master_link_status") != Some("up")
        {
            return Err(format!(
                "{} is not a replica of {want} with the link up",
                host(&t.scope, o)
            ));
        }
    }
    if t.sentinels {
        let v = b.json(&["redis:info", &format!("{}/{DATA}", t.scope)])?;
        let s = &v["sentinels"];
        let name = format!("{DATA}-{m}");
        let agree = s["rows"]
            .as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["master"] == name.as_str()));
        if s["healthy"] != true || !agree {
            return Err(format!("sentinels: {s}"));
        }
    }
    match bucket_master(b, &t.scope) {
        Some(o) if o == m => Ok(m),
        o => Err(format!("the bucket says {o:?}, the pods {m}")),
    }
}

pub fn wait_settled(b: &Bench, t: &Topo) -> Result<u32, String> {
    let deadline = Instant::now() + CONVERGE_LIMIT;
    loop {
        match settled(b, t) {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "{}: not settled within {CONVERGE_LIMIT:?}: {e}",
                    t.scope
                ))
            }
            Err(_) => sleep(Duration::from_millis(100))?,
        }
    }
}

/// Every sentinel runs with the setting's values (the override file took effect).
pub fn check_overrides(t: &Topo, down_after: u64) -> Result<(), String> {
    for o in 0..t.sentinel_ips.len() {
        let m: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(MASTER_NAME)
            .query(&mut t.sentinel(o)?)
            .map_err(|e| format!("SENTINEL MASTER on sentinel {o}: {e}"))?;
        let get = |k: &str| {
            m.chunks(2)
                .find(|c| c[0] == k)
                .and_then(|c| c.get(1))
                .cloned()
                .unwrap_or_default()
        };
        let (d, f) = (get("down-after-milliseconds"), get("failover-timeout"));
        if d != down_after.to_string() || f != FAILOVER_TIMEOUT_MS.to_string() {
            return Err(format!(
                "sentinel {o} runs with down-after-milliseconds {d}, failover-timeout {f}; \
                 the override file asked for {down_after}, {FAILOVER_TIMEOUT_MS}"
            ));
        }
    }
    Ok(())
}

/// Asks sentinel `o` where the master is, the way a sentinel-aware client does
/// (`GET-MASTER-ADDR-BY-NAME`); connects with `timeout` when `conn` is empty and drops the
/// connection on an error.
pub fn ask_sentinel(
    t: &Topo,
    o: usize,
    conn: &mut Option<redis::Connection>,
    timeout: Duration,
) -> Result<u32, String> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(
            connect(
                &t.sentinel_ips[o],
                SENTINEL_PORT,
                Some(&t.sentinel_password),
                timeout,
            )
            .map_err(|e| format!("connect to sentinel {o}: {e}"))?,
        ),
    };
    let addr: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER_NAME)
        .query(c)
        .map_err(|e| {
            *conn = None;
            format!("sentinel {o}: {e}")
        })?;
    let (h, _) = addr.ok_or_else(|| format!("sentinel {o} knows no master"))?;
    ordinal_of(&t.scope, &h).ok_or_else(|| format!("sentinel {o} names {h}, not a data pod"))
}

/// Time of day of a redis log line (`pid:X 21 Nov 2026 13:51:33.123 # …`), ms since midnight.
fn time_of_day(line: &str) -> Option<i64> {
    line.split_whitespace().take(6).find_map(|w| {
        let (hms, milli) = w.split_once('.')?;
        let mut p = hms.split(':').map(|x| x.parse::<i64>().ok());
        let (h, m, s) = (p.next()??, p.next()??, p.next()??);
        let milli: i64 = milli.parse().ok()?;
        (p.next().is_none() && milli < 1000).then_some(((h * 60 + m) * 60 + s) * 1000 + milli)
    })
}

/// Ms from `wall_ms` (unix ms) to a redis log line's time; None without a time, or when the
/// line is more than 12 hours away (another time zone).
pub fn ms_after(line: &str, wall_ms: i64) -> Option<i64> {
    let mut d = time_of_day(line)? - wall_ms.rem_euclid(86_400_000);
    if d < -43_200_000 {
        d += 86_400_000;
    } else if d > 43_200_000 {
        d -= 86_400_000;
    }
    Some(d)
}

/// Each log's text after its offset.
pub fn logs_since(logs: &[PathBuf], offsets: &[u64]) -> Vec<String> {
    logs.iter()
        .zip(offsets)
        .map(|(path, off)| {
            let bytes = std::fs::read(path).unwrap_or_default();
            String::from_utf8_lossy(bytes.get(*off as usize..).unwrap_or_default()).into_owned()
        })
        .collect()
}

/// For each of [`MARKS`], ms from the kill to the first sentinel logging it, from the logs'
/// text after `offsets`. The logs carry local time of day; a line that does not fall within
/// a minute after the kill (another time zone) is left out.
pub fn marks(logs: &[PathBuf], offsets: &[u64], kill_wall_ms: i64) -> Vec<Option<f64>> {
    let mut out = vec![None::<f64>; MARKS.len()];
    for text in logs_since(logs, offsets) {
        for line in text.lines() {
            let Some(i) = MARKS.iter().position(|(m, _)| line.contains(m)) else {
                continue;
            };
            let Some(d) = ms_after(line, kill_wall_ms) else {
                continue;
            };
            if (-1000..=60_000).contains(&d) {
                let d = d as f64;
                out[i] = Some(out[i].map_or(d, |x: f64| x.min(d)));
            }
        }
    }
    out
}

pub fn log_sizes(logs: &[PathBuf]) -> Vec<u64> {
    logs.iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect()
}

pub fn log_tails(logs: &[PathBuf], n: usize) -> String {
    logs.iter()
        .map(|p| format!("{}:\n{}", p.display(), common::tail(p, n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Deletes `resources` (`kind/scope/name`) with their volumes and waits until the pods of
/// `scope` are gone, so the next setting runs on a quiet machine.
pub fn teardown(b: &Bench, scope: &str, resources: &[String]) {
    for r in resources {
        if let Err(e) = b.vd(&["delete", r, "--prune"]) {
            eprintln!("warning: {e}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let gone = b.json(&["get", "pods"]).is_ok_and(|p| {
            p.as_array()
                .is_some_and(|a| a.iter().all(|p| p["scope"] != scope))
        });
        if gone || sleep(Duration::from_millis(200)).is_err() {
            return;
        }
    }
    eprintln!("warning: pods of {scope} are still there after 60 s");
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Appends a section to docs/benchmarks.md, after a blank line.
pub fn append_to_docs(section: &str) -> Result<(), String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sep = if old.ends_with("\n\n") || old.is_empty() {
        ""
    } else if old.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    std::fs::write(&path, format!("{old}{sep}{section}"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("appended the section to {}", path.display());
    Ok(())
}

pub fn p50_max(v: Vec<f64>) -> (f64, f64) {
    let s = common::sorted(v);
    (
        common::percentile(&s, 50.0),
        s.last().copied().unwrap_or(f64::NAN),
    )
}

/// `redis-server --version`'s `v=` field.
pub fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// A report section's title and its first two lines: date, machine, commit and redis version,
/// then the exact command and how long the whole run took.
#[allow(dead_code)] // not every benchmark that includes this module reports with it
pub fn report_head(title: &str, command: &str, took: Duration) -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "## {title}\n\n- Date: {}; machine: {}; commit: {commit}; redis {}\n- Command: `{command}` (as root, after `cargo build --release -p vd-cli`); the whole run took {:.1} min\n",
        common::utc_now(),
        common::machine(),
        redis_version(),
        took.as_secs_f64() / 60.0
    )
}
