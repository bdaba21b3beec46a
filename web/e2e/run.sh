#!/usr/bin/env bash
# The demo page end to end (see e2e.mjs): builds web/pkg, the native frames for
# one prompt, stages www/ + web/pkg/ + models/ + frames/ for the fixture
# server, and runs the Playwright test with Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
prompt="a blue square moving right" steps=2 seed=3
./web/build.sh
(cd web/e2e && npm ci --silent --no-audit --no-fund)
cargo build -p kinema -p kinema-tests --bin kinema --bin fixture-server --locked
site="$(mktemp -d)"
mkdir -p "$site/web"
ln -s "$PWD/www" "$site/www"
ln -s "$PWD/web/pkg" "$site/web/pkg"
ln -s "$PWD/models" "$site/models"
KINEMA_DEVICE=cpu ./target/debug/kinema generate "$prompt" --steps "$steps" --seed "$seed" \
    -o "$site/native.gif" --frames-dir "$site/frames"
out="$(mktemp)"
./target/debug/fixture-server "$site" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$site"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
# The threaded build, when built, runs the CPU delegate on every core (up to 8):
# the fixture server's COOP/COEP headers let load.js pick it.
threads=$(( $(nproc) < 8 ? $(nproc) : 8 ))
if [ -f web/pkg/threads/kinema_bg.wasm ] && [ "$threads" -gt 1 ]; then export KINEMA_E2E_THREADS=$threads; fi
OUT_DIR="${OUT_DIR:-$(mktemp -d)}" node web/e2e/e2e.mjs "$(head -n1 "$out")" "$prompt" "$steps" "$seed"
