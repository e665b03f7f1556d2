//! Values as written: strings (literal or kept as vd templates), lists, objects, whole
//! numbers, durations and bools, each checked against what its field takes, plus the
//! `file()`/`url()` calls assets load their contents with.
//!
//! Template fields keep HCL template syntax for the server to render: literal text is escaped
//! with `vd_core::template::escape`, and each `${...}` is checked here and kept in canonical
//! form. Every other string is plain text, and `${...}` in it is an error.

use crate::io;
use crate::lower::cx::{suggest, Cx};
use hcl_edit::expr::{Expression, FuncCall, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Element, Strip};
use hcl_edit::Span;
use std::ops::Range;
use vd_core::template::{self, Part, TemplateError, TemplateRef};
use vd_core::validate_label;

/// An object entry: key, key span, value.
pub(super) type Entry<'e> = (String, Option<Range<usize>>, &'e Expression);

const FUNCTIONS_HELP: &str =
    "manifests have two functions: file(\"rel/path\") and url(\"https://...\")";
const INTERP_HELP: &str = "the server resolves `${asset.SCOPE.NAME.KEY}` (an asset file's path) and `${VAR}` (a variable from env_from); write `$${` for a literal `${`";

/// How a string field treats `${...}`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Str {
    /// Plain text: interpolation is an error, the value is the literal text.
    Literal,
    /// Kept as vd template text for the server: literals escaped, `${...}` checked and kept.
    Template,
}

/// A number as written, before range checks.
pub(super) enum Num {
    /// A whole number, negative ones included.
    Int(i128),
    /// Anything else: a fraction, an exponent, or beyond a 64-bit integer.
    Float(f64),
}

