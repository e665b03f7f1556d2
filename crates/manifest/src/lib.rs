//! HCL manifests to vd resources, with located diagnostics.
//!
//! A manifest is a list of blocks `KIND "scope" "name" { ... }` (kinds `statefulset`, `redis`,
//! `deployment`, `asset`, `cronjob`). A `redis` block takes every statefulset field, kept as
//! written (`None` when unset, for the macro's defaults), plus the macro's own `plugin`,
//! `sentinel`, `failover`, `proxy` and `backup` blocks. Their rules (a sentinel watches another
//! redis of its own scope and never runs as two replicas; automatic failover needs a replica to
//! promote; ...) are checked here as well as on the server, so that they point at the field.
//! Parsing keeps every span (via `hcl-edit`) so that both our own errors and the ones the
//! server finds later (`Manifest::diagnostic_at`) point at file, line and column.
//! `file()` and `url()` are resolved here, on the CLI side.
//!
//! Template fields: `image`, `command`, `env` values, `volumes` and exec probe commands keep HCL
//! template syntax for the server to render (`${asset.S.N.K}`, `${VAR}`, literal text escaped
//! with `vd_core::template::escape`). Every other string (ports, paths, durations, labels,
//! env_from, and asset contents) is plain text, and `${...}` in it is an error: asset files are
//! stored verbatim.

#![warn(missing_docs)]

mod diag;
mod io;
mod lower;
mod spans;

pub use diag::{Diagnostic, Diagnostics};
pub use spans::SpanIndex;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vd_core::{Resource, ResourceRef};

/// One manifest file as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path it was read from (as given).
    pub path: PathBuf,
    /// Its full text.
    pub text: String,
}

/// The resources of one or more manifest files, with their sources and spans.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Every declared resource, in file order.
    pub resources: Vec<Resource>,
    /// The files read, indexed by the source numbers in `spans`.
    pub sources: Vec<SourceFile>,
    /// Where each field of each resource was written.
    pub spans: SpanIndex,
}

/// What a load may do besides reading the manifest text.
#[derive(Debug, Clone)]
pub struct Options {
    /// Resolve `file(...)` by reading the file; when false, `file()` is an error.
    pub read_files: bool,
    /// Resolve `url(...)` by fetching it; when false, `url()` is an error.
    pub fetch_urls: bool,
    /// Upper bound on one `url()` fetch, redirects and body included.
    pub url_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            read_files: true,
            fetch_urls: true,
            url_timeout: Duration::from_secs(30),
        }
    }
}

impl Options {
    /// No file reads, no network: for fuzzing and for checking untrusted text.
    pub fn offline() -> Self {
        Self {
            read_files: false,
            fetch_urls: false,
            ..Self::default()
        }
    }
}

/// Parse one or more files; file() paths are relative to each file's directory.
pub fn load_files(paths: &[PathBuf]) -> Result<Manifest, Diagnostics> {
    load_files_with(paths, &Options::default())
}

/// `load_files` with explicit options.
pub fn load_files_with(paths: &[PathBuf], opts: &Options) -> Result<Manifest, Diagnostics> {
    let mut loader = Loader::new(opts);
    for path in paths {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => loader.add(path, text),
                Err(_) => loader.errors.push(Diagnostic::new(
                    format!("manifest `{}` is not UTF-8 text", path.display()),
                    Some("save the manifest as UTF-8"),
                )),
            },
            Err(e) => loader.errors.push(Diagnostic::new(
                format!("cannot read manifest `{}`: {e}", path.display()),
                Some("check the path given with -f"),
            )),
        }
    }
    loader.finish()
}

/// Parse text as if it were the file `path` (file() relative to path's parent dir).
pub fn parse_str(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    parse_str_with(path, text, &Options::default())
}

/// `parse_str` with explicit options.
pub fn parse_str_with(path: &Path, text: &str, opts: &Options) -> Result<Manifest, Diagnostics> {
    let mut loader = Loader::new(opts);
    loader.add(path, text.to_string());
    loader.finish()
}

impl Manifest {
    /// Build a located diagnostic for an error the server found in field `field` of resource `r`
    /// (field paths as in [`SpanIndex`]); falls back to the nearest parent field, then the
    /// block header, then an unlocated diagnostic.
    pub fn diagnostic_at(
        &self,
        r: &ResourceRef,
        field: &str,
        message: &str,
        help: Option<&str>,
    ) -> Diagnostic {
        match self.spans.lookup(r, field) {
            Some((src, span)) => match self.sources.get(src) {
                Some(s) => {
                    Diagnostic::located(&s.path, &Arc::from(s.text.as_str()), span, message, help)
                }
                None => Diagnostic::new(message, help),
            },
            None => Diagnostic::new(message, help),
        }
    }

    /// The resource with this identity, if declared.
    pub fn get(&self, r: &ResourceRef) -> Option<&Resource> {
        self.resources.iter().find(|res| &res.id == r)
    }
}

/// Accumulates files into one manifest, checking identities across files.
struct Loader<'a> {
    opts: &'a Options,
    manifest: Manifest,
    errors: Vec<Diagnostic>,
    /// First declaration of each resource, to report duplicates across files.
    seen: HashMap<ResourceRef, (PathBuf, usize, usize)>,
}

impl<'a> Loader<'a> {
    fn new(opts: &'a Options) -> Self {
        Self {
            opts,
            manifest: Manifest::default(),
            errors: Vec::new(),
            seen: HashMap::new(),
        }
    }

    fn add(&mut self, path: &Path, text: String) {
        let index = self.manifest.sources.len();
        let shared: Arc<str> = Arc::from(text.as_str());
        self.manifest.sources.push(SourceFile {
            path: path.to_path_buf(),
            text,
        });
        let file = lower::lower_file(path, &shared, self.opts);
        self.errors.extend(file.errors);
        for (res, header, spans) in file.resources {
            let (line, col) = diag::line_col(&shared, header.start);
            if let Some((p, l, c)) = self.seen.get(&res.id) {
                self.errors.push(Diagnostic::located(
                    path,
                    &shared,
                    header,
                    format!("{} is already declared at {}:{l}:{c}", res.id, p.display()),
                    Some("each KIND \"scope\" \"name\" may appear once across all manifest files; rename or remove one"),
                ));
                continue;
            }
            self.seen
                .insert(res.id.clone(), (path.to_path_buf(), line, col));
            for (field, span) in spans {
                self.manifest
                    .spans
                    .insert(res.id.clone(), field, index, span);
            }
            self.manifest.resources.push(res);
        }
    }

    fn finish(self) -> Result<Manifest, Diagnostics> {
        if self.errors.is_empty() {
            Ok(self.manifest)
        } else {
            Err(Diagnostics(self.errors))
        }
    }
}
