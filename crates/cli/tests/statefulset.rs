//! Foundation acceptance: statefulsets on a real runtime with real redis-server processes.
//! Each body runs against every backend (`process::NAME`, `docker::NAME`).

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, redis, Vd};
use redis::Commands;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn sts(replicas: u32, extra: &str) -> String {
    format!(
        r#"
statefulset "data" "cache" {{
  image    = "redis:7-alpine"
  replicas = {replicas}
  command  = ["redis-server", "--bind", "${{VOODU_POD_IP}}", "--port", "6379", "--save", "", "--protected-mode", "no", "--appendonly", "yes"]
  ports    = ["6379"]

  volume_claim "data" {{
    mount_path = "/data"
  }}

  probes {{
    readiness {{
      tcp_socket {{ port = 6379 }}
      period = "200ms"
    }}
  }}
  {extra}
}}
"#
    )
}

fn three_replicas_come_up_bottom_up_and_resolve_each_other() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let f = vd.manifest("sts.hcl", &sts(3, ""));
    vd.apply(&f);
    let pods = vd.pods();
    assert_eq!(pods.len(), 3);
    // Bottom-up: each pod started after the one below it.
    let started: Vec<i64> = (0..3)
        .map(|o| pods[o]["started_ms"].as_i64().unwrap())
        .collect();
    assert!(
        started[0] <= started[1] && started[1] <= started[2],
        "{started:?}"
    );
    let ips: Vec<String> = (0..3).map(|o| vd.ip(&format!("data-cache.{o}"))).collect();
    assert_eq!(
        ips.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "addresses are distinct"
    );
    for (o, ip) in ips.iter().enumerate() {
        assert!(ip.starts_with("127."), "{ip}");
        let mut c = redis(ip, 6379);
        let _: () = c.set("who", o).unwrap();
        let who: u32 = c.get("who").unwrap();
        assert_eq!(who, o as u32, "pod {o} answers on its own address");
    }
    // Every pod resolves the others by name through its /etc/hosts.
    for o in 0..3 {
        let pod = format!("data-cache.{o}");
        for (other, ip) in ips.iter().enumerate() {
            let name = format!("cache-{other}.data.voodu");
            let out = vd.in_pod(&pod, &["getent", "hosts", &name]);
            let text = String::from_utf8_lossy(&out.stdout);
            // On the process runtime names resolve to the pods' own loopback addresses; on
            // docker to their addresses on voodu0 (the host reaches them on published ports).
            let want = if common::is_docker() {
                text.split_whitespace().next().unwrap_or("-").to_string()
            } else {
                ip.clone()
            };
            assert!(
                out.status.success() && text.starts_with(want.as_str()),
                "pod {o} resolves {name} to {text:?}, want {want}"
            );
        }
        for alias in ["cache.data.voodu", "cache.data", "cache-2.data"] {
            let out = vd.in_pod(&pod, &["getent", "hosts", alias]);
            assert!(out.status.success(), "{alias} resolves in pod {o}");
        }
    }
    if common::is_docker() {
        // The names exactly: container `<scope>-<name>.<ord>`, volume
        // `voodu-<scope>-<name>-<claim>-<ord>`.
        let names = common::docker_names(&["ps", "--format", "{{.Names}}"]);
        let volumes = common::docker_names(&["volume", "ls", "--format", "{{.Name}}"]);
        for o in 0..3 {
            assert!(names.contains(&format!("data-cache.{o}")), "{names:?}");
            assert!(
                volumes.contains(&format!("voodu-data-cache-data-{o}")),
                "{volumes:?}"
            );
        }
    }
    // And it is real for Redis too: a replica follows pod 0 by name.
    let mut r1 = redis(&ips[1], 6379);
    let _: () = redis::cmd("REPLICAOF")
        .arg("cache-0.data.voodu")
        .arg(6379)
        .query(&mut r1)
        .unwrap();
    let mut r0 = redis(&ips[0], 6379);
    let _: () = r0.set("replicated", "yes").unwrap();
    vd.wait_for("replication by pod name", T, || {
        r1.get::<_, Option<String>>("replicated")
            .ok()
            .flatten()
            .as_deref()
            == Some("yes")
    });
    // Nothing was created on the host outside the root for the /data mount point.
    assert!(!std::path::Path::new("/data/appendonlydir").exists());
}

