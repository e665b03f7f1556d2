//! The entrypoint wrapper, mounted read-only at [`ENTRYPOINT_PATH`](super::ENTRYPOINT_PATH).
//!
//! The script's source is `entrypoint.sh` next to this file (so it can be read and linted as
//! shell); the paths it uses are filled in from this module's constants.

use super::{CONF_PATH, ENTRYPOINT_PATH, REDIS_PORT, RUN_DIR};

const TEMPLATE: &str = include_str!("entrypoint.sh");

/// The entrypoint: reads `REDIS_PASSWORD`, `REDIS_MASTER_ORDINAL` and
/// the pod's `VOODU_*` identity, writes `$VOODU_REDIS_RUN_DIR/redis.conf` (default
/// `/run/voodu-redis`, mode 0600) as `include /etc/redis/redis.conf` followed by `bind`,
/// `requirepass`, `masterauth`, `replica-announce-ip` and, on any ordinal but the master's,
/// `replicaof <name>-<M>.<scope>.voodu 6379`; then `exec redis-server <that file>`.
///
/// The per-pod settings come after the include, so they win over the base config and over
/// operator files in `conf.d/` (validation rejects conf.d files that set them).
pub fn entrypoint_script() -> String {
    TEMPLATE
        .replace("@ENTRYPOINT_PATH@", ENTRYPOINT_PATH)
        .replace("@CONF_PATH@", CONF_PATH)
        .replace("@CONF_D@", super::CONF_D)
        .replace("@RUN_DIR@", RUN_DIR)
        .replace("@PORT@", &REDIS_PORT.to_string())
        .replace(
            "@CLUSTER_NODE_TIMEOUT@",
            &super::cluster::NODE_TIMEOUT_MS.to_string(),
        )
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

    #[test]
    fn snapshot() {
        let script = entrypoint_script();
        for placeholder in [
            "@ENTRYPOINT_PATH@",
            "@CONF_PATH@",
            "@CONF_D@",
            "@RUN_DIR@",
            "@PORT@",
            "@CLUSTER_NODE_TIMEOUT@",
            "@TLS_DIR@",
            "@TLS_CERT@",
            "@TLS_KEY@",
            "@TLS_CA@",
            "@SHELL_FUNCTIONS@",
        ] {
            assert!(TEMPLATE.contains(placeholder), "{placeholder} unused");
            assert!(!script.contains(placeholder), "{placeholder} left unfilled");
        }
        super::super::check_snapshot(
            "entrypoint.txt",
            include_str!("snapshots/entrypoint.txt"),
            &script,
        );
    }

    use super::super::{redis_unquote, NASTY};

    struct Run {
        status: std::process::ExitStatus,
        output: String,
        argv: Option<String>,
        conf: Option<String>,
        run_dir: PathBuf,
    }

    /// Runs the entrypoint under `shell` with a fake `redis-server` first on PATH that records
    /// its argv (one argument per line) and exits.
    fn run(shell: &[&str], env: &[(&str, &str)], extra_args: &[&str]) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let fake = bin.join("redis-server");
        fs::write(
            &fake,
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >\"$FAKE_ARGV\"\n",
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.path().join("entrypoint");
        fs::write(&script, entrypoint_script()).unwrap();
        let run_dir = dir.path().join("run").join("voodu-redis");
        let argv_file = dir.path().join("argv");
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .arg(&script)
            .args(extra_args)
            .env_clear()
            .env("PATH", path)
            .env("FAKE_ARGV", &argv_file)
            .env("VOODU_REDIS_RUN_DIR", &run_dir)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let conf = fs::read_to_string(run_dir.join("redis.conf")).ok();
        let run = Run {
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            argv: fs::read_to_string(&argv_file).ok(),
            conf,
            run_dir: run_dir.clone(),
        };
        if run.conf.is_some() {
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&run_dir), 0o700, "runtime dir must be private");
            assert_eq!(
                mode(&run_dir.join("redis.conf")),
                0o600,
                "runtime conf must be private"
            );
        }
        // Keep the temp dir alive until the checks above ran.
        drop(dir);
        run
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

    fn pod_env<'a>(ordinal: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("REDIS_PASSWORD", password),
            ("VOODU_REPLICA_ORDINAL", ordinal),
            ("VOODU_POD_IP", "127.0.10.3"),
            ("VOODU_NAME", "cache"),
            ("VOODU_SCOPE", "data"),
        ]
    }

    fn conf_value<'a>(conf: &'a str, directive: &str) -> &'a str {
        conf.lines()
            .find_map(|l| l.strip_prefix(&format!("{directive} ")))
            .unwrap_or_else(|| panic!("no {directive} in\n{conf}"))
    }

    #[test]
    fn master_boots_without_replicaof() {
        for shell in shells() {
            let r = run(&shell, &pod_env("0", "s3cret"), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf_path = r.run_dir.join("redis.conf");
            assert_eq!(
                r.conf.as_deref().unwrap(),
                "# Runtime config written by /usr/local/bin/voodu-redis-entrypoint at boot; do not edit.\n\
                 include /etc/redis/redis.conf\n\
                 bind \"127.0.10.3\"\n\
                 requirepass \"s3cret\"\n\
                 masterauth \"s3cret\"\n\
                 replica-announce-ip \"cache-0.data.voodu\"\n",
                "{shell:?}"
            );
            assert_eq!(
                r.argv.as_deref().unwrap(),
                format!("{}\n", conf_path.display()),
                "{shell:?}"
            );
            assert!(!r.output.contains("s3cret"), "{shell:?}: {}", r.output);
            assert!(
                r.output.contains("cache-0.data starts as master"),
                "{}",
                r.output
            );
        }
    }

    #[test]
    fn replica_follows_the_master_ordinal() {
        for shell in shells() {
            let mut env = pod_env("2", "s3cret");
            env.push(("REDIS_MASTER_ORDINAL", "1"));
            let r = run(&shell, &env, &["--loglevel", "verbose"]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            assert_eq!(
                r.conf.as_deref().unwrap(),
                "# Runtime config written by /usr/local/bin/voodu-redis-entrypoint at boot; do not edit.\n\
                 include /etc/redis/redis.conf\n\
                 bind \"127.0.10.3\"\n\
                 requirepass \"s3cret\"\n\
                 masterauth \"s3cret\"\n\
                 replica-announce-ip \"cache-2.data.voodu\"\n\
                 replicaof \"cache-1.data.voodu\" 6379\n",
                "{shell:?}"
            );
            // Extra arguments reach redis-server after the config file.
            let conf_path = r.run_dir.join("redis.conf");
            assert_eq!(
                r.argv.as_deref().unwrap(),
                format!("{}\n--loglevel\nverbose\n", conf_path.display())
            );
            assert!(!r.output.contains("s3cret"));
        }
    }

    #[test]
    fn a_cluster_node_keeps_nodes_conf_on_its_claim_and_follows_no_master() {
        for shell in shells() {
            let mut env = pod_env("4", "s3cret");
            env.push(("REDIS_MASTER_ORDINAL", "1"));
            env.push(("VOODU_REDIS_CLUSTER", "yes"));
            let r = run(&shell, &env, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            assert_eq!(
                r.conf.as_deref().unwrap(),
                "# Runtime config written by /usr/local/bin/voodu-redis-entrypoint at boot; do not edit.\n\
                 include /etc/redis/redis.conf\n\
                 bind \"127.0.10.3\"\n\
                 requirepass \"s3cret\"\n\
                 masterauth \"s3cret\"\n\
                 replica-announce-ip \"cache-4.data.voodu\"\n\
                 cluster-enabled yes\n\
                 cluster-config-file /data/nodes.conf\n\
                 cluster-node-timeout 5000\n\
                 cluster-require-full-coverage no\n\
                 cluster-announce-hostname \"cache-4.data.voodu\"\n",
                "{shell:?}"
            );
            assert!(
                r.output.contains("starts as a cluster node"),
                "{}",
                r.output
            );
        }
    }

    #[test]
    fn a_tls_replica_listens_on_tls_only_and_replicates_over_it() {
        for shell in shells() {
            let certs = tempfile::tempdir().unwrap();
            for f in [
                crate::TLS_CERT_FILE,
                crate::TLS_KEY_FILE,
                crate::TLS_CA_FILE,
            ] {
                fs::write(certs.path().join(f), "pem").unwrap();
            }
            let dir = certs.path().display().to_string();
            let mut env = pod_env("1", "s3cret");
            env.push(("VOODU_REDIS_TLS", "yes"));
            env.push(("VOODU_REDIS_TLS_DIR", &dir));
            let r = run(&shell, &env, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            assert_eq!(
                r.conf.as_deref().unwrap(),
                format!(
                    "# Runtime config written by /usr/local/bin/voodu-redis-entrypoint at boot; do not edit.\n\
                     include /etc/redis/redis.conf\n\
                     bind \"127.0.10.3\"\n\
                     requirepass \"s3cret\"\n\
                     masterauth \"s3cret\"\n\
                     port 0\n\
                     tls-port 6379\n\
                     tls-cert-file \"{dir}/tls.crt\"\n\
                     tls-key-file \"{dir}/tls.key\"\n\
                     tls-ca-cert-file \"{dir}/ca.crt\"\n\
                     tls-auth-clients optional\n\
                     tls-replication yes\n\
                     replica-announce-ip \"cache-1.data.voodu\"\n\
                     replicaof \"cache-0.data.voodu\" 6379\n"
                ),
                "{shell:?}"
            );
            assert!(r.output.contains("(TLS only)"), "{}", r.output);
            // A missing file stops the pod with what to check, before redis-server runs.
            fs::remove_file(certs.path().join(crate::TLS_KEY_FILE)).unwrap();
            let r = run(&shell, &env, &[]);
            assert!(!r.status.success(), "{shell:?}");
            assert!(r.output.contains("tls.key is missing"), "{}", r.output);
            assert!(r.argv.is_none());
        }
    }

    #[test]
    fn a_tls_cluster_node_puts_the_bus_on_tls() {
        for shell in shells() {
            let certs = tempfile::tempdir().unwrap();
            for f in [
                crate::TLS_CERT_FILE,
                crate::TLS_KEY_FILE,
                crate::TLS_CA_FILE,
            ] {
                fs::write(certs.path().join(f), "pem").unwrap();
            }
            let dir = certs.path().display().to_string();
            let mut env = pod_env("0", "s3cret");
            env.push(("VOODU_REDIS_TLS", "yes"));
            env.push(("VOODU_REDIS_TLS_DIR", &dir));
            env.push(("VOODU_REDIS_CLUSTER", "yes"));
            let r = run(&shell, &env, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            assert!(
                conf.contains("tls-replication yes\ntls-cluster yes\n"),
                "{conf}"
            );
            assert!(conf.contains("cluster-enabled yes\n"), "{conf}");
        }
    }

    #[test]
    fn master_ordinal_defaults_to_zero_and_ip_to_any() {
        for shell in shells() {
            let env: Vec<_> = pod_env("1", "pw")
                .into_iter()
                .filter(|(k, _)| *k != "VOODU_POD_IP")
                .collect();
            let r = run(&shell, &env, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            assert_eq!(conf_value(&conf, "bind"), "\"0.0.0.0\"");
            assert_eq!(
                conf_value(&conf, "replicaof"),
                "\"cache-0.data.voodu\" 6379"
            );
            // `01` is ordinal 1: this pod is then the master.
            let mut env = pod_env("1", "pw");
            env.push(("REDIS_MASTER_ORDINAL", "01"));
            let r = run(&shell, &env, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            assert!(!r.conf.unwrap().contains("replicaof"), "{shell:?}");
        }
    }

    #[test]
    fn ha_settings_come_before_the_base_config_so_conf_d_overrides_them() {
        for shell in shells() {
            let mut env = pod_env("0", "pw");
            env.push(("REDIS_MIN_REPLICAS_TO_WRITE", "1"));
            env.push(("REDIS_MIN_REPLICAS_MAX_LAG", "10"));
            let r = run(&shell, &env, &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            let pos = |k: &str| conf.find(k).unwrap_or_else(|| panic!("{k} in {conf}"));
            assert_eq!(conf_value(&conf, "min-replicas-to-write"), "1");
            assert_eq!(conf_value(&conf, "min-replicas-max-lag"), "10");
            assert!(pos("min-replicas-max-lag") < pos("include /etc/redis/redis.conf"));
            let mut env = pod_env("0", "pw");
            env.push(("REDIS_MIN_REPLICAS_TO_WRITE", "1\nrequirepass x"));
            let r = run(&shell, &env, &[]);
            assert_eq!(r.status.code(), Some(1), "{shell:?}: {}", r.output);
            assert!(r.output.contains("must be whole numbers"), "{}", r.output);
            assert!(r.conf.is_none());
        }
    }

    #[test]
    fn any_password_survives_quoting_and_stays_out_of_argv_and_output() {
        for shell in shells() {
            let r = run(&shell, &pod_env("0", NASTY), &[]);
            assert!(r.status.success(), "{shell:?}: {}", r.output);
            let conf = r.conf.unwrap();
            assert_eq!(
                redis_unquote(conf_value(&conf, "requirepass")),
                NASTY,
                "{shell:?}"
            );
            assert_eq!(
                redis_unquote(conf_value(&conf, "masterauth")),
                NASTY,
                "{shell:?}"
            );
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
            (pod_env("0", ""), "REDIS_PASSWORD is empty or unset"),
            (pod_env("0", "a\nb"), "REDIS_PASSWORD contains a line break"),
            (pod_env("0", "a\rb"), "REDIS_PASSWORD contains a line break"),
            (
                {
                    let mut e = pod_env("0", "pw");
                    e.push(("REDIS_MASTER_ORDINAL", "one"));
                    e
                },
                "REDIS_MASTER_ORDINAL='one' is not an ordinal",
            ),
            (
                pod_env("", "pw"),
                "VOODU_REPLICA_ORDINAL='' is not an ordinal",
            ),
            (
                pod_env("0", "pw")
                    .into_iter()
                    .filter(|(k, _)| *k != "VOODU_NAME")
                    .collect(),
                "VOODU_NAME is not set",
            ),
        ];
        for shell in shells() {
            for (env, want) in &cases {
                let r = run(&shell, env, &[]);
                assert_eq!(r.status.code(), Some(1), "{shell:?} {want}: {}", r.output);
                assert!(r.output.contains(want), "{shell:?}: {}", r.output);
                assert!(r.argv.is_none(), "{shell:?}: redis-server ran");
                assert!(r.conf.is_none(), "{shell:?}: wrote a config");
                assert!(!r.output.contains("a\nb"));
            }
        }
    }
}
