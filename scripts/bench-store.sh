#!/usr/bin/env bash
# Store benchmark: Navarch's raftstore against a real etcd, same machine, same load.
#
# Starts a 3-node etcd (the Debian etcd-server binary, fsync on as by default) on
# 127.0.0.1:32379/32479/32579 (peers 32380/32480/32580) and a 3-node Navarch store on
# 127.0.0.1:22379/22479/22579 (peers 22380/22480/22580), waits until both answer
# `etcdctl endpoint health`, then runs `navarch loadtest store` with the same load shape
# against each and prints both tables plus the navarch/etcd throughput and p99 ratios.
# Every process it starts is stopped on exit; data lives in a mktemp dir that is removed
# (set KEEP_WORK=1 to keep it and the logs).
#
# Environment (defaults in brackets):
#   NAVARCH        navarch binary [$CARGO_TARGET_DIR/release/navarch, else target/release/navarch]
#   ETCD, ETCDCTL  [/usr/bin/etcd, /usr/bin/etcdctl]
#   WORKLOADS      space-separated op:value_bytes list [put:256 put:3072]
#   CLIENTS [64]  CONNS [8]  TOTAL [100000]  WARMUP [1000]  KEYS [10000]
#   DURATION_SECS  optional cap per run
#   PREFIXES       comma-separated key prefixes, keys spread round-robin over them (both stores
#                  get the same keys) [one prefix per default Navarch shard: pods, events,
#                  leases, minions and a non-sharded resource]
#   SHARDS         navarch --shards map [the store's default 5-shard map]
#   PEER_TRANSPORT navarch peer transport, quic (mutual TLS, certificates made on first start
#                  in a directory the three nodes share) or grpc [quic]
#   EXTRA_ARGS     more `navarch store` flags, e.g. "--proposal-pipeline 2" []
#   HEALTH_TIMEOUT seconds to wait for each cluster to become healthy [60]
#   KEEP_WORK      keep the data/log directory [0]
#   METRICS        1: after each Navarch run, print the growth of its members' write-path
#                  counters per request (proposal batches, Raft log entries, log fsyncs,
#                  forward requests between members)
#                  summed over the three members [0]
#   LOAD_AT        all: the load goes to every member's endpoint; leader: only to each
#                  system's leader (Navarch: its first shard's; use with SHARDS='') [all]
#   ORDER          which system runs first in each workload [etcd navarch]; the second one
#                  runs while the first one's members are idle but alive
#   REPEAT         rounds per workload, alternating the order (ORDER, then reversed, ...);
#                  the summary gives each system's median over its rounds and lists every
#                  round's figures. On a VM whose second run of a pair is often slowed (see
#                  docs/benchmarks.md, session 8), an even REPEAT is the fair comparison [1]
#
# Each run also reports CPU µs per request summed over the cluster's members (cpu_us/req) and
# of the load generator itself (client_cpu_us/req: it shares the same cores), bytes written
# per request, and minor page faults per request (minflt/req: every page of memory or page
# cache a member touches for the first time; on VMs whose host takes freed memory back, each
# costs tens of µs of CPU), and the machine's kernel share of its busy CPU time (sys%: system,
# irq and softirq) and the time the hypervisor gave to others (steal%) over the run: a run in
# the VM's slow state shows a high sys% and steal%. tcp_seg/req and udp_dgram/req count the
# packets the machine carried per request (client connections, and peer traffic: TCP for etcd,
# QUIC over UDP for Navarch). Navarch is measured only once its shard
# leaders are spread (wait_placed).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh

if [ -z "${NAVARCH:-}" ]; then
  for candidate in "$CARGO_TARGET_DIR/release/navarch" "$ROOT/target/release/navarch"; do
    if [ -x "$candidate" ]; then
      NAVARCH="$candidate"
      break
    fi
  done
fi
if [ -z "${NAVARCH:-}" ] || [ ! -x "$NAVARCH" ]; then
  echo "bench-store: no navarch binary; build it with 'cargo build --release --bin navarch' or set NAVARCH" >&2
  exit 1
fi
ETCD="${ETCD:-/usr/bin/etcd}"
ETCDCTL="${ETCDCTL:-/usr/bin/etcdctl}"
for bin in "$ETCD" "$ETCDCTL" jq; do
  command -v "$bin" >/dev/null 2>&1 || { echo "bench-store: $bin not found" >&2; exit 1; }
done

