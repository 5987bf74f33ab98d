# Shared by scripts/*.sh: system packages and the build cache.
# shellcheck shell=bash

# Debian packages the build and the tests need: libclang (RocksDB bindings), protoc (etcd API
# protos), etcd-client (etcdctl, for compatibility tests), etcd-server (benchmark anchor) and
# haproxy (tests/api runs deploy/haproxy/haproxy.cfg in front of apiserver replicas).
NAVARCH_PACKAGES=(libclang-dev clang protobuf-compiler etcd-client etcd-server haproxy)

ensure_packages() {
  local missing=()
  for p in "${NAVARCH_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing missing packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  ensure_python_kubernetes
  # etcd-server's package may start a system etcd on 2379; Navarch's defaults use that port.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    echo "note: a system etcd service is running (it may hold port 2379)" >&2
  fi
}

# The official Python `kubernetes` client, used by the apiserver tests (tests/api/python).
ensure_python_kubernetes() {
  if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
    echo "installing the Python kubernetes client" >&2
    python3 -m pip install --quiet kubernetes
  fi
}

# Build outputs live outside the clone so fresh clones (CI) reuse the RocksDB build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/navarch-target}"
mkdir -p "$CARGO_TARGET_DIR"

# --- Background processes of the benchmark scripts (bench-store.sh, bench-api.sh) ---
# They set WORK (a mktemp dir) before calling these; PIDS/NAMES/LOAD_PID are shared state.
PIDS=()
NAMES=()
LOAD_PID=""

# bench_start NAME CMD...: runs CMD in the background, output in $WORK/NAME.log.
bench_start() {
  local name="$1"
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
}

# Fails with the log tail if any started process has died.
bench_check_alive() {
  local i
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "$(basename "$0"): ${NAMES[$i]} (pid ${PIDS[$i]}) exited; last log lines:" >&2
      tail -n 20 "$WORK/${NAMES[$i]}.log" >&2 || true
      return 1
    fi
  done
}

# EXIT trap: stops the load generator and every started process (SIGTERM, SIGKILL after
# 10 s), removes $WORK unless KEEP_WORK=1, and exits with the script's status.
bench_cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [ -n "$LOAD_PID" ]; then
    kill -TERM "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
  fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = "1" ]; then
    echo "$(basename "$0"): data and logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}

# Installs bench_cleanup for EXIT, INT and TERM.
bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
