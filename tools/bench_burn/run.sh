#!/usr/bin/env bash
# Builds and runs the burn peer (first build: several minutes). Usage:
#   tools/bench_burn/run.sh [all|ndarray|flex|wgpu]
set -euo pipefail
cd "$(dirname "$0")"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/kinema-bench-burn}" cargo run --release -q -- "${1:-all}"
