"""Reads a generated clip back: which colour, which shape, which way it moves.

    colour, shape, direction = check(frames)   # frames: [F, H, W, 3] in [0, 1]

The blob is the set of pixels far from the dark background; its colour is the
palette colour nearest its mean, its shape comes from how much of its bounding
box it fills, its direction from the straight-line fit of its centroid over time.
"""

from __future__ import annotations

import numpy as np

from data import BACKGROUND, COLOURS

PALETTE = {k: np.array(v) for k, v in COLOURS.items()}


def blob(frame: np.ndarray) -> np.ndarray:
    return np.abs(frame - BACKGROUND).max(axis=-1) > 0.3


def check(frames: np.ndarray) -> tuple[str | None, str | None, str | None]:
    masks = [blob(f) for f in frames]
    pixels = np.concatenate([f[m] for f, m in zip(frames, masks)]) if any(m.any() for m in masks) else None
    if pixels is None or len(pixels) < 4:
        return None, None, None
    mean = pixels.mean(axis=0)
    colour = min(PALETTE, key=lambda k: float(np.sum((PALETTE[k] - mean) ** 2)))
    centroids, fills = [], []
    for m in masks:
        if m.sum() < 3:
            continue
        ys, xs = np.nonzero(m)
        centroids.append((xs.mean(), ys.mean()))
        box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        fills.append(m.sum() / box)
    direction = None
    if len(centroids) >= 2:
        c = np.array(centroids)
        t = np.arange(len(c))
        sx, sy = np.polyfit(t, c[:, 0], 1)[0], np.polyfit(t, c[:, 1], 1)[0]
        if max(abs(sx), abs(sy)) > 0.3:
            direction = ("right" if sx > 0 else "left") if abs(sx) >= abs(sy) else ("down" if sy > 0 else "up")
    fill = float(np.median(fills)) if fills else 0.0
    shape = "square" if fill > 0.88 else ("circle" if fill > 0.66 else "triangle")
    return colour, shape, direction
