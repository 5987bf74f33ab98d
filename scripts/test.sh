#!/usr/bin/env bash
# The test command: installs missing system packages, builds, and runs every test
# (unit, openraft storage suite, MVCC model, real-process cluster faults, linearizability,
# real etcdctl). Extra arguments go to the test runner (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages
cargo build --workspace --all-targets --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
