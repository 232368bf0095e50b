#!/usr/bin/env python3
"""`wgtrain export --onnx FILE`, checked with the onnx package and ONNX Runtime.

Exports the checkpoint, runs `onnx.checker.check_model(full_check=True)` (schema, opset, shape
inference), checks the opset, the dynamic batch dimension and the metadata (class names and
normalisation equal the checkpoint's), then runs the model in ONNX Runtime (CPU execution provider) on
the first N test images (of the embedded subset, or of --data, a directory of IDX files) scaled to
[0, 1], once as one batch and image by image for the first few. Its logits must match `wgtrain eval
--logits` on the same images to 1e-4 (max abs difference) and its classes must all be equal.
`cargo test` runs it (tests/python.rs) where onnx and onnxruntime import; CI installs them.

Usage: python3 tests/python/onnx_check.py --checkpoint resnet.safetensors [--images 1000] [--data DIR]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import ROOT, SUBSET  # noqa: E402

TOLERANCE = 1e-4


def idx_images(directory, n):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            count, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
            pixels = np.frombuffer(raw[16:], np.uint8).reshape(count, 1, h, w)
            return pixels[:n]
    raise SystemExit(f"{directory}: no t10k-images-idx3-ubyte[.gz]")


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--data", default=None, help="IDX directory (default: the embedded subset)")
    ap.add_argument("--wgtrain", default=os.path.join(ROOT, "target", "release", "wgtrain"))
    a = ap.parse_args()
    data = ["--data", a.data] if a.data else ["--embedded"]
    pixels = idx_images(a.data or SUBSET, a.images)
    with safe_open(a.checkpoint, "np") as f:
        meta = f.metadata()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        run([a.wgtrain, "export", "--checkpoint", a.checkpoint, "--onnx", path])
        size = os.path.getsize(path)
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        opset = {o.domain: o.version for o in model.opset_import}[""]
        assert opset >= 17, f"opset {opset}"
        props = {p.key: p.value for p in model.metadata_props}
        assert json.loads(props["class_names"]) == json.loads(meta["class_names"]), props
        for key, ck in (("normalization_mean", "norm_mean"), ("normalization_std", "norm_std")):
            assert json.loads(props[key]) == json.loads(meta[ck]), (key, props[key], meta[ck])
        batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param, "the batch dimension must be dynamic"
        ops = sorted({n.op_type for n in model.graph.node})

        logits_file = os.path.join(d, "logits.npy")
        run([a.wgtrain, "eval", "--checkpoint", a.checkpoint, *data, "--device", "cpu",
             "--logits", logits_file])
        ref = np.load(logits_file)[:len(pixels)]

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = pixels.astype(np.float32) / np.float32(255)
        logits, probs = sess.run(["logits", "probabilities"], {"input": x})
        singles = np.concatenate([sess.run(["logits"], {"input": x[i:i + 1]})[0] for i in range(8)])

    diff = float(np.abs(logits - ref).max())
    single_diff = float(np.abs(singles - ref[:8]).max())
    same = int((logits.argmax(1) == ref.argmax(1)).sum())
    prob_err = float(np.abs(probs.sum(1) - 1).max())
    print(f"{meta.get('model')} [{meta.get('arch')}]: onnx {onnx.__version__} checker ok (opset {opset}, "
          f"{size} bytes, ops {', '.join(ops)}); onnxruntime {ort.__version__} on {len(x)} images: "
          f"max |logit diff| {diff:.2e} (batch 1: {single_diff:.2e}), classes equal {same}/{len(x)}")
    if not (diff <= TOLERANCE and single_diff <= TOLERANCE and same == len(x) and prob_err < 1e-5):
        raise SystemExit(f"ONNX Runtime and wgtrain eval disagree: max logit diff {diff:.3e} "
                         f"(batch 1 {single_diff:.3e}, tolerance {TOLERANCE}), classes equal "
                         f"{same}/{len(x)}, probabilities sum off by {prob_err:.1e}")


if __name__ == "__main__":
    main()
