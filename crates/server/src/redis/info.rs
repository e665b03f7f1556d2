//! What `vd redis:info`, `vd redis:url` and `vd get redis` show about a redis.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{self, connect, load, master_ordinal, pod_ips, redis_ref, spec_of};
use serde::{Deserialize, Serialize};
use vd_core::redis::{self as macro_, LinkMode};
use vd_core::Kind;

/// One row of `vd redis:info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Ordinal.
    pub ordinal: u32,
    /// ip:port.
    pub address: String,
    /// master / replica / unreachable.
    pub role: String,
    /// Replication offset.
    pub offset: i64,
    /// Bytes behind the master (replicas).
    pub lag_bytes: Option<i64>,
    /// Link to master up (replicas).
    pub link: Option<String>,
    /// used_memory_human.
    pub memory: String,
    /// connected_clients.
    pub clients: i64,
    /// Error talking to it.
    pub error: Option<String>,
}

/// `vd redis:info`.
pub async fn info(ctl: &Controller, scope: &str, name: &str) -> Result<Vec<NodeInfo>, ServerError> {
    let asked = redis_ref(scope, name);
    // A sentinel sibling answers with the pods of the redis it watches (its own sentinels are
    // the sentinel report's).
    let id = vd_core::redis::topology::monitor_of(&load(ctl, &asked)?).unwrap_or(asked);
    let pw = facts::auth(ctl, &id)?;
    // A cluster has a master per shard: one master's offset says nothing of the others'
    // replicas, so no lag is computed (the shard table shows who follows whom).
    let cluster = macro_::cluster::is_cluster(&load(ctl, &id)?);
    let mut rows = Vec::new();
    let mut master_offset = None;
    for (o, ip) in pod_ips(ctl, &id) {
        let address = format!("{ip}:{}", macro_::REDIS_PORT);
        let row = match connect(&ip, &pw).await {
            Ok(mut n) => match n.info(None).await {
                Ok(info) => {
                    let r = info.replication();
                    let role = match r.role {
                        vd_redisctl::Role::Master => "master",
                        vd_redisctl::Role::Replica => "replica",
                        vd_redisctl::Role::Unknown => "unknown",
                    };
                    if role == "master" {
                        master_offset = Some(r.master_repl_offset);
                    }
                    NodeInfo {
                        ordinal: o,
                        address,
                        role: role.into(),
                        offset: r.replica_repl_offset.unwrap_or(r.master_repl_offset),
                        lag_bytes: None,
                        link: (role == "replica").then(|| {
                            if r.link_up {
                                "up".into()
                            } else {
                                "down".into()
                            }
                        }),
                        memory: info.get("used_memory_human").unwrap_or("-").to_string(),
                        clients: info.num("connected_clients"),
                        error: None,
                    }
                }
                Err(e) => unreachable_row(o, address, e.to_string()),
            },
            Err(e) => unreachable_row(o, address, e.to_string()),
        };
        rows.push(row);
    }
    if let Some(m) = master_offset.filter(|_| !cluster) {
        for r in rows.iter_mut().filter(|r| r.role == "replica") {
            r.lag_bytes = Some((m - r.offset).max(0));
        }
    }
    Ok(rows)
}

fn unreachable_row(ordinal: u32, address: String, error: String) -> NodeInfo {
    NodeInfo {
        ordinal,
        address,
        role: "unreachable".into(),
        offset: 0,
        lag_bytes: None,
        link: None,
        memory: "-".into(),
        clients: 0,
        error: Some(error),
    }
}

