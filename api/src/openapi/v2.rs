//! The Swagger 2.0 (`/openapi/v2`) JSON rendering of the same paths and schemas as v3.

use serde_json::{json, Map, Value};

use crate::openapi::{components, paths, INFO_VERSION};

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                *r = r.replace("#/components/schemas/", "#/definitions/");
            }
            m.values_mut().for_each(rewrite_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn v2_param(p: &Value) -> Value {
    let mut out = Map::new();
    for k in ["name", "in", "description", "required"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = p.get("schema").and_then(Value::as_object) {
        for (k, v) in s {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn v2_operation(op: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in op.as_object().into_iter().flatten() {
        match k.as_str() {
            "parameters" => {}
            "requestBody" | "responses" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut params: Vec<Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(v2_param).collect())
        .unwrap_or_default();
    if let Some(content) = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
    {
        out.insert("consumes".into(), json!(content.keys().collect::<Vec<_>>()));
        if let Some(schema) = content.values().next().and_then(|c| c.get("schema")) {
            params.insert(
                0,
                json!({"name": "body", "in": "body", "required": true, "schema": schema}),
            );
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (code, r) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let mut resp = json!({"description": r.get("description").cloned().unwrap_or(Value::Null)});
        if let Some(content) = r.get("content").and_then(Value::as_object) {
            for t in content.keys() {
                if !produces.contains(t) {
                    produces.push(t.clone());
                }
            }
            if let Some(s) = content.values().next().and_then(|c| c.get("schema")) {
                resp["schema"] = s.clone();
            }
        }
        responses.insert(code.clone(), resp);
    }
    out.insert("produces".into(), json!(produces));
    out.insert("schemes".into(), json!(["https"]));
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// Builds the whole v2 document.
pub fn build() -> Value {
    let mut all_paths = Map::new();
    for (g, v) in paths::group_versions() {
        for (path, item) in paths::paths_for(g, v) {
            let mut out = Map::new();
            for (k, op) in item.as_object().into_iter().flatten() {
                if k == "parameters" {
                    let ps: Vec<Value> =
                        op.as_array().into_iter().flatten().map(v2_param).collect();
                    out.insert(k.clone(), Value::Array(ps));
                } else {
                    out.insert(k.clone(), v2_operation(op));
                }
            }
            all_paths.insert(path, Value::Object(out));
        }
    }
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": all_paths,
        "definitions": components::all().clone(),
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    });
    rewrite_refs(&mut doc);
    doc
}
