#!/usr/bin/env python3
"""umT5-XXL's encoder at its real size (random weights in Wan's exact config,
tools/fixtures/make_umt5_real.py) encoding one prompt of 512 tokens on the CPU:
`kinema run` of the exported program (weights memory-mapped in their stored
dtype) against transformers' `UMT5EncoderModel` in bf16 (it would need 22.7 GB
in f32), each in a fresh process, on the same ids, mask and threads.

    python tools/bench_umt5.py ~/.cache/kinema/umt5-real [--weights text_encoder|FILE] [--threads 2] [--json]
    python tools/bench_umt5.py - --reference-layers 3     # correctness at real width, f32 on both sides

Exports DIR/programs/text_encoder (kinema_export umt5, 512 tokens) when it is
missing and writes the inputs into DIR/bench/. `--weights` picks Kinema's
checkpoint (relative to DIR): the bf16 shards (default) or an int8 file from
`kinema quantize DIR/text_encoder --int8 -o DIR/text_encoder-int8.safetensors`.
Reported per engine: wall time (process start to exit) and peak resident memory
(ru_maxrss); Kinema's output against transformers' (max |Δ| / max |ref|:
transformers computes in bf16, Kinema in f32 from the same weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_wan import KINEMA, ROOT, timed  # noqa: E402

PROMPT = ("A cat in a tiny wetsuit surfs a turquoise wave at sunset, spray catching the golden light, "
          "cinematic, slow motion")

TORCH = r'''
import sys, torch
threads, model_dir, inputs, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
torch.set_num_threads(threads)
from transformers import UMT5EncoderModel
from safetensors.torch import load_file, save_file
x = load_file(inputs)
model = UMT5EncoderModel.from_pretrained(model_dir, torch_dtype=torch.bfloat16).eval()
with torch.no_grad():
    y = model(input_ids=x["input_ids"].long(), attention_mask=x["attention_mask"].long()).last_hidden_state
save_file({"out0": y.float().contiguous()}, out)
'''


def reference_check(layers: int, work: str) -> float:
    """Kinema against transformers in f32 at umT5-XXL's width (d_model 4096, 64 heads,
    d_ff 10240, 32 buckets up to 128) with `layers` layers and a 2,048-word vocabulary,
    512 tokens (31 real): max |Δ| / max |ref|."""
    import torch
    from make_umt5_real import CONFIG
    from safetensors.numpy import load_file
    from safetensors.torch import save_file
    from transformers import UMT5Config, UMT5EncoderModel

    model = UMT5EncoderModel(UMT5Config(**dict(CONFIG, vocab_size=2048, num_layers=layers))).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5 if p.dim() >= 2 else torch.ones(p.shape))
    model.save_pretrained(os.path.join(work, "text_encoder"))
    ids = torch.randint(2, 2048, (1, 512), generator=g)
    ids[0, 30], ids[0, 31:] = 1, 0
    mask = (torch.arange(512) < 31).long()[None]
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    save_file({"input_ids": ids.float(), "attention_mask": mask.float()}, os.path.join(work, "in.safetensors"))
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "tools", "export")}
    subprocess.run([sys.executable, "-m", "kinema_export", "umt5", os.path.join(work, "text_encoder"), "--text-len",
                    "512", "-o", os.path.join(work, "program")], check=True, env=env)
    subprocess.run([KINEMA, "run", os.path.join(work, "program", "program.json"), "--weights",
                    os.path.join(work, "text_encoder"), "--inputs", os.path.join(work, "in.safetensors"), "--output",
                    os.path.join(work, "out.safetensors"), "--device", "cpu"], check=True)
    got = load_file(os.path.join(work, "out.safetensors"))["out0"]
    import numpy as np

    return float(np.abs(got - want).max() / np.abs(want).max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--weights", default="text_encoder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-torch", action="store_true", help="reuse DIR/bench/umt5_torch.safetensors")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reference-layers", type=int, metavar="N",
                    help="instead: Kinema vs transformers in f32 on an N-layer model of the real width")
    args = ap.parse_args()
    if args.reference_layers:
        import tempfile

        sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
        with tempfile.TemporaryDirectory() as work:
            err = reference_check(args.reference_layers, work)
        print(f"umT5 at real width, {args.reference_layers} layers, f32: max |Δ| / max |ref| = {err:.2e}")
        return 0
    d = os.path.expanduser(args.dir)
    program = os.path.join(d, "programs", "text_encoder", "program.json")
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "tools", "export")}
    if not os.path.exists(program):
        subprocess.run([sys.executable, "-m", "kinema_export", "umt5", os.path.join(d, "text_encoder"), "--text-len",
                        "512", "-o", os.path.dirname(program)], check=True, env=env)
    bench = os.path.join(d, "bench")
    os.makedirs(bench, exist_ok=True)
    io = os.path.join(bench, "umt5_inputs.safetensors")
    import torch
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer", "tokenizer.json"), pad_token="<pad>",
                                  eos_token="</s>", unk_token="<unk>")
    t = tok([prompt_clean(PROMPT)], padding="max_length", max_length=512, truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    save_file({"input_ids": t.input_ids.float(), "attention_mask": t.attention_mask.float()}, io)
    tokens = int(t.attention_mask.sum())

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "RAYON_NUM_THREADS": str(args.threads)}
    torch_out = os.path.join(bench, "umt5_torch.safetensors")
    rows = {}
    if not args.skip_torch:
        rows["transformers bf16"] = timed([sys.executable, "-c", TORCH, str(args.threads), os.path.join(d, "text_encoder"),
                                           io, torch_out], env)
    kin_out = os.path.join(bench, "umt5_kinema.safetensors")
    rows[f"kinema cpu ({args.weights})"] = timed([KINEMA, "run", program, "--weights", os.path.join(d, args.weights),
                                                  "--inputs", io, "--output", kin_out, "--device", "cpu"], env)
    from safetensors.numpy import load_file

    a, b = load_file(kin_out)["out0"], load_file(torch_out)["out0"]
    assert a.shape == b.shape, (a.shape, b.shape)
    import numpy as np

    err = float(np.abs(a - b).max()) / float(np.abs(b).max())
    report = {"tokens": tokens, "threads": args.threads, "relative_error": err,
              "runs": {k: {"wall_s": round(w, 2), "peak_rss_gib": round(r / 2**30, 2)} for k, (w, r) in rows.items()}}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"umT5-XXL encoder, {tokens} tokens of 512, {args.threads} threads")
        for k, (w, r) in rows.items():
            print(f"  {k:28} {w:8.1f} s  {r / 2**30:6.2f} GiB peak RSS")
        print(f"  kinema vs transformers: max |Δ| / max |ref| = {err:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
