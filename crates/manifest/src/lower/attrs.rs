//! Bodies that take only attributes, each by name: `failover { automatic = true }`,
//! `limits { cpu = "1" }`, a cronjob. One walk for all of them, so that every such body reports
//! a nested block or an unknown attribute the same way, at its own span.

use crate::lower::cx::Cx;
use hcl_edit::structure::{Attribute, Body, Structure};
use hcl_edit::Span;

/// How a nested block is reported in a body that takes only attributes.
#[derive(Clone, Copy)]
pub(super) enum Nested<'h> {
    /// Every nested block is an unknown field, with a suggestion from the known names.
    Unknown,
    /// A block named like one of the known attributes is told to be written as one
    /// (`write `name = ...``, followed by `, e.g. EXAMPLE` when given); any other block is an
    /// unknown field.
    AsAttribute(Option<&'h str>),
}

impl Cx<'_> {
    /// Walks `body`, which takes only the attributes named in `known`: each of those goes to
    /// `lower`, in source order, so its errors keep their place among the others. An unknown
    /// attribute or any nested block is a located error naming `ctx`. Returns whether
    /// everything in the body was a known attribute.
    pub(super) fn attributes(
        &mut self,
        body: &Body,
        ctx: &str,
        known: &[&str],
        nested: Nested<'_>,
        mut lower: impl FnMut(&mut Self, &Attribute),
    ) -> bool {
        let mut clean = true;
        for structure in body.iter() {
            match structure {
                Structure::Attribute(a) if known.contains(&a.key.as_str()) => lower(self, a),
                Structure::Attribute(a) => {
                    clean = false;
                    self.unknown_field(a.key.as_str(), a.key.span(), ctx, known);
                }
                Structure::Block(b) => {
                    clean = false;
                    let name = b.ident.as_str();
                    match nested {
                        Nested::AsAttribute(example) if known.contains(&name) => {
                            let help = match example {
                                Some(e) => format!("write `{name} = ...`, e.g. {e}"),
                                None => format!("write `{name} = ...`"),
                            };
                            self.err(
                                b.ident.span(),
                                format!("`{name}` is an attribute, not a block"),
                                help,
                            );
                        }
                        _ => self.unknown_field(name, b.ident.span(), ctx, known),
                    }
                }
            }
        }
        clean
    }
}
