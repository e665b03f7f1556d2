//! What a user coming from voodu types and writes: shell-style defaults in manifests, the
//! everyday verbs (`ps`, `scale`, `stop`/`start`, `exec`, two-word `describe`, `logs POD`,
//! `delete -f`), messages that say what to do, and output piped into a reader that stops early.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_every_runtime, unwrapped, Vd};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn kv(replicas: u32, extra: &str) -> String {
    format!(
        r#"
statefulset "demo" "kv" {{
  image    = "redis:${{VERSION:-7-alpine}}"
  replicas = {replicas}
  command  = ["redis-server", "--bind", "${{VOODU_POD_IP}}", "--port", "${{PORT:-6379}}", "--save", "", "--protected-mode", "no"]
  ports    = ["6379"]
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

fn pod_count(vd: &Vd) -> usize {
    vd.pods().iter().filter(|p| p["name"] == "kv").count()
}

/// `${VAR:-default}` resolves with its default when the variable is unset, with the bucket's
/// value once set; a `${VAR}` nothing sets is refused at its line instead of kept literally.
fn shell_style_defaults_resolve_and_unresolved_ones_are_refused() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest("kv.hcl", &kv(1, "")));
    let pod = vd.pod("demo-kv.0").unwrap();
    assert_eq!(pod["ready"], true, "{pod}");
    let mut c = common::redis(&vd.ip("demo-kv.0"), 6379);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");

    let file = vd.manifest(
        "bad.hcl",
        "statefulset \"demo\" \"bad\" {\n  image   = \"redis:${NOPE}\"\n  command = [\"sleep\", \"1000\"]\n}\n",
    );
    let err = unwrapped(&vd.vd_fails(&["apply", "-f", &file]));
    assert!(
        err.contains("variable `NOPE` is not set") && err.contains("bad.hcl:2:"),
        "{err}"
    );
    assert!(
        vd.pods().iter().all(|p| p["name"] != "bad"),
        "a refused apply starts nothing"
    );
    vd.vd(&["config", "demo/bad", "set", "NOPE=7-alpine"]);
    vd.apply(&file);
}

/// The verbs a voodu user types, each doing what it says.
fn everyday_verbs() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let file = vd.manifest("kv.hcl", &kv(2, ""));
    vd.apply(&file);

    let ps: serde_json::Value = serde_json::from_str(&vd.vd(&["ps", "-o", "json"])).unwrap();
    assert_eq!(ps.as_array().map(Vec::len), Some(2), "{ps}");

    vd.vd(&["scale", "demo/kv", "3"]);
    assert_eq!(pod_count(&vd), 3);
    vd.vd(&["scale", "statefulset/demo/kv", "1"]);
    vd.wait_for("scaled in to one pod", T, || pod_count(&vd) == 1);

    // exec: the command's own output and exit code, inside the pod.
    let out = vd.try_vd(&[
        "exec",
        "demo/kv",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    let pong = vd.vd(&[
        "exec",
        "demo-kv.0",
        "--",
        "sh",
        "-c",
        "redis-cli -h \"$VOODU_POD_IP\" ping",
    ]);
    assert_eq!(pong.trim(), "PONG");

    // Two-word describe, and logs by pod name.
    let d = vd.vd(&["describe", "statefulset", "demo/kv"]);
    assert!(d.contains("statefulset/demo/kv"), "{d}");
    let logs = vd.vd(&["logs", "demo-kv.0"]);
    assert!(logs.contains("Ready to accept connections"), "{logs}");

    // stop keeps the spec and the volumes and runs nothing; start brings the pods back.
    vd.vd(&["stop", "demo/kv"]);
    vd.wait_for("no pod left", T, || pod_count(&vd) == 0);
    let get = vd.vd(&["get", "statefulsets"]);
    assert!(get.contains("stopped"), "{get}");
    vd.vd(&["start", "demo/kv"]);
    vd.wait_for("the pod back and ready", T, || {
        vd.pod("demo-kv.0").is_some_and(|p| p["ready"] == true)
    });
    assert!(vd.events().iter().any(|e| e["reason"] == "WorkloadStopped"));

    // delete -f: what the manifest declares.
    vd.vd(&["delete", "-f", &file]);
    vd.wait_for("every pod gone", T, || pod_count(&vd) == 0);
    assert!(!vd.vd(&["get"]).contains("demo"));

    // The server's stderr went to a file: plain text, no terminal colour codes.
    let log = std::fs::read_to_string(vd.path().join("test-server.log")).unwrap();
    assert!(log.contains(" INFO "), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {:?}",
        log.lines().find(|l| l.contains('\u{1b}'))
    );
}

/// An apply that times out says which probe fails and what it printed.
fn apply_timeout_names_the_failing_probe() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    let text = kv(1, "").replace(
        "tcp_socket { port = 6379 }",
        r#"exec { command = ["sh", "-c", "echo the cache is not warm yet >&2; exit 1"] }"#,
    );
    let file = vd.manifest("slow.hcl", &text);
    let err = unwrapped(&vd.vd_fails(&["apply", "-f", &file, "--timeout", "4s"]));
    assert!(
        err.contains("not ready after")
            && err.contains("demo-kv.0")
            && err.contains("readiness")
            && err.contains("the cache is not warm yet"),
        "{err}"
    );
}

/// A long listing piped into a reader that stops after one line: the command ends at once,
/// quietly, with the status a shell reports for SIGPIPE.
fn output_into_a_reader_that_stops_early() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest(
        "talk.hcl",
        r#"
statefulset "demo" "talk" {
  image   = "alpine:latest"
  command = ["sh", "-c", "seq 1 60000; exec sleep 100000"]
}
"#,
    ));
    vd.wait_for("a long log", T, || {
        std::fs::metadata(vd.path().join("logs/demo-talk.0.log")).is_ok_and(|m| m.len() > 256 << 10)
    });
    let mut child = Command::new(common::bin())
        .arg("--root")
        .arg(vd.path())
        .args(["logs", "demo-talk.0"])
        .env_remove("VD_ROOT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone now.
    let out = child.wait_with_output().unwrap();
    assert!(!first.trim().is_empty(), "the first line arrived");
    assert_eq!(out.status.code(), Some(141), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "no panic, no message: {stderr}");
}

