//! The HTTP routes: fixed endpoints (`/version`, health, `/metrics`, OpenAPI) and the resource
//! dispatcher that parses `/api/v1/...` and `/apis/{group}/{version}/...` paths.
//!
//! ```text
//! /api | /apis | /api/v1 | /apis/G | /apis/G/V         ─► discovery
//! /api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]          ─► handlers::{get,list,watch,create,update,patch,delete}
//! /apis/G/V[/namespaces/NS]/PLURAL[/NAME[/SUB]]
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use navarch_api::resources;
use navarch_api::status::ApiError;
use serde_json::json;

use crate::discovery;
use crate::handlers::{self, ResourceRequest};
use crate::metrics::record_request;
use crate::negotiation::{self, DiscoveryFormat};
use crate::openapi;
use crate::response::{json, json_bytes, not_found_path, Failure};
use crate::server::AppState;

/// The Kubernetes version this server reports (kubectl warns beyond ±1 minor).
pub const KUBERNETES_MINOR: &str = "33";

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(health))
        .route("/livez", get(live))
        .route("/readyz", get(health))
        .route("/metrics", get(metrics_text))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_root))
        .route("/openapi/v3/{*gv}", get(openapi_v3_doc))
        .fallback(dispatch)
        .with_state(state)
}

async fn version() -> Response<Body> {
    json(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": KUBERNETES_MINOR,
            "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+navarch-{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "navarch",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
        }),
    )
}

fn text(code: StatusCode, body: String) -> Response<Body> {
    json_bytes(code, body.into_bytes(), "text/plain; charset=utf-8")
}

async fn live() -> Response<Body> {
    text(StatusCode::OK, "ok".into())
}

async fn health(State(state): State<Arc<AppState>>) -> Response<Body> {
    if state.shutdown.is_cancelled() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    }
    let probe = resources::all()
        .first()
        .map(|r| r.prefix(None))
        .unwrap_or_default();
    match state.storage.current_revision(&probe).await {
        Ok(_) => text(StatusCode::OK, "ok".into()),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[-]etcd failed: {e}\nhealthz check failed"),
        ),
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response<Body> {
    let mut body = state.metrics.render();
    body.push_str(&crate::metrics::process_metrics());
    json_bytes(
        StatusCode::OK,
        body.into_bytes(),
        "text/plain; version=0.0.4",
    )
}

async fn openapi_v2(headers: HeaderMap) -> Response<Body> {
    openapi::v2(&headers)
}

async fn openapi_v3_root() -> Response<Body> {
    openapi::v3_root()
}

async fn openapi_v3_doc(
    axum::extract::Path(gv): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response<Body> {
    openapi::v3_doc(
        gv.trim_matches('/'),
        q.get("hash").map(String::as_str),
        &headers,
    )
}

/// What a path under `/api` or `/apis` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api`.
    CoreRoot,
    /// `/apis`.
    GroupsRoot,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion(String, String),
    /// A resource URL.
    Resource {
        /// Group.
        group: String,
        /// Version.
        version: String,
        /// Namespace segment.
        namespace: Option<String>,
        /// Plural.
        plural: String,
        /// Name.
        name: Option<String>,
        /// Subresource.
        subresource: Option<String>,
    },
}

/// Parses a request path; `None` when it is not an API path.
pub fn parse_path(path: &str) -> Option<ApiPath> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let (group, version, rest) = match segs.first().map(String::as_str) {
        Some("api") => match segs.len() {
            1 => return Some(ApiPath::CoreRoot),
            _ => (String::new(), segs[1].clone(), &segs[2..]),
        },
        Some("apis") => match segs.len() {
            1 => return Some(ApiPath::GroupsRoot),
            2 => return Some(ApiPath::Group(segs[1].clone())),
            _ => (segs[1].clone(), segs[2].clone(), &segs[3..]),
        },
        _ => return None,
    };
    if rest.is_empty() {
        return Some(ApiPath::GroupVersion(group, version));
    }
    let namespaced = rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2].as_str(), "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return None;
    }
    Some(ApiPath::Resource {
        group,
        version,
        namespace,
        plural: rest[0].clone(),
        name: rest.get(1).cloned(),
        subresource: rest.get(2).cloned(),
    })
}

fn server_address(headers: &HeaderMap, fallback: &str) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(fallback)
        .to_string()
}

