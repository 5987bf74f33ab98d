//! Pod subresources: `binding` (the scheduler's assignment), `eviction` (drain) and `log`
//! (proxied to the node agent once it exists; today a clear error).

use axum::http::StatusCode;
use navarch_api::status::{success_status, ApiError};

use super::delete::delete_one;
use super::update::{update_loop, Target};
use super::{now, ResourceRequest};
use crate::objects::{self, meta_str};
use crate::registry::{binding, delete::DeleteOptions};
use crate::response::{json, HandlerResult};

/// `POST /api/v1/namespaces/{ns}/pods/{name}/binding` → 201 Status Success.
pub async fn bind(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let body = req.body_object()?;
    if let Some(n) = meta_str(&body, "name").filter(|n| !n.is_empty()) {
        if n != req.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                req.name()
            ))
            .into());
        }
    }
    update_loop(&req, Target::Binding, false, false, |current| {
        let mut pod = current
            .map(objects::without_rv)
            .ok_or_else(|| ApiError::not_found(info, req.name()))?;
        binding::bind(info, &mut pod, &body, now())?;
        Ok(pod)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &success_status(info, req.name())))
}

/// `POST /api/v1/namespaces/{ns}/pods/{name}/eviction` → deletes the pod, 201 Status Success.
/// There are no PodDisruptionBudgets yet, so an eviction is never refused with 429.
pub async fn evict(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let body = req.body_object()?;
    if let Some(n) = meta_str(&body, "name").filter(|n| !n.is_empty()) {
        if n != req.name() {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            )
            .into());
        }
    }
    let mut opts = match body.get("deleteOptions") {
        Some(d) if !d.is_null() => DeleteOptions::from_json(d)?,
        _ => DeleteOptions::default(),
    };
    opts.dry_run = opts.dry_run || req.dry_run()?;
    opts.validate()?;
    delete_one(&req.state, info, &req.key(), req.name(), &opts).await?;
    Ok(json(StatusCode::CREATED, &success_status(info, req.name())))
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`: the pod must exist; logs come from the node
/// agent, which this server cannot reach yet (503 with a clear message).
pub async fn log(req: ResourceRequest) -> HandlerResult {
    let pod = super::get::read(&req, crate::storage::ReadRevision::Latest).await?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(|v| v.as_str())
        .filter(|n| !n.is_empty());
    let name = objects::name_of(&pod);
    let msg = match node {
        None => format!("pod {name:?} is not scheduled to a node yet, so it has no logs"),
        Some(n) => format!(
            "logs of pod {name:?} live on node {n:?}, and this API server does not proxy to node agents yet"
        ),
    };
    Err(if node.is_none() {
        ApiError::bad_request(msg)
    } else {
        ApiError::unavailable(msg)
    }
    .into())
}
