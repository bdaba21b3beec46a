#!/usr/bin/env python3
"""The real Wan2.1 VAE decoder (random weights in its exact config,
tools/fixtures/make_wan_real.py) decoding tiled on the CPU: `kinema decode`
against diffusers' `AutoencoderKLWan.tiled_decode` (f32 eager), each in a
fresh process, on the same latents and threads.

    python tools/bench_vae.py ~/.cache/kinema/wan-real [--frames 2] [--threads 2] [--json]

Needs the tile programs at DIR/programs/vae-tiles/ (`python -m kinema_export
wan-vae-chunks DIR/vae --latent-shape 16,21,60,104 --tile 256,256 --tile-stride
192,192 -o DIR/programs/vae-tiles`) and `target/release/kinema`. Writes a
pipeline manifest for the decode only into DIR/bench/vae-{F}f/ (kinema.json
pointing at DIR's vae/ and programs). Reported per engine: wall time (process
start to exit) and peak resident memory (ru_maxrss); Kinema's error against
diffusers' output before the clamp (max abs, and relative to max |ref|).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_wan import KINEMA, timed  # noqa: E402

TORCH = r'''
import sys, torch
from unittest import mock
threads, vae_dir, latents, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
torch.set_num_threads(threads)
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file, save_file
z = load_file(latents)["latents"]
vae = AutoencoderKLWan.from_pretrained(vae_dir, torch_dtype=torch.float32).eval()
vae.enable_tiling()  # 256-pixel tiles every 192, diffusers' defaults
mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
with torch.no_grad(), mock.patch.object(torch, "clamp", lambda x, min=None, max=None: x):
    video = vae.decode(z * std + mean, return_dict=False)[0]
save_file({"video": video.contiguous()}, out)
'''


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--frames", type=int, default=2, help="latent frames (2 → 5 video frames)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch
    from safetensors.numpy import load_file
    from safetensors.torch import save_file

    d = os.path.abspath(os.path.expanduser(args.dir))
    tiles = os.path.join(d, "programs", "vae-tiles")
    entry = json.load(open(os.path.join(tiles, "vae_decoder.json")))
    work = os.path.join(d, "bench", f"vae-{args.frames}f")
    os.makedirs(work, exist_ok=True)
    # The decode-only pipeline: kinema.json here, everything else links to DIR.
    for name in ("vae", "programs", "scheduler", "transformer"):
        link = os.path.join(work, name)
        if not os.path.islink(link):
            os.symlink(os.path.join(d, name), link)
    vae_cfg = json.load(open(os.path.join(d, "vae", "config.json")))
    manifest = {
        "format": "kinema.pipeline", "version": 1, "architecture": "wan2.1-t2v",
        "transformer": {"program": "programs/t2v-1f/program.json", "weights": "transformer"},
        "vae_decoder": entry,
        "scheduler": "scheduler/scheduler_config.json",
        "latent": {"channels": 16, "frames": args.frames, "height": 60, "width": 104,
                   "mean": vae_cfg["latents_mean"], "std": vae_cfg["latents_std"]},
        "video": {"frames": (args.frames - 1) * 4 + 1, "height": 480, "width": 832, "fps": 16},
        "text": {"kind": "prompt_embeds", "length": 512, "dim": 4096},
        "defaults": {"steps": 50, "guidance": 5.0},
    }
    json.dump(manifest, open(os.path.join(work, "kinema.json"), "w"), indent=1)
    latents = os.path.join(work, "latents.safetensors")
    g = torch.Generator().manual_seed(20261201)
    save_file({"latents": torch.randn(1, 16, args.frames, 60, 104, generator=g)}, latents)

    ref = os.path.join(work, "diffusers.safetensors")
    script = os.path.join(work, "torch_decode.py")
    open(script, "w").write(TORCH)
    t_wall, t_rss = timed([sys.executable, script, str(args.threads), os.path.join(d, "vae"), latents, ref])
    got = os.path.join(work, "kinema.safetensors")
    env = {**os.environ, "KINEMA_THREADS": str(args.threads)}
    k_wall, k_rss = timed([KINEMA, "decode", "--pipeline", work, latents, "--device", "cpu", "-o", got], env)
    a, b = load_file(got)["video"], load_file(ref)["video"]
    assert a.shape == b.shape, (a.shape, b.shape)
    err = float(abs(a - b).max())
    report = {"frames": args.frames, "threads": args.threads, "shape": list(a.shape),
              "diffusers": {"wall_s": round(t_wall, 2), "peak_rss_mib": round(t_rss / 2**20)},
              "kinema": {"wall_s": round(k_wall, 2), "peak_rss_mib": round(k_rss / 2**20),
                         "max_abs_err": err, "rel_err": err / float(abs(b).max())}}
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
