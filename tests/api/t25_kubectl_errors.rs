//! What kubectl prints when the server says no: NotFound, AlreadyExists, Invalid, Conflict,
//! strict field validation, unknown resource types; and nothing is stored after a refusal.

use crate::support::{Kubectl, TestCluster};

const BAD_NAME_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: Bad_Name
spec:
  containers:
  - name: c
    image: busybox:1.36
"#;

const UNKNOWN_FIELD_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: strict
spec:
  foo: bar
  containers:
  - name: c
    image: busybox:1.36
"#;

const CM: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: c1
data:
  k: v1
"#;

fn assert_absent(k: &Kubectl, kind: &str, name: &str) {
    let r = k.run(&["get", kind, name, "-o", "name"]);
    assert!(
        !r.success() && r.stderr.contains("NotFound"),
        "kubectl {}: {kind} {name} must not exist\n{}",
        k.version,
        r.describe()
    );
}

fn errors(version: &str) {
    let c = TestCluster::start();
    let k = c.kubectl(version);

    // NotFound, for every verb that names an object.
    for args in [
        &["get", "pod", "nosuch"][..],
        &["describe", "pod", "nosuch"][..],
        &["delete", "pod", "nosuch"][..],
        &["label", "pod", "nosuch", "a=b"][..],
        &["patch", "pod", "nosuch", "--type=merge", "-p", "{}"][..],
    ] {
        let r = k.fail(args);
        assert!(
            r.stderr
                .contains(r#"Error from server (NotFound): pods "nosuch" not found"#),
            "kubectl {version} {args:?}\n{}",
            r.describe()
        );
    }
    let r = k.fail(&["get", "deployment", "nosuch"]);
    assert!(
        r.stderr
            .contains(r#"Error from server (NotFound): deployments.apps "nosuch" not found"#),
        "kubectl {version}\n{}",
        r.describe()
    );
    // After a 404, kubectl itself looks the namespace up and reports the missing namespace.
    let r = k.fail(&["get", "deployment", "nosuch", "-n", "nosuchns"]);
    assert!(
        r.stderr
            .contains(r#"Error from server (NotFound): namespaces "nosuchns" not found"#),
        "kubectl {version}\n{}",
        r.describe()
    );
    // An unknown resource type is a discovery miss, not a server error.
    let r = k.fail(&["get", "nosuchthings"]);
    assert!(
        r.stderr
            .contains(r#"the server doesn't have a resource type "nosuchthings""#),
        "kubectl {version}\n{}",
        r.describe()
    );

    // AlreadyExists.
    k.ok(&["create", "deployment", "web", "--image=nginx"]);
    let r = k.fail(&["create", "deployment", "web", "--image=nginx"]);
    // Generator commands wrap the server's message.
    assert!(
        r.stderr.contains(
            r#"error: failed to create deployment: deployments.apps "web" already exists"#
        ),
        "kubectl {version}\n{}",
        r.describe()
    );
    let create = |manifest: &str| k.run_with(&["create", "-f", "-"], Some(manifest), &[]);
    let r = create(CM);
    k.assert_ok(&r);
    assert_eq!(r.stdout.trim(), "configmap/c1 created", "kubectl {version}");
    let r = create(CM);
    assert!(
        !r.success()
            && r.stderr.contains(
                r#"Error from server (AlreadyExists): error when creating "STDIN": configmaps "c1" already exists"#
            ),
        "kubectl {version}\n{}",
        r.describe()
    );

    // Invalid (422) with the field and the reason.
    let r = create(BAD_NAME_POD);
    assert!(
        !r.success()
            && r.stderr.contains(r#"Pod "Bad_Name" is invalid"#)
            && r.stderr
                .contains(r#"metadata.name: Invalid value: "Bad_Name""#)
            && r.stderr.contains("RFC 1123"),
        "kubectl {version}\n{}",
        r.describe()
    );
    assert_absent(&k, "pod", "Bad_Name");
    let r = k.run(&["create", "configmap", "Bad_Name", "--from-literal=a=b"]);
    assert!(
        !r.success()
            && r.stderr
                .contains(r#"metadata.name: Invalid value: "Bad_Name""#),
        "kubectl {version}\n{}",
        r.describe()
    );

    // Unknown fields are refused (strict field validation), nothing is stored.
    let r = create(UNKNOWN_FIELD_POD);
    assert!(
        !r.success() && r.stderr.contains("unknown field") && r.stderr.contains("foo"),
        "kubectl {version}: unknown field spec.foo\n{}",
        r.describe()
    );
    assert_absent(&k, "pod", "strict");
    let r = k.run_with(&["apply", "-f", "-"], Some(UNKNOWN_FIELD_POD), &[]);
    assert!(
        !r.success() && r.stderr.contains("unknown field") && r.stderr.contains("foo"),
        "kubectl {version}: apply with unknown field spec.foo\n{}",
        r.describe()
    );
    assert_absent(&k, "pod", "strict");

    // Conflict: replace with a stale resourceVersion.
    let stale = k.ok(&["get", "configmap", "c1", "-o", "json"]);
    k.ok(&["label", "configmap", "c1", "touched=yes"]);
    let stale = stale.replace(r#""k": "v1""#, r#""k": "v2""#);
    assert!(
        stale.contains(r#""k": "v2""#),
        "edit the stale copy: {stale}"
    );
    let r = k.run_with(&["replace", "-f", "-"], Some(&stale), &[]);
    assert!(
        !r.success()
            && r.stderr.contains("Error from server (Conflict)")
            && r.stderr.contains(
                r#"Operation cannot be fulfilled on configmaps "c1": the object has been modified; please apply your changes to the latest version and try again"#
            ),
        "kubectl {version}\n{}",
        r.describe()
    );
    let cm = k.get_json("configmap", "c1");
    assert_eq!(
        cm["data"]["k"], "v1",
        "the stale replace must not be stored: {cm}"
    );
    assert_eq!(cm["metadata"]["labels"]["touched"], "yes", "{cm}");
    // Replace without a resourceVersion is unconditional.
    let fresh = CM.replace("k: v1", "k: v3");
    let r = k.run_with(&["replace", "-f", "-"], Some(&fresh), &[]);
    k.assert_ok(&r);
    assert_eq!(
        r.stdout.trim(),
        "configmap/c1 replaced",
        "kubectl {version}"
    );
    assert_eq!(k.get_json("configmap", "c1")["data"]["k"], "v3");
}

kubectl_versions!(errors);