WORKLOADS="${WORKLOADS:-put:256 put:3072}"
CLIENTS="${CLIENTS:-64}"
CONNS="${CONNS:-8}"
TOTAL="${TOTAL:-100000}"
WARMUP="${WARMUP:-1000}"
KEYS="${KEYS:-10000}"
DURATION_SECS="${DURATION_SECS:-}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-60}"
KEEP_WORK="${KEEP_WORK:-0}"
ORDER="${ORDER:-etcd navarch}"
REPEAT="${REPEAT:-1}"
case "$REPEAT" in '' | *[!0-9]* | 0) echo "bench-store: REPEAT must be a positive integer" >&2; exit 2 ;; esac
PREFIXES="${PREFIXES:-/registry/pods/b/,/registry/events/b/,/registry/leases/b/,/registry/minions/b/,/registry/configmaps/b/}"
SHARD_ARGS=()
[ -n "${SHARDS+x}" ] && SHARD_ARGS=(--shards "$SHARDS")
PEER_TRANSPORT="${PEER_TRANSPORT:-quic}"
read -r -a EXTRA <<<"${EXTRA_ARGS:-}"

ETCD_ENDPOINTS="127.0.0.1:32379,127.0.0.1:32479,127.0.0.1:32579"
NAVARCH_ENDPOINTS="127.0.0.1:22379,127.0.0.1:22479,127.0.0.1:22579"

WORK="$(mktemp -d -t navarch-bench-store.XXXXXX)"
bench_traps

# wait_healthy NAME ENDPOINTS: polls `etcdctl endpoint health` until every endpoint is healthy.
wait_healthy() {
  local name="$1" endpoints="$2"
  local deadline=$((SECONDS + HEALTH_TIMEOUT))
  while :; do
    bench_check_alive
    if "$ETCDCTL" --endpoints="$endpoints" --dial-timeout=1s --command-timeout=2s \
      endpoint health >"$WORK/$name-health.out" 2>&1; then
      echo "bench-store: $name healthy ($endpoints)" >&2
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "bench-store: $name not healthy after ${HEALTH_TIMEOUT}s:" >&2
      cat "$WORK/$name-health.out" >&2
      return 1
    fi
    sleep 0.5
  done
}

echo "bench-store: work dir $WORK" >&2

# --- real etcd, 3 members ---
ETCD_CLUSTER="e1=http://127.0.0.1:32380,e2=http://127.0.0.1:32480,e3=http://127.0.0.1:32580"
for i in 1 2 3; do
  client=$((32279 + i * 100))
  peer=$((32280 + i * 100))
  bench_start "etcd$i" "$ETCD" \
    --name "e$i" \
    --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$ETCD_CLUSTER" \
    --initial-cluster-token navarch-bench-store \
    --initial-cluster-state new
done

# --- Navarch store, 3 nodes ---
if [ "$PEER_TRANSPORT" = quic ]; then
  "$NAVARCH" certs --out "$WORK/navarch-certs" --nodes 3 >/dev/null
fi
NAVARCH_CLUSTER="1=127.0.0.1:22380,2=127.0.0.1:22480,3=127.0.0.1:22580"
for i in 1 2 3; do
  client=$((22279 + i * 100))
  peer=$((22280 + i * 100))
  bench_start "navarch$i" "$NAVARCH" store \
    --data-dir "$WORK/navarch$i" \
    --client-addr "127.0.0.1:$client" \
    --peer-addr "127.0.0.1:$peer" \
    --id "$i" \
    --initial-cluster "$NAVARCH_CLUSTER" "${SHARD_ARGS[@]}" \
    --peer-transport "$PEER_TRANSPORT" --peer-certs "$WORK/navarch-certs" "${EXTRA[@]}"
done

wait_healthy etcd "$ETCD_ENDPOINTS"
wait_healthy navarch "$NAVARCH_ENDPOINTS"

# wait_placed: Navarch spreads shard leaders over the members a few seconds after start (one
# transfer every 2 s); measuring during those transfers measures elections, not the store.
# Polls GET /shards until every shard has a leader and no member leads more than its share
# (⌈shards/members⌉), twice in a row 2.5 s apart (longer than the placement interval).
wait_placed() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) stable=0 doc
  while :; do
    bench_check_alive
    doc="$(curl -sf --max-time 2 "http://${NAVARCH_ENDPOINTS%%,*}/shards" || true)"
    if [ -n "$doc" ] && echo "$doc" | jq -e '
        (.shards | length) as $n | [.shards[].leader] as $l |
        ($l | all(. > 0)) and
        (($l | group_by(.) | map(length) | max) <= ($n / 3 | ceil))' >/dev/null; then
      stable=$((stable + 1))
      if [ "$stable" -ge 2 ]; then
        echo "bench-store: navarch shard leaders placed: $(echo "$doc" | jq -c '[.shards[].leader]')" >&2
        return 0
      fi
    else
      stable=0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "bench-store: navarch shard leaders not spread after ${HEALTH_TIMEOUT}s: $doc" >&2
      return 1
    fi
    sleep 2.5
  done
}
wait_placed

