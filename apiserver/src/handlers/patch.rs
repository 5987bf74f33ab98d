//! PATCH in the four types (JSON patch, merge patch, strategic merge patch, server-side apply)
//! on the main resource, `status` and `scale`; apply on a missing object creates it (201).

use axum::http::{header, StatusCode};
use navarch_api::status::ApiError;
use serde_json::Value;

use super::update::{update_loop, Target};
use super::{check_unknown_fields, now, ResourceRequest};
use crate::negotiation::{self, PatchType};
use crate::objects::{self, meta_mut, meta_str};
use crate::registry::scale;
use crate::response::{add_warnings, json, HandlerResult};

use crate::objects::without_rv as strip_rv;

/// `PATCH /…/{plural}/{name}[/status|/scale]`.
pub async fn patch(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let ct = req.header(header::CONTENT_TYPE).map(str::to_string);
    let pt = negotiation::patch_type(ct.as_deref())
        .ok_or_else(|| ApiError::unsupported_media_type(ct.as_deref().unwrap_or("")))?;
    let target = match req.subresource.as_deref() {
        None => Target::Main,
        Some("status") => Target::Status,
        Some("scale") => Target::Scale,
        Some(other) => {
            return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource (patch {}/{other})",
            info.plural
        ))
            .into())
        }
    };
    let force = req.flag("force");
    if pt == PatchType::Apply && req.param("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        )
        .into());
    }
    if force && pt != PatchType::Apply {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
        )
        .into());
    }
    if req.body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty").into());
    }
    let mode = req.field_validation()?;
    let manager = req.field_manager();
    let body = req.body.clone();
    let mut warnings: Vec<String> = Vec::new();
    let create_ok = pt == PatchType::Apply && target == Target::Main;
    let written = update_loop(&req, target, create_ok, pt != PatchType::Apply, |current| {
        let base = match (target, current) {
            (Target::Scale, Some(c)) => strip_rv(&scale::to_scale(c)),
            (_, Some(c)) => strip_rv(c),
            (_, None) => Value::Object(Default::default()),
        };
        let mut patched = match pt {
            PatchType::Json => navarch_api::patch::json_patch(&base, &body)?,
            PatchType::Merge => navarch_api::patch::merge_patch(&base, &body)?,
            PatchType::Strategic if target == Target::Scale => {
                navarch_api::patch::merge_patch(&base, &body)?
            }
            PatchType::Strategic => navarch_api::patch::strategic_merge_patch(info, &base, &body)?,
            PatchType::Apply => {
                let live = current.map(strip_rv);
                navarch_api::patch::apply(info, live.as_ref(), &body, &manager, force, now())?
            }
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patch did not produce an object"));
        }
        if target == Target::Scale {
            let Some(c) = current else {
                return Err(ApiError::not_found(info, req.name()));
            };
            let mut obj = strip_rv(c);
            scale::apply_scale(info, &mut obj, &patched)?;
            if let Some(rv) = meta_str(&patched, "resourceVersion").map(str::to_string) {
                meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv));
            }
            return Ok(obj);
        }
        objects::check_type_meta(info, &patched)?;
        warnings = check_unknown_fields(info, &mut patched, mode, &body)?;
        Ok(patched)
    })
    .await?;
    let code = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let out = if target == Target::Scale {
        scale::to_scale(&written.object)
    } else {
        written.object
    };
    let mut resp = json(code, &out);
    add_warnings(&mut resp, &warnings);
    Ok(resp)
}
