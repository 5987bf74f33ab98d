//! Responses: JSON bodies, `Status` errors, and the one place storage errors become API errors.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::{ApiError, StatusDetails, StatusReason};
use serde_json::Value;

use crate::storage::StorageError;

/// An API error on its way to the client as a `Status` (the handlers' error type).
#[derive(Debug, Clone)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

/// `Result` of a handler.
pub type HandlerResult<T = Response<Body>> = std::result::Result<T, Failure>;

impl IntoResponse for Failure {
    fn into_response(self) -> Response<Body> {
        let code = StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json(code, &self.0.to_status());
        if let Some(secs) = self.0.details.as_ref().and_then(|d| d.retry_after_seconds) {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// 404 for a path that names no resource (Kubernetes' generic NotFound Status).
pub fn not_found_path() -> ApiError {
    ApiError {
        code: 404,
        reason: StatusReason::NotFound,
        message: "the server could not find the requested resource".to_string(),
        details: Some(StatusDetails::default()),
    }
}

/// A JSON response.
pub fn json(code: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    json_bytes(code, bytes, "application/json")
}

/// A response with a pre-serialized body and content type.
pub fn json_bytes(code: StatusCode, body: Vec<u8>, content_type: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Adds `Warning: 299 - "<text>"` headers (unknown fields with `fieldValidation=Warn`).
pub fn add_warnings(resp: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

/// Maps a storage error about object `name` of `info` to the API error Kubernetes answers.
pub fn storage_error(info: &ResourceInfo, name: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { .. } => ApiError::not_found(info, name),
        StorageError::AlreadyExists { .. } => ApiError::already_exists(info, name),
        StorageError::Conflict { .. } => ApiError::conflict_modified(info, name),
        StorageError::Expired { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        StorageError::Timeout(rev) => ApiError::timeout(&format!(
            "Too large resource version: {rev}, current resource version is older"
        )),
        StorageError::TooLarge { size, .. } => {
            ApiError::too_large(&format!("limit is 3145728 bytes for an object, got {size}"))
        }
        StorageError::Unavailable(msg) => {
            ApiError::unavailable(format!("storage is unavailable: {msg}"))
        }
        StorageError::Internal(msg) => ApiError::internal(&msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_kubernetes_codes() {
        let info = navarch_api::resources::find("", "v1", "pods").unwrap();
        let code = |e| storage_error(info, "x", e).code;
        assert_eq!(code(StorageError::NotFound { key: "k".into() }), 404);
        assert_eq!(code(StorageError::AlreadyExists { key: "k".into() }), 409);
        assert_eq!(
            code(StorageError::Conflict {
                key: "k".into(),
                expected: 1,
                actual: Some(2)
            }),
            409
        );
        assert_eq!(
            code(StorageError::Expired {
                requested: 1,
                oldest: 5
            }),
            410
        );
        assert_eq!(
            code(StorageError::TooLarge {
                key: "k".into(),
                size: 10
            }),
            413
        );
        assert_eq!(code(StorageError::Timeout(9)), 504);
        assert_eq!(code(StorageError::Unavailable("x".into())), 503);
    }
}
