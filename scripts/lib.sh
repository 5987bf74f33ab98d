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
