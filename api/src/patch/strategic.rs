//! Strategic merge patch, as apimachinery's `strategicpatch.StrategicMergePatch` applies it to a
//! live object: per-field merge keys and strategies from [`crate::patch::schema`], the directives
//! `$patch` (replace / delete / merge), `$retainKeys`, `$setElementOrder/<list>`,
//! `$deleteFromPrimitiveList/<list>`, and `null` = delete.
//!
//! ```text
//! merge_map(original, patch, node)
//!   ├─ $patch on the map → replace / delete
//!   ├─ $retainKeys       → drop original keys not listed
//!   ├─ $setElementOrder/ → merge that list now, then order it as listed
//!   └─ every other key   → null deletes; maps recurse; lists merge by key (strategy merge) or replace
//! ```

use serde_json::{Map, Value};

use crate::patch::schema::Node;
use crate::patch::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `original`, typed by `node` (None: untyped, lists replace).
pub fn apply(original: &Value, patch: &[u8], node: Option<Node>) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(patch).map_err(|e| PatchError::Decode(e.to_string()))?;
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadJsonDoc);
    };
    let Value::Object(original) = original.clone() else {
        return Err(PatchError::BadJsonDoc);
    };
    merge_map(original, patch, node).map(Value::Object)
}

/// Merges `patch` into `original` (both objects).
pub fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Option<Node>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(d) = patch.remove(DIRECTIVE) {
        return match d.as_str() {
            Some("replace") => Ok(clean_map(patch)),
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::BadPatchType(d.to_string())),
        };
    }
    if let Some(rk) = patch.remove(RETAIN_KEYS) {
        let keys: Vec<&str> = rk
            .as_array()
            .ok_or(PatchError::BadRetainKeys)?
            .iter()
            .map(|k| k.as_str().ok_or(PatchError::BadRetainKeys))
            .collect::<Result<_, _>>()?;
        original.retain(|k, _| keys.contains(&k.as_str()));
    }
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in order_keys {
        let field = key[SET_ORDER.len()..].to_string();
        let order = match patch.remove(&key) {
            Some(Value::Array(a)) => a,
            _ => return Err(PatchError::BadSetElementOrder),
        };
        let (patch_list, in_patch) = match patch.remove(&field) {
            Some(Value::Array(a)) => (a, true),
            Some(Value::Null) => {
                original.remove(&field);
                continue;
            }
            None => (Vec::new(), false),
            Some(_) => return Err(PatchError::BadSetElementOrder),
        };
        let orig_list = match original.remove(&field) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        if orig_list.is_empty() && patch_list.is_empty() {
            continue;
        }
        let (child, meta) = child_of(node, &field);
        let items = child.and_then(|c| c.items());
        let merged = if meta.merges() {
            merge_slice(orig_list.clone(), patch_list, items, meta.merge_key)?
        } else if in_patch {
            clean_list(patch_list)
        } else {
            orig_list.clone()
        };
        let mk = meta.merge_key;
        let (in_order, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|v| index_of(&order, v, mk).is_some());
        let merged = normalize_order(in_order, server_only, &order, &orig_list, mk);
        original.insert(field, Value::Array(merged));
    }
    for (key, pv) in patch {
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE) {
            let del = pv.as_array().ok_or(PatchError::BadPrimitiveList)?;
            if let Some(Value::Array(orig)) = original.get_mut(field) {
                orig.retain(|x| !del.contains(x));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            original.remove(&key);
            continue;
        }
        let merged = match (original.remove(&key), pv) {
            (None, Value::Object(p)) => match p.get(DIRECTIVE).and_then(Value::as_str) {
                Some("delete") => continue,
                _ => Value::Object(clean_map(p)),
            },
            (None, p) => clean(p),
            (Some(Value::Object(o)), Value::Object(p)) => {
                let (child, _) = child_of(node, &key);
                Value::Object(merge_map(o, p, child)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                let (child, meta) = child_of(node, &key);
                if meta.merges() {
                    Value::Array(merge_slice(
                        o,
                        p,
                        child.and_then(|c| c.items()),
                        meta.merge_key,
                    )?)
                } else {
                    Value::Array(clean_list(p))
                }
            }
            (Some(_), p) => clean(p),
        };
        original.insert(key, merged);
    }
    Ok(original)
}

