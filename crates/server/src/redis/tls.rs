//! TLS on a running redis pod: loading a renewed certificate without a restart.

use crate::orchestration::controller::Controller;
use crate::redis::facts;
use vd_core::ResourceRef;

/// Has pod `ordinal` of `id` load the certificate files it mounts again. Setting
/// `tls-cert-file` (to the path it already has) makes redis rebuild its TLS context from the
/// current certificate, key and CA files; connections already open keep the session they
/// have, new ones get the new certificate.
pub async fn reload_certificate(
    ctl: &Controller,
    id: &ResourceRef,
    ordinal: u32,
) -> Result<(), String> {
    let auth = facts::auth(ctl, id).map_err(|e| e.to_string())?;
    let ip = facts::pod_ips(ctl, id)
        .remove(&ordinal)
        .ok_or_else(|| format!("pod {ordinal} has no address"))?;
    let mut node = facts::connect(&ip, &auth)
        .await
        .map_err(|e| e.to_string())?;
    let path = node
        .config_get("tls-cert-file")
        .await
        .map_err(|e| e.to_string())?
        .filter(|p| !p.is_empty())
        .ok_or("the pod has no tls-cert-file set")?;
    node.config_set("tls-cert-file", &path)
        .await
        .map_err(|e| e.to_string())
}
