//! API errors and their wire form, the `meta/v1` `Status` object, worded as kube-apiserver words them.
//!
//! Every error the apiserver answers with is an [`ApiError`]; [`ApiError::to_status`] is the one
//! place that turns it into JSON. Field-level validation problems are [`Cause`]s, built with the
//! constructors that mirror apimachinery's `field.Invalid`, `field.Required`, ... so that both the
//! `details.causes` and the aggregated message read exactly like Kubernetes'.

use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// Result with [`ApiError`] as the default error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// `Status.reason`: a machine-readable description of why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusReason {
    /// 400: the request itself is malformed.
    BadRequest,
    /// 401: authentication failed.
    Unauthorized,
    /// 403: not allowed.
    Forbidden,
    /// 404: the object does not exist.
    NotFound,
    /// 405: the verb is not served on this resource.
    MethodNotAllowed,
    /// 406: no acceptable response media type.
    NotAcceptable,
    /// 409 on create: the name is taken.
    AlreadyExists,
    /// 409 on write: stale resourceVersion or field-manager conflict.
    Conflict,
    /// 410: the resource version is too old (compacted).
    Expired,
    /// 410: the resource is gone.
    Gone,
    /// 413: the request body is too large.
    RequestEntityTooLarge,
    /// 415: the request body's media type is not supported.
    UnsupportedMediaType,
    /// 422: validation failed; see the causes.
    Invalid,
    /// 429: try again later.
    TooManyRequests,
    /// 500: a server-side failure.
    InternalError,
    /// 504: the operation did not finish in time.
    Timeout,
    /// 503: the server cannot serve the request right now.
    ServiceUnavailable,
}

impl StatusReason {
    /// The wire string, e.g. `NotFound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable => "NotAcceptable",
            Self::AlreadyExists => "AlreadyExists",
            Self::Conflict => "Conflict",
            Self::Expired => "Expired",
            Self::Gone => "Gone",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::Invalid => "Invalid",
            Self::TooManyRequests => "TooManyRequests",
            Self::InternalError => "InternalError",
            Self::Timeout => "Timeout",
            Self::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// Parses a wire string; `None` for reasons this crate does not know.
    pub fn parse(s: &str) -> Option<Self> {
        const ALL: [StatusReason; 17] = [
            StatusReason::BadRequest,
            StatusReason::Unauthorized,
            StatusReason::Forbidden,
            StatusReason::NotFound,
            StatusReason::MethodNotAllowed,
            StatusReason::NotAcceptable,
            StatusReason::AlreadyExists,
            StatusReason::Conflict,
            StatusReason::Expired,
            StatusReason::Gone,
            StatusReason::RequestEntityTooLarge,
            StatusReason::UnsupportedMediaType,
            StatusReason::Invalid,
            StatusReason::TooManyRequests,
            StatusReason::InternalError,
            StatusReason::Timeout,
            StatusReason::ServiceUnavailable,
        ];
        ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for StatusReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cause of a failure (`Status.details.causes[]`), usually a field validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Field path, e.g. `spec.template.spec.containers[0].image`; empty when not about a field.
    pub field: String,
    /// Cause type, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: String,
    /// Human-readable text without the field, e.g. `Required value`.
    pub message: String,
}

/// Renders a bad value the way apimachinery's `field.Error` does: strings quoted, scalars plain,
/// string maps as Go's `%#v` (`map[string]string{"app":"web"}`), anything else as JSON.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Null => "null".to_string(),
        Value::Object(m) if m.values().all(Value::is_string) => go_string_map(Some(m)),
        other => other.to_string(),
    }
}

/// Go's `%#v` of a `map[string]string` (`map[string]string(nil)` for `None`), keys sorted.
pub fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    let Some(m) = m else {
        return "map[string]string(nil)".to_string();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or_default())))
        .collect();
    pairs.sort();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// Go's `%q` for ordinary strings (JSON escaping is the same for everything kubectl users see).
pub fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

impl Cause {
    fn with(field: &str, reason: &str, body: String, detail: &str) -> Self {
        let message = if detail.is_empty() {
            body
        } else {
            format!("{body}: {detail}")
        };
        Self {
            field: field.to_string(),
            reason: reason.to_string(),
            message,
        }
    }

