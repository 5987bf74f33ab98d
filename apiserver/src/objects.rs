//! Objects as JSON values: the stored form, server-set fields on read, request-body decoding.

use bytes::Bytes;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::ApiError;
use serde_json::{Map, Value};

use crate::negotiation::BodyFormat;
use crate::protobuf;
use crate::storage::{Revision, StoredObject};

/// `metadata` of an object (empty map if absent or not an object).
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("just made an object")
    };
    let m = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    match m {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

/// `metadata.name` ("" if unset).
pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// Parses a resourceVersion string (400 on garbage).
pub fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// Decodes a stored object for a client: sets `kind`, `apiVersion` and `metadata.resourceVersion`.
pub fn from_stored(info: &ResourceInfo, stored: &StoredObject) -> Result<Value, ApiError> {
    from_bytes(info, &stored.value, stored.mod_revision)
}

/// Decodes stored bytes at revision `rev`.
pub fn from_bytes(info: &ResourceInfo, value: &[u8], rev: Revision) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(value).map_err(|e| {
        ApiError::internal(&format!(
            "stored {} object is not valid JSON: {e}",
            info.kind
        ))
    })?;
    set_type_meta(info, &mut obj);
    meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
    Ok(obj)
}

/// Sets `kind` and `apiVersion` (first in the object, as Kubernetes prints them).
pub fn set_type_meta(info: &ResourceInfo, obj: &mut Value) {
    if let Value::Object(m) = obj {
        let mut out = Map::new();
        out.insert("kind".into(), Value::String(info.kind.to_string()));
        out.insert("apiVersion".into(), Value::String(info.api_version()));
        for (k, v) in std::mem::take(m) {
            if k != "kind" && k != "apiVersion" {
                out.insert(k, v);
            }
        }
        *m = out;
    }
}

/// The stored form: the object without `metadata.resourceVersion` (the revision is the version).
pub fn to_stored(obj: &Value) -> Bytes {
    let mut v = obj.clone();
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// A copy of `obj` without `metadata.resourceVersion` (so a server-side mutation carries no
/// precondition and retries on conflicts).
pub fn without_rv(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        m.remove("resourceVersion");
    }
    v
}

/// Decodes a request body into a JSON object (400 on malformed input).
pub fn decode_body(format: BodyFormat, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = match format {
        BodyFormat::Json => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding request body: invalid JSON: {e}"))
        })?,
        BodyFormat::Yaml => serde_yaml_ng::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding request body: invalid YAML: {e}"))
        })?,
        BodyFormat::Protobuf => protobuf::decode(body).map_err(|e| match e {
            protobuf::ProtobufError::UnsupportedKind { .. } => {
                let mut err =
                    ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf");
                err.message = e.to_string();
                err
            }
            other => ApiError::bad_request(other.to_string()),
        })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding request body: expected a JSON object",
        ));
    }
    Ok(v)
}

/// Checks a body's `kind`/`apiVersion` against the resource (when the body sets them).
pub fn check_type_meta(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the request body ({kind}) does not match the resource kind {}",
            info.kind
        )));
    }
    if !api_version.is_empty() && api_version != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_round_trip_sets_server_fields() {
        let info = navarch_api::resources::find("apps", "v1", "deployments").unwrap();
        let obj = json!({"metadata": {"name": "web", "resourceVersion": "7"}, "spec": {}});
        let bytes = to_stored(&obj);
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let back = from_bytes(info, &bytes, 42).unwrap();
        assert_eq!(back["kind"], "Deployment");
        assert_eq!(back["apiVersion"], "apps/v1");
        assert_eq!(back["metadata"]["resourceVersion"], "42");
        assert!(from_bytes(info, b"{nope", 1).is_err());
    }

    #[test]
    fn bodies_decode_or_fail_with_400() {
        assert!(decode_body(BodyFormat::Json, br#"{"a":1}"#).is_ok());
        assert_eq!(decode_body(BodyFormat::Json, b"[1]").unwrap_err().code, 400);
        assert_eq!(decode_body(BodyFormat::Json, b"{").unwrap_err().code, 400);
        let y = decode_body(BodyFormat::Yaml, b"metadata:\n  name: x\n").unwrap();
        assert_eq!(y["metadata"]["name"], "x");
        assert_eq!(
            decode_body(BodyFormat::Protobuf, b"nope").unwrap_err().code,
            400
        );
    }

    #[test]
    fn type_meta_mismatch_is_rejected() {
        let info = navarch_api::resources::find("", "v1", "pods").unwrap();
        assert!(check_type_meta(info, &json!({"kind": "Pod", "apiVersion": "v1"})).is_ok());
        assert!(check_type_meta(info, &json!({})).is_ok());
        assert_eq!(
            check_type_meta(info, &json!({"kind": "Service"}))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            check_type_meta(info, &json!({"kind": "Pod", "apiVersion": "apps/v1"}))
                .unwrap_err()
                .code,
            400
        );
    }
}

/// Paths of duplicate keys in a JSON document (`metadata`, `spec.template`), for
/// `fieldValidation` (Kubernetes' strict decoding also rejects duplicate fields).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    use serde::de::DeserializeSeed;
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = DupSeed {
        path: String::new(),
        out: &mut out,
    }
    .deserialize(&mut de);
    out
}

struct DupSeed<'a> {
    path: String,
    out: &'a mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DupSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DupSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                self.out.push(path.clone());
            }
            map.next_value_seed(DupSeed {
                path,
                out: self.out,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(DupSeed {
                path: format!("{}[{i}]", self.path),
                out: self.out,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod dup_tests {
    use super::duplicate_fields;

    #[test]
    fn finds_duplicate_keys_with_paths() {
        let body =
            br#"{"metadata":{"name":"x"},"metadata":{"name":"y"},"spec":{"a":[{"b":1,"b":2}]}}"#;
        assert_eq!(duplicate_fields(body), vec!["metadata", "spec.a[0].b"]);
        assert!(duplicate_fields(br#"{"a":{"a":1}}"#).is_empty());
        assert!(duplicate_fields(b"{bad").is_empty());
    }
}