/// A mistyped verb never gets a destructive suggestion (no server needed).
fn typos_are_never_steered_to_destructive_verbs() {
    let vd = Vd::start();
    for (typed, safe) in [
        ("stp", None),
        ("shutdwn", None),
        ("delte", None),
        ("evnets", Some("events")),
    ] {
        let out = vd.try_vd(&[typed]);
        assert_eq!(out.status.code(), Some(2), "{typed}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("unknown command `{typed}`")), "{err}");
        for bad in ["`vd stop`", "`vd shutdown`", "`vd delete`"] {
            assert!(!err.contains(bad), "{typed}: {err}");
        }
        if let Some(s) = safe {
            assert!(err.contains(&format!("`vd {s}`")), "{err}");
        }
    }
}

/// Without a command the process runtime cannot run a statefulset; the refusal says what to do.
fn no_command_says_what_to_do_instead() {
    if common::is_docker() {
        return; // the image's own command runs there
    }
    let _g = common::own_addresses();
    let vd = Vd::start();
    let file = vd.manifest(
        "nocmd.hcl",
        "statefulset \"demo\" \"nocmd\" {\n  image = \"redis:7-alpine\"\n}\n",
    );
    let err = unwrapped(&vd.vd_fails(&["apply", "-f", &file]));
    assert!(
        err.contains("has no command")
            && err.contains("--runtime docker")
            && err.contains("command = ["),
        "{err}"
    );
}

/// Every pod is its own network host: two pods of different workloads both bind every
/// address on 6379, each answers on its own loopback, and their data stays apart.
fn two_pods_bind_the_same_port_on_every_address() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    for scope in ["a", "b"] {
        vd.apply(&vd.manifest(
            &format!("{scope}.hcl"),
            &format!(
                r#"
statefulset "{scope}" "kv" {{
  image   = "redis:7-alpine"
  command = ["redis-server", "--appendonly", "yes"]
  volume_claim "data" {{
    mount_path = "/data"
  }}
}}
"#
            ),
        ));
    }
    for scope in ["a", "b"] {
        let r = format!("{scope}/kv");
        vd.wait_for(&format!("{r} answers on its own loopback"), T, || {
            vd.try_vd(&["exec", &r, "--", "redis-cli", "ping"])
                .stdout
                .starts_with(b"PONG")
        });
    }
    vd.vd(&["exec", "a/kv", "--", "redis-cli", "set", "who", "a"]);
    let b = vd.vd(&["exec", "b/kv", "--", "redis-cli", "get", "who"]);
    assert_eq!(b.trim(), "", "b's redis is not a's");
    for pod in ["a-kv.0", "b-kv.0"] {
        let p = vd.pod(pod).unwrap();
        assert_eq!(p["restarts"], 0, "{pod} never failed to bind: {p}");
    }
}