# LOAD_AT=leader: each system's load goes to its leader's endpoint only (Navarch: the leader of
# its first shard, meaningful with SHARDS=''), so no request is forwarded between members.
NAVARCH_LOAD="$NAVARCH_ENDPOINTS"
ETCD_LOAD="$ETCD_ENDPOINTS"
if [ "${LOAD_AT:-all}" = leader ]; then
  leader_id="$(curl -sf --max-time 2 "http://${NAVARCH_ENDPOINTS%%,*}/shards" | jq '.shards[0].leader')"
  NAVARCH_LOAD="$(echo "$NAVARCH_ENDPOINTS" | cut -d, -f"$leader_id")"
  ETCD_LOAD="$("$ETCDCTL" --endpoints "$ETCD_ENDPOINTS" endpoint status -w json |
    jq -r '.[] | select(.Status.leader == .Status.header.member_id) | .Endpoint')"
  ETCD_LOAD="${ETCD_LOAD#http://}"
  echo "bench-store: load at the leaders only: navarch $NAVARCH_LOAD, etcd $ETCD_LOAD" >&2
fi

# cluster_counters NAME: "cpu_ticks write_bytes minor_faults" summed over the cluster's
# processes.
cluster_counters() {
  local name="$1" i ticks=0 bytes=0 faults=0 t b f
  for i in "${!NAMES[@]}"; do
    case "${NAMES[$i]}" in "$name"*) ;; *) continue ;; esac
    read -r t f < <(awk '{print $14 + $15, $10}' "/proc/${PIDS[$i]}/stat")
    b=$(awk '/^write_bytes/ {print $2}' "/proc/${PIDS[$i]}/io")
    ticks=$((ticks + t))
    bytes=$((bytes + b))
    faults=$((faults + f))
  done
  echo "$ticks $bytes $faults"
}

# children_cpu_secs: user+system CPU seconds of this script's reaped children so far, from the
# `times` builtin; run `times >"$WORK/times"` in this shell first (in a command substitution
# `times` would report the subshell's own children).
children_cpu_secs() {
  tail -n 1 "$WORK/times" | awk '{
    t = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
    printf "%.3f", t }'
}

# machine_ticks: "busy system steal" clock ticks of all CPUs so far, from /proc/stat (busy =
# user + nice + system + irq + softirq).
machine_ticks() {
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $4 + $7 + $8, $9; exit }' /proc/stat
}

# net_packets: "tcp_segments udp_datagrams" this machine has received so far, from
# /proc/net/snmp (on loopback every packet sent is received once, so this counts each packet
# once; the system not being measured adds only its idle heartbeats).
net_packets() {
  awk '$1 == "Tcp:" && $2 ~ /^[0-9]/ { t = $11 } $1 == "Udp:" && $2 ~ /^[0-9]/ { u = $2 }
       END { print t + 0, u + 0 }' /proc/net/snmp
}

