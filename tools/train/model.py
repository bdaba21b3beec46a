"""The embedded model: a small WanTransformer3DModel in pixel space, and its
tiny text encoder (a learned word table, positions, and a null sequence for
classifier-free guidance)."""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers import WanTransformer3DModel

from data import VOCAB

TEXT_LEN = 5  # "a {colour} {shape} moving {direction}"
TEXT_DIM = 64

TRANSFORMER = dict(
    patch_size=(2, 4, 4), num_attention_heads=4, attention_head_dim=32, in_channels=3, out_channels=3,
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


def build() -> tuple[WanTransformer3DModel, TextEncoder]:
    return WanTransformer3DModel(**TRANSFORMER), TextEncoder()
