#!/usr/bin/env python3
"""Pods through the official Python client: create, read, list (selectors), strategic/merge/JSON
patch, replace, stale replace (409), duplicate create (409), status update, delete (404 after),
and a watch that sees exactly ADDED, MODIFIED..., DELETED in order with increasing
resourceVersions."""

from kubernetes import client

from _common import Watcher, expect, expect_api_error, load, run

NS = "py-pods"


def pod(name, labels):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]),
    )


def main():
    api = load()
    v1 = client.CoreV1Api(api)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    expect_api_error(lambda: v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS))),
                     409, "AlreadyExists", "duplicate namespace")

    empty = v1.list_namespaced_pod(NS)
    expect(empty.items == [], f"new namespace has pods: {empty.items}")
    rv0 = empty.metadata.resource_version
    expect(rv0 and rv0.isdigit(), f"list resourceVersion {rv0!r}")
    w = Watcher(v1.list_namespaced_pod, NS, resource_version=rv0)
    # A second watch with a label selector: objects entering it are ADDED, leaving it DELETED.
    ws = Watcher(v1.list_namespaced_pod, NS, resource_version=rv0, label_selector="app=py")

    # create
    created = v1.create_namespaced_pod(NS, pod("p1", {"app": "py", "stage": "new"}))
    expect(created.metadata.name == "p1", f"created name {created.metadata.name}")
    expect(created.metadata.namespace == NS, f"created namespace {created.metadata.namespace}")
    expect(created.metadata.uid, "created pod has no uid")
    expect(created.metadata.creation_timestamp is not None, "no creationTimestamp")
    expect(int(created.metadata.resource_version) > int(rv0), "resourceVersion did not advance")
    expect(created.status is not None and created.status.phase == "Pending",
           f"a new pod is Pending: {created.status}")
    expect_api_error(lambda: v1.create_namespaced_pod(NS, pod("p1", {})), 409, "AlreadyExists", "duplicate pod")

    # read / list with selectors
    got = v1.read_namespaced_pod("p1", NS)
    expect(got.metadata.uid == created.metadata.uid, "read returns another uid")
    expect(got.spec.containers[0].image == "busybox:1.36", "image")
    v1.create_namespaced_pod(NS, pod("p2", {"app": "other"}))
    names = sorted(p.metadata.name for p in v1.list_namespaced_pod(NS).items)
    expect(names == ["p1", "p2"], f"list: {names}")
    names = [p.metadata.name for p in v1.list_namespaced_pod(NS, label_selector="app=py").items]
    expect(names == ["p1"], f"label selector app=py: {names}")
    names = sorted(p.metadata.name for p in v1.list_namespaced_pod(NS, label_selector="app in (py,other),stage!=x").items)
    expect(names == ["p1", "p2"], f"set-based selector: {names}")
    names = [p.metadata.name for p in v1.list_namespaced_pod(NS, field_selector="metadata.name=p2").items]
    expect(names == ["p2"], f"field selector: {names}")
    names = [p.metadata.name for p in v1.list_pod_for_all_namespaces(label_selector="app=py").items]
    expect(names == ["p1"], f"all namespaces: {names}")
    expect_api_error(lambda: v1.list_namespaced_pod(NS, field_selector="spec.nosuch=1"),
                     400, "BadRequest", "unknown field selector")

    # patches: strategic (dict body), JSON patch (list body), merge (explicit content type)
    p = v1.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"stage": "smp"}}})
    expect(p.metadata.labels == {"app": "py", "stage": "smp"}, f"strategic merge: {p.metadata.labels}")
    p = v1.patch_namespaced_pod("p1", NS, [{"op": "add", "path": "/metadata/labels/jp", "value": "1"}])
    expect(p.metadata.labels.get("jp") == "1", f"json patch: {p.metadata.labels}")
    p = v1.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"jp": None}}},
                                _content_type="application/merge-patch+json")
    expect("jp" not in p.metadata.labels, f"merge patch null deletes: {p.metadata.labels}")

    # replace (read-modify-write), then a stale replace
    cur = v1.read_namespaced_pod("p1", NS)
    stale_rv = got.metadata.resource_version
    cur.metadata.labels["stage"] = "replaced"
    replaced = v1.replace_namespaced_pod("p1", NS, cur)
    expect(replaced.metadata.labels["stage"] == "replaced", "replace")
    expect(int(replaced.metadata.resource_version) > int(cur.metadata.resource_version), "replace advanced rv")
    got.metadata.labels["stage"] = "stale"
    got.metadata.resource_version = stale_rv
    st = expect_api_error(lambda: v1.replace_namespaced_pod("p1", NS, got), 409, "Conflict", "stale replace")
    expect("the object has been modified" in st.get("message", ""), f"conflict message: {st}")
    expect(v1.read_namespaced_pod("p1", NS).metadata.labels["stage"] == "replaced", "stale replace was stored")

    # status subresource: status changes, the spec does not
    cur = v1.read_namespaced_pod("p1", NS)
    cur.status.phase = "Running"
    cur.spec.active_deadline_seconds = 30
    st = v1.replace_namespaced_pod_status("p1", NS, cur)
    expect(st.status.phase == "Running", f"status update: {st.status.phase}")
    expect(st.spec.active_deadline_seconds is None, "a status update must not change the spec")

    # generateName: the server picks a unique name with the prefix
    g = v1.create_namespaced_pod(NS, client.V1Pod(
        metadata=client.V1ObjectMeta(generate_name="gen-", labels={"app": "gen"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    expect(g.metadata.name.startswith("gen-") and len(g.metadata.name) > len("gen-"),
           f"generateName: {g.metadata.name}")
    g2 = v1.create_namespaced_pod(NS, client.V1Pod(
        metadata=client.V1ObjectMeta(generate_name="gen-", labels={"app": "gen"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    expect(g2.metadata.name != g.metadata.name, "generateName twice gave the same name")
    v1.delete_collection_namespaced_pod(NS, label_selector="app=gen")
    left = [p.metadata.name for p in v1.list_namespaced_pod(NS, label_selector="app=gen").items]
    expect(left == [], f"deletecollection left {left}")

    # p1 leaves the selector app=py and comes back
    v1.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"app": "elsewhere"}}})
    v1.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"app": "py"}}})

    # delete
    d = v1.delete_namespaced_pod("p2", NS)
    expect(d is not None, "delete returned nothing")
    expect_api_error(lambda: v1.read_namespaced_pod("p2", NS), 404, "NotFound", "read after delete")
    expect_api_error(lambda: v1.delete_namespaced_pod("p2", NS), 404, "NotFound", "second delete")
    v1.delete_namespaced_pod("p1", NS)

    # the watch saw every change, in order
    w.expect_sequence([
        ("ADDED", "p1"), ("ADDED", "p2"),
        ("MODIFIED", "p1"), ("MODIFIED", "p1"), ("MODIFIED", "p1"),  # three patches
        ("MODIFIED", "p1"),  # replace
        ("MODIFIED", "p1"),  # status
    ])
    gen_events = [w.next(30, "generated pod events") for _ in range(4)]
    expect(sorted(e[0] for e in gen_events) == ["ADDED", "ADDED", "DELETED", "DELETED"],
           f"generateName + deletecollection events: {[(e[0], e[1]) for e in gen_events]}")
    w.expect_sequence([
        ("MODIFIED", "p1"), ("MODIFIED", "p1"),  # relabelled out and back
        ("DELETED", "p2"), ("DELETED", "p1"),
    ])
    rvs = [int(rv) for (_, _, rv) in w.describe()]
    expect(rvs == sorted(rvs) and len(set(rvs)) == len(rvs), f"watch resourceVersions not increasing: {rvs}")
    for (typ, name, rv, raw) in w.seen:
        expect(raw.get("kind") == "Pod" and raw.get("apiVersion") == "v1",
               f"{typ} {name}: event object lacks kind/apiVersion: {raw.get('kind')} {raw.get('apiVersion')}")
    w.stop()
    ws.expect_sequence([
        ("ADDED", "p1"),
        ("MODIFIED", "p1"), ("MODIFIED", "p1"), ("MODIFIED", "p1"),  # three patches
        ("MODIFIED", "p1"),  # replace
        ("MODIFIED", "p1"),  # status
        ("DELETED", "p1"),  # left the selector (app=elsewhere)
        ("ADDED", "p1"),  # came back
        ("DELETED", "p1"),  # deleted
    ])
    ws.stop()


if __name__ == "__main__":
    run(main)
