//! From the HCL syntax tree to resources: every check, every recorded span.
//!
//! Errors are collected, never thrown: each field is checked on its own so one load reports as
//! many problems as it can. Only a syntax error stops a file, because there is no tree to walk.
//!
//! The layers, each using only those before it: `cx` (the state and how it reports), `attrs`
//! (bodies of attributes only), `values` (strings, lists, numbers, `file()`/`url()`), then the
//! kinds: `asset`, `workload` (the pod fields), and `redis` and `cronjob` on top of the
//! workload's. This module only dispatches blocks to them.

mod asset;
mod attrs;
mod cronjob;
mod cx;
mod mask;
mod redis;
mod values;
mod workload;

use crate::diag::{self, Diagnostic};
use crate::lower::cx::{header_span, suggest, Cx};
use crate::Options;
use hcl_edit::structure::{Block, BlockLabel, Structure};
use hcl_edit::Span;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use vd_core::{validate_label, Kind, Resource, ResourceRef, Spec};

/// A resource with its header span and the spans of its fields.
pub(crate) type LoweredResource = (Resource, Range<usize>, Vec<(String, Range<usize>)>);

/// What one file produced.
pub(crate) struct Lowered {
    /// Resources whose block header was valid, in file order.
    pub resources: Vec<LoweredResource>,
    /// Every error found in the file.
    pub errors: Vec<Diagnostic>,
}

const KINDS: [&str; 5] = ["statefulset", "redis", "deployment", "asset", "cronjob"];

/// Parses and lowers one file.
pub(crate) fn lower_file(path: &Path, text: &Arc<str>, opts: &Options) -> Lowered {
    let masked = mask::mask(text);
    let mut cx = Cx::new(path, text, opts, masked.originals);
    let mut resources = Vec::new();
    match hcl_edit::parser::parse_body(&masked.text) {
        Ok(body) => {
            for structure in body.iter() {
                match structure {
                    Structure::Attribute(a) => cx.err(
                        a.key.span(),
                        format!("attribute `{}` outside of a block", a.key.as_str()),
                        "put it inside a block such as `statefulset \"scope\" \"name\" { ... }`",
                    ),
                    Structure::Block(b) => {
                        if let Some(r) = cx.resource(b) {
                            resources.push(r);
                        }
                    }
                }
            }
        }
        Err(e) => cx.syntax_error(&e),
    }
    Lowered {
        resources,
        errors: cx.errors,
    }
}

