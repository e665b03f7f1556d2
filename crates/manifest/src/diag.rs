//! Located diagnostics: one error with its file, span, message and help, renderable by miette.

use miette::{LabeledSpan, NamedSource, SourceCode};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One error in a manifest, with where it is and how to fix it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    message: String,
    help: Option<String>,
    at: Option<Located>,
}

/// The place a diagnostic points at; the source text is shared so errors stay cheap to clone.
#[derive(Debug, Clone)]
struct Located {
    path: PathBuf,
    source: NamedSource<Arc<str>>,
    span: Range<usize>,
    line: usize,
    col: usize,
}

impl Diagnostic {
    /// An error with no location (an unreadable file, a resource the manifest does not declare).
    pub fn new(message: impl Into<String>, help: Option<&str>) -> Self {
        Self {
            message: message.into(),
            help: help.map(str::to_string),
            at: None,
        }
    }

    /// An error pointing at `span` (byte offsets) of `text`, the contents of `path`.
    pub fn located(
        path: &Path,
        text: &Arc<str>,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<&str>,
    ) -> Self {
        let start = floor_char_boundary(text, span.start);
        let end = floor_char_boundary(text, span.end.max(start));
        let (line, col) = line_col(text, start);
        let source =
            NamedSource::new(path.display().to_string(), Arc::clone(text)).with_language("hcl");
        Self {
            message: message.into(),
            help: help.map(str::to_string),
            at: Some(Located {
                path: path.to_path_buf(),
                source,
                span: start..end,
                line,
                col,
            }),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How to fix it.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// File, 1-based line and 1-based column (in characters) of the error, if it has a place.
    pub fn location(&self) -> Option<(PathBuf, usize, usize)> {
        self.at.as_ref().map(|a| (a.path.clone(), a.line, a.col))
    }

    /// The byte range the diagnostic underlines, if it has a place.
    pub fn span(&self) -> Option<Range<usize>> {
        self.at.as_ref().map(|a| a.span.clone())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(a) => write!(
                f,
                "{}:{}:{}: {}",
                a.path.display(),
                a.line,
                a.col,
                self.message
            ),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.at.as_ref().map(|a| &a.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let a = self.at.as_ref()?;
        let span = LabeledSpan::new_with_span(Some("here".to_string()), a.span.clone());
        Some(Box::new(std::iter::once(span)))
    }
}

/// Every error of one load, in file order.
///
/// `Display` is a one-line summary (or the single error); `{:#}` lists every error on its own
/// line. miette renders each error with its source snippet through `related`.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// The single error, when there is exactly one; then this forwards to it so miette does not
    /// print a summary line above it.
    fn single(&self) -> Option<&Diagnostic> {
        match self.0.as_slice() {
            [d] => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            for (i, d) in self.0.iter().enumerate() {
                if i > 0 {
                    f.write_str("\n")?;
                }
                write!(f, "{d}")?;
            }
            return Ok(());
        }
        match self.0.len() {
            0 => f.write_str("the manifest is invalid"),
            1 => write!(f, "{}", self.0[0]),
            n => write!(f, "the manifest has {n} errors"),
        }
    }
}

impl std::error::Error for Diagnostics {}

impl miette::Diagnostic for Diagnostics {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.single().and_then(miette::Diagnostic::help)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.single().and_then(miette::Diagnostic::source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.single().and_then(miette::Diagnostic::labels)
    }

    // The `#[related]` of a derive, written by hand so that a lone error is rendered once.
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.0.len() < 2 {
            return None;
        }
        Some(Box::new(
            self.0.iter().map(|d| d as &dyn miette::Diagnostic),
        ))
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(v: Vec<Diagnostic>) -> Self {
        Self(v)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The largest char boundary at or below `i`, clamped to the text.
pub(crate) fn floor_char_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and column (in characters) of byte offset `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Byte offset of 1-based `line` and `col` (in characters), clamped to the text.
pub(crate) fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    text[start..]
        .char_indices()
        .nth(col.saturating_sub(1))
        .map_or(text.len(), |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_round_trips() {
        let text = "ab\néx\n\nz";
        for (off, lc) in [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (5, (2, 2)),
            (7, (3, 1)),
            (8, (4, 1)),
        ] {
            assert_eq!(line_col(text, off), lc, "offset {off}");
            assert_eq!(offset_of(text, lc.0, lc.1), off, "line/col {lc:?}");
        }
        // Inside a multi-byte char: snaps to its start.
        assert_eq!(line_col(text, 4), (2, 1));
        assert_eq!(offset_of(text, 9, 9), text.len());
    }

    #[test]
    fn display_and_location() {
        let text: Arc<str> = Arc::from("a = 1\nbad = 2\n");
        let d = Diagnostic::located(Path::new("m.hcl"), &text, 6..9, "nope", Some("fix it"));
        assert_eq!(d.to_string(), "m.hcl:2:1: nope");
        assert_eq!(d.location(), Some((PathBuf::from("m.hcl"), 2, 1)));
        assert_eq!(d.help(), Some("fix it"));
        let all = Diagnostics(vec![d.clone(), Diagnostic::new("plain", None)]);
        assert_eq!(all.to_string(), "the manifest has 2 errors");
        assert_eq!(format!("{all:#}"), "m.hcl:2:1: nope\nplain");
        assert_eq!(
            miette::Diagnostic::related(&all).map(Iterator::count),
            Some(2)
        );
    }
}
