//! Lowering of `cronjob "scope" "name" { ... }` blocks: the container fields a workload takes,
//! plus when and how runs happen. The schedule is parsed here with the same parser the
//! server's scheduler uses, so a bad one is reported at its span.

use crate::lower::attrs::Nested;
use crate::lower::cx::Cx;
use crate::lower::values::Str;
use crate::lower::workload::{unlocated_mounts, Container, LocatedMount};
use hcl_edit::structure::Body;
use hcl_edit::Span;
use std::collections::HashSet;
use std::ops::Range;
use vd_core::schedule::Schedule;
use vd_core::{Concurrency, CronjobSpec};

/// Every field a cronjob block takes.
const CRONJOB_FIELDS: [&str; 9] = [
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
    pub(super) fn cronjob(&mut self, body: &Body, header: Range<usize>) -> CronjobSpec {
        let mut container = Container::default();
        let mut schedule = String::new();
        let mut concurrency = Concurrency::default();
        let mut keep = CronjobSpec::DEFAULT_KEEP;
        let mut timeout_ms = None;
        let mut schedule_written = false;
        let nested = Nested::AsAttribute(None);
        self.attributes(body, "cronjob", &CRONJOB_FIELDS, nested, |cx, a| {
            let key = a.key.as_str();
            let v = &a.value;
            match key {
                "schedule" => {
                    cx.record(key, v.span());
                    schedule_written = true;
                    let Some(text) = cx.string(v, "schedule", Str::Literal) else {
                        return;
                    };
                    match Schedule::parse(&text) {
                        Ok(s) => schedule = s.as_str().to_string(),
                        Err(e) => cx.err(
                            v.span(),
                            e.to_string(),
                            "times are UTC; e.g. schedule = \"0 */6 * * *\" runs at 00:00, 06:00, 12:00 and 18:00",
                        ),
                    }
                }
                "concurrency" => {
                    cx.record(key, v.span());
                    let Some(text) = cx.string(v, "concurrency", Str::Literal) else {
                        return;
                    };
                    match Concurrency::parse(&text) {
                        Some(c) => concurrency = c,
                        None => cx.err(
                            v.span(),
                            format!("`concurrency` must be \"forbid\", \"allow\" or \"replace\", found \"{text}\""),
                            "forbid (the default) skips a slot while a run still goes, allow lets runs overlap, replace stops the running one",
                        ),
                    }
                }
                "keep" => {
                    cx.record(key, v.span());
                    if let Some(n) = cx.whole(v, "keep", 1, MAX_KEEP, "keep = 5") {
                        keep = u32::try_from(n).unwrap_or(CronjobSpec::DEFAULT_KEEP);
                    }
                }
                "timeout" => {
                    cx.record(key, v.span());
                    timeout_ms = cx.duration_ms(v, "timeout", 1000);
                }
                // The container fields, as a workload takes them; a run is one container, so
                // it needs something to run and each mount needs its own path.
                _ => {
                    cx.container_field(a, &mut container);
                    if key == "command" && container.command.as_ref().is_some_and(Vec::is_empty) {
                        cx.err(
                            v.span(),
                            "`command` is empty",
                            "write the argv to run, e.g. command = [\"sh\", \"-c\", \"...\"]",
                        );
                    }
                    if key == "volumes" {
                        container.volumes = cx.distinct_volumes(std::mem::take(&mut container.volumes));
                    }
                }
            }
        });
        if !schedule_written {
            self.err(
                Some(header),
                "`cronjob` has no schedule",
                "write when it runs, in UTC, e.g. schedule = \"0 */6 * * *\" (every six hours)",
            );
        }
        CronjobSpec {
            schedule,
            image: container.image,
            command: container.command.unwrap_or_default(),
            env: container.env,
            env_from: container.env_from,
            volumes: unlocated_mounts(container.volumes),
            concurrency,
            keep,
            timeout_ms,
        }
    }

    /// `volumes` without a second mount on one path (trailing slashes aside), each repeat
    /// reported at its list item and dropped.
    fn distinct_volumes(&mut self, volumes: Vec<LocatedMount>) -> Vec<LocatedMount> {
        let mut targets: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(volumes.len());
        for (m, span) in volumes {
            if !targets.insert(m.target.trim_end_matches('/').to_string()) {
                self.err(
                    span,
                    format!("mount path `{}` is used twice", m.target),
                    "each volume needs its own path inside the pod",
                );
                continue;
            }
            out.push((m, span));
        }
        out
    }
}
