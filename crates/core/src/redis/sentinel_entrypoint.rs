//! The sentinel entrypoint wrapper, mounted read-only at
//! [`SENTINEL_ENTRYPOINT_PATH`](super::SENTINEL_ENTRYPOINT_PATH) in a sentinel sibling's pods.
//!
//! The script's source is `sentinel_entrypoint.sh` next to this file (so it can be read and
//! linted as shell); the port, master name, timings and paths it uses are filled in from this
//! module's constants, so they are defined once.

use super::{
    DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, MASTER_NAME, PARALLEL_SYNCS, REDIS_PORT, SENTINEL_CONF_D,
    SENTINEL_ENTRYPOINT_PATH, SENTINEL_PORT,
};

const TEMPLATE: &str = include_str!("sentinel_entrypoint.sh");

/// The sentinel entrypoint: reads `REDIS_PASSWORD` and `REDIS_MASTER_ORDINAL` (from the
/// monitored redis's bucket), `VOODU_SENTINEL_MONITOR`, `VOODU_SENTINEL_QUORUM` and the pod's
/// `VOODU_*` identity; writes `$VOODU_SENTINEL_DIR/sentinel.conf` (default `/data`, the
/// persistent claim; mode 0600, through a temp file and a rename) with `port 26379`, `bind`,
/// `dir`, hostname resolution and announcement as `<name>-<ord>.<scope>.voodu:26379`,
/// `sentinel monitor voodu-master <host> <port> <quorum>`, `auth-pass`, the default timings and
/// last `include /etc/sentinel/conf.d/*.conf`; then `exec redis-server <that file> --sentinel`.
///
/// Sentinel rewrites that file as it runs; from the previous file the script keeps only
/// sentinel's state: `myid`, `current-epoch`, `config-epoch`, `leader-epoch`, the known replicas
/// and sentinels that are still pods that resolve, and the master it last knew of (while that is
/// a pod of the monitored redis that resolves; otherwise `<monitor>-<REDIS_MASTER_ORDINAL>`). It
/// waits up to 30 s for the master's name to resolve.
pub fn sentinel_entrypoint_script() -> String {
    TEMPLATE
        .replace("@SENTINEL_ENTRYPOINT_PATH@", SENTINEL_ENTRYPOINT_PATH)
        .replace("@SENTINEL_CONF_D@", SENTINEL_CONF_D)
        .replace("@SENTINEL_PORT@", &SENTINEL_PORT.to_string())
        .replace("@REDIS_PORT@", &REDIS_PORT.to_string())
        .replace("@MASTER_NAME@", MASTER_NAME)
        .replace("@DOWN_AFTER_MS@", &DOWN_AFTER_MS.to_string())
        .replace("@FAILOVER_TIMEOUT_MS@", &FAILOVER_TIMEOUT_MS.to_string())
        .replace("@PARALLEL_SYNCS@", &PARALLEL_SYNCS.to_string())
        .replace("@TLS_DIR@", super::TLS_DIR)
        .replace("@TLS_CERT@", crate::TLS_CERT_FILE)
        .replace("@TLS_KEY@", crate::TLS_KEY_FILE)
        .replace("@TLS_CA@", crate::TLS_CA_FILE)
        .replace("@SHELL_FUNCTIONS@\n", super::SHELL_FUNCTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const PLACEHOLDERS: [&str; 13] = [
        "@SHELL_FUNCTIONS@",
        "@SENTINEL_ENTRYPOINT_PATH@",
        "@SENTINEL_CONF_D@",
        "@SENTINEL_PORT@",
        "@REDIS_PORT@",
        "@MASTER_NAME@",
        "@DOWN_AFTER_MS@",
        "@FAILOVER_TIMEOUT_MS@",
        "@PARALLEL_SYNCS@",
        "@TLS_DIR@",
        "@TLS_CERT@",
        "@TLS_KEY@",
        "@TLS_CA@",
    ];

    #[test]
    fn snapshot() {
        let script = sentinel_entrypoint_script();
        for placeholder in PLACEHOLDERS {
            assert!(TEMPLATE.contains(placeholder), "{placeholder} unused");
            assert!(!script.contains(placeholder), "{placeholder} left unfilled");
        }
        super::super::check_snapshot(
            "sentinel-entrypoint.txt",
            include_str!("snapshots/sentinel-entrypoint.txt"),
            &script,
        );
    }

    use super::super::{redis_unquote, NASTY};

    /// What the fakes on PATH answer.
    #[derive(Default)]
    struct Fakes<'a> {
        /// Host names `getent hosts` resolves.
        hosts: &'a [&'a str],
        /// A host that resolves from the given call on.
        late: Option<(&'a str, u32)>,
        /// Replace `sleep` with a no-op that logs its argument (sh and dash only: busybox sh
        /// runs its own sleep).
        fake_sleep: bool,
    }

    struct Run {
        status: std::process::ExitStatus,
        output: String,
        argv: Option<String>,
        conf: Option<String>,
        conf_path: PathBuf,
        /// Every host `getent hosts` was asked for, in order.
        lookups: Vec<String>,
        sleeps: Vec<String>,
    }

    /// Runs the entrypoint under `shell`, with `previous` as the config sentinel left behind (if
    /// any), a fake `redis-server` first on PATH that records its argv (one argument per line)
    /// and exits, and a fake `getent` that resolves only what `fakes` says.
    fn run(
        shell: &[&str],
        env: &[(&str, &str)],
        previous: Option<&str>,
        fakes: &Fakes,
        extra_args: &[&str],
    ) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let exe = |name: &str, body: &str| {
            let p = bin.join(name);
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(
            "redis-server",
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >\"$FAKE_ARGV\"\n",
        );
        exe(
            "getent",
            r#"#!/bin/sh
[ "$1" = hosts ] || exit 2
printf '%s\n' "$2" >>"$FAKE_LOOKUPS"
for h in $FAKE_HOSTS; do
  [ "$h" != "$2" ] || { printf '127.0.0.1 %s\n' "$2"; exit 0; }
done
if [ "$2" = "${FAKE_LATE_HOST:-}" ] && [ "$(grep -cx "$2" "$FAKE_LOOKUPS")" -ge "$FAKE_LATE_AFTER" ]; then
  printf '127.0.0.1 %s\n' "$2"
  exit 0
fi
exit 2
"#,
        );
        if fakes.fake_sleep {
            exe(
                "sleep",
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >>\"$FAKE_SLEEPS\"\n",
            );
        }
        let script = dir.path().join("entrypoint");
        fs::write(&script, sentinel_entrypoint_script()).unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        let conf_path = data.join("sentinel.conf");
        if let Some(p) = previous {
            fs::write(&conf_path, p).unwrap();
        }
        let (argv_file, lookups, sleeps) = (
            dir.path().join("argv"),
            dir.path().join("lookups"),
            dir.path().join("sleeps"),
        );
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
        let (late_host, late_after) = fakes.late.unwrap_or(("", 0));
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .arg(&script)
            .args(extra_args)
            .env_clear()
            .env("PATH", path)
            .env("FAKE_ARGV", &argv_file)
            .env("FAKE_LOOKUPS", &lookups)
            .env("FAKE_SLEEPS", &sleeps)
            .env("FAKE_HOSTS", fakes.hosts.join(" "))
            .env("FAKE_LATE_HOST", late_host)
            .env("FAKE_LATE_AFTER", late_after.to_string())
            .env("VOODU_SENTINEL_DIR", &data)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let lines = |p: &Path| {
            fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect()
        };
        let conf = fs::read_to_string(&conf_path).ok();
        if conf.is_some() && conf.as_deref() != previous {
            let mode = fs::metadata(&conf_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode, 0o600,
                "sentinel.conf holds the password: must be private"
            );
        }
        let left: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.len() <= 1, "temp file left behind: {left:?}");
        Run {
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            argv: fs::read_to_string(&argv_file).ok(),
            conf,
            conf_path,
            lookups: lines(&lookups),
            sleeps: lines(&sleeps),
        }
        // `dir` is dropped (and the temp dir removed) only now, after every read above.
    }

    /// The shells the entrypoint must run under that are present on this machine.
    fn shells() -> Vec<Vec<&'static str>> {
        let has = |cmd: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {cmd} >/dev/null")])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let mut out = vec![vec!["sh"]];
        if has("dash") {
            out.push(vec!["dash"]);
        }
        if has("busybox") {
            out.push(vec!["busybox", "sh"]);
        }
        out
    }

    /// Pod 1 of sentinel sibling `data/cache-ha` watching `data/cache` with 3 sentinels.
    fn pod_env(password: &str) -> Vec<(&str, &str)> {
        vec![
            ("REDIS_PASSWORD", password),
            ("REDIS_SENTINEL_PASSWORD", "sentinel-pw"),
            ("VOODU_SENTINEL_MONITOR", "cache"),
            ("VOODU_SENTINEL_QUORUM", "2"),
            ("VOODU_REPLICA_ORDINAL", "1"),
            ("VOODU_POD_IP", "127.0.10.7"),
            ("VOODU_NAME", "cache-ha"),
            ("VOODU_SCOPE", "data"),
        ]
    }

    fn with<'a>(
        mut env: Vec<(&'a str, &'a str)>,
        k: &'a str,
        v: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        env.retain(|(key, _)| *key != k);
        env.push((k, v));
        env
    }

    fn without<'a>(mut env: Vec<(&'a str, &'a str)>, k: &str) -> Vec<(&'a str, &'a str)> {
        env.retain(|(key, _)| *key != k);
        env
    }

    const HEADER: &str = "\
# Written by /usr/local/bin/voodu-sentinel-entrypoint at boot and rewritten by sentinel as it runs.
# At the next boot only sentinel's state (id, epochs, master, known replicas and sentinels)
# is kept: put settings in /etc/sentinel/conf.d/*.conf instead.
";

    /// The settings every boot writes, before the state lines.
    fn settings(dir: &Path) -> String {
        format!(
            "{HEADER}port 26379\n\
             bind \"127.0.10.7\"\n\
             dir \"{}\"\n\
             sentinel resolve-hostnames yes\n\
             sentinel announce-hostnames yes\n\
             sentinel announce-ip \"cache-ha-1.data.voodu\"\n\
             sentinel announce-port 26379\n\
             requirepass \"sentinel-pw\"\n\
             sentinel sentinel-pass \"sentinel-pw\"\n",
            dir.display()
        )
    }

    const TIMINGS: &str = "\
sentinel down-after-milliseconds voodu-master 5000
sentinel failover-timeout voodu-master 30000
sentinel parallel-syncs voodu-master 1
";

    const INCLUDE: &str = "include /etc/sentinel/conf.d/*.conf\n";

    const ID0: &str = "0b351f8e2482f460438264e59d35a42d9839e1eb";
    const ID1: &str = "1d1c81a1929c7dcd6ef0b328237b6e064a52aecd";
    const ID2: &str = "ed39214faf049b66e4207649e5bfa54f0f89b4ca";

    /// Every pod name of the test's redis and sentinels.
    const PODS: [&str; 6] = [
        "cache-0.data.voodu",
        "cache-1.data.voodu",
        "cache-2.data.voodu",
        "cache-ha-0.data.voodu",
        "cache-ha-1.data.voodu",
        "cache-ha-2.data.voodu",
    ];

    fn all_pods() -> Fakes<'static> {
        Fakes {
            hosts: &PODS,
            ..Fakes::default()
        }
    }

    #[test]
    fn first_boot_writes_the_whole_config() {
        for shell in shells() {
            let r = run(&shell, &pod_env("s3cret"), None, &all_pods(), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let dir = r.conf_path.parent().unwrap();
            assert_eq!(
                r.conf.as_deref().unwrap(),
                format!(
                    "{}sentinel monitor voodu-master cache-0.data.voodu 6379 2\n\
                     sentinel auth-pass voodu-master \"s3cret\"\n\
                     {TIMINGS}{INCLUDE}",
                    settings(dir)
                ),
                "{shell:?}"
            );
            assert_eq!(
                r.argv.as_deref().unwrap(),
                format!("{}\n--sentinel\n", r.conf_path.display()),
                "{shell:?}"
            );
            assert_eq!(
                r.output,
                "voodu-sentinel-entrypoint: cache-ha-1.data on 127.0.10.7:26379 monitors \
                 voodu-master at cache-0.data.voodu:6379 (REDIS_MASTER_ORDINAL=0) with quorum 2; \
                 first boot, no previous state\n",
                "{shell:?}"
            );
        }
    }

    #[test]
    fn a_tls_sentinel_listens_and_links_on_tls_only() {
        for shell in shells() {
            let certs = tempfile::tempdir().unwrap();
            for f in [
                crate::TLS_CERT_FILE,
                crate::TLS_KEY_FILE,
                crate::TLS_CA_FILE,
            ] {
                fs::write(certs.path().join(f), "pem").unwrap();
            }
            let d = certs.path().display().to_string();
            let env = with(
                with(pod_env("s3cret"), "VOODU_REDIS_TLS", "yes"),
                "VOODU_REDIS_TLS_DIR",
                &d,
            );
            let r = run(&shell, &env, None, &all_pods(), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            let tls = format!(
                "port 0\ntls-port 26379\ntls-cert-file \"{d}/tls.crt\"\n\
                 tls-key-file \"{d}/tls.key\"\ntls-ca-cert-file \"{d}/ca.crt\"\n\
                 tls-auth-clients optional\ntls-replication yes\nbind "
            );
            assert!(conf.contains(&tls), "{shell:?}:\n{conf}");
            assert!(!conf.contains("\nport 26379\n"), "{conf}");
            fs::remove_file(certs.path().join(crate::TLS_CA_FILE)).unwrap();
            let r = run(&shell, &env, None, &all_pods(), &[]);
            assert!(!r.status.success(), "{shell:?}");
            assert!(r.output.contains("ca.crt is missing"), "{}", r.output);
        }
    }

    #[test]
    fn master_ordinal_picks_the_master_and_defaults_apply() {
        for shell in shells() {
            let env = with(pod_env("pw"), "REDIS_MASTER_ORDINAL", "02");
            let env = with(env, "VOODU_SENTINEL_QUORUM", "003");
            let env = without(env, "VOODU_POD_IP");
            let r = run(&shell, &env, None, &all_pods(), &["--loglevel", "verbose"]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            assert!(conf.contains("\nbind \"0.0.0.0\"\n"), "{shell:?}: {conf}");
            assert!(
                conf.contains("\nsentinel monitor voodu-master cache-2.data.voodu 6379 3\n"),
                "{shell:?}: {conf}"
            );
            // Extra arguments reach redis-server after --sentinel.
            assert_eq!(
                r.argv.unwrap(),
                format!(
                    "{}\n--sentinel\n--loglevel\nverbose\n",
                    r.conf_path.display()
                )
            );
        }
    }

    /// A config as sentinel rewrites it: our lines, its own additions, and a few lines it
    /// never writes.
    fn previous(monitor_host: &str) -> String {
        format!(
            "# Written by /usr/local/bin/voodu-sentinel-entrypoint at boot and rewritten by sentinel as it runs.\n\
             port 26379\n\
             bind 127.0.10.4\n\
             dir \"/data\"\n\
             sentinel resolve-hostnames yes\n\
             sentinel announce-hostnames yes\n\
             sentinel announce-ip cache-ha-1.data.voodu\n\
             sentinel announce-port 26379\n\
             sentinel myid {ID1}\n\
             sentinel current-epoch 7\n\
             sentinel monitor voodu-master {monitor_host} 6379 1\n\
             sentinel auth-pass voodu-master old-pw\n\
             sentinel down-after-milliseconds voodu-master 2000\n\
             sentinel failover-timeout voodu-master 30000\n\
             sentinel parallel-syncs voodu-master 1\n\
             sentinel config-epoch voodu-master 6\n\
             sentinel leader-epoch voodu-master 7\n\
             include /etc/sentinel/conf.d/*.conf\n\
             \n\
             # Generated by CONFIG REWRITE\n\
             latency-tracking-info-percentiles 50 99 99.9\n\
             protected-mode no\n\
             user default on #0a2b3c ~* &* +@all\n\
             requirepass old-sentinel-pw\n\
             sentinel sentinel-pass old-sentinel-pw\n\
             sentinel known-replica voodu-master cache-0.data.voodu 6379\n\
             sentinel known-slave voodu-master cache-2.data.voodu 6379\n\
             sentinel known-sentinel voodu-master cache-ha-0.data.voodu 26379 {ID0}\n\
             sentinel known-sentinel voodu-master cache-ha-2.data.voodu 26379 {ID2}\n\
             sentinel rename-command voodu-master CONFIG CFG\n\
             sentinel notification-script voodu-master /x.sh"
        )
    }

    /// What a boot on [`previous`] with `monitor` as the master writes.
    fn kept(dir: &Path, monitor: &str) -> String {
        format!(
            "{}sentinel myid {ID1}\n\
             sentinel current-epoch 7\n\
             sentinel monitor voodu-master {monitor} 6379 2\n\
             sentinel auth-pass voodu-master \"s3cret\"\n\
             {TIMINGS}\
             sentinel config-epoch voodu-master 6\n\
             sentinel leader-epoch voodu-master 7\n\
             sentinel known-replica voodu-master cache-0.data.voodu 6379\n\
             sentinel known-slave voodu-master cache-2.data.voodu 6379\n\
             sentinel known-sentinel voodu-master cache-ha-0.data.voodu 26379 {ID0}\n\
             sentinel known-sentinel voodu-master cache-ha-2.data.voodu 26379 {ID2}\n\
             {INCLUDE}",
            settings(dir)
        )
    }

    #[test]
    fn a_restart_keeps_sentinels_state_and_master_and_nothing_else() {
        for shell in shells() {
            let before = previous("cache-1.data.voodu");
            let r = run(&shell, &pod_env("s3cret"), Some(&before), &all_pods(), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let dir = r.conf_path.parent().unwrap().to_path_buf();
            let after = r.conf.unwrap();
            // The master sentinel last knew of (after a failover), the new quorum and
            // password, the default timings instead of the old override, the state lines once.
            assert_eq!(after, kept(&dir, "cache-1.data.voodu"), "{shell:?}");
            assert!(!after.contains("old-pw"));
            assert_eq!(
                r.output,
                "voodu-sentinel-entrypoint: cache-ha-1.data on 127.0.10.7:26379 monitors \
                 voodu-master at cache-1.data.voodu:6379 (as it last knew) with quorum 2; kept \
                 its state from the previous "
                    .to_string()
                    + &format!(
                        "{} (4 known replicas and sentinels)\n",
                        r.conf_path.display()
                    ),
                "{shell:?}"
            );

            // A boot on its own output changes nothing: no line is ever duplicated.
            let again = run(&shell, &pod_env("s3cret"), Some(&after), &all_pods(), &[]);
            assert!(again.status.success(), "{shell:?}: {}", again.output);
            let dir = again.conf_path.parent().unwrap();
            assert_eq!(again.conf.unwrap(), kept(dir, "cache-1.data.voodu"));
        }
    }

    #[test]
    fn state_that_would_mislead_sentinel_is_dropped() {
        let before = format!(
            "sentinel myid {ID1}\n\
             sentinel myid {ID0}\n\
             sentinel current-epoch 7\n\
             sentinel current-epoch 8\n\
             sentinel config-epoch other-master 9\n\
             sentinel leader-epoch voodu-master x\n\
             sentinel monitor voodu-master  6379 1\n\
             sentinel known-replica voodu-master cache-0.data.voodu 6379\n\
             sentinel known-replica voodu-master cache-0.data.voodu 6379\n\
             sentinel known-replica voodu-master cache-5.data.voodu 6379\n\
             sentinel known-replica voodu-master other-0.data.voodu 6379\n\
             sentinel known-replica voodu-master 10.0.0.5 6379\n\
             sentinel known-replica other-master cache-2.data.voodu 6379\n\
             sentinel known-sentinel voodu-master cache-ha-0.data.voodu 26379\n\
             sentinel known-sentinel voodu-master cache-ha-2.data.voodu 26379 {}\n\
             sentinel known-sentinel voodu-master cache-ha-4.data.voodu 26379 {ID2}\n\
             sentinel known-sentinel voodu-master cache-ha-0.data.voodu 26379 {ID0}\n\
             SENTINEL myid {ID2}\n",
            ID0.to_uppercase()
        );
        for shell in shells() {
            let r = run(&shell, &pod_env("pw"), Some(&before), &all_pods(), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            let state: Vec<&str> = conf
                .lines()
                .filter(|l| {
                    [
                        "myid",
                        "current-epoch",
                        "config-epoch",
                        "leader-epoch",
                        "known",
                        "monitor",
                    ]
                    .iter()
                    .any(|o| l.starts_with(&format!("sentinel {o}")))
                })
                .collect();
            assert_eq!(
                state,
                [
                    format!("sentinel myid {ID1}").as_str(),
                    "sentinel current-epoch 7",
                    // The first monitor line, as sentinel 7.0 writes it after failing to
                    // resolve the master (an empty host), is unusable: vd's record decides.
                    "sentinel monitor voodu-master cache-0.data.voodu 6379 2",
                    "sentinel known-replica voodu-master cache-0.data.voodu 6379",
                    &format!(
                        "sentinel known-sentinel voodu-master cache-ha-0.data.voodu 26379 {ID0}"
                    ),
                ],
                "{shell:?}: {conf}"
            );
            // Dropped peers were never looked up unless well-formed.
            assert!(r.lookups.contains(&"cache-5.data.voodu".to_string()));
            assert!(!r.lookups.contains(&"other-0.data.voodu".to_string()));
        }
    }

    #[test]
    fn sentinels_master_is_kept_only_while_it_is_a_pod_of_the_monitored_redis_that_resolves() {
        for shell in shells() {
            for (prev, want) in [
                ("cache-2.data.voodu", "cache-2.data.voodu"),
                // Gone (scaled down) or not started yet: vd's record decides.
                ("cache-7.data.voodu", "cache-0.data.voodu"),
                // The sibling used to watch another redis.
                ("other-1.data.voodu", "cache-0.data.voodu"),
                ("localhost", "cache-0.data.voodu"),
                ("cache-1.other.voodu", "cache-0.data.voodu"),
            ] {
                let hosts = [
                    "cache-0.data.voodu",
                    "cache-2.data.voodu",
                    "other-1.data.voodu",
                    "localhost",
                    "cache-1.other.voodu",
                ];
                let fakes = Fakes {
                    hosts: &hosts,
                    ..Fakes::default()
                };
                let r = run(&shell, &pod_env("pw"), Some(&previous(prev)), &fakes, &[]);
                assert!(r.status.success(), "{shell:?}: {}", r.output);
                let conf = r.conf.unwrap();
                assert!(
                    conf.contains(&format!("\nsentinel monitor voodu-master {want} 6379 2\n")),
                    "{shell:?} {prev}: {conf}"
                );
            }
        }
    }

    #[test]
    fn waits_for_the_master_to_resolve() {
        for shell in shells() {
            let fakes = Fakes {
                late: Some(("cache-0.data.voodu", 3)),
                ..Fakes::default()
            };
            let r = run(&shell, &pod_env("pw"), None, &fakes, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            assert_eq!(r.lookups, ["cache-0.data.voodu"; 3], "{shell:?}");
            assert!(!r.output.contains("does not resolve"), "{}", r.output);
            assert!(r.argv.is_some());
        }
    }

    #[test]
    fn gives_up_waiting_after_30_s_and_starts_anyway() {
        // busybox sh runs its own `sleep`, which a fake on PATH cannot replace: it would really
        // wait 30 s.
        for shell in shells().into_iter().filter(|s| s[0] != "busybox") {
            let fakes = Fakes {
                fake_sleep: true,
                ..Fakes::default()
            };
            let r = run(&shell, &pod_env("pw"), None, &fakes, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            assert_eq!(r.sleeps, ["0.5"; 60], "{shell:?}");
            assert_eq!(r.lookups, ["cache-0.data.voodu"; 61], "{shell:?}");
            assert!(
                r.output.contains(
                    "voodu-sentinel-entrypoint: the master cache-0.data.voodu does not resolve \
                     after 30 s; starting anyway\n"
                ),
                "{}",
                r.output
            );
            assert!(r
                .conf
                .unwrap()
                .contains("\nsentinel monitor voodu-master cache-0.data.voodu 6379 2\n"));
            assert!(r.argv.is_some());
        }
    }

    #[test]
    fn any_password_survives_quoting_and_stays_out_of_argv_and_output() {
        for shell in shells() {
            // The previous config holds the password too (sentinel writes it unquoted).
            let before = previous("cache-0.data.voodu").replace("old-pw", NASTY);
            let env = with(pod_env(NASTY), "REDIS_SENTINEL_PASSWORD", NASTY);
            let r = run(&shell, &env, Some(&before), &all_pods(), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            for prefix in [
                "sentinel auth-pass voodu-master ",
                "requirepass ",
                "sentinel sentinel-pass ",
            ] {
                let value = conf.lines().find_map(|l| l.strip_prefix(prefix)).unwrap();
                assert_eq!(redis_unquote(value), NASTY, "{shell:?}: {prefix}");
            }
            assert_eq!(conf.matches("w$rd").count(), 3, "{shell:?}: {conf}");
            let argv = r.argv.unwrap();
            assert!(
                !argv.contains("w$rd"),
                "{shell:?}: password in argv: {argv}"
            );
            assert!(!r.output.contains("w$rd"), "{shell:?}: {}", r.output);
        }
    }

    #[test]
    fn refuses_to_start_without_what_it_needs() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (pod_env(""), "REDIS_PASSWORD is empty or unset"),
            (
                without(pod_env("pw"), "REDIS_PASSWORD"),
                "REDIS_PASSWORD is empty or unset",
            ),
            (pod_env("a\nb"), "REDIS_PASSWORD contains a line break"),
            (pod_env("a\rb"), "REDIS_PASSWORD contains a line break"),
            (
                without(pod_env("pw"), "REDIS_SENTINEL_PASSWORD"),
                "REDIS_SENTINEL_PASSWORD is empty or unset",
            ),
            (
                with(pod_env("pw"), "REDIS_SENTINEL_PASSWORD", "a\nb"),
                "REDIS_SENTINEL_PASSWORD contains a line break",
            ),
            (
                without(pod_env("pw"), "VOODU_SENTINEL_MONITOR"),
                "VOODU_SENTINEL_MONITOR='' is not the name of a redis",
            ),
            (
                with(pod_env("pw"), "VOODU_SENTINEL_MONITOR", "data/cache"),
                "VOODU_SENTINEL_MONITOR='data/cache' is not the name of a redis",
            ),
            (
                without(pod_env("pw"), "VOODU_SENTINEL_QUORUM"),
                "VOODU_SENTINEL_QUORUM='' is not a number",
            ),
            (
                with(pod_env("pw"), "VOODU_SENTINEL_QUORUM", "two"),
                "VOODU_SENTINEL_QUORUM='two' is not a number",
            ),
            (
                with(pod_env("pw"), "VOODU_SENTINEL_QUORUM", "00"),
                "VOODU_SENTINEL_QUORUM must be 1 or more",
            ),
            (
                with(pod_env("pw"), "REDIS_MASTER_ORDINAL", "one"),
                "REDIS_MASTER_ORDINAL='one' is not an ordinal",
            ),
            (
                with(pod_env("pw"), "VOODU_REPLICA_ORDINAL", ""),
                "VOODU_REPLICA_ORDINAL='' is not an ordinal",
            ),
            (
                without(pod_env("pw"), "VOODU_NAME"),
                "VOODU_NAME is not set",
            ),
            (
                without(pod_env("pw"), "VOODU_SCOPE"),
                "VOODU_SCOPE is not set",
            ),
        ];
        for shell in shells() {
            for (env, want) in &cases {
                let r = run(&shell, env, None, &all_pods(), &[]);
                assert_eq!(r.status.code(), Some(1), "{shell:?} {want}: {}", r.output);
                assert!(r.output.contains(want), "{shell:?}: {}", r.output);
                assert!(r.output.starts_with("voodu-sentinel-entrypoint: "));
                assert!(r.argv.is_none(), "{shell:?}: redis-server ran");
                assert!(r.conf.is_none(), "{shell:?}: wrote a config");
                assert!(!r.output.contains("a\nb"));
            }
        }
    }
}
