//! POST: create an object (`generateName`, namespace lifecycle, defaulting, validation) → 201.

use axum::http::StatusCode;
use navarch_api::resources::{self, ResourceInfo};
use navarch_api::status::{ApiError, Cause};
use serde_json::Value;

use super::{check_unknown_fields, now, ResourceRequest};
use crate::objects::{self, meta_mut, meta_str, name_of};
use crate::registry;
use crate::response::{add_warnings, json, storage_error, HandlerResult};
use crate::storage::ReadRevision;

/// `POST /…/{plural}`.
pub async fn create(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    if info.namespaced && req.namespace.is_none() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource (post {})",
            info.plural
        ))
        .into());
    }
    let mut obj = req.body_object()?;
    objects::check_type_meta(info, &obj)?;
    objects::set_type_meta(info, &mut obj);
    set_namespace(info, &mut obj, req.namespace.as_deref())?;
    let warnings = check_unknown_fields(info, &mut obj, req.field_validation()?, &req.body)?;
    let created = create_object(&req, obj, true).await?;
    let mut resp = json(StatusCode::CREATED, &created);
    add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// Sets `metadata.namespace` from the path; 400 when the body names another namespace.
pub fn set_namespace(
    info: &ResourceInfo,
    obj: &mut Value,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    if !info.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let Some(ns) = namespace else {
        return Ok(());
    };
    match meta_str(obj, "namespace") {
        Some(body_ns) if !body_ns.is_empty() && body_ns != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), Value::String(ns.to_string()));
            Ok(())
        }
    }
}

/// Fails unless the namespace exists and is not terminating (Kubernetes' NamespaceLifecycle).
pub async fn check_namespace(req: &ResourceRequest, ns: &str) -> Result<(), ApiError> {
    let Some(ns_info) = resources::find("", "v1", "namespaces") else {
        return Ok(());
    };
    let stored = req
        .state
        .storage
        .get(&ns_info.key(None, ns), ReadRevision::Latest)
        .await
        .map_err(|e| storage_error(ns_info, ns, e))?;
    let Some(stored) = stored else {
        return Err(ApiError::not_found(ns_info, ns));
    };
    let nsobj = objects::from_stored(ns_info, &stored)?;
    if meta_str(&nsobj, "deletionTimestamp").is_some() {
        return Err(ApiError::forbidden(format!(
            "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            req.info.qualified_resource(),
            name_of(&nsobj)
        )));
    }
    Ok(())
}

/// Creates `obj` (type meta and namespace already set): name generation, defaulting,
/// server metadata, validation, managed fields, storage. `track_fields`: record an `Update`
/// managedFields entry (false when server-side apply already did).
pub async fn create_object(
    req: &ResourceRequest,
    mut obj: Value,
    track_fields: bool,
) -> Result<Value, ApiError> {
    let info = req.info;
    let t = now();
    if name_of(&obj).is_empty() {
        if let Some(prefix) = meta_str(&obj, "generateName")
            .filter(|p| !p.is_empty())
            .map(str::to_string)
        {
            meta_mut(&mut obj).insert(
                "name".into(),
                Value::String(registry::generate_name(&prefix)),
            );
        }
    }
    let name = name_of(&obj).to_string();
    if name.is_empty() {
        return Err(ApiError::invalid(
            info,
            "",
            vec![Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        ));
    }
    if let Some(path_name) = req.name.as_deref() {
        if path_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({path_name})"
            )));
        }
    }
    crate::model::default_object(info, &mut obj);
    registry::prepare_create(info, &mut obj, t);
    crate::model::validate_create(info, &obj)?;
    if name.contains('/') || name == "." || name == ".." {
        return Err(ApiError::bad_request(format!(
            "invalid object name {name:?}"
        )));
    }
    if track_fields {
        navarch_api::patch::update_managed_fields(
            info,
            None,
            &mut obj,
            &req.field_manager(),
            "Update",
            t,
        );
    }
    let ns = if info.namespaced {
        meta_str(&obj, "namespace").map(str::to_string)
    } else {
        None
    };
    if let Some(ns) = &ns {
        check_namespace(req, ns).await?;
    }
    if req.dry_run()? {
        return Ok(obj);
    }
    let key = info.key(ns.as_deref(), &name);
    let held = if info.kind == "Service" {
        // An existing name is reported as AlreadyExists before anything is reserved.
        if req
            .state
            .storage
            .get(&key, ReadRevision::Latest)
            .await
            .map_err(|e| storage_error(info, &name, e))?
            .is_some()
        {
            return Err(ApiError::already_exists(info, &name));
        }
        super::services::allocate(&req.state, info, &mut obj).await?
    } else {
        Vec::new()
    };
    match req
        .state
        .storage
        .create(&key, objects::to_stored(&obj))
        .await
    {
        Ok(stored) => objects::from_stored(info, &stored),
        Err(e) => {
            super::services::release_keys(&req.state, &held).await;
            Err(storage_error(info, &name, e))
        }
    }
}
