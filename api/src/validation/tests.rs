//! Unit tests of defaulting and validation.

use serde_json::{json, Value};

use super::*;
use crate::resources::find;
use crate::status::StatusReason;

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    find(group, "v1", plural).unwrap_or_else(|| panic!("{plural}"))
}

/// Defaults then validates a create; returns the causes as `field: message` strings.
fn create_errors(group: &str, plural: &str, mut obj: Value) -> Vec<String> {
    let i = info(group, plural);
    default_object(i, &mut obj);
    match validate_create(i, &obj) {
        Ok(()) => Vec::new(),
        Err(e) => {
            assert_eq!(e.code, 422, "{}: {}", e.message, obj);
            e.details
                .map(|d| d.causes.iter().map(Cause::to_error_string).collect())
                .unwrap_or_default()
        }
    }
}

fn pod(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": containers}})
}

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": selector,
                    "template": {"metadata": {"labels": labels},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

#[test]
fn valid_objects_pass() {
    assert_eq!(
        create_errors(
            "",
            "pods",
            pod("web-1", json!([{"name": "c", "image": "nginx"}]))
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        create_errors(
            "apps",
            "deployments",
            deployment(
                json!({"matchLabels": {"app": "web"}}),
                json!({"app": "web"})
            )
        ),
        Vec::<String>::new()
    );
    let svc = json!({"metadata": {"name": "web", "namespace": "default"},
                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    assert_eq!(create_errors("", "services", svc), Vec::<String>::new());
    let cm = json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"a.b": "x"}});
    assert_eq!(create_errors("", "configmaps", cm), Vec::<String>::new());
    let ns = json!({"metadata": {"name": "team-a"}});
    assert_eq!(create_errors("", "namespaces", ns), Vec::<String>::new());
}

#[test]
fn bad_name_message() {
    let i = info("", "pods");
    let mut p = pod("Bad_Name", json!([{"name": "c", "image": "nginx"}]));
    default_object(i, &mut p);
    let e = validate_create(i, &p).unwrap_err();
    assert_eq!(e.reason, StatusReason::Invalid);
    assert!(
        e.message.starts_with(
            "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"
        ),
        "{}",
        e.message
    );
    let ns_errs = create_errors("", "namespaces", json!({"metadata": {"name": "a.b"}}));
    assert_eq!(ns_errs.len(), 1);
    assert!(
        ns_errs[0].starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label")
    );
    let svc = create_errors(
        "",
        "services",
        json!({"metadata": {"name": "1web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}),
    );
    assert!(svc[0].contains("DNS-1035"), "{svc:?}");
    assert_eq!(
        create_errors("", "configmaps", json!({"metadata": {"namespace": "d"}})),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert_eq!(
        create_errors("", "configmaps", json!({"metadata": {"name": "x"}})),
        vec!["metadata.namespace: Required value"]
    );
    assert_eq!(
        create_errors(
            "",
            "nodes",
            json!({"metadata": {"name": "n1", "namespace": "x"}})
        ),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
}

#[test]
fn missing_containers_and_image() {
    assert_eq!(
        create_errors("", "pods", pod("p", json!([]))),
        vec!["spec.containers: Required value"]
    );
    assert_eq!(
        create_errors("", "pods", pod("p", json!([{"name": "c"}]))),
        vec!["spec.containers[0].image: Required value"]
    );
    let errs = create_errors(
        "",
        "pods",
        pod(
            "p",
            json!([{"image": "nginx"}, {"name": "c", "image": "x"}, {"name": "c", "image": "y"}]),
        ),
    );
    assert_eq!(
        errs,
        vec![
            "spec.containers[0].name: Required value",
            "spec.containers[2].name: Duplicate value: \"c\""
        ]
    );
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .map(|c| c.remove("image"));
    assert_eq!(
        create_errors("apps", "deployments", d),
        vec!["spec.template.spec.containers[0].image: Required value"]
    );
}

#[test]
fn ports_env_volumes() {
    let errs = create_errors(
        "",
        "pods",
        pod(
            "p",
            json!([{"name": "c", "image": "x",
                    "ports": [{"containerPort": 70000, "protocol": "ICMP"}, {"name": "8080", "containerPort": 80}],
                    "env": [{"name": "1BAD"}],
                    "volumeMounts": [{"name": "nosuch", "mountPath": "/x"}]}]),
        ),
    );
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(errs.contains(&"spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string()));
    assert!(errs.contains(&"spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string()));
    assert!(errs.contains(&"spec.containers[0].ports[1].name: Invalid value: \"8080\": must contain at least one letter (a-z)".to_string()));
    assert!(errs
        .iter()
        .any(|e| e.starts_with("spec.containers[0].env[0].name: Invalid value: \"1BAD\"")));
    assert!(errs
        .contains(&"spec.containers[0].volumeMounts[0].name: Not found: \"nosuch\"".to_string()));
}

#[test]
fn selector_must_match_template() {
    let errs = create_errors(
        "apps",
        "deployments",
        deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "db"})),
    );
    assert_eq!(
        errs,
        vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`"]
    );
    let errs = create_errors(
        "apps",
        "deployments",
        deployment(Value::Null, json!({"app": "web"})),
    );
    assert_eq!(errs, vec!["spec.selector: Required value"]);
    let errs = create_errors(
        "apps",
        "deployments",
        deployment(json!({}), json!({"app": "web"})),
    );
    assert_eq!(
        errs,
        vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
    );
    let errs = create_errors("apps", "replicasets", {
        let mut rs = deployment(
            json!({"matchExpressions": [{"key": "app", "operator": "Foo"}]}),
            json!({"app": "web"}),
        );
        rs["kind"] = json!("ReplicaSet");
        rs
    });
    assert_eq!(errs, vec!["spec.selector.matchExpressions[0].operator: Invalid value: \"Foo\": not a valid selector operator"]);
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["replicas"] = json!(-1);
    let errs = create_errors("apps", "deployments", d);
    assert_eq!(
        errs,
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        ]
    );
}

#[test]
fn rolling_update_rules() {
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
    assert_eq!(
        create_errors("apps", "deployments", d.clone()),
        vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]
    );
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxUnavailable": 1}});
    assert_eq!(
        create_errors("apps", "deployments", d.clone()),
        vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "x%"}});
    assert!(create_errors("apps", "deployments", d)[0].contains("a valid percent string"));
}

#[test]
fn immutable_selector_on_update() {
    let i = info("apps", "deployments");
    let mut old = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web", "v": "1"}),
    );
    default_object(i, &mut old);
    let mut new = deployment(
        json!({"matchLabels": {"app": "web", "v": "1"}}),
        json!({"app": "web", "v": "1"}),
    );
    default_object(i, &mut new);
    let e = validate_update(i, &new, &old).unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"1\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert!(validate_update(i, &scaled, &old).is_ok());
    let mut renamed = old.clone();
    renamed["metadata"]["name"] = json!("other");
    assert!(validate_update(i, &renamed, &old)
        .unwrap_err()
        .message
        .contains("metadata.name: Invalid value: \"other\": field is immutable"));
}

#[test]
fn pod_and_other_updates() {
    let pods = info("", "pods");
    let mut old = pod("p", json!([{"name": "c", "image": "nginx:1"}]));
    default_object(pods, &mut old);
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert!(validate_update(pods, &new, &old).is_ok());
    new["spec"]["restartPolicy"] = json!("Never");
    let e = validate_update(pods, &new, &old).unwrap_err();
    assert!(
        e.message
            .contains("spec: Forbidden: pod updates may not change fields"),
        "{}",
        e.message
    );

    let svc = info("", "services");
    let old = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}});
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.0.0.2");
    assert!(validate_update(svc, &new, &old)
        .unwrap_err()
        .message
        .contains("spec.clusterIPs[0]"));

    let cms = info("", "configmaps");
    let old =
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    let e = validate_update(cms, &new, &old).unwrap_err();
    assert!(e
        .message
        .contains("data: Forbidden: field is immutable when `immutable` is set"));
}

#[test]
fn quantities() {
    let i = info("", "pods");
    let p = pod(
        "p",
        json!([{"name": "c", "image": "x", "resources": {"limits": {"memory": "1Gx"}}}]),
    );
    let e = validate_create(i, &p).unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    let causes = e.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(
        causes[0].field,
        "spec.containers[0].resources.limits[memory]"
    );

    let errs = create_errors(
        "",
        "pods",
        pod(
            "p",
            json!([{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2", "memory": "-1"}}}]),
        ),
    );
    assert_eq!(
        errs,
        vec![
            "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        ]
    );
    // Numbers are accepted and stored as strings.
    let mut p = pod(
        "p",
        json!([{"name": "c", "image": "x", "resources": {"limits": {"cpu": 1}}}]),
    );
    default_object(i, &mut p);
    assert!(validate_create(i, &p).is_ok());
    assert_eq!(
        p.pointer("/spec/containers/0/resources/limits/cpu"),
        Some(&json!("1"))
    );
    assert_eq!(
        p.pointer("/spec/containers/0/resources/requests/cpu"),
        Some(&json!("1"))
    );
}

#[test]
fn wrong_types_are_400() {
    let i = info("apps", "deployments");
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["replicas"] = json!("three");
    let e = validate_create(i, &d).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(e.message.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: spec.replicas: invalid type"), "{}", e.message);
    let s = info("", "secrets");
    let e = validate_create(
        s,
        &json!({"metadata": {"name": "s", "namespace": "d"}, "data": {"k": "!!!"}}),
    )
    .unwrap_err();
    assert_eq!(e.code, 400, "bad base64");
}

fn sorted_unknown_fields(i: &ResourceInfo, v: &Value) -> Vec<String> {
    let mut u = unknown_fields(i, v);
    u.sort();
    u
}

#[test]
fn unknown_field_paths() {
    let i = info("apps", "deployments");
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    assert!(unknown_fields(i, &d).is_empty());
    d["spec"]["replicass"] = json!(3);
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": 1}, "foo": {}});
    d["metadata"]["labels"] = json!({"any": "thing"});
    d["status"] = Value::Null;
    assert_eq!(
        sorted_unknown_fields(i, &d),
        vec![
            "spec.replicass",
            "spec.template.spec.containers[0].imagee",
            "spec.template.spec.containers[0].resources.foo",
        ]
    );
    let e = unknown::strict_error(&unknown_fields(i, &d));
    assert_eq!(e.code, 400);
    assert!(e
        .message
        .starts_with("strict decoding error: unknown field \""));
    assert!(
        e.message.contains(", unknown field \"spec.replicass\"")
            || e.message
                .contains("error: unknown field \"spec.replicass\", ")
    );
    assert_eq!(
        unknown::strict_error(&["spec.foo".into()]).message,
        "strict decoding error: unknown field \"spec.foo\""
    );
    assert_eq!(
        unknown::warn_headers(&["spec.foo".into()]),
        vec!["299 - \"unknown field \\\"spec.foo\\\"\""]
    );
    let cm = info("", "configmaps");
    assert_eq!(
        sorted_unknown_fields(cm, &json!({"metadata": {"name": "x", "nme": 1}, "dta": {}})),
        vec!["dta", "metadata.nme"]
    );
}

#[test]
fn pod_defaults() {
    let i = info("", "pods");
    let mut p = pod(
        "p",
        json!([{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "readinessProbe": {"httpGet": {"port": 80}}},
               {"name": "d", "image": "nginx:1.27"}, {"name": "e", "image": "nginx@sha256:abc"}]),
    );
    default_object(i, &mut p);
    let spec = &p["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(2));
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][2]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
    assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "Burstable");
    let before = p.clone();
    default_object(i, &mut p);
    assert_eq!(p, before, "defaulting is idempotent");
}

#[test]
fn qos_classes() {
    use super::defaults::qos_class;
    assert_eq!(
        qos_class(&json!({"containers": [{"name": "c"}]})),
        "BestEffort"
    );
    let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]});
    assert_eq!(qos_class(&g), "Guaranteed");
    assert_eq!(
        qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
        "Burstable"
    );
}

#[test]
fn deployment_and_service_defaults() {
    let i = info("apps", "deployments");
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    default_object(i, &mut d);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert!(
        d["spec"]["template"]["spec"]
            .get("serviceAccountName")
            .is_none(),
        "admission defaults are pod-only"
    );

    let s = info("", "services");
    let mut svc = json!({"metadata": {"name": "web", "namespace": "d"},
                         "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
    default_object(s, &mut svc);
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], "dns");
    let mut cip =
        json!({"metadata": {"name": "x", "namespace": "d"}, "spec": {"ports": [{"port": 1}]}});
    default_object(s, &mut cip);
    assert_eq!(cip["spec"]["type"], "ClusterIP");
    assert!(cip["spec"].get("externalTrafficPolicy").is_none());
}

#[test]
fn other_defaults() {
    let mut ns = json!({"metadata": {"name": "team"}});
    default_object(info("", "namespaces"), &mut ns);
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    let mut sec =
        json!({"metadata": {"name": "s", "namespace": "d"}, "stringData": {"user": "admin"}});
    default_object(info("", "secrets"), &mut sec);
    assert_eq!(sec["type"], "Opaque");
    assert_eq!(sec["data"]["user"], "YWRtaW4=");
    assert!(sec.get("stringData").is_none());
    let mut job = json!({"metadata": {"name": "j", "namespace": "d", "uid": "u-1"},
                         "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}});
    let jobs = info("batch", "jobs");
    default_object(jobs, &mut job);
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        "u-1"
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["job-name"],
        "j"
    );
    assert!(validate_create(jobs, &job).is_ok());
    let mut bad_job = job.clone();
    bad_job["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert!(validate_create(jobs, &bad_job)
        .unwrap_err()
        .message
        .contains("supported values: \"OnFailure\", \"Never\""));
}

#[test]
fn spec_changes() {
    let a = json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
    let mut b = a.clone();
    b["metadata"]["labels"] = json!({"x": "y"});
    b["status"]["replicas"] = json!(3);
    assert!(!spec_changed(&a, &b));
    b["spec"]["replicas"] = json!(2);
    assert!(spec_changed(&a, &b));
    let cm = json!({"metadata": {}, "data": {"a": "1"}});
    assert!(spec_changed(
        &cm,
        &json!({"metadata": {}, "data": {"a": "2"}})
    ));
}

#[test]
fn misc_kinds() {
    let errs = create_errors(
        "",
        "services",
        json!({"metadata": {"name": "s", "namespace": "d"},
               "spec": {"type": "Foo", "ports": [{"port": 80}, {"port": 80}]}}),
    );
    assert!(errs.contains(&"spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".to_string()), "{errs:?}");
    assert!(errs.contains(&"spec.ports[0].name: Required value".to_string()));
    assert!(errs.contains(
        &"spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}".to_string()
    ));
    let errs = create_errors(
        "",
        "configmaps",
        json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "x", "..x": "y"}}),
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    let errs = create_errors(
        "coordination.k8s.io",
        "leases",
        json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}}),
    );
    assert_eq!(
        errs,
        vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
    let errs = create_errors(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.300"]}]}),
    );
    assert_eq!(errs, vec!["endpoints[0].addresses[0]: Invalid value: \"10.0.0.300\": must be a valid IPv4 address"]);
    let errs = create_errors(
        "",
        "events",
        json!({"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}}),
    );
    assert_eq!(
        errs,
        vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
    );
    let errs = create_errors("", "pods", {
        let mut p = pod("p", json!([{"name": "c", "image": "x"}]));
        p["metadata"]["labels"] = json!({"bad key": "v", "ok": "bad value"});
        p
    });
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist")
    );
    assert!(errs[1]
        .starts_with("metadata.labels[ok]: Invalid value: \"bad value\": a valid label must be"));
}

#[test]
fn real_server_objects_have_no_unknown_fields() {
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "annotations": {"deployment.kubernetes.io/revision": "1",
                            "kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
            "creationTimestamp": "2025-01-10T11:00:00Z", "generation": 1,
            "labels": {"app": "web"},
            "managedFields": [{"apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:replicas": {}}},
                               "manager": "kubectl-client-side-apply", "operation": "Update",
                               "time": "2025-01-10T11:00:00Z"}],
            "name": "web", "namespace": "default", "resourceVersion": "42",
            "uid": "3c1c1a0e-0000-4000-8000-000000000000"},
        "spec": {
            "progressDeadlineSeconds": 600, "replicas": 2, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"image": "nginx:1.27", "imagePullPolicy": "IfNotPresent", "name": "nginx",
                                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                         "resources": {"limits": {"cpu": "500m", "memory": 128}},
                                         "terminationMessagePath": "/dev/termination-log",
                                         "terminationMessagePolicy": "File"}],
                         "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                         "securityContext": {}, "terminationGracePeriodSeconds": 30}}},
        "status": {"availableReplicas": 2, "observedGeneration": 1, "readyReplicas": 2, "replicas": 2, "updatedReplicas": 2,
                   "conditions": [{"lastTransitionTime": "2025-01-10T11:00:05Z", "lastUpdateTime": "2025-01-10T11:00:05Z",
                                   "message": "Deployment has minimum availability.", "reason": "MinimumReplicasAvailable",
                                   "status": "True", "type": "Available"}]}
    });
    let i = info("apps", "deployments");
    assert_eq!(unknown_fields(i, &deploy), Vec::<String>::new());
    assert!(validate_create(i, &deploy).is_ok());
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "ReplicaSet", "name": "web-abc", "uid": "u"}]},
        "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}],
                                 "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets", "readOnly": true}]}],
                 "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                     {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                     {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}}]}}],
                 "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}],
                   "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-10T11:00:05Z"}],
                   "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "started": true,
                                          "containerID": "containerd://abc", "state": {"running": {"startedAt": "2025-01-10T11:00:04Z"}},
                                          "lastState": {}}],
                   "qosClass": "BestEffort", "startTime": "2025-01-10T11:00:00Z"}
    });
    let p = info("", "pods");
    assert_eq!(unknown_fields(p, &pod), Vec::<String>::new());
    assert!(validate_create(p, &pod).is_ok());
}

#[test]
fn nulls_are_absent() {
    let i = info("apps", "deployments");
    let mut d = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    d["spec"]["strategy"] = Value::Null;
    d["spec"]["template"]["spec"]["affinity"] = Value::Null;
    default_object(i, &mut d);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(
        d["spec"]["template"]["spec"].get("affinity").is_none(),
        "nulls are not stored"
    );
    d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = Value::Null;
    d["spec"]["selector"]["matchExpressions"] = Value::Null;
    d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = Value::Null;
    assert_eq!(validate_create(i, &d), Ok(()), "nulls validate as absent");
}
