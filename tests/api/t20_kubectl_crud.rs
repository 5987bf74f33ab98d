//! kubectl create deployment / run / get (-A, -o wide|yaml|json|name) / scale / label / annotate /
//! patch (strategic, merge, json) / edit (scripted EDITOR) / describe / delete.

use serde_json::Value;

use crate::support::{squash_ws, table_header, table_row, Kubectl, TestCluster};

/// The row of `table` whose column `col` is `value`.
fn row_where(table: &str, col: usize, value: &str) -> Option<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.get(col).map(String::as_str) == Some(value))
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn create_and_get(k: &Kubectl, version: &str) {
    let out = k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web created",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["kind"], "Deployment", "{d}");
    assert_eq!(d["apiVersion"], "apps/v1", "{d}");
    assert_eq!(d["metadata"]["namespace"], "default", "{d}");
    assert!(
        d["metadata"]["uid"].as_str().is_some_and(|u| u.len() >= 32),
        "uid: {d}"
    );
    assert!(
        d["metadata"]["creationTimestamp"].is_string(),
        "creationTimestamp: {d}"
    );
    assert!(
        d["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| rv.parse::<u64>().is_ok()),
        "resourceVersion: {d}"
    );
    assert_eq!(num(&d["metadata"]["generation"]), 1, "{d}");
    assert_eq!(d["metadata"]["labels"]["app"], "web", "{d}");
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    let c0 = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c0["name"], "nginx", "{d}");
    assert_eq!(c0["image"], "nginx:1.25", "{d}");
    assert_eq!(c0["ports"][0]["containerPort"], 80, "{d}");
    // Defaulting, as the real apiserver does it.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "{d}");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10, "{d}");
    assert_eq!(c0["ports"][0]["protocol"], "TCP", "{d}");
    assert_eq!(
        d["spec"]["template"]["spec"]["restartPolicy"], "Always",
        "{d}"
    );

    // Table output, plain and wide.
    let out = k.ok(&["get", "deployments"]);
    assert_eq!(
        table_header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "kubectl {version} get deployments:\n{out}"
    );
    let row = table_row(&out, "web").unwrap_or_else(|| panic!("no web row:\n{out}"));
    assert_eq!(
        &row[..4],
        ["web", "0/2", "0", "0"],
        "kubectl {version}:\n{out}"
    );
    let out = k.ok(&["get", "deployments", "-o", "wide"]);
    assert_eq!(
        table_header(&out),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "kubectl {version} get deployments -o wide:\n{out}"
    );
    let row = table_row(&out, "web").unwrap_or_else(|| panic!("no web row:\n{out}"));
    assert_eq!(
        &row[5..],
        ["nginx", "nginx:1.25", "app=web"],
        "kubectl {version}:\n{out}"
    );

    // Pods in two namespaces.
    let out = k.ok(&["create", "namespace", "other"]);
    assert_eq!(out.trim(), "namespace/other created", "kubectl {version}");
    let out = k.ok(&[
        "run",
        "p1",
        "--image=busybox:1.36",
        "--labels=app=p1,tier=a",
    ]);
    assert_eq!(out.trim(), "pod/p1 created", "kubectl {version}");
    let out = k.ok(&["run", "p2", "-n", "other", "--image=busybox:1.36"]);
    assert_eq!(out.trim(), "pod/p2 created", "kubectl {version}");

    let out = k.ok(&["get", "pods", "-A"]);
    assert_eq!(
        table_header(&out),
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "kubectl {version} get pods -A:\n{out}"
    );
    let p1 = row_where(&out, 1, "p1").unwrap_or_else(|| panic!("no p1 row:\n{out}"));
    assert_eq!(
        &p1[..5],
        ["default", "p1", "0/1", "Pending", "0"],
        "kubectl {version}:\n{out}"
    );
    let p2 = row_where(&out, 1, "p2").unwrap_or_else(|| panic!("no p2 row:\n{out}"));
    assert_eq!(p2[0], "other", "kubectl {version}:\n{out}");

    let out = k.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        table_header(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "kubectl {version} get pods -o wide:\n{out}"
    );
    let p1 = table_row(&out, "p1").unwrap_or_else(|| panic!("no p1 row:\n{out}"));
    assert_eq!(
        &p1[5..],
        ["<none>", "<none>", "<none>", "<none>"],
        "kubectl {version}:\n{out}"
    );
    assert!(
        table_row(&out, "p2").is_none(),
        "p2 is in another namespace:\n{out}"
    );

    let out = k.ok(&["get", "pods", "--show-labels"]);
    let p1 = table_row(&out, "p1").unwrap_or_else(|| panic!("no p1 row:\n{out}"));
    assert_eq!(
        p1.last().map(String::as_str),
        Some("app=p1,tier=a"),
        "kubectl {version} --show-labels:\n{out}"
    );
    let out = k.ok(&["get", "pods", "-L", "tier"]);
    assert_eq!(
        table_header(&out).last().map(String::as_str),
        Some("TIER"),
        "kubectl {version} -L tier:\n{out}"
    );

    // Selectors.
    let out = k.ok(&["get", "pods", "-A", "-l", "app=p1", "-o", "name"]);
    assert_eq!(out.trim(), "pod/p1", "kubectl {version} -l app=p1");
    let out = k.ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector=metadata.namespace=other",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "pod/p2", "kubectl {version} --field-selector");
    let r = k.run(&["get", "pods", "-l", "app=nosuch"]);
    k.assert_ok(&r);
    assert!(r.stderr.contains("No resources found"), "{}", r.describe());

    // yaml / json / name / jsonpath.
    let out = k.ok(&["get", "deployments", "-o", "yaml"]);
    let y: Value = serde_yaml_ng::from_str(&out)
        .unwrap_or_else(|e| panic!("kubectl {version} -o yaml is not YAML ({e}):\n{out}"));
    assert_eq!(y["kind"], "List", "{y}");
    assert_eq!(y["items"][0]["metadata"]["name"], "web", "{y}");
    assert_eq!(y["items"][0]["kind"], "Deployment", "{y}");
    let out = k.ok(&["get", "deployment", "web", "-o", "yaml"]);
    let y: Value = serde_yaml_ng::from_str(&out).expect("yaml");
    assert_eq!(
        y["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let out = k.ok(&["get", "pods", "-A", "-o", "json"]);
    let j: Value = serde_json::from_str(&out).expect("json");
    let mut names: Vec<&str> = j["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["p1", "p2"], "kubectl {version} get pods -A -o json");
    let out = k.ok(&["get", "deployments", "-o", "name"]);
    assert_eq!(out.trim(), "deployment.apps/web");
    let out = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(out, "nginx:1.25");

    // `get all` walks the "all" category.
    let out = k.ok(&["get", "all"]);
    assert!(
        out.contains("pod/p1") && out.contains("deployment.apps/web"),
        "kubectl {version} get all:\n{out}"
    );

    // Table lists in pages of one: kubectl follows `continue` and prints one table.
    let out = k.ok(&["get", "pods", "-A", "--chunk-size=1"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("NAMESPACE")).count(),
        1,
        "kubectl {version} get --chunk-size=1 prints one header:\n{out}"
    );
    assert!(
        row_where(&out, 1, "p1").is_some() && row_where(&out, 1, "p2").is_some(),
        "kubectl {version} get --chunk-size=1 lists every page:\n{out}"
    );
}

fn scale_label_annotate(k: &Kubectl, version: &str) {
    let out = k.ok(&["scale", "deployment", "web", "--replicas=3"]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web scaled",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["spec"]["replicas"], 3, "{d}");
    assert_eq!(
        num(&d["metadata"]["generation"]),
        2,
        "a spec change bumps generation: {d}"
    );

    let out = k.ok(&["label", "deployment", "web", "tier=frontend"]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web labeled",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["metadata"]["labels"]["tier"], "frontend", "{d}");
    assert_eq!(
        num(&d["metadata"]["generation"]),
        2,
        "metadata changes keep generation: {d}"
    );
    let r = k.run(&["label", "deployment", "web", "tier=backend"]);
    assert!(
        !r.success() && r.stderr.contains("--overwrite is false"),
        "kubectl {version} label without --overwrite\n{}",
        r.describe()
    );
    k.ok(&["label", "deployment", "web", "tier=backend", "--overwrite"]);
    assert_eq!(
        k.get_json("deployment", "web")["metadata"]["labels"]["tier"],
        "backend"
    );
    let out = k.ok(&["label", "deployment", "web", "tier-"]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web unlabeled",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert!(d["metadata"]["labels"].get("tier").is_none(), "{d}");
    assert_eq!(d["metadata"]["labels"]["app"], "web", "{d}");

    let out = k.ok(&["annotate", "deployment", "web", "note=hello world"]);
    // kubectl 1.27 prints "annotate" (fixed in 1.28).
    assert!(
        [
            "deployment.apps/web annotated",
            "deployment.apps/web annotate"
        ]
        .contains(&out.trim()),
        "kubectl {version}: {out}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["metadata"]["annotations"]["note"], "hello world", "{d}");
    k.ok(&["annotate", "deployment", "web", "note-"]);
    let d = k.get_json("deployment", "web");
    assert!(
        d["metadata"]["annotations"].get("note").is_none(),
        "annotation removed: {d}"
    );

    // Labels on pods, through the short name.
    k.ok(&["label", "po", "p1", "color=blue"]);
    let out = k.ok(&["get", "po", "-l", "color=blue", "-o", "name"]);
    assert_eq!(out.trim(), "pod/p1");
}

fn patch(k: &Kubectl, version: &str) {
    let before = k.get_json("deployment", "web");
    let gen = num(&before["metadata"]["generation"]);

    // Strategic merge (the default): containers merge by name, ports survive.
    let out = k.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}"#,
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web patched",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(cs.len(), 1, "{d}");
    assert_eq!(cs[0]["image"], "nginx:1.26", "{d}");
    assert_eq!(
        cs[0]["ports"][0]["containerPort"], 80,
        "strategic merge keeps ports: {d}"
    );
    assert_eq!(num(&d["metadata"]["generation"]), gen + 1, "{d}");
    // A second container, added by strategic merge.
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#,
    ]);
    let d = k.get_json("deployment", "web");
    let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"nginx") && names.contains(&"sidecar"),
        "kubectl {version}: strategic merge adds by key: {names:?}"
    );
    // ... and removed with $patch: delete.
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ]);
    let d = k.get_json("deployment", "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "kubectl {version}: $patch delete: {d}"
    );

    // Merge patch.
    let out = k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":5},"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web patched",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["spec"]["minReadySeconds"], 5, "{d}");
    assert_eq!(d["metadata"]["labels"]["merged"], "yes", "{d}");
    // The same patch again changes nothing: no write, kubectl says so.
    let rv = d["metadata"]["resourceVersion"].clone();
    let out = k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":5}}"#,
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web patched (no change)",
        "kubectl {version}: a no-op patch must not write"
    );
    assert_eq!(
        k.get_json("deployment", "web")["metadata"]["resourceVersion"],
        rv
    );

    // JSON patch.
    let out = k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":1},{"op":"add","path":"/metadata/labels/patched","value":"json"},{"op":"remove","path":"/metadata/labels/merged"}]"#,
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web patched",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["spec"]["replicas"], 1, "{d}");
    assert_eq!(d["metadata"]["labels"]["patched"], "json", "{d}");
    assert!(d["metadata"]["labels"].get("merged").is_none(), "{d}");
    // A failing `test` op: error, nothing changes.
    let rv = d["metadata"]["resourceVersion"].clone();
    let r = k.run(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":7}]"#,
    ]);
    // Real Kubernetes answers 422 Invalid, printed as "The request is invalid: …".
    assert!(
        !r.success() && (r.stderr.contains("Error from server") || r.stderr.contains("is invalid")),
        "kubectl {version}: failing json-patch test op\n{}",
        r.describe()
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["spec"]["replicas"], 1, "{d}");
    assert_eq!(d["metadata"]["resourceVersion"], rv, "{d}");
}

