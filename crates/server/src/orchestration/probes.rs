//! Running health checks against a pod.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vd_core::ProbeAction;
use vd_runtime::RunningPod;

/// Runs one check; `Err` says why it failed.
pub async fn check(
    action: &ProbeAction,
    ip: &str,
    pod: &dyn RunningPod,
    env: Option<&std::collections::BTreeMap<String, String>>,
    timeout: Duration,
) -> Result<(), String> {
    match action {
        ProbeAction::TcpSocket { port } => {
            match tokio::time::timeout(timeout, TcpStream::connect((ip, *port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("tcp {ip}:{port}: {e}")),
                Err(_) => Err(format!("tcp {ip}:{port}: timed out after {timeout:?}")),
            }
        }
        ProbeAction::HttpGet { port, path } => {
            match tokio::time::timeout(timeout, http_status(ip, *port, path)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("GET {path} on {ip}:{port} returned {code}")),
                Ok(Err(e)) => Err(format!("GET {path} on {ip}:{port}: {e}")),
                Err(_) => Err(format!(
                    "GET {path} on {ip}:{port}: timed out after {timeout:?}"
                )),
            }
        }
        ProbeAction::Exec { command } => match pod.exec(command, env, timeout).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("`{}` exited with {code}", command.join(" "))),
            Err(e) => Err(format!("`{}`: {e}", command.join(" "))),
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
