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
DIR/bench/ with its wall time and peak RSS: `--reference only` makes it (a pass at
81 frames takes tens of minutes), `--reference cached` reuses it.

The whole pipeline, prompt to video (text encoder, denoising loop with
guidance, VAE decode), against diffusers' `WanPipeline` on the same folder:

    python tools/bench_wan.py --pipeline DIR [--steps 1] [--threads 2] [--runs 1] [--json]

DIR is a diffusers Wan folder with `text_encoder/` and `tokenizer/` that
`python -m kinema_export wan-pipeline` has exported (kinema.json names the size,
the frames and, when its VAE decoder is tiled, the tiles — diffusers then runs
`vae.enable_tiling()`, whose defaults are the exporter's). `kinema generate
--pipeline DIR PROMPT --steps N --device cpu -o clip.mp4` against
`WanPipeline(prompt=PROMPT, num_inference_steps=N, …)` with the same guidance
(kinema.json's default, WanPipeline's 5.0) and negative prompt (""): diffusers
loads the text encoder in its stored dtype (bf16 for umT5-XXL, which does not
fit this machine in f32) and the transformer and VAE in f32 (PyTorch's fast path
on a CPU without bf16 arithmetic); Kinema reads every checkpoint in its stored
dtype, stage by stage. Wall time and peak RSS per process, as above.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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


def timed(cmd: list[str], env: dict | None = None, stage_peaks: bool = False) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one process. With `stage_peaks`, the
    process is `kinema generate`, which resets Linux's peak-RSS counter at each
    stage to print that stage's peak (so ru_maxrss is only the last stage's):
    the peak is then the largest "peak RSS X GiB" it printed."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE if stage_peaks else None, text=True)
    peaks = []
    if stage_peaks:
        import re
        for line in p.stderr:
            sys.stderr.write(line)
            peaks += [float(g) * 2**30 for g in re.findall(r"peak RSS ([0-9.]+) GiB", line)]
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status})")
    return wall, int(max([usage.ru_maxrss * 1024] + peaks))


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


PIPELINE = r'''
import sys, torch
threads, d, prompt, steps, guidance, height, width, frames, tiled = sys.argv[1:10]
torch.set_num_threads(int(threads))
from diffusers import WanPipeline
from transformers import UMT5EncoderModel
text_encoder = UMT5EncoderModel.from_pretrained(d + "/text_encoder", torch_dtype="auto")
pipe = WanPipeline.from_pretrained(d, text_encoder=text_encoder, torch_dtype=torch.float32)
pipe.text_encoder = text_encoder
if tiled == "1":
    pipe.vae.enable_tiling()
with torch.no_grad():
    video = pipe(prompt=prompt, negative_prompt="", height=int(height), width=int(width), num_frames=int(frames),
                 num_inference_steps=int(steps), guidance_scale=float(guidance), output_type="np",
                 generator=torch.Generator().manual_seed(0)).frames[0]
assert video.shape == (int(frames), int(height), int(width), 3), video.shape
'''


def pipeline(args) -> int:
    d = os.path.abspath(os.path.expanduser(args.pipeline))
    manifest = json.load(open(os.path.join(d, "kinema.json")))
    video, guidance = manifest["video"], manifest["defaults"]["guidance"]
    tiled = "1" if manifest.get("vae_decoder", {}).get("tiling") else "0"
    prompt = "a cat surfing a wave at sunset"
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), KINEMA_THREADS=str(args.threads))
    out = os.path.join(tempfile.mkdtemp(prefix="kinema-bench-"), "clip.mp4")
    rows: dict[str, list[tuple[float, int]]] = {}
    for _ in range(args.runs):
        rows.setdefault("diffusers", []).append(timed(
            [sys.executable, "-c", PIPELINE, str(args.threads), d, prompt, str(args.steps), str(guidance),
             str(video["height"]), str(video["width"]), str(video["frames"]), tiled]))
        rows.setdefault("kinema", []).append(timed(
            [KINEMA, "generate", "--pipeline", d, prompt, "--steps", str(args.steps), "--device", "cpu", "-o", out],
            env, stage_peaks=True))
    ref_wall, ref_rss = min(rows["diffusers"])
    report = {"pipeline": d, "video": video, "steps": args.steps, "guidance": guidance, "tiled_vae": tiled == "1",
              "threads": args.threads, "rows": {}}
    for name, runs in rows.items():
        wall, rss = min(runs)
        report["rows"][name] = {"wall_s": round(wall, 2), "peak_rss_bytes": rss,
                                "wall_vs_diffusers": round(wall / ref_wall, 3),
                                "rss_vs_diffusers": round(rss / ref_rss, 3)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{video['frames']}×{video['height']}×{video['width']}, {args.steps} steps, guidance {guidance}, "
              f"{args.threads} threads, best of {args.runs}")
        for name, r in report["rows"].items():
            print(f"  {name:10} {r['wall_s']:8.2f} s ({r['wall_vs_diffusers']:.2f}×)  "
                  f"peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB ({r['rss_vs_diffusers']:.2f}×)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--pipeline", help="time the whole pipeline of this folder against diffusers' WanPipeline")
    ap.add_argument("--steps", type=int, default=1, help="denoising steps (--pipeline)")
    ap.add_argument("--frames", type=int, default=1, help="latent frames (1: 1,560 tokens; 21: 32,760)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--int4", action="store_true", help="also the `kinema quantize --int4` checkpoint (groups of 64)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reference", choices=["run", "cached", "only"], default="run",
                    help="PyTorch's pass: run it (and cache its output and timing), reuse the cached one, "
                         "or run only it (81 frames: tens of minutes)")
    args = ap.parse_args()
    if args.pipeline:
        return pipeline(args)
    if not args.dir:
        ap.error("give DIR (the transformer alone) or --pipeline DIR")
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
    cached = os.path.join(bench, f"torch-{args.frames}f.json")
    if args.reference == "cached":
        if not (os.path.exists(ref) and os.path.exists(cached)):
            raise SystemExit(f"no cached reference in {bench}: run with --reference only first")
        rows["pytorch"] = [tuple(r) for r in json.load(open(cached))["runs"]]
    for _ in range(args.runs):
        if args.reference != "cached":
            rows.setdefault("pytorch", []).append(
                timed([sys.executable, "-c", TORCH, str(args.threads), transformer, x, ref]))
            json.dump({"threads": args.threads, "runs": rows["pytorch"]}, open(cached, "w"))
        if args.reference == "only":
            continue
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
