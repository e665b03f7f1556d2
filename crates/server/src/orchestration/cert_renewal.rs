//! Renewing running pods' certificates: the loop that reissues what is due
//! ([`certs::Authority::ensure`]) and asks the service, through its hooks, how the pod takes the
//! new one (loaded live, or restarted one pod at a time).

use crate::orchestration::certs::{self, pod_subject};
use std::sync::Arc;
use std::time::Duration;

/// How long a pod restarted for its certificate may take to be ready before the renewal of the
/// next one goes on anyway.
const RESTART_WAIT: Duration = Duration::from_secs(60);

impl crate::orchestration::controller::Controller {
    /// Renews running pods' certificates before they expire, and has each pod load its new one
    /// without a restart (the service's hook does that). A pod that starts gets a fresh one
    /// anyway (`desired_launch`); this covers pods that keep running.
    pub async fn renew_certificates_loop(self: Arc<Self>) {
        use crate::orchestration::controller::CertReload;
        use crate::types::PodState;
        use std::collections::BTreeSet;
        use vd_core::event::{Level, Reason};
        let period = certs::check_period(self.certs.pod_validity);
        // Pods whose new certificate is written but not loaded yet.
        let mut pending: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::time::sleep(period).await;
            for p in self.pod_views() {
                if p.state != PodState::Running || p.ip.is_empty() {
                    continue;
                }
                if !self.certs.pod_dir(&p.pod).join(certs::ISSUED_FILE).exists() {
                    continue;
                }
                let owner = vd_core::ResourceRef::new(p.kind, &p.scope, &p.name);
                let pod_ip = self.runtime.pod_ip(&p.ip);
                let subject = pod_subject(&owner, p.ordinal, &[&p.ip, &pod_ip]);
                match self.certs.ensure(&p.pod, &subject) {
                    Ok(Some(_)) => {
                        pending.insert(p.pod.clone());
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(pod = %p.pod, error = %e, "could not renew the pod's certificate");
                        continue;
                    }
                }
                if !pending.contains(&p.pod) {
                    continue;
                }
                match self
                    .hooks()
                    .certificate_renewed(&self, &owner, p.ordinal)
                    .await
                {
                    Ok(CertReload::Live) => {
                        pending.remove(&p.pod);
                        self.event(
                            Level::Info,
                            Some(&owner),
                            Some(&p.pod),
                            Reason::CertificateRenewed,
                            "loaded with no restart",
                        );
                    }
                    Ok(CertReload::Restart) => {
                        pending.remove(&p.pod);
                        self.event(
                            Level::Info,
                            Some(&owner),
                            Some(&p.pod),
                            Reason::CertificateRenewed,
                            "restarting the pod to load it (it cannot reload a certificate live)",
                        );
                        // One at a time: the next pod's turn comes once this one is back.
                        if !self.restart_pod_and_wait(&p.pod, RESTART_WAIT).await {
                            tracing::warn!(pod = %p.pod, "not ready again after its certificate restart");
                        }
                    }
                    Err(e) => self.event(
                        Level::Warning,
                        Some(&owner),
                        Some(&p.pod),
                        Reason::CertificateReloadFailed,
                        &e,
                    ),
                }
            }
            // A pod that restarted meanwhile loaded its files as it started.
            let live: BTreeSet<String> = self.pod_views().into_iter().map(|p| p.pod).collect();
            pending.retain(|p| live.contains(p));
        }
    }
}
