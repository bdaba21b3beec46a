#!/usr/bin/env bash
# The real-width Wan transformer for the browser test (web/tests/real_width.rs):
# tests/fixtures/programs/wan_real_width/program.json — Wan2.1-T2V-1.3B's exact
# widths (dim 1536, 12 × 128 heads, FFN 8960, text 4096) with 4 blocks, exported
# by tools/export at a 16 × 1 × 4 × 4 latent and 32 text tokens — with seeded
# random f16 and int8 weights (423 and 212 MB), its inputs, and the native CPU
# delegate's outputs for each, written into DIR (default
# tests/fixtures/generated/wan_real_width, which git ignores).
# Usage: scripts/real-width-fixture.sh [DIR]   (KINEMA: the binary, default target/debug/kinema)
set -euo pipefail
cd "$(dirname "$0")/.."
kinema=${KINEMA:-target/debug/kinema}
out=${1:-tests/fixtures/generated/wan_real_width}
mkdir -p "$out"
for dtype in f16 int8; do
    "$kinema" run tests/fixtures/programs/wan_real_width/program.json --random-weights 7 --dtype "$dtype" \
        --save-weights "$out/$dtype.safetensors" --save-inputs "$out/inputs.safetensors" \
        --output "$out/$dtype.out.safetensors" --device cpu
done
