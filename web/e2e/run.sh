#!/usr/bin/env bash
# The demo page end to end (see e2e.mjs): builds web/pkg, the native frames for
# one prompt, stages www/ + web/pkg/ + models/ + frames-N/ for the fixture
# server, and runs the Playwright test with Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The seed tests/diffusion.rs gives this prompt (its index among the 60). On
# the wasm CPU delegate the page runs the model's default 20 steps: the native
# clip is one the checker reads right there, and the page's frames must equal
# it. On WebGPU (SwiftShader, ~5 s a step here) 2 steps against native 2-step frames.
prompt="a blue square moving right" seed=29 gpu_steps=2 cpu_steps=20
./web/build.sh
(cd web/e2e && npm ci --silent --no-audit --no-fund)
cargo build -p kinema -p kinema-tests --bin kinema --bin fixture-server --locked
site="$(mktemp -d)"
mkdir -p "$site/web"
ln -s "$PWD/www" "$site/www"
ln -s "$PWD/web/pkg" "$site/web/pkg"
ln -s "$PWD/models" "$site/models"
for steps in $gpu_steps $cpu_steps; do
    KINEMA_DEVICE=cpu ./target/debug/kinema generate "$prompt" --steps "$steps" --seed "$seed" \
        -o "$site/native.gif" --frames-dir "$site/frames-$steps"
done
out="$(mktemp)"
./target/debug/fixture-server "$site" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$site"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
# The threaded build, when built, runs the CPU delegate on every core (up to 8):
# the fixture server's COOP/COEP headers let load.js pick it.
threads=$(( $(nproc) < 8 ? $(nproc) : 8 ))
if [ -f web/pkg/threads/kinema_bg.wasm ] && [ "$threads" -gt 1 ]; then export KINEMA_E2E_THREADS=$threads; fi
OUT_DIR="${OUT_DIR:-$(mktemp -d)}" node web/e2e/e2e.mjs "$(head -n1 "$out")" "$prompt" "$seed" "$gpu_steps" "$cpu_steps"
