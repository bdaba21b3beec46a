#!/usr/bin/env python3
"""`kinema generate` against PyTorch + diffusers on the embedded model, side by side.

    python tools/bench_generate.py [--runs 3] [--steps 20] [--threads 2] [--json]

Both run the same pipeline folder (models/wan-shapes), the same prompt, steps
(Euler) and guidance on the CPU. PyTorch runs it as diffusers' WanPipeline does
— the transformer called for the conditional and the unconditional text at
every step, then `FlowMatchEulerDiscreteScheduler.step` — in a fresh Python
process; Kinema runs `target/release/kinema generate` (build it first:
`cargo build --release -p kinema`). Each engine runs alternately `--runs`
times; reported per engine, at the best run: the process's wall time (start to
exit: imports, load, generation, writing the output), the generation alone
(PyTorch: the denoising loop; Kinema: its printed denoise + decode time) and the
peak resident memory of the process (from wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "wan-shapes")
PROMPT = "a red circle moving left"

TORCH_SCRIPT = r'''
import os, sys, time, json
import torch
threads, steps, guidance, folder, prompt, train = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
torch.set_num_threads(threads)
sys.path.insert(0, train)
from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from safetensors.torch import load_file
from model import CoordWan
from data import tokens
model = CoordWan(WanTransformer3DModel.from_pretrained(os.path.join(folder, "transformer"))).eval()
table = load_file(os.path.join(folder, "text_encoder", "model.safetensors"))
pe = (table["words"][torch.tensor(tokens(prompt))] + table["positions"])[None]
ne = table["null"][None]
sched = FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(folder, "scheduler"))
t0 = time.perf_counter()
sched.set_timesteps(steps)
x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    for t in sched.timesteps:
        ts = t.expand(1).float()
        v_c, v_u = model(x, ts, pe), model(x, ts, ne)
        x = sched.step(v_u + guidance * (v_c - v_u), t, x, return_dict=False)[0]
video = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
print(json.dumps({"generate_s": time.perf_counter() - t0}))
'''


def run(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MiB and stdout+stderr of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = p.stdout.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{out}")
    return wall, usage.ru_maxrss // 1024, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pipeline", default=MODEL)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kinema = os.path.join(ROOT, "target", "release", "kinema")
    if not os.path.exists(kinema):
        sys.exit("build first: cargo build --release -p kinema")
    results = {"pytorch": [], "kinema": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            wall, rss, out = run([sys.executable, "-c", TORCH_SCRIPT, str(args.threads), str(args.steps),
                                  str(args.guidance), args.pipeline, PROMPT, os.path.join(ROOT, "tools", "train")])
            gen = json.loads(out.strip().splitlines()[-1])["generate_s"]
            results["pytorch"].append({"wall_s": wall, "generate_s": gen, "peak_rss_mib": rss})
            env = dict(os.environ, KINEMA_DEVICE="cpu")
            wall, rss, out = run([kinema, "generate", PROMPT, "--pipeline", args.pipeline, "--steps", str(args.steps),
                                  "--guidance", str(args.guidance), "-o", os.path.join(tmp, "k.gif")], env)
            m = re.search(r"denoise ([\d.]+) s .* decode ([\d.]+) s", out)
            gen = float(m.group(1)) + float(m.group(2))
            results["kinema"].append({"wall_s": wall, "generate_s": gen, "peak_rss_mib": rss})
    best = {k: min(v, key=lambda r: r["wall_s"]) | {"generate_s": min(r["generate_s"] for r in v)}
            for k, v in results.items()}
    ratio_wall = best["kinema"]["wall_s"] / best["pytorch"]["wall_s"]
    ratio_gen = best["kinema"]["generate_s"] / best["pytorch"]["generate_s"]
    if args.json:
        print(json.dumps({"steps": args.steps, "threads": args.threads, "best": best, "runs": results,
                          "kinema_over_pytorch_wall": ratio_wall, "kinema_over_pytorch_generate": ratio_gen}))
        return 0
    print(f"embedded model, {PROMPT!r}, {args.steps} Euler steps, guidance {args.guidance}, CPU, "
          f"{args.threads} threads, best of {args.runs}")
    print(f"{'engine':10} {'wall s':>8} {'generate s':>11} {'peak RSS MiB':>13}")
    for k in ("pytorch", "kinema"):
        b = best[k]
        print(f"{k:10} {b['wall_s']:8.2f} {b['generate_s']:11.3f} {b['peak_rss_mib']:13d}")
    print(f"kinema / pytorch: wall {ratio_wall:.2f}×, generation {ratio_gen:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
