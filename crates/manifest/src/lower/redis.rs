//! Lowering of the redis macro block: the statefulset's pod fields kept as written (`None` when
//! unset, for the macro's defaults), plus its own blocks `plugin`, `sentinel`, `failover`,
//! `proxy` and `backup`. The rules the server also runs (`vd_core::redis::validate_*`) are run
//! here too, so each problem is reported at the field it names.

use crate::lower::attrs::Nested;
use crate::lower::cx::{header_span, Cx};
use crate::lower::values::{num, Num, Str};
use crate::lower::workload::{
    same_path, unlocated_claims, unlocated_mounts, MacroBlocks, PodFields,
};
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Body};
use hcl_edit::Span;
use std::ops::Range;
use vd_core::{
    validate_label, BackupSpec, ClusterSpec, FailoverSpec, Kind, ProxySpec, RedisSpec,
    SentinelSpec, TlsSpec,
};

/// The redis macro's own fields; its block takes a statefulset's too.
const REDIS_FIELDS: [&str; 7] = [
    "plugin", "sentinel", "failover", "proxy", "backup", "cluster", "tls",
];
const TLS_FIELDS: [&str; 3] = ["cert", "key", "ca"];
const CLUSTER_FIELDS: [&str; 2] = ["shards", "replicas_per_shard"];
const SENTINEL_FIELDS: [&str; 2] = ["enabled", "monitor"];
const FAILOVER_FIELDS: [&str; 2] = ["automatic", "down_after"];
const PROXY_FIELDS: [&str; 2] = ["enabled", "replicas"];
const BACKUP_FIELDS: [&str; 5] = ["schedule", "keep", "destination", "source", "env_from"];
/// The claim the redis macro always adds, and where it mounts it.
const RESERVED_CLAIM: &str = "data";
const RESERVED_MOUNT: &str = "/data";

/// The macro's own blocks as written.
#[derive(Default)]
struct OwnBlocks {
    plugin_version: Option<String>,
    sentinel: Option<LocatedSentinel>,
    failover: Option<LocatedFailover>,
    proxy: Option<LocatedProxy>,
    backup: Option<LocatedBackup>,
    cluster: Option<(ClusterSpec, Range<usize>)>,
    tls: Option<(TlsSpec, Range<usize>)>,
}

impl MacroBlocks for OwnBlocks {
    fn fields(&self) -> &'static [&'static str] {
        &REDIS_FIELDS
    }

    fn block(&mut self, cx: &mut Cx<'_>, b: &Block) {
        match b.ident.as_str() {
            "plugin" => self.plugin_version = cx.plugin(b),
            "sentinel" => self.sentinel = Some(cx.sentinel(b)),
            "failover" => self.failover = Some(cx.failover(b)),
            "proxy" => self.proxy = Some(cx.proxy(b)),
            "backup" => self.backup = Some(cx.backup(b)),
            "cluster" => self.cluster = Some(cx.cluster(b)),
            "tls" => self.tls = Some(cx.tls(b)),
            // The workload lowering hands over only the names above.
            _ => {}
        }
    }
}

/// A `sentinel { }` block with what its checks need to point at.
struct LocatedSentinel {
    spec: SentinelSpec,
    header: Range<usize>,
    monitor_span: Option<Range<usize>>,
    /// `monitor` was written, even if its value was not a string.
    monitor_written: bool,
    /// `enabled` was not written or was a bool: the checks that depend on it can run.
    enabled_known: bool,
}

/// A `failover { }` block with what its checks need to point at.
struct LocatedFailover {
    spec: FailoverSpec,
    header: Range<usize>,
    /// `automatic` was not written or was a bool: the checks that depend on it can run.
    automatic_known: bool,
}

/// A `proxy { }` block with what its checks need to point at.
struct LocatedProxy {
    spec: ProxySpec,
    header: Range<usize>,
}

/// A `backup { }` block with what its checks need to point at.
struct LocatedBackup {
    spec: BackupSpec,
    header: Range<usize>,
    /// `schedule` was written as a string: its rules can run.
    schedule_known: bool,
}

