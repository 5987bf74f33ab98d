//! LIST: label and field selectors, `limit`/`continue` pagination at one revision,
//! `resourceVersion` + `resourceVersionMatch`, Table output.
//!
//! A JSON list is assembled from the stored bytes without decoding the objects into trees:
//! each object's top level is scanned once (`RawValue`) to find `metadata`, and its
//! `resourceVersion` is spliced in. Objects are decoded only to evaluate selectors or to
//! render a Table. The assembly runs on the blocking pool, so a list of 100,000 objects
//! neither holds a runtime thread nor multiplies the list's size in memory.

use axum::http::{header, StatusCode};
use base64::Engine as _;
use navarch_api::selectors::{FieldSelector, LabelSelector};
use navarch_api::status::ApiError;
use serde_json::{json, Map, Value};

use super::{now, ResourceRequest};
use crate::negotiation::{self, Output};
use crate::objects::{self, parse_rv};
use crate::response::{json, storage_error, HandlerResult};
use crate::storage::{ListOptions, ReadRevision, Revision, StoredObject};
use navarch_api::resources::ResourceInfo;

/// The label and field selectors of a request.
pub struct Selectors {
    label: Option<LabelSelector>,
    field: Option<FieldSelector>,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` (400 on bad syntax or unsupported fields).
    pub fn from_request(req: &ResourceRequest) -> Result<Self, ApiError> {
        let label = match req.param("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(LabelSelector::parse(s)?),
            None => None,
        };
        let field = match req.param("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(FieldSelector::parse(s, req.info)?),
            None => None,
        };
        Ok(Self { label, field })
    }

    /// Whether no selector is set.
    pub fn is_empty(&self) -> bool {
        self.label.is_none() && self.field.is_none()
    }

    /// Whether `obj` matches both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.label.as_ref().is_none_or(|l| l.matches_object(obj))
            && self.field.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// Which state a list (or the initial state of a watch) reads: `resourceVersion` and
/// `resourceVersionMatch` as Kubernetes defines them.
pub fn read_revision(req: &ResourceRequest) -> Result<ReadRevision, ApiError> {
    let rv = req.param("resourceVersion").filter(|s| !s.is_empty());
    let matching = req.param("resourceVersionMatch").filter(|s| !s.is_empty());
    match (rv, matching) {
        (None, None) => Ok(ReadRevision::Latest),
        (None, Some(_)) => Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (Some("0"), None) | (Some("0"), Some("NotOlderThan")) => Ok(ReadRevision::Any),
        (Some(rv), None) | (Some(rv), Some("NotOlderThan")) => {
            Ok(ReadRevision::NotOlderThan(parse_rv(rv)?))
        }
        (Some("0"), Some("Exact")) => Err(ApiError::bad_request(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
        )),
        (Some(rv), Some("Exact")) => Ok(ReadRevision::Exact(parse_rv(rv)?)),
        (Some(_), Some(other)) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// A continue token: the revision of the first page and the last key returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueToken {
    /// Revision all pages are read at.
    pub revision: Revision,
    /// Continue strictly after this key.
    pub start_after: String,
}

impl ContinueToken {
    /// Opaque encoding (base64url of a small JSON document).
    pub fn encode(&self) -> String {
        let doc = json!({"v": "meta.k8s.io/v1", "rv": self.revision, "start": self.start_after});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
    }

    /// Decodes a token (400 when it is not one of ours).
    pub fn decode(s: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| bad())?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let revision = doc.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
        let start_after = doc
            .get("start")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string();
        Ok(Self {
            revision,
            start_after,
        })
    }
}

/// One collected list.
pub struct Collected {
    /// Matching objects, as stored.
    pub items: Vec<StoredObject>,
    /// The revision read at.
    pub revision: Revision,
    /// Continue token when more remain.
    pub continue_token: Option<String>,
}

/// Reads the matching objects of the request's collection.
pub async fn collect(req: &ResourceRequest, selectors: &Selectors) -> Result<Collected, ApiError> {
    let info = req.info;
    let limit = match req.param("limit").filter(|s| !s.is_empty()) {
        Some(l) => {
            let n: i64 = l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?;
            usize::try_from(n).ok().filter(|n| *n > 0)
        }
        None => None,
    };
    let mut opts = match req.param("continue").filter(|s| !s.is_empty()) {
        Some(tok) => {
            if req.param("resourceVersion").is_some_and(|s| !s.is_empty()) {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let t = ContinueToken::decode(tok)?;
            ListOptions {
                revision: ReadRevision::Exact(t.revision),
                limit,
                start_after: Some(t.start_after),
            }
        }
        None => ListOptions {
            revision: read_revision(req)?,
            limit,
            start_after: None,
        },
    };
    let prefix = info.prefix(req.namespace.as_deref());
    let mut items = Vec::new();
    let mut revision = None;
    let mut next = None;
    'pages: loop {
        let page = req
            .state
            .storage
            .list(&prefix, &opts)
            .await
            .map_err(|e| match e {
                crate::storage::StorageError::Expired { .. } if opts.start_after.is_some() => {
                    ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                }
                other => storage_error(info, "", other),
            })?;
        let rev = *revision.get_or_insert(page.revision);
        let count = page.items.len();
        for (i, stored) in page.items.iter().enumerate() {
            if selectors.is_empty() || selectors.matches(&objects::from_stored(info, stored)?) {
                items.push(stored.clone());
            }
            if limit.is_some_and(|l| items.len() >= l) {
                if i + 1 < count || page.next_key.is_some() {
                    next = Some(ContinueToken {
                        revision: rev,
                        start_after: stored.key.clone(),
                    });
                }
                break 'pages;
            }
        }
        match (page.next_key, limit) {
            (Some(k), Some(_)) if count > 0 => {
                opts.start_after = Some(k);
                opts.revision = ReadRevision::Exact(rev);
            }
            _ => break,
        }
    }
    Ok(Collected {
        items,
        revision: revision.unwrap_or(0),
        continue_token: next.map(|t| t.encode()),
    })
}

/// Fills a Table's rows' `object` as `includeObject` asks (`None`, `Object`, default `Metadata`).
pub fn include_objects(table: &mut Value, objects: &[Value], include: Option<&str>) {
    let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) else {
        return;
    };
    for (row, obj) in rows.iter_mut().zip(objects) {
        let Value::Object(r) = row else { continue };
        match include {
            Some("None") => {
                r.remove("object");
            }
            Some("Object") => {
                r.insert("object".into(), obj.clone());
            }
            _ => {}
        }
    }
}

/// `GET /…/{plural}` (not a watch).
pub async fn list(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let selectors = Selectors::from_request(&req)?;
    let collected = collect(&req, &selectors).await?;
    let mut meta = Map::new();
    meta.insert(
        "resourceVersion".into(),
        Value::String(collected.revision.to_string()),
    );
    if let Some(c) = &collected.continue_token {
        meta.insert("continue".into(), Value::String(c.clone()));
    }
    match negotiation::resource_output(req.header(header::ACCEPT)) {
        Output::Table => {
            let objects = collected
                .items
                .iter()
                .map(|s| objects::from_stored(info, s))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&Value> = objects.iter().collect();
            let mut table = crate::model::to_table(info, &refs, now());
            include_objects(&mut table, &objects, req.param("includeObject"));
            if let Value::Object(t) = &mut table {
                t.insert("metadata".into(), Value::Object(meta));
            }
            Ok(json(StatusCode::OK, &table))
        }
        Output::Object => {
            let head =
                json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": meta});
            let items = collected.items;
            let body = tokio::task::spawn_blocking(move || list_json(info, &head, &items))
                .await
                .map_err(|e| ApiError::internal(&format!("list assembly failed: {e}")))??;
            Ok(crate::response::json_bytes(
                StatusCode::OK,
                body,
                "application/json",
            ))
        }
    }
}

/// `{"kind":…,"apiVersion":…,"metadata":…,"items":[…]}` from the stored objects.
fn list_json(
    info: &'static ResourceInfo,
    head: &Value,
    items: &[StoredObject],
) -> Result<Vec<u8>, ApiError> {
    let mut out = serde_json::to_vec(head).unwrap_or_default();
    // Replace the closing brace of the head with the items array.
    out.pop();
    let total: usize = items.iter().map(|s| s.value.len() + 32).sum();
    out.reserve(total + 16);
    out.extend_from_slice(b",\"items\":[");
    for (i, stored) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        append_object(info, stored, &mut out)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Appends one stored object with its `resourceVersion` (and type meta) as the API shows it.
pub fn append_object(
    info: &ResourceInfo,
    stored: &StoredObject,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    if let Some(offset) = splice_point(info, &stored.value) {
        let (before, after) = stored.value.split_at(offset);
        out.extend_from_slice(before);
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(stored.mod_revision.to_string().as_bytes());
        out.push(b'"');
        if !after.trim_ascii_start().starts_with(b"}") {
            out.push(b',');
        }
        out.extend_from_slice(after);
        return Ok(());
    }
    // Anything unusual (no type meta, a stored resourceVersion, not an object): decode.
    let obj = objects::from_stored(info, stored)?;
    serde_json::to_writer(out, &obj).map_err(|e| ApiError::internal(&e.to_string()))
}

/// The byte offset just inside the top-level `metadata` object's `{`, when the stored object
/// can be shown as it is plus a spliced `resourceVersion`: it carries this resource's `kind`
/// and `apiVersion`, and its metadata has no `resourceVersion` of its own.
fn splice_point(info: &ResourceInfo, value: &[u8]) -> Option<usize> {
    let top: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(value).ok()?;
    let is = |k: &str, want: &str| {
        top.get(k)
            .and_then(|r| serde_json::from_str::<&str>(r.get()).ok())
            .is_some_and(|v| v == want)
    };
    if !is("kind", info.kind) || !is("apiVersion", &info.api_version()) {
        return None;
    }
    let meta = top.get("metadata")?.get();
    if !meta.starts_with('{') || meta.contains("\"resourceVersion\"") {
        return None;
    }
    // `meta` borrows from `value`: its position is the difference of the addresses.
    let start = meta.as_ptr() as usize - value.as_ptr() as usize;
    Some(start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = ContinueToken {
            revision: 42,
            start_after: "/registry/pods/default/a".into(),
        };
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        assert_eq!(ContinueToken::decode("!!!").unwrap_err().code, 400);
        assert_eq!(ContinueToken::decode("e30").unwrap_err().code, 400);
    }

    fn stored(value: &str, rev: i64) -> StoredObject {
        StoredObject {
            key: "/registry/configmaps/default/a".into(),
            value: bytes::Bytes::from(value.to_string()),
            mod_revision: rev,
            create_revision: 1,
        }
    }

    #[test]
    fn raw_assembly_equals_decoding_every_object() {
        let info =
            navarch_api::resources::find("", "v1", "configmaps").expect("configmaps registered");
        let cases = [
            // The usual stored form: type meta, metadata without resourceVersion.
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","uid":"u"},"data":{"k":"metadata"}}"#,
            // Empty metadata, whitespace, nested "metadata" keys inside data strings.
            r#"{ "kind" : "ConfigMap", "apiVersion":"v1", "data":{"x":"\"metadata\":{"}, "metadata" : { } }"#,
            // No type meta stored: falls back to decoding.
            r#"{"metadata":{"name":"b"}}"#,
            // A stale resourceVersion stored: replaced, not duplicated.
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"3"}}"#,
        ];
        let items: Vec<StoredObject> = cases
            .iter()
            .enumerate()
            .map(|(i, c)| stored(c, 10 + i as i64))
            .collect();
        let head =
            json!({"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"20"}});
        let raw = list_json(info, &head, &items).unwrap();
        let got: Value = serde_json::from_slice(&raw).expect("valid JSON");
        let want_items: Vec<Value> = items
            .iter()
            .map(|s| objects::from_stored(info, s).unwrap())
            .collect();
        assert_eq!(got["items"], Value::Array(want_items));
        assert_eq!(got["metadata"]["resourceVersion"], "20");
        assert_eq!(got["kind"], "ConfigMapList");
        assert_eq!(got["items"][3]["metadata"]["resourceVersion"], "13");
        // Corrupt stored bytes are an error, not a broken body.
        assert!(list_json(info, &head, &[stored("{not json", 1)]).is_err());
    }
}