fn plain_redis_keeps_data_across_restart_scale_and_delete() {
    let _g = common::wildcard();
    // A plain `redis-server` binds *:6379, so nothing else on this host may hold
    // port 6379 on any address while it runs.
    let busy = std::process::Command::new("sh")
        .args(["-c", "ss -Htln 'sport = :6379' 2>/dev/null | head -3"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        busy.trim().is_empty(),
        "port 6379 is already in use on this host (stop that Redis first):\n{busy}"
    );
    let vd = Vd::start();
    // A plain redis statefulset, no macro: redis-server binds the wildcard address.
    let plain = |replicas: u32| {
        format!(
            r#"
statefulset "data" "cache" {{
  image    = "redis:7-alpine"
  replicas = {replicas}

  command = ["redis-server", "--appendonly", "yes"]
  ports   = ["6379"]

  volume_claim "data" {{
    mount_path = "/data"
  }}

  probes {{
    readiness {{
      tcp_socket {{ port = 6379 }}
      period = "200ms"
    }}
  }}
}}
"#
        )
    };
    let f = vd.manifest("plain.hcl", &plain(1));
    vd.apply(&f);
    let ip = vd.ip("data-cache.0");
    let _: () = redis(&ip, 6379).set("k", "v1").unwrap();
    let get = |vd: &Vd| -> Option<String> { redis(&vd.ip("data-cache.0"), 6379).get("k").unwrap() };

    // vd restart
    let pid = vd.pid("data-cache.0");
    vd.vd(&["restart", "data/cache"]);
    vd.wait_for("restart", T, || {
        vd.pod("data-cache.0")
            .is_some_and(|p| p["pid"].as_u64().is_some_and(|x| x != pid) && p["ready"] == true)
    });
    assert_eq!(get(&vd).as_deref(), Some("v1"), "data survives vd restart");

    // scale to 0 and back
    vd.apply(&vd.manifest("plain.hcl", &plain(0)));
    assert!(vd.pods().is_empty());
    assert!(
        vd.volume_exists("voodu-data-cache-data-0"),
        "volume survives scale to 0"
    );
    vd.apply(&vd.manifest("plain.hcl", &plain(1)));
    assert_eq!(
        get(&vd).as_deref(),
        Some("v1"),
        "data survives scale 0 -> 1"
    );

    // delete + re-apply
    let out = vd.vd(&["delete", "statefulset/data/cache"]);
    assert!(out.contains("volumes kept"), "{out}");
    vd.wait_for("pods gone", T, || vd.pods().is_empty());
    assert!(vd.volume_exists("voodu-data-cache-data-0"));
    vd.apply(&f);
    assert_eq!(
        get(&vd).as_deref(),
        Some("v1"),
        "data survives delete + re-apply"
    );

    // --prune destroys the volume
    let out = vd.vd(&["delete", "statefulset/data/cache", "--prune"]);
    assert!(out.contains("voodu-data-cache-data-0"), "{out}");
    assert!(
        !vd.volume_exists("voodu-data-cache-data-0"),
        "--prune removes the volume"
    );
}

fn scale_down_keeps_the_removed_pods_volume() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let f = vd.manifest("sts.hcl", &sts(3, ""));
    vd.apply(&f);
    let _: () = redis(&vd.ip("data-cache.2"), 6379)
        .set("mine", "pod2")
        .unwrap();
    vd.apply(&vd.manifest("sts.hcl", &sts(1, "")));
    let names: Vec<String> = vd
        .pods()
        .iter()
        .map(|p| p["pod"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["data-cache.0"]);
    // Top-down: pod 2 stopped before pod 1.
    let removed: Vec<String> = vd
        .events()
        .iter()
        .filter(|e| e["reason"] == "Removing")
        .map(|e| e["pod"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(removed, vec!["data-cache.2", "data-cache.1"]);
    vd.apply(&vd.manifest("sts.hcl", &sts(3, "")));
    let v: Option<String> = redis(&vd.ip("data-cache.2"), 6379).get("mine").unwrap();
    assert_eq!(
        v.as_deref(),
        Some("pod2"),
        "pod 2's volume still holds its data"
    );
}

fn killed_pod_restarts_and_crashing_pod_backs_off() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let f = vd.manifest(
        "crash.hcl",
        &format!(
            "{}\n{}",
            sts(1, ""),
            r#"
statefulset "data" "crashy" {
  image    = "redis:7-alpine"
  replicas = 1
  command  = ["sh", "-c", "echo boom >&2; exit 3"]
}
"#
        ),
    );
    let out = vd.try_vd(&["apply", "-f", &f, "--timeout", "60s"]);
    assert!(!out.status.success(), "apply fails when a pod fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data-crashy.0") && err.contains("exit code 3"),
        "{err}"
    );
    assert!(
        err.contains("boom"),
        "the failure shows the pod's last log line: {err}"
    );

    let pid = vd.pid("data-cache.0");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    vd.wait_for("restart after kill -9", T, || {
        vd.pod("data-cache.0").is_some_and(|p| {
            p["restarts"] == 1 && p["ready"] == true && p["pid"].as_u64() != Some(pid)
        })
    });

    // Backoff: after several seconds the crashing pod has restarted a few times, not hundreds.
    std::thread::sleep(Duration::from_secs(5));
    let crashy = vd.pod("data-crashy.0").unwrap();
    let restarts = crashy["restarts"].as_u64().unwrap();
    assert!((2..=5).contains(&restarts), "restarts = {restarts}");
    let state = crashy["state"].as_str().unwrap_or_default().to_string();
    assert!(
        state.to_lowercase().contains("backoff") || state == "Starting" || state == "Running",
        "{crashy}"
    );
    vd.wait_for("CrashLoopBackOff shows", T, || {
        vd.pod("data-crashy.0")
            .is_some_and(|p| p["state"] == "CrashLoopBackOff")
    });
}

fn controller_sigkill_keeps_pods_and_readopts_them() {
    let _g = common::own_addresses();
    let mut vd = Vd::start();
    let f = vd.manifest("sts.hcl", &sts(3, ""));
    vd.apply(&f);
    let before: Vec<u64> = (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();
    let ids = |vd: &Vd| -> Vec<String> {
        (0..3)
            .map(|o| vd.pod(&format!("data-cache.{o}")).unwrap()["id"].to_string())
            .collect()
    };
    let ids_before = ids(&vd);
    vd.kill_server();
    for (o, pid) in before.iter().enumerate() {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pod {o} survives the controller"
        );
    }
    let _: () = redis(&vd.ip_from_state(0), 6379)
        .set("during", "outage")
        .unwrap();
    vd.start_server();
    vd.apply(&f);
    let after: Vec<u64> = (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect();
    assert_eq!(before, after, "no pod restarted");
    assert_eq!(
        ids_before,
        ids(&vd),
        "the same pods (container ids on docker)"
    );
    let pods = vd.pods();
    assert!(
        pods.iter()
            .all(|p| p["restarts"] == 0 && p["ready"] == true),
        "{pods:#?}"
    );
    let adopted = vd
        .events()
        .iter()
        .filter(|e| e["reason"] == "Adopted")
        .count();
    assert_eq!(adopted, 3);
}

fn reapply_restarts_nothing_asset_change_rolls_top_down_and_config_rolls() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let conf = vd.root.path().join("extra.conf");
    std::fs::write(&conf, "maxmemory 10mb\n").unwrap();
    let manifest = |replicas: u32| {
        format!(
            r#"
asset "data" "cfg" {{
  conf = file("./extra.conf")
}}
statefulset "data" "cache" {{
  image    = "redis:7-alpine"
  replicas = {replicas}
  command  = ["redis-server", "/etc/redis/extra.conf", "--bind", "${{VOODU_POD_IP}}", "--save", "", "--protected-mode", "no"]
  ports    = ["6379"]
  volumes  = ["${{asset.data.cfg.conf}}:/etc/redis/extra.conf:ro"]
  probes {{
    readiness {{
      tcp_socket {{ port = 6379 }}
      period = "200ms"
    }}
  }}
}}
"#
        )
    };
    let f = vd.manifest("m.hcl", &manifest(3));
    vd.apply(&f);
    let pids =
        |vd: &Vd| -> Vec<u64> { (0..3).map(|o| vd.pid(&format!("data-cache.{o}"))).collect() };
    let maxmem = |vd: &Vd, o: u32| -> String {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query(&mut redis(&vd.ip(&format!("data-cache.{o}")), 6379))
            .unwrap();
        v[1].clone()
    };
    assert_eq!(maxmem(&vd, 0), "10485760");
    let first = pids(&vd);

    let out = vd.apply(&f);
    assert!(out.contains("unchanged"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        pids(&vd),
        first,
        "re-applying an unchanged manifest restarts nothing"
    );

    std::fs::write(&conf, "maxmemory 20mb\n").unwrap();
    vd.apply(&f);
    let second = pids(&vd);
    assert!(
        second.iter().zip(&first).all(|(a, b)| a != b),
        "every pod replaced"
    );
    for o in 0..3 {
        assert_eq!(maxmem(&vd, o), "20971520");
    }
    let replaced: Vec<String> = vd
        .events()
        .iter()
        .filter(|e| e["reason"] == "Replacing")
        .map(|e| e["pod"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        replaced,
        vec!["data-cache.2", "data-cache.1", "data-cache.0"],
        "rolled top-down"
    );

    // Config changes roll; --no-restart does not.
    vd.vd(&[
        "config",
        "data/cache",
        "set",
        "--no-restart",
        "GREETING=hello",
    ]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pids(&vd), second, "--no-restart keeps pods");
    vd.vd(&[
        "config",
        "set",
        "-s",
        "data",
        "-n",
        "cache",
        "GREETING=bonjour",
    ]);
    vd.wait_for("config rollout", T, || {
        let now = pids(&vd);
        now.iter().zip(&second).all(|(a, b)| a != b && *a != 0)
            && vd.pods().iter().all(|p| p["ready"] == true)
    });
    // The new value reaches pods that read the bucket through env_from too (redis rewrites its
    // own /proc/environ, so a shell pod reports what it got).
    vd.apply(&vd.manifest(
        "echo.hcl",
        r#"
deployment "data" "echo" {
  image    = "redis:7-alpine"
  env_from = ["data/cache"]
  command  = ["sh", "-c", "echo greeting=$GREETING ord=$VOODU_REPLICA_ORDINAL scope=$VOODU_SCOPE name=$VOODU_NAME ip=$VOODU_POD_IP; exec sleep 1000"]
}
"#,
    ));
    vd.wait_for("echo output", T, || {
        vd.vd(&["logs", "data/echo"]).contains("greeting=")
    });
    let logs = vd.vd(&["logs", "data/echo"]);
    // Every pod has a network namespace of its own and binds all of its addresses.
    let ip = "0.0.0.0";
    assert!(
        logs.contains(&format!(
            "greeting=bonjour ord=0 scope=data name=echo ip={ip}"
        )),
        "{logs}"
    );
}

fn failing_liveness_restarts_and_failing_readiness_halts_rollout() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let m = |ready_port: u16, live_port: u16, tag: &str| {
        format!(
            r#"
statefulset "data" "probed" {{
  image    = "redis:7-alpine"
  replicas = 2
  command  = ["redis-server", "--bind", "${{VOODU_POD_IP}}", "--port", "6379", "--save", "", "--protected-mode", "no"]
  # The readiness port is published too: on docker the publishing proxy accepts connections
  # for it, and the probe must still see that nothing listens.
  ports    = ["6379", "6390"]
  env      = {{ TAG = "{tag}" }}
  probes {{
    readiness {{
      tcp_socket {{ port = {ready_port} }}
      period = "200ms"
    }}
    liveness {{
      exec {{ command = ["redis-cli", "-h", "${{VOODU_POD_IP}}", "-p", "{live_port}", "ping"] }}
      period            = "300ms"
      failure_threshold = 2
    }}
  }}
}}
"#
        )
    };
    vd.apply(&vd.manifest("p.hcl", &m(6379, 6379, "a")));
    assert!(vd.pods().iter().all(|p| p["restarts"] == 0));

    // Readiness on a closed port: the top pod is replaced, never becomes ready, and the
    // rollout stops there.
    let out = vd.try_vd(&[
        "apply",
        "-f",
        &vd.manifest("p.hcl", &m(6390, 6379, "b")),
        "--timeout",
        "5s",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("halted") || err.contains("not ready"), "{err}");
    let p1 = vd.pod("data-probed.1").unwrap();
    let p0 = vd.pod("data-probed.0").unwrap();
    assert_eq!(p1["ready"], false);
    assert_eq!(p0["ready"], true, "pod 0 still serves");
    let get = vd.vd(&["get", "statefulset", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&get).unwrap();
    assert_eq!(
        v[0]["status"]["current"], 1,
        "only pod 1 runs the new spec: {v}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        vd.pod("data-probed.0").unwrap()["pid"],
        p0["pid"],
        "pod 0 was not touched"
    );

    // Liveness on a closed port: pods get restarted.
    vd.vd(&[
        "apply",
        "-f",
        &vd.manifest("p.hcl", &m(6379, 6391, "c")),
        "--no-wait",
    ]);
    vd.wait_for("liveness restart", T, || {
        vd.pods()
            .iter()
            .any(|p| p["restarts"].as_u64().unwrap_or(0) >= 1)
    });
    assert!(vd.events().iter().any(|e| e["reason"] == "Unhealthy"));
}

fn deployment_runs_replicas_and_rolls() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let m = |tag: &str| {
        format!(
            r#"
deployment "web" "app" {{
  image    = "redis:7-alpine"
  replicas = 2
  command  = ["sh", "-c", "echo started $TAG; exec sleep 1000"]
  env      = {{ TAG = "{tag}" }}
  resources {{
    limits {{
      cpu    = "0.5"
      memory = "64Mi"
    }}
  }}
}}
"#
        )
    };
    vd.apply(&vd.manifest("d.hcl", &m("one")));
    let pods = vd.pods();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0]["pod"], "web-app.0");
    let first: Vec<u64> = pods.iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    vd.apply(&vd.manifest("d.hcl", &m("two")));
    let second: Vec<u64> = vd
        .pods()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert!(second.iter().all(|p| !first.contains(p)), "rolled");
    // Exactly one replacement per pod: a stopping pod keeps its ordinal, so nothing is started twice.
    let started = vd
        .events()
        .iter()
        .filter(|e| e["reason"] == "Started")
        .count();
    assert_eq!(started, 4, "2 pods created + 2 replaced");
    let logs = vd.vd(&["logs", "web/app", "--ordinal", "1"]);
    assert!(logs.contains("started two"), "{logs}");
    if common::is_docker() {
        // resources.limits are the container's limits.
        let limits = common::docker_names(&[
            "inspect",
            "-f",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
            "web-app.0",
        ]);
        assert_eq!(limits, vec!["500000000 67108864"]);
    }
}

fn bad_references_are_located_and_change_nothing() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let f = vd.manifest(
        "bad.hcl",
        r#"statefulset "data" "cache" {
  command = ["redis-server"]
  volumes = [
    "${asset.data.missing.conf}:/etc/redis/x.conf:ro",
  ]
}
"#,
    );
    let err = vd.vd_fails(&["apply", "-f", &f]);
    assert!(err.contains("asset `data/missing` does not exist"), "{err}");
    assert!(
        err.contains("bad.hcl:4:"),
        "error is located at the volume line: {err}"
    );
    let list = vd.vd(&["get", "-o", "json"]);
    assert_eq!(list.trim(), "[]", "store unchanged");
}

