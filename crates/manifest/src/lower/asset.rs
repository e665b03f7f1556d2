//! Lowering of `asset "scope" "name" { KEY = ... }` blocks: every attribute is a file, its
//! key the file name and its value the contents, stored verbatim (so `${...}` in them is an
//! error rather than something rendered).

use crate::lower::cx::Cx;
use crate::lower::values::{describe, valid_asset_key, Str};
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;
use std::collections::BTreeMap;
use vd_core::AssetSpec;

impl Cx<'_> {
    /// An asset block's files, each checked on its own.
    pub(super) fn asset(&mut self, body: &Body) -> AssetSpec {
        let mut files = BTreeMap::new();
        for structure in body.iter() {
            match structure {
                Structure::Block(b) => self.err(
                    b.ident.span(),
                    format!("unexpected block `{}` in asset", b.ident.as_str()),
                    "an asset's attributes are its files: KEY = \"content\", file(\"path\") or url(\"https://...\")",
                ),
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let field = format!("files.{key}");
                    self.record(&field, a.value.span());
                    if !valid_asset_key(key) {
                        self.err(
                            a.key.span(),
                            format!("asset key `{key}` is not a valid file name"),
                            "asset keys become file names: use ASCII letters, digits, `_`, `.` and `-`",
                        );
                        continue;
                    }
                    if let Some(content) = self.asset_value(&a.value, &field) {
                        files.insert(key.to_string(), content);
                    }
                }
            }
        }
        AssetSpec { files }
    }

    /// One file's contents: a string or heredoc, or what `file()`/`url()` loads.
    fn asset_value(&mut self, v: &Expression, field: &str) -> Option<String> {
        match v {
            Expression::FuncCall(f) => self.call(f),
            Expression::Parenthesis(p) => self.asset_value(p.inner(), field),
            Expression::String(_)
            | Expression::StringTemplate(_)
            | Expression::HeredocTemplate(_) => self.string(v, field, Str::Literal),
            other => {
                self.err(
                    other.span(),
                    format!("`{field}` must be a string, file(...) or url(...), found {}", describe(other)),
                    "write the content as a string or heredoc, or load it with file(\"./path\") or url(\"https://...\")",
                );
                None
            }
        }
    }
}
