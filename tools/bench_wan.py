#!/usr/bin/env python3
"""The real Wan2.1-T2V-1.3B transformer (random weights in its exact config,
tools/fixtures/make_wan_real.py) on the CPU: Kinema against PyTorch eager f32,
each in a fresh process, alternately, on the same inputs and threads.

    python tools/bench_wan.py ~/.cache/kinema/wan-real --frames 1 [--threads 2] [--runs 1] [--int8] [--int4] [--json]

Needs the exported program at DIR/programs/t2v-{F}f/program.json
(`python -m kinema_export wan DIR/transformer --latent-shape 16,F,60,104 --text-len 512 -o …`)
and `target/release/kinema`. Reported per engine, at the best run: the
process's wall time (start to exit: imports, load, one transformer pass,
writing the output) and its peak resident memory (ru_maxrss from wait4); and
Kinema's error against PyTorch's output (max abs, and relative to max |ref|).
With `--int8` (`--int4`) Kinema also runs the checkpoint `kinema quantize --int8`
(`--int4 --group 64`) wrote (cached as DIR/transformer-int8.safetensors, -int4). PyTorch's output is cached in
DIR/bench/ (a pass at 81 frames takes tens of minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
KINEMA = os.path.join(ROOT, "target", "release", "kinema")

TORCH = r'''
import sys, torch
threads, model_dir, inputs, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
torch.set_num_threads(threads)
from diffusers import WanTransformer3DModel
from safetensors.torch import load_file, save_file
x = load_file(inputs)
model = WanTransformer3DModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
with torch.no_grad():
    y = model(x["hidden_states"], x["timestep"], x["encoder_hidden_states"], return_dict=False)[0]
save_file({"out0": y.contiguous()}, out)
'''


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status})")
    return wall, usage.ru_maxrss * 1024


def inputs(path: str, frames: int) -> None:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(20261201)
    save_file({"hidden_states": torch.randn(1, 16, frames, 60, 104, generator=g),
               "timestep": torch.tensor([500.0]),
               "encoder_hidden_states": torch.randn(1, 512, 4096, generator=g)}, path)


def error(got: str, want: str) -> tuple[float, float]:
    from safetensors.numpy import load_file

    a, b = load_file(got)["out0"], load_file(want)["out0"]
    assert a.shape == b.shape, (a.shape, b.shape)
    err = float(abs(a - b).max())
    return err, err / float(abs(b).max())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--frames", type=int, default=1, help="latent frames (1: 1,560 tokens; 21: 32,760)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--int4", action="store_true", help="also the `kinema quantize --int4` checkpoint (groups of 64)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    program = os.path.join(args.dir, "programs", f"t2v-{args.frames}f", "program.json")
    transformer = os.path.join(args.dir, "transformer")
    bench = os.path.join(args.dir, "bench")
    os.makedirs(bench, exist_ok=True)
    x = os.path.join(bench, f"inputs-{args.frames}f.safetensors")
    if not os.path.exists(x):
        inputs(x, args.frames)
    ref = os.path.join(bench, f"torch-{args.frames}f.safetensors")
    weights = {"bf16": transformer}
    if args.int8:
        q = os.path.join(args.dir, "transformer-int8.safetensors")
        if not os.path.exists(q):
            subprocess.run([KINEMA, "quantize", transformer, "--int8", "-o", q], check=True)
        weights["int8"] = q
    if args.int4:
        q = os.path.join(args.dir, "transformer-int4.safetensors")
        if not os.path.exists(q):
            subprocess.run([KINEMA, "quantize", transformer, "--int4", "--group", "64", "-o", q], check=True)
        weights["int4"] = q
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), KINEMA_THREADS=str(args.threads))
    rows: dict[str, list[tuple[float, int]]] = {}
    for _ in range(args.runs):
        rows.setdefault("pytorch", []).append(
            timed([sys.executable, "-c", TORCH, str(args.threads), transformer, x, ref]))
        for name, w in weights.items():
            out = os.path.join(bench, f"kinema-{name}-{args.frames}f.safetensors")
            cmd = [KINEMA, "run", program, "--weights", w, "--inputs", x, "--output", out, "--device", "cpu"]
            rows.setdefault(f"kinema {name}", []).append(timed(cmd, env))
    report = {"frames": args.frames, "tokens": args.frames * 30 * 52, "threads": args.threads, "rows": {}}
    torch_wall, torch_rss = min(rows["pytorch"])
    for name, runs in rows.items():
        wall, rss = min(runs)
        row = {"wall_s": round(wall, 2), "peak_rss_bytes": rss, "wall_vs_pytorch": round(wall / torch_wall, 3),
               "rss_vs_pytorch": round(rss / torch_rss, 3)}
        if name != "pytorch":
            err, rel = error(os.path.join(bench, f"kinema-{name.split()[1]}-{args.frames}f.safetensors"), ref)
            row.update(max_abs_error=err, relative_error=rel)
        report["rows"][name] = row
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['tokens']} tokens, {args.threads} threads, best of {args.runs}")
        for name, r in report["rows"].items():
            extra = f", error {r['max_abs_error']:.3e} ({r['relative_error']:.2e} of max |ref|)" if "relative_error" in r else ""
            print(f"  {name:12} {r['wall_s']:8.2f} s ({r['wall_vs_pytorch']:.2f}×)  "
                  f"peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB ({r['rss_vs_pytorch']:.2f}×){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
