#!/usr/bin/env python3
"""Trains the embedded text-to-video model on synthetic clips (data.py):
flow matching (predict noise − x0, timesteps shifted by SHIFT), AdamW, EMA,
classifier-free-guidance dropout. Reproducible from its seed, resumable.

    python tools/train/train.py --minutes 60 --out tools/train/runs/main   # resumes if a checkpoint is there

Every --eval-every steps it samples all 60 prompts with the EMA weights
(Euler, 20 steps, guidance 4, fixed seed), scores them with checker.py, logs a
JSON line to <out>/log.jsonl and saves <out>/checkpoint.pt.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from checker import check  # noqa: E402
from data import JITTER, SQUARE, batch, prompt_text, prompts, tokens  # noqa: E402
from model import build  # noqa: E402

SEED = 20261126
SHIFT = 2.0
LOSS_CLAMP = 0.3
FRAMES, SIZE = 16, 64


def shifted(s: torch.Tensor) -> torch.Tensor:
    return SHIFT * s / (1 + (SHIFT - 1) * s)


def sample(transformer, text, ids, steps=20, guidance=4.0, seed=0) -> torch.Tensor:
    """Euler sampling of flow matching with CFG; returns clips [B, 3, F, H, W] in [-1, 1]
    (on the models' device; the noise is drawn on the CPU, the same on every device)."""
    device = next(transformer.parameters()).device
    g = torch.Generator().manual_seed(seed)
    b = ids.shape[0]
    x = torch.randn(b, 3, FRAMES, SIZE, SIZE, generator=g).to(device)
    ids = ids.to(device)
    # The sigmas of diffusers' FlowMatchEulerDiscreteScheduler(shift=SHIFT): what `kinema generate` runs.
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    sched.set_timesteps(steps)
    sig = sched.sigmas.float().to(device)
    cond = text(ids)
    uncond = text(ids, drop=torch.ones(b, dtype=torch.bool, device=device))
    for i in range(steps):
        t = sig[i].expand(b) * 1000
        v_c = transformer(x, t, cond)
        v_u = transformer(x, t, uncond)
        v = v_u + guidance * (v_c - v_u)
        x = x + (sig[i + 1] - sig[i]) * v
    return x


def evaluate(transformer, text) -> dict:
    combos = prompts()
    ids = torch.tensor([tokens(prompt_text(*c)) for c in combos])
    with torch.no_grad():
        clips = sample(transformer, text, ids)
    frames = ((clips.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).cpu().numpy()
    got = [check(f) for f in frames]
    colour = np.mean([g[0] == c[0] for g, c in zip(got, combos)])
    shape = np.mean([g[1] == c[1] for g, c in zip(got, combos)])
    direction = np.mean([g[2] == c[2] for g, c in zip(got, combos)])
    both = np.mean([g[0] == c[0] and g[2] == c[2] for g, c in zip(got, combos)])
    return {"colour": float(colour), "shape": float(shape), "direction": float(direction),
            "colour_and_direction": float(both)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "runs", "main"))
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--max-steps", type=int, default=None, help="stop (evaluated and saved) at this step")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu",
                    help="cpu or cuda: where the models train (random draws stay on the CPU, so a run's "
                         "batches and noise are the same on either)")
    ap.add_argument("--loss-clamp", type=float, default=LOSS_CLAMP)
    ap.add_argument("--jitter", type=float, default=JITTER, help="spread of the clips' radius and path (data.py)")
    ap.add_argument("--square", type=float, default=SQUARE, help="a square's half-side in radii (data.py)")
    ap.add_argument("--logit-normal", type=float, default=0.0,
                    help="share of each batch whose σ is drawn logit-normal(--ln-mean, 1) instead of shifted uniform")
    ap.add_argument("--ln-mean", type=float, default=0.4)
    ap.add_argument("--edge-weight", type=float, default=0.0,
                    help="extra loss weight on pixels that differ from their 3×3 neighbourhood (edges, most at corners)")
    ap.add_argument("--motion-weight", type=float, default=0.0,
                    help="weight of an extra loss on frame-to-frame differences of the predicted x0")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")

    torch.manual_seed(SEED)
    device = torch.device(args.device)
    transformer, text = build()
    transformer, text = transformer.to(device), text.to(device)
    params = list(transformer.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema_t, ema_x = copy.deepcopy(transformer).eval(), copy.deepcopy(text).eval()
    step, rng = 0, np.random.default_rng(SEED)
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False, map_location=device)
        transformer.load_state_dict(ck["transformer"])
        text.load_state_dict(ck["text"])
        ema_t.load_state_dict(ck["ema_transformer"])
        ema_x.load_state_dict(ck["ema_text"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())
        print(f"resumed at step {step}", flush=True)
    n_params = sum(p.numel() for p in params)
    print(f"{n_params} parameters", flush=True)

    end = time.time() + args.minutes * 60
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    losses = []
    t0 = time.time()
    while time.time() < end and (args.max_steps is None or step < args.max_steps):
        clips, labels = batch(rng, args.batch, FRAMES, SIZE, args.jitter, args.square)
        x0 = torch.from_numpy(clips)
        ids = torch.tensor([tokens(prompt_text(*lab)) for lab in labels])
        drop = torch.rand(args.batch) < 0.1
        noise = torch.randn_like(x0)
        s = shifted(torch.rand(args.batch))
        if args.logit_normal > 0:
            ln = torch.sigmoid(args.ln_mean + torch.randn(args.batch))
            s = torch.where(torch.rand(args.batch) < args.logit_normal, ln, s)
        x0, ids, drop, noise, s = (t.to(device) for t in (x0, ids, drop, noise, s))
        xt = (1 - s)[:, None, None, None, None] * x0 + s[:, None, None, None, None] * noise
        pred = transformer(xt, s * 1000, text(ids, drop))
        # The loss in x0 space, weighted 1 / max(σ, LOSS_CLAMP)²: the velocity loss
        # for σ ≥ LOSS_CLAMP, without the 1/σ² weight that lets the smallest σ
        # dominate (TRIALS.md, "clamp03").
        x0_pred = xt - s[:, None, None, None, None] * pred
        w = (1 / s.clamp_min(args.loss_clamp) ** 2)[:, None, None, None, None]
        if args.edge_weight > 0:
            # |x0 − its 3×3 mean| per pixel, scaled to ≤ 1: zero on flat areas, highest at corners.
            flat = x0.flatten(1, 2)
            local = torch.nn.functional.avg_pool2d(flat, 3, 1, 1, count_include_pad=False).view_as(x0)
            edge = (x0 - local).abs().sum(1, keepdim=True)
            w = w * (1 + args.edge_weight * edge / edge.amax(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6))
        loss = torch.mean(w * (x0_pred - x0) ** 2)
        if args.motion_weight > 0:
            # The motion of x0 as the model predicts it: differences between frames.
            d_pred, d_true = x0_pred.diff(dim=2), x0.diff(dim=2)
            loss = loss + args.motion_weight * torch.mean((d_pred - d_true) ** 2)
        warm = min(1.0, (step + 1) / 300)
        for gr in opt.param_groups:
            gr["lr"] = args.lr * warm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(list(ema_t.parameters()) + list(ema_x.parameters()), params):
                e.lerp_(p, 1 - decay)
        losses.append(loss.item())
        out_of_time = time.time() >= end or step == args.max_steps
        if step % args.eval_every == 0 or out_of_time:
            acc = evaluate(ema_t, ema_x)
            rec = {"step": step, "loss": float(np.mean(losses)), "seconds": round(time.time() - t0, 1), **acc}
            losses = []
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            torch.save({"transformer": transformer.state_dict(), "text": text.state_dict(),
                        "ema_transformer": ema_t.state_dict(), "ema_text": ema_x.state_dict(),
                        "opt": opt.state_dict(), "step": step, "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state()}, ckpt_path + ".tmp")
            os.replace(ckpt_path + ".tmp", ckpt_path)
    print(f"stopped at step {step}", flush=True)


if __name__ == "__main__":
    main()
