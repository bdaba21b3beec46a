"""Wan's causal VAE decoder as two programs, for decoding chunk by chunk.

diffusers' `AutoencoderKLWan._decode` feeds the decoder one latent frame at a
time and keeps a *feature cache*: for every causal conv, the last two frames it
saw. Exported whole, that loop is unrolled and every frame's activations are
planned into one arena; exported as

- `first`: latent frame 0 → video frame 0 and the cache;
- `chunk`: latent frame i and the cache → video frames 4i−3 … 4i and the cache,

memory grows with one chunk, whatever the clip's length. Inputs are `z`
([1, C, 1, H, W]) and `cache_0 …`; outputs `out0` (the frames, clamped to
[-1, 1] as `_decode` does) then the new cache in the same order.

The first chunk leaves some entries one frame long and the temporal
upsamplers' as a marker ("Rep": no cache yet); `first` pads them with zero
frames in front to the two-frame shapes the later chunks have. That changes
nothing: a causal conv pads missing history with zeros anyway, and the
upsampler's first use of a "Rep" entry is exactly a zero-padded conv.
"""

from __future__ import annotations

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
        return (out.clamp(-1.0, 1.0), *caches)


class DecodeChunk(torch.nn.Module):
    def __init__(self, vae, shapes):
        super().__init__()
        self.vae, self.shapes = vae, shapes

    def forward(self, z, caches):
        given = iter(caches)
        feat = [None if s is None else next(given) for s in self.shapes]
        out = self.vae.decoder(self.vae.post_quant_conv(z), feat_cache=feat, feat_idx=[0])
        return (out.clamp(-1.0, 1.0), *[f for f, s in zip(feat, self.shapes) if s is not None])


def export_chunks(vae, latent_shape, out_dir: str, weights: str) -> int:
    """Writes `out_dir/first/program.json` and `out_dir/chunk/program.json`;
    returns the number of cache entries."""
    c, _, h, w = latent_shape
    shapes = cache_shapes(vae, latent_shape)
    z = torch.randn(1, c, 1, h, w)
    export_module(DecodeFirst(vae, shapes), (z,), f"{out_dir}/first", weights=weights, strip_prefix="vae.")
    caches = [torch.randn(s) for s in shapes if s is not None]
    names = ["z"] + [f"cache_{i}" for i in range(len(caches))]
    export_module(DecodeChunk(vae, shapes), (z, caches), f"{out_dir}/chunk", weights=weights, strip_prefix="vae.",
                  input_names=names)
    return len(caches)
