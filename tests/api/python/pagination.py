#!/usr/bin/env python3
"""List pagination through the official Python client: limit/continue pages that together hold
every object exactly once, in name order, from one consistent snapshot; an invalid continue
token is a 400."""

from kubernetes import client

from _common import expect, expect_api_error, load, run

NS = "py-pages"
N = 25


def main():
    api = load()
    v1 = client.CoreV1Api(api)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    want = sorted(f"cm-{i:02d}" for i in range(N))
    for name in want:
        v1.create_namespaced_config_map(NS, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"batch": "x"}), data={"i": name}))

    full = v1.list_namespaced_config_map(NS, label_selector="batch=x")
    expect(sorted(c.metadata.name for c in full.items) == want, "unpaged list")
    expect(not full.metadata._continue, f"unpaged list has continue {full.metadata._continue!r}")

    pages, token, seen = [], None, []
    snapshot_rv = None
    for i in range(10):
        page = v1.list_namespaced_config_map(NS, label_selector="batch=x", limit=10, _continue=token)
        pages.append(len(page.items))
        expect(len(page.items) <= 10, f"page {i} has {len(page.items)} items, limit 10")
        seen.extend(c.metadata.name for c in page.items)
        if i == 0:
            snapshot_rv = page.metadata.resource_version
            expect(page.metadata.remaining_item_count in (None, N - 10),
                   f"remainingItemCount {page.metadata.remaining_item_count}")
            # A write between pages is not in the later pages: they read the first page's snapshot.
            v1.create_namespaced_config_map(NS, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="cm-99-late", labels={"batch": "x"})))
        else:
            expect(page.metadata.resource_version == snapshot_rv,
                   f"page {i} resourceVersion {page.metadata.resource_version} != first page {snapshot_rv}")
        token = page.metadata._continue
        if not token:
            break
    expect(pages == [10, 10, 5], f"page sizes {pages}")
    expect(seen == want, f"pages hold every item once, in order: {seen}")

    # Across namespaces, small pages.
    seen, token = [], None
    for _ in range(20):
        page = v1.list_config_map_for_all_namespaces(limit=7, _continue=token, label_selector="batch=x")
        seen.extend(c.metadata.name for c in page.items)
        token = page.metadata._continue
        if not token:
            break
    expect(sorted(seen) == sorted(want + ["cm-99-late"]) and len(seen) == len(set(seen)),
           f"all-namespace pages: {seen}")

    expect_api_error(lambda: v1.list_namespaced_config_map(NS, limit=5, _continue="not-a-token"),
                     400, "BadRequest", "garbage continue token")

    # deletecollection with a label selector removes exactly the selected objects.
    v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="keep")))
    v1.delete_collection_namespaced_config_map(NS, label_selector="batch=x")
    left = sorted(c.metadata.name for c in v1.list_namespaced_config_map(NS).items)
    expect(left == ["keep"], f"after deletecollection: {left}")


if __name__ == "__main__":
    run(main)
