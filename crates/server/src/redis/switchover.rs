//! `vd redis:failover`: a live switchover, no pod restarted, no acknowledged write lost. Without
//! `--replica` the target is chosen by the pure `vd_core::redis::switchover::choose_target`,
//! which uses the automatic failover planner's candidate rules; when no replica qualifies,
//! nothing changes and the answer says why.

use crate::error::ServerError;
use crate::redis::facts::{
    auth, connect, load, master_ordinal, node_info, pod_ips, redis_err, redis_ref, watcher_of, Auth,
};
use crate::redis::master::{self, Cause, NewMaster, Planned};
use crate::redis::ops::Ops;
use crate::types::{FailoverReport, FailoverRequest};
use std::collections::BTreeMap;
use std::time::Duration;
use vd_core::redis as macro_;
use vd_core::redis::failover::{NodeObs, NodeState};
use vd_core::ResourceRef;

/// How long observing one pod for the choice may take.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every pod of `id` as the candidate rules see it: `INFO` of each running pod, concurrently.
async fn observe(
    id: &ResourceRef,
    replicas: u32,
    ips: &BTreeMap<u32, String>,
    pw: &Auth,
) -> Vec<NodeObs> {
    let mut checks = tokio::task::JoinSet::new();
    for o in 0..replicas {
        let (id, ips, pw) = (id.clone(), ips.clone(), pw.clone());
        checks.spawn(async move {
            let Some(ip) = ips.get(&o) else {
                return NodeObs {
                    ordinal: o,
                    state: NodeState::Exited,
                };
            };
            let answer = async {
                let mut n = connect(ip, &pw).await.map_err(|e| e.to_string())?;
                n.info(None).await.map_err(|e| e.to_string())
            };
            let state = match tokio::time::timeout(OBSERVE_TIMEOUT, answer).await {
                Ok(Ok(info)) => NodeState::Up(node_info(&id, &info, &ips)),
                _ => NodeState::Unreachable { down_for_ms: 0 },
            };
            NodeObs { ordinal: o, state }
        });
    }
    let mut nodes = Vec::new();
    while let Some(done) = checks.join_next().await {
        if let Ok(n) = done {
            nodes.push(n);
        }
    }
    nodes.sort_by_key(|n| n.ordinal);
    nodes
}

/// `vd redis:failover`: a live switchover, no pod restarted, no acknowledged write lost.
pub async fn failover(
    ops: &Ops,
    scope: &str,
    name: &str,
    req: &FailoverRequest,
) -> Result<FailoverReport, ServerError> {
    let asked = redis_ref(scope, name);
    // A sentinel sibling asks its sentinels to fail over the redis it watches.
    let id = vd_core::redis::topology::monitor_of(&load(&ops.ctl, &asked)?).unwrap_or(asked);
    switch(ops, &id, req, Planned::Request).await
}

/// A rollout's handover: moves the master of `id` to an up-to-date replica (through its
/// sentinels, if it has any) before the rollout replaces the old master's pod, with the same
/// live switchover as `vd redis:failover`.
pub async fn hand_over(ops: &Ops, id: &ResourceRef) -> Result<FailoverReport, ServerError> {
    switch(ops, id, &FailoverRequest::default(), Planned::Rollout).await
}

/// A cluster rollout's handover: moves shard `shard`'s master role to an in-sync replica
/// (`CLUSTER FAILOVER`) before the rollout replaces the old master's pod.
pub async fn hand_over_shard(
    ops: &Ops,
    id: &ResourceRef,
    shard: usize,
) -> Result<FailoverReport, ServerError> {
    let req = FailoverRequest {
        shard: Some(u32::try_from(shard).unwrap_or(u32::MAX)),
        ..FailoverRequest::default()
    };
    switch(ops, id, &req, Planned::Rollout).await
}

