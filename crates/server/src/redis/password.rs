//! The generated passwords, `REDIS_PASSWORD` of a data redis and `REDIS_SENTINEL_PASSWORD` of
//! a sentinel sibling: drawn from the OS CSPRNG (the apply pipeline stores each with the redis
//! that needs it), and rotated live with `vd redis:new-password`.

use crate::error::ServerError;
use crate::redis::facts::{self, connect, load, pod_ips, redis_err, redis_ref, PASSWORD};
use crate::redis::link::rewrite_consumers;
use crate::redis::ops::Ops;
use std::collections::BTreeMap;
use std::time::Duration;
use vd_core::event::{Level, Reason};
use vd_core::redis::topology::monitor_of;
use vd_core::redis::{SENTINEL_PASSWORD_VAR, SENTINEL_PORT};
use vd_core::ResourceRef;
use vd_redisctl::Sentinel;

/// Connect and reply timeout for each sentinel during a rotation.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);

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
/// password the server rejects. No redis pod restarts. On a sentinel sibling it is the
/// sentinels' own password that changes ([`rotate_sentinel_password`]).
pub async fn rotate_password(
    ops: &Ops,
    scope: &str,
    name: &str,
    no_restart: bool,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let id = redis_ref(scope, name);
    let spec = load(ctl, &id)?;
    if let Some(data) = monitor_of(&spec) {
        return rotate_sentinel_password(ops, &id, &data, no_restart).await;
    }
    let auth = facts::auth(ctl, &id)?;
    let old = auth.password.clone();
    let new = new_password()?;
    let ips = pod_ips(ctl, &id);
    let mut nodes = Vec::new();
    for (o, ip) in &ips {
        nodes.push(connect(ip, &auth).await.map_err(|e| {
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
    // The proxy pods keep running; their own connections read the new password from here.
    crate::redis::feed::publish_secrets(ctl, &id)?;
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

/// The sentinels' password, rotated in the same order: every sentinel accepts the new one
/// (`ACL SETUSER default >new`) and sends it to its peers (`SENTINEL CONFIG SET
/// sentinel-pass`), then the bucket and the consumers linked with `--sentinel` get it, and only
/// then is the old one revoked. A sentinel that cannot be reached stops the rotation before
/// anything changed. No sentinel restarts: one that restarts later reads the new password from
/// its env.
async fn rotate_sentinel_password(
    ops: &Ops,
    sid: &ResourceRef,
    data: &ResourceRef,
    no_restart: bool,
) -> Result<(), ServerError> {
    let ctl = &ops.ctl;
    let auth = facts::sentinel_auth(ctl, sid)?;
    let old = auth.password.clone();
    let new = new_password()?;
    let mut sentinels = Vec::new();
    for (o, ip) in pod_ips(ctl, sid) {
        let s = Sentinel::connect_with(&ip, SENTINEL_PORT, auth.access(), SENTINEL_TIMEOUT)
            .await
            .map_err(|e| {
                ServerError::unavailable(
                    format!("sentinel {o} of {sid} is unreachable ({e}); nothing changed"),
                    "wait until every sentinel is ready (`vd get pods`), then retry",
                )
            })?;
        sentinels.push(s);
    }
    for s in sentinels.iter_mut() {
        s.add_default_password(&new).await.map_err(redis_err)?;
    }
    for s in sentinels.iter_mut() {
        s.config_set("sentinel-pass", &new)
            .await
            .map_err(redis_err)?;
    }
    let set = BTreeMap::from([(SENTINEL_PASSWORD_VAR.to_string(), new.clone())]);
    ctl.update_config(&sid.scope, Some(&sid.name), &set, &[], true)?;
    ctl.refresh_probe_env(sid);
    crate::redis::feed::publish_secrets(ctl, data)?;
    rewrite_consumers(ctl, data, no_restart)?;
    if let Some(old) = &old {
        for s in sentinels.iter_mut() {
            s.remove_default_password(old).await.map_err(redis_err)?;
        }
    }
    ctl.event(
        Level::Info,
        Some(sid),
        None,
        Reason::PasswordRotated,
        "REDIS_SENTINEL_PASSWORD replaced on every sentinel and consumer linked with --sentinel",
    );
    Ok(())
}
