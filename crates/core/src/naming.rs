//! Names derived from a resource: pods, volumes and host names.

use crate::model::ResourceRef;

/// The DNS suffix every pod name also resolves under.
pub const DNS_SUFFIX: &str = "voodu";

/// Pod name: `<scope>-<name>.<ord>`.
pub fn pod_name(r: &ResourceRef, ordinal: u32) -> String {
    format!("{}-{}.{}", r.scope, r.name, ordinal)
}

/// Per-ordinal host names: `<name>-<ord>.<scope>` and `<name>-<ord>.<scope>.voodu`.
pub fn pod_hostnames(r: &ResourceRef, ordinal: u32) -> [String; 2] {
    let short = format!("{}-{}.{}", r.name, ordinal, r.scope);
    let long = format!("{short}.{DNS_SUFFIX}");
    [short, long]
}

/// The shared round-robin alias: `<name>.<scope>` and `<name>.<scope>.voodu`.
pub fn alias_hostnames(r: &ResourceRef) -> [String; 2] {
    let short = format!("{}.{}", r.name, r.scope);
    let long = format!("{short}.{DNS_SUFFIX}");
    [short, long]
}

/// Volume name for a claim: `voodu-<scope>-<name>-<claim>-<ord>`.
pub fn volume_name(r: &ResourceRef, claim: &str, ordinal: u32) -> String {
    format!("voodu-{}-{}-{}-{}", r.scope, r.name, claim, ordinal)
}

/// Splits a pod name back into `(scope-name, ordinal)`.
pub fn parse_pod_name(pod: &str) -> Option<(&str, u32)> {
    let (base, ord) = pod.rsplit_once('.')?;
    Some((base, ord.parse().ok()?))
}

/// What sets a run's pod name apart from a workload pod's `<scope>-<name>.<ordinal>`.
pub const RUN_MARK: &str = ".run-";

/// The pod name of run `n`: `<scope>-<name>.run-<n>` (a valid container name too).
pub fn run_pod_name(id: &ResourceRef, n: u64) -> String {
    format!("{}-{}{RUN_MARK}{n}", id.scope, id.name)
}

/// Whether a pod is a cronjob run (the controller's adoption of pods leaves those to the cronjob scheduler).
pub fn is_run_pod(pod: &str) -> bool {
    pod.rsplit_once(RUN_MARK)
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    #[test]
    fn statefulset_names() {
        let r = ResourceRef::new(Kind::Statefulset, "data", "pg");
        assert_eq!(pod_name(&r, 0), "data-pg.0");
        assert_eq!(
            pod_hostnames(&r, 1),
            ["pg-1.data".to_string(), "pg-1.data.voodu".to_string()]
        );
        assert_eq!(alias_hostnames(&r)[0], "pg.data");
        assert_eq!(volume_name(&r, "data", 2), "voodu-data-pg-data-2");
        assert_eq!(parse_pod_name("data-pg.2"), Some(("data-pg", 2)));
    }
}
