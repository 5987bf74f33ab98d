//! Typed access to one resource: [`Api<K>`] builds the REST paths from `k8s-openapi`'s
//! [`Resource`] constants and (de)serializes JSON.

use std::marker::PhantomData;

use bytes::Bytes;
use http::Method;
use k8s_openapi::{ListableResource, NamespaceResourceScope, Resource};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Client, Error, Request, Result, Watcher};

/// Characters left as they are in query values (RFC 3986 unreserved).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Options of list and watch requests (the Kubernetes query parameters).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit` (page size).
    pub limit: Option<u64>,
    /// `continue` token from the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`NotOlderThan`, `Exact`).
    pub resource_version_match: Option<String>,
    /// `timeoutSeconds` (watch duration on the server).
    pub timeout_seconds: Option<u32>,
}

impl ListParams {
    /// The query string (with its leading `?`, empty when no parameter is set).
    pub fn query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let mut put = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                pairs.push((k, v.clone()));
            }
        };
        put("labelSelector", &self.label_selector);
        put("fieldSelector", &self.field_selector);
        put("continue", &self.continue_token);
        put("resourceVersion", &self.resource_version);
        put("resourceVersionMatch", &self.resource_version_match);
        if let Some(l) = self.limit {
            pairs.push(("limit", l.to_string()));
        }
        if let Some(t) = self.timeout_seconds {
            pairs.push(("timeoutSeconds", t.to_string()));
        }
        join_query(&pairs)
    }
}

/// `?k=v&...` with values percent-encoded; empty for no pairs.
pub(crate) fn join_query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
        .collect();
    format!("?{}", parts.join("&"))
}

/// The collection path of `K`, in `namespace` when given.
fn collection_path<K: Resource>(namespace: Option<&str>) -> String {
    let root = if K::GROUP.is_empty() {
        format!("/api/{}", K::VERSION)
    } else {
        format!("/apis/{}/{}", K::GROUP, K::VERSION)
    };
    match namespace {
        Some(ns) => format!("{root}/namespaces/{ns}/{}", K::URL_PATH_SEGMENT),
        None => format!("{root}/{}", K::URL_PATH_SEGMENT),
    }
}

/// Typed requests for resource `K` in one namespace, across all namespaces, or cluster-wide.
#[derive(Debug, Clone)]
pub struct Api<K> {
    client: Client,
    path: String,
    namespaced: bool,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Api<K>
where
    K: Resource + ListableResource + Serialize + DeserializeOwned,
{
    /// `K` in `namespace`.
    pub fn namespaced(client: Client, namespace: &str) -> Self
    where
        K: Resource<Scope = NamespaceResourceScope>,
    {
        Self {
            client,
            path: collection_path::<K>(Some(namespace)),
            namespaced: true,
            _kind: PhantomData,
        }
    }

    /// `K` across all namespaces (list and watch), or a cluster-scoped `K`.
    pub fn all(client: Client) -> Self {
        Self {
            client,
            path: collection_path::<K>(None),
            namespaced: false,
            _kind: PhantomData,
        }
    }

    /// The collection path this handle addresses.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn object_path(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }

    fn encode(obj: &impl Serialize) -> Result<Bytes> {
        serde_json::to_vec(obj)
            .map(Bytes::from)
            .map_err(|e| Error::Decode(format!("cannot encode {}: {e}", K::KIND)))
    }

    /// GET one object.
    pub async fn get(&self, name: &str) -> Result<K> {
        self.client
            .request_json(&Request::get(self.object_path(name)))
            .await
    }

    /// One page of the list.
    pub async fn list(&self, params: &ListParams) -> Result<k8s_openapi::List<K>> {
        self.client
            .request_json(&Request::get(format!("{}{}", self.path, params.query())))
            .await
    }

    /// POST a new object (the namespace comes from this handle).
    pub async fn create(&self, obj: &K) -> Result<K> {
        self.client
            .request_json(&Request::json(
                Method::POST,
                self.path.clone(),
                Self::encode(obj)?,
            ))
            .await
    }

    /// PUT `obj` over `name` (its `metadata.resourceVersion`, when set, is the precondition:
    /// a stale one gets 409 Conflict).
    pub async fn replace(&self, name: &str, obj: &K) -> Result<K> {
        self.client
            .request_json(&Request::json(
                Method::PUT,
                self.object_path(name),
                Self::encode(obj)?,
            ))
            .await
    }

    /// JSON merge patch (RFC 7386) of `name`.
    pub async fn patch_merge(&self, name: &str, patch: &serde_json::Value) -> Result<K> {
        let req = Request {
            method: Method::PATCH,
            path: self.object_path(name),
            body: Some((Self::encode(patch)?, "application/merge-patch+json")),
        };
        self.client.request_json(&req).await
    }

    /// DELETE `name`; the answer is the deleted object or a `Status`.
    pub async fn delete(&self, name: &str) -> Result<serde_json::Value> {
        let req = Request {
            method: Method::DELETE,
            path: self.object_path(name),
            body: None,
        };
        self.client.request_json(&req).await
    }

    /// Watches the collection from `resource_version` (events strictly after it), resuming on
    /// another endpoint when the stream breaks. `params.resource_version` is ignored.
    pub fn watch(&self, params: &ListParams, resource_version: &str) -> Watcher<K> {
        let mut p = params.clone();
        p.resource_version = None;
        p.limit = None;
        p.continue_token = None;
        Watcher::new(
            self.client.clone(),
            self.path.clone(),
            p,
            resource_version.to_string(),
        )
    }

    /// Whether this handle is bound to one namespace.
    pub fn is_namespaced(&self) -> bool {
        self.namespaced
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Node, Pod};

    use super::*;

    #[test]
    fn paths_follow_group_version_and_scope() {
        assert_eq!(
            collection_path::<Pod>(Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(collection_path::<Pod>(None), "/api/v1/pods");
        assert_eq!(
            collection_path::<Deployment>(Some("x")),
            "/apis/apps/v1/namespaces/x/deployments"
        );
        assert_eq!(collection_path::<Node>(None), "/api/v1/nodes");
    }

    #[test]
    fn list_params_are_encoded() {
        assert_eq!(ListParams::default().query(), "");
        let p = ListParams {
            label_selector: Some("app in (a,b),tier!=db".into()),
            limit: Some(500),
            continue_token: Some("abc=".into()),
            ..Default::default()
        };
        assert_eq!(
            p.query(),
            "?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Ddb&continue=abc%3D&limit=500"
        );
    }
}
