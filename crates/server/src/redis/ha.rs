//! The write guard of both HA modes (`min-replicas-to-write`): a master accepts writes only
//! while a replica acknowledged recently, so an isolated or returning old master refuses
//! writes instead of acknowledging ones a failover will discard.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::redis::facts::{auth, connect, load, pod_ips, redis_err};
use std::collections::BTreeMap;
use vd_core::redis as macro_;
use vd_core::ResourceRef;
use vd_store::{HaState, MetaKey};

/// Bucket keys of the HA-mode write guard: read by the entrypoint.
pub const MIN_REPLICAS_TO_WRITE: &str = "REDIS_MIN_REPLICAS_TO_WRITE";

/// See [`MIN_REPLICAS_TO_WRITE`].
pub const MIN_REPLICAS_MAX_LAG: &str = "REDIS_MIN_REPLICAS_MAX_LAG";

/// In HA modes (a sentinel watches the redis, or automatic failover), a master accepts writes
/// only while a replica acknowledged within 10 s: an isolated or returning old master then
/// refuses writes instead of acknowledging ones the failover will discard. Written once into
/// the bucket at apply (the operator may change or unset the keys there; a file in conf.d
/// also wins), before the apply computes the hash it waits for, without restarting pods.
pub fn ensure_ha_bucket(ctl: &Controller, id: &ResourceRef) -> Result<(), ServerError> {
    let bucket = ctl.store.config_effective(&id.scope, &id.name)?;
    let key = MetaKey::HaSettings(id.clone());
    if bucket.contains_key(MIN_REPLICAS_TO_WRITE) || ctl.store.meta(&key)?.is_some() {
        return Ok(());
    }
    let set = BTreeMap::from([
        (MIN_REPLICAS_TO_WRITE.to_string(), "1".to_string()),
        (MIN_REPLICAS_MAX_LAG.to_string(), "10".to_string()),
    ]);
    ctl.update_config(&id.scope, Some(&id.name), &set, &[], true)?;
    // Once: an operator who unsets the keys later keeps them unset.
    ctl.store.set_meta(&key, HaState::PendingLive.as_str())?;
    Ok(())
}

/// After [`ensure_ha_bucket`], once the redis is between rollouts: the pods already running
/// get the guard live (`CONFIG SET`), unless they mount conf.d files, whose settings must keep
/// winning; they get it from the bucket on their next start anyway.
pub async fn ensure_ha_live(ctl: &Controller, id: &ResourceRef) -> Result<(), ServerError> {
    let key = MetaKey::HaSettings(id.clone());
    // An unreadable state reads as pending: setting the guard again is harmless.
    let state = match ctl.store.meta_parsed::<HaState>(&key) {
        Err(vd_store::StoreError::CorruptMeta { .. }) => Some(HaState::PendingLive),
        other => other?,
    };
    if state != Some(HaState::PendingLive) || !ctl.workload_status(id).is_some_and(|s| s.converged)
    {
        return Ok(());
    }
    let spec = load(ctl, id)?;
    let conf_d = spec
        .volumes
        .iter()
        .any(|v| v.target.starts_with(macro_::CONF_D));
    if !conf_d {
        let pw = auth(ctl, id)?;
        for (o, ip) in pod_ips(ctl, id) {
            let applied = async {
                let mut n = connect(&ip, &pw).await?;
                for (k, v) in [
                    ("min-replicas-to-write", "1"),
                    ("min-replicas-max-lag", "10"),
                ] {
                    n.config_set(k, v).await.map_err(redis_err)?;
                }
                Ok::<_, ServerError>(())
            };
            if let Err(e) = applied.await {
                // It gets the setting from the bucket when it next starts.
                tracing::warn!(redis = %id, ordinal = o, error = %e, "could not set min-replicas live");
            }
        }
    }
    ctl.store.set_meta(&key, HaState::Done.as_str())?;
    Ok(())
}
