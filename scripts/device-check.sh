#!/usr/bin/env bash
# The device check: run once on a machine with a real GPU (Vulkan), with a
# release binary built elsewhere and the real-config programs carried along
# (no network, no checkpoint: random weights of the programs' shapes). Prints,
# for the reference workloads and the real Wan2.1-T2V-1.3B transformer at
# 832×480 with 1 and 21 latent frames (f16 and int8 weights): time, GFLOP/s
# (bench) and device bytes. Record what it prints in docs/benchmarks.md.
#
#   KINEMA=path/to/kinema PROGRAMS=dir/with/t2v-1f,t2v-21f ./scripts/device-check.sh
#
# PROGRAMS holds t2v-1f/program.json and t2v-21f/program.json, exported by
#   python -m kinema_export wan DIR/transformer --latent-shape 16,F,60,104 --text-len 512 -o PROGRAMS/t2v-Ff
# Each step has a time limit, so the whole script stays under 8 minutes.
set -uo pipefail
KINEMA="${KINEMA:-./target/release/kinema}"
PROGRAMS="${PROGRAMS:-programs}"
export KINEMA_DEVICE=gpu

step() { printf '\n==> %s\n' "$*"; }

step "adapter"
command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverInfo|apiVersion" | head -6

step "kinema bench --device gpu (reference workloads)"
timeout 120 "$KINEMA" bench --device gpu --runs 5 --json || echo "bench: exit $?"

for frames in 1 21; do
    program="$PROGRAMS/t2v-${frames}f/program.json"
    [ -f "$program" ] || { echo "missing $program"; continue; }
    for dtype in f16 int8; do
        step "Wan2.1-T2V-1.3B transformer, 832×480, $frames latent frame(s), $dtype weights (random)"
        timeout 150 "$KINEMA" inspect "$program" --device gpu | grep "device bytes"
        timeout 150 "$KINEMA" run "$program" --random-weights 1 --dtype "$dtype" --device gpu || echo "run: exit $?"
    done
done
