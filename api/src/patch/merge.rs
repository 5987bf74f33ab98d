//! JSON merge patch (RFC 7386): objects merge key by key, `null` deletes, anything else replaces.

use serde_json::Value;

use crate::patch::PatchError;

/// Applies the RFC 7386 merge patch `patch` to a copy of `target`.
pub fn apply(target: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let p: Value = serde_json::from_slice(patch).map_err(|e| PatchError::Decode(e.to_string()))?;
    let mut doc = target.clone();
    json_patch::merge(&mut doc, &p);
    if !doc.is_object() {
        return Err(PatchError::NotAnObject);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_and_deletes_with_null() {
        let d = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1, 2]}});
        let out = apply(
            &d,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"ports":[3]}}"#,
        )
        .expect("merge");
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"ports": [3]}})
        );
        assert!(matches!(apply(&d, b"[1]"), Err(PatchError::NotAnObject)));
        assert!(matches!(apply(&d, b"{"), Err(PatchError::Decode(_))));
    }
}