impl Cx<'_> {
    /// The redis macro: statefulset fields as written (unset stays `None` for the server's
    /// defaults), plus the macro's own blocks. `id` is the block's (scope, name) when valid.
    pub(super) fn redis(&mut self, body: &Body, id: Option<&(String, String)>) -> RedisSpec {
        let mut own = OwnBlocks::default();
        let f = self.pod_fields(Kind::Redis, body, Some(&mut own));
        self.reserved_mounts(&f);
        self.distinct_mounts(&f, Some((RESERVED_CLAIM, RESERVED_MOUNT)));
        // An `enabled` that was not a bool leaves unknown whether this is a sentinel sibling.
        let sentinel_known = own.sentinel.as_ref().is_none_or(|s| s.enabled_known);
        let sentinel = own.sentinel.map(|s| {
            self.check_sentinel(&s, f.replicas.as_ref(), id);
            s.spec
        });
        let spec = RedisSpec {
            image: f.container.image,
            replicas: f.replicas.map(|(n, _)| n),
            command: f.container.command,
            env: f.container.env,
            env_from: f.container.env_from,
            ports: f.ports,
            volume_claims: unlocated_claims(f.claims),
            volumes: unlocated_mounts(f.container.volumes),
            probes: f.probes,
            resources: f.resources,
            plugin_version: own.plugin_version,
            sentinel,
            failover: own.failover.as_ref().map(|l| l.spec),
            proxy: own.proxy.as_ref().map(|l| l.spec),
            backup: own.backup.as_ref().map(|l| l.spec.clone()),
            cluster: own.cluster.as_ref().map(|(c, _)| *c),
            tls: own.tls.as_ref().map(|(t, _)| t.clone()),
        };
        if let Some(l) = &own.failover {
            self.check_failover(&spec, l, sentinel_known);
        }
        if let Some(l) = &own.proxy {
            self.check_proxy(&spec, l, sentinel_known);
        }
        if let Some(l) = &own.backup {
            self.check_backup(&spec, l, sentinel_known);
        }
        if let Some((_, header)) = &own.cluster {
            self.check_cluster(&spec, header, sentinel_known);
        }
        if let Some((_, header)) = &own.tls {
            self.check_tls(&spec, header, sentinel_known);
        }
        spec
    }

    /// `tls {}`, or `tls { cert = "..."  key = "..."  ca = "..." }` (asset references); checked
    /// with the rest of the block by `check_tls`.
    fn tls(&mut self, b: &Block) -> (TlsSpec, Range<usize>) {
        let header = header_span(b);
        self.record("tls", Some(header.clone()));
        let mut t = TlsSpec::default();
        let nested = Nested::AsAttribute(Some("cert = \"${asset.data.certs.crt}\""));
        self.attributes(&b.body, "tls", &TLS_FIELDS, nested, |cx, a| {
            let v = &a.value;
            let key = a.key.as_str();
            let field = format!("tls.{key}");
            cx.record(&field, v.span());
            let value = cx.string(v, &field, Str::Template);
            match key {
                "cert" => t.cert = value,
                "key" => t.key = value,
                _ => t.ca = value,
            }
        });
        (t, header)
    }

    /// The tls rules, which the server also runs (`validate_tls` in vd-core), each reported at
    /// the field it names.
    fn check_tls(&mut self, spec: &RedisSpec, header: &Range<usize>, sentinel_known: bool) {
        let mut checked = spec.clone();
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::tls::validate_tls(&checked) {
            let span = self.span_of(&p.field).or_else(|| Some(header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// `cluster { shards = 3  replicas_per_shard = 1 }`; checked with the rest of the block by
    /// `check_cluster`. The numbers are parsed as any whole number here; their ranges are
    /// `check_cluster`'s rules.
    fn cluster(&mut self, b: &Block) -> (ClusterSpec, Range<usize>) {
        let header = header_span(b);
        self.record("cluster", Some(header.clone()));
        let mut c = ClusterSpec::default();
        let nested = Nested::AsAttribute(Some("shards = 3 or replicas_per_shard = 1"));
        self.attributes(&b.body, "cluster", &CLUSTER_FIELDS, nested, |cx, a| {
            let v = &a.value;
            let key = a.key.as_str();
            let field = format!("cluster.{key}");
            cx.record(&field, v.span());
            let example = format!("{key} = 3");
            if let Some(n) = cx.whole(v, &field, 0, u64::from(u32::MAX), &example) {
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                if key == "shards" {
                    c.shards = n;
                } else {
                    c.replicas_per_shard = n;
                }
            }
        });
        (c, header)
    }

    /// The cluster rules, which the server also runs (`validate_cluster` in vd-core), each
    /// reported at the field it names.
    fn check_cluster(&mut self, spec: &RedisSpec, header: &Range<usize>, sentinel_known: bool) {
        let mut checked = spec.clone();
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::cluster::validate_cluster(&checked) {
            let span = self.span_of(&p.field).or_else(|| Some(header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// The macro brings its own `data` claim at /data; nothing may take its name or path.
    fn reserved_mounts(&mut self, f: &PodFields) {
        for (c, name_span, mount_span) in &f.claims {
            if c.name == RESERVED_CLAIM {
                self.err(
                    name_span.clone(),
                    "volume claim `data` is reserved by the redis macro",
                    "the macro already provides `data` at /data; remove this claim, or give an additional claim another name, e.g. \"backups\"",
                );
            } else if same_path(&c.mount_path, RESERVED_MOUNT) {
                self.err(
                    mount_span.clone(),
                    format!("mount path `{}` is taken by the redis macro's `data` claim", c.mount_path),
                    "the macro already provides `data` at /data; mount this claim elsewhere, e.g. \"/backups\"",
                );
            }
        }
        for (v, span) in &f.container.volumes {
            if same_path(&v.target, RESERVED_MOUNT) {
                self.err(
                    span.clone(),
                    format!(
                        "mount path `{}` is taken by the redis macro's `data` claim",
                        v.target
                    ),
                    "the macro already provides `data` at /data; mount this volume elsewhere",
                );
            }
        }
    }

    /// `plugin { version = "..." }`: recorded, the macro is built in.
    fn plugin(&mut self, b: &Block) -> Option<String> {
        self.record("plugin", Some(header_span(b)));
        let mut version = None;
        self.attributes(&b.body, "plugin", &["version"], Nested::Unknown, |cx, a| {
            cx.record("plugin.version", a.value.span());
            let Some(v) = cx.string(&a.value, "plugin.version", Str::Literal) else {
                return;
            };
            if v.trim().is_empty() {
                cx.err(
                    a.value.span(),
                    "`plugin.version` is empty",
                    "write the plugin version, e.g. version = \"0.14.0\", or remove the plugin block",
                );
            } else {
                version = Some(v);
            }
        });
        version
    }

    /// `sentinel { enabled = bool  monitor = "scope/name" }`; checked with the rest of the
    /// block by `check_sentinel`.
    fn sentinel(&mut self, b: &Block) -> LocatedSentinel {
        let header = header_span(b);
        self.record("sentinel", Some(header.clone()));
        let mut s = LocatedSentinel {
            spec: SentinelSpec {
                enabled: true,
                monitor: None,
            },
            header,
            monitor_span: None,
            monitor_written: false,
            enabled_known: true,
        };
        self.attributes(
            &b.body,
            "sentinel",
            &SENTINEL_FIELDS,
            Nested::Unknown,
            |cx, a| {
                let v = &a.value;
                if a.key.as_str() == "enabled" {
                    cx.record("sentinel.enabled", v.span());
                    match cx.boolean(v, "sentinel.enabled") {
                        Some(flag) => s.spec.enabled = flag,
                        None => s.enabled_known = false,
                    }
                } else {
                    cx.record("sentinel.monitor", v.span());
                    s.monitor_written = true;
                    s.monitor_span = v.span();
                    s.spec.monitor = cx.string(v, "sentinel.monitor", Str::Literal);
                }
            },
        );
        s
    }

    /// The sentinel rules: a monitor is required when enabled and must name another redis in
    /// the same scope; two sentinels are rejected (quorum).
    fn check_sentinel(
        &mut self,
        s: &LocatedSentinel,
        replicas: Option<&(u32, Option<Range<usize>>)>,
        id: Option<&(String, String)>,
    ) {
        let scope = id.map_or("scope", |(scope, _)| scope.as_str());
        // An `enabled` that was not a bool has its own error; its intent is unknown.
        let enabled = s.spec.enabled && s.enabled_known;
        match &s.spec.monitor {
            Some(m) => self.check_monitor(m, s.monitor_span.clone(), id),
            // A monitor that was written but did not parse has its own error already.
            None if enabled && !s.monitor_written => self.err(
                Some(s.header.clone()),
                "`sentinel` has no monitor",
                format!("a sentinel sibling watches a data redis: write `monitor = \"{scope}/NAME\"` in the sentinel block (the data redis in this scope), or `enabled = false` to turn sentinel mode off"),
            ),
            None => {}
        }
        if let Some((2, span)) = replicas {
            if enabled {
                self.err(
                    span.clone(),
                    "`replicas = 2` is rejected for a sentinel sibling: quorum floor(2/2)+1 = 2: any single sentinel outage blocks failover, strictly worse than 1",
                    "use 1 (observer) or 3+: replicas = 3 gives real HA, replicas = 1 an observer only",
                );
            }
        }
    }

    /// `failover { automatic = bool  down_after = "1s" }`; checked with the rest of the block
    /// by `check_failover`. `down_after` is a duration string (`"500ms"`, `"1.5s"`, `"2m"`); a
    /// bare number is refused rather than guessed at, as in probe durations: `1000` may mean
    /// milliseconds (sentinel's `down-after-milliseconds`) or seconds.
    fn failover(&mut self, b: &Block) -> LocatedFailover {
        let header = header_span(b);
        self.record("failover", Some(header.clone()));
        let mut f = LocatedFailover {
            spec: FailoverSpec::default(),
            header,
            automatic_known: true,
        };
        let nested = Nested::AsAttribute(Some("automatic = true or down_after = \"1s\""));
        self.attributes(&b.body, "failover", &FAILOVER_FIELDS, nested, |cx, a| {
            let v = &a.value;
            if a.key.as_str() == "automatic" {
                cx.record("failover.automatic", v.span());
                match cx.boolean(v, "failover.automatic") {
                    Some(flag) => f.spec.automatic = flag,
                    None => f.automatic_known = false,
                }
            } else {
                cx.record("failover.down_after", v.span());
                if let Some(ms) = cx.down_after(v) {
                    f.spec.down_after_ms = ms;
                }
            }
        });
        f
    }

    /// `failover.down_after` in milliseconds. Its range is one of `check_failover`'s rules.
    fn down_after(&mut self, v: &Expression) -> Option<u64> {
        let field = "failover.down_after";
        if let Some(n) = num(v) {
            let shown = self.src(v.span()).to_string();
            let help = match n {
                Num::Int(i) if i > 0 => format!("write the unit: down_after = \"{i}ms\" for milliseconds (what sentinel's down-after-milliseconds counts) or \"{i}s\" for seconds"),
                _ => "write a duration with its unit, e.g. down_after = \"1s\" (the default) or \"500ms\"".to_string(),
            };
            self.err(
                v.span(),
                format!("`{field}` must be a duration string, found the number {shown}"),
                help,
            );
            return None;
        }
        self.duration_ms(v, field, 0)
    }

    /// The failover rules, which the server also runs (`validate_failover` in vd-core), each
    /// reported at the field it names.
    fn check_failover(&mut self, spec: &RedisSpec, l: &LocatedFailover, sentinel_known: bool) {
        // A value that did not parse has its own error; the rules that depend on it stay quiet.
        let mut checked = spec.clone();
        if let Some(f) = checked.failover.as_mut() {
            f.automatic &= l.automatic_known;
        }
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::validate_failover(&checked) {
            if !sentinel_known && p.field != "failover.down_after" {
                continue;
            }
            let span = self.span_of(&p.field).or_else(|| Some(l.header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// `proxy { enabled = bool  replicas = N }`; checked with the rest of the block by
    /// `check_proxy`. `replicas` is parsed as any whole number here; its range is one of
    /// `check_proxy`'s rules.
    fn proxy(&mut self, b: &Block) -> LocatedProxy {
        let header = header_span(b);
        self.record("proxy", Some(header.clone()));
        let mut p = LocatedProxy {
            spec: ProxySpec::default(),
            header,
        };
        let nested = Nested::AsAttribute(Some("enabled = true or replicas = 2"));
        self.attributes(&b.body, "proxy", &PROXY_FIELDS, nested, |cx, a| {
            let v = &a.value;
            if a.key.as_str() == "enabled" {
                cx.record("proxy.enabled", v.span());
                if let Some(flag) = cx.boolean(v, "proxy.enabled") {
                    p.spec.enabled = flag;
                }
            } else {
                cx.record("proxy.replicas", v.span());
                if let Some(n) =
                    cx.whole(v, "proxy.replicas", 0, u64::from(u32::MAX), "replicas = 2")
                {
                    p.spec.replicas = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
        });
        p
    }

    /// The proxy rules, which the server also runs (`validate_proxy` in vd-core), each reported
    /// at the field it names.
    fn check_proxy(&mut self, spec: &RedisSpec, l: &LocatedProxy, sentinel_known: bool) {
        // A sentinel `enabled` that was not a bool has its own error; whether this is a sibling
        // is unknown, so only what holds either way (the replicas range) is reported.
        let mut checked = spec.clone();
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::validate_proxy(&checked) {
            let span = self.span_of(&p.field).or_else(|| Some(l.header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// `backup { schedule = "0 */6 * * *"  keep = 10  destination = "..."  source = 2
    /// env_from = ["aws"] }`; checked with the rest of the block by `check_backup`.
    fn backup(&mut self, b: &Block) -> LocatedBackup {
        let header = header_span(b);
        self.record("backup", Some(header.clone()));
        let mut l = LocatedBackup {
            spec: BackupSpec {
                schedule: String::new(),
                keep: vd_core::redis::backup::DEFAULT_KEEP,
                destination: None,
                source: None,
                env_from: Vec::new(),
            },
            header: header.clone(),
            schedule_known: false,
        };
        let mut schedule_written = false;
        let nested = Nested::AsAttribute(Some("schedule = \"0 */6 * * *\" or keep = 10"));
        self.attributes(&b.body, "backup", &BACKUP_FIELDS, nested, |cx, a| {
            let v = &a.value;
            match a.key.as_str() {
                "schedule" => {
                    schedule_written = true;
                    cx.record("backup.schedule", v.span());
                    if let Some(s) = cx.string(v, "backup.schedule", Str::Literal) {
                        l.spec.schedule = s;
                        l.schedule_known = true;
                    }
                }
                "keep" => {
                    cx.record("backup.keep", v.span());
                    if let Some(n) = cx.whole(v, "backup.keep", 0, u64::from(u32::MAX), "keep = 10")
                    {
                        l.spec.keep = u32::try_from(n).unwrap_or(u32::MAX);
                    }
                }
                "destination" => {
                    cx.record("backup.destination", v.span());
                    l.spec.destination = cx.string(v, "backup.destination", Str::Literal);
                }
                "source" => {
                    cx.record("backup.source", v.span());
                    if let Some(n) =
                        cx.whole(v, "backup.source", 0, u64::from(u32::MAX), "source = 2")
                    {
                        l.spec.source = Some(u32::try_from(n).unwrap_or(u32::MAX));
                    }
                }
                _ => {
                    cx.record("backup.env_from", v.span());
                    l.spec.env_from = cx.env_from(v);
                }
            }
        });
        if !schedule_written {
            self.err(
                Some(header),
                "`backup` needs a `schedule`",
                "add schedule = \"0 */6 * * *\" (five cron fields, UTC: here every six hours) or \"@daily\"; `vd redis:backup` takes one backup now",
            );
        }
        l
    }

    /// The backup rules, which the server also runs (`validate_backup` in vd-core), each
    /// reported at the field it names.
    fn check_backup(&mut self, spec: &RedisSpec, l: &LocatedBackup, sentinel_known: bool) {
        let mut checked = spec.clone();
        if !sentinel_known {
            checked.sentinel = None;
        }
        for p in vd_core::redis::validate_backup(&checked) {
            // A schedule that was missing or not a string has its own error.
            if p.field == "backup.schedule" && !l.schedule_known {
                continue;
            }
            let span = self.span_of(&p.field).or_else(|| Some(l.header.clone()));
            self.err(span, p.message, p.help);
        }
    }

    /// `sentinel.monitor`: "scope/name" of another redis in this block's scope.
    fn check_monitor(
        &mut self,
        m: &str,
        span: Option<Range<usize>>,
        id: Option<&(String, String)>,
    ) {
        let scope = id.map_or("scope", |(scope, _)| scope.as_str());
        let example = format!("e.g. monitor = \"{scope}/redis\"");
        let parts: Vec<&str> = m.split('/').collect();
        let [ms, mn] = parts.as_slice() else {
            self.err(
                span,
                format!("`sentinel.monitor` must be \"scope/name\", found \"{m}\""),
                format!("write the data redis this sentinel watches as \"scope/name\", {example}"),
            );
            return;
        };
        for (part, what) in [(ms, "monitor scope"), (mn, "monitor name")] {
            if let Err(e) = validate_label(what, part) {
                self.err(
                    span,
                    format!("in `sentinel.monitor`: {e}"),
                    format!(
                        "write the data redis this sentinel watches as \"scope/name\", {example}"
                    ),
                );
                return;
            }
        }
        let Some((own_scope, own_name)) = id else {
            return;
        };
        if ms != own_scope {
            self.err(
                span,
                format!("`sentinel.monitor` \"{m}\" is in scope `{ms}`, but this redis is in scope `{own_scope}`"),
                format!("sentinel siblings must watch a redis in the same scope; multi-scope clusters need their own sentinel siblings: monitor a redis in `{own_scope}` here, and declare a sentinel sibling in scope `{ms}` to watch {m}"),
            );
        } else if mn == own_name {
            self.err(
                span,
                format!("`sentinel.monitor` points at this redis itself (\"{m}\")"),
                format!("a sentinel sibling watches a separate data redis: declare the data redis as its own block, e.g. `redis \"{own_scope}\" \"redis\" {{}}`, and write monitor = \"{own_scope}/redis\" here"),
            );
        }
    }
}
