#!/usr/bin/env bash
# Installs what Kinema's tests need on a fresh Debian/Ubuntu machine, then runs
# the whole suite: formatting, clippy (native and wasm32), the wasm32 build,
# and every native test. Safe to run again: installed pieces are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Software Vulkan (lavapipe), so GPU code runs on machines with no GPU.
missing=()
for pkg in mesa-vulkan-drivers libvulkan1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "rust toolchain: wasm32 target, rustfmt, clippy"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Mesa wants a private runtime dir; without one it prints a harmless warning.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
fi

step "cargo fmt --check"
cargo fmt --all --check

step "clippy (native)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy and build (wasm32-unknown-unknown)"
cargo clippy --target wasm32-unknown-unknown -p kinema-engine -p kinema-web --locked -- -D warnings
cargo build --target wasm32-unknown-unknown -p kinema-engine -p kinema-web --locked

step "tests"
cargo test --workspace --locked

step "all passed"
