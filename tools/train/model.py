"""The embedded model: a small WanTransformer3DModel in pixel space, and its
tiny text encoder (a learned word table, positions, and a null sequence for
classifier-free guidance).

Wan knows where a token is only through rotary embeddings in self-attention,
which are relative; a model this small did not learn absolute positions from
them, so it could not put a shape on the left of the first frame and the right
of the last (runs/main, runs/cross in README.md). `CoordWan` gives it three
constant coordinate channels (x, y, t in [-1, 1]) next to the video's RGB, as
Wan's image-to-video models take condition channels next to their latents: the
transformer has `in_channels = 6`, and the exported program concatenates the
coordinates itself, so a pipeline still feeds it RGB only."""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers import WanTransformer3DModel

from data import VOCAB

TEXT_LEN = 5  # "a {colour} {shape} moving {direction}"
TEXT_DIM = 64

TRANSFORMER = dict(
    patch_size=(2, 4, 4), num_attention_heads=4, attention_head_dim=32, in_channels=6, out_channels=3,
    text_dim=TEXT_DIM, freq_dim=64, ffn_dim=512, num_layers=4, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=64,
)


class TextEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.words = nn.Embedding(len(VOCAB), TEXT_DIM)
        self.positions = nn.Parameter(torch.zeros(TEXT_LEN, TEXT_DIM))
        self.null = nn.Parameter(torch.zeros(TEXT_LEN, TEXT_DIM))
        nn.init.normal_(self.words.weight, std=1.0)
        nn.init.normal_(self.null, std=1.0)

    def forward(self, ids: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, TEXT_LEN] → embeddings [B, TEXT_LEN, TEXT_DIM]; rows where
        `drop` is true get the null sequence."""
        e = self.words(ids) + self.positions
        if drop is not None:
            e = torch.where(drop[:, None, None], self.null.expand_as(e), e)
        return e


def coordinates(frames: int, height: int, width: int) -> torch.Tensor:
    """[1, 3, F, H, W]: x, y and t, each from -1 to 1."""
    t, y, x = torch.meshgrid(torch.linspace(-1, 1, frames), torch.linspace(-1, 1, height),
                             torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack([x, y, t])[None]


class CoordWan(nn.Module):
    """`wan(cat([x, coordinates]), timestep, text)`; `x` is [B, 3, F, H, W]."""

    def __init__(self, wan: WanTransformer3DModel):
        super().__init__()
        self.wan = wan

    def forward(self, hidden_states, timestep, encoder_hidden_states):
        b, _, f, h, w = hidden_states.shape
        # Built by broadcasting three short ramps (what the exported program does too).
        ramp = lambda n: torch.linspace(-1, 1, n, dtype=hidden_states.dtype, device=hidden_states.device)  # noqa: E731
        coords = torch.cat([ramp(w).view(1, 1, 1, 1, w).expand(b, 1, f, h, w),
                            ramp(h).view(1, 1, 1, h, 1).expand(b, 1, f, h, w),
                            ramp(f).view(1, 1, f, 1, 1).expand(b, 1, f, h, w)], dim=1)
        return self.wan(torch.cat([hidden_states, coords], dim=1), timestep, encoder_hidden_states,
                        return_dict=False)[0]


def build() -> tuple[CoordWan, TextEncoder]:
    return CoordWan(WanTransformer3DModel(**TRANSFORMER)), TextEncoder()
