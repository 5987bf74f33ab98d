#!/usr/bin/env python3
"""Watch failover with the official Python client: watch config maps through apiserver A while
half of the writes go in through apiserver B; print KILL-ME once a quarter have arrived (the test
then kills A); when A's stream breaks, write the second half and resume the watch on B from the
last resourceVersion seen. Every write must arrive exactly once, in order."""

import argparse
import sys
import threading

from kubernetes import client, config, watch

from _common import expect, run

NS = "py-failover"
N = 40


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kubeconfig", required=True, help="apiserver A (watched, then killed)")
    p.add_argument("--kubeconfig-b", required=True, help="apiserver B (writes, resumed watch)")
    a = p.parse_args()
    va = client.CoreV1Api(config.new_client_from_config(config_file=a.kubeconfig))
    vb = client.CoreV1Api(config.new_client_from_config(config_file=a.kubeconfig_b))
    vb.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    rv = va.list_namespaced_config_map(NS).metadata.resource_version

    a_gone = threading.Event()

    def writer():
        for i in range(N):
            if i == N // 2:
                # The second half only after A's stream broke: B must deliver it.
                a_gone.wait(90)
            vb.create_namespaced_config_map(NS, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"s-{i:03d}"), data={"seq": str(i)}))

    wt = threading.Thread(target=writer, daemon=True)
    wt.start()

    seqs, last_rv = [], rv
    told = False
    w = watch.Watch()
    try:
        for ev in w.stream(va.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=60):
            obj = ev["raw_object"]
            last_rv = obj["metadata"]["resourceVersion"]
            if ev["type"] == "ADDED":
                seqs.append(int(obj["data"]["seq"]))
            if len(seqs) >= N // 4 and not told:
                print("KILL-ME", flush=True)
                told = True
            if len(seqs) >= N:
                break
    except Exception as e:  # noqa: BLE001 - the killed server ends the stream one way or another
        print(f"watch on A ended: {type(e).__name__}", file=sys.stderr)
    a_gone.set()
    expect(told, f"A delivered only {len(seqs)} events before its stream ended")
    expect(len(seqs) <= N // 2, f"A delivered {len(seqs)} events, more than were written before the kill")
    print(f"resuming on B from {last_rv} after {len(seqs)} events", flush=True)

    w = watch.Watch()
    for ev in w.stream(vb.list_namespaced_config_map, NS, resource_version=last_rv, timeout_seconds=60):
        obj = ev["raw_object"]
        if ev["type"] == "ADDED":
            seqs.append(int(obj["data"]["seq"]))
        if len(seqs) >= N:
            w.stop()
    expect(seqs == list(range(N)), f"every write exactly once, in order: {seqs}")
    wt.join(30)
    expect(not wt.is_alive(), "the writer did not finish")


if __name__ == "__main__":
    run(main)
