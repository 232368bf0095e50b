#!/usr/bin/env python3
"""Inference images/s of an exported ONNX model in ONNX Runtime (CPU execution provider).

Feeds the first images of the Fashion-MNIST test set (IDX files in --data; default the embedded
subset) scaled to [0, 1] in batches of each --batch-sizes, after a warm-up, and reports the median
over --repeats timed passes of images / second. Compare with `wgtrain eval --batch-size B` on the same
machine in the same sitting (docs/BENCHMARKS.md).

Usage: python3 benches/onnx_runtime.py --onnx resnet.onnx [--batch-sizes 1,256] [--threads 2]
"""
import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--data", default=os.path.join(ROOT, "assets", "fashion-mnist-subset"))
    ap.add_argument("--batch-sizes", default="1,256")
    ap.add_argument("--images", type=int, default=2000, help="images per timed pass")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's default)")
    a = ap.parse_args()
    raw = gzip.open(os.path.join(a.data, "t10k-images-idx3-ubyte.gz")).read()
    count, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw[16:], np.uint8).reshape(count, 1, h, w)[:a.images].astype(np.float32) / 255
    opts = ort.SessionOptions()
    if a.threads:
        opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
    results = {}
    for b in (int(s) for s in a.batch_sizes.split(",")):
        batches = [x[i:i + b] for i in range(0, len(x) - b + 1, b)]
        n = sum(len(v) for v in batches)
        for v in batches[:3]:
            sess.run(["logits"], {"input": v})
        rates = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            for v in batches:
                sess.run(["logits"], {"input": v})
            rates.append(n / (time.perf_counter() - t))
        results[b] = statistics.median(rates)
    print(json.dumps({"onnx": os.path.basename(a.onnx), "bytes": os.path.getsize(a.onnx),
                      "onnxruntime": ort.__version__, "threads": a.threads or "default",
                      "images_per_sec": {str(k): round(v) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