/// A refused apply stores nothing, even the parts of it that were valid (an asset's new
/// content, a new workload, a new redis's generated password), and limits that would take the
/// host down are refused at their line with the limit named, also through `vd scale`.
#[test]
fn a_refused_apply_stores_nothing_and_limits_are_named() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        let good = |conf: &str| {
            format!(
                "asset \"data\" \"tuning\" {{\n  conf = \"{conf}\"\n}}\n{}",
                sts(1, "")
            )
        };
        vd.apply(&vd.manifest("good.hcl", &good("maxmemory 1mb")));
        let before = vd.vd(&["get", "-o", "json"]);
        let events = vd.events().len();

        // Valid parts beside a refused one: an asset change, a new statefulset, a new redis.
        let mixed = format!(
            "{}\nstatefulset \"data\" \"other\" {{\n  command = [\"sleep\", \"100\"]\n}}\nredis \"data\" \"fresh\" {{}}\nredis \"data\" \"broken\" {{\n  replicas = 3\n  failover {{ down_after = \"50ms\" }}\n}}\n",
            good("maxmemory 2mb")
        );
        let err =
            common::unwrapped(&vd.vd_fails(&["apply", "-f", &vd.manifest("mixed.hcl", &mixed)]));
        assert!(err.contains("must be at least 100ms"), "{err}");
        assert_eq!(vd.vd(&["get", "-o", "json"]), before, "nothing stored");
        assert_eq!(vd.events().len(), events, "no event: nothing happened");
        let pw = vd.try_vd(&["config", "data/fresh", "get", "REDIS_PASSWORD"]);
        assert!(
            String::from_utf8_lossy(&pw.stdout).trim().is_empty(),
            "no password generated for a redis that was not stored"
        );

        // Too many pods: at the manifest's line, and through `vd scale`.
        let err = common::unwrapped(&vd.vd_fails(&[
            "apply",
            "-f",
            &vd.manifest("huge.hcl", &sts(30000, "")),
        ]));
        assert!(
            err.contains("`replicas` is too large: 30000 (at most 1024)")
                && err.contains("huge.hcl:"),
            "{err}"
        );
        let err = common::unwrapped(&vd.vd_fails(&["scale", "data/cache", "30000"]));
        assert!(
            err.contains("`replicas` is too large: 30000 (at most 1024)"),
            "{err}"
        );
        assert!(
            err.contains("one of the root's 65534 pod addresses"),
            "{err}"
        );
        assert_eq!(vd.vd(&["get", "-o", "json"]), before, "nothing stored");
    });
}