# navarch_counters: "batches batched_requests entries fsyncs forwards lingers appends
# empty_appends reproposals" summed over Navarch's members, from their /metrics (forwards:
# requests that carried writes to another member; lingers: waits of a busy batcher for more
# writes, see --proposal-linger-ms; appends: AppendEntries requests followers received with
# entries, empty_appends: without (commit-index updates and heartbeats); reproposals: forwarded
# writes that came back because their member no longer led the shard).
navarch_counters() {
  local ep
  for ep in ${NAVARCH_ENDPOINTS//,/ }; do
    curl -sf --max-time 2 "http://$ep/metrics" || true
  done | awk '
    /^navarch_store_proposal_batches_total/ { b += $NF }
    /^navarch_store_proposal_batched_requests_total/ { r += $NF }
    /^navarch_store_log_entries_appended_total/ { e += $NF }
    /^navarch_store_wal_fsyncs_total/ { f += $NF }
    /^navarch_store_forward_batches_total/ { w += $NF }
    /^navarch_store_proposal_lingers_total/ { l += $NF }
    /^navarch_store_append_requests_total/ && /kind="entries"/ { a += $NF }
    /^navarch_store_append_requests_total/ && /kind="empty"/ { z += $NF }
    /^navarch_store_forward_reproposals_total/ { p += $NF }
    END { printf "%d %d %d %d %d %d %d %d %d\n", b, r, e, f, w, l, a, z, p }'
}

# run_load NAME ENDPOINTS OP VALUE: one loadtest run; appends its JSON report (plus CPU and
# bytes written per request, across the whole cluster) to $WORK/reports.
run_load() {
  local name="$1" endpoints="$2" op="$3" value="$4"
  local out="$WORK/$name-$op-$value.out"
  local before after client_before client_after m_before="" mach_before mach_after
  local net_before net_after
  local extra=()
  [ -n "$DURATION_SECS" ] && extra+=(--duration-secs "$DURATION_SECS")
  bench_check_alive
  # The previous run's dirty pages reach the disk now, not during this run's fsyncs.
  sync
  echo >&2
  # In the background plus `wait`, so a SIGTERM to this script is handled at once
  # (bash defers traps while a foreground child runs). Progress goes to stderr live.
  "$NAVARCH" loadtest store \
    --endpoints "$endpoints" \
    --clients "$CLIENTS" --conns "$CONNS" \
    --op "$op" --value-size "$value" --keys "$KEYS" \
    --total "$TOTAL" --warmup "$WARMUP" \
    --key-prefix "$PREFIXES" \
    --label "$name $op ${value}B" --json "${extra[@]}" >"$out" &
  LOAD_PID=$!
  before="$(cluster_counters "$name")"
  mach_before="$(machine_ticks)"
  net_before="$(net_packets)"
  [ "$name" = navarch ] && [ "${METRICS:-0}" = 1 ] && m_before="$(navarch_counters)"
  times >"$WORK/times"
  client_before="$(children_cpu_secs)"
  wait "$LOAD_PID"
  LOAD_PID=""
  times >"$WORK/times"
  client_after="$(children_cpu_secs)"
  after="$(cluster_counters "$name")"
  mach_after="$(machine_ticks)"
  net_after="$(net_packets)"
  if [ "$name" = navarch ] && [ "${METRICS:-0}" = 1 ]; then
    local n=$(( $(grep '^{' "$out" | tail -n 1 | jq '.ok + .errors') + WARMUP ))
    echo "$m_before $(navarch_counters) $n" | awk '{
      n = $19; b = $10 - $1
      printf "bench-store: navarch counters per request (3 members): batches %.4f (%.1f requests each), log entries %.4f, log fsyncs %.4f, forward requests %.4f, lingers %.4f, appends %.4f + empty %.4f, reproposals %.4f\n",
        b / n, ($11 - $2) / (b > 0 ? b : 1), ($12 - $3) / n, ($13 - $4) / n, ($14 - $5) / n, ($15 - $6) / n, ($16 - $7) / n, ($17 - $8) / n, ($18 - $9) / n }' >&2
  fi
  grep -v '^{' "$out"
  # Counters cover warmup + measured requests.
  grep '^{' "$out" | tail -n 1 | jq -c --arg b "$before" --arg a "$after" \
    --argjson hz "$(getconf CLK_TCK)" --argjson warm "$WARMUP" \
    --argjson c0 "$client_before" --argjson c1 "$client_after" \
    --arg mb "$mach_before" --arg ma "$mach_after" \
    --arg nb "$net_before" --arg na "$net_after" '
      ($b | split(" ") | map(tonumber)) as $x | ($a | split(" ") | map(tonumber)) as $y |
      ($mb | split(" ") | map(tonumber)) as $m0 | ($ma | split(" ") | map(tonumber)) as $m1 |
      ($nb | split(" ") | map(tonumber)) as $p0 | ($na | split(" ") | map(tonumber)) as $p1 |
      (($m1[0] - $m0[0]) + ($m1[2] - $m0[2])) as $busy |
      (.ok + .errors + $warm) as $n |
      . + {cpu_us_per_req: ((($y[0] - $x[0]) / $hz * 1e6 / $n) | round),
           client_cpu_us_per_req: ((($c1 - $c0) * 1e6 / $n) | round),
           bytes_written_per_req: ((($y[1] - $x[1]) / $n) | round),
           minflt_per_req: ((($y[2] - $x[2]) / $n * 100 | round) / 100),
           sys_pct: (if $busy > 0 then (($m1[1] - $m0[1]) / $busy * 100 | round) else 0 end),
           steal_pct: (if $busy > 0 then (($m1[2] - $m0[2]) / $busy * 100 | round) else 0 end),
           tcp_segs_per_req: ((($p1[0] - $p0[0]) / $n * 100 | round) / 100),
           udp_dgrams_per_req: ((($p1[1] - $p0[1]) / $n * 100 | round) / 100)}' >>"$WORK/reports"
}