async fn switch(
    ops: &Ops,
    id: &ResourceRef,
    req: &FailoverRequest,
    by: Planned,
) -> Result<FailoverReport, ServerError> {
    let ctl = &ops.ctl;
    let id = id.clone();
    let spec = load(ctl, &id)?;
    if vd_core::redis::cluster::is_cluster(&spec) {
        let shard = req.shard.ok_or_else(|| ServerError::Conflict {
            message: format!("{id} is a cluster: say which shard to switch over"),
            help: Some(format!(
                "vd redis:failover {}/{} --shard N (shards are listed by `vd redis:info`)",
                id.scope, id.name
            )),
        })?;
        return crate::redis::cluster::switchover(ops, &id, shard, req.replica, by).await;
    }
    if req.shard.is_some() {
        return Err(ServerError::Conflict {
            message: format!("{id} is not a cluster; --shard applies to clusters only"),
            help: Some("leave --shard out".into()),
        });
    }
    if let Some((sid, sspec)) = watcher_of(ctl, &id)? {
        return crate::redis::sentinel::failover(ops, &id, &sid, &sspec, req, by).await;
    }
    let replicas = spec.replicas.unwrap_or(1);
    let _paused = ops.failover.pause(&id);
    let from = master_ordinal(ctl, &id)?;
    let conflict = |m: String, h: &str| ServerError::Conflict {
        message: m,
        help: Some(h.to_string()),
    };
    if replicas < 2 {
        return Err(conflict(
            format!("{id} has one pod; there is no replica to promote"),
            "scale it to replicas = 3 first",
        ));
    }
    let pw = auth(ctl, &id)?;
    let ips = pod_ips(ctl, &id);
    let to = match req.replica {
        Some(n) if n >= replicas => {
            return Err(conflict(
                format!("{id} has no ordinal {n} (replicas = {replicas})"),
                "pick an ordinal from `vd redis:info`",
            ))
        }
        Some(n) if n == from => {
            return Err(conflict(
                format!("ordinal {n} is already the master"),
                "pick a replica",
            ))
        }
        Some(n) => n,
        None => macro_::switchover::choose_target(&observe(&id, replicas, &ips, &pw).await, from)
            .map_err(|e| {
            conflict(
                format!("{e}; nothing changed", e = e.reason),
                "check `vd redis:info`, or name a replica with --replica",
            )
        })?,
    };
    let (Some(master_ip), Some(target_ip)) = (ips.get(&from), ips.get(&to)) else {
        return Err(conflict(
            format!("pods {from} and {to} must both be running"),
            "check `vd get pods`",
        ));
    };
    let mut master = connect(master_ip, &pw).await?;
    let mut target = connect(target_ip, &pw).await?;
    let mut others = Vec::new();
    for (o, ip) in &ips {
        if *o != from && *o != to {
            others.push(connect(ip, &pw).await?);
        }
    }
    let target_host = vd_core::naming::pod_hostnames(&id, to)[1].clone();
    // Proxies hold new commands and finish those in flight before writes pause, so their
    // clients see a delay, not an error.
    crate::redis::feed::hold(ctl, &id, from).await?;
    let switched = vd_redisctl::switchover::switchover(
        &mut master,
        &mut target,
        &mut others,
        &target_host,
        macro_::REDIS_PORT,
        Duration::from_secs(5),
    )
    .await;
    let report = match switched {
        Ok(r) => r,
        Err(e) => {
            // Lift the proxies' hold: the master stays where it was.
            crate::redis::feed::publish(ctl, &id, from, false)?;
            return Err(redis_err(e));
        }
    };
    let pause = report.write_pause.as_millis() as u64;
    master::record(
        ops,
        &NewMaster {
            redis: &id,
            from,
            to,
            cause: Cause::Switchover {
                write_pause: report.write_pause,
                by,
            },
            no_restart_consumers: req.no_restart,
        },
        |_| format!("master {from} -> {to}, writes paused {pause} ms"),
    )?;
    Ok(FailoverReport {
        from,
        to,
        write_pause_ms: pause,
        by_sentinels: false,
    })
}
