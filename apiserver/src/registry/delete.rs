//! Deletion rules: preconditions, graceful pod deletion, finalizers and propagation policy.
//!
//! ```text
//! plan_delete(obj, opts) ─► Now                      (remove from storage)
//!                        └► Mark(obj')               (set deletionTimestamp / finalizers; stays)
//!                        └► Pending(obj)             (already being deleted; nothing to change)
//! after any update: ready_to_delete(obj) ─► remove once finalizers are gone
//! ```

use jiff::{SignedDuration, Timestamp};
use navarch_api::resources::ResourceInfo;
use navarch_api::status::ApiError;
use serde_json::{json, Value};

use super::rfc3339;
use crate::objects::{meta, meta_mut, meta_str, name_of};

/// `metav1.DeleteOptions`, from the body and the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// Deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a DeleteOptions JSON body (missing fields stay unset); 400 on wrong types.
    pub fn from_json(v: &Value) -> Result<Self, ApiError> {
        let bad = |f: &str| ApiError::bad_request(format!("DeleteOptions: invalid {f}"));
        let mut o = Self::default();
        if let Some(g) = v.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
            o.grace_period_seconds = Some(g.as_i64().ok_or_else(|| bad("gracePeriodSeconds"))?);
        }
        if let Some(p) = v.get("propagationPolicy").filter(|g| !g.is_null()) {
            o.propagation_policy = Some(
                p.as_str()
                    .ok_or_else(|| bad("propagationPolicy"))?
                    .to_string(),
            );
        }
        if let Some(p) = v.get("orphanDependents").filter(|g| !g.is_null()) {
            o.orphan_dependents = Some(p.as_bool().ok_or_else(|| bad("orphanDependents"))?);
        }
        if let Some(pre) = v.get("preconditions").filter(|g| !g.is_null()) {
            let s = |k: &str| -> Result<Option<String>, ApiError> {
                match pre.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(bad("preconditions")),
                }
            };
            o.precondition_uid = s("uid")?;
            o.precondition_rv = s("resourceVersion")?;
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            o.dry_run = d.iter().any(|x| x == "All");
        }
        Ok(o)
    }

    /// Checks the values (400 for an unknown propagation policy or a negative grace period).
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(p) = &self.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::bad_request(format!(
                    "DeleteOptions.propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
            if self.orphan_dependents.is_some() {
                return Err(ApiError::bad_request(
                    "DeleteOptions: orphanDependents and propagationPolicy cannot both be set",
                ));
            }
        }
        Ok(())
    }
}