/// A scripted EDITOR: JSON in, replicas 4 and label edited=yes out.
const EDITOR: &str = r##"#!/usr/bin/env python3
import json, sys
path = sys.argv[-1]
with open(path) as f:
    text = f.read()
# kubectl puts '#' comment lines (instructions, errors) before the object.
body = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
obj = json.loads(body)
obj["spec"]["replicas"] = 4
obj["metadata"].setdefault("labels", {})["edited"] = "yes"
with open(path, "w") as f:
    json.dump(obj, f, indent=2)
"##;

/// A scripted EDITOR for the YAML buffer: replicas 4 -> 5, label yaml-edited=yes (metadata's
/// `labels:` is the only one indented by two spaces).
const YAML_EDITOR: &str = r#"#!/bin/sh
set -e
f="$(eval echo \${$#})"
sed -i -e 's/^  replicas: 4$/  replicas: 5/' -e '/^  labels:$/a\    yaml-edited: "yes"' "$f"
"#;

fn edit(c: &TestCluster, k: &Kubectl, version: &str) {
    let script = c.write_file("editor.py", EDITOR);
    make_executable(&script);
    let editor = script.display().to_string();
    let yaml_script = c.write_file("editor.sh", YAML_EDITOR);
    make_executable(&yaml_script);
    let yaml_editor = yaml_script.display().to_string();
    let r = k.run_with(
        &["edit", "deployment", "web", "-o", "json"],
        None,
        &[("EDITOR", &editor), ("KUBE_EDITOR", &editor)],
    );
    k.assert_ok(&r);
    // `-o json` is both the editing format and the output format: kubectl prints the result.
    let printed: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "kubectl {version} edit -o json output ({e}):\n{}",
            r.describe()
        )
    });
    assert_eq!(
        printed["spec"]["replicas"], 4,
        "kubectl {version}: {printed}"
    );
    // The same in YAML, printing the usual message.
    let r = k.run_with(
        &["edit", "deployment", "web"],
        None,
        &[("EDITOR", &yaml_editor), ("KUBE_EDITOR", &yaml_editor)],
    );
    k.assert_ok(&r);
    assert_eq!(
        r.stdout.trim(),
        "deployment.apps/web edited",
        "kubectl {version}"
    );
    let d = k.get_json("deployment", "web");
    assert_eq!(d["spec"]["replicas"], 5, "{d}");
    assert_eq!(d["metadata"]["labels"]["edited"], "yes", "{d}");
    assert_eq!(d["metadata"]["labels"]["yaml-edited"], "yes", "{d}");
    // An editor that changes nothing: no write.
    let rv = d["metadata"]["resourceVersion"].clone();
    let r = k.run_with(
        &["edit", "deployment", "web"],
        None,
        &[("EDITOR", "true"), ("KUBE_EDITOR", "true")],
    );
    k.assert_ok(&r);
    assert!(
        (r.stdout.clone() + &r.stderr).contains("Edit cancelled, no changes made."),
        "kubectl {version}\n{}",
        r.describe()
    );
    assert_eq!(
        k.get_json("deployment", "web")["metadata"]["resourceVersion"],
        rv
    );
}

