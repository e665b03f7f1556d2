//! The generated `REDIS_PASSWORD`: created once per data redis, and rotated live with
//! `vd redis:new-password`.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{self, connect, load, pod_ips, redis_err, redis_ref, spec_of, PASSWORD};
use crate::redis::link::rewrite_consumers;
use crate::redis::ops::Ops;
use std::collections::BTreeMap;
use vd_core::env::EnvMap;
use vd_core::event::{Level, Reason};
use vd_core::{Resource, ResourceRef};

/// A stand-in password so an apply can be validated before the real one is created.
pub fn password_overlay(ctl: &Controller, r: &Resource) -> Result<Option<EnvMap>, ServerError> {
    // A derived proxy reads the password of the redis it fronts, created with that redis.
    let bucket = match spec_of(r) {
        Some(_) => r.id.clone(),
        None => match facts::fronted(r) {
            Some(data) => data,
            None => return Ok(None),
        },
    };
    let own = ctl.store.config_effective(&bucket.scope, &bucket.name)?;
    Ok((!own.contains_key(PASSWORD))
        .then(|| EnvMap::from([(PASSWORD.to_string(), "validation".to_string())])))
}

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

/// Creates the resource's password once; later applies reuse it.
pub fn ensure_password(ctl: &Controller, id: &ResourceRef) -> Result<(), ServerError> {
    let bucket = ctl.store.config_get(&id.scope, Some(&id.name))?;
    if !bucket.contains_key(PASSWORD) {
        let set = BTreeMap::from([(PASSWORD.to_string(), new_password()?)]);
        ctl.store
            .config_update(&id.scope, Some(&id.name), &set, &[])?;
        ctl.event(
            Level::Info,
            Some(id),
            None,
            Reason::PasswordCreated,
            "generated REDIS_PASSWORD in the resource's bucket",
        );
    }
    Ok(())
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
