//! Per-field patch metadata (merge keys, patch strategies, list and map types) and a navigator over
//! the generated component schemas, shared by strategic merge patch, server-side apply and OpenAPI.
//!
//! The table mirrors the `+patchStrategy`, `+patchMergeKey`, `+listType`, `+listMapKey` and
//! `+mapType` markers of the Kubernetes Go types we serve; OpenAPI publishes it as the
//! `x-kubernetes-*` extensions and the patch engines read it through [`Node`].

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// Patch metadata of one field of one schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldMeta {
    /// `x-kubernetes-patch-strategy`, e.g. `merge`, `retainKeys`, `merge,retainKeys`.
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`, e.g. `name`.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`.
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys` for `list_type == "map"`.
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type`: `atomic` or `granular`.
    pub map_type: Option<&'static str>,
}

impl FieldMeta {
    /// Whether the strategy names `merge` (lists merge by key or as sets).
    pub fn merges(&self) -> bool {
        self.strategy_has("merge")
    }

    /// Whether the strategy names `retainKeys`.
    pub fn retains_keys(&self) -> bool {
        self.strategy_has("retainKeys")
    }

    fn strategy_has(&self, s: &str) -> bool {
        self.patch_strategy
            .is_some_and(|p| p.split(',').any(|part| part == s))
    }
}

const fn merge_by(key: &'static str) -> FieldMeta {
    FieldMeta {
        patch_strategy: Some("merge"),
        merge_key: Some(key),
        list_type: None,
        list_map_keys: &[],
        map_type: None,
    }
}

