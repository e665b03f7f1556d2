//! The resolved pod template: a workload spec with templates rendered, buckets merged and
//! asset contents pinned by digest. Its hash decides whether a pod must be replaced.

use crate::env::EnvMap;
use crate::hash::spec_hash;
use crate::model::{PortSpec, Probes, Resources, VolumeClaim};
use serde::{Deserialize, Serialize};

/// A bind mount with its source resolved to a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedMount {
    /// Host path.
    pub source: String,
    /// Path inside the pod.
    pub target: String,
    /// Read-only bind.
    pub read_only: bool,
    /// Content digest of the source when it is an asset file, so content changes roll pods.
    pub digest: Option<String>,
}

/// Everything that defines a pod except its identity (ordinal, address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodTemplate {
    /// Image (informational on the process runtime).
    pub image: Option<String>,
    /// Rendered argv.
    pub command: Vec<String>,
    /// Fully merged env, without the per-pod identity variables.
    pub env: EnvMap,
    /// Ports.
    pub ports: Vec<PortSpec>,
    /// Per-pod volumes.
    pub volume_claims: Vec<VolumeClaim>,
    /// Resolved binds.
    pub mounts: Vec<ResolvedMount>,
    /// Probes.
    pub probes: Probes,
    /// Limits.
    pub resources: Resources,
    /// The directory inside the pod where its certificate is mounted, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl PodTemplate {
    /// The spec hash: over image, command, ports, volumes, env, resources, claims, probes and
    /// asset content digests, so any change a pod would run differently with replaces it.
    pub fn hash(&self) -> String {
        spec_hash(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> PodTemplate {
        PodTemplate {
            image: Some("redis:7".into()),
            command: vec!["redis-server".into()],
            env: EnvMap::new(),
            ports: vec![],
            volume_claims: vec![],
            mounts: vec![ResolvedMount {
                source: "/root/assets/a".into(),
                target: "/etc/a".into(),
                read_only: true,
                digest: Some("d1".into()),
            }],
            probes: Probes::default(),
            resources: Resources::default(),
            certificate: None,
        }
    }

    #[test]
    fn asset_content_changes_hash() {
        let a = t();
        let mut b = t();
        assert_eq!(a.hash(), b.hash());
        b.mounts[0].digest = Some("d2".into());
        assert_ne!(a.hash(), b.hash());
        let mut c = t();
        c.env.insert("K".into(), "V".into());
        assert_ne!(a.hash(), c.hash());
    }
}
