//! Defaulting: the fields kube-apiserver fills in on decode (`SetDefaults_*`) plus the admission
//! defaults every pod gets (service account, default tolerations, priority) and the Job selector.
//!
//! Every default only fills a field that is absent (or null), so defaulting is idempotent and safe
//! to run on updates.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// Sets `m[k] = v` unless `k` is present with a non-null value; returns the (possibly new) value.
fn set_default<'a>(m: &'a mut Map<String, Value>, k: &str, v: Value) -> &'a mut Value {
    let slot = m.entry(k.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = v;
    }
    slot
}

/// The object map at `m[k]`, created when absent or null.
fn ensure_obj<'a>(m: &'a mut Map<String, Value>, k: &str) -> Option<&'a mut Map<String, Value>> {
    set_default(m, k, Value::Object(Map::new())).as_object_mut()
}

fn each_obj(m: &mut Map<String, Value>, k: &str, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(items) = m.get_mut(k).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

/// Applies the defaults of `info`'s kind to `obj` in place.
pub fn default_object(info: &ResourceInfo, obj: &mut Value) {
    // Go decodes `null` members as zero values and omits them when it encodes the object again.
    super::unknown::strip_nulls(obj);
    // Numeric quantities (`cpu: 1`) are stored as strings, as Kubernetes serializes them.
    let _malformed = super::quantity::normalize_quantities(obj);
    let Some(m) = obj.as_object_mut() else { return };
    match (info.group, info.plural) {
        ("", "pods") => default_pod(m),
        ("", "services") => default_service(m),
        ("", "namespaces") => default_namespace(m),
        ("", "secrets") => default_secret(m),
        ("", "endpoints") => each_obj(m, "subsets", |s| each_obj(s, "ports", default_protocol)),
        ("discovery.k8s.io", "endpointslices") => each_obj(m, "ports", |p| {
            default_protocol(p);
            set_default(p, "name", json!(""));
        }),
        ("apps", "deployments") => default_deployment(m),
        ("apps", "replicasets") => default_replica_set(m),
        ("apps", "statefulsets") => default_stateful_set(m),
        ("apps", "daemonsets") => default_daemon_set(m),
        ("batch", "jobs") => default_job(m),
        _ => {}
    }
}

fn default_protocol(p: &mut Map<String, Value>) {
    set_default(p, "protocol", json!("TCP"));
}

/// The pull policy Kubernetes picks for an image: `Always` for `:latest` or no tag, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn default_probe(p: &mut Map<String, Value>) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(h, "scheme", json!("HTTP"));
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    set_default(c, "imagePullPolicy", json!(default_pull_policy(&image)));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    each_obj(c, "ports", default_protocol);
    each_obj(c, "env", |e| {
        if let Some(fr) = e
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set_default(fr, "apiVersion", json!("v1"));
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
}

/// `SetDefaults_PodSpec` and its containers/volumes (shared by pods and pod templates).
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for field in ["initContainers", "containers"] {
        each_obj(spec, field, |c| {
            default_container(c);
            if host_network {
                each_obj(c, "ports", |p| {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        set_default(p, "hostPort", cp);
                    }
                });
            }
        });
    }
    each_obj(spec, "volumes", |v| {
        for source in ["configMap", "secret", "projected", "downwardAPI"] {
            if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                set_default(s, "defaultMode", json!(420));
            }
        }
        if let Some(s) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
            set_default(s, "type", json!(""));
        }
    });
}

/// Defaults of a `PodTemplateSpec` inside `m["template"]`.
fn default_template(spec: &mut Map<String, Value>) {
    if let Some(t) = ensure_obj(spec, "template") {
        if let Some(ps) = ensure_obj(t, "spec") {
            default_pod_spec(ps);
        }
    }
}

