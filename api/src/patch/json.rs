//! JSON patch (RFC 6902), answered as kube-apiserver answers it: 400 for an undecodable patch,
//! 422 when an operation (including `test`) fails, 422 past 10,000 operations.

use serde_json::Value;

use crate::patch::PatchError;

/// Upstream's `maxJSONPatchOperations`.
pub const MAX_OPERATIONS: usize = 10_000;

/// Applies the RFC 6902 patch `patch` to a copy of `target`.
pub fn apply(target: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| PatchError::Decode(e.to_string()))?;
    if ops.0.len() > MAX_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.0.len()));
    }
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Apply(e.to_string()))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_and_tests() {
        let d = json!({"spec": {"replicas": 3}});
        let out = apply(
            &d,
            br#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
        );
        assert_eq!(out.ok(), Some(json!({"spec": {"replicas": 1}})));
        let t = apply(&d, br#"[{"op":"test","path":"/spec/replicas","value":5}]"#);
        assert!(matches!(t, Err(PatchError::Apply(_))), "{t:?}");
        let bad = apply(&d, b"{not json");
        assert!(matches!(bad, Err(PatchError::Decode(_))));
        let missing = apply(&d, br#"[{"op":"remove","path":"/spec/nosuch"}]"#);
        assert!(matches!(missing, Err(PatchError::Apply(_))));
    }
}
