//! The readiness check vd writes for its redis, sentinel and proxy pods, and how the
//! controller recognises it again in a pod's probe to run it itself.
//!
//! The check is `redis-cli [--tls --cacert CA] -e -h ${VOODU_POD_IP} [-p PORT] ping`: a
//! command, so a user reading the spec sees exactly what ready means, and so it could run
//! inside the pod. Run inside the pod it costs a process per check, and on the container
//! runtime a `docker exec` per check (slow on a small machine, and able to wedge the daemon on
//! a frozen container). The controller runs the same PING over its own connection instead:
//! same address, same port, the password from the same `REDISCLI_AUTH`, TLS verified against
//! the same CA, and an error reply fails it as `-e` does. Only the exact shape written here is
//! recognised; any other command, written by a user, runs as written.

use super::tls_ca_path;

/// `redis-cli` PING of the pod's own address on `port` (the default 6379 when `None`), over
/// TLS trusting the pod's mounted CA when `tls`.
pub fn ping_command(port: Option<u16>, tls: bool) -> Vec<String> {
    let mut argv = vec!["redis-cli".to_string()];
    if tls {
        argv.extend(["--tls".to_string(), "--cacert".to_string(), tls_ca_path()]);
    }
    argv.extend(["-e", "-h", "${VOODU_POD_IP}"].map(String::from));
    if let Some(p) = port {
        argv.extend(["-p".to_string(), p.to_string()]);
    }
    argv.push("ping".to_string());
    argv
}

/// A recognised [`ping_command`], its variables filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingCheck {
    /// The address it pings (the pod's own).
    pub host: String,
    /// The port it pings.
    pub port: u16,
    /// TLS, trusting the CA vd mounts into TLS pods.
    pub tls: bool,
}

impl PingCheck {
    /// The check `argv` asks for, if it is exactly a [`ping_command`] with `${VOODU_POD_IP}`
    /// filled in by `pod_ip`.
    pub fn parse(argv: &[String], pod_ip: &str) -> Option<PingCheck> {
        let mut rest: Vec<&str> = argv.iter().map(String::as_str).collect();
        if rest.first() != Some(&"redis-cli") || rest.last() != Some(&"ping") {
            return None;
        }
        rest = rest[1..rest.len() - 1].to_vec();
        let ca = tls_ca_path();
        let tls = match rest.as_slice() {
            ["--tls", "--cacert", path, ..] if *path == ca => {
                rest.drain(..3);
                true
            }
            _ => false,
        };
        let port = match rest.as_slice() {
            ["-e", "-h", host, "-p", port] if *host == pod_ip => port.parse().ok()?,
            ["-e", "-h", host] if *host == pod_ip => super::REDIS_PORT,
            _ => return None,
        };
        Some(PingCheck {
            host: pod_ip.to_string(),
            port,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(argv: Vec<String>, ip: &str) -> Vec<String> {
        argv.into_iter()
            .map(|a| a.replace("${VOODU_POD_IP}", ip))
            .collect()
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn every_written_check_is_recognised() {
        let ip = "10.0.0.7";
        for (port, tls, want) in [
            (None, false, 6379),
            (None, true, 6379),
            (Some(26379), false, 26379),
            (Some(26379), true, 26379),
            (Some(6379), true, 6379),
        ] {
            let got = PingCheck::parse(&filled(ping_command(port, tls), ip), ip);
            assert_eq!(
                got,
                Some(PingCheck {
                    host: ip.into(),
                    port: want,
                    tls
                }),
                "{port:?} {tls}"
            );
        }
    }

    #[test]
    fn anything_else_runs_as_written() {
        let ip = "10.0.0.7";
        let ca = tls_ca_path();
        for (i, a) in [
            // No -e: an error reply would pass, so the native check would be stricter.
            format!("redis-cli -h {ip} ping"),
            // Another host, or the variable left unfilled.
            "redis-cli -e -h 10.0.0.8 ping".to_string(),
            "redis-cli -e -h ${VOODU_POD_IP} ping".to_string(),
            // Another CA than the one vd mounts.
            format!("redis-cli --tls --cacert /other/ca.crt -e -h {ip} ping"),
            // More than a ping.
            format!("redis-cli -e -h {ip} -p 6379 -a secret ping"),
            format!("redis-cli -e -h {ip} info"),
            format!("redis-cli -e -h {ip} -p notaport ping"),
            format!("redis-cli --tls --cacert {ca} -e -h {ip} -p 70000 ping"),
            format!("sh -c redis-cli -e -h {ip} ping"),
            "ping".to_string(),
            String::new(),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(PingCheck::parse(&argv(a), ip), None, "case {i}: {a}");
        }
    }
}