/// A redis with the documented default probes written out verbatim, whose readiness check is
/// a bare `redis-cli ping` (the pod's own loopback, the password from the pod's env), becomes
/// ready.
fn documented_probes_written_out_verbatim() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.apply(&vd.manifest(
        "r.hcl",
        r#"
redis "data" "cache" {
  probes {
    liveness {
      tcp_socket { port = 6379 }
      period            = "10s"
      failure_threshold = 3
    }
    readiness {
      exec { command = ["redis-cli", "ping"] }
      period            = "5s"
      failure_threshold = 1
      success_threshold = 2
    }
  }
}
"#,
    ));
    let p = vd.pod("data-cache.0").unwrap();
    assert_eq!(p["ready"], true, "{p}");
}

/// A port already taken: the exit says which pod and which port, not only the program's
/// "Address already in use".
fn a_taken_port_names_the_pod_and_the_port() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.vd(&[
        "apply",
        "--no-wait",
        "-f",
        &vd.manifest(
            "dup.hcl",
            r#"
statefulset "demo" "dup" {
  image   = "redis:7-alpine"
  command = ["sh", "-c", "redis-server --port 6379 --save '' & sleep 1; exec redis-server --port 6379 --save ''"]
  ports   = ["6379"]
}
"#,
        ),
    ]);
    vd.wait_for("the exit event", T, || {
        vd.events().iter().any(|e| {
            e["reason"] == "Exited"
                && e["message"].as_str().is_some_and(|m| {
                    m.contains("pod demo-dup.0 could not listen") && m.contains("(6379)")
                })
        })
    });
}

/// A pod ends when its main process ends: what the entrypoint left running in the background
/// goes with it instead of holding the pod's ports and address.
fn background_children_end_with_the_pod() {
    let _g = common::own_addresses();
    let vd = Vd::start();
    vd.vd(&[
        "apply",
        "--no-wait",
        "-f",
        &vd.manifest(
            "bg.hcl",
            r#"
statefulset "demo" "bg" {
  image   = "redis:7-alpine"
  command = ["sh", "-c", "sleep 600 & echo background=$!; sleep 1"]
}
"#,
        ),
    ]);
    let log = vd.path().join("logs/demo-bg.0.log");
    let mut pid = None;
    vd.wait_for("the background pid in the log", T, || {
        pid = std::fs::read_to_string(&log).ok().and_then(|l| {
            l.lines()
                .find_map(|l| l.strip_prefix("background="))
                .and_then(|p| p.trim().parse::<u32>().ok())
        });
        pid.is_some()
    });
    vd.wait_for("the exit event", T, || {
        vd.events()
            .iter()
            .any(|e| e["reason"] == "Exited" && e["pod"] == "demo-bg.0")
    });
    // In a container the pid is the container's own and its namespace ends with it; on the
    // process runtime the pid is this machine's.
    if common::runtime() == "process" {
        let pid = pid.unwrap();
        vd.wait_for("the background process to be gone", T, || {
            // Gone, or a zombie waiting for its new parent to reap it.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
        });
    }
}

on_every_runtime!(
    background_children_end_with_the_pod,
    a_taken_port_names_the_pod_and_the_port,
    two_pods_bind_the_same_port_on_every_address,
    documented_probes_written_out_verbatim,
    shell_style_defaults_resolve_and_unresolved_ones_are_refused,
    everyday_verbs,
    apply_timeout_names_the_failing_probe,
    output_into_a_reader_that_stops_early,
    typos_are_never_steered_to_destructive_verbs,
    no_command_says_what_to_do_instead,
);
