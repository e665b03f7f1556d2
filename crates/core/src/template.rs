//! Rendering of HCL template strings kept in specs: `${asset.s.n.k}`, `${VAR}`,
//! `${VAR:-default}` and `$${`.

use thiserror::Error;

/// A reference found inside a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    /// `${asset.<scope>.<name>.<key>}`: the host path of a materialized asset file.
    Asset {
        /// Asset scope.
        scope: String,
        /// Asset name.
        name: String,
        /// File key inside the asset.
        key: String,
    },
    /// `${VAR}`: a variable from the resource's `env_from` buckets.
    Var(String),
    /// `${VAR:-default}`: the variable when it is set and not empty, else `default` (the
    /// shell's rule, as compose files and voodu manifests write it).
    VarOr {
        /// The variable.
        name: String,
        /// What stands in for it when it is unset or empty.
        default: String,
    },
}

/// Why a template could not be read or rendered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `${` without a closing `}`.
    #[error("unterminated `${{` in `{0}`; close it with `}}` or write `$${{` for a literal `${{`")]
    Unterminated(String),
    /// An interpolation that is neither an asset path nor a variable name.
    #[error(
        "`${{{0}}}` is not supported; use `${{asset.SCOPE.NAME.KEY}}`, `${{VAR}}` or `${{VAR:-default}}` with VAR from env_from"
    )]
    Unsupported(String),
    /// A reference the resolver could not answer.
    #[error("{0}")]
    Unresolved(String),
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Lit(String),
    /// An interpolation.
    Ref(TemplateRef),
}

/// Parses a template string into literal parts and references.
pub fn parse(s: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            lit.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::Unterminated(s.to_string()))?;
            let expr = after[..end].trim_start();
            // A default keeps its spaces (`${GREETING:- hello }`); a plain reference does not.
            let expr = if expr.contains(":-") {
                expr
            } else {
                expr.trim_end()
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Ref(parse_ref(expr)?));
            rest = &after[end + 1..];
        } else {
            lit.push('$');
            rest = &tail[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

fn parse_ref(expr: &str) -> Result<TemplateRef, TemplateError> {
    if let Some((name, default)) = expr.split_once(":-") {
        let name = name.trim();
        if crate::env::valid_env_key(name) {
            return Ok(TemplateRef::VarOr {
                name: name.to_string(),
                default: default.to_string(),
            });
        }
        return Err(TemplateError::Unsupported(expr.to_string()));
    }
    let segs: Vec<&str> = expr.split('.').collect();
    match segs.as_slice() {
        ["asset", scope, name, key] if [scope, name, key].iter().all(|s| !s.is_empty()) => {
            Ok(TemplateRef::Asset {
                scope: scope.to_string(),
                name: name.to_string(),
                key: key.to_string(),
            })
        }
        [var] if crate::env::valid_env_key(var) => Ok(TemplateRef::Var(var.to_string())),
        _ => Err(TemplateError::Unsupported(expr.to_string())),
    }
}

/// Lists the references a template makes.
pub fn refs(s: &str) -> Result<Vec<TemplateRef>, TemplateError> {
    Ok(parse(s)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Lit(_) => None,
        })
        .collect())
}

/// Renders a template, asking `resolve` for each reference.
pub fn render(
    s: &str,
    mut resolve: impl FnMut(&TemplateRef) -> Result<String, String>,
) -> Result<String, TemplateError> {
    let mut out = String::new();
    for part in parse(s)? {
        match part {
            Part::Lit(l) => out.push_str(&l),
            Part::Ref(r) => out.push_str(&resolve(&r).map_err(TemplateError::Unresolved)?),
        }
    }
    Ok(out)
}

/// A variable's value with the shell's `:-` rule: the value when set and not empty, else the
/// default.
pub fn or_default(value: Option<String>, default: &str) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Escapes literal text so that it renders back to itself (`${` becomes `$${`).
pub fn escape(s: &str) -> String {
    s.replace("${", "$${")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_refs_and_escapes() {
        let parts = parse("a ${asset.data.cfg.conf}:/x $${HOME} ${PASS}$").unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Lit("a ".into()),
                Part::Ref(TemplateRef::Asset {
                    scope: "data".into(),
                    name: "cfg".into(),
                    key: "conf".into()
                }),
                Part::Lit(":/x ${HOME} ".into()),
                Part::Ref(TemplateRef::Var("PASS".into())),
                Part::Lit("$".into()),
            ]
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(
            parse("${oops"),
            Err(TemplateError::Unterminated(_))
        ));
        assert!(matches!(
            parse("${var.x}"),
            Err(TemplateError::Unsupported(_))
        ));
        assert!(matches!(
            parse("${1+2}"),
            Err(TemplateError::Unsupported(_))
        ));
    }

    #[test]
    fn escape_round_trips() {
        let s = "echo ${HOME} $$ $";
        assert_eq!(render(&escape(s), |_| Err("none".into())).unwrap(), s);
    }

    #[test]
    fn render_resolves() {
        let out = render("${A}-${asset.s.n.k}", |r| match r {
            TemplateRef::Var(v) => Ok(format!("v:{v}")),
            TemplateRef::VarOr { name, default } => Ok(format!("{name}|{default}")),
            TemplateRef::Asset { key, .. } => Ok(format!("/p/{key}")),
        })
        .unwrap();
        assert_eq!(out, "v:A-/p/k");
    }

    #[test]
    fn defaults_follow_the_shell() {
        let vars = |name: &str| match name {
            "SET" => Some("yes".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cases = [
            ("${SET:-no}", "yes"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${UNSET:-fallback}", "fallback"),
            ("${UNSET:-}", ""),
            ("redis:${VERSION:-7-alpine}", "redis:7-alpine"),
            ("${UNSET:- spaced words }", " spaced words "),
            ("${ SET :-x}", "yes"),
        ];
        for (t, want) in cases {
            let got = render(t, |r| match r {
                TemplateRef::VarOr { name, default } => Ok(or_default(vars(name), default)),
                _ => Err("unexpected".into()),
            })
            .unwrap();
            assert_eq!(got, want, "{t}");
        }
        assert!(matches!(
            parse("${1BAD:-x}"),
            Err(TemplateError::Unsupported(_))
        ));
        assert!(matches!(
            parse("${asset.a.b.c:-x}"),
            Err(TemplateError::Unsupported(_))
        ));
    }
}
