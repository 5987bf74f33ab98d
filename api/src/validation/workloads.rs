//! Workload validation: Deployment, ReplicaSet, StatefulSet, DaemonSet (apps/v1) and Job (batch/v1).

use serde_json::{Map, Value};

use super::meta::validate_labels;
use super::names::qualified_name_errors;
use super::pod::validate_pod_template;
use super::{arr_of, child, index, non_negative, obj_of, one_of, str_of, Causes};
use crate::resources::ResourceInfo;
use crate::selectors::LabelSelector;
use crate::status::{go_string_map, quote, Cause};

/// Go's `%#v` of a `v1.LabelSelector`, as field errors about selectors print it.
pub fn render_label_selector(sel: &Value) -> String {
    let labels = go_string_map(obj_of(sel, "matchLabels"));
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(es) => {
            let items: Vec<String> = es
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => {
                            let q: Vec<String> = vs
                                .iter()
                                .map(|v| quote(v.as_str().unwrap_or_default()))
                                .collect();
                            format!("[]string{{{}}}", q.join(", "))
                        }
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        quote(str_of(e, "key")),
                        quote(str_of(e, "operator"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

const PERCENT_ERROR: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn spec(obj: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    obj.get("spec").unwrap_or(&EMPTY)
}

/// `ValidateLabelSelector` for a `metav1.LabelSelector` at `path`.
pub fn validate_label_selector(sel: &Value, path: &str, causes: &mut Causes) {
    validate_labels(
        obj_of(sel, "matchLabels"),
        &child(path, "matchLabels"),
        causes,
    );
    let epath = child(path, "matchExpressions");
    for (i, e) in arr_of(sel, "matchExpressions").iter().enumerate() {
        let p = index(&epath, i);
        let has_values = !arr_of(e, "values").is_empty();
        match str_of(e, "operator") {
            "In" | "NotIn" => {
                if !has_values {
                    causes.push(Cause::required(
                        &child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if has_values {
                    causes.push(Cause::forbidden(
                        &child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => causes.push(Cause::invalid(
                &child(&p, "operator"),
                &Value::from(op),
                "not a valid selector operator",
            )),
        }
        let k = str_of(e, "key");
        for msg in qualified_name_errors(k) {
            causes.push(Cause::invalid(&child(&p, "key"), &Value::from(k), &msg));
        }
    }
}

/// Selector present, non-empty, valid, and matching the template's labels (`what` names the kind in messages).
fn validate_selector_and_template(spec: &Value, what: &str, causes: &mut Causes) {
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => causes.push(Cause::required("spec.selector", "")),
        Some(sel) => {
            validate_label_selector(sel, "spec.selector", causes);
            match LabelSelector::from_spec(sel) {
                Ok(parsed) if parsed.is_empty() => causes.push(Cause::invalid_rendered(
                    "spec.selector",
                    &render_label_selector(sel),
                    &format!("empty selector is invalid for {what}"),
                )),
                Ok(parsed) => {
                    let labels = spec.pointer("/template/metadata/labels");
                    if !parsed.matches(labels.and_then(Value::as_object)) {
                        causes.push(Cause::invalid_rendered(
                            "spec.template.metadata.labels",
                            &go_string_map(labels.and_then(Value::as_object)),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
                Err(_) => {} // reported by validate_label_selector
            }
        }
    }
}

/// Template rules shared by controllers whose pods always restart.
fn validate_always_restart_template(spec: &Value, causes: &mut Causes) {
    let empty = Value::Object(Map::new());
    let template = spec.get("template").unwrap_or(&empty);
    validate_pod_template(template, "spec.template", causes);
    let policy = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if policy != "Always" {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            &Value::from(policy),
            &["Always"],
        ));
    }
    if template.pointer("/spec/activeDeadlineSeconds").is_some() {
        causes.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// An int-or-percent that must be ≥ 0 (and ≤ 100% for percentages when `max_100`).
fn int_or_percent(v: &Value, path: &str, causes: &mut Causes) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(-1);
            if n < 0 {
                causes.push(Cause::invalid(
                    path,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
            Some(n)
        }
        Value::String(s) => match s.strip_suffix('%').and_then(|d| d.parse::<i64>().ok()) {
            Some(p) if !s.starts_with('-') && !s.starts_with('+') => {
                if p > 100 {
                    causes.push(Cause::invalid(path, v, "must not be greater than 100%"));
                }
                Some(p)
            }
            _ => {
                causes.push(Cause::invalid(path, v, PERCENT_ERROR));
                None
            }
        },
        _ => None,
    }
}

/// `maxUnavailable` / `maxSurge` of a rolling update at `path`.
fn validate_rolling_update(ru: &Value, path: &str, surge_default_zero: bool, causes: &mut Causes) {
    let unavailable = ru
        .get("maxUnavailable")
        .and_then(|v| int_or_percent(v, &child(path, "maxUnavailable"), causes));
    let surge = ru
        .get("maxSurge")
        .and_then(|v| int_or_percent(v, &child(path, "maxSurge"), causes))
        .or(if surge_default_zero { Some(0) } else { None });
    if unavailable == Some(0) && surge == Some(0) {
        causes.push(Cause::invalid(
            &child(path, "maxUnavailable"),
            ru.get("maxUnavailable").unwrap_or(&Value::from(0)),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

/// `apps/v1` Deployment.
pub fn validate_deployment(obj: &Value, causes: &mut Causes) {
    let s = spec(obj);
    non_negative(s, "replicas", "spec", causes);
    non_negative(s, "revisionHistoryLimit", "spec", causes);
    non_negative(s, "minReadySeconds", "spec", causes);
    non_negative(s, "progressDeadlineSeconds", "spec", causes);
    validate_selector_and_template(s, "deployment", causes);
    validate_always_restart_template(s, causes);
    if let Some(strategy) = s.get("strategy") {
        let t = str_of(strategy, "type");
        match t {
            "Recreate" => {
                if strategy.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    causes.push(Cause::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = strategy.get("rollingUpdate") {
                    validate_rolling_update(ru, "spec.strategy.rollingUpdate", false, causes);
                }
            }
            _ => causes.push(Cause::not_supported(
                "spec.strategy.type",
                &Value::from(t),
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    if let Some(pd) = s.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = s
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pd <= min_ready {
            causes.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                &Value::from(pd),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

/// `apps/v1` ReplicaSet.
pub fn validate_replica_set(obj: &Value, causes: &mut Causes) {
    let s = spec(obj);
    non_negative(s, "replicas", "spec", causes);
    non_negative(s, "minReadySeconds", "spec", causes);
    // Upstream's ReplicaSet validation names "deployment" here too.
    validate_selector_and_template(s, "deployment", causes);
    validate_always_restart_template(s, causes);
}

/// `apps/v1` StatefulSet.
pub fn validate_stateful_set(obj: &Value, causes: &mut Causes) {
    let s = spec(obj);
    non_negative(s, "replicas", "spec", causes);
    non_negative(s, "minReadySeconds", "spec", causes);
    non_negative(s, "revisionHistoryLimit", "spec", causes);
    one_of(
        s,
        "podManagementPolicy",
        "spec",
        &["OrderedReady", "Parallel"],
        causes,
    );
    validate_selector_and_template(s, "statefulset", causes);
    validate_always_restart_template(s, causes);
    if let Some(us) = s.get("updateStrategy") {
        match str_of(us, "type") {
            "RollingUpdate" => {
                if let Some(ru) = us.get("rollingUpdate") {
                    non_negative(ru, "partition", "spec.updateStrategy.rollingUpdate", causes);
                }
            }
            "OnDelete" => {
                if us.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    causes.push(Cause::invalid_no_value(
                        "spec.updateStrategy.rollingUpdate",
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            t => causes.push(Cause::not_supported(
                "spec.updateStrategy.type",
                &Value::from(t),
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
}

/// `apps/v1` DaemonSet.
pub fn validate_daemon_set(obj: &Value, causes: &mut Causes) {
    let s = spec(obj);
    non_negative(s, "minReadySeconds", "spec", causes);
    non_negative(s, "revisionHistoryLimit", "spec", causes);
    validate_selector_and_template(s, "daemonset", causes);
    validate_always_restart_template(s, causes);
    if let Some(us) = s.get("updateStrategy") {
        match str_of(us, "type") {
            "RollingUpdate" => {
                if let Some(ru) = us.get("rollingUpdate") {
                    validate_rolling_update(ru, "spec.updateStrategy.rollingUpdate", true, causes);
                }
            }
            "OnDelete" => {}
            t => causes.push(Cause::not_supported(
                "spec.updateStrategy.type",
                &Value::from(t),
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
}

/// `batch/v1` Job.
pub fn validate_job(obj: &Value, causes: &mut Causes) {
    let s = spec(obj);
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(s, f, "spec", causes);
    }
    one_of(
        s,
        "completionMode",
        "spec",
        &["NonIndexed", "Indexed"],
        causes,
    );
    validate_selector_and_template(s, "job", causes);
    let empty = Value::Object(Map::new());
    let template = s.get("template").unwrap_or(&empty);
    validate_pod_template(template, "spec.template", causes);
    let policy = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if policy != "OnFailure" && policy != "Never" {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            &Value::from(policy),
            &["OnFailure", "Never"],
        ));
    }
}

fn immutable(new: &Value, old: &Value, pointer: &str, path: &str, causes: &mut Causes) {
    let n = new.pointer(pointer).unwrap_or(&Value::Null);
    if n != old.pointer(pointer).unwrap_or(&Value::Null) {
        if pointer == "/spec/selector" {
            causes.push(Cause::invalid_rendered(
                path,
                &render_label_selector(n),
                "field is immutable",
            ));
        } else {
            causes.push(Cause::invalid(path, n, "field is immutable"));
        }
    }
}

/// Immutable fields of apps/v1 kinds: the selector everywhere, and most of a StatefulSet's spec.
pub fn validate_update(info: &ResourceInfo, new: &Value, old: &Value, causes: &mut Causes) {
    immutable(new, old, "/spec/selector", "spec.selector", causes);
    if info.plural == "statefulsets" {
        let strip = |v: &Value| -> Map<String, Value> {
            let mut m = v
                .get("spec")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for f in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                m.remove(f);
            }
            m
        };
        if strip(new) != strip(old) {
            causes.push(Cause::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

/// Immutable fields of a Job: selector, template, completionMode (and completions when not indexed).
pub fn validate_job_update(new: &Value, old: &Value, causes: &mut Causes) {
    immutable(new, old, "/spec/selector", "spec.selector", causes);
    immutable(new, old, "/spec/template", "spec.template", causes);
    immutable(
        new,
        old,
        "/spec/completionMode",
        "spec.completionMode",
        causes,
    );
    if str_of(spec(new), "completionMode") != "Indexed" {
        immutable(new, old, "/spec/completions", "spec.completions", causes);
    }
}
