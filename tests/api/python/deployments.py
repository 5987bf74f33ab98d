#!/usr/bin/env python3
"""Deployments through the official Python client: create, read, list, scale subresource,
patch, replace, delete, and a watch over all of it."""

from kubernetes import client

from _common import Watcher, expect, expect_api_error, load, run

NS = "py-deploy"


def deployment(name, replicas):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="web", image="nginx:1.25",
                                       ports=[client.V1ContainerPort(container_port=80)]),
                ]),
            ),
        ),
    )


def main():
    api = load()
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    rv0 = apps.list_namespaced_deployment(NS).metadata.resource_version
    w = Watcher(apps.list_namespaced_deployment, NS, resource_version=rv0)

    d = apps.create_namespaced_deployment(NS, deployment("web", 2))
    expect(d.metadata.generation == 1, f"generation {d.metadata.generation}")
    expect(d.spec.strategy is not None and d.spec.strategy.type == "RollingUpdate",
           f"defaulted strategy: {d.spec.strategy}")
    apps.create_namespaced_deployment(NS, deployment("api", 1))
    names = sorted(x.metadata.name for x in apps.list_namespaced_deployment(NS).items)
    expect(names == ["api", "web"], f"list: {names}")
    names = [x.metadata.name for x in apps.list_deployment_for_all_namespaces(label_selector="app=api").items]
    expect(names == ["api"], f"all namespaces with selector: {names}")

    # scale subresource
    s = apps.read_namespaced_deployment_scale("web", NS)
    expect(s.spec.replicas == 2, f"scale.spec.replicas {s.spec.replicas}")
    expect(s.status.selector == "app=web", f"scale.status.selector {s.status.selector!r}")
    s = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}},
                                               _content_type="application/merge-patch+json")
    expect(s.spec.replicas == 5, f"patched scale {s.spec.replicas}")
    d = apps.read_namespaced_deployment("web", NS)
    expect(d.spec.replicas == 5 and d.metadata.generation == 2,
           f"after scale: replicas {d.spec.replicas}, generation {d.metadata.generation}")

    # strategic merge on containers (merge key name): the port survives
    d = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "nginx:1.26"}]}}}})
    c = d.spec.template.spec.containers
    expect(len(c) == 1 and c[0].image == "nginx:1.26" and c[0].ports[0].container_port == 80,
           f"strategic merge: {c}")
    expect(d.metadata.generation == 3, f"generation {d.metadata.generation}")
    d = apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    expect(d.spec.replicas == 3, "json patch")

    # replace; stale replace conflicts
    cur = apps.read_namespaced_deployment("web", NS)
    old_rv = cur.metadata.resource_version
    cur.spec.min_ready_seconds = 7
    d = apps.replace_namespaced_deployment("web", NS, cur)
    expect(d.spec.min_ready_seconds == 7, "replace")
    cur.spec.min_ready_seconds = 9
    cur.metadata.resource_version = old_rv
    expect_api_error(lambda: apps.replace_namespaced_deployment("web", NS, cur), 409, "Conflict", "stale replace")
    expect(apps.read_namespaced_deployment("web", NS).spec.min_ready_seconds == 7, "stale replace stored")

    # an invalid update is refused: the selector does not match the template labels
    bad = apps.read_namespaced_deployment("api", NS)
    bad.spec.template.metadata.labels = {"app": "nope"}
    st = expect_api_error(lambda: apps.replace_namespaced_deployment("api", NS, bad), 422, "Invalid",
                          "selector does not match template labels")
    causes = st.get("details", {}).get("causes", [])
    expect(any("spec.template.metadata.labels" in (c.get("field") or "") for c in causes), f"causes: {causes}")

    apps.delete_namespaced_deployment("web", NS)
    apps.delete_namespaced_deployment("api", NS)
    expect_api_error(lambda: apps.read_namespaced_deployment("web", NS), 404, "NotFound", "read after delete")
    expect(apps.list_namespaced_deployment(NS).items == [], "list after delete")

    w.expect_sequence([
        ("ADDED", "web"), ("ADDED", "api"),
        ("MODIFIED", "web"),  # scale
        ("MODIFIED", "web"),  # strategic merge
        ("MODIFIED", "web"),  # json patch
        ("MODIFIED", "web"),  # replace
        ("DELETED", "web"), ("DELETED", "api"),
    ])
    last = w.seen[-2][3]
    expect(last.get("kind") == "Deployment" and last.get("apiVersion") == "apps/v1",
           f"DELETED object kind/apiVersion: {last.get('kind')} {last.get('apiVersion')}")
    expect(last["spec"]["minReadySeconds"] == 7, "DELETED carries the last state")
    w.stop()


if __name__ == "__main__":
    run(main)
