//! Certificates from [`vd_tls::Ca`] in a real `redis-server` listening on TLS only: redis-cli
//! verifies them with the CA, plain TCP gets nowhere, and a renewed certificate is picked up
//! with `CONFIG SET` (no restart) while a connection opened before keeps working.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vd_tls::{Ca, Subject};

/// A child process killed when dropped, also when the test fails.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(dir: &Path, port: u16, tls: bool, args: &[&str]) -> Output {
    let mut c = Command::new("redis-cli");
    c.args(["-e", "-h", "127.0.0.1", "-p", &port.to_string()]);
    if tls {
        c.arg("--tls").arg("--cacert").arg(dir.join("ca.crt"));
    }
    c.args(args).stdin(Stdio::null()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The serial number of the certificate the server presents to a new connection.
fn presented_serial(dir: &Path, port: u16) -> String {
    let s = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(dir.join("ca.crt"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut x = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x.stdin.take().unwrap().write_all(&s.stdout).unwrap();
    String::from_utf8_lossy(&x.wait_with_output().unwrap().stdout)
        .trim()
        .to_string()
}

fn serial_of(cert: &Path) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn write_cert(dir: &Path, ca: &Ca, now: i64) {
    let subject = Subject {
        names: vec!["localhost".into()],
        addresses: vec!["127.0.0.1".parse().unwrap()],
    };
    let c = ca
        .issue(&subject, now, Duration::from_secs(86_400))
        .unwrap();
    // Written beside and renamed over, as a renewal must: redis may read at any moment.
    for (name, text) in [("tls.crt", &c.cert_pem), ("tls.key", &c.key_pem)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

#[test]
fn redis_serves_tls_only_with_an_issued_certificate_and_reloads_a_renewed_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::generate(now(), Duration::from_secs(365 * 86_400)).unwrap();
    std::fs::write(d.join("ca.crt"), ca.cert_pem()).unwrap();
    write_cert(d, &ca, now());

    let port = free_port();
    let _server = Kill(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(d.join("tls.crt"))
            .arg("--tls-key-file")
            .arg(d.join("tls.key"))
            .arg("--tls-ca-cert-file")
            .arg(d.join("ca.crt"))
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while stdout(&cli(d, port, true, &["ping"])) != "PONG" {
        assert!(
            Instant::now() < deadline,
            "redis-server never answered over TLS"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Plain TCP to the TLS port gets no answer.
    let plain = cli(d, port, false, &["ping"]);
    assert_ne!(stdout(&plain), "PONG");
    assert!(!plain.status.success());

    // A connection opened before the renewal.
    let mut before = Kill(
        Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-CAfile",
            ])
            .arg(d.join("ca.crt"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut input = before.0.stdin.take().unwrap();
    let mut output = BufReader::new(before.0.stdout.take().unwrap());
    let mut ping = |what: &str| {
        input.write_all(b"PING\r\n").unwrap();
        input.flush().unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "+PONG", "{what}");
    };
    ping("before the renewal");

    let old = presented_serial(d, port);
    assert_eq!(old, serial_of(&d.join("tls.crt")));
    write_cert(d, &ca, now());
    let reload = cli(
        d,
        port,
        true,
        &[
            "config",
            "set",
            "tls-cert-file",
            d.join("tls.crt").to_str().unwrap(),
        ],
    );
    assert_eq!(stdout(&reload), "OK", "{reload:?}");
    let new = presented_serial(d, port);
    assert_ne!(new, old, "a new connection sees the renewed certificate");
    assert_eq!(new, serial_of(&d.join("tls.crt")));
    ping("after the renewal, on the connection opened before it");
    assert_eq!(stdout(&cli(d, port, true, &["ping"])), "PONG");
}
