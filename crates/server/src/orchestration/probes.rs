//! Running health checks against a pod.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vd_core::ProbeAction;
use vd_runtime::RunningPod;

/// Why one check failed; the message is what `vd get pods` and events show.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The TCP connection failed.
    #[error("tcp {addr}: {source}")]
    Tcp {
        /// `ip:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An HTTP GET answered with a status outside 200..400.
    #[error("GET {path} on {addr} returned {code}")]
    HttpStatus {
        /// The path asked.
        path: String,
        /// `ip:port`.
        addr: String,
        /// The status.
        code: u16,
    },
    /// An HTTP GET failed.
    #[error("GET {path} on {addr}: {source}")]
    Http {
        /// The path asked.
        path: String,
        /// `ip:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command exited non-zero.
    #[error("`{command}` exited with {code}{}", said.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    ExitCode {
        /// The command line.
        command: String,
        /// Its exit code.
        code: i32,
        /// The last line it printed, if any.
        said: Option<String>,
    },
    /// A command the controller ran itself, the same check over its own connection, failed.
    #[error("`{command}`: {reason}")]
    Failed {
        /// The command line it stands for.
        command: String,
        /// Why.
        reason: String,
    },
    /// A command could not be run.
    #[error("`{command}`: {source}")]
    Exec {
        /// The command line.
        command: String,
        /// Why.
        source: vd_runtime::RuntimeError,
    },
    /// The check took longer than its timeout.
    #[error("{what}: timed out after {timeout:?}")]
    Timeout {
        /// What was checked (`tcp ip:port`, `GET path on ip:port`).
        what: String,
        /// The probe's timeout.
        timeout: Duration,
    },
}

/// Runs one check; `Err` says why it failed.
pub async fn check(
    action: &ProbeAction,
    ip: &str,
    pod: &dyn RunningPod,
    env: Option<&std::collections::BTreeMap<String, String>>,
    timeout: Duration,
) -> Result<(), ProbeError> {
    match action {
        ProbeAction::TcpSocket { port } => {
            let addr = format!("{ip}:{port}");
            match tokio::time::timeout(timeout, TcpStream::connect((ip, *port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(source)) => Err(ProbeError::Tcp { addr, source }),
                Err(_) => Err(ProbeError::Timeout {
                    what: format!("tcp {addr}"),
                    timeout,
                }),
            }
        }
        ProbeAction::HttpGet { port, path } => {
            let addr = format!("{ip}:{port}");
            let path = path.clone();
            match tokio::time::timeout(timeout, http_status(ip, *port, &path)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(ProbeError::HttpStatus { path, addr, code }),
                Ok(Err(source)) => Err(ProbeError::Http { path, addr, source }),
                Err(_) => Err(ProbeError::Timeout {
                    what: format!("GET {path} on {addr}"),
                    timeout,
                }),
            }
        }
        ProbeAction::Exec { command } => match pod.exec(command, env, timeout).await {
            // Tools such as `redis-cli ping` exit 0 while printing an error (`NOAUTH ...`);
            // only the exit code counts, as in Kubernetes.
            Ok(out) if out.code == 0 => Ok(()),
            Ok(out) => Err(ProbeError::ExitCode {
                command: command.join(" "),
                code: out.code,
                said: out.last_line(),
            }),
            Err(source) => Err(ProbeError::Exec {
                command: command.join(" "),
                source,
            }),
        },
    }
}

/// A minimal HTTP/1.0 GET returning the status code; probes need nothing more.
async fn http_status(ip: &str, port: u16, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect((ip, port)).await?;
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: vd-probe\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}
