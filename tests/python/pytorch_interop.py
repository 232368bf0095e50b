#!/usr/bin/env python3
"""The README's PyTorch interop snippets, run with PyTorch itself.

1. wgtrain -> PyTorch: the checkpoint loads with `load_state_dict(load_file(...))` (strict: every name
   and shape must match) into the same `nn.Sequential`, and its classes on the first N test images of
   the embedded subset equal `wgtrain predict` on the same images saved as PNG.
2. PyTorch -> wgtrain: `save_file(model.state_dict(), ...)` of that model is read by
   `wgtrain eval --checkpoint plain.safetensors --model M` and gives the accuracy of the original to
   0.1 points (a plain state_dict carries no normalisation, so eval takes it from the evaluated data
   instead of the training data's statistics stored in a wgtrain checkpoint: a few images may flip).

Manual check, not part of `cargo test` (it needs torch and safetensors:
`pip install torch safetensors`).

Usage: python3 tests/python/pytorch_interop.py --checkpoint mlp.safetensors --model mlp|cnn|lenet5
"""
import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import ROOT, SUBSET, png  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "benches"))
from pytorch_baseline import MODELS  # noqa: E402


def accuracy(out):
    m = re.search(r"accuracy ([0-9.]+)%", out)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--wgtrain", default=os.path.join(ROOT, "target", "release", "wgtrain"))
    a = ap.parse_args()
    model = MODELS[a.model]()
    model.load_state_dict(load_file(a.checkpoint), strict=True)
    model.eval()
    raw = gzip.open(os.path.join(SUBSET, "t10k-images-idx3-ubyte.gz")).read()[16:]
    n = a.images
    pixels = np.frombuffer(raw, np.uint8)[:n * 784].reshape(n, 1, 28, 28).astype(np.float32)
    x = torch.from_numpy((pixels / 255.0 - 0.2860) / 0.3530)
    with torch.no_grad():
        ref = model(x).argmax(1).tolist()
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i in range(n):
            files.append(os.path.join(d, f"img{i:04}.png"))
            png(files[-1], raw[i * 784:(i + 1) * 784])
        out = subprocess.run([a.wgtrain, "predict", "--checkpoint", a.checkpoint, "--device", "cpu",
                              "--json", "--top-k", "1", *files], capture_output=True, text=True, check=True)
        got = [p["top"][0]["class"] for p in json.loads(out.stdout)]
        same = sum(int(g == r) for g, r in zip(got, ref))
        print(f"{a.model}: PyTorch (load_state_dict, strict) and wgtrain predict agree on {same} of {n}")
        plain = os.path.join(d, "plain.safetensors")
        save_file(model.state_dict(), plain)
        evals = []
        for args in (["--checkpoint", a.checkpoint], ["--checkpoint", plain, "--model", a.model]):
            r = subprocess.run([a.wgtrain, "eval", "--device", "cpu", *args], capture_output=True,
                               text=True, check=True)
            evals.append(accuracy(r.stdout + r.stderr))
        print(f"{a.model}: wgtrain eval of the PyTorch-saved state_dict {evals[1]}% "
              f"vs the original checkpoint {evals[0]}%")
    ok = same == n and None not in evals and abs(evals[0] - evals[1]) <= 0.1
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