/// The API answers what it cannot take (a body that is not JSON, JSON of the wrong shape, a
/// query that does not parse, an unknown route or method) with vd's error body, what is wrong
/// and what to do, and keeps serving.
#[test]
fn the_api_answers_garbage_with_clear_errors() {
    use std::io::{Read, Write};
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        let ask = |method: &str, path: &str, body: &str| -> (u16, serde_json::Value) {
            let mut s = std::os::unix::net::UnixStream::connect(vd.root.path().join("vd.sock"))
                .expect("the API socket");
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: vd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).unwrap();
            let status = resp[9..12].parse().unwrap();
            let json = resp
                .split_once("\r\n\r\n")
                .map(|(_, b)| b)
                .unwrap_or_default();
            let body = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("{method} {path}: not vd's error body ({e}): {resp}"));
            (status, body)
        };
        // (method, path, body) -> (status, the error says)
        let table = [
            (
                "POST",
                "/v1/apply",
                "not json",
                400,
                "the request body is not what this route takes",
            ),
            (
                "POST",
                "/v1/apply",
                r#"{"resources": 5}"#,
                400,
                "the request body is not what this route takes",
            ),
            (
                "GET",
                "/v1/events?limit=abc",
                "",
                400,
                "the query string does not parse",
            ),
            ("GET", "/v1/nope", "", 404, "no API route GET /v1/nope"),
            (
                "DELETE",
                "/v1/apply",
                "",
                404,
                "no API route DELETE /v1/apply",
            ),
        ];
        for (method, path, body, status, says) in table {
            let (got, err) = ask(method, path, body);
            assert_eq!(got, status, "{method} {path}: {err}");
            assert!(
                err["error"].as_str().is_some_and(|e| e.contains(says)),
                "{method} {path}: {err}"
            );
            assert!(
                err["help"].is_string(),
                "{method} {path} says what to do: {err}"
            );
        }
        assert_eq!(
            vd.vd(&["get", "-o", "json"]).trim(),
            "[]",
            "still serving, nothing stored"
        );
    });
}

