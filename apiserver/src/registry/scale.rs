//! The `scale` subresource: an `autoscaling/v1` Scale view of Deployments, ReplicaSets and
//! StatefulSets (`spec.replicas`, `status.replicas`, `status.selector` as a string).

use navarch_api::resources::ResourceInfo;
use navarch_api::selectors::LabelSelector;
use navarch_api::status::{ApiError, Cause};
use serde_json::{json, Map, Value};

use crate::objects::meta;

/// Renders a `metav1.LabelSelector` as the string form (`app=web,tier in (a,b)`), as
/// `navarch_api::selectors` prints it ("" when absent or unparsable).
pub fn selector_string(sel: Option<&Value>) -> String {
    sel.and_then(|s| LabelSelector::from_spec(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The Scale of `obj`.
pub fn to_scale(obj: &Value) -> Value {
    let mut m = Map::new();
    if let Some(om) = meta(obj) {
        for f in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            if let Some(v) = om.get(f) {
                m.insert(f.to_string(), v.clone());
            }
        }
    }
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status_replicas = obj
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": replicas},
        "status": {
            "replicas": status_replicas,
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}

/// Applies a (client-modified) Scale to its parent object: sets `spec.replicas`.
/// 422 when `spec.replicas` is missing, not an integer, or negative.
pub fn apply_scale(info: &ResourceInfo, obj: &mut Value, scale: &Value) -> Result<(), ApiError> {
    let name = meta(obj)
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let n = replicas
        .as_i64()
        .filter(|n| (0..=i64::from(i32::MAX)).contains(n));
    let Some(n) = n else {
        return Err(ApiError::invalid(
            info,
            &name,
            vec![Cause::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        ));
    };
    if let Some(Value::Object(spec)) = obj.get_mut("spec") {
        spec.insert("replicas".into(), json!(n));
    } else if let Value::Object(root) = obj {
        root.insert("spec".into(), json!({"replicas": n}));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_and_update() {
        let info = navarch_api::resources::find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "9"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 1}});
        let s = to_scale(&d);
        assert_eq!(s["kind"], "Scale");
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["replicas"], 1);
        assert_eq!(s["status"]["selector"], "app=web,tier in (a,b)");
        assert_eq!(s["metadata"]["resourceVersion"], "9");
        apply_scale(info, &mut d, &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(d["spec"]["replicas"], 5);
        let e = apply_scale(info, &mut d, &json!({"spec": {"replicas": -1}})).unwrap_err();
        assert_eq!(e.code, 422);
    }
}
