//! Lowering of `cronjob "scope" "name" { ... }` blocks (issue 8): the schedule is parsed here
//! with the same parser the server's scheduler uses, so a bad one is reported at its span.

use super::{Cx, Str};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;
use std::collections::HashSet;
use vd_core::schedule::Schedule;
use vd_core::{Concurrency, CronjobSpec};

/// Every field a cronjob block takes.
pub(super) const CRONJOB_FIELDS: [&str; 9] = [
    "schedule",
    "image",
    "command",
    "env",
    "env_from",
    "volumes",
    "concurrency",
    "keep",
    "timeout",
];

/// The most finished runs a cronjob may keep (each keeps a log file).
const MAX_KEEP: u64 = 1000;

impl Cx<'_> {
    /// A cronjob block, checked field by field; `header` is where a missing schedule is reported.
    pub(super) fn cronjob(&mut self, body: &Body, header: std::ops::Range<usize>) -> CronjobSpec {
        let mut spec = CronjobSpec {
            schedule: String::new(),
            image: None,
            command: Vec::new(),
            env: Default::default(),
            env_from: Vec::new(),
            volumes: Vec::new(),
            concurrency: Concurrency::default(),
            keep: CronjobSpec::DEFAULT_KEEP,
            timeout_ms: None,
        };
        let mut schedule_written = false;
        let mut targets: HashSet<String> = HashSet::new();
        for structure in body.iter() {
            let a = match structure {
                Structure::Attribute(a) => a,
                Structure::Block(b) => {
                    let name = b.ident.as_str();
                    if CRONJOB_FIELDS.contains(&name) {
                        self.err(
                            b.ident.span(),
                            format!("`{name}` is an attribute, not a block"),
                            format!("write `{name} = ...`"),
                        );
                    } else {
                        self.unknown_field(name, b.ident.span(), "cronjob", &CRONJOB_FIELDS);
                    }
                    continue;
                }
            };
            let key = a.key.as_str();
            let v = &a.value;
            if CRONJOB_FIELDS.contains(&key) {
                self.record(key, v.span());
            }
            match key {
                "schedule" => {
                    schedule_written = true;
                    let Some(text) = self.string(v, "schedule", Str::Literal) else {
                        continue;
                    };
                    match Schedule::parse(&text) {
                        Ok(s) => spec.schedule = s.as_str().to_string(),
                        Err(e) => self.err(
                            v.span(),
                            e.to_string(),
                            "times are UTC; e.g. schedule = \"0 */6 * * *\" runs at 00:00, 06:00, 12:00 and 18:00",
                        ),
                    }
                }
                "image" => spec.image = self.string(v, "image", Str::Template),
                "command" => {
                    let command = self.string_list(v, "command", Str::Template);
                    if command.as_ref().is_some_and(Vec::is_empty) {
                        self.err(
                            v.span(),
                            "`command` is empty",
                            "write the argv to run, e.g. command = [\"sh\", \"-c\", \"...\"]",
                        );
                    }
                    spec.command = command.unwrap_or_default();
                }
                "env" => spec.env = self.env(v),
                "env_from" => spec.env_from = self.env_from(v),
                "volumes" => {
                    for (m, span) in self.volumes(v) {
                        if !targets.insert(m.target.trim_end_matches('/').to_string()) {
                            self.err(
                                span,
                                format!("mount path `{}` is used twice", m.target),
                                "each volume needs its own path inside the pod",
                            );
                            continue;
                        }
                        spec.volumes.push(m);
                    }
                }
                "concurrency" => {
                    let Some(text) = self.string(v, "concurrency", Str::Literal) else {
                        continue;
                    };
                    match Concurrency::parse(&text) {
                        Some(c) => spec.concurrency = c,
                        None => self.err(
                            v.span(),
                            format!("`concurrency` must be \"forbid\", \"allow\" or \"replace\", found \"{text}\""),
                            "forbid (the default) skips a slot while a run still goes, allow lets runs overlap, replace stops the running one",
                        ),
                    }
                }
                "keep" => {
                    if let Some(n) = self.whole(v, "keep", 1, MAX_KEEP, "keep = 5") {
                        spec.keep = u32::try_from(n).unwrap_or(CronjobSpec::DEFAULT_KEEP);
                    }
                }
                "timeout" => spec.timeout_ms = self.duration_ms(v, "timeout", 1000),
                other => self.unknown_field(other, a.key.span(), "cronjob", &CRONJOB_FIELDS),
            }
        }
        if !schedule_written {
            self.err(
                Some(header),
                "`cronjob` has no schedule",
                "write when it runs, in UTC, e.g. schedule = \"0 */6 * * *\" (every six hours)",
            );
        }
        spec
    }
}