/// `vd apply` waits for its change to roll out; a later change of the desired hash (here a
/// config write while the rollout is under way, as the controller makes after a failover)
/// supersedes it, rather than leaving the apply waiting for a hash that never comes back.
#[test]
fn apply_is_not_left_waiting_by_a_later_change() {
    common::on_runtime("process", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        let f = vd.manifest(
            "slow.hcl",
            r#"
statefulset "data" "slow" {
  replicas = 1
  command  = ["redis-server", "--bind", "${VOODU_POD_IP}", "--port", "6379", "--save", ""]
  probes {
    readiness {
      tcp_socket { port = 6379 }
      period        = "200ms"
      initial_delay = "2s"
    }
  }
}
"#,
        );
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut apply = Kill(
            std::process::Command::new(common::bin())
                .arg("--root")
                .arg(vd.path())
                .args(["apply", "-f", &f, "--timeout", "60s"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        vd.wait_for("the pod to start", Duration::from_secs(30), || {
            vd.pod("data-slow.0").is_some()
        });
        vd.vd(&["config", "data/slow", "set", "LATER=1"]);
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(s) = apply.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "vd apply still waits"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut err = String::new();
        if let Some(mut e) = apply.0.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err).unwrap();
        }
        assert!(status.success(), "vd apply failed: {err}");
        // It returned with the later change rolled out, not before.
        let env = vd.pod("data-slow.0").unwrap();
        assert_eq!(env["ready"], true, "{env}");
    });
}

