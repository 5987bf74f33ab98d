//! Compares our generated OpenAPI v3 documents with the upstream reference documents in
//! `../shared/reference/openapi-v3/` (read at test time, never copied into the project): every
//! patch/list extension of the schemas our kinds reach, and every path of our resources with its
//! operations and `x-kubernetes-group-version-kind`, must be present identically in ours.

use std::collections::BTreeSet;
use std::path::PathBuf;

use navarch_api::{openapi, resources};
use serde_json::{Map, Value};

const EXTENSIONS: &[&str] = &[
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
];
const METHODS: &[&str] = &["get", "put", "post", "patch", "delete"];
/// Schemas of the (older) reference that Kubernetes 1.33, whose types we generate from, removed.
const REMOVED_UPSTREAM: &[&str] = &["io.k8s.api.core.v1.ClaimSource"];
const GVS: &[&str] = &["api/v1", "apis/apps/v1", "apis/autoscaling/v1"];

fn reference(gv: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/openapi-v3")
        .join(format!("{gv}.json"));
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "SKIP: reference OpenAPI document {} not readable ({e}); comparison skipped",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(v) => Some(v),
        Err(e) => panic!("reference {} is not JSON: {e}", path.display()),
    }
}

fn ours(gv: &str) -> Option<Value> {
    openapi::v3_document(gv).map(|d| serde_json::from_slice(&d.body).expect("our document is JSON"))
}

fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.rsplit('/').next().unwrap_or(r).to_string());
            }
            m.values().for_each(|c| refs_in(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs_in(c, out)),
        _ => {}
    }
}

/// The schemas reachable, in the reference, from the schemas of our kinds.
fn reachable(schemas: &Map<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = openapi::components::kinds()
        .iter()
        .map(|k| k.name.clone())
        .filter(|n| schemas.contains_key(n))
        .collect();
    while let Some(n) = stack.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        let mut next = Vec::new();
        if let Some(s) = schemas.get(&n) {
            refs_in(s, &mut next);
        }
        stack.extend(next.into_iter().filter(|r| !seen.contains(r)));
    }
    seen
}

fn extensions_of(v: &Value) -> Vec<(&'static str, Value)> {
    EXTENSIONS
        .iter()
        .filter_map(|e| v.get(*e).map(|x| (*e, x.clone())))
        .collect()
}

#[test]
fn schemas_carry_the_reference_patch_extensions() {
    let mut failures = Vec::new();
    let mut compared = 0usize;
    for gv in GVS {
        let Some(reference) = reference(gv) else {
            return;
        };
        let ref_schemas = reference["components"]["schemas"]
            .as_object()
            .expect("reference schemas");
        let our_doc = ours(gv);
        let our_schemas: Map<String, Value> = match &our_doc {
            Some(d) => d["components"]["schemas"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            None => openapi::components::all().clone(),
        };
        for name in reachable(ref_schemas) {
            let r = &ref_schemas[&name];
            if REMOVED_UPSTREAM.contains(&name.as_str()) {
                continue;
            }
            // a kind's schema that this group-version's document does not need (e.g. Scale, which
            // api/v1 only uses for replicationcontrollers) is compared with our generated one
            let Some(o) = our_schemas
                .get(&name)
                .or_else(|| openapi::components::all().get(&name))
            else {
                failures.push(format!("{gv}: schema {name} missing"));
                continue;
            };
            compared += 1;
            for (ext, val) in extensions_of(r) {
                if o.get(ext) != Some(&val) {
                    failures.push(format!(
                        "{gv}: {name} {ext}: want {val}, got {:?}",
                        o.get(ext)
                    ));
                }
            }
            for (prop, rp) in r["properties"].as_object().into_iter().flatten() {
                for (ext, val) in extensions_of(rp) {
                    let got = o["properties"].get(prop).and_then(|p| p.get(ext));
                    if got != Some(&val) {
                        failures.push(format!(
                            "{gv}: {name}.{prop} {ext}: want {val}, got {got:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(compared > 50, "too few schemas compared: {compared}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Whether a reference path belongs to one of our resources (or their served subresources).
fn is_ours(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return false,
    };
    let rest = match rest {
        ["watch", r @ ..] => r,
        r => r,
    };
    let rest = match rest {
        ["namespaces", "{namespace}", r @ ..] if !r.is_empty() => r,
        r => r,
    };
    let Some((plural, tail)) = rest.split_first() else {
        return false;
    };
    let Some(info) = resources::find(group, version, plural) else {
        return false;
    };
    match tail {
        [] | ["{name}"] => true,
        ["{name}", sub] => info.subresources.iter().any(|s| s.name == *sub),
        _ => false,
    }
}

#[test]
fn paths_of_our_resources_match_the_reference() {
    let mut failures = Vec::new();
    let mut compared = 0usize;
    for gv in GVS {
        let Some(reference) = reference(gv) else {
            return;
        };
        let Some(ours) = ours(gv) else {
            // a group-version we do not serve (autoscaling/v1 only lends the Scale kind)
            continue;
        };
        for (path, item) in reference["paths"].as_object().into_iter().flatten() {
            if !is_ours(path) {
                continue;
            }
            compared += 1;
            let Some(mine) = ours["paths"].get(path) else {
                failures.push(format!("{path}: missing"));
                continue;
            };
            for m in METHODS {
                match (item.get(*m), mine.get(*m)) {
                    (None, None) => {}
                    (Some(_), None) => failures.push(format!("{path}: {m} missing")),
                    (None, Some(_)) => failures.push(format!("{path}: {m} not in reference")),
                    (Some(r), Some(o)) => {
                        for ext in ["x-kubernetes-group-version-kind", "x-kubernetes-action"] {
                            if r.get(ext) != o.get(ext) {
                                failures.push(format!(
                                    "{path} {m} {ext}: want {:?}, got {:?}",
                                    r.get(ext),
                                    o.get(ext)
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 40, "too few paths compared: {compared}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn patch_operations_advertise_field_validation_and_patch_types() {
    for gv in ["api/v1", "apis/apps/v1", "apis/batch/v1"] {
        let doc = ours(gv).unwrap_or_else(|| panic!("{gv} served"));
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let Some(p) = item.get("patch") else { continue };
            n += 1;
            assert!(p["x-kubernetes-group-version-kind"].is_object(), "{path}");
            let params = p["parameters"].as_array().expect("params");
            assert!(
                params
                    .iter()
                    .any(|q| q["name"] == "fieldValidation" && q["in"] == "query"),
                "{path}"
            );
            let ct = p["requestBody"]["content"].as_object().expect("content");
            for t in [
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
                "application/merge-patch+json",
                "application/json-patch+json",
            ] {
                assert!(ct.contains_key(t), "{path} lacks {t}");
            }
        }
        assert!(n > 0, "{gv} has no patch operations");
    }
}
