#!/usr/bin/env python3
"""Times Kinema's three reference workloads in the peers, on this machine, now.

    python tools/bench_peers.py [--json] [--runs N]     # needs onnxruntime, onnx, torch
    python tools/bench_peers.py --write-onnx DIR         # the three graphs as DIR/{name}.onnx
                                                        # (onnxruntime-web's models: web/bench/)

- ONNX Runtime, CPU execution provider, 2 intra-op threads, graphs built with onnx.helper;
- PyTorch CPU, 2 threads.

Workloads (fp32), as in `kinema bench`:
  matmul     [1024,1024] x [1024,1024]
  conv3d     input [1,64,8,32,32], weight [64,64,3,3,3], stride 1, pad 1
  attention  q,k,v [1,8,1024,64], softmax(q k^T / 8) v

Each is warmed up, then timed over N runs (default 7); min and median in ms,
GFLOP/s at the min time. Output rows match `kinema bench --json`.
"""

import argparse
import os
import json
import statistics
import time

import numpy as np

WORKLOADS = {
    "matmul": 2 * 1024**3,
    "conv3d": 2 * (64 * 8 * 32 * 32) * (64 * 27),
    "attention": 2 * 2 * (8 * 1024 * 1024 * 64),
}


def timed(fn, runs):
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), statistics.median(times)


def onnx_models():
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT

    def model(nodes, inputs, output, shape):
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info(n, f, s) for n, s in inputs],
            [helper.make_tensor_value_info(output, f, shape)])
        # IR 8 goes with opset 17; onnx would stamp its newest, which older runtimes refuse.
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    return {
        "matmul": model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                        [("a", [1024, 1024]), ("b", [1024, 1024])], "y", [1024, 1024]),
        "conv3d": model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 6, strides=[1, 1, 1],
                                          dilations=[1, 1, 1], kernel_shape=[3, 3, 3])],
                        [("x", [1, 64, 8, 32, 32]), ("w", [64, 64, 3, 3, 3])], "y", [1, 64, 8, 32, 32]),
        "attention": model([
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kt"], ["s"]),
            helper.make_node("Mul", ["s", "scale"], ["ss"]),
            helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
            helper.make_node("MatMul", ["p", "v"], ["y"]),
        ], [("q", [1, 8, 1024, 64]), ("k", [1, 8, 1024, 64]), ("v", [1, 8, 1024, 64]), ("scale", [1])],
            "y", [1, 8, 1024, 64]),
    }


def inputs(rng):
    r = lambda *s: rng.standard_normal(s, dtype=np.float32)
    return {
        "matmul": {"a": r(1024, 1024), "b": r(1024, 1024)},
        "conv3d": {"x": r(1, 64, 8, 32, 32), "w": r(64, 64, 3, 3, 3)},
        "attention": {"q": r(1, 8, 1024, 64), "k": r(1, 8, 1024, 64), "v": r(1, 8, 1024, 64),
                      "scale": np.array([0.125], dtype=np.float32)},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--write-onnx", metavar="DIR", help="write the three ONNX graphs there and stop")
    args = ap.parse_args()
    if args.write_onnx:
        os.makedirs(args.write_onnx, exist_ok=True)
        for name, model in onnx_models().items():
            with open(os.path.join(args.write_onnx, f"{name}.onnx"), "wb") as f:
                f.write(model.SerializeToString())
        return
    rng = np.random.default_rng(0)
    data = inputs(rng)
    rows = []

    threads = int(os.environ.get("PEER_THREADS", "2"))
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    for name, model in onnx_models().items():
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        lo, med = timed(lambda: sess.run(None, data[name]), args.runs)
        rows.append(dict(workload=name, device=f"onnxruntime-cpu-{threads}t", adapter=f"onnxruntime {ort.__version__}",
                         ms_min=lo, ms_median=med, gflops=WORKLOADS[name] / lo / 1e6))

    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    t = {k: {n: torch.from_numpy(v) for n, v in d.items()} for k, d in data.items()}
    fns = {
        "matmul": lambda: t["matmul"]["a"] @ t["matmul"]["b"],
        "conv3d": lambda: F.conv3d(t["conv3d"]["x"], t["conv3d"]["w"], padding=1),
        "attention": lambda: F.scaled_dot_product_attention(t["attention"]["q"], t["attention"]["k"],
                                                            t["attention"]["v"]),
    }
    with torch.no_grad():
        for name, fn in fns.items():
            lo, med = timed(fn, args.runs)
            rows.append(dict(workload=name, device=f"pytorch-cpu-{threads}t", adapter=f"torch {torch.__version__}",
                             ms_min=lo, ms_median=med, gflops=WORKLOADS[name] / lo / 1e6))

    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['workload']:10} {r['device']:20} min {r['ms_min']:9.2f} ms  median {r['ms_median']:9.2f} ms"
                  f"  {r['gflops']:7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