const fn merge_map(key: &'static str, keys: &'static [&'static str]) -> FieldMeta {
    FieldMeta {
        patch_strategy: Some("merge"),
        merge_key: Some(key),
        list_type: Some("map"),
        list_map_keys: keys,
        map_type: None,
    }
}

const fn list_type(t: &'static str) -> FieldMeta {
    FieldMeta {
        patch_strategy: None,
        merge_key: None,
        list_type: Some(t),
        list_map_keys: &[],
        map_type: None,
    }
}

const fn map_type(t: &'static str) -> FieldMeta {
    FieldMeta {
        patch_strategy: None,
        merge_key: None,
        list_type: None,
        list_map_keys: &[],
        map_type: Some(t),
    }
}

const fn strategy(s: &'static str) -> FieldMeta {
    FieldMeta {
        patch_strategy: Some(s),
        merge_key: None,
        list_type: None,
        list_map_keys: &[],
        map_type: None,
    }
}

const CORE: &str = "io.k8s.api.core.v1.";
const APPS: &str = "io.k8s.api.apps.v1.";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

/// `(schema short name with package prefix, field, metadata)`.
static FIELDS: &[(&str, &str, &str, FieldMeta)] = &[
    // core/v1 containers
    (CORE, "Container", "env", merge_by("name")),
    (
        CORE,
        "Container",
        "ports",
        merge_map("containerPort", &["containerPort", "protocol"]),
    ),
    (CORE, "Container", "volumeDevices", merge_by("devicePath")),
    (CORE, "Container", "volumeMounts", merge_by("mountPath")),
    (CORE, "Container", "resizePolicy", list_type("atomic")),
    (CORE, "EphemeralContainer", "env", merge_by("name")),
    (
        CORE,
        "EphemeralContainer",
        "ports",
        merge_map("containerPort", &["containerPort", "protocol"]),
    ),
    (
        CORE,
        "EphemeralContainer",
        "volumeDevices",
        merge_by("devicePath"),
    ),
    (
        CORE,
        "EphemeralContainer",
        "volumeMounts",
        merge_by("mountPath"),
    ),
    (
        CORE,
        "EphemeralContainer",
        "resizePolicy",
        list_type("atomic"),
    ),
    // core/v1 pods
    (CORE, "PodSpec", "containers", merge_by("name")),
    (CORE, "PodSpec", "initContainers", merge_by("name")),
    (CORE, "PodSpec", "ephemeralContainers", merge_by("name")),
    (CORE, "PodSpec", "hostAliases", merge_by("ip")),
    (CORE, "PodSpec", "imagePullSecrets", merge_by("name")),
    (CORE, "PodSpec", "nodeSelector", map_type("atomic")),
    (
        CORE,
        "PodSpec",
        "resourceClaims",
        FieldMeta {
            patch_strategy: Some("merge,retainKeys"),
            merge_key: Some("name"),
            list_type: Some("map"),
            list_map_keys: &["name"],
            map_type: None,
        },
    ),
    (
        CORE,
        "PodSpec",
        "schedulingGates",
        merge_map("name", &["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "topologySpreadConstraints",
        merge_map("topologyKey", &["topologyKey", "whenUnsatisfiable"]),
    ),
    (
        CORE,
        "PodSpec",
        "volumes",
        FieldMeta {
            patch_strategy: Some("merge,retainKeys"),
            merge_key: Some("name"),
            list_type: None,
            list_map_keys: &[],
            map_type: None,
        },
    ),
    (CORE, "PodStatus", "conditions", merge_by("type")),
    (CORE, "PodStatus", "podIPs", merge_by("ip")),
    (
        CORE,
        "ResourceRequirements",
        "claims",
        FieldMeta {
            patch_strategy: None,
            merge_key: None,
            list_type: Some("map"),
            list_map_keys: &["name"],
            map_type: None,
        },
    ),
    (
        CORE,
        "TopologySpreadConstraint",
        "matchLabelKeys",
        list_type("atomic"),
    ),
    (
        CORE,
        "PodAffinityTerm",
        "matchLabelKeys",
        list_type("atomic"),
    ),
    (
        CORE,
        "PodAffinityTerm",
        "mismatchLabelKeys",
        list_type("atomic"),
    ),
    // core/v1 other kinds
    (CORE, "NamespaceStatus", "conditions", merge_by("type")),
    (CORE, "NodeSpec", "podCIDRs", strategy("merge")),
    (CORE, "NodeStatus", "addresses", merge_by("type")),
    (CORE, "NodeStatus", "conditions", merge_by("type")),
    (CORE, "ServiceAccount", "secrets", merge_by("name")),
    (CORE, "ServiceSpec", "clusterIPs", list_type("atomic")),
    (CORE, "ServiceSpec", "ipFamilies", list_type("atomic")),
    (
        CORE,
        "ServiceSpec",
        "ports",
        merge_map("port", &["port", "protocol"]),
    ),
    (CORE, "ServiceSpec", "selector", map_type("atomic")),
    (
        CORE,
        "ServiceStatus",
        "conditions",
        merge_map("type", &["type"]),
    ),
    (CORE, "LoadBalancerIngress", "ports", list_type("atomic")),
    (
        CORE,
        "PersistentVolumeClaimStatus",
        "conditions",
        merge_by("type"),
    ),
    (
        CORE,
        "PersistentVolumeClaimStatus",
        "allocatedResourceStatuses",
        map_type("granular"),
    ),
    (CORE, "ComponentStatus", "conditions", merge_by("type")),
    (
        CORE,
        "ReplicationControllerSpec",
        "selector",
        map_type("atomic"),
    ),
    (
        CORE,
        "ReplicationControllerStatus",
        "conditions",
        merge_by("type"),
    ),
    (
        CORE,
        "PersistentVolumeSpec",
        "claimRef",
        map_type("granular"),
    ),
    // apps/v1
    (APPS, "DaemonSetStatus", "conditions", merge_by("type")),
    (APPS, "DeploymentSpec", "strategy", strategy("retainKeys")),
    (APPS, "DeploymentStatus", "conditions", merge_by("type")),
    (APPS, "ReplicaSetStatus", "conditions", merge_by("type")),
    (APPS, "StatefulSetStatus", "conditions", merge_by("type")),
    // batch/v1
    (
        "io.k8s.api.batch.v1.",
        "JobStatus",
        "conditions",
        merge_by("type"),
    ),
    // meta/v1
    (META, "LabelSelectorRequirement", "key", merge_by("key")),
    (META, "ObjectMeta", "finalizers", strategy("merge")),
    (META, "ObjectMeta", "ownerReferences", merge_by("uid")),
];

/// Schemas whose whole value is one unit (`x-kubernetes-map-type` on the type itself).
static ATOMIC_TYPES: &[&str] = &[
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
];

/// Defaults of list-map key fields that clients may omit (`protocol` of ports).
static KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

/// The patch metadata of `field` in the schema named `schema` (e.g. `io.k8s.api.core.v1.PodSpec`).
pub fn field_meta(schema: &str, field: &str) -> Option<&'static FieldMeta> {
    static INDEX: OnceLock<HashMap<String, HashMap<&'static str, &'static FieldMeta>>> =
        OnceLock::new();
    INDEX
        .get_or_init(|| {
            let mut idx: HashMap<String, HashMap<&'static str, &'static FieldMeta>> =
                HashMap::new();
            for (pkg, ty, f, meta) in FIELDS {
                idx.entry(format!("{pkg}{ty}")).or_default().insert(f, meta);
            }
            idx
        })
        .get(schema)?
        .get(field)
        .copied()
}

/// Every `(schema name, field, metadata)` of the table.
pub fn all_fields() -> impl Iterator<Item = (String, &'static str, &'static FieldMeta)> {
    FIELDS
        .iter()
        .map(|(pkg, ty, f, meta)| (format!("{pkg}{ty}"), *f, meta))
}

/// The type-level `x-kubernetes-map-type` of a schema, if any.
pub fn type_map_type(schema: &str) -> Option<&'static str> {
    ATOMIC_TYPES.contains(&schema).then_some("atomic")
}

/// The default of a list-map key field that a client may leave out.
pub fn key_default(schema: &str, field: &str) -> Option<&'static str> {
    KEY_DEFAULTS
        .iter()
        .find(|(s, f, _)| *s == schema && *f == field)
        .map(|(_, _, d)| *d)
}

