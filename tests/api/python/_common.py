"""Shared helpers for the apiserver's Python-client tests: kubeconfig loading, checks that
exit non-zero with a clear message, and a watch collector running in a thread."""

import argparse
import os
import queue
import sys
import threading
import time
import traceback

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def fail(msg):
    """Print msg to stderr and exit 1 (at once: watch threads may still be blocked)."""
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def expect(cond, msg):
    """Fail with msg unless cond holds."""
    if not cond:
        fail(msg)


def args():
    """Parse --kubeconfig."""
    p = argparse.ArgumentParser()
    p.add_argument("--kubeconfig", required=True)
    return p.parse_args()


def load():
    """An ApiClient for the kubeconfig given on the command line."""
    a = args()
    return config.new_client_from_config(config_file=a.kubeconfig)


def expect_api_error(fn, code, reason, what):
    """Call fn(); it must raise ApiException with HTTP `code` and a Status of `reason`.
    Returns the parsed Status."""
    import json

    try:
        fn()
    except ApiException as e:
        expect(e.status == code, f"{what}: expected HTTP {code}, got {e.status}: {e.body}")
        try:
            status = json.loads(e.body)
        except Exception:  # noqa: BLE001 - any parse failure is the finding
            fail(f"{what}: error body is not a JSON Status: {e.body!r}")
        expect(status.get("kind") == "Status", f"{what}: not a Status: {status}")
        expect(status.get("reason") == reason, f"{what}: reason {status.get('reason')} != {reason}: {status}")
        expect(status.get("code") == code, f"{what}: Status.code {status.get('code')} != {code}")
        return status
    fail(f"{what}: expected HTTP {code} {reason}, the call succeeded")


def run(main):
    """Run main(), turning any unexpected exception into a clear failure."""
    try:
        main()
    except SystemExit:
        raise
    except ApiException as e:
        traceback.print_exc()
        fail(f"unexpected API error {e.status} {e.reason}: {e.body}")
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        fail(f"unexpected {type(e).__name__}: {e}")
    print("OK")
    # Leave without waiting on watch or writer threads still blocked in the network (daemon
    # threads at interpreter shutdown can abort the process).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class Watcher:
    """Runs watch.Watch().stream(list_fn, *args, resource_version=rv) in a thread and collects
    (type, name, resourceVersion, raw_object) tuples."""

    def __init__(self, list_fn, *fn_args, resource_version, **kwargs):
        self.events = queue.Queue()
        self.seen = []
        self.error = None
        self._w = watch.Watch()
        self._t = threading.Thread(
            target=self._run,
            args=(list_fn, fn_args, resource_version, kwargs),
            daemon=True,
        )
        self._t.start()

    def _run(self, list_fn, fn_args, rv, kwargs):
        try:
            for ev in self._w.stream(list_fn, *fn_args, resource_version=rv, timeout_seconds=90, **kwargs):
                raw = ev["raw_object"]
                meta = raw.get("metadata", {})
                self.events.put((ev["type"], meta.get("name"), meta.get("resourceVersion"), raw))
        except Exception as e:  # noqa: BLE001 - reported by next()
            self.error = e
            self.events.put(None)

    def next(self, timeout, what):
        """The next event, failing after timeout seconds."""
        deadline = time.monotonic() + timeout
        left = deadline - time.monotonic()
        try:
            ev = self.events.get(timeout=max(left, 0.01))
        except queue.Empty:
            fail(f"timed out after {timeout}s waiting for {what}; events so far: {self.describe()}")
        if ev is None:
            fail(f"watch failed while waiting for {what}: {self.error!r}; events so far: {self.describe()}")
        self.seen.append(ev)
        return ev

    def expect_sequence(self, expected, timeout=30):
        """The next events must be exactly `expected` [(type, name), ...], in order."""
        for typ, name in expected:
            ev = self.next(timeout, f"{typ} {name}")
            expect((ev[0], ev[1]) == (typ, name),
                   f"expected event {typ} {name}, got {ev[0]} {ev[1]}; events so far: {self.describe()}")

    def describe(self):
        return [(t, n, rv) for (t, n, rv, _) in self.seen]

    def stop(self):
        self._w.stop()
