#!/usr/bin/env bash
# Shard isolation during a snapshot: commit latency of writes to one shard (events) while a large
# snapshot of another shard (pods) is streamed to and installed on a member that fell behind.
#
# 3 release nodes on loopback (ports 26379.., peers 26380..), --snapshot-count small so the log
# is purged. Steps: baseline events-shard put latency; stop member 3; fill the pods shard with
# FILL_KEYS values of FILL_BYTES; restart member 3 (it must catch up on pods by snapshot) and at
# the same time measure events-shard put latency again; report both and the snapshot count.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh
NAVARCH="${NAVARCH:-$CARGO_TARGET_DIR/release/navarch}"
FILL_KEYS="${FILL_KEYS:-40000}"
FILL_BYTES="${FILL_BYTES:-3072}"
PROBE_TOTAL="${PROBE_TOTAL:-6000}"
WORK="$(mktemp -d -t navarch-snapiso.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
CLUSTER="1=127.0.0.1:26380,2=127.0.0.1:26480,3=127.0.0.1:26580"
start_node() {
  local i="$1"
  "$NAVARCH" store --data-dir "$WORK/n$i" --client-addr "127.0.0.1:$((26279 + i * 100))" \
    --peer-addr "127.0.0.1:$((26280 + i * 100))" --id "$i" --initial-cluster "$CLUSTER" \
    --snapshot-count 2000 >>"$WORK/n$i.log" 2>&1 &
  PIDS[$i]=$!
}
for i in 1 2 3; do start_node "$i"; done
EPS="127.0.0.1:26379,127.0.0.1:26479"
for _ in $(seq 1 120); do
  etcdctl --endpoints=127.0.0.1:26379 endpoint health >/dev/null 2>&1 && break
  sleep 0.5
done
probe() { # probe LABEL: events-shard puts at a moderate rate, one JSON report line
  "$NAVARCH" loadtest store --endpoints "$EPS" --clients 8 --conns 2 --op put --value-size 256 \
    --keys 1000 --total "$PROBE_TOTAL" --warmup 200 --key-prefix /registry/events/probe/ \
    --label "$1" --json | grep '^{'
}
probe "events puts, no snapshot in flight" | tee "$WORK/base.json"
kill -TERM "${PIDS[3]}"; wait "${PIDS[3]}" 2>/dev/null || true
"$NAVARCH" loadtest store --endpoints "$EPS" --clients 64 --conns 8 --op put \
  --value-size "$FILL_BYTES" --keys "$FILL_KEYS" --total "$FILL_KEYS" --warmup 0 \
  --key-prefix /registry/pods/fill/ --label fill >/dev/null
before=$( (curl -s 127.0.0.1:26579/metrics 2>/dev/null || true) | awk '/^navarch_store_snapshots_installed_total/ {print $2}')
start_node 3
probe "events puts while member 3 installs a pods snapshot" | tee "$WORK/during.json"
for _ in $(seq 1 240); do
  n=$( (curl -s 127.0.0.1:26579/metrics 2>/dev/null || true) | awk '/^navarch_store_snapshots_installed_total/ {print $2}')
  [ -n "$n" ] && [ "${n%.*}" -ge 1 ] && break
  sleep 0.5
done
bytes=$(curl -s 127.0.0.1:26579/metrics | awk '/^navarch_store_snapshot_bytes_received_total/ {print $2}')
echo "member 3: snapshots installed ${n:-0} (before restart: ${before:-none}), snapshot bytes received ${bytes:-0}"
jq -s -r '.[] | "\(.label): \(.throughput|floor) req/s p50 \(.p50_ms) ms p99 \(.p99_ms) ms p99.9 \(.p999_ms) ms max \(.max_ms) ms"' \
  "$WORK/base.json" "$WORK/during.json"
