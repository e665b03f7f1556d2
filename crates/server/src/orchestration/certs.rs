//! Pod certificates: the root's certificate authority, and the certificate each pod whose
//! workload asks for one (`WorkloadSpec::certificate`) gets before it starts and again before it
//! expires.
//!
//! Layout under the root, all private to the server's user:
//! - `tls/ca.crt`, `tls/ca.key` (0600): the CA, created on first need. Its key never leaves here.
//! - `tls/pods/<pod>/`: what the pod mounts read-only: `tls.crt`, `tls.key` (0600), `ca.crt`;
//!   plus `issued.json`, what the certificate covers and when it expires, which the renewal
//!   decision reads (the pod does not need it, but a directory is mounted as a whole).
//!
//! Files are replaced by writing a sibling and renaming it over the old one, so a pod reading
//! them (redis reloading its certificate) sees either the old file or the new one, never half.
//! The directory (not each file) is what the pod mounts, so a renamed file shows inside it.

use crate::error::ServerError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vd_core::{TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
use vd_tls::{Ca, Subject};

/// How long the CA is valid. Long, because every client that trusts it must be given a new one
/// when it changes.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a pod certificate is valid unless the server is told otherwise.
pub const DEFAULT_POD_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// What a pod's directory records about its certificate.
pub(crate) const ISSUED_FILE: &str = "issued.json";

/// Why a certificate could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The CA or a certificate could not be made or read.
    #[error("{0}")]
    Tls(#[from] vd_tls::TlsError),
    /// Reading or writing the files failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<CertError> for ServerError {
    fn from(e: CertError) -> ServerError {
        match e {
            CertError::Io { context, source } => ServerError::io(context, source),
            CertError::Tls(e) => ServerError::Conflict {
                message: format!("the root's certificate authority: {e}"),
                help: Some(
                    "check tls/ca.crt and tls/ca.key under the root; remove both to have vd \
                     create a new CA (clients must then be given the new one: `vd redis:ca`)"
                        .into(),
                ),
            },
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CertError {
    let context = context.into();
    move |source| CertError::Io { context, source }
}

/// What `issued.json` records: enough to decide, without parsing the certificate, whether it
/// must be issued again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// DNS names covered.
    pub names: Vec<String>,
    /// Addresses covered.
    pub addresses: Vec<String>,
    /// When it was issued (Unix seconds). Its validity starts a little earlier, for clocks
    /// that lag; renewal counts its lifetime from here.
    pub issued_at: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// The CA certificate it was signed by (PEM): a new CA means new certificates.
    pub ca_pem: String,
}

/// Why a pod's certificate is (re)issued; `None` when the one it has still serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reissue {
    /// It has none yet (or its record is unreadable).
    Missing,
    /// It does not cover a name or address the pod now has.
    Subject,
    /// Another CA signed it.
    Ca,
    /// Two thirds of its lifetime have passed, or it is outside its validity.
    Due,
}

/// Pure: whether the certificate recorded as `have` must be issued again for `want`, signed by
/// `ca_pem`, at `now`.
pub fn reissue(have: Option<&Recorded>, want: &Subject, ca_pem: &str, now: i64) -> Option<Reissue> {
    let Some(have) = have else {
        return Some(Reissue::Missing);
    };
    let addresses: Vec<String> = want.addresses.iter().map(IpAddr::to_string).collect();
    let covers = want.names.iter().all(|n| have.names.contains(n))
        && addresses.iter().all(|a| have.addresses.contains(a));
    if !covers {
        Some(Reissue::Subject)
    } else if have.ca_pem != ca_pem {
        Some(Reissue::Ca)
    } else if vd_tls::renewal_due(have.issued_at, have.not_after, now) {
        Some(Reissue::Due)
    } else {
        None
    }
}

/// The root's certificate authority and the pods' certificate directories.
pub struct Authority {
    dir: PathBuf,
    /// How long a pod certificate is valid.
    pub pod_validity: Duration,
    ca: Mutex<Option<Arc<Ca>>>,
    /// Serializes issuing, so a supervisor and the renewal task never write one pod's files at
    /// once.
    issuing: Mutex<()>,
}

impl Authority {
    /// The authority of the root at `root`; nothing is read or created until first needed.
    pub fn new(root: &Path, pod_validity: Duration) -> Authority {
        Authority {
            dir: root.join("tls"),
            pod_validity,
            ca: Mutex::new(None),
            issuing: Mutex::new(()),
        }
    }

    /// The CA: the root's, or a new one written there (its key mode 0600).
    pub fn ca(&self) -> Result<Arc<Ca>, CertError> {
        let mut slot = self.ca.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ca) = slot.as_ref() {
            return Ok(ca.clone());
        }
        let cert_path = self.ca_file();
        let key_path = self.dir.join("ca.key");
        let ca = match (
            std::fs::read_to_string(&cert_path),
            std::fs::read_to_string(&key_path),
        ) {
            (Ok(cert), Ok(key)) => Ca::from_pem(&cert, &key)?,
            (Err(e), _) | (_, Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("read {}", self.dir.display()))(e))
            }
            _ => {
                let ca = Ca::generate(now(), CA_VALIDITY)?;
                std::fs::create_dir_all(&self.dir)
                    .map_err(io(format!("create {}", self.dir.display())))?;
                // The key first: a certificate without its key would be read back as a CA
                // that cannot sign.
                write_file(&key_path, ca.key_pem().as_bytes(), 0o600)?;
                write_file(&cert_path, ca.cert_pem().as_bytes(), 0o644)?;
                tracing::info!(path = %cert_path.display(), "created the root's certificate authority");
                ca
            }
        };
        let ca = Arc::new(ca);
        *slot = Some(ca.clone());
        Ok(ca)
    }

    /// The CA certificate (PEM) that every pod certificate chains to.
    pub fn ca_pem(&self) -> Result<String, CertError> {
        Ok(self.ca()?.cert_pem().to_string())
    }

    /// Where the CA certificate is kept (created by the first [`Authority::ca`]).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The directory a pod mounts.
    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.dir.join("pods").join(pod)
    }

    /// Makes sure `pod` has a certificate for `subject` that is not due for renewal, issuing
    /// one if not. Returns why it issued one, if it did.
    pub fn ensure(&self, pod: &str, subject: &Subject) -> Result<Option<Reissue>, CertError> {
        let ca = self.ca()?;
        let _issuing = self.issuing.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.pod_dir(pod);
        let have = std::fs::read(dir.join(ISSUED_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Recorded>(&b).ok());
        let now = now();
        let Some(why) = reissue(have.as_ref(), subject, ca.cert_pem(), now) else {
            return Ok(None);
        };
        let issued = ca.issue(subject, now, self.pod_validity)?;
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        // The key before the certificate: a reload that reads the new certificate must find
        // its key. Redis reads both at once on a reload, so the order only narrows the window.
        write_file(&dir.join(TLS_KEY_FILE), issued.key_pem.as_bytes(), 0o600)?;
        write_file(&dir.join(TLS_CERT_FILE), issued.cert_pem.as_bytes(), 0o644)?;
        write_file(&dir.join(TLS_CA_FILE), ca.cert_pem().as_bytes(), 0o644)?;
        let record = Recorded {
            names: subject.names.clone(),
            addresses: subject.addresses.iter().map(IpAddr::to_string).collect(),
            issued_at: now,
            not_after: issued.not_after,
            ca_pem: ca.cert_pem().to_string(),
        };
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        write_file(&dir.join(ISSUED_FILE), &json, 0o644)?;
        tracing::info!(pod, reason = ?why, not_after = issued.not_after, "issued a pod certificate");
        Ok(Some(why))
    }

    /// Forgets a pod's certificate (its workload is gone).
    pub fn remove(&self, pod: &str) {
        crate::tidy::remove_dir(self.pod_dir(pod), "a removed pod's certificate");
    }
}

