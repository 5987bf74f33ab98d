#!/usr/bin/env bash
# The start command: installs missing system packages, builds, and starts a local Navarch
# (today: the embedded single-node store, etcd v3 API on 127.0.0.1:2379) in the foreground.
# Arguments go to `navarch up` (see `navarch up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages
# Same target set as the tests, so both share one RocksDB build in the cache.
cargo build --workspace --all-targets --locked
exec "$CARGO_TARGET_DIR/debug/navarch" up "$@"