/// The QoS class of a pod spec (after requests were defaulted from limits).
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| spec.get(*f).and_then(Value::as_array).into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&Map<String, Value>>| {
            m.map(|m| m.keys().filter(|k| *k == "cpu" || *k == "memory").count())
                .unwrap_or(0)
        };
        if relevant(req) > 0 || relevant(lim) > 0 {
            any = true;
        }
        let full_limits = lim.is_some_and(|l| l.contains_key("cpu") && l.contains_key("memory"));
        let equal = ["cpu", "memory"]
            .iter()
            .all(|k| req.and_then(|r| r.get(*k)) == lim.and_then(|l| l.get(*k)));
        if !full_limits || !equal {
            guaranteed = false;
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_pod(m: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    default_pod_spec(spec);
    set_default(spec, "enableServiceLinks", json!(true));
    // Requests default to limits (SetDefaults_Pod).
    for field in ["initContainers", "containers"] {
        each_obj(spec, field, |c| {
            let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                return;
            };
            let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
                return;
            };
            if let Some(req) = ensure_obj(res, "requests") {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        });
    }
    // Admission defaults: ServiceAccount, Priority, DefaultTolerationSeconds.
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    set_default(spec, "serviceAccountName", json!(sa));
    set_default(spec, "serviceAccount", json!(sa));
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    if let Some(tolerations) = set_default(spec, "tolerations", json!([])).as_array_mut() {
        for t in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = tolerations.iter().any(|x| {
                let key = x.get("key").and_then(Value::as_str);
                let effect = x.get("effect").and_then(Value::as_str).unwrap_or_default();
                let op = x.get("operator").and_then(Value::as_str);
                (key == Some(t) || (key.is_none() && op == Some("Exists")))
                    && (effect.is_empty() || effect == "NoExecute")
            });
            if !present {
                tolerations.push(json!({"key": t, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos = qos_class(&Value::Object(spec.clone()));
    if let Some(status) = ensure_obj(m, "status") {
        set_default(status, "phase", json!("Pending"));
        set_default(status, "qosClass", json!(qos));
    }
}

fn default_service(m: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    let ty = set_default(spec, "type", json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        set_default(spec, "sessionAffinity", json!("None"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
    } else {
        set_default(spec, "sessionAffinity", json!("None"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    each_obj(spec, "ports", |p| {
        default_protocol(p);
        if let Some(port) = p.get("port").cloned() {
            set_default(p, "targetPort", port);
        }
    });
    if let Some(status) = ensure_obj(m, "status") {
        set_default(status, "loadBalancer", json!({}));
    }
}

fn default_namespace(m: &mut Map<String, Value>) {
    let name = m
        .get("metadata")
        .and_then(|md| md.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !name.is_empty() {
        if let Some(labels) = ensure_obj(m, "metadata").and_then(|md| ensure_obj(md, "labels")) {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    if let Some(spec) = ensure_obj(m, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(m, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

fn default_secret(m: &mut Map<String, Value>) {
    set_default(m, "type", json!("Opaque"));
    if let Some(Value::Object(string_data)) = m.remove("stringData") {
        if let Some(data) = ensure_obj(m, "data") {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                data.insert(k, json!(encoded));
            }
        }
    }
}

fn default_deployment(m: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        let ty = set_default(strategy, "type", json!("RollingUpdate")).clone();
        if ty == "RollingUpdate" {
            if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    default_template(spec);
}

fn default_replica_set(m: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    default_template(spec);
}

fn default_stateful_set(m: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        let ty = set_default(us, "type", json!("RollingUpdate")).clone();
        if ty == "RollingUpdate" {
            if let Some(ru) = ensure_obj(us, "rollingUpdate") {
                set_default(ru, "partition", json!(0));
            }
        }
    }
    default_template(spec);
}

fn default_daemon_set(m: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    set_default(spec, "revisionHistoryLimit", json!(10));
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        let ty = set_default(us, "type", json!("RollingUpdate")).clone();
        if ty == "RollingUpdate" {
            if let Some(ru) = ensure_obj(us, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
    }
    default_template(spec);
}

fn default_job(m: &mut Map<String, Value>) {
    let (uid, name) = {
        let md = m.get("metadata");
        let s = |k: &str| {
            md.and_then(|md| md.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (s("uid"), s("name"))
    };
    let Some(spec) = ensure_obj(m, "spec") else {
        return;
    };
    let completions_set = spec.get("completions").is_some_and(|v| !v.is_null());
    if !completions_set && spec.get("parallelism").is_none_or(Value::is_null) {
        set_default(spec, "completions", json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    default_template(spec);
    // Generated selector (the Job strategy's PrepareForCreate), once the uid is known.
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && !uid.is_empty() && spec.get("selector").is_none_or(Value::is_null) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
        if let Some(labels) = spec
            .get_mut("template")
            .and_then(Value::as_object_mut)
            .and_then(|t| ensure_obj(t, "metadata"))
            .and_then(|md| ensure_obj(md, "labels"))
        {
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                labels.entry(k.to_string()).or_insert(json!(v));
            }
        }
    }
}
