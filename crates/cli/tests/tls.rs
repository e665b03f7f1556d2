//! `tls {}`, end to end on both runtimes: pods that speak TLS only with certificates vd issues,
//! checked with real clients (redis-cli `--tls`, redis-py with `ssl_ca_certs`, openssl), and
//! vd's own operations over TLS (replication, links, backup, import, restore, switchover,
//! controller failover, the proxy at both ends, certificate renewal with no restart), and
//! sentinels over TLS.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, unwrapped, Vd};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Three TLS pods failed over by the controller, ready within a second: the readiness check
/// speaks TLS, trusting the CA mounted beside each pod's certificate.
const TLS_REDIS: &str = r#"
redis "data" "cache" {
  replicas = 3
  tls {}
  proxy {}
  failover {
    automatic  = true
    down_after = "1s"
  }
  probes {
    liveness {
      tcp_socket { port = 6379 }
      period = "2s"
    }
    readiness {
      exec { command = ["redis-cli", "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-e", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#;

/// A consumer that mounts the redis's CA as a file.
const APP: &str = r#"
statefulset "data" "app" {
  image   = "redis:7-alpine"
  command = ["sleep", "3600"]
  volumes = ["${VD_TLS_CA}:/etc/redis-ca.crt:ro"]
}
"#;

/// A plain redis to import from.
const PLAIN_SOURCE: &str = r#"
redis "data" "src" {
  probes {
    readiness {
      exec { command = ["redis-cli", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#;

/// `redis-cli` on the host against `ip`, over TLS trusting `ca` unless `plain`.
fn cli(ip: &str, pw: &str, ca: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("redis-cli");
    c.args(["-h", ip, "-p", "6379", "-e"]);
    if let Some(ca) = ca {
        c.args(["--tls", "--cacert", ca]);
    }
    c.args(args)
        .env("REDISCLI_AUTH", pw)
        .output()
        .expect("redis-cli")
}

/// A redis-py client holding one connection over TLS (certificate and host name verified),
/// driven line by line: each line sent is answered with `CLIENT ID` and an `INCR`, so a test
/// sees whether the same connection still works.
struct PyClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const PY_CLIENT: &str = r#"
import sys, redis
ca, host, pw = sys.argv[1:4]
r = redis.Redis(host=host, port=6379, password=pw, ssl=True, ssl_ca_certs=ca,
                ssl_check_hostname=True, single_connection_client=True,
                socket_timeout=5)
print(r.client_id(), flush=True)
for line in sys.stdin:
    cid = r.client_id()
    try:
        n = r.incr("tls-counter")
    except redis.exceptions.ReadOnlyError:
        n = "readonly"
    except redis.exceptions.ResponseError as e:
        # Through the proxy while a failover is under way: an error reply, not a lost
        # connection (the proxy keeps the client's connection open).
        n = "error:" + type(e).__name__
    print(cid, n, flush=True)
"#;

impl PyClient {
    fn start(ca: &str, host: &str, pw: &str) -> PyClient {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", PY_CLIENT, ca, host, pw])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        PyClient {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "the redis-py client exited");
        l.trim().to_string()
    }

    /// (client id, counter or `readonly` on a replica) after one more `INCR` on the held
    /// connection.
    fn round(&mut self) -> (String, String) {
        writeln!(self.stdin).unwrap();
        let l = self.line();
        let (id, n) = l.split_once(' ').unwrap_or_else(|| panic!("{l}"));
        (id.to_string(), n.to_string())
    }
}

impl Drop for PyClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `openssl s_client` says of the certificate `ip` serves on the redis port, verified
/// against `ca` for the host name `name`: (verified, notBefore).
fn served_certificate(ip: &str, ca: &str, name: &str) -> (bool, String) {
    served_certificate_on(ip, 6379, ca, name)
}

/// [`served_certificate`] on `port`.
fn served_certificate_on(ip: &str, port: u16, ca: &str, name: &str) -> (bool, String) {
    served_certificate_as(ip, port, ca, name, None)
}

/// [`served_certificate_on`], presenting `client` (certificate and key files) where the server
/// wants one.
fn served_certificate_as(
    ip: &str,
    port: u16,
    ca: &str,
    name: &str,
    client: Option<(&Path, &Path)>,
) -> (bool, String) {
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("{ip}:{port}"),
        "-CAfile",
        ca,
        "-verify_hostname",
        name,
        "-verify_return_error",
    ]);
    if let Some((cert, key)) = client {
        c.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let out = c.stdin(Stdio::null()).output().expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let verified = out.status.success() && text.contains("Verify return code: 0 (ok)");
    let not_before = text
        .lines()
        .find_map(|l| l.split_once("NotBefore: ").map(|(_, r)| r.to_string()))
        .unwrap_or_default();
    (verified, not_before)
}

fn master_of(vd: &Vd, ca: &str, pw: &str) -> u32 {
    let m = vd.master_ordinal();
    let out = cli(&vd.ip(&format!("data-cache.{m}")), pw, Some(ca), &["role"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("master"),
        "pod {m} is not the master: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    m
}

/// Every replica of master `m` is linked to it over TLS.
fn replicas_linked(vd: &Vd, ca: &str, pw: &str, m: u32) -> bool {
    let out = cli(
        &vd.ip(&format!("data-cache.{m}")),
        pw,
        Some(ca),
        &["info", "replication"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("connected_slaves:2") && text.matches("state=online").count() == 2
}

fn tls_redis_end_to_end() {
    let _g = common::own_addresses();
    // Short-lived certificates, so renewal happens within the test (at two thirds: 20 s).
    let vd = Vd::start_with(&["--pod-cert-validity", "30s"]);
    vd.apply(&vd.manifest("tls.hcl", TLS_REDIS));
    let pw = vd.cache_password();
    let ca_file = vd.path().join("ca.pem");
    std::fs::write(&ca_file, vd.vd(&["redis:ca", "data/cache"])).unwrap();
    let ca = ca_file.to_str().unwrap();
    let ip0 = vd.ip("data-cache.0");

    // Plain TCP gets no answer; TLS with the CA does.
    let plain = cli(&ip0, &pw, None, &["ping"]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("PONG"),
        "plain TCP answered: {plain:?}"
    );
    let tls = cli(&ip0, &pw, Some(ca), &["ping"]);
    assert_eq!(
        String::from_utf8_lossy(&tls.stdout).trim(),
        "PONG",
        "{tls:?}"
    );

    // The certificate verifies for the per-pod name clients use, and for the address.
    let (ok, _) = served_certificate(&ip0, ca, "cache-0.data.voodu");
    assert!(ok, "the certificate does not verify for cache-0.data.voodu");
    let (ok, _) = served_certificate(&ip0, ca, "cache-1.data.voodu");
    assert!(!ok, "pod 0's certificate verified for pod 1's name");

    // Replication is up, over TLS (the replicas' plain port does not exist).
    vd.wait_for("two replicas online", T, || {
        replicas_linked(&vd, ca, &pw, 0)
    });

    // The URLs: rediss://, and redis-py verifies host name and chain with the CA.
    let url = vd.vd(&["redis:url", "data/cache"]);
    assert!(url.starts_with("rediss://default:"), "{url}");
    let external = vd.vd(&["redis:url", "data/cache", "--external"]);
    assert!(
        external.trim().ends_with(&format!("@{ip0}:6379")),
        "{external}"
    );
    let mut client = PyClient::start(ca, &ip0, &pw);
    let first_id = client.line();
    assert_eq!(client.round(), (first_id.clone(), "1".to_string()));

    // A link hands the consumer the rediss:// URLs and the CA.
    vd.vd(&["redis:link", "data/cache", "data/app"]);
    let linked = vd.vd(&["config", "data/app", "get", "REDIS_URL"]);
    assert!(
        linked.starts_with("rediss://default:") && linked.contains("@cache-proxy.data.voodu:6379"),
        "{linked}"
    );
    let linked_ca = vd.vd(&["config", "data/app", "get", "REDIS_CA_CERT"]);
    assert_eq!(
        linked_ca.trim(),
        std::fs::read_to_string(ca).unwrap().trim()
    );
    // The consumer's pods also see the CA as a file, the root's, which they mount.
    vd.apply(&vd.manifest("app.hcl", APP));
    let mounted = vd.vd(&["exec", "data/app", "--", "cat", "/etc/redis-ca.crt"]);
    assert_eq!(mounted.trim(), linked_ca.trim());

    // A backup's snapshot comes over TLS.
    let b: Value =
        serde_json::from_str(&vd.vd(&["redis:backup", "data/cache", "-o", "json"])).unwrap();
    assert!(b["bytes"].as_u64().unwrap_or(0) > 0, "{b}");

    // An import from a plain redis copies keys into the TLS one (live replication is ruled
    // out: the target would speak TLS to the source).
    vd.apply(&vd.manifest("src.hcl", PLAIN_SOURCE));
    let src_pw = vd.vd(&["config", "data/src", "get", "REDIS_PASSWORD"]);
    let src_ip = vd.ip("data-src.0");
    let set = cli(&src_ip, src_pw.trim(), None, &["set", "imported", "yes"]);
    assert!(
        String::from_utf8_lossy(&set.stdout).contains("OK"),
        "{set:?}"
    );
    let from = vd.vd(&["redis:url", "data/src", "--external"]);
    let report: Value = serde_json::from_str(&vd.vd(&[
        "redis:import",
        "data/cache",
        "--from",
        from.trim(),
        "--force",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(report["mode"], "copy", "{report}");
    // On docker the loopback source address rules live out first; either way it says why.
    assert!(report["fallback"].is_string(), "{report}");
    if !common::is_docker() {
        assert!(
            report["fallback"]
                .as_str()
                .unwrap_or_default()
                .contains("TLS"),
            "{report}"
        );
    }
    let got = cli(&ip0, &pw, Some(ca), &["get", "imported"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "yes");

    // Restoring the backup (taken before the import) brings every pod back to it, over TLS.
    let restored: Value = serde_json::from_str(&vd.vd(&[
        "redis:restore",
        "data/cache",
        "--from",
        b["path"].as_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(restored["keys"], 1, "{restored}");
    vd.wait_for("replicas online after the restore", T, || {
        replicas_linked(&vd, ca, &pw, 0)
    });
    for o in 0..3 {
        let ip = vd.ip(&format!("data-cache.{o}"));
        let got = cli(&ip, &pw, Some(ca), &["get", "imported"]);
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "", "pod {o}");
    }

    // The proxy speaks TLS at both ends: clients verify its certificate, it verifies the pods.
    let proxy_ip = vd.ip("data-cache-proxy.0");
    let (ok, proxy_cert) = served_certificate(&proxy_ip, ca, "cache-proxy-0.data.voodu");
    assert!(ok, "the proxy's certificate does not verify for its name");
    let plain = cli(&proxy_ip, &pw, None, &["ping"]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("PONG"),
        "the proxy answered plain TCP: {plain:?}"
    );
    let through = cli(&proxy_ip, &pw, Some(ca), &["set", "via-proxy", "1"]);
    assert_eq!(
        String::from_utf8_lossy(&through.stdout).trim(),
        "OK",
        "{through:?}"
    );
    // A client of the proxy, connected across the failovers below.
    let mut proxied = PyClient::start(ca, &proxy_ip, &pw);
    proxied.line();

    // A live switchover, then a controller failover, both over TLS.
    vd.vd(&["redis:failover", "data/cache", "--replica", "1"]);
    assert_eq!(master_of(&vd, ca, &pw), 1);
    vd.wait_for("replicas online after the switchover", T, || {
        replicas_linked(&vd, ca, &pw, 1)
    });
    let pids: Vec<u64> = (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();
    vd.signal_pod("data-cache.1", "-9");
    vd.wait_for("a replica promoted", T, || {
        let m = vd.master_ordinal();
        m != 1 && master_of(&vd, ca, &pw) == m
    });
    let m = vd.master_ordinal();
    vd.wait_for("replicas online after the failover", T, || {
        replicas_linked(&vd, ca, &pw, m)
    });
    // The proxy followed both, and its client kept its connection to the proxy (it would have
    // exited on a lost one): its INCR lands on the new master.
    vd.wait_for("the proxy's client writes to the new master", T, || {
        proxied.round().1.parse::<u64>().is_ok()
    });

    // What was written before is there (the counter lives on).
    let got = cli(
        &vd.ip(&format!("data-cache.{m}")),
        &pw,
        Some(ca),
        &["get", "via-proxy"],
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "1");

    // Renewal: the replica that never restarted gets its certificate renewed and loaded live.
    // A client connected before keeps its connection; a new one verifies the new certificate.
    let r = if m == 0 { 2 } else { 0 };
    let pod = format!("data-cache.{r}");
    let name = format!("cache-{r}.data.voodu");
    let ip = vd.ip(&pod);
    let (_, before) = served_certificate(&ip, ca, &name);
    let mut held = PyClient::start(ca, &ip, &pw);
    let held_id = held.line();
    vd.wait_for("the replica's certificate renewed", T, || {
        vd.events()
            .iter()
            .any(|e| e["reason"] == "CertificateRenewed" && e["pod"] == pod.as_str())
    });
    vd.wait_for("the replica serving a new certificate", T, || {
        let (ok, now) = served_certificate(&ip, ca, &name);
        ok && now != before
    });
    // The same connection, still answering (a replica refuses the INCR, over TLS).
    assert_eq!(held.round(), (held_id, "readonly".to_string()));
    assert_eq!(vd.pid(&pod), pids[r as usize], "{pod} restarted");
    let pong = cli(&ip, &pw, Some(ca), &["ping"]);
    assert_eq!(String::from_utf8_lossy(&pong.stdout).trim(), "PONG");
    // The proxy serves its renewed certificate too, with no restart.
    let proxy_pid = vd.pid("data-cache-proxy.0");
    vd.wait_for("the proxy serving a new certificate", T, || {
        let (ok, now) = served_certificate(&proxy_ip, ca, "cache-proxy-0.data.voodu");
        ok && now != proxy_cert
    });
    assert_eq!(
        vd.pid("data-cache-proxy.0"),
        proxy_pid,
        "the proxy restarted"
    );
    assert!(proxied.round().1.parse::<u64>().is_ok());
    drop(held);
    drop(client);

    // Turning TLS off on the running redis is refused, and says what to do.
    let err = unwrapped(&vd.vd_fails(&[
        "apply",
        "-f",
        &vd.manifest(
            "plain.hcl",
            "redis \"data\" \"cache\" {\n  replicas = 3\n}\n",
        ),
    ]));
    assert!(
        err.contains("TLS cannot be turned off for a running redis yet"),
        "{err}"
    );
}

/// A TLS data redis (no failover block: its sentinels fail it over) and its TLS sentinel sibling,
/// ready within a second.
const TLS_WITH_SENTINELS: &str = r#"
redis "data" "cache" {
  replicas = 3
  tls {}
  probes {
    readiness {
      exec { command = ["redis-cli", "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-e", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}

asset "data" "ha-overrides" {
  defs = <<-EOT
    sentinel down-after-milliseconds voodu-master 1000
    sentinel failover-timeout voodu-master 5000
  EOT
}

redis "data" "cache-ha" {
  sentinel {
    monitor = "data/cache"
  }
  tls {}
  volumes = ["${asset.data.ha-overrides.defs}:/etc/sentinel/conf.d/overrides.conf:ro"]
  probes {
    readiness {
      exec { command = ["redis-cli", "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-e", "-h", "${VOODU_POD_IP}", "-p", "26379", "ping"] }
      period = "300ms"
    }
  }
}
"#;

/// A sentinel-aware redis-py writer that speaks TLS to the sentinels and to the master,
/// verifying both with the CA its link wrote (`REDIS_CA_CERT`); `ok <n>` per acknowledged write.
const TLS_WRITER: &str = r#"
deployment "web" "writer" {
  image   = "redis:7-alpine"
  command = ["/usr/bin/python3", "-u", "-c", <<-EOT
import os, tempfile, time, redis
from redis.sentinel import Sentinel
ca = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)
ca.write(os.environ["REDIS_CA_CERT"])
ca.close()
hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in os.environ["REDIS_SENTINEL_HOSTS"].split(",")]
pw = redis.Redis.from_url(os.environ["REDIS_URL"]).connection_pool.connection_kwargs["password"]
tls = {"ssl": True, "ssl_ca_certs": ca.name, "ssl_check_hostname": True}
m = Sentinel(hosts, sentinel_kwargs=dict(password=os.environ["REDIS_SENTINEL_PASSWORD"], socket_timeout=0.5, **tls), socket_timeout=0.5).master_for(os.environ["REDIS_MASTER_NAME"], password=pw, socket_timeout=0.5, **tls)
i = 0
while True:
    i += 1
    try:
        m.set("w:%d" % i, i)
        print("ok %d" % i, flush=True)
    except Exception as e:
        print("err %d %s" % (i, type(e).__name__), flush=True)
        time.sleep(0.05)
    time.sleep(0.005)
EOT
  ]
}
"#;

fn tls_sentinels_fail_over_a_tls_redis() {
    let _g = common::own_addresses();
    // Renewal at two thirds (60 s), after the failovers below.
    let vd = Vd::start_with(&["--pod-cert-validity", "90s"]);
    vd.apply(&vd.manifest("ha.hcl", TLS_WITH_SENTINELS));
    let pw = vd.cache_password();
    let spw = vd
        .vd(&["config", "data/cache-ha", "get", "REDIS_SENTINEL_PASSWORD"])
        .trim()
        .to_string();
    let ca_file = vd.path().join("ca.pem");
    std::fs::write(&ca_file, vd.vd(&["redis:ca", "data/cache"])).unwrap();
    let ca = ca_file.to_str().unwrap();

    // A sentinel speaks TLS only, and wants its own password over it.
    let sip = vd.ip("data-cache-ha.0");
    let sentinel = |pw: &str, tls: bool, args: &[&str]| {
        let mut c = Command::new("redis-cli");
        c.args(["-h", &sip, "-p", "26379", "-e"]);
        if tls {
            c.args(["--tls", "--cacert", ca]);
        }
        let out = c.args(args).env("REDISCLI_AUTH", pw).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(
        !sentinel(&spw, false, &["ping"]).contains("PONG"),
        "plain TCP"
    );
    assert!(
        sentinel("", true, &["ping"]).contains("NOAUTH"),
        "no password over TLS"
    );
    assert_eq!(sentinel(&spw, true, &["ping"]).trim(), "PONG");
    // vd's own view over TLS (`redis:info`): every sentinel answers, agrees, sees its peers
    // and both replicas (a failover before the sentinels learned the replicas would find none
    // to promote).
    let healthy = || {
        let v: Value =
            serde_json::from_str(&vd.vd(&["redis:info", "data/cache", "-o", "json"])).unwrap();
        v["sentinels"]["healthy"] == true
    };
    vd.wait_for("the sentinels healthy", T, healthy);
    let (ok, _) = served_certificate_on(&sip, 26379, ca, "cache-ha-0.data.voodu");
    assert!(
        ok,
        "the sentinel's certificate does not verify for its name"
    );

    // The --sentinel link: rediss://, the CA, the sentinels and their password.
    vd.vd(&["redis:link", "data/cache", "web/writer", "--sentinel"]);
    let get = |k: &str| {
        vd.vd(&["config", "web/writer", "get", k])
            .trim()
            .to_string()
    };
    assert!(
        get("REDIS_URL").starts_with("rediss://"),
        "{}",
        get("REDIS_URL")
    );
    assert!(get("REDIS_CA_CERT").contains("BEGIN CERTIFICATE"));
    assert_eq!(get("REDIS_SENTINEL_PASSWORD"), spw);

    // The sentinel-aware client runs in a pod (pod names resolve there); the process runtime
    // runs it from the host's python3-redis, the docker image has no python.
    let writer = !common::is_docker();
    if writer {
        vd.apply(&vd.manifest("writer.hcl", TLS_WRITER));
        vd.wait_for("the writer writes over TLS", T, || {
            vd.vd(&["logs", "web/writer"]).contains("ok 20\n")
        });
    }

    // The sentinels fail the master over (reaching the pods over TLS), and vd follows.
    vd.signal_pod("data-cache.0", "-9");
    vd.wait_for("the sentinels promote a replica", T, || {
        vd.master_ordinal() != 0
    });
    vd.wait_for("the consumer's REDIS_URL to follow", T, || {
        let m = vd.master_ordinal();
        get("REDIS_URL").contains(&format!("@cache-{m}.data.voodu:6379"))
    });
    if writer {
        let before = vd.vd(&["logs", "web/writer"]).lines().count();
        vd.wait_for("the writer keeps writing after the failover", T, || {
            vd.vd(&["logs", "web/writer"])
                .lines()
                .skip(before)
                .filter(|l| l.starts_with("ok "))
                .count()
                > 50
        });
    }

    // A requested failover goes through the sentinels too, once the killed master is back as a
    // replica (until then the sentinels may have no replica they would promote).
    let from = vd.master_ordinal();
    vd.wait_for("both replicas linked to the new master", T, || {
        replicas_linked(&vd, ca, &pw, from)
    });
    vd.vd(&["redis:failover", "data/cache"]);
    vd.wait_for("the requested failover recorded", T, || {
        vd.master_ordinal() != from
    });
    let m = vd.master_ordinal();
    let role = cli(&vd.ip(&format!("data-cache.{m}")), &pw, Some(ca), &["role"]);
    assert!(String::from_utf8_lossy(&role.stdout).starts_with("master"));

    // redis-sentinel cannot load a certificate live: each sentinel is restarted for its renewed
    // one, one at a time, and the quorum holds.
    let restarted = |o: u32| {
        vd.events().iter().any(|e| {
            e["reason"] == "CertificateRenewed"
                && e["pod"] == format!("data-cache-ha.{o}").as_str()
                && e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("restarting")
        })
    };
    vd.wait_for(
        "every sentinel restarted for its certificate",
        Duration::from_secs(150),
        || (0..3).all(restarted),
    );
    vd.wait_for("the sentinels healthy after the restarts", T, healthy);
}

/// A TLS cluster: seed 004's six nodes with `tls {}`.
const TLS_CLUSTER: &str = r#"
redis "data" "shop" {
  cluster {}
  tls {}
  probes {
    readiness {
      exec { command = ["redis-cli", "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-e", "-h", "${VOODU_POD_IP}", "ping"] }
      period = "300ms"
    }
  }
}
"#;

/// redis-py's cluster client over TLS, verifying the nodes against the CA: writes `n` keys
/// spread over every slot, or reads them back.
const PY_CLUSTER: &str = r#"
import json, sys
from redis.cluster import RedisCluster
ca, host, pw, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rc = RedisCluster(host=host, port=6379, password=pw, ssl=True, ssl_ca_certs=ca,
                  socket_timeout=5, socket_connect_timeout=5)
if mode == "write":
    for i in range(n):
        rc.set("k:%d" % i, i)
    print(json.dumps({"written": n}))
else:
    missing = [i for i in range(n) if rc.get("k:%d" % i) != str(i).encode()]
    print(json.dumps({"missing": missing}))
"#;

/// `redis-cli --cluster check` over TLS against `ip`: whether every slot is covered by three
/// masters that agree, with nothing open.
fn tls_cluster_whole(ip: &str, pw: &str, ca: &str) -> bool {
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning", "--tls", "--cacert", ca])
        .args(["--cluster", "check", &format!("{ip}:6379")])
        .env("REDISCLI_AUTH", pw)
        .output()
        .expect("redis-cli");
    let report = String::from_utf8_lossy(&out.stdout);
    report.contains("[OK] All nodes agree about slots configuration.")
        && report.contains("[OK] All 16384 slots covered.")
        && !report.contains("[ERR]")
        && !report.contains("[WARNING]")
        && report.matches("M: ").count() == 3
}

/// Redis Cluster with TLS: clients and the cluster bus speak TLS only, vd forms and repairs the
/// cluster over TLS, and redis-py's `RedisCluster` works against it with the CA.
fn tls_cluster_end_to_end() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("shop.hcl", TLS_CLUSTER));
    let pw = vd
        .vd(&["config", "data/shop", "get", "REDIS_PASSWORD"])
        .trim()
        .to_string();
    let ca_file = vd.path().join("ca.pem");
    std::fs::write(&ca_file, vd.vd(&["redis:ca", "data/shop"])).unwrap();
    let ca = ca_file.to_str().unwrap();
    let ip0 = vd.ip("data-shop.0");
    // Whole, and every node says so (a node turns `cluster_state:ok` a moment after the slots
    // are covered, and refuses commands with CLUSTERDOWN until then).
    let all_ok = || {
        (0..6).all(|o| {
            let out = cli(
                &vd.ip(&format!("data-shop.{o}")),
                &pw,
                Some(ca),
                &["cluster", "info"],
            );
            String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok")
        })
    };
    vd.wait_for("the TLS cluster whole", T, || {
        tls_cluster_whole(&ip0, &pw, ca) && all_ok()
    });

    // Clients: TLS only.
    let plain = cli(&ip0, &pw, None, &["ping"]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("PONG"),
        "plain TCP answered: {plain:?}"
    );
    // The cluster bus (port + 10000) speaks TLS too, with the pod's certificate. It is not
    // published on the host's address: ask the pod's own address on the pods' network (on the
    // process runtime the same one). Redis wants a client certificate on its bus (the nodes
    // present theirs to each other): present pod 1's.
    let net0 = vd
        .pod("data-shop.0")
        .and_then(|p| p["net_ip"].as_str().map(str::to_string))
        .filter(|a| !a.is_empty() && a != "0.0.0.0")
        .unwrap_or_else(|| ip0.clone());
    let pod1 = vd.path().join("tls/pods/data-shop.1");
    let (ok, _) = served_certificate_as(
        &net0,
        16379,
        ca,
        "shop-0.data.voodu",
        Some((&pod1.join("tls.crt"), &pod1.join("tls.key"))),
    );
    assert!(ok, "the cluster bus does not serve the pod's certificate");

    // redis-py's RedisCluster, verifying every node against the CA.
    let py = |mode: &str| -> Value {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", PY_CLUSTER, ca, &ip0, &pw, mode, "300"])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "RedisCluster {mode} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("client json")
    };
    assert_eq!(py("write")["written"], 300);
    assert_eq!(py("read")["missing"], serde_json::json!([]));

    // A shard's master dies: its replica takes over (vd reaching the nodes over TLS), the
    // killed node comes back as a replica, and every key is still there.
    let out = cli(&ip0, &pw, Some(ca), &["role"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("master"));
    let pid = vd.pid("data-shop.0");
    vd.signal_pod("data-shop.0", "-9");
    vd.wait_for("pod 0 back, as a replica", T, || {
        vd.pod("data-shop.0")
            .is_some_and(|p| p["ready"] == true && p["pid"].as_u64().is_some_and(|x| x != pid))
            && String::from_utf8_lossy(&cli(&vd.ip("data-shop.0"), &pw, Some(ca), &["role"]).stdout)
                .starts_with("slave")
    });
    let ip1 = vd.ip("data-shop.1");
    vd.wait_for("the TLS cluster whole again", T, || {
        tls_cluster_whole(&ip1, &pw, ca) && all_ok()
    });
    assert_eq!(py("read")["missing"], serde_json::json!([]));
}

on_every_runtime!(
    tls_redis_end_to_end,
    tls_sentinels_fail_over_a_tls_redis,
    tls_cluster_end_to_end
);