fn discovery_response(format: DiscoveryFormat, body: serde_json::Value) -> Response<Body> {
    json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
        format.content_type(),
    )
}

/// The Kubernetes verb of a resource request.
fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match (method.as_str(), has_name) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unsupported",
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let Some(api_path) = parse_path(&path) else {
        return Failure(not_found_path()).into_response();
    };
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (group, version, namespace, plural, name, subresource) = match api_path {
        ApiPath::CoreRoot => {
            let f = negotiation::discovery_format(accept.as_deref());
            return match f {
                DiscoveryFormat::Legacy => json(
                    StatusCode::OK,
                    &discovery::api_versions(&server_address(&parts.headers, &state.config.listen)),
                ),
                _ => discovery_response(f, discovery::aggregated(f, true)),
            };
        }
        ApiPath::GroupsRoot => {
            let f = negotiation::discovery_format(accept.as_deref());
            return match f {
                DiscoveryFormat::Legacy => json(StatusCode::OK, &discovery::api_group_list()),
                _ => discovery_response(f, discovery::aggregated(f, false)),
            };
        }
        ApiPath::Group(g) => {
            return match discovery::api_group_doc(&g) {
                Some(doc) => json(StatusCode::OK, &doc),
                None => Failure(not_found_path()).into_response(),
            }
        }
        ApiPath::GroupVersion(g, v) => {
            return match discovery::api_resource_list(&g, &v) {
                Some(doc) => json(StatusCode::OK, &doc),
                None => Failure(not_found_path()).into_response(),
            }
        }
        ApiPath::Resource {
            group,
            version,
            namespace,
            plural,
            name,
            subresource,
        } => (group, version, namespace, plural, name, subresource),
    };
    let Some(info) = resources::find(&group, &version, &plural) else {
        return Failure(not_found_path()).into_response();
    };
    if namespace.is_some() && !info.namespaced {
        return Failure(not_found_path()).into_response();
    }
    let query: HashMap<String, String> = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(v)| v.into_iter().collect())
        .unwrap_or_default();
    let watch = matches!(
        query.get("watch").map(String::as_str),
        Some("true") | Some("1")
    );
    let verb = verb_of(&parts.method, name.is_some(), watch);
    let resource_label = match &subresource {
        Some(s) => format!("{}/{s}", info.plural),
        None => info.plural.to_string(),
    };
    let metric_verb: &'static str = match verb {
        "get" => "GET",
        "list" => "LIST",
        "watch" => "WATCH",
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        _ => "OTHER",
    };
    // Overload protection (kube-apiserver's max-in-flight): watches are long-running and not
    // counted; the permit lives until the handler has produced its response.
    let slots = match verb {
        "watch" => None,
        "get" | "list" => Some(&state.readonly_slots),
        _ => Some(&state.mutating_slots),
    };
    let permit = match slots.map(|s| s.clone().try_acquire_owned()) {
        Some(Err(_)) => {
            let resp = Failure(ApiError::too_many_requests(
                "Too many requests, please try again later.",
                Some(1),
            ))
            .into_response();
            record_request(metric_verb, &resource_label, 429, started.elapsed());
            return resp;
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let result = check_verb(info, subresource.as_deref(), verb, &plural);
    let resp = match result {
        Err(e) => Failure(e).into_response(),
        Ok(()) => {
            let limit = state.config.max_request_bytes;
            match axum::body::to_bytes(body, limit).await {
                Err(_) => {
                    Failure(ApiError::too_large(&format!("limit is {limit} bytes"))).into_response()
                }
                Ok(bytes) => {
                    let req = ResourceRequest {
                        state: state.clone(),
                        method: parts.method.clone(),
                        info,
                        namespace,
                        name,
                        subresource,
                        query,
                        headers: parts.headers.clone(),
                        body: bytes,
                    };
                    route_verb(verb, req).await
                }
            }
        }
    };
    drop(permit);
    let code = resp.status().as_u16();
    record_request(metric_verb, &resource_label, code, started.elapsed());
    tracing::debug!(method = %parts.method, path = %path, code, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// 405 unless the resource (or subresource) serves `verb`; 404 for an unknown subresource.
fn check_verb(
    info: &resources::ResourceInfo,
    subresource: Option<&str>,
    verb: &str,
    plural: &str,
) -> Result<(), ApiError> {
    let allowed: &[&str] = match subresource {
        None => info.verbs,
        Some(s) => match info.subresource(s) {
            Some(sub) => sub.verbs,
            None => return Err(not_found_path()),
        },
    };
    // get/list/watch are one permission family in discovery; `watch` needs its own verb.
    if allowed.contains(&verb) {
        return Ok(());
    }
    Err(ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({verb} {plural}{})",
        subresource.map(|s| format!("/{s}")).unwrap_or_default()
    )))
}

async fn route_verb(verb: &str, req: ResourceRequest) -> Response<Body> {
    let sub = req.subresource.clone();
    let r = match (verb, sub.as_deref()) {
        ("get", _) => handlers::get::get(req).await,
        ("list", _) => handlers::list::list(req).await,
        ("watch", _) => handlers::watch::watch(req).await,
        ("create", Some("binding")) => handlers::subresources::bind(req).await,
        ("create", Some("eviction")) => handlers::subresources::evict(req).await,
        ("create", None) if req.name.is_none() => handlers::create::create(req).await,
        ("update", _) if req.name.is_some() => handlers::update::update(req).await,
        ("patch", _) if req.name.is_some() => handlers::patch::patch(req).await,
        ("delete", _) => handlers::delete::delete(req).await,
        ("deletecollection", None) => handlers::delete::delete_collection(req).await,
        _ => Err(Failure(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ))),
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        path: &str,
    ) -> (
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
    ) {
        match parse_path(path) {
            Some(ApiPath::Resource {
                group,
                version,
                namespace,
                plural,
                name,
                subresource,
            }) => (group, version, namespace, plural, name, subresource),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_parse() {
        assert_eq!(parse_path("/api"), Some(ApiPath::CoreRoot));
        assert_eq!(parse_path("/apis/"), Some(ApiPath::GroupsRoot));
        assert_eq!(
            parse_path("/apis/apps"),
            Some(ApiPath::Group("apps".into()))
        );
        assert_eq!(
            parse_path("/api/v1"),
            Some(ApiPath::GroupVersion(String::new(), "v1".into()))
        );
        let (g, _, ns, p, n, s) = res("/api/v1/namespaces/default/pods/web-1/log");
        assert_eq!(
            (
                g.as_str(),
                ns.as_deref(),
                p.as_str(),
                n.as_deref(),
                s.as_deref()
            ),
            ("", Some("default"), "pods", Some("web-1"), Some("log"))
        );
        let (_, _, ns, p, n, s) = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (ns, p.as_str(), n.as_deref(), s),
            (None, "namespaces", Some("kube-system"), None)
        );
        let (_, _, ns, p, n, s) = res("/api/v1/namespaces/foo/status");
        assert_eq!(
            (ns, p.as_str(), n.as_deref(), s.as_deref()),
            (None, "namespaces", Some("foo"), Some("status"))
        );
        let (g, v, ns, p, n, _) = res("/apis/apps/v1/namespaces/default/deployments");
        assert_eq!(
            (g.as_str(), v.as_str(), ns.as_deref(), p.as_str(), n),
            ("apps", "v1", Some("default"), "deployments", None)
        );
        let (_, _, ns, p, _, _) = res("/api/v1/pods");
        assert_eq!((ns, p.as_str()), (None, "pods"));
        assert_eq!(parse_path("/healthz"), None);
        assert_eq!(parse_path("/api/v1/namespaces/a/pods/b/c/d"), None);
    }

    #[test]
    fn verbs() {
        assert_eq!(verb_of(&Method::GET, false, true), "watch");
        assert_eq!(verb_of(&Method::GET, false, false), "list");
        assert_eq!(verb_of(&Method::DELETE, false, false), "deletecollection");
        let pods = resources::find("", "v1", "pods").unwrap();
        assert!(check_verb(pods, None, "watch", "pods").is_ok());
        assert!(check_verb(pods, Some("eviction"), "create", "pods").is_ok());
        assert_eq!(
            check_verb(pods, Some("eviction"), "get", "pods")
                .unwrap_err()
                .code,
            405
        );
        assert_eq!(
            check_verb(pods, Some("nosuch"), "get", "pods")
                .unwrap_err()
                .code,
            404
        );
    }
}