: >"$WORK/reports"
REVERSED_ORDER="$(echo "$ORDER" | tr ' ' '\n' | tac | tr '\n' ' ')"
for workload in $WORKLOADS; do
  op="${workload%%:*}"
  value="${workload##*:}"
  for round in $(seq 1 "$REPEAT"); do
    # Rounds alternate the order (A B, B A, A B, ...): neither system always runs second.
    order="$ORDER"
    [ $((round % 2)) = 0 ] && order="$REVERSED_ORDER"
    [ "$REPEAT" -gt 1 ] && echo "bench-store: $op ${value}B round $round of $REPEAT: $order" >&2
    for system in $order; do
      case "$system" in
        etcd) run_load etcd "$ETCD_LOAD" "$op" "$value" ;;
        navarch) run_load navarch "$NAVARCH_LOAD" "$op" "$value" ;;
        *) echo "bench-store: ORDER names etcd and navarch, not $system" >&2; exit 2 ;;
      esac
    done
  done
done

# --- summary ---
# field LABEL KEY: the median of KEY over the runs labelled LABEL (the lower middle one for an
# even count).
field() {
  jq -s -r --arg l "$1" --arg k "$2" \
    'map(select(.label == $l) | .[$k]) | sort | if length > 0 then .[(length - 1) / 2 | floor] else 0 end' \
    "$WORK/reports"
}
# all_runs LABEL KEY: KEY of every run labelled LABEL, in run order, slash-separated.
all_runs() {
  jq -s -r --arg l "$1" --arg k "$2" \
    'map(select(.label == $l) | .[$k] | . * 10 | round / 10 | tostring) | join(" / ")' "$WORK/reports"
}
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}

echo
echo "== runs =="
{
  printf 'label\tok\terrors\tconflicts\tsecs\treq/s\tp50_ms\tp99_ms\tp99.9_ms\tmax_ms\tcpu_us/req\twritten_B/req\tminflt/req\tclient_cpu_us/req\tsys%%\tsteal%%\ttcp_seg/req\tudp_dgram/req\n'
  jq -r '[.label, .ok, .errors, .conflicts, (.elapsed_secs * 100 | round / 100),
          (.throughput * 10 | round / 10), .p50_ms, .p99_ms, .p999_ms, .max_ms,
          .cpu_us_per_req, .bytes_written_per_req, .minflt_per_req,
          .client_cpu_us_per_req, .sys_pct, .steal_pct,
          .tcp_segs_per_req, .udp_dgrams_per_req] | @tsv' \
    "$WORK/reports"
} | column -t -s "$(printf '\t')"
echo
echo "== summary (clients=$CLIENTS conns=$CONNS total=$TOTAL keys=$KEYS) =="
printf '%-12s %7s %14s %14s %10s %10s %10s %10s\n' \
  op value_B etcd_req/s navarch_req/s tput_ratio etcd_p99 nav_p99 p99_ratio
for workload in $WORKLOADS; do
  op="${workload%%:*}"
  value="${workload##*:}"
  e_tput="$(field "etcd $op ${value}B" throughput)"
  n_tput="$(field "navarch $op ${value}B" throughput)"
  e_p99="$(field "etcd $op ${value}B" p99_ms)"
  n_p99="$(field "navarch $op ${value}B" p99_ms)"
  printf '%-12s %7s %14.1f %14.1f %10s %10.3f %10.3f %10s\n' \
    "$op" "$value" "$e_tput" "$n_tput" "$(ratio "$n_tput" "$e_tput")" \
    "$e_p99" "$n_p99" "$(ratio "$n_p99" "$e_p99")"
done
echo "(tput_ratio = navarch/etcd throughput, higher is better; p99_ratio = navarch/etcd p99, lower is better)"
if [ "$REPEAT" -gt 1 ]; then
  echo "(with REPEAT=$REPEAT each figure is the median over the rounds; every round's figure:)"
  for workload in $WORKLOADS; do
    op="${workload%%:*}"
    value="${workload##*:}"
    for system in etcd navarch; do
      printf '%-8s %s %sB  req/s %s  p99 %s\n' "$system" "$op" "$value" \
        "$(all_runs "$system $op ${value}B" throughput)" "$(all_runs "$system $op ${value}B" p99_ms)"
    done
  done
fi
errors="$(jq -s 'map(.errors) | add' "$WORK/reports")"
if [ "$errors" != "0" ]; then
  echo "bench-store: WARNING: $errors requests failed; see the runs above" >&2
fi
