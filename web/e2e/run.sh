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

# The package as a web developer installs it: `npm pack`, a fresh Vite app
# (vite-app/: every import path the README documents) with the tarball
# installed, `vite build`, and the built app generating in Chromium — on one
# thread and on the threaded build — against the native frames.
app="$(mktemp -d)"
trap 'kill $pid 2>/dev/null || true; kill ${vite_pid:-} 2>/dev/null || true; rm -rf "$site" "$app"' EXIT
cp web/e2e/vite-app/{package.json,package-lock.json,index.html,main.js,vite.config.js} "$app/"
tarball=$(cd web/pkg && npm pack --silent --pack-destination "$app")
(cd "$app" && npm ci --silent --no-audit --no-fund && npm install --no-save --silent --no-audit --no-fund "./$tarball" \
    && npx vite build --logLevel warn)
mkdir -p "$app/dist/models"
ln -s "$PWD/models/wan-shapes" "$app/dist/models/wan-shapes"
ln -s "$site/frames-$gpu_steps" "$app/dist/frames-$gpu_steps"
vite_out="$(mktemp)"
./target/debug/fixture-server "$app/dist" > "$vite_out" &
vite_pid=$!
for _ in $(seq 100); do [ -s "$vite_out" ] && break; sleep 0.1; done
node web/e2e/vite.mjs "$(head -n1 "$vite_out")" "$prompt" "$seed" "$gpu_steps" "${KINEMA_E2E_THREADS:-1}"