/// Many pods created at once, then all restarted at once (a restarted pod asks for its old
/// address, which a pod created meanwhile may hold): every pod name, looked up inside a pod,
/// reaches that very pod. A name left at a stale address would reach another pod, or none,
/// and a replica following it would follow the wrong master.
fn many_pods_at_once_each_name_reaches_its_own_pod() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let names = ["a", "b", "c", "d"];
    let manifest: String = names
        .iter()
        .map(|n| sts(3, "").replace("\"data\" \"cache\"", &format!("\"data\" \"{n}\"")))
        .collect();
    let f = vd.manifest("many.hcl", &manifest);
    let pods: Vec<(String, String)> = names
        .iter()
        .flat_map(|n| (0..3).map(move |o| (format!("data-{n}.{o}"), format!("{n}-{o}.data.voodu"))))
        .collect();
    let check = |round: &str| {
        // Each pod holds its own name, written through its host address.
        for (pod, _) in &pods {
            let mut c = common::redis(&vd.ip(pod), 6379);
            let _: () = c.set("who", pod).unwrap();
        }
        for (pod, name) in &pods {
            let out = vd.in_pod(
                "data-a.0",
                &["redis-cli", "-h", name, "-p", "6379", "get", "who"],
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                pod.as_str(),
                "{round}: {name} looked up in data-a.0 reaches another pod ({})",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    vd.apply(&f);
    check("created");
    for round in ["first restart", "second restart"] {
        let before: Vec<u64> = pods
            .iter()
            .map(|(p, _)| {
                vd.pod(p)
                    .and_then(|v| v["started_ms"].as_u64())
                    .unwrap_or(0)
            })
            .collect();
        let restarts: Vec<_> = names
            .iter()
            .map(|n| {
                Command::new(common::bin())
                    .arg("--root")
                    .arg(vd.path())
                    .args(["restart", &format!("data/{n}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut r in restarts {
            assert!(r.wait().unwrap().success(), "{round}: vd restart");
        }
        vd.wait_for(round, T, || {
            pods.iter().zip(&before).all(|((p, _), b)| {
                vd.pod(p).is_some_and(|v| {
                    v["ready"] == true && v["started_ms"].as_u64().is_some_and(|s| s != *b)
                })
            })
        });
        check(round);
    }
}

on_every_runtime!(
    three_replicas_come_up_bottom_up_and_resolve_each_other,
    many_pods_at_once_each_name_reaches_its_own_pod,
    plain_redis_keeps_data_across_restart_scale_and_delete,
    scale_down_keeps_the_removed_pods_volume,
    killed_pod_restarts_and_crashing_pod_backs_off,
    controller_sigkill_keeps_pods_and_readopts_them,
    reapply_restarts_nothing_asset_change_rolls_top_down_and_config_rolls,
    failing_liveness_restarts_and_failing_readiness_halts_rollout,
    deployment_runs_replicas_and_rolls,
    bad_references_are_located_and_change_nothing,
);

/// Docker only: an image that is neither local nor pullable fails the pod with an error that
/// names the image and the fix, and the other pods are untouched.
#[test]
fn docker_missing_image_names_the_image_and_the_fix() {
    common::on_runtime("docker", || {
        let _g = common::own_addresses();
        let vd = Vd::start();
        let f = vd.manifest(
            "missing.hcl",
            r#"
statefulset "data" "ghost" {
  image   = "vd-test-missing/redis:0.0-nope"
  command = ["redis-server"]
}
"#,
        );
        let out = vd.try_vd(&["apply", "-f", &f, "--timeout", "30s"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("vd-test-missing/redis:0.0-nope"),
            "the error names the image: {err}"
        );
        assert!(
            err.contains("build-redis-image") && err.contains("docker pull"),
            "the error names the fix: {err}"
        );
        let pod = vd.pod("data-ghost.0").expect("the pod is listed");
        assert_eq!(pod["ready"], false);
        assert!(
            pod["message"]
                .as_str()
                .is_some_and(|m| m.contains("vd-test-missing/redis:0.0-nope")),
            "{pod}"
        );
    });
}
