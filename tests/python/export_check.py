#!/usr/bin/env python3
"""`wgtrain export --pytorch DIR`, checked with PyTorch itself.

Exports the checkpoint, imports the exported `model.py` (which must not import wgtrain), loads its
weights with `load_state_dict(..., strict=True)` (every name, shape and dtype, BatchNorm's int64
`num_batches_tracked` included) and classifies the first N test images (of the embedded subset, or of
--images-from, a directory of IDX files) with `model.preprocess` and the module in evaluation mode.
The classes must equal `wgtrain predict` on the same images saved as PNG, and the class probabilities
must agree to 1e-4. `cargo test` runs it (tests/python.rs) where torch and safetensors import.

Usage: python3 tests/python/export_check.py --checkpoint resnet.safetensors [--images 1000]
"""
import argparse
import gzip
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import ROOT, SUBSET, agree_or_exit, wgtrain_predict  # noqa: E402


def images_from(directory, n):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()[16:]
            return [raw[i * 784:(i + 1) * 784] for i in range(n)]
    raise SystemExit(f"{directory}: no t10k-images-idx3-ubyte[.gz]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--images-from", default=SUBSET)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--wgtrain", default=os.path.join(ROOT, "target", "release", "wgtrain"))
    a = ap.parse_args()
    images = images_from(a.images_from, a.images)
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([a.wgtrain, "export", "--checkpoint", a.checkpoint, "--pytorch", d],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"wgtrain export failed: {out.stderr.strip()}")
        source = open(os.path.join(d, "model.py")).read()
        if "wgtrain" in "".join(line for line in source.splitlines() if line.startswith(("import", "from"))):
            raise SystemExit("model.py imports wgtrain")
        spec = importlib.util.spec_from_file_location("exported_model", os.path.join(d, "model.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net = module.load()  # strict=True inside
        pixels = np.frombuffer(b"".join(images), np.uint8).reshape(len(images), 28, 28).copy()
        with torch.no_grad():
            ref = torch.softmax(net(module.preprocess(pixels)).double(), dim=1).numpy()
    got = wgtrain_predict(a.wgtrain, a.checkpoint, images, a.device)
    agree_or_exit(got, ref, f"export --pytorch: torch {torch.__version__} (load_state_dict strict) and "
                            f"wgtrain predict ({a.device})")


if __name__ == "__main__":
    main()
