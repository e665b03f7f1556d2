//! The status page as HTML, from a [`Snapshot`]: pure, so the same snapshot always renders the
//! same page, and tests check it without a server. Every text from the snapshot is escaped.
//! Roles and health are shown by colour and by words, so the page reads in grey scale too.

use super::snapshot::{Entry, Node, RedisStatus, Snapshot};
use std::fmt::Write;

/// Escapes text for HTML and SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A role's fill colour and its word.
fn look(n: &Node) -> (&'static str, String) {
    let word = match (n.role.as_str(), n.ready) {
        ("master", true) => "MASTER".to_string(),
        ("master", false) => "MASTER, not ready".to_string(),
        ("replica", _) if n.link.as_deref() == Some("down") => "replica, link down".to_string(),
        ("replica", true) => "replica".to_string(),
        ("replica", false) => "replica, not ready".to_string(),
        (other, _) => other.to_uppercase(),
    };
    let fill = match n.role.as_str() {
        "master" => "#1b5e20",
        "replica" if n.link.as_deref() == Some("down") || !n.ready => "#e65100",
        "replica" => "#0d47a1",
        _ => "#b71c1c",
    };
    (fill, word)
}

fn lag(n: &Node) -> String {
    match n.lag_bytes {
        Some(b) => format!("lag {b} B"),
        None => String::new(),
    }
}

const BOX_W: i32 = 150;
const BOX_H: i32 = 46;

fn node_box(svg: &mut String, x: i32, y: i32, title: &str, fill: &str, word: &str, extra: &str) {
    let _ = write!(
        svg,
        r##"<g class="node"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}"/><text x="{tx}" y="{ty1}" fill="#fff" font-weight="bold">{title}</text><text x="{tx}" y="{ty2}" fill="#fff">{word}</text>"##,
        tx = x + 8,
        ty1 = y + 18,
        ty2 = y + 36,
        title = esc(title),
        word = esc(word),
    );
    if !extra.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" fill="#333" font-size="11">{}</text>"##,
            x + 8,
            y + BOX_H + 13,
            esc(extra)
        );
    }
    svg.push_str("</g>");
}

fn line(svg: &mut String, (x1, y1): (i32, i32), (x2, y2): (i32, i32), dashed: bool) {
    let dash = if dashed {
        r#" stroke-dasharray="5,4""#
    } else {
        ""
    };
    let _ = write!(
        svg,
        r##"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"{dash}/>"##
    );
}