fn child_of(node: Option<Node>, key: &str) -> (Option<Node>, crate::patch::schema::FieldMeta) {
    match node.and_then(|n| n.child(key)) {
        Some((c, m)) => (Some(c), m),
        None => (None, Default::default()),
    }
}

/// Merges two lists of a field with strategy `merge`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Option<Node>,
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = original.iter().chain(patch.iter()).any(Value::is_object);
    if !maps {
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
            merged.into_iter().partition(|v| patch.contains(v));
        return Ok(normalize_order(
            in_patch,
            server_only,
            &patch,
            &original,
            None,
        ));
    }
    let mk = merge_key.ok_or(PatchError::NoMergeKeyDeclared)?;
    let (original, patch) = apply_list_directives(original, patch, mk)?;
    let mut merged = original.clone();
    for p in &patch {
        let Value::Object(pm) = p else {
            return Err(PatchError::NoMergeKey(p.to_string(), mk.to_string()));
        };
        let Some(kv) = pm.get(mk) else {
            return Err(PatchError::NoMergeKey(p.to_string(), mk.to_string()));
        };
        match merged.iter().position(|o| o.get(mk) == Some(kv)) {
            Some(i) => {
                let o = match std::mem::take(&mut merged[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_map(o, pm.clone(), items)?);
            }
            None => merged.push(Value::Object(clean_map(pm.clone()))),
        }
    }
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| index_of(&patch, v, Some(mk)).is_some());
    Ok(normalize_order(
        in_patch,
        server_only,
        &patch,
        &original,
        Some(mk),
    ))
}

/// Handles `{"$patch": "delete"|"replace"|"merge"}` elements of a keyed list.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    mk: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let directive = v.get(DIRECTIVE).cloned();
        match directive {
            None => rest.push(v),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let kv = v
                        .get(mk)
                        .ok_or_else(|| PatchError::DeleteWithoutMergeKey(v.to_string()))?;
                    original.retain(|o| o.get(mk) != Some(kv));
                }
                Some("replace") => replace = true,
                Some("merge") => return Err(PatchError::MergeDirectiveInList),
                _ => return Err(PatchError::BadPatchType(d.to_string())),
            },
        }
    }
    if replace {
        return Ok((clean_list(rest), Vec::new()));
    }
    Ok((original, rest))
}

fn index_of(list: &[Value], item: &Value, mk: Option<&str>) -> Option<usize> {
    match mk {
        Some(k) => {
            let kv = item.get(k)?;
            list.iter().position(|v| v.get(k) == Some(kv))
        }
        None => list.iter().position(|v| v == item),
    }
}

/// apimachinery's `normalizeElementOrder`: patch items in patch order, server-only items in server
/// order, interleaved so that server-only items keep their place relative to the server list.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    mk: Option<&str>,
) -> Vec<Value> {
    let pos = |list: &[Value], v: &Value| index_of(list, v, mk).map_or(-1, |i| i as i64);
    patch_items.sort_by_key(|v| pos(patch_order, v));
    server_only.sort_by_key(|v| pos(server_order, v));
    let size = patch_items.len() + server_only.len();
    let mut out = Vec::with_capacity(size);
    let mut left = patch_items.into_iter().peekable();
    let mut right = server_only.into_iter().peekable();
    for _ in 0..size {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some(l), Some(r)) => {
                let (li, ri) = (pos(server_order, l), pos(server_order, r));
                li >= 0 && ri >= 0 && li < ri
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

/// Drops directives and `null`s from a value taken verbatim from the patch.
fn clean(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(clean_map(m)),
        Value::Array(a) => Value::Array(clean_list(a)),
        other => other,
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| {
            !v.is_null()
                && k != DIRECTIVE
                && k != RETAIN_KEYS
                && !k.starts_with(SET_ORDER)
                && !k.starts_with(DELETE_PRIMITIVE)
        })
        .map(|(k, v)| (k, clean(v)))
        .collect()
}

fn clean_list(a: Vec<Value>) -> Vec<Value> {
    a.into_iter()
        .filter(|v| v.get(DIRECTIVE).is_none())
        .map(clean)
        .collect()
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