    /// `field.Invalid`: `Invalid value: "x": detail`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self::with(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {}", render_value(value)),
            detail,
        )
    }

    /// `field.Invalid` with a value already rendered (Go's `%#v` of a struct, for instance).
    pub fn invalid_rendered(field: &str, rendered: &str, detail: &str) -> Self {
        Self::with(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {rendered}"),
            detail,
        )
    }

    /// `field.Duplicate` with a value already rendered.
    pub fn duplicate_rendered(field: &str, rendered: &str) -> Self {
        Self::with(
            field,
            "FieldValueDuplicate",
            format!("Duplicate value: {rendered}"),
            "",
        )
    }

    /// `field.Invalid` with the value omitted: `Invalid value: detail`.
    pub fn invalid_no_value(field: &str, detail: &str) -> Self {
        Self::with(
            field,
            "FieldValueInvalid",
            "Invalid value".to_string(),
            detail,
        )
    }

    /// `field.TypeInvalid`: the value has the wrong JSON type.
    pub fn type_invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self::with(
            field,
            "FieldValueTypeInvalid",
            format!("Invalid value: {}", render_value(value)),
            detail,
        )
    }

    /// `field.Required`: `Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> Self {
        Self::with(
            field,
            "FieldValueRequired",
            "Required value".to_string(),
            detail,
        )
    }

    /// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        let detail = if list.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", list.join(", "))
        };
        Self::with(
            field,
            "FieldValueNotSupported",
            format!("Unsupported value: {}", render_value(value)),
            &detail,
        )
    }

    /// `field.Forbidden`: `Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::with(
            field,
            "FieldValueForbidden",
            "Forbidden".to_string(),
            detail,
        )
    }

    /// `field.Duplicate`: `Duplicate value: "x"`.
    pub fn duplicate(field: &str, value: &Value) -> Self {
        Self::with(
            field,
            "FieldValueDuplicate",
            format!("Duplicate value: {}", render_value(value)),
            "",
        )
    }

    /// `field.TooLong`: `Too long: may not be more than N bytes`.
    pub fn too_long(field: &str, max: usize) -> Self {
        Self::with(
            field,
            "FieldValueTooLong",
            "Too long".to_string(),
            &format!("may not be more than {max} bytes"),
        )
    }

    /// `field.NotFound`: `Not found: "x"`.
    pub fn not_found(field: &str, value: &Value) -> Self {
        Self::with(
            field,
            "FieldValueNotFound",
            format!("Not found: {}", render_value(value)),
            "",
        )
    }

    /// A cause that is not about a field (e.g. an internal error's text, a disruption budget).
    pub fn plain(reason: &str, message: &str) -> Self {
        Self {
            field: String::new(),
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    /// `field: message`, as apimachinery prints one field error.
    pub fn to_error_string(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.reason.is_empty() {
            m.insert("reason".into(), Value::String(self.reason.clone()));
        }
        if !self.message.is_empty() {
            m.insert("message".into(), Value::String(self.message.clone()));
        }
        if !self.field.is_empty() {
            m.insert("field".into(), Value::String(self.field.clone()));
        }
        Value::Object(m)
    }
}

/// `Status.details`: which object the error is about, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusDetails {
    /// Object name (may be empty).
    pub name: String,
    /// API group (empty for core).
    pub group: String,
    /// Resource plural (`pods`) for NotFound/AlreadyExists/Conflict; Kind (`Pod`) for Invalid.
    pub kind: String,
    /// Object UID, when known (success answers of DELETE).
    pub uid: String,
    /// Field-level causes.
    pub causes: Vec<Cause>,
    /// Seconds the client should wait before retrying.
    pub retry_after_seconds: Option<u32>,
}

