#!/usr/bin/env bash
# Builds the `kinema` npm package into web/pkg/: the kinema-web crate for
# wasm32 (release, SIMD128), wasm-bindgen --target web (ESM, .d.ts), wasm-opt
# -O3 from npm's binaryen, plus package.json, README and the GIF helper.
# Then `cd web/pkg && npm pack` makes the tarball. Prints the wasm's size.
set -euo pipefail
cd "$(dirname "$0")/.."
out=web/pkg
cargo build --release --target wasm32-unknown-unknown -p kinema-web --locked
rm -rf "$out" && mkdir -p "$out"
wasm-bindgen target/wasm32-unknown-unknown/release/kinema_web.wasm --target web --out-dir "$out" --out-name kinema
if [ ! -x web/.tools/node_modules/.bin/wasm-opt ]; then
    npm install --silent --prefix web/.tools binaryen@132 >/dev/null
fi
web/.tools/node_modules/.bin/wasm-opt -O3 --strip-debug --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$out/kinema_bg.wasm" -o "$out/kinema_bg.wasm"
cp web/npm/package.json web/npm/README.md web/npm/gif.js web/npm/gif.d.ts "$out/"
raw=$(stat -c %s "$out/kinema_bg.wasm")
gz=$(gzip -9 -c "$out/kinema_bg.wasm" | wc -c)
echo "web/pkg: kinema_bg.wasm $raw bytes raw, $gz bytes gzip"
