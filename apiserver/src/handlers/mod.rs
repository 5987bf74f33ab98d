//! Resource handlers, one module per verb, plus what they share: the parsed request, body
//! decoding, field validation and the object write pipeline.

pub mod create;
pub mod delete;
pub mod get;
pub mod list;
pub mod patch;
pub mod services;
pub mod subresources;
pub mod update;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{header, HeaderMap, Method};
use bytes::Bytes;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::ApiError;
use serde_json::Value;

use crate::negotiation::{self, BodyFormat};
use crate::objects;
use crate::server::AppState;

/// A request for a resource, parsed from its path and query.
pub struct ResourceRequest {
    /// Shared server state.
    pub state: Arc<AppState>,
    /// HTTP method.
    pub method: Method,
    /// The resource type.
    pub info: &'static ResourceInfo,
    /// Namespace from the path (`None`: cluster-scoped or all namespaces).
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// Subresource from the path.
    pub subresource: Option<String>,
    /// Query parameters (last value wins).
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

/// `fieldValidation`: what to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the default).
    Warn,
    /// Reject the request (400).
    Strict,
}

impl ResourceRequest {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter (`true`/`1`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true") | Some("1"))
    }

    /// A header as a string.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The store key of the named object.
    pub fn key(&self) -> String {
        self.info.key(
            self.namespace.as_deref(),
            self.name.as_deref().unwrap_or(""),
        )
    }

    /// The object name ("" if none).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.param("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `fieldValidation` (default `Warn`).
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.param("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }

    /// The field manager: `fieldManager`, else the User-Agent's program name (as Kubernetes does).
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.param("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        self.header(header::USER_AGENT)
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect()
    }

    /// Decodes the body as an object in the format its `Content-Type` names (415/400 otherwise).
    pub fn body_object(&self) -> Result<Value, ApiError> {
        let ct = self.header(header::CONTENT_TYPE);
        let format = negotiation::body_format(ct)
            .ok_or_else(|| ApiError::unsupported_media_type(ct.unwrap_or("")))?;
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        objects::decode_body(format, &self.body)
    }

    /// Decodes an optional body (DELETE options): empty means `{}`.
    pub fn optional_body_object(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        let ct = self.header(header::CONTENT_TYPE);
        let format = negotiation::body_format(ct).unwrap_or(BodyFormat::Json);
        objects::decode_body(format, &self.body)
    }
}

/// Applies `fieldValidation` to `obj` decoded from `raw`: unknown fields are removed; unknown
/// and duplicate fields give warnings (`Warn`) or 400 (`Strict`), worded as Kubernetes does.
pub fn check_unknown_fields(
    info: &ResourceInfo,
    obj: &mut Value,
    mode: FieldValidation,
    raw: &[u8],
) -> Result<Vec<String>, ApiError> {
    if mode == FieldValidation::Ignore {
        for p in crate::model::unknown_fields(info, obj) {
            prune(obj, &p);
        }
        return Ok(Vec::new());
    }
    let unknown = crate::model::unknown_fields(info, obj);
    let duplicates = objects::duplicate_fields(raw);
    if unknown.is_empty() && duplicates.is_empty() {
        return Ok(Vec::new());
    }
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field {:?}", p.trim_start_matches('.')))
        .collect();
    problems.extend(duplicates.iter().map(|p| format!("duplicate field {p:?}")));
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            problems.join(", "),
            kind = info.kind,
            version = info.version,
        )));
    }
    for p in &unknown {
        prune(obj, p);
    }
    Ok(problems)
}

/// Removes the field at a path like `.spec.containers[0].foo` (no-op if absent).
pub fn prune(obj: &mut Value, path: &str) {
    let mut segs: Vec<Seg> = Vec::new();
    for part in path.trim_start_matches('.').split('.') {
        let mut rest = part;
        let key_end = rest.find('[').unwrap_or(rest.len());
        if key_end > 0 {
            segs.push(Seg::Key(rest[..key_end].to_string()));
        }
        rest = &rest[key_end..];
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(close) = stripped.find(']') else {
                return;
            };
            match stripped[..close].parse::<usize>() {
                Ok(i) => segs.push(Seg::Index(i)),
                Err(_) => return,
            }
            rest = &stripped[close + 1..];
        }
    }
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    let mut cur = obj;
    for s in parents {
        let next = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let (Seg::Key(k), Value::Object(m)) = (last, cur) {
        m.remove(k);
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

/// The current time.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prune_removes_nested_paths() {
        let mut v = json!({"spec": {"foo": 1, "containers": [{"name": "a", "bar": 2}]}});
        prune(&mut v, ".spec.foo");
        prune(&mut v, ".spec.containers[0].bar");
        prune(&mut v, ".spec.nothing[3].x");
        assert_eq!(v, json!({"spec": {"containers": [{"name": "a"}]}}));
    }
}
