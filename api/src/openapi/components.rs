//! Component schemas generated from the k8s-openapi types (schemars), named as upstream names them
//! (`io.k8s.api.apps.v1.Deployment`), with our `x-kubernetes-*` extensions and list kinds added.

use std::sync::OnceLock;

use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, discovery, policy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::patch::schema;

/// One kind whose schema we publish: group, version, kind, component name.
#[derive(Debug, Clone)]
pub struct KindSchema {
    /// API group ("" for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind, e.g. `Deployment` or `DeploymentList`.
    pub kind: String,
    /// Component schema name, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub name: String,
}

struct Generated {
    schemas: Map<String, Value>,
    kinds: Vec<KindSchema>,
}

static GENERATED: OnceLock<Generated> = OnceLock::new();

/// All component schemas (the union over every group-version we serve).
pub fn all() -> &'static Map<String, Value> {
    &generated().schemas
}

/// Every kind with a published schema.
pub fn kinds() -> &'static [KindSchema] {
    &generated().kinds
}

/// The component name of `group/version, kind`, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn schema_name_of(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    kinds()
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
        .map(|k| k.name.as_str())
}

fn generated() -> &'static Generated {
    GENERATED.get_or_init(generate)
}

struct Builder {
    gen: SchemaGenerator,
    kinds: Vec<KindSchema>,
}

impl Builder {
    fn kind<T: JsonSchema + k8s_openapi::Resource>(&mut self, list: bool) {
        let _ = self.gen.subschema_for::<T>();
        let name = T::schema_name().into_owned();
        self.kinds.push(KindSchema {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND.to_string(),
            name: name.clone(),
        });
        if list {
            self.kinds.push(KindSchema {
                group: T::GROUP,
                version: T::VERSION,
                kind: format!("{}List", T::KIND),
                name: format!("{name}List"),
            });
        }
    }

    fn plain<T: JsonSchema>(&mut self) {
        let _ = self.gen.subschema_for::<T>();
    }
}

fn generate() -> Generated {
    let mut b = Builder {
        gen: SchemaSettings::openapi3().into_generator(),
        kinds: Vec::new(),
    };
    b.kind::<core::v1::Namespace>(true);
    b.kind::<core::v1::Pod>(true);
    b.kind::<core::v1::Node>(true);
    b.kind::<core::v1::Service>(true);
    b.kind::<core::v1::Endpoints>(true);
    b.kind::<core::v1::ConfigMap>(true);
    b.kind::<core::v1::Secret>(true);
    b.kind::<core::v1::ServiceAccount>(true);
    b.kind::<core::v1::Event>(true);
    b.kind::<core::v1::Binding>(false);
    b.kind::<policy::v1::Eviction>(false);
    b.kind::<apps::v1::Deployment>(true);
    b.kind::<apps::v1::ReplicaSet>(true);
    b.kind::<apps::v1::StatefulSet>(true);
    b.kind::<apps::v1::DaemonSet>(true);
    b.kind::<autoscaling::v1::Scale>(false);
    b.kind::<batch::v1::Job>(true);
    b.kind::<discovery::v1::EndpointSlice>(true);
    b.kind::<coordination::v1::Lease>(true);
    b.plain::<meta::Status>();
    b.plain::<meta::DeleteOptions>();
    b.plain::<meta::WatchEvent<()>>();
    b.plain::<meta::Patch>();
    b.plain::<meta::APIResourceList>();
    b.plain::<meta::ListMeta>();
    let mut schemas = b.gen.take_definitions(true);
    let kinds = b.kinds;
    for k in &kinds {
        if let Some(item) = k.kind.strip_suffix("List") {
            if !schemas.contains_key(&k.name) {
                let item_name = k.name.trim_end_matches("List").to_string();
                schemas.insert(k.name.clone(), list_schema(item, &item_name));
            }
        }
        if let Some(Value::Object(s)) = schemas.get_mut(&k.name) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": k.group, "kind": k.kind, "version": k.version}]),
            );
        }
    }
    add_extensions(&mut schemas);
    drop_required_metadata(&mut schemas);
    Generated { schemas, kinds }
}

fn list_schema(item_kind: &str, item_schema: &str) -> Value {
    json!({
        "description": format!("{item_kind}List is a list of {item_kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string"
            },
            "items": {
                "description": format!("List of {item_kind} objects."),
                "type": "array",
                "items": {"default": {}, "allOf": [{"$ref": format!("#/components/schemas/{item_schema}")}]}
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "default": {},
                "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]
            }
        }
    })
}

/// Upstream never marks `metadata` required (k8s-openapi does, its Rust field is not optional);
/// `kubectl explain` would print `-required-` and client-side validation would insist on it.
fn drop_required_metadata(schemas: &mut Map<String, Value>) {
    for s in schemas.values_mut() {
        let Some(obj) = s.as_object_mut() else {
            continue;
        };
        let Some(Value::Array(req)) = obj.get_mut("required") else {
            continue;
        };
        req.retain(|r| r != "metadata");
        if req.is_empty() {
            obj.remove("required");
        }
    }
}

/// Writes the patch metadata table into the schemas as `x-kubernetes-*` extensions.
fn add_extensions(schemas: &mut Map<String, Value>) {
    for (name, field, meta) in schema::all_fields() {
        let Some(prop) = schemas
            .get_mut(&name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(k) = meta.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), k.into());
        }
        if let Some(s) = meta.patch_strategy {
            prop.insert("x-kubernetes-patch-strategy".into(), s.into());
        }
        if let Some(t) = meta.list_type {
            prop.insert("x-kubernetes-list-type".into(), t.into());
        }
        if !meta.list_map_keys.is_empty() {
            prop.insert(
                "x-kubernetes-list-map-keys".into(),
                json!(meta.list_map_keys),
            );
        }
        if let Some(t) = meta.map_type {
            prop.insert("x-kubernetes-map-type".into(), t.into());
        }
    }
    for (name, s) in schemas.iter_mut() {
        if let (Some(t), Some(obj)) = (schema::type_map_type(name), s.as_object_mut()) {
            obj.insert("x-kubernetes-map-type".into(), t.into());
        }
    }
}

/// The names of the schemas `root` refers to, transitively, including `root`'s own refs.
pub fn referenced(root: &Value, into: &mut std::collections::BTreeSet<String>) {
    let mut stack = vec![root];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let name = r.rsplit('/').next().unwrap_or(r).to_string();
                    if into.insert(name.clone()) {
                        if let Some(s) = all().get(&name) {
                            stack.push(s);
                        }
                    }
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_schema_has_description_and_extensions() {
        let d = all()
            .get("io.k8s.api.apps.v1.DeploymentSpec")
            .expect("DeploymentSpec");
        let replicas = &d["properties"]["replicas"];
        assert!(replicas["description"]
            .as_str()
            .is_some_and(|s| s.contains("Number of desired pods")));
        assert_eq!(
            d["properties"]["strategy"]["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
        // a $ref with siblings is wrapped in allOf as upstream does
        assert!(d["properties"]["strategy"]["allOf"].is_array(), "{d}");
        let list = all()
            .get("io.k8s.api.apps.v1.DeploymentList")
            .expect("list");
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "DeploymentList"
        );
        assert!(all()["io.k8s.api.apps.v1.Deployment"]
            .get("required")
            .is_none());
        assert_eq!(
            schema_name_of("", "v1", "Pod"),
            Some("io.k8s.api.core.v1.Pod")
        );
    }
}
