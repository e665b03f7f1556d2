//! What the proxy counts, served as Prometheus text by `vd proxy --metrics-addr`.
//!
//! Counters are atomics: a connection looks its port's up once ([`Stats::port`]) and then
//! only adds, so counting costs the command path one relaxed atomic add per batch of
//! commands written upstream.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The proxy's two ports, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: &'static str,
}

/// Every series the proxy exposes.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    connections: Family<PortLabel, Counter>,
    open: Family<PortLabel, Gauge>,
    commands: Family<PortLabel, Counter>,
    upstream_errors: Family<PortLabel, Counter>,
    /// The master the proxy sends writes to changed (not counted when the first one is found).
    pub master_switches: Counter,
    /// Planned-failover holds begun.
    pub holds: Counter,
    /// Time commands were held, over all holds.
    pub hold_seconds: Counter<f64, AtomicU64>,
}

/// One port's counters, shared with [`Stats`].
#[derive(Clone, Debug)]
pub struct PortCounters {
    /// Client connections accepted.
    pub connections: Counter,
    /// Client connections open now.
    pub open: Gauge,
    /// Commands written to an upstream.
    pub commands: Counter,
    /// Upstream connections that could not be opened or were lost.
    pub upstream_errors: Counter,
}

impl Stats {
    /// The counters of port `name` (`master`, `read`).
    pub fn port(&self, name: &'static str) -> PortCounters {
        let l = PortLabel { port: name };
        PortCounters {
            connections: self.connections.get_or_create(&l).clone(),
            open: self.open.get_or_create(&l).clone(),
            commands: self.commands.get_or_create(&l).clone(),
            upstream_errors: self.upstream_errors.get_or_create(&l).clone(),
        }
    }

    /// The OpenMetrics text of every series.
    pub fn encode(&self) -> String {
        let mut r = Registry::default();
        r.register(
            "vd_proxy_connections",
            "Client connections accepted",
            self.connections.clone(),
        );
        r.register(
            "vd_proxy_open_connections",
            "Client connections open now",
            self.open.clone(),
        );
        r.register(
            "vd_proxy_commands",
            "Commands written to an upstream",
            self.commands.clone(),
        );
        r.register(
            "vd_proxy_upstream_errors",
            "Upstream connections that could not be opened or were lost",
            self.upstream_errors.clone(),
        );
        r.register(
            "vd_proxy_master_switches",
            "Changes of the master the proxy sends writes to",
            self.master_switches.clone(),
        );
        r.register(
            "vd_proxy_holds",
            "Planned-failover holds begun",
            self.holds.clone(),
        );
        r.register(
            "vd_proxy_hold_seconds",
            "Time commands were held for planned failovers",
            self.hold_seconds.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_per_port_in_the_text() {
        let s = Stats::default();
        let m = s.port("master");
        m.connections.inc();
        m.open.inc();
        m.commands.inc_by(41);
        s.port("master").commands.inc();
        s.port("read").connections.inc();
        s.master_switches.inc();
        s.hold_seconds.inc_by(0.25);
        let text = s.encode();
        for line in [
            "vd_proxy_connections_total{port=\"master\"} 1",
            "vd_proxy_connections_total{port=\"read\"} 1",
            "vd_proxy_open_connections{port=\"master\"} 1",
            "vd_proxy_commands_total{port=\"master\"} 42",
            "vd_proxy_master_switches_total 1",
            "vd_proxy_hold_seconds_total 0.25",
            "vd_proxy_holds_total 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
