//! The `tls { }` block's rules. Pure: the manifest parser reports them at their lines and the
//! server runs them again at apply for API clients.

use super::validate::RedisProblem;
use crate::RedisSpec;

/// Whether this redis speaks TLS only.
pub fn is_tls(spec: &RedisSpec) -> bool {
    spec.tls.is_some()
}

/// The `tls` block's own rules: where it may appear, and what it may say.
pub fn validate_tls(spec: &RedisSpec) -> Vec<RedisProblem> {
    let Some(t) = &spec.tls else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if super::topology::is_sentinel(spec) {
        // A sibling's `tls {}` says its sentinels speak TLS, to their clients and to the
        // redis they watch, with certificates vd issues; there is nothing else to say.
        if t.cert.is_some() || t.key.is_some() || t.ca.is_some() {
            problems.push(RedisProblem::new(
                "tls",
                "a sentinel sibling's `tls` block takes no settings",
                "write `tls {}`: vd issues the sentinels' certificates from the CA its data \
                 redis's certificates chain to",
            ));
        }
        return problems;
    }
    let set: Vec<&str> = [("cert", &t.cert), ("key", &t.key), ("ca", &t.ca)]
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
    match set.len() {
        0 => {}
        3 => problems.push(RedisProblem::new(
            "tls",
            "certificates brought by the operator (`cert`, `key`, `ca`) are not supported yet",
            "write `tls {}` and vd's own certificate authority issues and renews each pod's \
             certificate; `vd redis:ca` prints the CA for clients outside vd",
        )),
        _ => {
            let missing: Vec<&str> = ["cert", "key", "ca"]
                .into_iter()
                .filter(|k| !set.contains(k))
                .collect();
            problems.push(RedisProblem::new(
                format!("tls.{}", set[0]),
                format!("`tls` sets {} without {}", quoted(&set), quoted(&missing)),
                "bring the whole set (the certificate, its key and the CA it chains to), or \
                 write `tls {}` and let vd issue the certificates",
            ));
        }
    }
    problems
}

/// A sentinel sibling and the redis it watches speak TLS both or neither: a sentinel reaches
/// the redis's pods over TLS exactly when its own `tls {}` says so, and clients that find the
/// master through the sentinels reach both the same way.
pub fn validate_monitored_tls(monitored: &RedisSpec, sibling: &RedisSpec) -> Option<RedisProblem> {
    match (is_tls(monitored), is_tls(sibling)) {
        (true, false) => Some(RedisProblem::new(
            "sentinel.monitor",
            "the redis this sentinel sibling watches speaks TLS, and the sibling does not",
            "add `tls {}` to this sentinel sibling too: its sentinels then reach the redis, and \
             their clients reach them, over TLS",
        )),
        (false, true) => Some(RedisProblem::new(
            "tls",
            "this sentinel sibling speaks TLS, and the redis it watches does not",
            "remove `tls {}` here, or add it to the data redis as well",
        )),
        _ => None,
    }
}

/// Turning TLS on or off on a running redis. Refused until pods can roll across it: a pod
/// rolled to TLS only cannot replicate from a master that is not, and the other way round.
pub fn validate_tls_change(stored: &RedisSpec, spec: &RedisSpec) -> Option<RedisProblem> {
    let (before, after) = (is_tls(stored), is_tls(spec));
    (before != after).then(|| {
        let (what, help) = if after {
            (
                "TLS cannot be turned on for a running redis yet",
                "apply a new redis with `tls {}` and copy the data in with `vd redis:import`, \
                 or remove the `tls` block",
            )
        } else {
            (
                "TLS cannot be turned off for a running redis yet",
                "keep the `tls` block, or apply a new redis without it and copy the data in \
                 with `vd redis:import`",
            )
        };
        RedisProblem::new("tls", what, help)
    })
}

fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProxySpec, SentinelSpec, TlsSpec};

    fn tls(cert: bool, key: bool, ca: bool) -> RedisSpec {
        let v = |on: bool| on.then(|| "${asset.data.certs.x}".to_string());
        RedisSpec {
            tls: Some(TlsSpec {
                cert: v(cert),
                key: v(key),
                ca: v(ca),
            }),
            ..RedisSpec::default()
        }
    }

    #[test]
    fn the_rules() {
        assert_eq!(validate_tls(&RedisSpec::default()), []);
        assert_eq!(validate_tls(&tls(false, false, false)), []);

        let half = validate_tls(&tls(true, false, true));
        assert_eq!(half.len(), 1);
        assert_eq!(half[0].field, "tls.cert");
        assert_eq!(half[0].message, "`tls` sets `cert` and `ca` without `key`");

        let own = validate_tls(&tls(true, true, true));
        assert_eq!(own.len(), 1, "{own:?}");
        assert!(own[0].message.contains("not supported yet"));

        let mut sibling = tls(false, false, false);
        sibling.sentinel = Some(SentinelSpec {
            enabled: true,
            monitor: Some("data/cache".into()),
        });
        assert_eq!(validate_tls(&sibling), []);
        sibling.tls = tls(true, true, true).tls;
        let p = validate_tls(&sibling);
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].message,
            "a sentinel sibling's `tls` block takes no settings"
        );

        // The proxy of a TLS redis speaks TLS at both ends.
        let mut proxied = tls(false, false, false);
        proxied.proxy = Some(ProxySpec {
            enabled: true,
            replicas: 1,
        });
        assert_eq!(validate_tls(&proxied), []);
    }

    #[test]
    fn turning_tls_on_or_off_is_refused_and_keeping_it_is_not() {
        let plain = RedisSpec::default();
        let on = tls(false, false, false);
        assert!(validate_tls_change(&plain, &plain).is_none());
        assert!(validate_tls_change(&on, &on).is_none());
        let p = validate_tls_change(&plain, &on).unwrap();
        assert!(p.message.contains("turned on"));
        let p = validate_tls_change(&on, &plain).unwrap();
        assert!(p.message.contains("turned off"));
        assert!(validate_monitored_tls(&on, &plain).is_some());
        assert!(validate_monitored_tls(&plain, &on).is_some());
        assert!(validate_monitored_tls(&on, &on).is_none());
        assert!(validate_monitored_tls(&plain, &plain).is_none());
    }
}
