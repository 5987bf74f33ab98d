//! PUT: replace an object (or its status/scale) with optimistic concurrency, and the shared
//! read-modify-write loop that PATCH and the subresources use too.
//!
//! ```text
//! loop (bounded): get(Latest) ─► desired = mutate(current) ─► resourceVersion precondition (409)
//!   ─► strategy (prepare_update | prepare_status_update) ─► validate_update ─► managedFields
//!   ─► no-op? return current : storage.update(expected = current rev)
//!        └ storage Conflict: retry unless the client pinned a resourceVersion
//!   ─► finalizers all gone on a deleted object? remove it
//! ```

use axum::http::StatusCode;
use navarch_api::status::ApiError;
use serde_json::Value;

use super::create::{create_object, set_namespace};
use super::{check_unknown_fields, now, ResourceRequest};
use crate::objects::{self, meta_str, name_of, parse_rv};
use crate::registry::{self, delete::ready_to_delete, scale};
use crate::response::{add_warnings, json, storage_error, HandlerResult};
use crate::storage::{ReadRevision, StorageError};

/// Attempts of the read-modify-write loop before giving up with 409.
const MAX_ATTEMPTS: usize = 16;

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The main resource (status is kept for kinds with a status subresource).
    Main,
    /// The `status` subresource (only status changes).
    Status,
    /// The `scale` subresource (`mutate` gets and returns the full object).
    Scale,
    /// A server-side assignment (`pods/binding`): `mutate` computes the final object; no update
    /// strategy and no user-update validation (a pod's spec is otherwise immutable).
    Binding,
}

/// How the write went.
pub struct Written {
    /// The object as now stored (or as it would be, for dry-run).
    pub object: Value,
    /// Whether it was created.
    pub created: bool,
}

/// The read-modify-write loop. `mutate` gets the current object (`None` if missing) and returns
/// the desired object as the client means it; `create_if_missing` allows creating (PUT on some
/// kinds, server-side apply). `track_fields`: record an `Update` managedFields entry.
pub async fn update_loop<F>(
    req: &ResourceRequest,
    target: Target,
    create_if_missing: bool,
    track_fields: bool,
    mut mutate: F,
) -> Result<Written, ApiError>
where
    F: FnMut(Option<&Value>) -> Result<Value, ApiError>,
{
    let info = req.info;
    let name = req.name().to_string();
    let key = req.key();
    let dry_run = req.dry_run()?;
    let manager = req.field_manager();
    for _ in 0..MAX_ATTEMPTS {
        let stored = req
            .state
            .storage
            .get(&key, ReadRevision::Latest)
            .await
            .map_err(|e| storage_error(info, &name, e))?;
        let Some(stored) = stored else {
            if !create_if_missing || target != Target::Main {
                return Err(ApiError::not_found(info, &name));
            }
            let mut obj = mutate(None)?;
            objects::set_type_meta(info, &mut obj);
            set_namespace(info, &mut obj, req.namespace.as_deref())?;
            if meta_str(&obj, "resourceVersion").is_some_and(|s| !s.is_empty()) {
                // Kubernetes refuses to create with a resourceVersion precondition.
                return Err(ApiError::not_found(info, &name));
            }
            match create_object(req, obj, track_fields).await {
                Err(e) if e.code == 409 && e.reason == navarch_api::StatusReason::AlreadyExists => {
                    continue
                }
                other => {
                    return other.map(|object| Written {
                        object,
                        created: true,
                    })
                }
            }
        };
        let current = objects::from_stored(info, &stored)?;
        let mut desired = mutate(Some(&current))?;
        objects::set_type_meta(info, &mut desired);
        if target != Target::Binding {
            // Kubernetes defaults every decoded body, so omitted defaults are no change.
            crate::model::default_object(info, &mut desired);
        }
        let pinned = meta_str(&desired, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(parse_rv)
            .transpose()?;
        if let Some(rv) = pinned {
            if rv != stored.mod_revision {
                return Err(ApiError::conflict_modified(info, &name));
            }
        }
        let desired_name = name_of(&desired);
        if !desired_name.is_empty() && desired_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({desired_name}) does not match the name on the URL ({name})"
            )));
        }
        set_namespace(info, &mut desired, req.namespace.as_deref())?;
        let mut new = match target {
            Target::Main | Target::Scale => {
                let mut n = desired;
                registry::prepare_update(info, &mut n, &current);
                n
            }
            Target::Status => registry::prepare_status_update(&desired, &current),
            Target::Binding => desired,
        };
        if target != Target::Binding {
            crate::model::validate_update(info, &new, &current)?;
        }
        let t = now();
        if track_fields {
            navarch_api::patch::update_managed_fields(
                info,
                Some(&current),
                &mut new,
                &manager,
                "Update",
                t,
            );
        }
        if unchanged(&new, &current) {
            return Ok(Written {
                object: current,
                created: false,
            });
        }
        if dry_run {
            return Ok(Written {
                object: new,
                created: false,
            });
        }
        match req
            .state
            .storage
            .update(&key, objects::to_stored(&new), stored.mod_revision)
            .await
        {
            Ok(written) => {
                let object = objects::from_stored(info, &written)?;
                if ready_to_delete(info, &object) {
                    match req
                        .state
                        .storage
                        .delete(&key, Some(written.mod_revision))
                        .await
                    {
                        Ok(_) => super::services::release(&req.state, info, &object).await,
                        Err(StorageError::NotFound { .. }) => {}
                        Err(StorageError::Conflict { .. }) => {}
                        Err(e) => return Err(storage_error(info, &name, e)),
                    }
                }
                return Ok(Written {
                    object,
                    created: false,
                });
            }
            Err(StorageError::Conflict { .. }) if pinned.is_none() => continue,
            Err(StorageError::NotFound { .. }) if pinned.is_none() => continue,
            Err(e) => return Err(storage_error(info, &name, e)),
        }
    }
    Err(ApiError::conflict_modified(info, &name))
}

/// Equal apart from resourceVersion (a write that changes nothing is not written).
fn unchanged(new: &Value, current: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(Value::Object(m)) = v.get_mut("metadata") {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(new) == strip(current)
}

/// `PUT /…/{plural}/{name}[/status|/scale]`.
pub async fn update(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let mut body = req.body_object()?;
    let (target, warnings) = match req.subresource.as_deref() {
        None => {
            objects::check_type_meta(info, &body)?;
            let w = check_unknown_fields(info, &mut body, req.field_validation()?, &req.body)?;
            (Target::Main, w)
        }
        Some("status") => {
            objects::check_type_meta(info, &body)?;
            let w = check_unknown_fields(info, &mut body, req.field_validation()?, &req.body)?;
            (Target::Status, w)
        }
        Some("scale") => (Target::Scale, Vec::new()),
        Some(other) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource (put {}/{other})",
                info.plural
            ))
            .into())
        }
    };
    let create_ok = target == Target::Main && registry::allow_create_on_update(info);
    let written = update_loop(&req, target, create_ok, true, |current| match target {
        Target::Scale => {
            let mut obj = current.map(objects::without_rv).unwrap_or(Value::Null);
            let scale_rv = meta_str(&body, "resourceVersion").map(str::to_string);
            scale::apply_scale(info, &mut obj, &body)?;
            if let Some(rv) = scale_rv.filter(|s| !s.is_empty()) {
                objects::meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv));
            }
            Ok(obj)
        }
        _ => Ok(body.clone()),
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
