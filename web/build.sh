#!/usr/bin/env bash
# Builds the `kinema` npm package into web/pkg/: the kinema-web crate for
# wasm32 (release, SIMD128), wasm-bindgen --target web (ESM, .d.ts), wasm-opt
# -O3 from npm's binaryen, plus package.json, README, the GIF helper and
# load.js; and the threaded build in web/pkg/threads (below).
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
# The threaded build (web/pkg/threads): wasm atomics need std rebuilt with
# them, which takes a pinned nightly with rust-src (web/threads-toolchain); skipped, with a note, when
# that toolchain is not installed (load.js then always loads the single-threaded build).
nightly=${KINEMA_NIGHTLY:-$(cat web/threads-toolchain)}
if sysroot=$(rustup run "$nightly" rustc --print sysroot 2>/dev/null) && [ -d "$sysroot/lib/rustlib/src/rust/library" ]; then
    # A shared, imported memory (up to 4 GiB) and the thread-local storage
    # symbols wasm-bindgen's thread support sets up each worker with.
    flags='-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128'
    for arg in --shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls \
        --export=__tls_size --export=__tls_align --export=__tls_base; do
        flags="$flags -C link-arg=$arg"
    done
    RUSTFLAGS="$flags" \
        rustup run "$nightly" cargo build -Z build-std=panic_abort,std --release --target wasm32-unknown-unknown \
        -p kinema-web --features threads --target-dir target/threads --locked
    wasm-bindgen target/threads/wasm32-unknown-unknown/release/kinema_web.wasm --target web \
        --out-dir "$out/threads" --out-name kinema
    web/.tools/node_modules/.bin/wasm-opt -O3 --strip-debug --enable-simd --enable-bulk-memory --enable-threads \
        --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types \
        --enable-multivalue "$out/threads/kinema_bg.wasm" -o "$out/threads/kinema_bg.wasm"
else
    echo "web/pkg/threads skipped: rustup toolchain install $nightly --profile minimal --component rust-src" >&2
fi
cp web/npm/package.json web/npm/README.md web/npm/gif.js web/npm/gif.d.ts web/npm/load.js web/npm/load.d.ts \
    web/npm/worker.js web/npm/worker.d.ts web/npm/worker-main.js web/npm/video.js web/npm/video.d.ts "$out/"
# The package's one dependency (mediabunny, for video.js), installed beside it for
# the demo page, which serves web/pkg/ as it is (npm pack leaves node_modules out).
npm install --silent --no-audit --no-fund --no-package-lock --prefix "$out" >/dev/null
raw=$(stat -c %s "$out/kinema_bg.wasm")
gz=$(gzip -9 -c "$out/kinema_bg.wasm" | wc -c)
echo "web/pkg: kinema_bg.wasm $raw bytes raw, $gz bytes gzip"
if [ -f "$out/threads/kinema_bg.wasm" ]; then
    raw=$(stat -c %s "$out/threads/kinema_bg.wasm")
    gz=$(gzip -9 -c "$out/threads/kinema_bg.wasm" | wc -c)
    echo "web/pkg/threads: kinema_bg.wasm $raw bytes raw, $gz bytes gzip"
fi
