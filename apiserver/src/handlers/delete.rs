//! DELETE of one object (preconditions, graceful deletion, finalizers, propagation) and of a
//! collection (deletecollection with selectors).

use axum::http::StatusCode;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::ApiError;
use serde_json::{json, Value};

use super::list::Selectors;
use super::{now, ResourceRequest};
use crate::objects;
use crate::registry::delete::{
    check_preconditions, plan_delete, ready_to_delete, DeleteOptions, DeletePlan,
};
use crate::response::{json, storage_error, HandlerResult};
use crate::server::AppState;
use crate::storage::{ListOptions, ReadRevision, StorageError};

const MAX_ATTEMPTS: usize = 16;

/// DeleteOptions from the query string and the (JSON or protobuf) body; the body wins.
pub fn delete_options(req: &ResourceRequest) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::from_json(&req.optional_body_object()?)?;
    if opts.grace_period_seconds.is_none() {
        if let Some(g) = req.param("gracePeriodSeconds") {
            opts.grace_period_seconds =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
    }
    if opts.propagation_policy.is_none() {
        opts.propagation_policy = req.param("propagationPolicy").map(str::to_string);
    }
    if opts.orphan_dependents.is_none() {
        if let Some(o) = req.param("orphanDependents") {
            opts.orphan_dependents = Some(o == "true");
        }
    }
    opts.dry_run = opts.dry_run || req.dry_run()?;
    opts.validate()?;
    Ok(opts)
}

/// Deletes (or marks for deletion) the object at `key`; returns its last state.
pub async fn delete_one(
    state: &AppState,
    info: &ResourceInfo,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(stored) = state
            .storage
            .get(key, ReadRevision::Latest)
            .await
            .map_err(|e| storage_error(info, name, e))?
        else {
            return Err(ApiError::not_found(info, name));
        };
        let current = objects::from_stored(info, &stored)?;
        check_preconditions(info, &current, opts)?;
        match plan_delete(info, &current, opts, now()) {
            DeletePlan::Pending => return Ok(current),
            DeletePlan::Now => {
                if opts.dry_run {
                    return Ok(current);
                }
                match state.storage.delete(key, Some(stored.mod_revision)).await {
                    Ok(deleted) => {
                        super::services::release(state, info, &current).await;
                        return objects::from_stored(info, &deleted);
                    }
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(e) => return Err(storage_error(info, name, e)),
                }
            }
            DeletePlan::Mark(new) => {
                if opts.dry_run {
                    return Ok(new);
                }
                match state
                    .storage
                    .update(key, objects::to_stored(&new), stored.mod_revision)
                    .await
                {
                    Ok(written) => {
                        let obj = objects::from_stored(info, &written)?;
                        if ready_to_delete(info, &obj) {
                            if let Ok(deleted) =
                                state.storage.delete(key, Some(written.mod_revision)).await
                            {
                                super::services::release(state, info, &obj).await;
                                return objects::from_stored(info, &deleted);
                            }
                        }
                        return Ok(obj);
                    }
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(e) => return Err(storage_error(info, name, e)),
                }
            }
        }
    }
    Err(ApiError::conflict_modified(info, name))
}

/// `DELETE /…/{plural}/{name}`.
pub async fn delete(req: ResourceRequest) -> HandlerResult {
    if req.subresource.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource (delete {}/{})",
            req.info.plural,
            req.subresource.as_deref().unwrap_or("")
        ))
        .into());
    }
    let opts = delete_options(&req)?;
    let obj = delete_one(&req.state, req.info, &req.key(), req.name(), &opts).await?;
    Ok(json(StatusCode::OK, &obj))
}

/// `DELETE /…/{plural}` (deletecollection): deletes every object matching the selectors and
/// answers the list of deleted objects.
pub async fn delete_collection(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let opts = delete_options(&req)?;
    let selectors = Selectors::from_request(&req)?;
    let prefix = info.prefix(req.namespace.as_deref());
    let page = req
        .state
        .storage
        .list(&prefix, &ListOptions::default())
        .await
        .map_err(|e| storage_error(info, "", e))?;
    let mut items = Vec::new();
    for stored in &page.items {
        let obj = objects::from_stored(info, stored)?;
        if !selectors.matches(&obj) {
            continue;
        }
        let name = objects::name_of(&obj).to_string();
        match delete_one(&req.state, info, &stored.key, &name, &opts).await {
            Ok(deleted) => items.push(deleted),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let list = json!({
        "kind": info.list_kind,
        "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": items,
    });
    Ok(json(StatusCode::OK, &list))
}
