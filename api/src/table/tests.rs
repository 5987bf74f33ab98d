//! Unit tests of Table output.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::*;
use crate::resources::find;

fn now() -> Timestamp {
    "2025-01-10T12:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn table(group: &str, plural: &str, objs: &[Value]) -> Value {
    let info = find(group, "v1", plural).unwrap_or_else(|| panic!("{plural}"));
    let refs: Vec<&Value> = objs.iter().collect();
    to_table(info, &refs, now())
}

/// Column names as kubectl prints them (upper-cased), split into normal and wide-only.
fn headers(t: &Value) -> (Vec<String>, Vec<String>) {
    let cols = t["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pick = |p: i64| {
        cols.iter()
            .filter(|c| c["priority"].as_i64() == Some(p))
            .map(|c| c["name"].as_str().unwrap_or_default().to_uppercase())
            .collect::<Vec<_>>()
    };
    (pick(0), pick(1))
}

fn cells(t: &Value, row: usize) -> Vec<Value> {
    t["rows"][row]["cells"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn human_durations_match_kubernetes() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 30 * 60, "5h30m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 10 * 86400, "2y10d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (s, want) in cases {
        assert_eq!(human_duration(s), want, "{s}s");
    }
}

#[test]
fn pod_columns_like_kubectl_wide() {
    let t = table("", "pods", &[]);
    let (normal, wide) = headers(&t);
    assert_eq!(normal, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(wide, ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["rows"], json!([]));
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
}

#[test]
fn pod_rows() {
    let running = json!({
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                     "creationTimestamp": "2025-01-10T11:55:00Z", "uid": "u1"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                   "containerStatuses": [
                       {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-10T11:57:00Z"}}},
                       {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    });
    let pending = json!({
        "metadata": {"name": "p2", "namespace": "default", "creationTimestamp": "2025-01-08T09:00:00Z"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Pending"}
    });
    let done = json!({
        "metadata": {"name": "p3", "namespace": "default", "creationTimestamp": "2025-01-10T11:59:55Z"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    });
    let deleting = json!({
        "metadata": {"name": "p4", "namespace": "default", "deletionTimestamp": "2025-01-10T12:00:00Z"},
        "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]},
        "status": {"phase": "Running"}
    });
    let init = json!({
        "metadata": {"name": "p5"},
        "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i1"}, {"name": "i2"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}]}
    });
    let t = table("", "pods", &[running, pending, done, deleting, init]);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web-1"),
            json!("1/2"),
            json!("CrashLoopBackOff"),
            json!("2 (3m ago)"),
            json!("5m"),
            json!("10.0.0.5"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(
        cells(&t, 1),
        vec![
            json!("p2"),
            json!("0/1"),
            json!("Pending"),
            json!("0"),
            json!("2d3h"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(cells(&t, 2)[2], "Completed");
    assert_eq!(cells(&t, 2)[4], "5s");
    assert_eq!(t["rows"][2]["conditions"][0]["type"], "Completed");
    assert_eq!(cells(&t, 3)[2], "Terminating");
    assert_eq!(cells(&t, 3)[4], "<unknown>");
    assert_eq!(cells(&t, 4)[2], "Init:1/2");
    let obj = &t["rows"][0]["object"];
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert_eq!(obj["metadata"]["labels"]["app"], "web");
    for r in t["rows"].as_array().cloned().unwrap_or_default() {
        assert_eq!(
            r["cells"].as_array().map(Vec::len),
            Some(9),
            "cells match the column count"
        );
    }
}

#[test]
fn deployment_table() {
    let d = json!({
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2025-01-10T09:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                      {"name": "side", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    let t = table("apps", "deployments", &[d]);
    let (normal, wide) = headers(&t);
    assert_eq!(normal, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(wide, ["CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("3h"),
            json!("nginx,side"),
            json!("nginx:1.27,busybox"),
            json!("app=web")
        ]
    );
    assert_eq!(t["columnDefinitions"][2]["type"], "integer");
}

#[test]
fn other_kind_headers() {
    let h = |g: &str, p: &str| {
        let (n, w) = headers(&table(g, p, &[]));
        (n.join(" "), w.join(" "))
    };
    assert_eq!(
        h("", "nodes"),
        (
            "NAME STATUS ROLES AGE VERSION".into(),
            "INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME".into()
        )
    );
    assert_eq!(
        h("", "services"),
        (
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE".into(),
            "SELECTOR".into()
        )
    );
    assert_eq!(h("", "namespaces").0, "NAME STATUS AGE");
    assert_eq!(h("apps", "replicasets").0, "NAME DESIRED CURRENT READY AGE");
    assert_eq!(
        h("apps", "statefulsets"),
        ("NAME READY AGE".into(), "CONTAINERS IMAGES".into())
    );
    assert_eq!(
        h("apps", "daemonsets").0,
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
    );
    assert_eq!(h("batch", "jobs").0, "NAME STATUS COMPLETIONS DURATION AGE");
    assert_eq!(h("", "events").0, "LAST SEEN TYPE REASON OBJECT MESSAGE");
    assert_eq!(h("", "configmaps").0, "NAME DATA AGE");
    assert_eq!(h("", "secrets").0, "NAME TYPE DATA AGE");
    assert_eq!(h("", "serviceaccounts").0, "NAME SECRETS AGE");
    assert_eq!(h("", "endpoints").0, "NAME ENDPOINTS AGE");
    assert_eq!(
        h("discovery.k8s.io", "endpointslices").0,
        "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"
    );
    assert_eq!(h("coordination.k8s.io", "leases").0, "NAME HOLDER AGE");
    for r in crate::resources::all() {
        assert!(!column_names(r).is_empty());
    }
}

#[test]
fn service_node_event_cells() {
    let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-10T11:00:00Z"},
                     "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"b": "2", "a": "1"},
                              "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": [{"port": 443}]}});
    let t = table("", "services", &[svc, lb]);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("60m"),
            json!("a=1,b=2")
        ]
    );
    assert_eq!(cells(&t, 1)[3], "<pending>");
    assert_eq!(cells(&t, 1)[6], "<none>");

    let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
                      "spec": {"unschedulable": true},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                 "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                                 "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian"}}});
    let t = table("", "nodes", &[node]);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,worker"),
            json!("<unknown>"),
            json!("v1.33.0"),
            json!("192.168.1.2"),
            json!("<none>"),
            json!("Debian"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );

    let ev = json!({"metadata": {"name": "web-1.abc", "namespace": "default"},
                    "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
                    "reason": "Pulled", "type": "Normal", "message": " pulled \n", "count": 3,
                    "firstTimestamp": "2025-01-10T11:00:00Z", "lastTimestamp": "2025-01-10T11:59:30Z",
                    "source": {"component": "kubelet", "host": "n1"}});
    let t = table("", "events", &[ev]);
    assert_eq!(
        cells(&t, 0),
        vec![
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{a}"),
            json!("kubelet, n1"),
            json!("pulled"),
            json!("60m"),
            json!(3),
            json!("web-1.abc")
        ]
    );
}

#[test]
fn job_slice_and_generic() {
    let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 3, "parallelism": 1},
                     "status": {"succeeded": 3, "startTime": "2025-01-10T11:58:00Z", "completionTime": "2025-01-10T11:59:10Z",
                                "conditions": [{"type": "Complete", "status": "True"}]}});
    let t = table("batch", "jobs", &[job]);
    assert_eq!(
        cells(&t, 0)[1..4].to_vec(),
        vec![json!("Complete"), json!("3/3"), json!("70s")]
    );
    let es = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
                    "ports": [{"port": 80}, {"name": "x"}],
                    "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
    let t = table("discovery.k8s.io", "endpointslices", &[es]);
    assert_eq!(
        cells(&t, 0)[1..4].to_vec(),
        vec![
            json!("IPv4"),
            json!("80,x"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
        ]
    );
    let generic = crate::resources::ResourceInfo {
        plural: "widgets",
        group: "example.com",
        ..*find("", "v1", "configmaps").unwrap_or_else(|| panic!("cm"))
    };
    let o = json!({"metadata": {"name": "w", "creationTimestamp": "2025-01-10T11:59:00Z"}});
    let t = to_table(&generic, &[&o], now());
    assert_eq!(cells(&t, 0), vec![json!("w"), json!("60s")]);
}
