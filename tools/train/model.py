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
    patch_size=(4, 8, 8), num_attention_heads=4, attention_head_dim=32, in_channels=6, out_channels=3,
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


HEAD = 16  # channels of the conv head
SIGMA_MIN = 0.05  # the x0 → velocity conversion divides by σ, clamped here


class CoordWan(nn.Module):
    """Wan with three additions, each measured in ../../shared/TRIALS.md's trials:

    - pooled text: a Linear over the prompt's token embeddings, concatenated,
      added to Wan's timestep embedding (`temb`, before `time_proj`), so the text
      also drives every block's adaLN and the output norm (as class-conditional
      DiTs do); zero-initialised, so it starts as plain Wan;
    - x0-prediction: Wan's output is read as the clean clip and returned as the
      velocity the sampler expects, `(x − x0) / σ` with σ = timestep / 1000
      clamped at SIGMA_MIN (a 4×8×8×3 patch is 768 values in a 128-wide token:
      too narrow for a velocity's noise, wide enough for a clean clip's);
    - a conv head: a residual two-layer (1, 3, 3) conv over the predicted clip and
      the coordinates, which sees across patch seams and draws corners (zero-initialised).

    `x` is [B, 3, F, H, W]; the coordinate channels are built inside."""

    def __init__(self, wan: WanTransformer3DModel):
        super().__init__()
        self.wan = wan
        inner = wan.config.num_attention_heads * wan.config.attention_head_dim
        self.pool = nn.Linear(TEXT_LEN * TEXT_DIM, inner)
        nn.init.zeros_(self.pool.weight)
        nn.init.zeros_(self.pool.bias)
        self.head_in = nn.Conv3d(6, HEAD, (1, 3, 3), padding=(0, 1, 1))
        self.head_out = nn.Conv3d(HEAD, 3, (1, 3, 3), padding=(0, 1, 1))
        nn.init.zeros_(self.head_out.weight)
        nn.init.zeros_(self.head_out.bias)
        self._pooled = None
        wan.condition_embedder.time_embedder.register_forward_hook(self._add_pooled)

    def _add_pooled(self, _module, _args, temb):
        return temb + self._pooled.to(temb.dtype)

    def forward(self, hidden_states, timestep, encoder_hidden_states):
        b, _, f, h, w = hidden_states.shape
        # Built by broadcasting three short ramps (what the exported program does too).
        ramp = lambda n: torch.linspace(-1, 1, n, dtype=hidden_states.dtype, device=hidden_states.device)  # noqa: E731
        coords = torch.cat([ramp(w).view(1, 1, 1, 1, w).expand(b, 1, f, h, w),
                            ramp(h).view(1, 1, 1, h, 1).expand(b, 1, f, h, w),
                            ramp(f).view(1, 1, f, 1, 1).expand(b, 1, f, h, w)], dim=1)
        self._pooled = self.pool(encoder_hidden_states.flatten(1))
        x0 = self.wan(torch.cat([hidden_states, coords], dim=1), timestep, encoder_hidden_states,
                      return_dict=False)[0]
        self._pooled = None
        x0 = x0 + self.head_out(torch.nn.functional.silu(self.head_in(torch.cat([x0, coords], dim=1))))
        sigma = (timestep / 1000).clamp_min(SIGMA_MIN).view(b, 1, 1, 1, 1)
        return (hidden_states - x0) / sigma


def build() -> tuple[CoordWan, TextEncoder]:
    return CoordWan(WanTransformer3DModel(**TRANSFORMER)), TextEncoder()
