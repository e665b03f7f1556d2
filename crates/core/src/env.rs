//! Composition of a pod's environment from its layers.

use std::collections::BTreeMap;

/// A set of environment variables.
pub type EnvMap = BTreeMap<String, String>;

/// The environment layers of a pod, lowest precedence first, so the more specific a layer the
/// more it wins:
/// plugin env < manifest `env` < `env_from` buckets (in list order) < the resource's own bucket.
/// The runtime's identity variables (`VOODU_*`) are added last and always win.
#[derive(Debug, Default, Clone)]
pub struct EnvLayers<'a> {
    /// Defaults a macro supplies.
    pub plugin: Option<&'a EnvMap>,
    /// The manifest's `env`, after template rendering.
    pub manifest: Option<&'a EnvMap>,
    /// Each `env_from` bucket, in the order listed.
    pub env_from: Vec<&'a EnvMap>,
    /// The resource's own bucket (scope level merged with name level).
    pub own: Option<&'a EnvMap>,
    /// `VOODU_REPLICA_ORDINAL`, `VOODU_POD_IP`, `VOODU_SCOPE`, `VOODU_NAME`.
    pub identity: Option<&'a EnvMap>,
}

impl EnvLayers<'_> {
    /// Merges the layers; later layers override earlier ones per key.
    pub fn merge(&self) -> EnvMap {
        let mut out = EnvMap::new();
        let layers = self
            .plugin
            .into_iter()
            .chain(self.manifest)
            .chain(self.env_from.iter().copied())
            .chain(self.own)
            .chain(self.identity);
        for layer in layers {
            out.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }
}

/// The identity variables every pod gets.
pub fn identity_env(scope: &str, name: &str, ordinal: u32, pod_ip: &str) -> EnvMap {
    EnvMap::from([
        ("VOODU_REPLICA_ORDINAL".to_string(), ordinal.to_string()),
        ("VOODU_POD_IP".to_string(), pod_ip.to_string()),
        ("VOODU_SCOPE".to_string(), scope.to_string()),
        ("VOODU_NAME".to_string(), name.to_string()),
    ])
}

/// Checks an environment variable name: letters, digits and `_`, not starting with a digit.
pub fn valid_env_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_is_plugin_manifest_env_from_own() {
        let plugin = m(&[
            ("A", "plugin"),
            ("B", "plugin"),
            ("C", "plugin"),
            ("D", "plugin"),
        ]);
        let manifest = m(&[("B", "manifest"), ("C", "manifest"), ("D", "manifest")]);
        let from = m(&[("C", "from"), ("D", "from")]);
        let own = m(&[("D", "own"), ("VOODU_SCOPE", "spoof")]);
        let id = identity_env("s", "n", 1, "127.1.2.3");
        let env = EnvLayers {
            plugin: Some(&plugin),
            manifest: Some(&manifest),
            env_from: vec![&from],
            own: Some(&own),
            identity: Some(&id),
        }
        .merge();
        assert_eq!(env["A"], "plugin");
        assert_eq!(env["B"], "manifest");
        assert_eq!(env["C"], "from");
        assert_eq!(env["D"], "own");
        assert_eq!(env["VOODU_SCOPE"], "s");
        assert_eq!(env["VOODU_POD_IP"], "127.1.2.3");
    }

    #[test]
    fn env_keys() {
        assert!(valid_env_key("REDIS_URL"));
        assert!(!valid_env_key("1A"));
        assert!(!valid_env_key("A-B"));
        assert!(!valid_env_key(""));
    }
}
