//! Lowering of `probes { liveness { ... } readiness { ... } startup { ... } }`: each probe runs
//! exactly one check (`tcp_socket`, `exec` or `http_get`) with its timings.

use crate::lower::attrs::Nested;
use crate::lower::cx::{header_span, Cx};
use crate::lower::values::{unparen, Str};
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Structure};
use hcl_edit::Span;
use std::collections::HashSet;
use vd_core::{Probe, ProbeAction, Probes};

const PROBE_SLOTS: [&str; 3] = ["liveness", "readiness", "startup"];
const PROBE_ACTIONS: [&str; 3] = ["tcp_socket", "exec", "http_get"];
const PROBE_FIELDS: [&str; 8] = [
    "tcp_socket",
    "exec",
    "http_get",
    "period",
    "timeout",
    "initial_delay",
    "failure_threshold",
    "success_threshold",
];
const PROBE_ACTION_HELP: &str =
    "add one of `tcp_socket { port = 6379 }`, `exec { command = [...] }` or `http_get { port = 8080  path = \"/healthz\" }`";

impl Cx<'_> {
    /// The `probes` block of a workload: each slot at most once.
    pub(super) fn probes(&mut self, b: &Block) -> Probes {
        self.record("probes", Some(header_span(b)));
        let mut probes = Probes::default();
        let mut seen: HashSet<String> = HashSet::new();
        for structure in b.body.iter() {
            match structure {
                Structure::Block(p) => {
                    let slot = p.ident.as_str();
                    if !PROBE_SLOTS.contains(&slot) {
                        self.unknown_field(slot, p.ident.span(), "probes", &PROBE_SLOTS);
                        continue;
                    }
                    if !seen.insert(slot.to_string()) {
                        self.err(
                            Some(header_span(p)),
                            format!("the {slot} probe is declared twice"),
                            "keep one `{slot} { ... }` block",
                        );
                        continue;
                    }
                    self.no_labels(p);
                    let probe = self.probe(p, &format!("probes.{slot}"));
                    match slot {
                        "liveness" => probes.liveness = probe,
                        "readiness" => probes.readiness = probe,
                        _ => probes.startup = probe,
                    }
                }
                Structure::Attribute(a) => {
                    let k = a.key.as_str();
                    if PROBE_SLOTS.contains(&k) {
                        self.err(
                            a.key.span(),
                            format!("`{k}` is a block, not an attribute"),
                            format!("write `{k} {{ tcp_socket {{ port = 6379 }} }}` without `=`"),
                        );
                    } else {
                        self.unknown_field(k, a.key.span(), "probes", &PROBE_SLOTS);
                    }
                }
            }
        }
        probes
    }

    /// One probe: its check and timings; `None` when anything in it was invalid.
    fn probe(&mut self, b: &Block, field: &str) -> Option<Probe> {
        self.record(field, Some(header_span(b)));
        let mut action: Option<ProbeAction> = None;
        let mut actions = 0usize;
        let mut ok = true;
        let mut p = Probe::new(ProbeAction::TcpSocket { port: 1 });
        for structure in b.body.iter() {
            match structure {
                Structure::Block(a) => {
                    let name = a.ident.as_str();
                    if !PROBE_ACTIONS.contains(&name) {
                        self.unknown_field(name, a.ident.span(), field, &PROBE_FIELDS);
                        continue;
                    }
                    actions += 1;
                    if actions > 1 {
                        self.err(
                            Some(header_span(a)),
                            format!("`{field}` has more than one check"),
                            "a probe runs exactly one of tcp_socket, exec or http_get; remove the others",
                        );
                        ok = false;
                        continue;
                    }
                    self.no_labels(a);
                    match self.probe_action(a, &format!("{field}.{name}")) {
                        Some(act) => action = Some(act),
                        None => ok = false,
                    }
                }
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let sub = format!("{field}.{key}");
                    let v = &a.value;
                    match key {
                        "period" | "timeout" | "initial_delay" => {
                            self.record(&sub, v.span());
                            let min = if key == "initial_delay" { 0 } else { 1 };
                            match self.duration_ms(v, &sub, min) {
                                Some(ms) if key == "period" => p.period_ms = ms,
                                Some(ms) if key == "timeout" => p.timeout_ms = ms,
                                Some(ms) => p.initial_delay_ms = ms,
                                None => ok = false,
                            }
                        }
                        "failure_threshold" | "success_threshold" => {
                            self.record(&sub, v.span());
                            let example = format!("{key} = 3");
                            match self.whole(v, &sub, 1, u64::from(u32::MAX), &example) {
                                Some(n) => {
                                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                                    if key == "failure_threshold" {
                                        p.failure_threshold = n;
                                    } else {
                                        p.success_threshold = n;
                                    }
                                }
                                None => ok = false,
                            }
                        }
                        k if PROBE_ACTIONS.contains(&k) => {
                            self.err(
                                a.key.span(),
                                format!("`{k}` is a block, not an attribute"),
                                format!("write `{k} {{ ... }}` without `=`"),
                            );
                            ok = false;
                        }
                        other => self.unknown_field(other, a.key.span(), field, &PROBE_FIELDS),
                    }
                }
            }
        }
        if actions == 0 {
            self.err(
                Some(header_span(b)),
                format!("`{field}` has no check"),
                PROBE_ACTION_HELP,
            );
            return None;
        }
        p.action = action?;
        ok.then_some(p)
    }

    /// The check of a probe: `tcp_socket { port }`, `exec { command }` or
    /// `http_get { port path }`.
    fn probe_action(&mut self, b: &Block, field: &str) -> Option<ProbeAction> {
        self.record(field, Some(header_span(b)));
        let name = b.ident.as_str();
        let known: &[&str] = match name {
            "tcp_socket" => &["port"],
            "exec" => &["command"],
            _ => &["port", "path"],
        };
        let (mut port, mut command, mut path) = (None, None, None);
        let mut ok = true;
        let clean = self.attributes(&b.body, field, known, Nested::Unknown, |cx, a| {
            let key = a.key.as_str();
            let sub = format!("{field}.{key}");
            cx.record(&sub, a.value.span());
            match key {
                "port" => port = cx.port_number(&a.value, &sub),
                "command" => command = cx.string_list(&a.value, &sub, Str::Template),
                _ => path = cx.string(&a.value, &sub, Str::Literal),
            }
            ok &= match key {
                "port" => port.is_some(),
                "command" => command.is_some(),
                _ => path.is_some(),
            };
        });
        ok &= clean;
        let declared = |k: &str| {
            b.body
                .iter()
                .any(|s| s.as_attribute().is_some_and(|a| a.has_key(k)))
        };
        match name {
            "tcp_socket" | "http_get" => {
                if !declared("port") {
                    self.err(
                        Some(header_span(b)),
                        format!("`{field}` has no port"),
                        format!("write `{name} {{ port = 6379 }}`"),
                    );
                    return None;
                }
                let port = port?;
                if name == "tcp_socket" {
                    return ok.then_some(ProbeAction::TcpSocket { port });
                }
                let path = path.unwrap_or_else(|| "/".to_string());
                if !path.starts_with('/') {
                    let span = b.body.get_attribute("path").and_then(|a| a.value.span());
                    self.err(
                        span,
                        format!("http_get path `{path}` must start with `/`"),
                        "e.g. \"/healthz\"",
                    );
                    return None;
                }
                ok.then_some(ProbeAction::HttpGet { port, path })
            }
            _ => {
                if !declared("command") {
                    self.err(
                        Some(header_span(b)),
                        format!("`{field}` has no command"),
                        "write `exec { command = [\"redis-cli\", \"ping\"] }`",
                    );
                    return None;
                }
                let command = command?;
                if command.is_empty() {
                    let span = b.body.get_attribute("command").and_then(|a| a.value.span());
                    self.err(
                        span,
                        format!("`{field}.command` is empty"),
                        "write the argv to run, e.g. [\"redis-cli\", \"ping\"]",
                    );
                    return None;
                }
                ok.then_some(ProbeAction::Exec { command })
            }
        }
    }

    /// A TCP port as a number (or a quoted number, which is what `ports` takes).
    fn port_number(&mut self, v: &Expression, field: &str) -> Option<u16> {
        if let Expression::String(s) = unparen(v) {
            return match s.value().parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.err(
                        v.span(),
                        format!(
                            "`{field}` must be a port number 1-65535, found \"{}\"",
                            s.value()
                        ),
                        "e.g. port = 6379",
                    );
                    None
                }
            };
        }
        self.whole(v, field, 1, u64::from(u16::MAX), "port = 6379")
            .and_then(|n| u16::try_from(n).ok())
    }
}
