#!/usr/bin/env python3
"""The README's frame strip: `kinema generate` on the embedded model for a few
prompts (its default steps and guidance, the seeds the Rust test uses: the
prompt's index among the 60), every third frame of each clip side by side,
one row per prompt, its prompt written above it.

    cargo build --release -p kinema
    .venv/bin/python tools/frame_strip.py [-o docs/images/embedded-strip.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from PIL import Image, ImageDraw

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
COLOURS = ["red", "green", "blue", "yellow", "white"]
SHAPES = ["circle", "square", "triangle"]
DIRECTIONS = ["left", "right", "up", "down"]
PROMPTS = [("red", "circle", "left"), ("blue", "square", "up"), ("yellow", "triangle", "right"),
           ("green", "square", "down"), ("white", "circle", "right")]
SCALE, EVERY, GAP, LABEL = 2, 3, 4, 14


def index(colour: str, shape: str, direction: str) -> int:
    """The prompt's place among the 60, as tests/diffusion.rs counts them."""
    return (COLOURS.index(colour) * len(SHAPES) + SHAPES.index(shape)) * len(DIRECTIONS) + DIRECTIONS.index(direction)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "docs", "images", "embedded-strip.png"))
    ap.add_argument("--kinema", default=os.path.join(ROOT, "target", "release", "kinema"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for words in PROMPTS:
            prompt = "a {} {} moving {}".format(*words)
            frames = os.path.join(tmp, "_".join(words))
            subprocess.run([args.kinema, "generate", prompt, "--seed", str(index(*words)), "--device", "cpu",
                            "-o", os.path.join(tmp, "clip.gif"), "--frames-dir", frames], check=True)
            names = sorted(f for f in os.listdir(frames) if f.endswith(".png"))
            rows.append((prompt, [Image.open(os.path.join(frames, n)).convert("RGB") for n in names[::EVERY]]))
    w, h = rows[0][1][0].size
    cols = max(len(f) for _, f in rows)
    cell_w, cell_h = w * SCALE + GAP, h * SCALE + GAP + LABEL
    strip = Image.new("RGB", (cols * cell_w + GAP, len(rows) * cell_h + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for r, (prompt, frames) in enumerate(rows):
        y = GAP + r * cell_h
        draw.text((GAP, y), f"\"{prompt}\" (frames 0, {EVERY}, {2 * EVERY}, … of {len(names)})", fill=(0, 0, 0))
        for c, frame in enumerate(frames):
            strip.paste(frame.resize((w * SCALE, h * SCALE), Image.NEAREST), (GAP + c * cell_w, y + LABEL))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    strip.save(args.out, optimize=True)
    print(f"wrote {args.out} ({strip.size[0]}×{strip.size[1]}, {os.path.getsize(args.out) / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
