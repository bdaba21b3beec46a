"""Synthetic text-to-video clips for the embedded model: a coloured shape
moving over a dark background, and the prompt that describes it.

    clip, prompt = make_clip(rng, colour="red", shape="circle", direction="left")

Clips are float32 [3, F, H, W] in [-1, 1]; prompts are "a {colour} {shape} moving
{direction}". Everything is deterministic given the numpy Generator.
"""

from __future__ import annotations

import numpy as np

COLOURS = {
    "red": (0.95, 0.15, 0.15),
    "green": (0.15, 0.85, 0.2),
    "blue": (0.2, 0.35, 0.95),
    "yellow": (0.95, 0.9, 0.15),
    "white": (0.95, 0.95, 0.95),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
BACKGROUND = 0.08
VOCAB = ["a", "moving", *COLOURS, *SHAPES, *DIRECTIONS]


def prompts() -> list[tuple[str, str, str]]:
    """All 60 (colour, shape, direction) combinations."""
    return [(c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS]


def prompt_text(colour: str, shape: str, direction: str) -> str:
    return f"a {colour} {shape} moving {direction}"


def tokens(text: str) -> list[int]:
    words = text.lower().split()
    unknown = [w for w in words if w not in VOCAB]
    if unknown:
        raise ValueError(f"unknown words {unknown}; the vocabulary is: {' '.join(VOCAB)}")
    return [VOCAB.index(w) for w in words]


SQUARE = 1.0  # a square's half-side, in radii


def mask(shape: str, size: int, cx: float, cy: float, r: float, square: float = SQUARE) -> np.ndarray:
    """A [size, size] coverage mask (2×2 supersampled) of the shape centred at (cx, cy)."""
    ss = 2
    g = (np.arange(size * ss) + 0.5) / ss
    x, y = np.meshgrid(g, g)
    dx, dy = x - cx, y - cy
    if shape == "circle":
        m = dx * dx + dy * dy <= r * r
    elif shape == "square":
        # Half-side r (SQUARE): the corners reach 0.41 r past the circle of the
        # same r (at 0.85 r they reached 0.2 r, and squares were drawn as circles).
        m = (np.abs(dx) <= r * square) & (np.abs(dy) <= r * square)
    else:  # triangle, apex up
        m = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    return m.reshape(size, ss, size, ss).mean(axis=(1, 3))


JITTER = 0.25  # the spread of radius and path, as a fraction of the 2026-11-26 runs'


def make_clip(rng: np.random.Generator, colour: str, shape: str, direction: str, frames: int = 16,
              size: int = 64, jitter: float = JITTER, square: float = SQUARE) -> np.ndarray:
    """The shape crosses the frame through its middle (±3 px): it starts near the
    edge it moves away from and ends near the opposite one (±1.5 px), with a
    radius of 5–6 px. Each prompt is then close to one clip, which makes its
    direction and shape visible in the prompt's mean clip — what the early,
    high-noise denoising steps learn. Uniformly random positions left them
    invisible there and a 1.2 M-parameter model never learned them
    (tools/train/README.md). Sizes scale with `size / 32`; `jitter` scales the
    spread of the radius and the path: the prompt's mean clip, which the
    high-noise steps learn, is blurred by that spread, and a blurred square
    is a rounded one (../../shared/TRIALS.md: squares came out as circles)."""
    k = size / 32
    r = k * (5.5 + jitter * rng.uniform(-0.5, 0.5))
    vx, vy = DIRECTIONS[direction]
    lo, hi = r + k, size - r - k
    start, end = lo + jitter * k * rng.uniform(0, 1.5), hi - jitter * k * rng.uniform(0, 1.5)
    across = size / 2 + jitter * k * rng.uniform(-3, 3)

    def along(f: int, v: int) -> float:
        p = start + (end - start) * f / (frames - 1)
        return p if v > 0 else size - p

    rgb = np.array(COLOURS[colour], dtype=np.float32)
    out = np.empty((3, frames, size, size), dtype=np.float32)
    for f in range(frames):
        cx = along(f, vx) if vx else across
        cy = along(f, vy) if vy else across
        m = mask(shape, size, cx, cy, r, square)[None]
        out[:, f] = BACKGROUND * (1 - m) + rgb[:, None, None] * m
    return out * 2 - 1


def batch(rng: np.random.Generator, n: int, frames: int = 16, size: int = 64, jitter: float = JITTER,
          square: float = SQUARE):
    """`n` random clips with their (colour, shape, direction) labels."""
    combos = prompts()
    labels = [combos[i] for i in rng.integers(0, len(combos), n)]
    clips = np.stack([make_clip(rng, *lab, frames=frames, size=size, jitter=jitter, square=square) for lab in labels])
    return clips, labels
