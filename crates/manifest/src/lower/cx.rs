//! The lowering state of one file and how every layer reports through it: located errors,
//! recorded field spans, and the checks all blocks share (unknown fields, labels where a block
//! takes none).
//!
//! Errors are collected, never thrown: each field is checked on its own so one load reports as
//! many problems as it can.

use crate::diag::Diagnostic;
use crate::Options;
use hcl_edit::structure::Block;
use hcl_edit::Span;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lowering state of one file.
pub(super) struct Cx<'a> {
    /// The file being lowered, as given.
    pub(super) path: &'a Path,
    /// Its full text, shared with every diagnostic.
    pub(super) text: &'a Arc<str>,
    /// What `file()` paths are relative to: the file's directory.
    pub(super) base_dir: PathBuf,
    /// Whether `file()` and `url()` may reach outside the manifest.
    pub(super) opts: &'a Options,
    /// Every error found so far, in the order found.
    pub(super) errors: Vec<Diagnostic>,
    /// Field spans of the resource being lowered.
    pub(super) spans: Vec<(String, Range<usize>)>,
    /// What each `${VAR:-default}` placeholder stands for (see `mask`).
    pub(super) defaults: BTreeMap<String, String>,
}

impl<'a> Cx<'a> {
    /// A fresh state for the file `path` with contents `text`.
    pub(super) fn new(
        path: &'a Path,
        text: &'a Arc<str>,
        opts: &'a Options,
        defaults: BTreeMap<String, String>,
    ) -> Self {
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self {
            path,
            text,
            base_dir,
            opts,
            errors: Vec::new(),
            spans: Vec::new(),
            defaults,
        }
    }
}

impl Cx<'_> {
    /// Records an error at `span` of this file.
    pub(super) fn err(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: impl AsRef<str>,
    ) {
        let d = match span {
            Some(span) => {
                Diagnostic::located(self.path, self.text, span, message, Some(help.as_ref()))
            }
            // Only hand-built trees lack spans; point at the start rather than lose the file name.
            None => Diagnostic::located(self.path, self.text, 0..0, message, Some(help.as_ref())),
        };
        self.errors.push(d);
    }

    /// Records where `field` of the resource being lowered was written.
    pub(super) fn record(&mut self, field: &str, span: Option<Range<usize>>) {
        if let Some(span) = span {
            self.spans.push((field.to_string(), span));
        }
    }

    /// The span recorded for `field` of the resource being lowered, else for its nearest
    /// recorded parent (`failover.automatic` -> `failover`), as `SpanIndex::lookup` does.
    pub(super) fn span_of(&self, field: &str) -> Option<Range<usize>> {
        let mut f = field;
        loop {
            if let Some((_, span)) = self.spans.iter().rev().find(|(k, _)| k == f) {
                return Some(span.clone());
            }
            f = f.rsplit_once('.')?.0;
        }
    }

    /// The source text of a span, for quoting what the user wrote.
    pub(super) fn src(&self, span: Option<Range<usize>>) -> &str {
        span.and_then(|s| self.text.get(s)).map_or("", str::trim)
    }

    /// A block that takes no labels was given some.
    pub(super) fn no_labels(&mut self, b: &Block) {
        if let Some(l) = b.labels.first() {
            let name = b.ident.as_str();
            self.err(
                l.span(),
                format!("`{name}` takes no labels"),
                format!("write `{name} {{ ... }}`"),
            );
        }
    }

    /// `name` is not a field of `ctx`; the help suggests the closest of `known`, or lists them.
    pub(super) fn unknown_field(
        &mut self,
        name: &str,
        span: Option<Range<usize>>,
        ctx: &str,
        known: &[&str],
    ) {
        let help = match suggest(name, known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("valid fields here: {}", known.join(", ")),
        };
        self.err(span, format!("unknown field `{name}` in {ctx}"), help);
    }
}

/// Kind and labels of a block: the span errors about the block as a whole point at.
pub(super) fn header_span(b: &Block) -> Range<usize> {
    let start = b.ident.span().or_else(|| b.span()).map_or(0, |s| s.start);
    let end = b
        .labels
        .last()
        .and_then(Span::span)
        .or_else(|| b.ident.span())
        .map_or(start, |s| s.end);
    start..end.max(start)
}

/// The closest known name, if it is close enough to be what the user meant.
pub(super) fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    let len = lower.chars().count();
    let limit = (len / 3).max(2);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), *k))
        .filter(|(d, _)| *d <= limit && *d < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
