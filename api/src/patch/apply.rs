//! Server-side apply, following structured-merge-diff: the applied configuration is merged into the
//! live object by list/map semantics from [`crate::patch::schema`]; fields this manager applied
//! before and omits now are pruned unless someone else owns them; fields other managers own that
//! the apply changes are conflicts (409) unless `force`, which moves ownership.
//!
//! ```text
//! applied ──strip──► config ──field_set──► new set of the manager
//! live ⊕ config (merge) ──prune(last set − owned by anyone)──► candidate
//! compare(live, candidate) ─► changed ∩ others' sets = conflicts ─► 409 | force: others lose them
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::patch::managed_fields::{self as mf, Element, FieldSet, ManagedEntry, Path};
use crate::patch::schema::{FieldMeta, Node, Shape};
use crate::patch::PatchError;

/// Metadata fields the server owns; never part of a field set.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// One conflict: the manager (as printed) and the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager, e.g. `"kubectl-client-side-apply" using apps/v1`.
    pub manager: String,
    /// The field, e.g. `.spec.replicas`.
    pub field: String,
}

enum ListKind {
    Map(Vec<&'static str>),
    Set,
    Atomic,
}

fn list_kind(meta: &FieldMeta) -> ListKind {
    match meta.list_type {
        Some("map") if !meta.list_map_keys.is_empty() => ListKind::Map(meta.list_map_keys.to_vec()),
        Some("set") => ListKind::Set,
        Some("atomic") => ListKind::Atomic,
        _ if meta.merges() => match meta.merge_key {
            Some(k) => ListKind::Map(vec![k]),
            None => ListKind::Set,
        },
        _ => ListKind::Atomic,
    }
}

fn item_key(item: &Value, keys: &[&str], items: Option<Node>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for k in keys {
        match item.get(*k) {
            Some(v) if !v.is_null() => {
                out.insert((*k).to_string(), v.clone());
            }
            _ => {
                if let Some(d) = items
                    .and_then(|n| n.name)
                    .and_then(|n| crate::patch::schema::key_default(n, k))
                {
                    out.insert((*k).to_string(), Value::String(d.to_string()));
                }
            }
        }
    }
    out
}

fn element_of(item: &Value, meta: &FieldMeta, items: Option<Node>) -> Option<Element> {
    match list_kind(meta) {
        ListKind::Set => Some(mf::value(item)),
        ListKind::Map(keys) => Some(mf::key(&item_key(item, &keys, items))),
        ListKind::Atomic => None,
    }
}

fn is_atomic_map(meta: &FieldMeta, node: Option<Node>) -> bool {
    meta.map_type == Some("atomic") || node.is_some_and(|n| n.is_atomic_type())
}

fn child(node: Option<Node>, key: &str) -> (Option<Node>, FieldMeta, bool) {
    match node {
        Some(n) if n.shape() == Shape::Struct => match n.field(key) {
            Some((c, m)) => (Some(c), m, true),
            None => (None, FieldMeta::default(), false),
        },
        Some(n) if n.shape() == Shape::Map => (n.values(), FieldMeta::default(), false),
        _ => (None, FieldMeta::default(), false),
    }
}

/// Every tracked path of `v` with the leaf value (None for members that have children).
pub fn flatten(v: &Value, node: Option<Node>) -> BTreeMap<Path, Option<Value>> {
    let mut out = BTreeMap::new();
    walk(v, node, FieldMeta::default(), &mut Vec::new(), &mut out);
    out
}

fn walk(
    v: &Value,
    node: Option<Node>,
    meta: FieldMeta,
    path: &mut Path,
    out: &mut BTreeMap<Path, Option<Value>>,
) {
    match v {
        Value::Object(m) => {
            if !path.is_empty() && is_atomic_map(&meta, node) {
                out.insert(path.clone(), Some(v.clone()));
                return;
            }
            for (k, c) in m {
                path.push(mf::field(k));
                let (cn, cm, declared) = child(node, k);
                if c.is_null() || c.as_object().is_some_and(Map::is_empty) {
                    out.insert(path.clone(), Some(c.clone()));
                } else {
                    walk(c, cn, cm, path, out);
                    if !declared {
                        out.entry(path.clone()).or_insert(None);
                    }
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let items_node = node.and_then(|n| n.items());
            match list_kind(&meta) {
                ListKind::Atomic => {
                    out.insert(path.clone(), Some(v.clone()));
                }
                ListKind::Set => {
                    for it in items {
                        path.push(mf::value(it));
                        out.insert(path.clone(), Some(it.clone()));
                        path.pop();
                    }
                }
                ListKind::Map(keys) => {
                    for it in items {
                        path.push(mf::key(&item_key(it, &keys, items_node)));
                        walk(it, items_node, FieldMeta::default(), path, out);
                        out.entry(path.clone()).or_insert(None);
                        path.pop();
                    }
                }
            }
        }
        _ => {
            out.insert(path.clone(), Some(v.clone()));
        }
    }
}

/// The paths of `v` (what applying `v` claims).
pub fn field_set(v: &Value, node: Option<Node>) -> FieldSet {
    flatten(v, node).into_keys().collect()
}

/// Removes apiVersion, kind and the server-owned metadata; drops an emptied `metadata`.
pub fn strip_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    strip_server_meta(&mut v);
    v
}

/// Removes the server-managed metadata fields, and `metadata` itself when nothing is left.
fn strip_server_meta(v: &mut Value) {
    let Some(o) = v.as_object_mut() else { return };
    let empty = match o.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => {
            for k in SERVER_META {
                meta.remove(*k);
            }
            meta.is_empty()
        }
        None => false,
    };
    if empty {
        o.remove("metadata");
    }
}

/// [`strip_meta`] of both objects, leaving out the top-level fields that are equal in both:
/// they flatten to identical entries, so they can neither change nor disappear, and an update
/// that touches only metadata (or only status) then skips copying and flattening the rest.
fn strip_meta_differing(old: &Value, new: &Value) -> (Value, Value) {
    let (Some(om), Some(nm)) = (old.as_object(), new.as_object()) else {
        return (strip_meta(old), strip_meta(new));
    };
    let keep = |this: &Map<String, Value>, other: &Map<String, Value>| -> Value {
        let m: Map<String, Value> = this
            .iter()
            .filter(|(k, v)| {
                k.as_str() != "apiVersion" && k.as_str() != "kind" && other.get(*k) != Some(*v)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut v = Value::Object(m);
        strip_server_meta(&mut v);
        v
    };
    (keep(om, nm), keep(nm, om))
}

/// Merges the applied `cfg` into `live`.
fn merge(live: &Value, cfg: &Value, node: Option<Node>, meta: FieldMeta) -> Value {
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) => {
            if is_atomic_map(&meta, node) {
                return cfg.clone();
            }
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                let (cn, cm, _) = child(node, k);
                let merged = match out.get(k) {
                    Some(lv) => merge(lv, cv, cn, cm),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            let items = node.and_then(|n| n.items());
            match list_kind(&meta) {
                ListKind::Atomic => cfg.clone(),
                _ => Value::Array(merge_list(
                    l,
                    c,
                    |v| element_of(v, &meta, items),
                    |lv, cv| merge(lv, cv, items, FieldMeta::default()),
                )),
            }
        }
        _ => cfg.clone(),
    }
}

/// structured-merge-diff's list order: live-only items keep their place, applied items come in
/// applied order.
fn merge_list(
    l: &[Value],
    c: &[Value],
    key: impl Fn(&Value) -> Option<Element>,
    merge_item: impl Fn(&Value, &Value) -> Value,
) -> Vec<Value> {
    let lkeys: Vec<Option<Element>> = l.iter().map(&key).collect();
    let ckeys: Vec<Option<Element>> = c.iter().map(&key).collect();
    let mut out = Vec::with_capacity(l.len() + c.len());
    let mut emitted = vec![false; c.len()];
    let mut ri = 0;
    let emit = |j: usize, out: &mut Vec<Value>| {
        let live = lkeys
            .iter()
            .position(|k| k.is_some() && *k == ckeys[j])
            .map(|i| &l[i]);
        out.push(match live {
            Some(lv) => merge_item(lv, &c[j]),
            None => c[j].clone(),
        });
    };
    for (li, lk) in lkeys.iter().enumerate() {
        match ckeys.iter().position(|k| k.is_some() && k == lk) {
            None => out.push(l[li].clone()),
            Some(cj) => {
                while ri <= cj {
                    if !emitted[ri] {
                        emit(ri, &mut out);
                        emitted[ri] = true;
                    }
                    ri += 1;
                }
            }
        }
    }
    for (j, done) in emitted.iter().enumerate() {
        if !done {
            emit(j, &mut out);
        }
    }
    out
}

/// Removes the item at `path` (a field, a keyed list element or a set value) from `v`.
fn remove_path(v: &mut Value, path: &[Element], node: Option<Node>, meta: FieldMeta) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(f) = first.strip_prefix("f:") {
        let Some(obj) = v.as_object_mut() else { return };
        if rest.is_empty() {
            obj.remove(f);
            return;
        }
        let (cn, cm, _) = child(node, f);
        if let Some(c) = obj.get_mut(f) {
            remove_path(c, rest, cn, cm);
        }
    } else if first.starts_with("k:") || first.starts_with("v:") {
        let items = node.and_then(|n| n.items());
        let Some(arr) = v.as_array_mut() else { return };
        let pos = arr
            .iter()
            .position(|it| element_of(it, &meta, items).as_deref() == Some(first.as_str()));
        if let Some(i) = pos {
            if rest.is_empty() {
                arr.remove(i);
            } else {
                remove_path(&mut arr[i], rest, items, FieldMeta::default());
            }
        }
    }
}

fn owned_by_anyone(path: &Path, entries: &[ManagedEntry]) -> bool {
    entries.iter().any(|e| {
        e.fields
            .range(path.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    })
}

/// The changes from `old` to `new`: (added ∪ modified, removed).
pub fn compare(old: &Value, new: &Value, node: Option<Node>) -> (FieldSet, FieldSet) {
    let (o, n) = strip_meta_differing(old, new);
    let (o, n) = (flatten(&o, node), flatten(&n, node));
    let changed = n
        .iter()
        .filter(|(p, v)| o.get(*p).is_none_or(|ov| ov != *v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed = o.keys().filter(|p| !n.contains_key(*p)).cloned().collect();
    (changed, removed)
}

/// Input to [`apply`].
pub struct ApplyRequest<'a> {
    /// The live object, or None to create.
    pub live: Option<&'a Value>,
    /// The applied configuration (already decoded).
    pub config: Value,
    /// The field manager.
    pub manager: &'a str,
    /// `apiVersion` of the kind.
    pub api_version: String,
    /// Whether the kind has a status subresource (status is then not applied).
    pub has_status: bool,
    /// Take ownership of conflicting fields.
    pub force: bool,
    /// The time of the request, RFC 3339.
    pub time: String,
}

/// Server-side apply; returns the merged object with `metadata.managedFields` updated.
pub fn apply(req: ApplyRequest<'_>, node: Option<Node>) -> Result<Value, PatchError> {
    let mut config = req.config;
    if req.has_status {
        if let Some(o) = config.as_object_mut() {
            o.remove("status");
        }
    }
    let new_set = field_set(&strip_meta(&config), node);
    let me = ManagedEntry {
        manager: req.manager.to_string(),
        operation: "Apply".into(),
        api_version: req.api_version.clone(),
        time: Some(req.time.clone()),
        subresource: String::new(),
        fields: new_set,
    };
    let Some(live) = req.live else {
        mf::write(&mut config, vec![me]);
        return Ok(config);
    };
    let mut entries = mf::read(live);
    if entries.is_empty() {
        entries.push(ManagedEntry {
            manager: "before-first-apply".into(),
            operation: "Update".into(),
            api_version: req.api_version.clone(),
            time: None,
            subresource: String::new(),
            fields: field_set(&strip_meta(live), node),
        });
    }
    let last_set = entries
        .iter()
        .position(|e| e.same_manager(&me))
        .map(|i| entries.remove(i).fields)
        .unwrap_or_default();
    let mut merged = merge(live, &config, node, FieldMeta::default());
    if let Some(o) = merged.as_object_mut() {
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
    }
    // prune what this manager applied before, omits now, and nobody else owns
    entries.push(me);
    let mut removed_roots: Vec<&Path> = Vec::new();
    for path in &last_set {
        if removed_roots.iter().any(|r| path.starts_with(r)) || owned_by_anyone(path, &entries) {
            continue;
        }
        remove_path(&mut merged, path, node, FieldMeta::default());
        removed_roots.push(path);
    }
    let me = entries
        .pop()
        .unwrap_or_else(|| unreachable_entry(req.manager));
    let (changed, removed) = compare(live, &merged, node);
    let mut conflicts = Vec::new();
    for e in &entries {
        for p in e.fields.intersection(&changed) {
            conflicts.push(Conflict {
                manager: e.display(),
                field: mf::path_string(p),
            });
        }
    }
    if !conflicts.is_empty() && !req.force {
        conflicts.sort_by(|a, b| a.manager.cmp(&b.manager));
        return Err(PatchError::Conflicts(conflicts));
    }
    for e in &mut entries {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    entries.push(me);
    mf::write(&mut merged, entries);
    Ok(merged)
}

fn unreachable_entry(manager: &str) -> ManagedEntry {
    ManagedEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: String::new(),
        time: None,
        subresource: String::new(),
        fields: FieldSet::new(),
    }
}

/// Records a non-apply write by `manager` in `new`'s `metadata.managedFields`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    time: String,
    node: Option<Node>,
) {
    let old_entries = old.map(mf::read).unwrap_or_default();
    let incoming = mf::read(new);
    let sent = new.pointer("/metadata/managedFields").is_some();
    let mut entries = if sent && incoming != old_entries {
        incoming
    } else {
        old_entries
    };
    let empty = Value::Object(Map::new());
    let (changed, removed) = compare(old.unwrap_or(&empty), new, node);
    let me_probe = ManagedEntry {
        manager: manager.to_string(),
        operation: operation.to_string(),
        api_version: api_version.to_string(),
        time: Some(time),
        subresource: String::new(),
        fields: FieldSet::new(),
    };
    let mut me = entries
        .iter()
        .position(|e| e.same_manager(&me_probe))
        .map(|i| entries.remove(i))
        .unwrap_or_else(|| me_probe.clone());
    for e in &mut entries {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let before = me.fields.clone();
    me.fields.extend(changed);
    me.fields.retain(|p| !removed.contains(p));
    if me.fields != before || me.time.is_none() {
        me.time = me_probe.time;
    }
    entries.push(me);
    mf::write(new, entries);
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