/// Pure: how often running pods' certificates are checked for renewal: a twentieth of their
/// lifetime (renewal is due at two thirds, so a check never comes late by much), between a
/// second and five minutes.
pub fn check_period(pod_validity: Duration) -> Duration {
    (pod_validity / 20).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// What a pod's certificate covers: its per-pod and shared host names, and the addresses it is
/// reached at (the unspecified address, which a container sees as its own, is no address).
pub fn pod_subject(owner: &vd_core::ResourceRef, ordinal: u32, addresses: &[&str]) -> Subject {
    let mut names: Vec<String> = vd_core::naming::pod_hostnames(owner, ordinal).to_vec();
    names.extend(vd_core::naming::alias_hostnames(owner));
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in addresses {
        if let Ok(ip) = a.parse::<IpAddr>() {
            if !ip.is_unspecified() && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    Subject {
        names,
        addresses: ips,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Writes `path` whole with `mode`: a sibling written and synced, then renamed over it.
fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("vd-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(format!("write {}", tmp.display())))?;
    f.write_all(content)
        .and_then(|_| f.sync_all())
        .map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::{Kind, ResourceRef};

    fn subject(names: &[&str], addresses: &[&str]) -> Subject {
        Subject {
            names: names.iter().map(|n| n.to_string()).collect(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn recorded(names: &[&str], addresses: &[&str], from: i64, to: i64) -> Recorded {
        Recorded {
            names: names.iter().map(|n| n.to_string()).collect(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            issued_at: from,
            not_after: to,
            ca_pem: "CA".into(),
        }
    }

    #[test]
    fn reissue_table() {
        let want = subject(&["a.voodu", "b.voodu"], &["127.0.0.5"]);
        let good = recorded(&["a.voodu", "b.voodu"], &["127.0.0.5"], 0, 300);
        // (what, the record, the CA now, now, expected)
        type Case = (
            &'static str,
            Option<Recorded>,
            &'static str,
            i64,
            Option<Reissue>,
        );
        let cases: [Case; 8] = [
            ("none yet", None, "CA", 10, Some(Reissue::Missing)),
            ("covers, early", Some(good.clone()), "CA", 10, None),
            (
                "covers, just before 2/3",
                Some(good.clone()),
                "CA",
                199,
                None,
            ),
            ("at 2/3", Some(good.clone()), "CA", 200, Some(Reissue::Due)),
            ("expired", Some(good.clone()), "CA", 301, Some(Reissue::Due)),
            (
                "a name missing",
                Some(recorded(&["a.voodu"], &["127.0.0.5"], 0, 300)),
                "CA",
                10,
                Some(Reissue::Subject),
            ),
            (
                "a new address",
                Some(recorded(&["a.voodu", "b.voodu"], &["127.0.0.6"], 0, 300)),
                "CA",
                10,
                Some(Reissue::Subject),
            ),
            (
                "another CA",
                Some(good.clone()),
                "CA2",
                10,
                Some(Reissue::Ca),
            ),
        ];
        for (what, have, ca, now, expected) in cases {
            assert_eq!(reissue(have.as_ref(), &want, ca, now), expected, "{what}");
        }
        // Covering more than wanted is fine (an address the pod no longer has does no harm).
        let more = recorded(&["a.voodu", "b.voodu", "c"], &["127.0.0.5", "::1"], 0, 300);
        assert_eq!(reissue(Some(&more), &want, "CA", 10), None);
    }

    #[test]
    fn renewal_checks_come_often_enough_and_not_too_often() {
        let d = Duration::from_secs;
        assert_eq!(check_period(d(90 * 86_400)), d(300));
        assert_eq!(check_period(d(600)), d(30));
        assert_eq!(check_period(d(20)), d(1));
    }

    #[test]
    fn pod_subject_covers_the_names_and_real_addresses() {
        let id = ResourceRef::new(Kind::Redis, "data", "cache");
        let s = pod_subject(&id, 2, &["127.0.0.9", "0.0.0.0", "127.0.0.9", "nonsense"]);
        assert_eq!(
            s.names,
            [
                "cache-2.data",
                "cache-2.data.voodu",
                "cache.data",
                "cache.data.voodu"
            ]
        );
        assert_eq!(s.addresses, ["127.0.0.9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn issues_once_keeps_the_key_private_and_verifies() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let auth = Authority::new(root.path(), Duration::from_secs(3600));
        let id = ResourceRef::new(Kind::Redis, "data", "cache");
        let want = pod_subject(&id, 0, &["127.0.0.9"]);
        assert_eq!(
            auth.ensure("data-cache.0", &want).unwrap(),
            Some(Reissue::Missing)
        );
        assert_eq!(auth.ensure("data-cache.0", &want).unwrap(), None);
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(root.path().join("tls/ca.key")), 0o600);
        let dir = auth.pod_dir("data-cache.0");
        assert_eq!(mode(dir.join(TLS_KEY_FILE)), 0o600);
        let cert = std::fs::read_to_string(dir.join(TLS_CERT_FILE)).unwrap();
        let ca = std::fs::read_to_string(dir.join(TLS_CA_FILE)).unwrap();
        vd_tls::verify(
            &cert,
            &ca,
            &["cache-0.data.voodu".into(), "127.0.0.9".into()],
            now(),
        )
        .unwrap();
        // A server started again on the root keeps its CA.
        let again = Authority::new(root.path(), Duration::from_secs(3600));
        assert_eq!(again.ca_pem().unwrap(), ca);
        assert_eq!(again.ensure("data-cache.0", &want).unwrap(), None);
        // A new address is covered at the next start.
        let moved = pod_subject(&id, 0, &["127.0.0.10"]);
        assert_eq!(
            again.ensure("data-cache.0", &moved).unwrap(),
            Some(Reissue::Subject)
        );
    }
}
