#!/usr/bin/env python3
"""Scores a checkpoint's EMA weights over the 60 prompts at several guidance scales
and step counts (the sampling of train.py's evaluation; seed 0), to choose the
defaults `models/wan-shapes/kinema.json` ships with. Inference only: no training.

    python tools/train/sweep.py --checkpoint tools/train/runs/coords/checkpoint.pt --guidance 2 4 8 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import train  # noqa: E402
from model import build  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--guidance", type=float, nargs="+", default=[4.0])
    ap.add_argument("--steps", type=int, nargs="+", default=[20])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    transformer, text = build()
    ck = torch.load(args.checkpoint, weights_only=False)
    transformer.load_state_dict(ck["ema_transformer"])
    text.load_state_dict(ck["ema_text"])
    transformer.eval(), text.eval()
    for steps in args.steps:
        for g in args.guidance:
            original = train.sample

            def sample(t, x, ids, steps=steps, guidance=g, seed=0):
                return original(t, x, ids, steps=steps, guidance=guidance, seed=seed)

            train.sample = sample
            try:
                scores = train.evaluate(transformer, text)
            finally:
                train.sample = original
            print(json.dumps({"step": ck["step"], "steps": steps, "guidance": g, **scores}), flush=True)


if __name__ == "__main__":
    main()
