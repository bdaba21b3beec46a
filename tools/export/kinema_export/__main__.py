"""Export diffusers' Wan models to Kinema programs, referencing their weights.

    python -m kinema_export wan <model_dir> --latent-shape C,F,H,W --text-len N [--batch 2] -o <out_dir>
    python -m kinema_export wan-vae <vae_dir> --latent-shape C,F,H,W -o <out_dir>
    python -m kinema_export wan-vae-chunks <vae_dir> --latent-shape C,F,H,W [--tile H,W --tile-stride H,W] -o <out_dir>
    python -m kinema_export umt5 <text_encoder_dir> [--text-len N] -o <out_dir>
    python -m kinema_export wan-pipeline <pipeline_dir> --height H --width W --frames F [--int8] [--batch 2] [--text-lengths N,N,…]

`wan` exports `WanTransformer3DModel` (inputs: hidden_states [B,C,F,H,W],
timestep [B], encoder_hidden_states [B,N,text_dim]; B = --batch, 2 lets a
pipeline run guidance's conditional and unconditional passes together); `wan-vae` exports
`AutoencoderKLWan.decode` (input: z [1,C,F,H,W]); `wan-vae-chunks` exports
the same decoder as `first/` and `chunk/` programs that decode one latent frame
at a time with its feature cache (see wan_vae.py); with `--tile` (pixels, as
diffusers' `enable_tiling`: 256,256 with stride 192,192) one such pair per
tile size, decoded tile by tile and blended, and writes `out_dir/vae_decoder.json`,
the manifest's `vae_decoder` entry (paths relative to the vae_dir's parent,
the pipeline folder); `umt5` exports transformers' `UMT5EncoderModel` (inputs
input_ids and attention_mask [1, N] integers, output the last hidden state; see
umt5.py); `wan-pipeline` exports all of a diffusers Wan folder's programs into
it and writes its kinema.json (see pipeline.py). Each model directory is a
diffusers folder (config.json + safetensors, sharded or not; a pipeline folder's
`transformer/` or `vae/`); the program references its weights by key.
"""

import argparse
import sys

import torch

from .lower import ExportError, export_module


class WanDecode(torch.nn.Module):
    """`AutoencoderKLWan.decode` as a forward pass (torch.export unrolls the
    per-frame loop and its feature cache for the given latent frame count)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z, return_dict=False)[0]


def shape(text: str) -> list[int]:
    try:
        dims = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected C,F,H,W") from None
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected four positive integers C,F,H,W")
    return dims


def pair(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected H,W") from None
    if min(h, w) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two positive integers H,W")
    return h, w


def lengths(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N,N,…") from None
    if any(n < 1 for n in out):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kinema_export", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=["wan", "wan-vae", "wan-vae-chunks", "umt5", "wan-pipeline"])
    ap.add_argument("model_dir")
    ap.add_argument("--latent-shape", type=shape, help="C,F,H,W (wan, wan-vae, wan-vae-chunks)")
    ap.add_argument("--text-len", type=int, default=512)
    ap.add_argument("--text-lengths", type=lengths,
                    help="wan-pipeline: shorter text encoder programs, N,N,… tokens (default: a sixteenth and a "
                         "quarter of --text-len; '' for none)")
    ap.add_argument("--batch", type=int, choices=[1, 2], default=1, help="transformer batch (wan only)")
    ap.add_argument("--tile", type=pair, help="wan-vae-chunks: spatial tiles of H,W pixels")
    ap.add_argument("--tile-stride", type=pair, help="wan-vae-chunks: tile stride H,W pixels (default 3/4 of --tile)")
    ap.add_argument("--height", type=int, help="wan-pipeline: video height in pixels")
    ap.add_argument("--width", type=int, help="wan-pipeline: video width in pixels")
    ap.add_argument("--frames", type=int, help="wan-pipeline: video frames (4k + 1)")
    ap.add_argument("--int8", action="store_true", help="wan-pipeline: int8 weights (runs kinema quantize)")
    ap.add_argument("-o", "--out", help="the output folder (all but wan-pipeline, which writes into model_dir)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if args.model == "wan-pipeline":
        from .pipeline import export_pipeline

        if None in (args.height, args.width, args.frames):
            ap.error("wan-pipeline needs --height, --width and --frames")
        try:
            export_pipeline(args.model_dir, args.height, args.width, args.frames, int8=args.int8, batch=args.batch,
                            text_len=args.text_len, text_lengths=args.text_lengths, tile=args.tile, tile_stride=args.tile_stride)
        except ExportError as e:
            print(f"kinema_export: error: {e}", file=sys.stderr)
            return 1
        return 0
    if args.out is None:
        ap.error(f"{args.model} needs -o OUT")
    if args.model == "umt5":
        from .umt5 import export_umt5

        try:
            program = export_umt5(args.model_dir, args.text_len, args.out)
        except ExportError as e:
            print(f"kinema_export: error: {e}", file=sys.stderr)
            return 1
        print(f"kinema_export: wrote {args.out}/program.json ({len(program['nodes'])} nodes)")
        return 0
    if args.latent_shape is None:
        ap.error(f"{args.model} needs --latent-shape C,F,H,W")
    c, f, h, w = args.latent_shape
    try:
        if args.model == "wan":
            from diffusers import WanTransformer3DModel

            model = WanTransformer3DModel.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
            text_dim = model.config.text_dim
            b = args.batch
            inputs = (torch.randn(b, c, f, h, w), torch.full((b,), 500.0), torch.randn(b, args.text_len, text_dim))
            export_module(model, inputs, args.out, weights=args.model_dir, kwargs={"return_dict": False})
        elif args.model == "wan-vae-chunks":
            from diffusers import AutoencoderKLWan

            from .wan_vae import export_chunks

            vae = AutoencoderKLWan.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
            if args.tile:
                import json
                import os

                from .wan_vae import export_tiles

                stride = args.tile_stride or (args.tile[0] * 3 // 4, args.tile[1] * 3 // 4)
                try:
                    entry = export_tiles(vae, args.latent_shape, args.tile, stride, args.out, args.model_dir)
                except ValueError as e:
                    print(f"kinema_export: error: {e}", file=sys.stderr)
                    return 1
                with open(os.path.join(args.out, "vae_decoder.json"), "w") as fh:
                    json.dump(entry, fh, indent=2)
                print(f"kinema_export: wrote {1 + len(entry['tiling']['edges'])} tile decoders and "
                      f"{args.out}/vae_decoder.json")
                return 0
            n = export_chunks(vae, args.latent_shape, args.out, args.model_dir)
            print(f"kinema_export: {n} feature-cache entries")
            print(f"kinema_export: wrote {args.out}/first/program.json and {args.out}/chunk/program.json")
            return 0
        else:
            from diffusers import AutoencoderKLWan

            vae = AutoencoderKLWan.from_pretrained(args.model_dir, torch_dtype=torch.float32).eval()
            export_module(WanDecode(vae), (torch.randn(1, c, f, h, w),), args.out, weights=args.model_dir,
                          strip_prefix="vae.")
    except ExportError as e:
        print(f"kinema_export: error: {e}", file=sys.stderr)
        return 1
    print(f"kinema_export: wrote {args.out}/program.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