impl StatusDetails {
    fn for_resource(info: &ResourceInfo, name: &str) -> Self {
        Self {
            name: name.to_string(),
            group: info.group.to_string(),
            kind: info.plural.to_string(),
            ..Self::default()
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.name.is_empty() {
            m.insert("name".into(), Value::String(self.name.clone()));
        }
        if !self.group.is_empty() {
            m.insert("group".into(), Value::String(self.group.clone()));
        }
        if !self.kind.is_empty() {
            m.insert("kind".into(), Value::String(self.kind.clone()));
        }
        if !self.uid.is_empty() {
            m.insert("uid".into(), Value::String(self.uid.clone()));
        }
        if !self.causes.is_empty() {
            m.insert(
                "causes".into(),
                Value::Array(self.causes.iter().map(Cause::to_json).collect()),
            );
        }
        if let Some(s) = self.retry_after_seconds {
            m.insert("retryAfterSeconds".into(), json!(s));
        }
        Value::Object(m)
    }
}

/// An error answered to an API client as a `meta/v1` `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason.
    pub reason: StatusReason,
    /// Human-readable message, worded as kube-apiserver words it.
    pub message: String,
    /// Object and causes, when the error is about one.
    pub details: Option<StatusDetails>,
}

impl ApiError {
    fn new(code: u16, reason: StatusReason, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: None,
        }
    }

    /// 404 `pods "nosuch" not found` / `deployments.apps "web" not found`.
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self {
            details: Some(StatusDetails::for_resource(info, name)),
            ..Self::new(
                404,
                StatusReason::NotFound,
                format!("{} {} not found", info.qualified_resource(), quote(name)),
            )
        }
    }

    /// 409 `deployments.apps "web" already exists`.
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self {
            details: Some(StatusDetails::for_resource(info, name)),
            ..Self::new(
                409,
                StatusReason::AlreadyExists,
                format!(
                    "{} {} already exists",
                    info.qualified_resource(),
                    quote(name)
                ),
            )
        }
    }

    /// 409 `Operation cannot be fulfilled on pods "x": <msg>`.
    pub fn conflict(info: &ResourceInfo, name: &str, msg: &str) -> Self {
        Self {
            details: Some(StatusDetails::for_resource(info, name)),
            ..Self::new(
                409,
                StatusReason::Conflict,
                format!(
                    "Operation cannot be fulfilled on {} {}: {msg}",
                    info.qualified_resource(),
                    quote(name)
                ),
            )
        }
    }

    /// The optimistic-concurrency conflict of an update with a stale `resourceVersion`.
    pub fn conflict_modified(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Pod "x" is invalid: metadata.name: Invalid value: ...` (one cause) or `... is invalid: [a, b]`.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let mut errs: Vec<String> = Vec::with_capacity(causes.len());
        for c in &causes {
            let s = c.to_error_string();
            if !errs.contains(&s) {
                errs.push(s);
            }
        }
        let head = format!("{} {} is invalid", info.qualified_kind(), quote(name));
        let message = match errs.len() {
            0 => head,
            1 => format!("{head}: {}", errs[0]),
            _ => format!("{head}: [{}]", errs.join(", ")),
        };
        Self {
            details: Some(StatusDetails {
                name: name.to_string(),
                group: info.group.to_string(),
                kind: info.kind.to_string(),
                causes,
                ..StatusDetails::default()
            }),
            ..Self::new(422, StatusReason::Invalid, message)
        }
    }

    /// 400 BadRequest with `msg` verbatim.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, StatusReason::BadRequest, msg.into())
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, StatusReason::Unauthorized, "Unauthorized".to_string())
    }

    /// 403 Forbidden with `msg` verbatim.
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(403, StatusReason::Forbidden, msg.into())
    }

    /// 410 with reason `Expired`, as kube-apiserver answers a too-old resourceVersion or an expired
    /// continue token (client-go's reflector relists on it).
    pub fn gone(msg: impl Into<String>) -> Self {
        Self::new(410, StatusReason::Expired, msg.into())
    }

    /// 429 TooManyRequests; `retry_after` fills `details.retryAfterSeconds`.
    pub fn too_many_requests(msg: impl Into<String>, retry_after: Option<u32>) -> Self {
        Self {
            details: Some(StatusDetails {
                retry_after_seconds: retry_after,
                ..StatusDetails::default()
            }),
            ..Self::new(429, StatusReason::TooManyRequests, msg.into())
        }
    }

    /// 413 `Request entity too large: <msg>`.
    pub fn too_large(msg: &str) -> Self {
        Self::new(
            413,
            StatusReason::RequestEntityTooLarge,
            format!("Request entity too large: {msg}"),
        )
    }

    /// 415 for a request body of Content-Type `ct`; lists what is accepted instead (patch types when
    /// `ct` looks like a patch type).
    pub fn unsupported_media_type(ct: &str) -> Self {
        let accepted = if ct.contains("patch") {
            "application/json-patch+json, application/merge-patch+json, \
             application/strategic-merge-patch+json, application/apply-patch+yaml"
        } else {
            "application/json, application/yaml, application/vnd.kubernetes.protobuf"
        };
        Self::new(
            415,
            StatusReason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    }

    /// 406 NotAcceptable with `msg` verbatim.
    pub fn not_acceptable(msg: impl Into<String>) -> Self {
        Self::new(406, StatusReason::NotAcceptable, msg.into())
    }

    /// 405 MethodNotAllowed with `msg` verbatim.
    pub fn method_not_allowed(msg: impl Into<String>) -> Self {
        Self::new(405, StatusReason::MethodNotAllowed, msg.into())
    }

    /// 500 `Internal error occurred: <msg>`, with `msg` as the single cause.
    pub fn internal(msg: &str) -> Self {
        Self {
            details: Some(StatusDetails {
                causes: vec![Cause::plain("", msg)],
                ..StatusDetails::default()
            }),
            ..Self::new(
                500,
                StatusReason::InternalError,
                format!("Internal error occurred: {msg}"),
            )
        }
    }

    /// 504 `Timeout: <msg>`.
    pub fn timeout(msg: &str) -> Self {
        Self::new(504, StatusReason::Timeout, format!("Timeout: {msg}"))
    }

    /// 503 ServiceUnavailable with `msg` verbatim.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(503, StatusReason::ServiceUnavailable, msg.into())
    }

    /// The `meta/v1` `Status` JSON of this error.
    pub fn to_status(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        m.insert("reason".into(), json!(self.reason.as_str()));
        if let Some(d) = &self.details {
            m.insert("details".into(), d.to_json());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }

    /// Reads a `Status` object back (for clients); `None` if `v` is not a failure Status.
    pub fn from_status(v: &Value) -> Option<Self> {
        if v.get("kind")?.as_str()? != "Status" || v.get("status")?.as_str()? != "Failure" {
            return None;
        }
        let code = u16::try_from(v.get("code")?.as_u64()?).ok()?;
        let reason = v
            .get("reason")
            .and_then(Value::as_str)
            .and_then(StatusReason::parse)
            .unwrap_or(StatusReason::InternalError);
        let message = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let details = v.get("details").map(|d| {
            let s = |k: &str| {
                d.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            StatusDetails {
                name: s("name"),
                group: s("group"),
                kind: s("kind"),
                uid: s("uid"),
                causes: d
                    .get("causes")
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .map(|c| {
                                let s = |k: &str| {
                                    c.get(k)
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                        .to_string()
                                };
                                Cause {
                                    field: s("field"),
                                    reason: s("reason"),
                                    message: s("message"),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                retry_after_seconds: d
                    .get("retryAfterSeconds")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok()),
            }
        });
        Some(Self {
            code,
            reason,
            message,
            details,
        })
    }
}

/// A `Status` with `"status":"Success"` naming the object, as DELETE (and eviction) may answer.
pub fn success_status(info: &ResourceInfo, name: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": StatusDetails::for_resource(info, name).to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn pods() -> &'static ResourceInfo {
        find("", "v1", "pods").unwrap()
    }
    fn deployments() -> &'static ResourceInfo {
        find("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn not_found_shape() {
        let s = ApiError::not_found(pods(), "nosuch").to_status();
        assert_eq!(
            s,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"pods \"nosuch\" not found","reason":"NotFound",
                   "details":{"name":"nosuch","kind":"pods"},"code":404})
        );
        let d = ApiError::not_found(deployments(), "web").to_status();
        assert_eq!(d["message"], "deployments.apps \"web\" not found");
        assert_eq!(d["details"]["group"], "apps");
        assert_eq!(d["details"]["kind"], "deployments");
    }

    #[test]
    fn already_exists_and_conflict() {
        let e = ApiError::already_exists(deployments(), "web");
        assert_eq!(e.code, 409);
        assert_eq!(e.message, "deployments.apps \"web\" already exists");
        assert_eq!(e.to_status()["reason"], "AlreadyExists");
        let c = ApiError::conflict_modified(pods(), "x");
        assert_eq!(c.code, 409);
        assert_eq!(c.reason, StatusReason::Conflict);
        assert_eq!(
            c.message,
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(c.to_string(), c.message);
    }

    #[test]
    fn invalid_one_and_many_causes() {
        let detail = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'";
        let e = ApiError::invalid(
            pods(),
            "Bad_Name",
            vec![Cause::invalid("metadata.name", &json!("Bad_Name"), detail)],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            format!(
                "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {detail}"
            )
        );
        let s = e.to_status();
        assert_eq!(s["details"]["kind"], "Pod");
        assert_eq!(s["details"]["name"], "Bad_Name");
        assert!(s["details"].get("group").is_none());
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            s["details"]["causes"][0]["message"],
            format!("Invalid value: \"Bad_Name\": {detail}")
        );

        let e = ApiError::invalid(
            deployments(),
            "web",
            vec![
                Cause::required("spec.selector", ""),
                Cause::invalid(
                    "spec.replicas",
                    &json!(-1),
                    "must be greater than or equal to 0",
                ),
                Cause::required("spec.selector", ""),
            ],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
        assert_eq!(e.to_status()["details"]["group"], "apps");
        assert_eq!(e.details.as_ref().map(|d| d.causes.len()), Some(3));
    }

    #[test]
    fn cause_bodies() {
        assert_eq!(
            Cause::not_supported("spec.type", &json!("Foo"), &["ClusterIP", "NodePort"]).message,
            "Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"NodePort\""
        );
        assert_eq!(Cause::forbidden("spec", "nope").message, "Forbidden: nope");
        assert_eq!(
            Cause::duplicate("spec.ports[1].port", &json!(80)).message,
            "Duplicate value: 80"
        );
        assert_eq!(
            Cause::required("x", "must be set").message,
            "Required value: must be set"
        );
        assert_eq!(
            Cause::too_long("metadata.annotations", 262144).message,
            "Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn other_codes() {
        let cases = [
            (ApiError::bad_request("bad"), 400, "BadRequest"),
            (
                ApiError::gone("too old resource version: 1 (5)"),
                410,
                "Expired",
            ),
            (
                ApiError::too_many_requests("slow down", Some(3)),
                429,
                "TooManyRequests",
            ),
            (
                ApiError::too_large("limit is 3145728"),
                413,
                "RequestEntityTooLarge",
            ),
            (
                ApiError::unsupported_media_type("text/plain"),
                415,
                "UnsupportedMediaType",
            ),
            (ApiError::not_acceptable("only json"), 406, "NotAcceptable"),
            (ApiError::method_not_allowed("no"), 405, "MethodNotAllowed"),
            (ApiError::internal("boom"), 500, "InternalError"),
            (ApiError::timeout("took too long"), 504, "Timeout"),
            (ApiError::unauthorized(), 401, "Unauthorized"),
            (ApiError::forbidden("no"), 403, "Forbidden"),
        ];
        for (e, code, reason) in cases {
            let s = e.to_status();
            assert_eq!(s["code"], code);
            assert_eq!(s["reason"], reason);
            assert_eq!(s["status"], "Failure");
            assert_eq!(
                ApiError::from_status(&s),
                Some(e.clone()),
                "round trip {reason}"
            );
        }
        let t = ApiError::too_many_requests("slow down", Some(3)).to_status();
        assert_eq!(t["details"]["retryAfterSeconds"], 3);
        assert_eq!(
            ApiError::internal("boom").to_status()["message"],
            "Internal error occurred: boom"
        );
        assert!(
            ApiError::unsupported_media_type("application/foo-patch+json")
                .message
                .contains("application/merge-patch+json")
        );
        let inv = ApiError::invalid(pods(), "p", vec![Cause::required("spec.containers", "")]);
        assert_eq!(ApiError::from_status(&inv.to_status()), Some(inv));
    }

    #[test]
    fn success() {
        let s = success_status(deployments(), "web");
        assert_eq!(s["status"], "Success");
        assert_eq!(s["kind"], "Status");
        assert_eq!(
            s["details"],
            json!({"name":"web","group":"apps","kind":"deployments"})
        );
        assert!(ApiError::from_status(&s).is_none());
    }
}
