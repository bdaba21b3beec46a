"""Wan's causal VAE decoder as two programs, for decoding chunk by chunk.

diffusers' `AutoencoderKLWan._decode` feeds the decoder one latent frame at a
time and keeps a *feature cache*: for every causal conv, the last two frames it
saw. Exported whole, that loop is unrolled and every frame's activations are
planned into one arena; exported as

- `first`: latent frame 0 → video frame 0 and the cache;
- `chunk`: latent frame i and the cache → video frames 4i−3 … 4i and the cache,

memory grows with one chunk, whatever the clip's length. Inputs are `z`
([1, C, 1, H, W]) and `cache_0 …`; outputs `out0` (the frames, the decoder's
raw output: `_decode` clamps it to [-1, 1] after the loop, and Kinema's pipeline
does so after decoding) then the new cache in the same order.

Tiled (`export_tiles`), as diffusers' `tiled_decode`: the latent is cut into
overlapping spatial tiles, each decoded chunk by chunk on its own, and the
tiles are blended where they overlap, so memory is set by a tile, not by the
frame. One first/chunk pair is exported per tile size the latent's grid has
(the full tile and the smaller ones at the bottom and right edges): diffusers
blends the raw decoder output and clamps after.

The first chunk leaves some entries one frame long and the temporal
upsamplers' as a marker ("Rep": no cache yet); `first` pads them with zero
frames in front to the two-frame shapes the later chunks have. That changes
nothing: a causal conv pads missing history with zeros anyway, and the
upsampler's first use of a "Rep" entry is exactly a zero-padded conv.
"""

from __future__ import annotations

import os

import torch

from .lower import export_module


def cache_shapes(vae, latent_shape) -> list[tuple[int, ...] | None]:
    """The cache entries' shapes from the second chunk on (an eager dry run);
    None for entries the decoder never fills (their slots stay None)."""
    c, _, h, w = latent_shape
    vae.clear_cache()
    feat = vae._feat_map
    with torch.no_grad():
        for i in range(2):
            z = torch.zeros(1, c, 1, h, w)
            vae.decoder(vae.post_quant_conv(z), feat_cache=feat, feat_idx=[0], first_chunk=i == 0)
    shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in feat]
    vae.clear_cache()
    return shapes


class DecodeFirst(torch.nn.Module):
    def __init__(self, vae, shapes):
        super().__init__()
        self.vae, self.shapes = vae, shapes

    def forward(self, z):
        feat = [None] * len(self.shapes)
        out = self.vae.decoder(self.vae.post_quant_conv(z), feat_cache=feat, feat_idx=[0], first_chunk=True)
        caches = []
        for entry, shape in zip(feat, self.shapes):
            if shape is None:
                continue
            if not isinstance(entry, torch.Tensor):  # "Rep": no history yet
                entry = torch.zeros(shape, dtype=z.dtype)
            elif entry.shape[2] < shape[2]:
                pad = torch.zeros(shape[0], shape[1], shape[2] - entry.shape[2], *shape[3:], dtype=z.dtype)
                entry = torch.cat([pad, entry], dim=2)
            caches.append(entry)
        return (out, *caches)


class DecodeChunk(torch.nn.Module):
    def __init__(self, vae, shapes):
        super().__init__()
        self.vae, self.shapes = vae, shapes

    def forward(self, z, caches):
        given = iter(caches)
        feat = [None if s is None else next(given) for s in self.shapes]
        out = self.vae.decoder(self.vae.post_quant_conv(z), feat_cache=feat, feat_idx=[0])
        return (out, *[f for f, s in zip(feat, self.shapes) if s is not None])


def export_chunks(vae, latent_shape, out_dir: str, weights: str) -> int:
    """Writes `out_dir/first/program.json` and `out_dir/chunk/program.json`;
    returns the number of cache entries."""
    c, _, h, w = latent_shape
    shapes = cache_shapes(vae, latent_shape)
    z = torch.randn(1, c, 1, h, w)
    export_module(DecodeFirst(vae, shapes), (z,), f"{out_dir}/first", weights=weights, strip_prefix="vae.")
    caches = [torch.randn(s) for s in shapes if s is not None]
    names = ["z"] + [f"cache_{i}" for i in range(len(caches))]
    export_module(DecodeChunk(vae, shapes), (z, caches), f"{out_dir}/chunk", weights=weights,
                  strip_prefix="vae.", input_names=names)
    return len(caches)


def spans(size: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of the tiles along one latent axis, as `tiled_decode` cuts them."""
    return [(i, min(tile, size - i)) for i in range(0, size, stride)]


def export_tiles(vae, latent_shape, tile_px: tuple[int, int], stride_px: tuple[int, int], out_dir: str,
                 weights: str) -> dict:
    """Exports a first/chunk pair per tile size into `out_dir/{h}x{w}/` and
    returns the manifest's `vae_decoder` entry, its paths relative to the
    folder holding `weights` (a pipeline folder's `vae/`):
    `program`/`chunk_program` decode a full tile, `tiling.edges` the smaller
    edge tiles. Tile and stride are in pixels, as diffusers' `enable_tiling`
    takes them, and multiples of the VAE's spatial factor."""
    c, _, h, w = latent_shape
    scale = vae.spatial_compression_ratio
    if any(v % scale for v in (*tile_px, *stride_px)):
        raise ValueError(f"tile {tile_px} and stride {stride_px} must be multiples of {scale} pixels")
    tile = (tile_px[0] // scale, tile_px[1] // scale)
    stride = (stride_px[0] // scale, stride_px[1] // scale)
    if not (0 < stride[0] <= tile[0] and 0 < stride[1] <= tile[1]):
        raise ValueError(f"the stride {stride_px} must be positive and at most the tile {tile_px}")
    sizes = sorted({(th, tw) for _, th in spans(h, tile[0], stride[0]) for _, tw in spans(w, tile[1], stride[1])},
                   reverse=True)

    root = os.path.dirname(os.path.normpath(weights))
    prefix = os.path.relpath(out_dir, root) + "/"

    def pair(th, tw):
        export_chunks(vae, (c, 1, th, tw), f"{out_dir}/{th}x{tw}", weights)
        return {"program": f"{prefix}{th}x{tw}/first/program.json",
                "chunk_program": f"{prefix}{th}x{tw}/chunk/program.json"}

    full = pair(*tile)
    edges = [{"height": th, "width": tw, **pair(th, tw)} for th, tw in sizes if (th, tw) != tile]
    return {**full, "weights": os.path.relpath(weights, root), "tiling": {"tile": list(tile), "stride": list(stride), "edges": edges}}
