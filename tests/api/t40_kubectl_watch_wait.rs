//! kubectl get -w (table, --output-watch-events, -o name) and kubectl wait (condition, jsonpath,
//! delete, timeout) over the server's watch.

use std::time::Duration;

use crate::support::{Kubectl, TestCluster};

const WATCH_TIMEOUT: Duration = Duration::from_secs(30);

fn first_col(line: &str) -> Option<&str> {
    line.split_whitespace().next()
}

fn get_watch(k: &Kubectl, version: &str) {
    k.ok(&["run", "w1", "--image=busybox:1.36"]);

    // Table watch: the header and the current rows first, then every change as a row.
    let mut w = k.spawn(&["get", "pods", "-w"]);
    let header = w.wait_line(WATCH_TIMEOUT, "the table header", |l| l.starts_with("NAME"));
    assert!(
        header.contains("READY") && header.contains("STATUS") && header.contains("AGE"),
        "kubectl {version} get -w header: {header}"
    );
    w.wait_line(WATCH_TIMEOUT, "the initial w1 row", |l| {
        first_col(l) == Some("w1")
    });
    k.ok(&["run", "w2", "--image=busybox:1.36"]);
    let row = w.wait_line(WATCH_TIMEOUT, "the w2 row (ADDED)", |l| {
        first_col(l) == Some("w2")
    });
    assert!(row.contains("Pending"), "kubectl {version}: {row}");
    k.ok(&["label", "pod", "w1", "seen=yes"]);
    w.wait_line(WATCH_TIMEOUT, "a second w1 row (MODIFIED)", |l| {
        first_col(l) == Some("w1")
    });
    drop(w);

    // With event types.
    let mut w = k.spawn(&["get", "pods", "-w", "--output-watch-events"]);
    let header = w.wait_line(WATCH_TIMEOUT, "the table header", |l| {
        l.starts_with("EVENT")
    });
    assert!(header.contains("NAME"), "kubectl {version}: {header}");
    let cols = |l: &str| {
        l.split_whitespace()
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    w.wait_line(WATCH_TIMEOUT, "ADDED w1", |l| cols(l) == ["ADDED", "w1"]);
    w.wait_line(WATCH_TIMEOUT, "ADDED w2", |l| cols(l) == ["ADDED", "w2"]);
    k.ok(&["annotate", "pod", "w2", "note=x"]);
    w.wait_line(WATCH_TIMEOUT, "MODIFIED w2", |l| {
        cols(l) == ["MODIFIED", "w2"]
    });
    k.ok(&["delete", "pod", "w2"]);
    w.wait_line(WATCH_TIMEOUT, "DELETED w2", |l| {
        cols(l) == ["DELETED", "w2"]
    });
    drop(w);

    // JSON watch (plain application/json Accept): the changed object is printed.
    let mut w = k.spawn_watching(&["get", "pods", "w1", "-w", "--watch-only", "-o", "json"]);
    k.ok(&["label", "pod", "w1", "json-watch=seen"]);
    w.wait_line(WATCH_TIMEOUT, "the relabelled w1 as JSON", |l| {
        l.contains(r#""json-watch": "seen""#)
    });
    drop(w);

    // -o name, across namespaces, started from "now" (--watch-only).
    k.ok(&["create", "namespace", "watched"]);
    let mut w = k.spawn_watching(&["get", "pods", "-A", "--watch-only", "-o", "name"]);
    k.ok(&["run", "late", "-n", "watched", "--image=busybox:1.36"]);
    w.wait_line(WATCH_TIMEOUT, "pod/late", |l| l.trim() == "pod/late");
    let seen = w.seen().to_vec();
    assert!(
        !seen.iter().any(|l| l.trim() == "pod/w1"),
        "kubectl {version}: --watch-only must not list existing pods: {seen:?}"
    );
}

const HELD_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: doomed
  finalizers: ["example.com/hold"]
spec:
  containers:
  - name: c
    image: busybox:1.36
"#;

fn wait(c: &TestCluster, k: &Kubectl, version: &str) {
    k.ok(&["run", "ready-me", "--image=busybox:1.36"]);

    // condition=Ready, set through the status subresource once kubectl watches.
    let waiter = k.spawn_watching(&[
        "wait",
        "--for=condition=Ready",
        "pod/ready-me",
        "--timeout=60s",
    ]);
    let out = k.ok(&[
        "patch",
        "pod",
        "ready-me",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    assert!(
        out.contains("pod/ready-me patched"),
        "kubectl {version}: {out}"
    );
    let r = waiter.wait_exit(Duration::from_secs(70));
    assert!(
        r.success() && r.stdout.contains("pod/ready-me condition met"),
        "kubectl {version} wait --for=condition=Ready\n{}\n{}",
        r.describe(),
        c.logs()
    );
    let p = k.get_json("pod", "ready-me");
    assert_eq!(p["status"]["conditions"][0]["type"], "Ready", "{p}");

    // jsonpath on a label set once kubectl watches.
    let waiter = k.spawn_watching(&[
        "wait",
        "--for=jsonpath={.metadata.labels.phase}=two",
        "pod/ready-me",
        "--timeout=60s",
    ]);
    k.ok(&["label", "pod", "ready-me", "phase=one"]);
    k.ok(&["label", "pod", "ready-me", "phase=two", "--overwrite"]);
    let r = waiter.wait_exit(Duration::from_secs(70));
    assert!(
        r.success() && r.stdout.contains("pod/ready-me condition met"),
        "kubectl {version} wait --for=jsonpath\n{}",
        r.describe()
    );

    // delete: a finalizer holds the pod (deletionTimestamp set) while kubectl watches; removing
    // the finalizer deletes it and the watch reports DELETED.
    let r = k.run_with(&["create", "-f", "-"], Some(HELD_POD), &[]);
    k.assert_ok(&r);
    let out = k.ok(&["delete", "pod", "doomed", "--wait=false"]);
    assert!(
        out.contains(r#"pod "doomed" deleted"#),
        "kubectl {version}: {out}"
    );
    let p = k.get_json("pod", "doomed");
    assert!(
        p["metadata"]["deletionTimestamp"].is_string(),
        "kubectl {version}: a pod with a finalizer stays, marked for deletion: {p}"
    );
    let waiter = k.spawn_watching(&["wait", "--for=delete", "pod/doomed", "--timeout=60s"]);
    k.ok(&[
        "patch",
        "pod",
        "doomed",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let r = waiter.wait_exit(Duration::from_secs(70));
    assert!(
        r.success() && r.stdout.contains("pod/doomed condition met"),
        "kubectl {version} wait --for=delete\n{}",
        r.describe()
    );

    // A condition that never comes: kubectl gives up at its own timeout, exit 1.
    let r = k.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/doomed-not",
        "--timeout=1s",
    ]);
    assert!(
        !r.success(),
        "kubectl {version}: waiting on a missing pod\n{}",
        r.describe()
    );
    k.ok(&["run", "never", "--image=busybox:1.36"]);
    let r = k.run(&["wait", "--for=condition=Ready", "pod/never", "--timeout=2s"]);
    assert!(
        !r.success() && r.stderr.contains("timed out waiting for the condition"),
        "kubectl {version} wait timeout\n{}",
        r.describe()
    );

    // Deployment spec through wait's informer: jsonpath on spec.replicas after a scale.
    k.ok(&[
        "create",
        "deployment",
        "waited",
        "--image=nginx",
        "--replicas=1",
    ]);
    let waiter = k.spawn_watching(&[
        "wait",
        "--for=jsonpath={.spec.replicas}=3",
        "deployment/waited",
        "--timeout=60s",
    ]);
    k.ok(&["scale", "deployment", "waited", "--replicas=3"]);
    let r = waiter.wait_exit(Duration::from_secs(70));
    assert!(
        r.success() && r.stdout.contains("deployment.apps/waited condition met"),
        "kubectl {version} wait on a deployment\n{}",
        r.describe()
    );
}

fn watch_wait(version: &str) {
    let c = TestCluster::start();
    let k = c.kubectl(version);
    get_watch(&k, version);
    wait(&c, &k, version);
}

kubectl_versions!(watch_wait);
