//! The four PATCH types of the Kubernetes API: JSON patch, JSON merge patch, strategic merge patch
//! and server-side apply (with `managedFields`), plus field-manager tracking of ordinary writes.
//!
//! Every function works on `serde_json::Value` objects and answers errors as [`ApiError`]s worded as
//! kube-apiserver words them; [`PatchError`] → [`ApiError`] happens in one place.

pub mod apply;
pub mod json;
pub mod managed_fields;
pub mod merge;
pub mod schema;
pub mod strategic;

#[cfg(test)]
mod proptests;

use serde_json::Value;

use crate::resources::ResourceInfo;
use crate::status::{ApiError, Cause, StatusDetails, StatusReason};

pub use apply::Conflict;

/// What went wrong while decoding or applying a patch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch body is not valid JSON (or YAML for apply) of the right shape.
    #[error("{0}")]
    Decode(String),
    /// A JSON patch with too many operations.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {0}", max = json::MAX_OPERATIONS)]
    TooManyOperations(usize),
    /// A JSON patch operation (including `test`) failed.
    #[error("{0}")]
    Apply(String),
    /// The patched document is not a JSON object.
    #[error("invalid JSON document: the patched object is not an object")]
    NotAnObject,
    /// The target or the strategic patch is not a JSON object.
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// Unknown value of `$patch`.
    #[error("unknown patch type: {0}")]
    BadPatchType(String),
    /// `$retainKeys` is not a list of strings.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// `$setElementOrder/...` is not a list.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// `$deleteFromPrimitiveList/...` is not a list.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A list of objects with strategy merge but no merge key.
    #[error("cannot merge lists without merge key")]
    NoMergeKeyDeclared,
    /// A list element lacks the merge key.
    #[error("map: {0} does not contain declared merge key: {1}")]
    NoMergeKey(String, String),
    /// `$patch: delete` in a list element without the merge key.
    #[error("delete patch type with no merge key defined: {0}")]
    DeleteWithoutMergeKey(String),
    /// `$patch: merge` in a list.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// Server-side apply conflicts.
    #[error("Apply failed with {} conflict(s)", .0.len())]
    Conflicts(Vec<Conflict>),
}

impl PatchError {
    /// The error as the API answers it.
    pub fn into_api_error(self) -> ApiError {
        match self {
            PatchError::TooManyOperations(_) => ApiError::too_large(&self.to_string()),
            PatchError::Apply(msg) => ApiError {
                code: 422,
                reason: StatusReason::Invalid,
                message: "the server rejected our request due to an error in our request".into(),
                details: Some(StatusDetails {
                    causes: vec![Cause {
                        field: String::new(),
                        reason: String::new(),
                        message: msg,
                    }],
                    ..StatusDetails::default()
                }),
            },
            PatchError::Conflicts(conflicts) => conflict_error(conflicts),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        e.into_api_error()
    }
}

/// 409 as structured-merge-diff words it:
/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`.
fn conflict_error(conflicts: Vec<Conflict>) -> ApiError {
    let message = if let [c] = conflicts.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager, c.field
        )
    } else {
        let mut lines = Vec::new();
        let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
        managers.sort_unstable();
        managers.dedup();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for c in conflicts.iter().filter(|c| c.manager == m) {
                lines.push(format!("- {}", c.field));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError {
        code: 409,
        reason: StatusReason::Conflict,
        message,
        details: Some(StatusDetails {
            causes: conflicts
                .into_iter()
                .map(|c| Cause {
                    field: c.field,
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with {}", c.manager),
                })
                .collect(),
            ..StatusDetails::default()
        }),
    }
}

/// Applies an RFC 6902 JSON patch to `target`.
pub fn json_patch(target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    json::apply(target, patch).map_err(ApiError::from)
}

/// Applies an RFC 7386 JSON merge patch to `target`.
pub fn merge_patch(target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    merge::apply(target, patch).map_err(ApiError::from)
}

/// Applies a strategic merge patch to `target`, with the merge keys and strategies of `info`'s kind.
pub fn strategic_merge_patch(
    info: &ResourceInfo,
    target: &Value,
    patch: &[u8],
) -> Result<Value, ApiError> {
    let node = schema::Node::for_kind(info.group, info.version, info.kind);
    strategic::apply(target, patch, node).map_err(ApiError::from)
}

/// Decodes an apply body: JSON, or YAML (`application/apply-patch+yaml`).
fn decode_applied(applied: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match serde_json::from_slice(applied) {
        Ok(v) => v,
        Err(_) => serde_yaml_ng::from_slice(applied)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: the applied configuration is not an object",
        ));
    }
    Ok(v)
}

/// Server-side apply of `applied` (JSON or YAML) by `manager`; `live` None creates.
///
/// Returns the merged object with `metadata.managedFields` updated, or 409 Conflict naming the
/// other managers' fields unless `force`. The caller still defaults, validates and stores it.
pub fn apply(
    info: &ResourceInfo,
    live: Option<&Value>,
    applied: &[u8],
    manager: &str,
    force: bool,
    now: jiff::Timestamp,
) -> Result<Value, ApiError> {
    let mut config = decode_applied(applied)?;
    let api_version = info.api_version();
    let s = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
    match (s("apiVersion"), s("kind")) {
        (Some(av), _) if av != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            )))
        }
        (_, Some(k)) if k != info.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )))
        }
        (None, _) | (_, None) => {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion and kind must be set in an apply request",
            ))
        }
        _ => {}
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let node = schema::Node::for_kind(info.group, info.version, info.kind);
    apply::apply(
        apply::ApplyRequest {
            live,
            config,
            manager,
            api_version,
            has_status: info.has_status,
            force,
            time: managed_fields::format_time(now),
        },
        node,
    )
    .map_err(ApiError::from)
}

/// Records a non-apply write (`operation` is `Update`) by `manager` in `new`'s managedFields:
/// fields it changed become its own and are taken from the other managers.
pub fn update_managed_fields(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    now: jiff::Timestamp,
) {
    let node = schema::Node::for_kind(info.group, info.version, info.kind);
    apply::record_update(
        old,
        new,
        manager,
        operation,
        &info.api_version(),
        managed_fields::format_time(now),
        node,
    );
}