impl Cx<'_> {
    /// A string value, as literal text or as kept template text.
    pub(super) fn string(&mut self, e: &Expression, field: &str, mode: Str) -> Option<String> {
        match e {
            Expression::String(s) => Some(match mode {
                Str::Template => template::escape(s.value()),
                Str::Literal => s.value().clone(),
            }),
            Expression::StringTemplate(t) => self.elements(t.iter(), field, mode),
            Expression::HeredocTemplate(h) => self.elements(h.template.iter(), field, mode),
            Expression::Parenthesis(p) => self.string(p.inner(), field, mode),
            Expression::FuncCall(f) => {
                let name = func_name(f);
                if name == "file" || name == "url" {
                    self.err(
                        f.span(),
                        format!("`{name}()` can only be used in asset blocks"),
                        "put the content in an asset (`asset \"scope\" \"name\" { key = file(\"...\") }`) and refer to its path as \"${asset.scope.name.key}\"",
                    );
                } else {
                    self.unknown_function(f, &name);
                }
                None
            }
            other => {
                let found = describe(other);
                let shown = self.src(other.span()).to_string();
                let help = match other {
                    Expression::Variable(_) => format!("quote it: \"{shown}\""),
                    Expression::Traversal(_) => {
                        format!("references go inside a string: \"${{{shown}}}\"")
                    }
                    _ if num(other).is_some() => format!("quote it: \"{shown}\""),
                    Expression::Bool(_) => format!("quote it: \"{shown}\""),
                    _ => "write a quoted string, e.g. \"...\"".to_string(),
                };
                self.err(
                    other.span(),
                    format!("`{field}` must be a string, found {found}"),
                    help,
                );
                None
            }
        }
    }

    fn elements<'e>(
        &mut self,
        elems: impl Iterator<Item = &'e Element>,
        field: &str,
        mode: Str,
    ) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for el in elems {
            match el {
                Element::Literal(l) => match mode {
                    Str::Template => out.push_str(&template::escape(l.value())),
                    Str::Literal => out.push_str(l.value()),
                },
                Element::Interpolation(i) => {
                    if mode == Str::Literal {
                        let help = if field.starts_with("files.") {
                            "asset contents are stored verbatim, not rendered; write `$${` for a literal `${`"
                        } else {
                            "this field is not a template: write the value itself; `$${` gives a literal `${`"
                        };
                        self.err(
                            i.span(),
                            format!("`{field}` cannot use `${{...}}` interpolation"),
                            help,
                        );
                        ok = false;
                    } else if let Some(t) = self.interpolation(i) {
                        out.push_str(&t);
                    } else {
                        ok = false;
                    }
                }
                Element::Directive(d) => {
                    self.err(
                        d.span(),
                        "template directives (`%{ if }`, `%{ for }`) are not supported",
                        "write the text out literally; `%%{` gives a literal `%{`",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Checks one `${...}` and returns it in canonical vd template form.
    fn interpolation(&mut self, i: &hcl_edit::template::Interpolation) -> Option<String> {
        if i.strip != Strip::None {
            self.err(
                i.span(),
                "`~` whitespace stripping in `${~ ... ~}` is not supported",
                "remove the `~`",
            );
            return None;
        }
        let Some(path) = traversal_path(&i.expr) else {
            let written = self.src(i.expr.span()).to_string();
            self.err(
                i.span(),
                TemplateError::Unsupported(written).to_string(),
                INTERP_HELP,
            );
            return None;
        };
        let text = match self.defaults.get(&path) {
            Some(original) => format!("${{{original}}}"),
            None => format!("${{{path}}}"),
        };
        let parts = match template::parse(&text) {
            Ok(parts) => parts,
            Err(e) => {
                self.err(i.span(), e.to_string(), INTERP_HELP);
                return None;
            }
        };
        // An asset reference that can never resolve is better caught here than at pod start.
        for part in parts {
            if let Part::Ref(TemplateRef::Asset { scope, name, key }) = part {
                let bad = validate_label("asset scope", &scope)
                    .and_then(|()| validate_label("asset name", &name))
                    .err()
                    .or_else(|| {
                        (!valid_asset_key(&key))
                            .then(|| format!("asset key `{key}` is not a valid file name"))
                    });
                if let Some(m) = bad {
                    self.err(i.span(), format!("in `{text}`: {m}"), INTERP_HELP);
                    return None;
                }
            }
        }
        Some(text)
    }

    /// A whole number in `min..=max`.
    pub(super) fn whole(
        &mut self,
        e: &Expression,
        field: &str,
        min: u64,
        max: u64,
        example: &str,
    ) -> Option<u64> {
        let span = e.span();
        let Some(n) = num(e) else {
            let found = describe(e);
            let extra = if found == "a string" {
                " (no quotes)"
            } else {
                ""
            };
            self.err(
                span,
                format!("`{field}` must be a whole number, found {found}"),
                format!("write {example}{extra}"),
            );
            return None;
        };
        let shown = self.src(span.clone()).to_string();
        let (lo, hi) = (i128::from(min), i128::from(max));
        let value = match n {
            Num::Float(f) if !f.is_finite() || f.fract() != 0.0 => {
                self.err(
                    span,
                    format!("`{field}` must be a whole number, found {shown}"),
                    format!("write {example}"),
                );
                return None;
            }
            Num::Float(f) if f < 0.0 => lo - 1,
            Num::Float(_) => hi + 1,
            Num::Int(i) => i,
        };
        if value < lo {
            let message = if min == 0 {
                format!("`{field}` cannot be negative, found {shown}")
            } else {
                format!("`{field}` must be at least {min}, found {shown}")
            };
            self.err(span, message, format!("write {example}"));
            return None;
        }
        if value > hi {
            self.err(
                span,
                format!("`{field}` is too large: {shown} (at most {max})"),
                format!("write {example}"),
            );
            return None;
        }
        u64::try_from(value).ok()
    }

    /// The items of a list; anything else is an error with a list to copy.
    pub(super) fn list<'e>(
        &mut self,
        e: &'e Expression,
        field: &str,
    ) -> Option<Vec<&'e Expression>> {
        match e {
            Expression::Array(a) => Some(a.iter().collect()),
            Expression::Parenthesis(p) => self.list(p.inner(), field),
            other => {
                let leaf = leaf(field);
                let help = match other {
                    Expression::String(s) => {
                        let words: Vec<String> = s
                            .value()
                            .split_whitespace()
                            .map(|w| format!("\"{w}\""))
                            .collect();
                        format!("write a list: {leaf} = [{}]", words.join(", "))
                    }
                    _ => format!("write a list: {leaf} = [\"...\"]"),
                };
                self.err(
                    other.span(),
                    format!("`{field}` must be a list, found {}", describe(other)),
                    help,
                );
                None
            }
        }
    }

    /// A list of strings, each recorded at `field[i]`; `None` if any item is not one.
    pub(super) fn string_list(
        &mut self,
        e: &Expression,
        field: &str,
        mode: Str,
    ) -> Option<Vec<String>> {
        let items = self.list(e, field)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let sub = format!("{field}[{i}]");
            self.record(&sub, item.span());
            match self.string(item, &sub, mode) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Object entries as (key, key span, value).
    pub(super) fn object<'e>(&mut self, e: &'e Expression, field: &str) -> Option<Vec<Entry<'e>>> {
        match e {
            Expression::Object(o) => {
                let mut out = Vec::with_capacity(o.len());
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => i.as_str().to_string(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(other) => {
                            self.err(
                                other.span(),
                                format!("keys in `{field}` must be names or quoted strings"),
                                "write `KEY = value` or `\"KEY\" = value`",
                            );
                            continue;
                        }
                    };
                    out.push((key, k.span(), v.expr()));
                }
                Some(out)
            }
            Expression::Parenthesis(p) => self.object(p.inner(), field),
            other => {
                self.err(
                    other.span(),
                    format!("`{field}` must be an object, found {}", describe(other)),
                    format!("write {} = {{ KEY = \"value\" }}", leaf(field)),
                );
                None
            }
        }
    }

    /// A bool; anything else (a quoted "true" included) is an error naming what was found.
    pub(super) fn boolean(&mut self, v: &Expression, field: &str) -> Option<bool> {
        match unparen(v) {
            Expression::Bool(flag) => Some(*flag.value()),
            other => {
                let key = leaf(field);
                let help = match other {
                    Expression::String(t) if matches!(t.value().as_str(), "true" | "false") => {
                        format!("write {key} = {} (no quotes)", t.value())
                    }
                    _ => format!("write {key} = true or {key} = false"),
                };
                self.err(
                    v.span(),
                    format!("`{field}` must be true or false, found {}", describe(other)),
                    help,
                );
                None
            }
        }
    }

    /// A duration string (`vd_core::duration`), in milliseconds, at least `min_ms`.
    pub(super) fn duration_ms(&mut self, v: &Expression, field: &str, min_ms: u64) -> Option<u64> {
        let help = "write a duration like \"10s\", \"500ms\" or \"1m\"";
        if num(v).is_some() {
            let shown = self.src(v.span()).to_string();
            self.err(
                v.span(),
                format!("`{field}` must be a duration string, found the number {shown}"),
                format!("{help}; a bare number has no unit, e.g. \"{shown}s\""),
            );
            return None;
        }
        let s = self.string(v, field, Str::Literal)?;
        let ms = match vd_core::duration::parse(&s) {
            Ok(d) => u64::try_from(d.as_millis()).ok(),
            Err(e) => {
                self.err(
                    v.span(),
                    format!("`{field}`: `{s}` is not a duration ({})", e.why),
                    help,
                );
                return None;
            }
        };
        match ms {
            Some(ms) if ms >= min_ms => Some(ms),
            Some(_) => {
                self.err(
                    v.span(),
                    format!("`{field}` must be at least {min_ms}ms, found `{s}`"),
                    help,
                );
                None
            }
            None => {
                self.err(v.span(), format!("`{field}` is too long: `{s}`"), help);
                None
            }
        }
    }

    /// Evaluates `file(...)` or `url(...)` in an asset.
    pub(super) fn call(&mut self, f: &FuncCall) -> Option<String> {
        let name = func_name(f);
        if name != "file" && name != "url" {
            self.unknown_function(f, &name);
            return None;
        }
        let example = if name == "file" {
            "file(\"./configs/redis.conf\")"
        } else {
            "url(\"https://example.com/redis.conf\")"
        };
        if f.args.len() != 1 || f.args.expand_final() {
            self.err(
                f.span(),
                format!("`{name}()` takes exactly one argument"),
                format!("write {example}"),
            );
            return None;
        }
        let arg = f.args.get(0)?;
        let what = format!("{name}(...)");
        let value = self.string(arg, &what, Str::Literal)?;
        if name == "file" {
            if !self.opts.read_files {
                self.err(
                    f.span(),
                    "file() is disabled for this load",
                    "load the manifest from disk to resolve file()",
                );
                return None;
            }
            let path = self.base_dir.join(&value);
            let shown = std::path::absolute(&path).unwrap_or(path.clone());
            match io::read_file(&shown) {
                Ok(s) => Some(s),
                Err(m) => {
                    let help = format!(
                        "file() paths are relative to the manifest's directory ({})",
                        std::path::absolute(&self.base_dir)
                            .unwrap_or(self.base_dir.clone())
                            .display()
                    );
                    self.err(arg.span(), m, help);
                    None
                }
            }
        } else {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                self.err(
                    arg.span(),
                    format!("`{value}` is not an http(s) URL"),
                    format!("write {example}"),
                );
                return None;
            }
            if !self.opts.fetch_urls {
                self.err(
                    f.span(),
                    "url() is disabled for this load",
                    "allow network access to resolve url()",
                );
                return None;
            }
            match io::fetch_url(&value, self.opts.url_timeout) {
                Ok(s) => Some(s),
                Err(m) => {
                    self.err(
                        arg.span(),
                        m,
                        "url() is fetched when the manifest is read; check the address and the network, or download the file and use file()",
                    );
                    None
                }
            }
        }
    }

    fn unknown_function(&mut self, f: &FuncCall, name: &str) {
        let help = match suggest(name, &["file", "url"]) {
            Some(s) => format!("did you mean `{s}`? {FUNCTIONS_HELP}"),
            None => FUNCTIONS_HELP.to_string(),
        };
        self.err(
            f.name.name.span().or_else(|| f.span()),
            format!("unknown function `{name}`"),
            help,
        );
    }
}

