"""transformers' `UMT5EncoderModel` (Wan's text encoder) as a Kinema program.

Inputs `input_ids` and `attention_mask`, both `[1, text_len]` integers (as
`WanPipeline` tokenizes: padded to the text length); output `out0`, the last
hidden state `[1, text_len, d_model]`. The relative position buckets depend on
the length alone and fold into one constant index table shared by every layer;
each layer's bias is a gather of its `relative_attention_bias` table at them,
added with the padding mask to the scores (attention with a per-head mask).
"""

from __future__ import annotations

import torch

from .lower import export_module


def _tanh_gelu(model: torch.nn.Module) -> int:
    """Swaps transformers' `NewGELUActivation` (the tanh approximation, written
    out elementwise) for `nn.GELU(approximate="tanh")`, the same function, so
    the exporter sees one gelu that the matmul epilogue can take."""
    n = 0
    for name, child in list(model.named_modules()):
        for attr, sub in list(child.named_children()):
            if type(sub).__name__ == "NewGELUActivation":
                setattr(child, attr, torch.nn.GELU(approximate="tanh"))
                n += 1
    return n


def export_umt5(text_encoder_dir: str, text_len: int, out_dir: str) -> dict:
    """Exports the encoder of `text_encoder_dir` (its config.json; the weights
    are only referenced: the model is built on the meta device, so umT5-XXL
    exports without its 22.7 GB of f32 weights in memory)."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config.from_pretrained(text_encoder_dir)
    # In float32 whatever the checkpoint's dtype: T5's norm casts to its weight's dtype.
    with torch.device("meta"):
        model = UMT5EncoderModel._from_config(config, attn_implementation="sdpa", dtype=torch.float32).eval()
    _tanh_gelu(model)
    ids = torch.zeros(1, text_len, dtype=torch.long, device="meta")
    mask = torch.ones(1, text_len, dtype=torch.long, device="meta")
    return export_module(model, (ids, mask), out_dir, weights=text_encoder_dir, kwargs={"return_dict": False},
                         input_names=["input_ids", "attention_mask"],
                         aliases={"encoder.embed_tokens.weight": "shared.weight"})
