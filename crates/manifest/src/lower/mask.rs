//! `${VAR:-default}` in an HCL file. HCL reads what is between `${` and `}` as an expression,
//! and `VAR:-default` is none, so the parser would stop at the `:`. Before parsing, each such
//! interpolation's inside is replaced by a placeholder identifier of the same byte length
//! (so every span the parser reports stays true to the file as written); the lowering of an
//! interpolation that names a placeholder puts the original text back.

use std::collections::BTreeMap;

/// The text to parse and what each placeholder stands for.
pub(super) struct Masked {
    /// The file with every `${NAME:-default}`'s inside replaced.
    pub(super) text: String,
    /// Placeholder -> the original inside (`NAME:-default`).
    pub(super) originals: BTreeMap<String, String>,
}

/// Whether an interpolation's inside is a default form: a variable name, then `:-`.
fn is_default_form(inside: &str) -> bool {
    let Some((name, _)) = inside.split_once(":-") else {
        return false;
    };
    let name = name.trim();
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `k`th identifier of exactly `len` bytes (at least 3): `q`, padding, base-36 `k`.
fn candidate(k: usize, len: usize) -> Option<String> {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    let mut n = k;
    loop {
        digits.push(DIGITS[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    let pad = len.checked_sub(1 + digits.len())?;
    let mut s = String::with_capacity(len);
    s.push('q');
    s.extend(std::iter::repeat_n('_', pad));
    s.push_str(std::str::from_utf8(&digits).ok()?);
    Some(s)
}

/// Where the inside of an interpolation that starts `rest` ends (its `}`), if on the same line
/// and before any other `${`: a default form holds neither. Stopping at the next `${` keeps the
/// whole scan linear; without it, `${` nested thousands deep on one line was searched to the
/// end of the line once per level.
fn default_end(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut from = 0;
    loop {
        let e = from + rest[from..].find(['}', '\n', '$'])?;
        match bytes[e] {
            b'}' => return Some(e),
            b'$' if bytes.get(e + 1) != Some(&b'{') => from = e + 1,
            _ => return None,
        }
    }
}

/// Masks every `${NAME:-default}` of `text` (not `$${`, which is a literal).
pub(super) fn mask(text: &str) -> Masked {
    let mut out = String::with_capacity(text.len());
    let mut originals = BTreeMap::new();
    let mut next = 0usize;
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let escaped = rest[..i].ends_with('$');
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        if escaped {
            continue;
        }
        let Some(end) = default_end(rest) else {
            continue;
        };
        let inside = &rest[..end];
        if !is_default_form(inside) || inside.len() < 3 {
            continue;
        }
        // A placeholder that appears nowhere in the file cannot be mistaken for the user's own
        // name.
        let placeholder = loop {
            match candidate(next, inside.len()) {
                Some(c) if !text.contains(&c) && !originals.contains_key(&c) => break Some(c),
                Some(_) => next += 1,
                None => break None,
            }
        };
        let Some(placeholder) = placeholder else {
            continue;
        };
        next += 1;
        out.push_str(&placeholder);
        originals.insert(placeholder, inside.to_string());
        rest = &rest[end..];
    }
    out.push_str(rest);
    Masked {
        text: out,
        originals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_defaults_keeping_every_offset() {
        let text = "image = \"redis:${VERSION:-7-alpine}\"\n# ${KEEP}\nx = \"$${LIT:-a}\"\ny = \"${A:-}\"\nz = \"${ÄÖ:-x}\"\n";
        let m = mask(text);
        assert_eq!(m.text.len(), text.len());
        assert_eq!(m.originals.len(), 2, "{:?}", m.originals);
        for (p, orig) in &m.originals {
            let at = m.text.find(p.as_str()).unwrap();
            assert_eq!(&text[at..at + p.len()], orig.as_str());
        }
        assert!(m.text.contains("${KEEP}") && m.text.contains("$${LIT:-a}"));
        assert!(
            m.text.contains("${ÄÖ:-x}"),
            "not a variable name: left to the parser"
        );
        let valid = mask("image = \"redis:${VERSION:-7-alpine}\"\ncommand = [\"${A:- b c }\"]\n");
        hcl_edit::parser::parse_body(&valid.text).unwrap();
    }

    #[test]
    fn a_default_may_hold_a_dollar_but_not_another_interpolation() {
        assert_eq!(default_end("PW:-a$b} rest"), Some(7));
        assert_eq!(default_end("A:-x${B}}"), None);
        assert_eq!(default_end("A:-x\n}"), None);
        let m = mask("a = \"${PW:-a$b}\"\nb = \"${\"${C:-d}\"}\"\n");
        assert_eq!(
            m.originals.values().collect::<Vec<_>>(),
            ["C:-d", "PW:-a$b"]
        );
    }

    #[test]
    fn placeholders_avoid_names_in_the_file() {
        let text = "a = \"${q_0}\"\nb = \"${X:-y}\"\n";
        let m = mask(text);
        assert_eq!(m.originals.len(), 1);
        assert!(!m.originals.contains_key("q_0"));
    }

    #[test]
    fn candidates_have_the_asked_length() {
        for len in 3..40 {
            for k in [0, 1, 35, 36, 1295] {
                if let Some(c) = candidate(k, len) {
                    assert_eq!(c.len(), len);
                }
            }
        }
        assert_eq!(candidate(0, 3).as_deref(), Some("q_0"));
        assert_eq!(candidate(36 * 36, 3), None);
    }
}
