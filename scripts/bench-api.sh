#!/usr/bin/env bash
# API benchmark: `navarch loadtest api` against a Navarch control plane started here.
#
# Starts a Navarch store (STORE_NODES members, 1 by default: the `navarch up` topology) on
# 127.0.0.1:42379.. and REPLICAS apiserver processes on 127.0.0.1:46443.., waits until every
# replica is ready, then runs `navarch loadtest api` over all replicas: create / get / update /
# list of pods, watch fan-out to WATCHERS watchers, LIST of LIST_OBJECTS pods from the watch
# cache, memory per cached pod. Prints the loadtest table plus the store's CPU over the run.
# Every process it starts is stopped on exit; data lives in a mktemp dir that is removed
# (KEEP_WORK=1 keeps it and the logs).
#
# Environment (defaults in brackets):
#   NAVARCH       navarch binary [$CARGO_TARGET_DIR/release/navarch]
#   STORE_NODES [1]  REPLICAS [1]  CLIENTS [64]  OBJECTS [10000]  OPS [20000]  LISTS [20]
#   WATCHERS [5000]  FANOUT_EVENTS [20]  LIST_OBJECTS [100000]  BIG_LISTS [5]
#   PHASES        [create,get,update,list,watch,biglist]
#   KEEP_WORK     keep the data/log directory [0]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh

NAVARCH="${NAVARCH:-$CARGO_TARGET_DIR/release/navarch}"
[ -x "$NAVARCH" ] || {
  echo "bench-api: no navarch binary at $NAVARCH; build it with 'cargo build --release -p navarch --bin navarch' or set NAVARCH" >&2
  exit 1
}
STORE_NODES="${STORE_NODES:-1}"
REPLICAS="${REPLICAS:-1}"
KEEP_WORK="${KEEP_WORK:-0}"
# 5,000 watchers are 5,000 connections on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK="$(mktemp -d -t navarch-bench-api.XXXXXX)"
bench_traps

# CPU ticks (user + system, 1/100 s) of the processes whose name starts with $1.
cpu_ticks() {
  local i ticks=0
  for i in "${!NAMES[@]}"; do
    case "${NAMES[$i]}" in "$1"*) ;; *) continue ;; esac
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/${PIDS[$i]}/stat")))
  done
  echo "$ticks"
}

CLUSTER=""
STORE_ENDPOINTS=""
for i in $(seq 1 "$STORE_NODES"); do
  CLUSTER="${CLUSTER:+$CLUSTER,}$i=127.0.0.1:$((42280 + i * 100))"
  STORE_ENDPOINTS="${STORE_ENDPOINTS:+$STORE_ENDPOINTS,}127.0.0.1:$((42279 + i * 100))"
done
for i in $(seq 1 "$STORE_NODES"); do
  bench_start "store$i" "$NAVARCH" store --data-dir "$WORK/store$i" \
    --client-addr "127.0.0.1:$((42279 + i * 100))" --peer-addr "127.0.0.1:$((42280 + i * 100))" \
    --id "$i" --initial-cluster "$CLUSTER"
done
API_ENDPOINTS=""
for r in $(seq 1 "$REPLICAS"); do
  port=$((46442 + r))
  bench_start "apiserver$r" "$NAVARCH" apiserver --store-endpoints "$STORE_ENDPOINTS" --listen "127.0.0.1:$port"
  API_ENDPOINTS="${API_ENDPOINTS:+$API_ENDPOINTS,}http://127.0.0.1:$port"
done

deadline=$((SECONDS + 90))
for url in ${API_ENDPOINTS//,/ }; do
  until curl -sf "$url/readyz" >/dev/null 2>&1; do
    bench_check_alive
    [ "$SECONDS" -lt "$deadline" ] || { echo "bench-api: $url not ready after 90 s" >&2; exit 1; }
    sleep 0.3
  done
done
echo "bench-api: store $STORE_ENDPOINTS, apiservers $API_ENDPOINTS (work dir $WORK)" >&2

store_before=$(cpu_ticks store)
"$NAVARCH" loadtest api --endpoints "$API_ENDPOINTS" \
  --clients "${CLIENTS:-64}" --objects "${OBJECTS:-10000}" --ops "${OPS:-20000}" \
  --lists "${LISTS:-20}" --watchers "${WATCHERS:-5000}" --fanout-events "${FANOUT_EVENTS:-20}" \
  --list-objects "${LIST_OBJECTS:-100000}" --big-lists "${BIG_LISTS:-5}" \
  --phases "${PHASES:-create,get,update,list,watch,biglist}" \
  --label "store=${STORE_NODES} replicas=${REPLICAS}" --json >"$WORK/report.out" &
LOAD_PID=$!
wait "$LOAD_PID"
LOAD_PID=""
bench_check_alive
store_after=$(cpu_ticks store)
grep -v '^{' "$WORK/report.out"
echo "store CPU over the whole run: $(( (store_after - store_before) / 100 )) s (all $STORE_NODES members)"
grep '^{' "$WORK/report.out" >"$WORK/report.json" || true
echo "bench-api: JSON report: $(cat "$WORK/report.json")" >&2
