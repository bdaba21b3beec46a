#!/usr/bin/env python3
"""Exports a training checkpoint (its EMA weights) as Kinema's embedded model:
a pipeline folder in diffusers' layout plus the transformer program and
kinema.json, which `kinema generate` embeds and `www/` serves.

    python tools/train/export.py [--checkpoint tools/train/runs/main/checkpoint.pt] [-o models/wan-shapes]

    models/wan-shapes/
        kinema.json                      manifest: programs, latent = the video (pixel space), word table, defaults
        model_index.json
        transformer/                     config.json + diffusion_pytorch_model.safetensors (diffusers)
        text_encoder/model.safetensors   words [V, D], positions [L, D], null [L, D]
        scheduler/scheduler_config.json  FlowMatchEulerDiscreteScheduler, shift 2
        programs/transformer/program.json  batch 2: guidance's two passes in one run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "export"))
from data import VOCAB, prompt_text  # noqa: E402
from kinema_export import export_module  # noqa: E402
from model import TEXT_DIM, TEXT_LEN, build  # noqa: E402
from train import FRAMES, SHIFT, SIZE  # noqa: E402

STEPS, GUIDANCE, FPS = 20, 4.0, 8


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "runs", "main", "checkpoint.pt"))
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "models", "wan-shapes"))
    args = ap.parse_args()
    ck = torch.load(args.checkpoint, weights_only=False, map_location="cpu")
    transformer, text = build()
    transformer.load_state_dict(ck["ema_transformer"])
    text.load_state_dict(ck["ema_text"])
    transformer.eval()

    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    transformer.wan.save_pretrained(os.path.join(args.out, "transformer"))
    # CoordWan's own parameters (pool, head_in, head_out) go into the same file
    # under their own names: diffusers loads the Wan part and ignores them, the
    # program reads them all from one checkpoint.
    weights = os.path.join(args.out, "transformer", "diffusion_pytorch_model.safetensors")
    state = load_file(weights)
    state.update({k: v.detach().contiguous() for k, v in transformer.state_dict().items() if not k.startswith("wan.")})
    save_file(state, weights, metadata={"format": "pt"})
    os.makedirs(os.path.join(args.out, "text_encoder"))
    save_file({"words": text.words.weight.detach().contiguous(), "positions": text.positions.detach().contiguous(),
               "null": text.null.detach().contiguous()},
              os.path.join(args.out, "text_encoder", "model.safetensors"),
              metadata={"vocabulary": " ".join(VOCAB), "step": str(ck["step"])})
    FlowMatchEulerDiscreteScheduler(shift=SHIFT).save_pretrained(os.path.join(args.out, "scheduler"))
    with open(os.path.join(args.out, "model_index.json"), "w") as fh:
        json.dump({"_class_name": "KinemaWordTablePipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
                   "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                   "text_encoder": ["kinema", "WordTable"]}, fh, indent=2)
    # The coordinate channels are folded into the program as a constant; batch 2
    # runs guidance's conditional and unconditional passes together.
    example = (torch.randn(2, 3, FRAMES, SIZE, SIZE), torch.full((2,), 500.0), torch.randn(2, TEXT_LEN, TEXT_DIM))
    export_module(transformer, example, os.path.join(args.out, "programs", "transformer"),
                  weights=os.path.join(args.out, "transformer"), strip_prefix="wan.")
    manifest = {
        "format": "kinema.pipeline",
        "version": 1,
        "architecture": "wan2.1-t2v, pixel space, inside tools/train/model.py's CoordWan (coordinate channels, "
                        "pooled text in the timestep embedding, x0-prediction, a conv head; its parameters pool.*, "
                        "head_in.*, head_out.* beside Wan's in the transformer checkpoint)",
        "transformer": {"program": "programs/transformer/program.json",
                        "weights": "transformer/diffusion_pytorch_model.safetensors"},
        "scheduler": "scheduler/scheduler_config.json",
        "latent": {"channels": 3, "frames": FRAMES, "height": SIZE, "width": SIZE, "mean": [0.0] * 3,
                   "std": [1.0] * 3},
        "video": {"frames": FRAMES, "height": SIZE, "width": SIZE, "fps": FPS},
        "text": {"kind": "word_table", "length": TEXT_LEN, "dim": TEXT_DIM,
                 "weights": "text_encoder/model.safetensors", "vocabulary": VOCAB,
                 "example": prompt_text("red", "circle", "left")},
        "defaults": {"steps": STEPS, "guidance": GUIDANCE},
    }
    with open(os.path.join(args.out, "kinema.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
    golden(args.out, os.path.join(ROOT, "tests", "fixtures", "pipelines", "wan_shapes_golden.safetensors"))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) from step {ck['step']}")
    return 0


def golden(folder: str, out: str, prompt: str = "a yellow square moving up", steps: int = 3) -> None:
    from diffusers import WanTransformer3DModel

    from data import tokens
    from model import CoordWan

    model = CoordWan(WanTransformer3DModel.from_pretrained(os.path.join(folder, "transformer"))).eval()
    state = load_file(os.path.join(folder, "transformer", "diffusion_pytorch_model.safetensors"))
    extra = {k: v for k, v in state.items() if k.split(".")[0] in ("pool", "head_in", "head_out")}
    missing = set(k for k in model.state_dict() if not k.startswith("wan.")) - set(extra)
    assert not missing, f"the checkpoint lacks {sorted(missing)}"
    model.load_state_dict(extra, strict=False)
    table = load_file(os.path.join(folder, "text_encoder", "model.safetensors"))
    ids = torch.tensor(tokens(prompt))
    pe = (table["words"][ids] + table["positions"])[None]
    ne = table["null"][None]
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(folder, "scheduler"))
    scheduler.set_timesteps(steps)
    latents = torch.randn(1, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    x = latents.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            ts = t.expand(1).float()
            v_c, v_u = model(x, ts, pe), model(x, ts, ne)
            x = scheduler.step(v_u + GUIDANCE * (v_c - v_u), t, x, return_dict=False)[0]
    save_file({"prompt_embeds": pe.contiguous(), "negative_prompt_embeds": ne.contiguous(), "latents": latents,
               "video": x.contiguous()}, out, metadata={"prompt": prompt, "steps": str(steps)})


if __name__ == "__main__":
    sys.exit(main())
