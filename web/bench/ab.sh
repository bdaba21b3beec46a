#!/usr/bin/env bash
# A/B of the wasm CPU delegate: a saved build (A: a copy of an earlier
# web/pkg) against the working tree's (B, built now), in one headless Chromium,
# pages interleaved, best round per row — how a change to the CPU kernels is
# judged on a noisy machine. `./web/bench/ab.sh PKG_A [rounds] [threads]`; keep A
# with `cp -r web/pkg /tmp/pkg-a` before the change. Threads > 1 need both builds
# to have pkg/threads (web/build.sh makes it when the nightly is installed;
# KINEMA_NIGHTLY=none skips it for a faster one-thread A/B).
set -euo pipefail
[ $# -ge 1 ] && [ -f "$1/kinema_bg.wasm" ] || { echo "usage: $0 PKG_A [rounds] [threads]" >&2; exit 2; }
a="$(cd "$1" && pwd)"
cd "$(dirname "$0")/../.."
./web/build.sh >/dev/null
(cd web/bench && npm ci --silent --no-audit --no-fund)
cargo build -p kinema-tests --bin fixture-server --locked
site="$(mktemp -d)"
mkdir -p "$site/a/web" "$site/b/web"
ln -s "$PWD/www" "$site/a/www"
ln -s "$PWD/www" "$site/b/www"
ln -s "$a" "$site/a/web/pkg"
ln -s "$PWD/web/pkg" "$site/b/web/pkg"
out="$(mktemp)"
./target/debug/fixture-server "$site" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$site" "$out"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
node web/bench/ab.mjs "$(head -n1 "$out")" "${2:-3}" "${3:-1}"