/// What a delete request does to an object.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletePlan {
    /// Remove it from storage now.
    Now,
    /// Write this updated object (deletion started; finalizers or a grace period remain).
    Mark(Value),
    /// Already being deleted and nothing changes.
    Pending,
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn namespace_finalizers(obj: &Value) -> bool {
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Checks `preconditions` (409 Conflict as Kubernetes words it).
pub fn check_preconditions(
    info: &ResourceInfo,
    obj: &Value,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let name = name_of(obj);
    if let Some(uid) = &opts.precondition_uid {
        let actual = meta_str(obj, "uid").unwrap_or("");
        if uid != actual {
            return Err(ApiError::conflict(
                info,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        let actual = meta_str(obj, "resourceVersion").unwrap_or("");
        if rv != actual {
            return Err(ApiError::conflict(
                info,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"),
            ));
        }
    }
    Ok(())
}

/// The grace period a pod deletion gets (0: delete now). Only pods bound to a node and not
/// yet terminal are deleted gracefully; the node agent finishes the deletion.
fn pod_grace(obj: &Value, opts: &DeleteOptions) -> i64 {
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded") | Some("Failed")
    );
    if !bound || terminal {
        return 0;
    }
    opts.grace_period_seconds
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// Decides what a DELETE does to `obj` (preconditions already checked).
pub fn plan_delete(
    info: &ResourceInfo,
    obj: &Value,
    opts: &DeleteOptions,
    now: Timestamp,
) -> DeletePlan {
    let mut out = obj.clone();
    let already = meta_str(obj, "deletionTimestamp").is_some();
    let mut fins = finalizers(obj);
    let mut changed = false;

    // Propagation finalizers (the garbage collector removes them).
    let orphan = opts.propagation_policy.as_deref() == Some("Orphan")
        || opts.orphan_dependents == Some(true);
    let foreground = opts.propagation_policy.as_deref() == Some("Foreground");
    if !already {
        for (wanted, f) in [(orphan, "orphan"), (foreground, "foregroundDeletion")] {
            if wanted && !fins.iter().any(|x| x == f) {
                fins.push(f.to_string());
                changed = true;
            }
        }
    }

    let grace = if info.kind == "Pod" {
        pod_grace(obj, opts)
    } else {
        0
    };
    let old_grace = meta(obj)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64);

    if grace > 0 {
        // Graceful pod deletion: set or shorten the deadline.
        if old_grace.is_none_or(|g| grace < g) {
            let m = meta_mut(&mut out);
            let deadline = now
                .checked_add(SignedDuration::from_secs(grace))
                .unwrap_or(now);
            m.insert("deletionTimestamp".into(), json!(rfc3339(deadline)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            changed = true;
        }
    } else if !fins.is_empty() || (info.kind == "Namespace" && namespace_finalizers(obj)) {
        let m = meta_mut(&mut out);
        if !already {
            m.insert("deletionTimestamp".into(), json!(rfc3339(now)));
            changed = true;
        }
        if old_grace != Some(0) {
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            changed = true;
        }
        if info.kind == "Namespace" {
            if let Value::Object(root) = &mut out {
                if root.get("status").and_then(|s| s.get("phase")) != Some(&json!("Terminating")) {
                    root.insert("status".into(), json!({"phase": "Terminating"}));
                    changed = true;
                }
            }
        }
    } else {
        return DeletePlan::Now;
    }
    if !fins.is_empty() {
        meta_mut(&mut out).insert("finalizers".into(), json!(fins));
    }
    if changed {
        DeletePlan::Mark(out)
    } else {
        DeletePlan::Pending
    }
}

/// Whether an object marked for deletion can now be removed: no finalizers left and no
/// grace period running (Kubernetes' `deleteWithoutFinalizers`).
pub fn ready_to_delete(info: &ResourceInfo, obj: &Value) -> bool {
    if meta_str(obj, "deletionTimestamp").is_none() || !finalizers(obj).is_empty() {
        return false;
    }
    if info.kind == "Namespace" && namespace_finalizers(obj) {
        return false;
    }
    meta(obj)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64)
        .is_none_or(|g| g == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_api::resources::find;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn plain_objects_are_deleted_now() {
        let cm = find("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "c"}});
        assert_eq!(
            plan_delete(cm, &obj, &DeleteOptions::default(), now()),
            DeletePlan::Now
        );
    }

    #[test]
    fn finalizers_and_foreground_keep_the_object() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let obj = json!({"metadata": {"name": "d", "finalizers": ["x/y"]}});
        let DeletePlan::Mark(m) = plan_delete(deploy, &obj, &DeleteOptions::default(), now())
        else {
            panic!("expected a mark");
        };
        assert_eq!(m["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(m["metadata"]["deletionGracePeriodSeconds"], 0);
        assert!(!ready_to_delete(deploy, &m));
        // A second delete changes nothing.
        assert_eq!(
            plan_delete(deploy, &m, &DeleteOptions::default(), now()),
            DeletePlan::Pending
        );
        // Once the finalizer is removed the object can go.
        let mut done = m.clone();
        done["metadata"]["finalizers"] = json!([]);
        assert!(ready_to_delete(deploy, &done));

        let fg = DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..DeleteOptions::default()
        };
        let DeletePlan::Mark(m) =
            plan_delete(deploy, &json!({"metadata": {"name": "d"}}), &fg, now())
        else {
            panic!("expected a mark");
        };
        assert_eq!(m["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    }

    #[test]
    fn bound_pods_are_deleted_gracefully() {
        let pods = find("", "v1", "pods").unwrap();
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            plan_delete(pods, &unbound, &DeleteOptions::default(), now()),
            DeletePlan::Now
        );
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let DeletePlan::Mark(m) = plan_delete(pods, &bound, &DeleteOptions::default(), now())
        else {
            panic!("expected a mark");
        };
        assert_eq!(m["metadata"]["deletionGracePeriodSeconds"], 30);
        assert_eq!(m["metadata"]["deletionTimestamp"], "2023-11-14T22:13:50Z");
        assert!(!ready_to_delete(pods, &m));
        let zero = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        assert_eq!(plan_delete(pods, &m, &zero, now()), DeletePlan::Now);
        let finished = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(
            plan_delete(pods, &finished, &DeleteOptions::default(), now()),
            DeletePlan::Now
        );
    }

    #[test]
    fn options_parse_and_validate() {
        let o = DeleteOptions::from_json(&json!({"propagationPolicy": "Background",
            "gracePeriodSeconds": 5, "preconditions": {"uid": "u"}, "dryRun": ["All"]}))
        .unwrap();
        assert_eq!(o.grace_period_seconds, Some(5));
        assert_eq!(o.precondition_uid.as_deref(), Some("u"));
        assert!(o.dry_run);
        assert!(o.validate().is_ok());
        assert!(DeleteOptions::from_json(&json!({"gracePeriodSeconds": "x"})).is_err());
        let bad = DeleteOptions {
            propagation_policy: Some("Sideways".into()),
            ..DeleteOptions::default()
        };
        assert_eq!(bad.validate().unwrap_err().code, 400);
    }

    #[test]
    fn preconditions_conflict() {
        let pods = find("", "v1", "pods").unwrap();
        let obj = json!({"metadata": {"name": "p", "uid": "a", "resourceVersion": "3"}});
        let o = DeleteOptions {
            precondition_uid: Some("b".into()),
            ..DeleteOptions::default()
        };
        let e = check_preconditions(pods, &obj, &o).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(e
            .message
            .contains("Precondition failed: UID in precondition: b"));
        let ok = DeleteOptions {
            precondition_rv: Some("3".into()),
            ..DeleteOptions::default()
        };
        assert!(check_preconditions(pods, &obj, &ok).is_ok());
    }
}
