//! The generated `REDIS_PASSWORD`: drawn from the OS CSPRNG (the apply pipeline stores it
//! with the redis that needs it), and rotated live with `vd redis:new-password`.

use crate::error::ServerError;
use crate::redis::facts::{self, connect, load, pod_ips, redis_err, redis_ref, PASSWORD};
use crate::redis::link::rewrite_consumers;
use crate::redis::ops::Ops;
use std::collections::BTreeMap;
use vd_core::event::{Level, Reason};

/// 32 random bytes from the OS CSPRNG, hex.
pub fn new_password() -> Result<String, ServerError> {
    use rand::TryRngCore;
    let mut buf = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut buf).map_err(|e| {
        ServerError::io(
            "read the OS random source",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `vd redis:new-password`: every pod accepts the new password before anything else changes,
/// consumers get it next, and only then is the old one revoked, so no consumer ever holds a
/// password the server rejects. No redis pod restarts.
pub async fn rotate_password(
    ops: &Ops,
    scope: &str,
    name: &str,
    no_restart: bool,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let id = redis_ref(scope, name);
    load(ctl, &id)?;
    let old = facts::password(ctl, &id)?;
    let new = new_password()?;
    let ips = pod_ips(ctl, &id);
    let mut nodes = Vec::new();
    for (o, ip) in &ips {
        nodes.push(connect(ip, &old).await.map_err(|e| {
            ServerError::unavailable(
                format!("pod {o} is unreachable ({e}); nothing changed"),
                "wait until every pod is ready (`vd get pods`), then retry",
            )
        })?);
    }
    for n in nodes.iter_mut() {
        n.add_default_password(&new).await.map_err(redis_err)?;
        n.config_set("masterauth", &new).await.map_err(redis_err)?;
    }
    // Sentinels authenticate to the pods too: they move to the new password while both work.
    crate::redis::sentinel::set_auth_pass(ops, &id, &new).await?;
    // The pods keep running: their env (REDISCLI_AUTH for probes) is refreshed in place and
    // the new password is what their entrypoint uses on the next restart.
    let set = BTreeMap::from([(PASSWORD.to_string(), new.clone())]);
    ctl.update_config(scope, Some(name), &set, &[], true)?;
    ctl.refresh_probe_env(&id);
    rewrite_consumers(ctl, &id, no_restart)?;
    for n in nodes.iter_mut() {
        n.remove_default_password(&old).await.map_err(redis_err)?;
    }
    ctl.event(
        Level::Info,
        Some(&id),
        None,
        Reason::PasswordRotated,
        "REDIS_PASSWORD replaced on every pod and linked consumer",
    );
    Ok(())
}
