//! vd's certificate authority and certificate checks, for `tls {}` in a redis block.
//!
//! - [`Ca`]: one per root. Its key never leaves the root; it signs each pod a certificate
//!   ([`Ca::issue`]) for every name the pod is reached by and its address.
//! - [`renewal_due`] (pure): when a certificate is replaced, well before it expires.
//! - [`verify`]: whether a certificate chains to a CA and covers given names at a given time,
//!   the check vd makes of certificates an operator brings and of the ones it issued.
//!
//! Times are Unix seconds, passed in: nothing here reads the clock, so every decision is a
//! function of its arguments. Key generation draws from the OS random source (through ring).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::IpAddr;
use std::time::Duration;

/// The CA certificate's subject, followed by an id derived from its key: each root's CA has a
/// name of its own (a verifier that meets another root's certificate then says "unknown
/// issuer", not "bad signature"), and the name is computed again from the key whenever the CA
/// signs, since the issuer of a pod certificate must repeat it byte for byte.
const CA_NAME: &str = "vd certificate authority";

/// Backdating of `not_before`, so a host whose clock is a little behind the issuer's accepts a
/// fresh certificate.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Why a certificate could not be made or does not check out.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a key or signing failed.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A name or address a certificate should carry is not a valid DNS name or IP address.
    #[error("`{0}` is not a DNS name or an IP address")]
    BadName(String),
    /// Text that should hold PEM holds none, or not the kind expected.
    #[error("{what} is not PEM ({reason})")]
    Pem {
        /// What was read (`the certificate`, `the CA`).
        what: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// The certificate does not chain to the CA, has expired, is not valid yet, or is not for
    /// a server.
    #[error("the certificate does not verify against the CA: {0}")]
    Chain(String),
    /// The certificate verifies but does not cover a name clients use.
    #[error("the certificate does not cover {0}")]
    NotCovered(String),
    /// A time outside what a certificate can hold.
    #[error("time {0} is out of range")]
    Time(i64),
}

/// A certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
}

// Hand-written so the private key never reaches a log through `{:?}`.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What a pod certificate covers: the DNS names clients reach the pod by and its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// DNS names (the first is the certificate's common name).
    pub names: Vec<String>,
    /// IP addresses.
    pub addresses: Vec<IpAddr>,
}

/// A certificate authority: its certificate and the key that signs with it.
pub struct Ca {
    cert_pem: String,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn time_of(secs: i64) -> Result<time::OffsetDateTime, TlsError> {
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| TlsError::Time(secs))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The CA's parameters: the same on creation and every time it signs, since the issuer name of
/// what it signs must be its subject name.
fn ca_params(key: &rcgen::KeyPair) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    let id: String = p
        .key_identifier(key)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{CA_NAME} {id}"));
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl Ca {
    /// A new CA (a P-256 key) valid from `now` for `validity`.
    pub fn generate(now: i64, validity: Duration) -> Result<Ca, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut p = ca_params(&key);
        p.not_before = time_of(now.saturating_sub(secs(BACKDATE)))?;
        p.not_after = time_of(now.saturating_add(secs(validity)))?;
        let cert = p.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The CA a root kept: its certificate and key as [`Ca::cert_pem`] and [`Ca::key_pem`] wrote
    /// them.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, TlsError> {
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| TlsError::Pem {
            what: "the CA certificate",
            reason: e.to_string(),
        })?;
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| TlsError::Pem {
            what: "the CA key",
            reason: e.to_string(),
        })?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM (PKCS#8): kept in the root, mode 0600, never handed out.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `subject`, signed by this CA, valid from `now` for `validity`, for
    /// both ends of a connection (a pod serves clients and is a client of its master).
    pub fn issue(
        &self,
        subject: &Subject,
        now: i64,
        validity: Duration,
    ) -> Result<Issued, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = subject.names.first() {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, first.as_str());
        }
        for n in &subject.names {
            // rcgen takes any IA5 string; a client would never match a name that is not one.
            rustls_pki_types::DnsName::try_from(n.as_str())
                .map_err(|_| TlsError::BadName(n.clone()))?;
            let dns = n
                .clone()
                .try_into()
                .map_err(|_| TlsError::BadName(n.clone()))?;
            p.subject_alt_names.push(rcgen::SanType::DnsName(dns));
        }
        for a in &subject.addresses {
            p.subject_alt_names.push(rcgen::SanType::IpAddress(*a));
        }
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        let not_before = now.saturating_sub(secs(BACKDATE));
        let not_after = now.saturating_add(secs(validity));
        p.not_before = time_of(not_before)?;
        p.not_after = time_of(not_after)?;
        let issuer = rcgen::Issuer::new(ca_params(&self.key), &self.key);
        let cert = p.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_before,
            not_after,
        })
    }
}

/// Pure: whether a certificate valid over `[not_before, not_after]` is replaced at `now`: once
/// two thirds of its lifetime have passed (a 90-day certificate at day 60, leaving a month for
/// a renewal that fails to be retried), and whenever `now` is outside its validity.
pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    if now < not_before || now >= not_after {
        return true;
    }
    let lifetime = i128::from(not_after) - i128::from(not_before);
    let elapsed = i128::from(now) - i128::from(not_before);
    elapsed * 3 >= lifetime * 2
}

