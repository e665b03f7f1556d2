//! Where each field of each resource was written, so later errors can point back at the manifest.

use std::collections::BTreeMap;
use std::ops::Range;
use vd_core::ResourceRef;

/// Maps (resource, field path) to (source index in `Manifest::sources`, byte range).
///
/// Field paths: `""` is the block header, then `"replicas"`, `"command[1]"`, `"env.KEY"`,
/// `"probes.liveness.period"`, `"resources.limits.memory"`, `"files.KEY"`, in redis blocks
/// `"plugin.version"`, `"sentinel"`, `"sentinel.monitor"`, `"sentinel.enabled"`, `"failover"`,
/// `"failover.automatic"`, `"failover.down_after"`, `"proxy"`, `"proxy.enabled"`,
/// `"proxy.replicas"`, and so on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanIndex {
    map: BTreeMap<ResourceRef, BTreeMap<String, (usize, Range<usize>)>>,
}

impl SpanIndex {
    /// The exact span recorded for `field` of `r`.
    pub fn get(&self, r: &ResourceRef, field: &str) -> Option<(usize, Range<usize>)> {
        self.map.get(r)?.get(field).cloned()
    }

    /// The span of `field`, else of its nearest recorded parent (`probes.liveness.period` ->
    /// `probes.liveness` -> `probes` -> the header), so a server error always lands somewhere.
    pub fn lookup(&self, r: &ResourceRef, field: &str) -> Option<(usize, Range<usize>)> {
        let fields = self.map.get(r)?;
        let mut f = field;
        loop {
            if let Some(s) = fields.get(f) {
                return Some(s.clone());
            }
            if f.is_empty() {
                return None;
            }
            f = parent_field(f);
        }
    }

    /// Records the span of `field` of `r`; a later record for the same field wins.
    pub fn insert(
        &mut self,
        r: ResourceRef,
        field: impl Into<String>,
        source: usize,
        span: Range<usize>,
    ) {
        self.map
            .entry(r)
            .or_default()
            .insert(field.into(), (source, span));
    }

    /// The field paths recorded for `r`, sorted.
    pub fn fields(&self, r: &ResourceRef) -> impl Iterator<Item = &str> {
        self.map
            .get(r)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }
}

/// `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ``.
fn parent_field(f: &str) -> &str {
    if f.ends_with(']') {
        if let Some(i) = f.rfind('[') {
            return &f[..i];
        }
    }
    match f.rfind('.') {
        Some(i) => &f[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::Kind;

    #[test]
    fn falls_back_to_parents() {
        let r = ResourceRef::new(Kind::Statefulset, "data", "pg");
        let mut idx = SpanIndex::default();
        idx.insert(r.clone(), "", 0, 0..5);
        idx.insert(r.clone(), "probes.liveness", 0, 10..20);
        idx.insert(r.clone(), "command", 0, 30..40);
        assert_eq!(idx.lookup(&r, "probes.liveness.period"), Some((0, 10..20)));
        assert_eq!(idx.lookup(&r, "command[3]"), Some((0, 30..40)));
        assert_eq!(idx.lookup(&r, "env.X"), Some((0, 0..5)));
        assert_eq!(idx.get(&r, "env.X"), None);
        let other = ResourceRef::new(Kind::Asset, "data", "pg");
        assert_eq!(idx.lookup(&other, ""), None);
        assert_eq!(parent_field("volumes[2]"), "volumes");
        assert_eq!(parent_field("volume_claims[0].name"), "volume_claims[0]");
    }
}