/// Connection facts for `vd redis:url` and `vd redis:cli` (the password is only ever handed
/// to the local CLI over the 0600 socket).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    /// Internal URL of the master (per-pod name).
    pub url: String,
    /// Internal round-robin URL.
    pub read_url: String,
    /// Master address reachable from the host.
    pub external_host: Option<String>,
    /// Port.
    pub port: u16,
    /// Master ordinal.
    pub master: u32,
    /// Password.
    pub password: String,
    /// `redis-sentinel://h1:26379,.../voodu-master` when sentinels watch it.
    pub sentinel_url: Option<String>,
    /// The sentinel sibling watching it (`scope/name`), whose bucket holds the sentinels'
    /// password `REDIS_SENTINEL_PASSWORD`.
    #[serde(default)]
    pub sentinel: Option<String>,
    /// A Redis Cluster: clients must follow `MOVED`/`ASK` redirects (`redis-cli -c`).
    #[serde(default)]
    pub cluster: bool,
    /// A TLS-only redis: the CA certificate (PEM) its pods' certificates chain to.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// That CA as a file on the server's host (`redis-cli --cacert`).
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// `vd redis:url` / `vd redis:cli`.
pub fn endpoints(ctl: &Controller, scope: &str, name: &str) -> Result<Endpoints, ServerError> {
    let asked = redis_ref(scope, name);
    let asked_spec = load(ctl, &asked)?;
    // A sentinel sibling answers for the redis it watches.
    let (id, spec) = match vd_core::redis::topology::monitor_of(&asked_spec) {
        Some(data) => {
            let spec = load(ctl, &data)?;
            (data, spec)
        }
        None => (asked, asked_spec),
    };
    let watcher = crate::redis::facts::watcher_of(ctl, &id)?;
    let sentinel_url = watcher.as_ref().map(|(sid, sspec)| {
        macro_::sentinel_url(
            sid,
            sspec.replicas.unwrap_or(macro_::SENTINEL_DEFAULT_REPLICAS),
        )
    });
    let sentinel = watcher.map(|(sid, _)| format!("{}/{}", sid.scope, sid.name));
    let pw = facts::password(ctl, &id)?;
    let cluster = spec.cluster.filter(|_| macro_::cluster::is_cluster(&spec));
    let ips = pod_ips(ctl, &id);
    let (master, env) = match cluster {
        // Any node answers a cluster client: the lowest running one stands for the master.
        Some(c) => (
            ips.keys().next().copied().unwrap_or(0),
            macro_::cluster_link_env(&id, c.nodes(), &pw),
        ),
        None => {
            let master = master_ordinal(ctl, &id)?;
            let env = macro_::link_env(
                &id,
                spec.replicas.unwrap_or(1),
                master,
                &pw,
                LinkMode::Default,
            );
            (master, env)
        }
    };
    let ca_pem = if macro_::tls::is_tls(&spec) {
        Some(ctl.certs.ca_pem().map_err(ServerError::from)?)
    } else {
        None
    };
    let env = match &ca_pem {
        Some(pem) => macro_::with_tls(env, pem),
        None => env,
    };
    let url = env.get("REDIS_URL").cloned().unwrap_or_default();
    let read_url = env
        .get("REDIS_READ_URL")
        .cloned()
        .unwrap_or_else(|| url.clone());
    Ok(Endpoints {
        url,
        read_url,
        external_host: ips.get(&master).cloned(),
        port: macro_::REDIS_PORT,
        master,
        password: pw,
        sentinel_url,
        sentinel,
        cluster: cluster.is_some(),
        ca_file: ca_pem
            .as_ref()
            .map(|_| ctl.certs.ca_file().display().to_string()),
        ca_pem,
    })
}

/// A redis as `vd get redis` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisView {
    /// Scope.
    pub scope: String,
    /// Name.
    pub name: String,
    /// Ready pods.
    pub ready: u32,
    /// Desired pods.
    pub replicas: u32,
    /// Master ordinal.
    pub master: u32,
    /// The master pod (`cache-0`); for a sentinel sibling, that of the redis it watches.
    pub master_pod: String,
    /// standalone, replicated, HA, sentinel.
    pub mode: String,
}

/// `vd get redis`.
pub fn list(ctl: &Controller) -> Result<Vec<RedisView>, ServerError> {
    let mut out = Vec::new();
    for s in ctl.store.list(Some(Kind::Redis))? {
        let Some(spec) = spec_of(&s.resource) else {
            continue;
        };
        let cluster = spec.cluster.filter(|_| macro_::cluster::is_cluster(spec));
        let replicas = match cluster {
            Some(c) => c.nodes(),
            None => spec
                .replicas
                .unwrap_or(if vd_core::redis::topology::is_sentinel(spec) {
                    macro_::SENTINEL_DEFAULT_REPLICAS
                } else {
                    1
                }),
        };
        let st = ctl.workload_status(&s.resource.id).unwrap_or_default();
        let data =
            vd_core::redis::topology::monitor_of(spec).unwrap_or_else(|| s.resource.id.clone());
        let master = master_ordinal(ctl, &data)?;
        out.push(RedisView {
            scope: s.resource.id.scope.clone(),
            name: s.resource.id.name.clone(),
            ready: st.ready,
            replicas,
            master,
            // A cluster has a master per shard: `vd redis:info` lists them.
            master_pod: if cluster.is_some() {
                "-".into()
            } else {
                format!("{}-{master}", data.name)
            },
            mode: if let Some(c) = cluster {
                // The API fills in how much of it serves.
                format!("cluster: {} shards", c.shards)
            } else if let Some(m) = vd_core::redis::topology::monitor_of(spec) {
                format!("sentinel (watches {}/{})", m.scope, m.name)
            } else if let Some((sid, _)) = crate::redis::facts::watcher_of(ctl, &s.resource.id)? {
                format!("HA (sentinel {}/{})", sid.scope, sid.name)
            } else if vd_core::redis::topology::automatic_failover(spec) {
                "HA (controller failover)".into()
            } else if replicas > 1 {
                "replicated (manual failover)".into()
            } else {
                "standalone".into()
            },
        });
    }
    Ok(out)
}
