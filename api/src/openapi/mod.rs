//! OpenAPI v3 (root index plus one document per group-version) and v2 documents, generated at
//! first use from our own types and resource registry, then cached.
//!
//! ```text
//! k8s-openapi types ──schemars──► components (+ x-kubernetes-* from patch::schema)
//! resources::all() ─────────────► paths per group-version (operations, GVK, fieldValidation)
//!                                  └─► /openapi/v3/<gv> JSON + SHA-512 hash, /openapi/v2 JSON
//! ```

pub mod components;
pub mod paths;
mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

/// One served OpenAPI document.
#[derive(Debug, Clone)]
pub struct OpenApiDoc {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Uppercase hex SHA-512 of `body` (the `?hash=` and `ETag` value).
    pub hash: String,
}

impl OpenApiDoc {
    fn new(body: Vec<u8>) -> Self {
        let digest = Sha512::digest(&body);
        let hash = digest.iter().map(|b| format!("{b:02X}")).collect();
        Self { body, hash }
    }
}

static V3: OnceLock<BTreeMap<String, OpenApiDoc>> = OnceLock::new();
static V2: OnceLock<Vec<u8>> = OnceLock::new();

/// The Kubernetes version the documents claim to describe.
pub const INFO_VERSION: &str = "v1.33.0";

fn v3_docs() -> &'static BTreeMap<String, OpenApiDoc> {
    V3.get_or_init(|| {
        paths::group_versions()
            .into_iter()
            .map(|(g, v)| {
                let doc = build_v3(g, v);
                let body = serde_json::to_vec(&doc).unwrap_or_default();
                (paths::gv_path(g, v), OpenApiDoc::new(body))
            })
            .collect()
    })
}

/// Builds the v3 document of one group-version as a JSON value.
pub fn build_v3(group: &str, version: &str) -> Value {
    let paths = paths::paths_for(group, version);
    let mut names = BTreeSet::new();
    components::referenced(&Value::Object(paths.clone()), &mut names);
    let all = components::all();
    let schemas: Map<String, Value> = names
        .into_iter()
        .filter_map(|n| all.get(&n).map(|s| (n, s.clone())))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}}
        },
        "security": [{"BearerToken": []}],
    })
}

/// The `/openapi/v3` index: `{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=HEX"},...}}`.
pub fn v3_paths() -> Value {
    let mut m = Map::new();
    for (gv, doc) in v3_docs() {
        m.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", doc.hash)}),
        );
    }
    json!({ "paths": m })
}

/// The v3 document of `gv_path` (`api/v1`, `apis/apps/v1`, ...), if we serve that group-version.
pub fn v3_document(gv_path: &str) -> Option<&'static OpenApiDoc> {
    v3_docs().get(gv_path.trim_matches('/'))
}

/// `/openapi/v2` as protobuf: a zero-length body, which is a valid empty gnostic `Document`.
/// Serve it with `Content-Type: application/com.github.proto-openapi.spec.v2.v1.0+protobuf`.
pub fn v2_protobuf() -> &'static [u8] {
    &[]
}

/// `/openapi/v2` as JSON (Swagger 2.0), covering every group-version.
pub fn v2_json() -> &'static [u8] {
    V2.get_or_init(|| serde_json::to_vec(&v2::build()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_group_versions_with_hashes() {
        let idx = v3_paths();
        let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("apps/v1 url");
        let doc = v3_document("apis/apps/v1").expect("apps doc");
        assert_eq!(url, format!("/openapi/v3/apis/apps/v1?hash={}", doc.hash));
        assert_eq!(doc.hash.len(), 128);
        assert!(doc
            .hash
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert!(v3_document("api/v1").is_some());
        assert!(v3_document("apis/nosuch/v1").is_none());
    }

    #[test]
    fn deployment_patch_operation_is_verifiable_by_kubectl() {
        let doc: Value =
            serde_json::from_slice(&v3_document("apis/apps/v1").expect("doc").body).expect("json");
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        let params = p["parameters"].as_array().expect("params");
        assert!(params
            .iter()
            .any(|q| q["name"] == "fieldValidation" && q["in"] == "query"));
        let ct = p["requestBody"]["content"].as_object().expect("content");
        assert!(ct.contains_key("application/strategic-merge-patch+json"));
        assert!(ct.contains_key("application/apply-patch+yaml"));
        // every $ref resolves inside the document
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = BTreeSet::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "dangling ref {r}");
        }
    }

    fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.insert(r.trim_start_matches("#/components/schemas/").to_string());
                }
                m.values().for_each(|c| collect_refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
            _ => {}
        }
    }

    #[test]
    fn v2_json_is_swagger_with_definitions() {
        let v: Value = serde_json::from_slice(v2_json()).expect("json");
        assert_eq!(v["swagger"], "2.0");
        assert!(v["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
        let p = &v["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        let text = String::from_utf8_lossy(v2_json()).to_string();
        assert!(!text.contains("#/components/schemas/"));
        assert!(v2_protobuf().is_empty());
    }
}