fn make_executable(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p).expect("stat").permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm).expect("chmod");
}

fn describe(k: &Kubectl, version: &str) {
    let out = k.ok(&["describe", "deployment", "web"]);
    let s = squash_ws(&out);
    for want in [
        "Name: web",
        "Namespace: default",
        "Selector: app=web",
        "Replicas: 5 desired",
        "StrategyType: RollingUpdate",
        "Image: nginx:1.26",
        "Port: 80/TCP",
    ] {
        assert!(
            s.contains(want),
            "kubectl {version} describe deployment lacks {want:?}:\n{out}"
        );
    }
    let out = k.ok(&["describe", "pod", "p1"]);
    let s = squash_ws(&out);
    for want in [
        "Name: p1",
        "Namespace: default",
        "Status: Pending",
        "Image: busybox:1.36",
        "Events: <none>",
    ] {
        assert!(
            s.contains(want),
            "kubectl {version} describe pod lacks {want:?}:\n{out}"
        );
    }
    assert!(
        s.contains("app=p1") && s.contains("color=blue"),
        "kubectl {version} describe pod labels:\n{out}"
    );
    let out = k.ok(&["describe", "namespace", "other"]);
    assert!(
        squash_ws(&out).contains("Status: Active"),
        "kubectl {version} describe namespace:\n{out}"
    );
}

