//! The `pods/binding` subresource: assigns a pod to a node (the scheduler's write).

use jiff::Timestamp;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::{ApiError, Cause};
use serde_json::{json, Value};

use super::rfc3339;
use crate::objects::{meta_str, name_of};

/// Applies a `Binding` to `pod`: sets `spec.nodeName` and the `PodScheduled` condition.
/// 409 when the pod is already bound or being deleted; 422 without a target node.
pub fn bind(
    info: &ResourceInfo,
    pod: &mut Value,
    binding: &Value,
    now: Timestamp,
) -> Result<(), ApiError> {
    let name = name_of(pod).to_string();
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            info,
            &name,
            vec![Cause::required("target.name", "")],
        ));
    }
    if meta_str(pod, "deletionTimestamp").is_some() {
        return Err(ApiError::conflict(
            info,
            &name,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    if let Some(current) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::conflict(
            info,
            &name,
            &format!("pod {name} is already assigned to node {current:?}"),
        ));
    }
    let Value::Object(root) = pod else {
        return Err(ApiError::internal("stored pod is not an object"));
    };
    let spec = root.entry("spec").or_insert_with(|| json!({}));
    if let Value::Object(s) = spec {
        s.insert("nodeName".into(), json!(node));
    }
    let status = root.entry("status").or_insert_with(|| json!({}));
    if let Value::Object(s) = status {
        let conds = s.entry("conditions").or_insert_with(|| json!([]));
        if let Value::Array(cs) = conds {
            cs.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
            cs.push(json!({"type": "PodScheduled", "status": "True",
                           "lastProbeTime": null, "lastTransitionTime": rfc3339(now)}));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_once() {
        let info = navarch_api::resources::find("", "v1", "pods").unwrap();
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let b = json!({"target": {"kind": "Node", "name": "n1"}});
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        bind(info, &mut pod, &b, now).unwrap();
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
        let e = bind(info, &mut pod, &b, now).unwrap_err();
        assert_eq!(e.code, 409);
        let mut fresh = json!({"metadata": {"name": "q"}, "spec": {}});
        assert_eq!(
            bind(info, &mut fresh, &json!({}), now).unwrap_err().code,
            422
        );
    }
}
