"""A diffusers Wan text-to-video folder (`Wan-AI/Wan2.1-T2V-1.3B-Diffusers`'s
layout) made runnable by Kinema in place: every program exported into
`DIR/programs/…` and `DIR/kinema.json` written; the weights stay where
diffusers put them (or, with `--int8`, beside them as `kinema quantize` writes
them).

    python -m kinema_export wan-pipeline DIR --height 480 --width 832 --frames 81 [--int8]

- the text encoder (`text_encoder/`, umT5) with `tokenizer/tokenizer.json`, when the
  folder has them (else `kinema generate` takes `--prompt-embeds`): for the text length
  and for shorter prompts (`short_lengths`, by default a sixteenth and a quarter of it).
  umT5 attends only to a prompt's own tokens (the mask) and its position bias depends
  on token distances alone, so a prompt's embeddings from a shorter program are the same
  rows as from the full one; Kinema runs the shortest program a prompt fits and pads
  with zeros, as WanPipeline pads its output;
- the transformer for the latent shape of that video (batch 1, or 2 with `--batch 2`);
- the VAE decoder chunk by chunk with its feature cache, in spatial tiles as
  diffusers' `enable_tiling` (256-pixel tiles every 192) when a frame is larger.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import torch

from .lower import ExportError

# WanPipeline's defaults.
STEPS, GUIDANCE, FPS, TEXT_LEN = 50, 5.0, 16, 512
TILE, TILE_STRIDE = 256, 192


def _component(folder: str, index: dict, name: str) -> str | None:
    """The component's folder when model_index.json names it and it is there."""
    entry = index.get(name)
    path = os.path.join(folder, name)
    if not entry or entry == [None, None] or not os.path.isdir(path):
        return None
    return path