/// The topology of one redis as an SVG picture: sentinels (top left) and the proxy (top
/// right) point at the master they name; replicas (below) point at the master they follow.
/// A cluster is drawn as one column per shard.
pub fn topology(r: &RedisStatus) -> String {
    let mut svg = String::new();
    let gap = 20;
    let pod = |o: u32| format!("{}-{o}", r.name);
    if !r.shards.is_empty() {
        let width = (r.shards.len() as i32) * (BOX_W + gap) + gap;
        let rows = r.shards.iter().map(|s| s.replicas.len()).max().unwrap_or(0) as i32;
        let height = 40 + (rows + 1) * (BOX_H + 40);
        let _ = write!(
            svg,
            r#"<svg class="topology" role="img" aria-label="{} topology" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#,
            esc(&format!("{}/{}", r.scope, r.name))
        );
        svg.push_str(ARROW);
        for (i, s) in r.shards.iter().enumerate() {
            let x = gap + (i as i32) * (BOX_W + gap);
            let _ = write!(
                svg,
                r##"<text x="{x}" y="18" fill="#333">shard {i}: slots {}</text>"##,
                esc(&s.slots)
            );
            let master = s
                .master
                .and_then(|m| r.nodes.iter().find(|n| n.ordinal == m));
            let (fill, word) = master.map_or(("#b71c1c", "NO MASTER".into()), look);
            let title = s.master.map_or_else(|| "?".into(), pod);
            node_box(&mut svg, x, 28, &title, fill, &word, "");
            for (j, rep) in s.replicas.iter().enumerate() {
                let y = 28 + (j as i32 + 1) * (BOX_H + 40);
                let node = rep.and_then(|o| r.nodes.iter().find(|n| n.ordinal == o));
                let (fill, word) = node.map_or(("#b71c1c", "UNKNOWN".into()), look);
                let title = rep.map_or_else(|| "?".into(), pod);
                node_box(&mut svg, x, y, &title, fill, &word, "");
                line(
                    &mut svg,
                    (x + BOX_W / 2, y),
                    (x + BOX_W / 2, 28 + BOX_H + 2),
                    false,
                );
            }
        }
        svg.push_str("</svg>");
        return svg;
    }
    let sentinels = r.sentinels.as_ref().map(|s| s.3.as_slice()).unwrap_or(&[]);
    let top = sentinels.len().max(r.proxy.len()) as i32;
    let replicas: Vec<&Node> = r.nodes.iter().filter(|n| n.ordinal != r.master).collect();
    let columns = (replicas.len() as i32).max(1).max(top * 2);
    let width = columns * (BOX_W + gap) + gap;
    let row = BOX_H + 50;
    let (top_y, master_y, replica_y) = if top > 0 {
        (10, 10 + row, 10 + 2 * row)
    } else {
        (0, 10, 10 + row)
    };
    let height = replica_y + if replicas.is_empty() { 0 } else { BOX_H + 30 };
    let _ = write!(
        svg,
        r#"<svg class="topology" role="img" aria-label="{} topology" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#,
        esc(&format!("{}/{}", r.scope, r.name))
    );
    svg.push_str(ARROW);
    let master_x = (width - BOX_W) / 2;
    let master_top = (master_x + BOX_W / 2, master_y - 2);
    // Sentinels, each pointing at the pod it names (the master, unless it disagrees).
    for (i, s) in sentinels.iter().enumerate() {
        let x = gap + (i as i32) * (BOX_W + gap);
        let (fill, word, extra) = match (&s.names, &s.error) {
            (Some(m), _) => ("#4a148c", "sentinel".to_string(), format!("names {m}")),
            (None, Some(_)) => ("#b71c1c", "SENTINEL DOWN".to_string(), String::new()),
            (None, None) => ("#e65100", "sentinel, no master".to_string(), String::new()),
        };
        let title = format!(
            "{}-{}",
            r.sentinels.as_ref().map_or("", |s| s.0.as_str()),
            s.ordinal
        );
        node_box(&mut svg, x, top_y, &title, fill, &word, &extra);
        if s.names.as_deref() == Some(pod(r.master).as_str()) {
            line(
                &mut svg,
                (x + BOX_W / 2, top_y + BOX_H + 17),
                master_top,
                true,
            );
        }
    }
    // The proxy, pointing at the master it sends clients to.
    for (i, (name, ready)) in r.proxy.iter().enumerate() {
        let x = width - (i as i32 + 1) * (BOX_W + gap);
        let (fill, word) = if *ready {
            ("#004d40", "proxy")
        } else {
            ("#e65100", "proxy, not ready")
        };
        node_box(
            &mut svg,
            x,
            top_y,
            name,
            fill,
            word,
            &format!("to {}", pod(r.master)),
        );
        line(
            &mut svg,
            (x + BOX_W / 2, top_y + BOX_H + 17),
            master_top,
            false,
        );
    }
    if let Some(m) = r.nodes.iter().find(|n| n.ordinal == r.master) {
        let (fill, word) = look(m);
        node_box(
            &mut svg,
            master_x,
            master_y,
            &pod(m.ordinal),
            fill,
            &word,
            &m.memory,
        );
    }
    let span = replicas.len() as i32 * (BOX_W + gap) - gap;
    let start = (width - span) / 2;
    for (i, n) in replicas.iter().enumerate() {
        let x = start + (i as i32) * (BOX_W + gap);
        let (fill, word) = look(n);
        node_box(
            &mut svg,
            x,
            replica_y,
            &pod(n.ordinal),
            fill,
            &word,
            &lag(n),
        );
        if n.role == "replica" {
            line(
                &mut svg,
                (x + BOX_W / 2, replica_y - 2),
                (master_x + BOX_W / 2, master_y + BOX_H + 2),
                n.link.as_deref() == Some("down"),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

const ARROW: &str = r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##;

fn when(ts_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - ts_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn entries(out: &mut String, class: &str, list: &[Entry], now_ms: i64, empty: &str) {
    if list.is_empty() {
        let _ = write!(out, r#"<p class="{class} empty">{}</p>"#, esc(empty));
        return;
    }
    let _ = write!(out, r#"<ol class="{class}">"#);
    for e in list.iter().rev() {
        let _ = write!(
            out,
            r#"<li class="{}"><time data-ms="{}">{}</time> <b>{}</b>{} {}</li>"#,
            if e.level == "info" { "info" } else { "warning" },
            e.ts_ms,
            esc(&when(e.ts_ms, now_ms)),
            esc(&e.reason),
            e.pod
                .as_deref()
                .map(|p| format!(" <i>{}</i>", esc(p)))
                .unwrap_or_default(),
            esc(&e.message)
        );
    }
    out.push_str("</ol>");
}

/// The page's live part: a section per redis (topology, pods, timeline, backups) and a table of
/// the other workloads. The page fetches it again every few seconds.
pub fn fragment(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = write!(out, r#"<div id="snapshot" data-at="{}">"#, s.at_ms);
    if s.redis.is_empty() {
        out.push_str("<p>No redis yet: apply a manifest with a <code>redis</code> block.</p>");
    }
    for r in &s.redis {
        let id = format!("{}/{}", r.scope, r.name);
        let _ = write!(
            out,
            r#"<section class="redis" id="redis-{}"><h2>redis {}</h2><p class="mode">{} &middot; master {}-{}</p>"#,
            esc(&id.replace('/', "-")),
            esc(&id),
            esc(&r.mode),
            esc(&r.name),
            r.master
        );
        out.push_str(&topology(r));
        out.push_str(r#"<table class="pods"><tr><th>pod</th><th>role</th><th>ready</th><th>link</th><th>lag</th><th>memory</th></tr>"#);
        for n in &r.nodes {
            let (_, word) = look(n);
            let _ = write!(
                out,
                r#"<tr class="role-{}"><td>{}-{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&n.role.replace(' ', "-")),
                esc(&r.name),
                n.ordinal,
                esc(&word),
                if n.ready { "yes" } else { "no" },
                esc(n.link.as_deref().unwrap_or("-")),
                n.lag_bytes.map_or_else(|| "-".into(), |b| format!("{b} B")),
                esc(&n.memory)
            );
        }
        out.push_str("</table>");
        if let Some((name, quorum, healthy, _)) = &r.sentinels {
            let _ = write!(
                out,
                r#"<p class="sentinels">sentinels {}: quorum {quorum}, {}</p>"#,
                esc(name),
                if *healthy { "healthy" } else { "NOT HEALTHY" }
            );
        }
        out.push_str("<h3>Timeline</h3>");
        entries(&mut out, "timeline", &r.timeline, s.at_ms, "nothing yet");
        out.push_str("<h3>Last backups</h3>");
        entries(&mut out, "backups", &r.backups, s.at_ms, "no backup yet");
        out.push_str("</section>");
    }
    if !s.workloads.is_empty() {
        out.push_str(r#"<section class="workloads"><h2>Other workloads</h2><table><tr><th>workload</th><th>pods</th></tr>"#);
        for w in &s.workloads {
            let pods: Vec<String> = w
                .pods
                .iter()
                .map(|(p, state, ready)| {
                    format!(
                        "{} {}{}",
                        esc(p),
                        esc(state),
                        if *ready { ", ready" } else { "" }
                    )
                })
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&w.id),
                if pods.is_empty() {
                    "-".into()
                } else {
                    pods.join("; ")
                }
            );
        }
        out.push_str("</table></section>");
    }
    out.push_str("</div>");
    out
}

/// The whole page: the first fragment inline (one request to load), the style, and the script
/// that fetches `/fragment` every two seconds and says when the server stops answering.
pub fn page(s: &Snapshot) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vd status</title><style>{STYLE}</style></head><body><header><h1>vd status</h1><span id=\"live\">live</span></header><main id=\"main\">{}</main><script>{SCRIPT}</script></body></html>",
        fragment(s)
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222;background:#fafafa}header{display:flex;gap:1em;align-items:center;padding:.5em 1em;background:#263238;color:#fff}header h1{font-size:1.2em;margin:0}#live{font-size:.9em}#live.stale{background:#b71c1c;padding:.1em .5em;border-radius:4px}main{padding:0 1em}section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.5em 1em}h2{font-size:1.1em;margin:.3em 0}h3{font-size:1em;margin:.6em 0 .2em}.mode{color:#555;margin:.2em 0 .5em}table{border-collapse:collapse;font-size:.9em}td,th{border-bottom:1px solid #eee;padding:.2em .6em;text-align:left}ol{margin:0;padding-left:1.2em;font-size:.9em}li.warning b{color:#b71c1c}time{color:#666}.empty{color:#777;font-size:.9em}svg{max-width:100%;height:auto}";

const SCRIPT: &str = "(function(){var live=document.getElementById('live'),main=document.getElementById('main'),ok=Date.now();function tick(){fetch('fragment',{cache:'no-store'}).then(function(r){if(!r.ok)throw new Error(r.status);return r.text()}).then(function(t){main.innerHTML=t;ok=Date.now();live.textContent='live';live.className=''}).catch(function(){live.textContent='the vd server is not answering (last update '+Math.round((Date.now()-ok)/1000)+'s ago)';live.className='stale'})}setInterval(tick,2000)})();";

#[cfg(test)]
mod tests {
    use super::super::snapshot::{Entry, Node, RedisStatus, Sentinel, Snapshot};
    use super::*;

    fn node(o: u32, role: &str, ready: bool) -> Node {
        Node {
            ordinal: o,
            role: role.into(),
            link: (role == "replica").then(|| "up".into()),
            lag_bytes: (role == "replica").then_some(0),
            memory: "1.2M".into(),
            ready,
        }
    }

    fn redis() -> RedisStatus {
        RedisStatus {
            scope: "data".into(),
            name: "cache".into(),
            mode: "sentinels".into(),
            master: 1,
            nodes: vec![
                node(0, "replica", true),
                node(1, "master", true),
                node(2, "unreachable", false),
            ],
            sentinels: Some((
                "cache-ha".into(),
                2,
                true,
                vec![Sentinel {
                    ordinal: 0,
                    names: Some("cache-1".into()),
                    error: None,
                }],
            )),
            proxy: vec![("data-cache-proxy.0".into(), true)],
            shards: vec![],
            timeline: vec![Entry {
                ts_ms: 1_000,
                level: "info".into(),
                reason: "Failover".into(),
                pod: None,
                message: "master 0 -> 1 <b>".into(),
            }],
            backups: vec![],
        }
    }

    #[test]
    fn every_pod_has_its_role_in_words_and_the_topology_is_svg() {
        let page = page(&Snapshot {
            at_ms: 61_000,
            redis: vec![redis()],
            workloads: vec![],
        });
        for want in [
            "<svg class=\"topology\"",
            ">cache-1</text>",
            ">MASTER</text>",
            ">replica</text>",
            ">UNREACHABLE</text>",
            ">cache-ha-0</text>",
            "names cache-1",
            ">data-cache-proxy.0</text>",
            "to cache-1",
            "<b>Failover</b>",
            "1m ago",
            "no backup yet",
        ] {
            assert!(page.contains(want), "{want} in {page}");
        }
        // Text from the snapshot is escaped.
        assert!(page.contains("master 0 -&gt; 1 &lt;b&gt;"), "{page}");
    }

    #[test]
    fn fifty_redis_render_in_one_page() {
        let s = Snapshot {
            at_ms: 0,
            redis: (0..50)
                .map(|i| RedisStatus {
                    name: format!("cache{i}"),
                    ..redis()
                })
                .collect(),
            workloads: vec![],
        };
        let html = page(&s);
        assert_eq!(html.matches("<svg class=\"topology\"").count(), 50);
    }

    #[test]
    fn a_cluster_is_drawn_one_column_per_shard_with_its_slots() {
        use super::super::snapshot::Shard;
        let r = RedisStatus {
            mode: "cluster: 2/2 shards".into(),
            master: 0,
            nodes: (0..4)
                .map(|o| node(o, if o < 2 { "master" } else { "replica" }, true))
                .collect(),
            sentinels: None,
            proxy: vec![],
            shards: vec![
                Shard {
                    slots: "0-8191".into(),
                    master: Some(0),
                    replicas: vec![Some(2)],
                },
                Shard {
                    slots: "8192-16383".into(),
                    master: Some(1),
                    replicas: vec![Some(3)],
                },
            ],
            ..redis()
        };
        let svg = topology(&r);
        for want in [
            "shard 0: slots 0-8191",
            "shard 1: slots 8192-16383",
            ">cache-0</text>",
            ">cache-3</text>",
        ] {
            assert!(svg.contains(want), "{want} in {svg}");
        }
        assert_eq!(svg.matches(">MASTER</text>").count(), 2, "{svg}");
        assert_eq!(
            svg.matches("<line ").count(),
            2,
            "each replica points at its master"
        );
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
