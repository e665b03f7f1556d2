//! vd's client over TLS against real TLS-only redis-server processes whose certificates come
//! from vd's CA: a master and a replica replicating over TLS, both on 127.0.0.1.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests and benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_ports, HOST};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vd_redisctl::{Access, Node, Role, TlsTrust};
use vd_tls::{Ca, Subject};

const TIMEOUT: Duration = Duration::from_secs(5);
const PW: &str = "s3cret";

/// Every child is killed when this is dropped, also on panic.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A TLS-only redis-server with a certificate for `name` and 127.0.0.1; replication over TLS.
fn server(dir: &Path, ca: &Ca, name: &str, port: u16, extra: &[&str]) -> Child {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let subject = Subject {
        names: vec![name.to_string()],
        addresses: vec![HOST.parse().unwrap()],
    };
    let c = ca
        .issue(&subject, now(), Duration::from_secs(86_400))
        .unwrap();
    std::fs::write(d.join("tls.crt"), &c.cert_pem).unwrap();
    std::fs::write(d.join("tls.key"), &c.key_pem).unwrap();
    std::fs::write(d.join("ca.crt"), ca.cert_pem()).unwrap();
    Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-replication", "yes"])
        .args(["--tls-auth-clients", "optional"])
        .args(["--requirepass", PW, "--masterauth", PW])
        .arg("--tls-cert-file")
        .arg(d.join("tls.crt"))
        .arg("--tls-key-file")
        .arg(d.join("tls.key"))
        .arg("--tls-ca-cert-file")
        .arg(d.join("ca.crt"))
        .arg("--dir")
        .arg(&d)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn vd_speaks_tls_to_a_tls_only_redis_and_verifies_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate(now(), Duration::from_secs(365 * 86_400)).unwrap();
    let [mp, rp] = free_ports::<2>();
    let replicaof = format!("{HOST} {mp}");
    let _children = Children(vec![
        server(dir.path(), &ca, "cache-0.data.voodu", mp, &[]),
        server(
            dir.path(),
            &ca,
            "cache-1.data.voodu",
            rp,
            &["--replicaof", &replicaof],
        ),
    ]);
    let trust = TlsTrust::new(ca.cert_pem());
    let tls = Access {
        password: Some(PW),
        tls: Some(&trust),
    };

    // The replica links up over TLS: what vd reads, over TLS.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let linked = match Node::connect_with(HOST, rp, tls, TIMEOUT).await {
            Ok(mut n) => n.role().await.ok(),
            Err(_) => None,
        };
        if let Some((Role::Replica, true)) = linked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never linked up over TLS: {linked:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut m = Node::connect_with(HOST, mp, tls, TIMEOUT).await.unwrap();
    m.ping().await.unwrap();
    let (role, _) = m.role().await.unwrap();
    assert_eq!(role, Role::Master);

    // Plain TCP to a TLS port gets no session.
    let plain = async {
        let mut n = Node::connect(HOST, mp, Some(PW), Duration::from_secs(2)).await?;
        n.ping().await
    };
    assert!(plain.await.is_err(), "plain TCP reached a TLS-only redis");
    // Another CA does not vouch for the server.
    let other = Ca::generate(now(), Duration::from_secs(86_400)).unwrap();
    let stranger = TlsTrust::new(other.cert_pem());
    let wrong_ca = Access {
        password: Some(PW),
        tls: Some(&stranger),
    };
    let Err(e) = Node::connect_with(HOST, mp, wrong_ca, TIMEOUT).await else {
        panic!("a certificate from another CA was accepted");
    };
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // A name the certificate does not cover is refused, though it reaches the same socket.
    let Err(e) = Node::connect_with("localhost", mp, tls, TIMEOUT).await else {
        panic!("a name the certificate does not cover was accepted");
    };
    assert!(e.to_string().contains("not valid for name"), "{e}");
    // The password still counts over TLS.
    let no_password = Access {
        password: Some("wrong"),
        tls: Some(&trust),
    };
    assert!(Node::connect_with(HOST, mp, no_password, TIMEOUT)
        .await
        .is_err());

    // A backup's snapshot comes over TLS too, whole and checked.
    let mut rdb = Vec::new();
    let payload = vd_redisctl::rdb::fetch(HOST, mp, tls, &mut rdb, TIMEOUT, TIMEOUT)
        .await
        .unwrap();
    assert!(rdb.starts_with(b"REDIS"), "{payload:?}");
    vd_redisctl::rdb::verify(&rdb).unwrap();
    let plain = vd_redisctl::rdb::fetch(
        HOST,
        mp,
        Access::plain(Some(PW)),
        &mut Vec::new(),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await;
    assert!(plain.is_err(), "a plain-text snapshot of a TLS-only redis");
}