impl Cx<'_> {
    /// A parse error, located and put in the words of what was likely meant.
    fn syntax_error(&mut self, e: &hcl_edit::parser::Error) {
        let loc = e.location();
        let start = diag::offset_of(self.text, loc.line(), loc.column());
        let rest = &self.text[start..];
        let msg = e.message();
        let (span_len, message, help) = if msg.contains("redefined attribute") {
            let name = leading_word(rest);
            (
                name.len(),
                format!("attribute `{name}` is set twice in this block"),
                "remove one of them; each attribute may appear once per block".to_string(),
            )
        } else if msg.contains("redefined object key") {
            let name = leading_word(rest);
            (
                name.len(),
                format!("key `{name}` appears twice in this object"),
                "remove one of them".to_string(),
            )
        } else {
            (
                rest.chars().next().filter(|c| *c != '\n').map_or(0, char::len_utf8),
                format!("syntax error: {msg}"),
                "blocks are written `KIND \"scope\" \"name\" { ... }` and attributes `key = value`, one per line; look for a missing quote, bracket, brace or line break".to_string(),
            )
        };
        self.err(Some(start..start + span_len), message, help);
    }

    /// One top-level block: its kind, labels and body; `None` when the header is invalid.
    fn resource(&mut self, b: &Block) -> Option<LoweredResource> {
        let header = header_span(b);
        let kind = match b.ident.as_str() {
            "statefulset" => Kind::Statefulset,
            "deployment" => Kind::Deployment,
            "asset" => Kind::Asset,
            "redis" => Kind::Redis,
            "cronjob" => Kind::Cronjob,
            other => {
                let mut help =
                    "supported kinds are statefulset, redis, deployment, asset and cronjob"
                        .to_string();
                if let Some(s) = suggest(other, &KINDS) {
                    help = format!("did you mean `{s}`? {help}");
                }
                self.err(
                    b.ident.span(),
                    format!("kind `{other}` is not supported yet"),
                    help,
                );
                return None;
            }
        };
        self.spans.clear();
        self.record("", Some(header.clone()));
        let labels = self.labels(b, kind);
        let spec = match kind {
            Kind::Asset => Spec::Asset(self.asset(&b.body)),
            Kind::Redis => Spec::Redis(self.redis(&b.body, labels.as_ref())),
            Kind::Cronjob => Spec::Cronjob(self.cronjob(&b.body, header.clone())),
            Kind::Statefulset | Kind::Deployment => Spec::Workload(self.workload(kind, &b.body)),
        };
        let spans = std::mem::take(&mut self.spans);
        let (scope, name) = labels?;
        Some((
            Resource {
                id: ResourceRef::new(kind, scope, name),
                spec,
            },
            header,
            spans,
        ))
    }

    /// The (scope, name) labels of a resource block.
    fn labels(&mut self, b: &Block, kind: Kind) -> Option<(String, String)> {
        let form = format!("write `{kind} \"scope\" \"name\" {{ ... }}`, e.g. `{kind} \"data\" \"cache\" {{ ... }}`");
        let n = b.labels.len();
        if n != 2 {
            let message = match n {
                0 => format!("`{kind}` block has no labels; it needs a scope and a name"),
                1 => format!("`{kind}` block has one label; it needs a scope and a name"),
                _ => format!(
                    "`{kind}` block has {n} labels; it needs exactly two, a scope and a name"
                ),
            };
            let span = b
                .labels
                .get(2)
                .and_then(Span::span)
                .unwrap_or_else(|| header_span(b));
            self.err(Some(span), message, form);
            return None;
        }
        let mut out = Vec::with_capacity(2);
        for (label, what) in b.labels.iter().zip(["scope", "name"]) {
            match label {
                BlockLabel::String(s) => match validate_label(what, s.as_str()) {
                    Ok(()) => out.push(s.to_string()),
                    Err(m) => self.err(s.span(), m, "e.g. `data`, `redis-cache` or `web2`"),
                },
                BlockLabel::Ident(i) => self.err(
                    i.span(),
                    format!("the {what} label must be a quoted string"),
                    format!("write \"{}\"; {form}", i.as_str()),
                ),
            }
        }
        match out.as_slice() {
            [scope, name] => Some((scope.clone(), name.clone())),
            _ => None,
        }
    }
}

/// The identifier or quoted key at the start of `s`.
fn leading_word(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('"') {
        return rest.split('"').next().unwrap_or(rest);
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::values::{leaf, valid_asset_key};
    use super::workload::WORKLOAD_FIELDS;
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("replica", &WORKLOAD_FIELDS), Some("replicas"));
        assert_eq!(suggest("img", &WORKLOAD_FIELDS), Some("image"));
        assert_eq!(suggest("Ports", &WORKLOAD_FIELDS), Some("ports"));
        assert_eq!(
            suggest("volume_clam", &WORKLOAD_FIELDS),
            Some("volume_claim")
        );
        assert_eq!(suggest("zzzzzz", &WORKLOAD_FIELDS), None);
        assert_eq!(suggest("x", &["url"]), None);
    }

    #[test]
    fn helpers() {
        assert!(valid_asset_key("redis.conf"));
        assert!(!valid_asset_key("a/b"));
        assert!(!valid_asset_key("é"));
        assert_eq!(leaf("probes.liveness.exec.command"), "command");
        assert_eq!(leaf("volume_claims[0]"), "volume_claims");
        assert_eq!(leading_word("abc = 2"), "abc");
        assert_eq!(leading_word("\"C\" = 1"), "C");
    }
}