fn delete(k: &Kubectl, version: &str) {
    let out = k.ok(&["delete", "pod", "p1"]);
    assert!(
        out.contains(r#"pod "p1" deleted"#),
        "kubectl {version}: {out}"
    );
    let r = k.fail(&["get", "pod", "p1"]);
    assert!(
        r.stderr
            .contains(r#"Error from server (NotFound): pods "p1" not found"#),
        "kubectl {version}\n{}",
        r.describe()
    );
    let out = k.ok(&["delete", "deployment", "web"]);
    assert!(
        out.contains(r#"deployment.apps "web" deleted"#),
        "kubectl {version}: {out}"
    );
    let r = k.fail(&["get", "deployment", "web"]);
    assert!(
        r.stderr
            .contains(r#"Error from server (NotFound): deployments.apps "web" not found"#),
        "kubectl {version}\n{}",
        r.describe()
    );
    let r = k.fail(&["delete", "pod", "nosuch"]);
    assert!(
        r.stderr
            .contains(r#"Error from server (NotFound): pods "nosuch" not found"#),
        "kubectl {version}\n{}",
        r.describe()
    );
    let out = k.ok(&["delete", "pod", "nosuch", "--ignore-not-found"]);
    assert_eq!(out.trim(), "", "kubectl {version}");
    // delete by label across the other namespace.
    let out = k.ok(&["delete", "pods", "--all", "-n", "other"]);
    assert!(
        out.contains(r#"pod "p2" deleted"#),
        "kubectl {version}: {out}"
    );
    let r = k.run(&["get", "pods", "-A"]);
    k.assert_ok(&r);
    assert!(r.stderr.contains("No resources found"), "{}", r.describe());
}

fn crud(version: &str) {
    let c = TestCluster::start();
    let k = c.kubectl(version);
    create_and_get(&k, version);
    scale_label_annotate(&k, version);
    patch(&k, version);
    edit(&c, &k, version);
    describe(&k, version);
    delete(&k, version);
}

kubectl_versions!(crud);