/// Checks that the first certificate of `cert_pem` (further ones are intermediates) chains to
/// the CA certificate in `ca_pem`, is valid at `at` for a server, and covers every name in
/// `names` (DNS names or IP addresses).
pub fn verify(cert_pem: &str, ca_pem: &str, names: &[String], at: i64) -> Result<(), TlsError> {
    let pem = |what: &'static str, text: &str| -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what,
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::Pem {
                what,
                reason: "no CERTIFICATE block".into(),
            });
        }
        Ok(certs)
    };
    let chain = pem("the certificate", cert_pem)?;
    let cas = pem("the CA", ca_pem)?;
    let anchors = cas
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map_err(|e| TlsError::Chain(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let (leaf, intermediates) = chain.split_first().ok_or(TlsError::Pem {
        what: "the certificate",
        reason: "no CERTIFICATE block".into(),
    })?;
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| TlsError::Chain(e.to_string()))?;
    let when = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at).map_err(|_| TlsError::Time(at))?,
    ));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        when,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| TlsError::Chain(e.to_string()))?;
    for n in names {
        let server = ServerName::try_from(n.as_str()).map_err(|_| TlsError::BadName(n.clone()))?;
        ee.verify_is_valid_for_subject_name(&server)
            .map_err(|_| TlsError::NotCovered(n.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_796_601_600; // 2026-12-07T00:00:00Z

    fn subject() -> Subject {
        Subject {
            names: vec![
                "cache-0.data.voodu".into(),
                "cache-0.data".into(),
                "cache.data.voodu".into(),
            ],
            addresses: vec!["127.10.0.2".parse().unwrap()],
        }
    }

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn renewal_at_two_thirds_and_outside_validity() {
        let (nb, na) = (1_000, 1_000 + 90 * DAY);
        let cases = [
            ("just issued", 1_000, false),
            ("day 59", 1_000 + 59 * DAY, false),
            ("day 60: two thirds", 1_000 + 60 * DAY, true),
            ("day 89", 1_000 + 89 * DAY, true),
            ("expired", na, true),
            ("long expired", na + 365 * DAY, true),
            ("not valid yet (clock went back)", nb - 1, true),
        ];
        for (what, now, due) in cases {
            assert_eq!(renewal_due(nb, na, now), due, "{what}");
        }
        // Degenerate and extreme ranges decide without overflow.
        assert!(renewal_due(5, 5, 5));
        assert!(!renewal_due(i64::MIN, i64::MAX, 0));
        assert!(renewal_due(i64::MIN, i64::MAX, i64::MAX - 1));
    }

    #[test]
    fn an_issued_certificate_verifies_for_its_names_and_address_only() {
        let ca = Ca::generate(NOW, Duration::from_secs(10 * 365 * DAY as u64)).unwrap();
        let c = ca
            .issue(&subject(), NOW, Duration::from_secs(90 * DAY as u64))
            .unwrap();
        assert_eq!(c.not_before, NOW - 3600);
        assert_eq!(c.not_after, NOW + 90 * DAY);
        let all = names(&[
            "cache-0.data.voodu",
            "cache-0.data",
            "cache.data.voodu",
            "127.10.0.2",
        ]);
        verify(&c.cert_pem, ca.cert_pem(), &all, NOW).unwrap();
        for other in ["cache-1.data.voodu", "127.10.0.3", "voodu"] {
            let e = verify(&c.cert_pem, ca.cert_pem(), &names(&[other]), NOW).unwrap_err();
            assert!(
                matches!(e, TlsError::NotCovered(ref n) if n == other),
                "{other}: {e}"
            );
        }
        // Expired, and before its time.
        let late = verify(&c.cert_pem, ca.cert_pem(), &[], NOW + 91 * DAY).unwrap_err();
        assert!(matches!(late, TlsError::Chain(_)), "{late}");
        let early = verify(&c.cert_pem, ca.cert_pem(), &[], NOW - 2 * 3600).unwrap_err();
        assert!(matches!(early, TlsError::Chain(_)), "{early}");
        // Another CA does not vouch for it.
        let other = Ca::generate(NOW, Duration::from_secs(DAY as u64)).unwrap();
        let e = verify(&c.cert_pem, other.cert_pem(), &[], NOW).unwrap_err();
        assert!(matches!(e, TlsError::Chain(_)), "{e}");
    }

    #[test]
    fn a_ca_read_back_from_pem_signs_what_verifies_against_it() {
        let ca = Ca::generate(NOW, Duration::from_secs(365 * DAY as u64)).unwrap();
        let again = Ca::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let c = again
            .issue(&subject(), NOW, Duration::from_secs(DAY as u64))
            .unwrap();
        verify(&c.cert_pem, ca.cert_pem(), &names(&["cache-0.data"]), NOW).unwrap();
        // Each certificate gets a key of its own.
        let d = again
            .issue(&subject(), NOW, Duration::from_secs(DAY as u64))
            .unwrap();
        assert_ne!(c.key_pem, d.key_pem);
        assert!(!format!("{c:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            Ca::from_pem("nothing", "nothing"),
            Err(TlsError::Pem { .. })
        ));
        let ca = Ca::generate(NOW, Duration::from_secs(DAY as u64)).unwrap();
        let bad = Subject {
            names: vec!["not a name".into()],
            addresses: vec![],
        };
        assert!(matches!(
            ca.issue(&bad, NOW, Duration::from_secs(DAY as u64)),
            Err(TlsError::BadName(_))
        ));
        for (cert, ca_pem) in [
            ("", ca.cert_pem()),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ca.cert_pem(),
            ),
            (ca.cert_pem(), "garbage"),
        ] {
            assert!(verify(cert, ca_pem, &[], NOW).is_err());
        }
        assert!(matches!(
            verify(ca.cert_pem(), ca.cert_pem(), &[], -1),
            Err(TlsError::Time(-1))
        ));
    }
}