def _quantize(kinema: str, src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run([kinema, "quantize", src, "--int8", "-o", dst], check=True)


def short_lengths(text_len: int) -> list[int]:
    """The shorter text programs' lengths by default: a sixteenth and a quarter of it."""
    return sorted({n for n in (text_len // 16, text_len // 4) if 1 < n < text_len})


def export_pipeline(folder: str, height: int, width: int, frames: int, *, int8: bool = False, batch: int = 1,
                    text_len: int = TEXT_LEN, text_lengths: list[int] | None = None, tile: tuple[int, int] | None = None,
                    tile_stride: tuple[int, int] | None = None, log=print) -> dict:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from .lower import export_module
    from .umt5 import export_umt5
    from .wan_vae import export_chunks, export_tiles

    try:
        with open(os.path.join(folder, "model_index.json")) as fh:
            index = json.load(fh)
    except (OSError, ValueError) as e:
        raise ExportError(f"{folder}: not a diffusers pipeline folder (model_index.json: {e})") from None
    if index.get("_class_name") not in ("WanPipeline", None):
        raise ExportError(f"{folder}: a {index.get('_class_name')}, not a WanPipeline")
    transformer_dir, vae_dir = _component(folder, index, "transformer"), _component(folder, index, "vae")
    if transformer_dir is None or vae_dir is None:
        raise ExportError(f"{folder}: needs transformer/ and vae/")
    scheduler = os.path.join("scheduler", "scheduler_config.json")
    if not os.path.isfile(os.path.join(folder, scheduler)):
        raise ExportError(f"{folder}: no {scheduler}")
    kinema = None
    if int8:
        kinema = os.environ.get("KINEMA_BIN") or shutil.which("kinema")
        if kinema is None:
            raise ExportError("--int8 runs `kinema quantize`: put kinema on PATH or name it in KINEMA_BIN")

    vae = AutoencoderKLWan.from_pretrained(vae_dir, torch_dtype=torch.float32).eval()
    st, ss = vae.config.scale_factor_temporal, vae.config.scale_factor_spatial
    transformer_config = WanTransformer3DModel.load_config(transformer_dir)
    patch = transformer_config["patch_size"]
    if (frames - 1) % st or height % (ss * patch[1]) or width % (ss * patch[2]):
        raise ExportError(f"{frames} frames of {height}×{width}: Wan needs frames = 4k + 1 and a height and width "
                          f"divisible by {ss * patch[1]}")
    latent = [vae.config.z_dim, (frames - 1) // st + 1, height // ss, width // ss]
    programs = os.path.join(folder, "programs")
    manifest = {"format": "kinema.pipeline", "version": 1, "architecture": "wan2.1-t2v"}

    # The transformer.
    weights = "transformer"
    if int8:
        weights = "kinema-int8/transformer.safetensors"
        _quantize(kinema, transformer_dir, os.path.join(folder, weights))
    log(f"kinema_export: the transformer for latents {latent}")
    model = WanTransformer3DModel.from_pretrained(transformer_dir, torch_dtype=torch.float32).eval()
    c, f, h, w = latent
    inputs = (torch.randn(batch, c, f, h, w), torch.full((batch,), 500.0),
              torch.randn(batch, text_len, model.config.text_dim))
    export_module(model, inputs, os.path.join(programs, "transformer"), weights=transformer_dir,
                  kwargs={"return_dict": False})
    text_dim = model.config.text_dim
    del model
    manifest["transformer"] = {"program": "programs/transformer/program.json", "weights": weights}

    # The VAE decoder: chunks, and tiles when a frame is larger than a tile.
    tile = tile or ((TILE, TILE) if max(height, width) > TILE else None)
    out = os.path.join(programs, "vae_decoder")
    if tile:
        if tile_stride:
            stride = tile_stride
        elif tile == (TILE, TILE):
            stride = (TILE_STRIDE, TILE_STRIDE)
        else:
            stride = (tile[0] * 3 // 4, tile[1] * 3 // 4)
        log(f"kinema_export: the VAE decoder in {tile[0]}×{tile[1]} tiles every {stride[0]}×{stride[1]}")
        manifest["vae_decoder"] = export_tiles(vae, latent, tile, stride, out, vae_dir)
    else:
        log("kinema_export: the VAE decoder, chunk by chunk")
        export_chunks(vae, latent, out, vae_dir)
        manifest["vae_decoder"] = {"program": "programs/vae_decoder/first/program.json",
                                   "chunk_program": "programs/vae_decoder/chunk/program.json", "weights": "vae"}

    manifest["scheduler"] = scheduler
    manifest["latent"] = {"channels": c, "frames": f, "height": h, "width": w,
                          "mean": list(vae.config.latents_mean), "std": list(vae.config.latents_std)}
    manifest["video"] = {"frames": frames, "height": height, "width": width, "fps": FPS}

    # The text encoder, when the folder has one.
    text_dir, tokenizer = _component(folder, index, "text_encoder"), os.path.join("tokenizer", "tokenizer.json")
    if text_dir and os.path.isfile(os.path.join(folder, tokenizer)):
        weights = "text_encoder"
        if int8:
            weights = "kinema-int8/text_encoder.safetensors"
            _quantize(kinema, text_dir, os.path.join(folder, weights))
        log(f"kinema_export: the text encoder for {text_len} tokens")
        export_umt5(text_dir, text_len, os.path.join(programs, "text_encoder"))
        short = []
        for n in short_lengths(text_len) if text_lengths is None else sorted(set(text_lengths)):
            if not 0 < n < text_len:
                raise ExportError(f"a shorter text program of {n} tokens (1 to {text_len - 1})")
            log(f"kinema_export: the text encoder for prompts of at most {n} tokens")
            export_umt5(text_dir, n, os.path.join(programs, "text_encoder", f"{n}"))
            short.append({"length": n, "program": f"programs/text_encoder/{n}/program.json"})
        manifest["text"] = {"kind": "umt5", "length": text_len, "dim": text_dim,
                            "program": "programs/text_encoder/program.json", "weights": weights,
                            "tokenizer": tokenizer, "short_programs": short}
    else:
        log("kinema_export: no text_encoder/ and tokenizer/: kinema generate will take --prompt-embeds")
        manifest["text"] = {"kind": "prompt_embeds", "length": text_len, "dim": text_dim}
    manifest["defaults"] = {"steps": STEPS, "guidance": GUIDANCE}
    with open(os.path.join(folder, "kinema.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
    log(f"kinema_export: wrote {folder}/kinema.json")
    return manifest
