#!/usr/bin/env bash
# Kinema's browser benchmark (www/bench.html) side by side with onnxruntime-web
# (web/bench/ort.html) in headless Chromium: builds web/pkg, installs the peer
# from npm, stages its ONNX graphs (web/bench/models/, 570 bytes, written by
# `tools/bench_peers.py --write-onnx web/bench/models`), stages
# the pages for the fixture server (which sends COOP/COEP, so pages are
# cross-origin isolated and ORT-Web can use 2 threads) and prints every row and
# the ratios. Extra arguments go to bench.mjs (--json; --cpu: wasm rows only; --tune: WebGPU tilings;
# --1t: one thread only; --rounds N: interleaved, best round per row). Not part of the
# test suite: a benchmark, minutes long.
set -euo pipefail
cd "$(dirname "$0")/../.."
./web/build.sh
(cd web/bench && npm ci --silent --no-audit --no-fund)
cargo build -p kinema-tests --bin fixture-server --locked
site="$(mktemp -d)"
mkdir -p "$site/web" "$site/ort"
ln -s "$PWD/www" "$site/www"
ln -s "$PWD/web/pkg" "$site/web/pkg"
ort=web/bench/node_modules/onnxruntime-web/dist
cp "$ort"/ort.all.min.mjs "$ort"/ort-wasm-simd-threaded.jsep.{mjs,wasm} "$site/ort/"
cp web/bench/ort.html "$site/ort/index.html"
cp -r web/bench/models "$site/ort/models"
out="$(mktemp)"
./target/debug/fixture-server "$site" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$site" "$out"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
node web/bench/bench.mjs "$(head -n1 "$out")" "$@"
