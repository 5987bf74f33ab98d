//! Service address reservations against the store (ClusterIPs, NodePorts); the pure rules are
//! in `registry::service`.

use bytes::Bytes;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::{ApiError, Cause};
use serde_json::{json, Value};

use crate::objects::{meta_str, name_of};
use crate::registry::service;
use crate::response::storage_error;
use crate::server::AppState;
use crate::storage::StorageError;

/// Candidates tried before an allocation gives up.
const MAX_TRIES: u64 = 128;

fn owner(svc: &Value) -> Bytes {
    let ns = meta_str(svc, "namespace").unwrap_or("");
    Bytes::from(json!({"service": format!("{ns}/{}", name_of(svc))}).to_string())
}

fn invalid(info: &ResourceInfo, svc: &Value, msg: &str) -> ApiError {
    ApiError::invalid(
        info,
        name_of(svc),
        vec![Cause::plain("FieldValueInvalid", msg)],
    )
}

/// Reserves what a new Service needs and writes it into `svc`; returns the reserved keys
/// (release them if the Service is not created after all).
pub async fn allocate(
    state: &AppState,
    info: &ResourceInfo,
    svc: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let wanted = service::wanted(svc).map_err(|m| invalid(info, svc, &m))?;
    let mut held = Vec::new();
    let r = allocate_into(state, info, svc, &wanted, &mut held).await;
    if r.is_err() {
        release_keys(state, &held).await;
    }
    r.map(|()| held)
}

async fn reserve(
    state: &AppState,
    info: &ResourceInfo,
    key: &str,
    value: Bytes,
) -> Result<bool, ApiError> {
    match state.storage.create(key, value).await {
        Ok(_) => Ok(true),
        Err(StorageError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(storage_error(info, "", e)),
    }
}

async fn allocate_into(
    state: &AppState,
    info: &ResourceInfo,
    svc: &mut Value,
    wanted: &service::Wanted,
    held: &mut Vec<String>,
) -> Result<(), ApiError> {
    let seed = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    let value = owner(svc);
    match wanted.cluster_ip {
        None => {}
        Some(Some(ip)) => {
            let key = service::ip_key(ip);
            if !reserve(state, info, &key, value.clone()).await? {
                return Err(invalid(
                    info,
                    svc,
                    &format!(
                        "spec.clusterIP: Invalid value: \"{ip}\": provided IP is already allocated"
                    ),
                ));
            }
            held.push(key);
            service::set_cluster_ip(svc, ip);
        }
        Some(None) => {
            let mut got = None;
            for n in 0..MAX_TRIES {
                let ip = service::ip_candidate(seed, n);
                let key = service::ip_key(ip);
                if reserve(state, info, &key, value.clone()).await? {
                    held.push(key);
                    got = Some(ip);
                    break;
                }
            }
            let ip = got.ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?;
            service::set_cluster_ip(svc, ip);
        }
    }
    for &(i, requested) in &wanted.node_ports {
        if requested != 0 {
            let key = service::node_port_key(requested);
            if !reserve(state, info, &key, value.clone()).await? {
                return Err(invalid(
                    info,
                    svc,
                    &format!("spec.ports[{i}].nodePort: Invalid value: {requested}: provided port is already allocated"),
                ));
            }
            held.push(key);
            continue;
        }
        let mut got = None;
        for n in 0..MAX_TRIES {
            let p = service::port_candidate(seed ^ i as u64, n);
            let key = service::node_port_key(p);
            if reserve(state, info, &key, value.clone()).await? {
                held.push(key);
                got = Some(p);
                break;
            }
        }
        let p =
            got.ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?;
        service::set_node_port(svc, i, p);
    }
    Ok(())
}

/// Releases reservation keys (best effort: a leaked key only wastes one address).
pub async fn release_keys(state: &AppState, keys: &[String]) {
    for k in keys {
        if let Err(e) = state.storage.delete(k, None).await {
            if !matches!(e, StorageError::NotFound { .. }) {
                tracing::warn!(key = %k, error = %e, "could not release a service reservation");
            }
        }
    }
}

/// Releases what a deleted Service held.
pub async fn release(state: &AppState, info: &ResourceInfo, deleted: &Value) {
    if info.kind == "Service" {
        release_keys(state, &service::held_keys(deleted)).await;
    }
}