/// A position in a schema: a named component (`name`) or an inline schema.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    /// The component name, when this node is a named schema.
    pub name: Option<&'static str>,
    schema: &'static Value,
}

/// What kind of value a [`Node`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An object with declared properties (a Go struct).
    Struct,
    /// An object with free keys (`additionalProperties`, a Go map).
    Map,
    /// An array.
    List,
    /// Anything else (string, number, int-or-string, quantity, time, ...).
    Scalar,
}

impl Node {
    /// The root node of the component schema `name`.
    pub fn named(name: &str) -> Option<Node> {
        let comps = crate::openapi::components::all();
        let (key, schema) = comps.get_key_value(name)?;
        Some(Node {
            name: Some(key.as_str()),
            schema,
        })
    }

    /// The root node of a kind, e.g. `("apps", "v1", "Deployment")`.
    pub fn for_kind(group: &str, version: &str, kind: &str) -> Option<Node> {
        let name = crate::openapi::components::schema_name_of(group, version, kind)?;
        Node::named(name)
    }

    fn resolve(schema: &'static Value) -> Node {
        let reference = schema.get("$ref").and_then(Value::as_str).or_else(|| {
            schema
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|s| s.get("$ref"))
                .and_then(Value::as_str)
        });
        if let Some(r) = reference {
            let name = r.rsplit('/').next().unwrap_or(r);
            if let Some(n) = Node::named(name) {
                return n;
            }
        }
        Node { name: None, schema }
    }

    /// What this node describes.
    pub fn shape(&self) -> Shape {
        if self.schema.get("properties").is_some() {
            return Shape::Struct;
        }
        match self.schema.get("type").and_then(Value::as_str) {
            Some("array") => Shape::List,
            Some("object") if self.schema.get("additionalProperties").is_some() => Shape::Map,
            Some("object") => Shape::Struct,
            _ => Shape::Scalar,
        }
    }

    /// The schema of a struct field together with the field's patch metadata.
    pub fn field(&self, field: &str) -> Option<(Node, FieldMeta)> {
        let prop = self.schema.get("properties")?.get(field)?;
        let meta = self
            .name
            .and_then(|n| field_meta(n, field))
            .copied()
            .unwrap_or_default();
        Some((Node::resolve(prop), meta))
    }

    /// The element schema of a list.
    pub fn items(&self) -> Option<Node> {
        self.schema.get("items").map(Node::resolve)
    }

    /// The value schema of a map.
    pub fn values(&self) -> Option<Node> {
        match self.schema.get("additionalProperties") {
            Some(v) if v.is_object() => Some(Node::resolve(v)),
            _ => None,
        }
    }

    /// The child schema of key `key`: a struct field's schema or a map's value schema.
    pub fn child(&self, key: &str) -> Option<(Node, FieldMeta)> {
        match self.shape() {
            Shape::Struct => self.field(key),
            Shape::Map => self.values().map(|n| (n, FieldMeta::default())),
            _ => None,
        }
    }

    /// Whether the type itself is atomic (`x-kubernetes-map-type: atomic` on the type).
    pub fn is_atomic_type(&self) -> bool {
        self.name.and_then(type_map_type) == Some("atomic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_merge_keys() {
        let m = field_meta("io.k8s.api.core.v1.Container", "ports").copied();
        assert_eq!(m.and_then(|m| m.merge_key), Some("containerPort"));
        assert!(m.is_some_and(|m| m.merges()));
        assert!(field_meta("io.k8s.api.core.v1.Containers", "ports").is_none());
        let v = field_meta("io.k8s.api.core.v1.PodSpec", "volumes").copied();
        assert!(v.is_some_and(|m| m.merges() && m.retains_keys()));
    }

    #[test]
    fn navigates_deployment_to_container_ports() {
        let d = Node::for_kind("apps", "v1", "Deployment").expect("deployment schema");
        let (spec, _) = d.field("spec").expect("spec");
        let (tmpl, _) = spec.field("template").expect("template");
        let (pspec, _) = tmpl.field("spec").expect("pod spec");
        assert_eq!(pspec.name, Some("io.k8s.api.core.v1.PodSpec"));
        let (containers, meta) = pspec.field("containers").expect("containers");
        assert_eq!(containers.shape(), Shape::List);
        assert_eq!(meta.merge_key, Some("name"));
        let c = containers.items().expect("items");
        let (_, pm) = c.field("ports").expect("ports");
        assert_eq!(pm.merge_key, Some("containerPort"));
        let (labels, _) = tmpl
            .field("metadata")
            .and_then(|(m, _)| m.field("labels"))
            .expect("labels");
        assert_eq!(labels.shape(), Shape::Map);
        let (sel, _) = spec.field("selector").expect("selector");
        assert!(sel.is_atomic_type());
    }
}