/// The expression inside any parentheses.
pub(super) fn unparen(e: &Expression) -> &Expression {
    match e {
        Expression::Parenthesis(p) => unparen(p.inner()),
        other => other,
    }
}

/// A number literal, negated or parenthesised or not; `None` for anything else.
pub(super) fn num(e: &Expression) -> Option<Num> {
    match e {
        Expression::Number(n) => {
            let n = n.value();
            Some(match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Num::Int(i128::from(u)),
                (None, Some(i)) => Num::Int(i128::from(i)),
                _ => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
            })
        }
        Expression::Parenthesis(p) => num(p.inner()),
        Expression::UnaryOp(u) if *u.operator.value() == UnaryOperator::Neg => {
            match num(&u.expr)? {
                Num::Int(i) => Some(Num::Int(-i)),
                Num::Float(f) => Some(Num::Float(-f)),
            }
        }
        _ => None,
    }
}

/// What kind of value an expression is, for "found ..." messages.
pub(super) fn describe(e: &Expression) -> &'static str {
    if num(e).is_some() {
        return "a number";
    }
    match e {
        Expression::Null(_) => "null",
        Expression::Bool(_) => "a bool",
        Expression::Number(_) => "a number",
        Expression::String(_) | Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a string"
        }
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        Expression::Parenthesis(p) => describe(p.inner()),
        Expression::Variable(_) | Expression::Traversal(_) => "a reference",
        Expression::FuncCall(_) => "a function call",
        Expression::Conditional(_)
        | Expression::UnaryOp(_)
        | Expression::BinaryOp(_)
        | Expression::ForExpr(_) => "an expression",
    }
}

/// `a.b.c` for a variable or a chain of attribute accesses; anything else is not a vd reference.
fn traversal_path(e: &Expression) -> Option<String> {
    match e {
        Expression::Variable(v) => Some(v.as_str().to_string()),
        Expression::Traversal(t) => {
            let Expression::Variable(root) = &t.expr else {
                return None;
            };
            let mut out = root.as_str().to_string();
            for op in &t.operators {
                match op.value() {
                    TraversalOperator::GetAttr(name) => {
                        out.push('.');
                        out.push_str(name.as_str());
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// `name` or `ns::name` of a function call.
fn func_name(f: &FuncCall) -> String {
    let mut parts: Vec<&str> = f.name.namespace.iter().map(|n| n.as_str()).collect();
    parts.push(f.name.name.as_str());
    parts.join("::")
}

/// Asset keys become file names on the host.
pub(super) fn valid_asset_key(k: &str) -> bool {
    !k.is_empty()
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The last segment of a field path, for "write NAME = ..." examples.
pub(super) fn leaf(field: &str) -> &str {
    let f = field.rsplit('.').next().unwrap_or(field);
    f.split('[').next().unwrap_or(f)
}
