//! GET of one object (and of its `status` and `scale` views), JSON or Table.

use axum::http::{header, StatusCode};
use navarch_api::status::ApiError;
use serde_json::{json, Value};

use super::{now, subresources, ResourceRequest};
use crate::negotiation::{self, Output};
use crate::objects::{self, parse_rv};
use crate::registry::scale;
use crate::response::{json, storage_error, HandlerResult};
use crate::storage::ReadRevision;

/// `resourceVersion` of a GET: unset → latest, `0` → any, `N` → not older than N.
fn read_revision(req: &ResourceRequest) -> Result<ReadRevision, ApiError> {
    match req.param("resourceVersion").filter(|s| !s.is_empty()) {
        None => Ok(ReadRevision::Latest),
        Some("0") => Ok(ReadRevision::Any),
        Some(rv) => Ok(ReadRevision::NotOlderThan(parse_rv(rv)?)),
    }
}

/// Reads the named object (404 if missing).
pub async fn read(req: &ResourceRequest, rev: ReadRevision) -> Result<Value, ApiError> {
    let info = req.info;
    let stored = req
        .state
        .storage
        .get(&req.key(), rev)
        .await
        .map_err(|e| storage_error(info, req.name(), e))?
        .ok_or_else(|| ApiError::not_found(info, req.name()))?;
    objects::from_stored(info, &stored)
}

/// `GET /…/{plural}/{name}[/status|/scale|/log]`.
pub async fn get(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    if req.subresource.as_deref() == Some("log") {
        return subresources::log(req).await;
    }
    let obj = read(&req, read_revision(&req)?).await?;
    let out = match req.subresource.as_deref() {
        None | Some("status") => obj,
        Some("scale") => scale::to_scale(&obj),
        Some(other) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource (get {}/{other})",
                info.plural
            ))
            .into())
        }
    };
    if req.subresource.is_none()
        && negotiation::resource_output(req.header(header::ACCEPT)) == Output::Table
    {
        let mut table = crate::model::to_table(info, &[&out], now());
        super::list::include_objects(
            &mut table,
            std::slice::from_ref(&out),
            req.param("includeObject"),
        );
        let rv = objects::meta_str(&out, "resourceVersion")
            .unwrap_or("")
            .to_string();
        if let Value::Object(t) = &mut table {
            t.insert("metadata".into(), json!({"resourceVersion": rv}));
        }
        return Ok(json(StatusCode::OK, &table));
    }
    Ok(json(StatusCode::OK, &out))
}
