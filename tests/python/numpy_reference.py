#!/usr/bin/env python3
"""Check a wgtrain checkpoint against an independent implementation of PyTorch's layer definitions.

PyTorch's nn.Linear (y = x W^T + b), nn.Conv2d (cross-correlation, zero padding) and nn.MaxPool2d(2) are
written here in numpy and applied to the checkpoint read with the `safetensors` package, on the first N
test images of the embedded Fashion-MNIST subset; the classes must equal `wgtrain predict` on the same
images saved as PNG. This is the evidence that the tensor names and layouts are PyTorch's (no PyTorch is
installed on the development machines). Manual check, not part of `cargo test` (it needs numpy and
safetensors: `pip install numpy safetensors`).

Usage: python3 tests/python/numpy_reference.py --checkpoint mlp.safetensors --model mlp [--device cpu]
"""
import argparse, gzip, json, os, struct, subprocess, tempfile, zlib

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBSET = os.path.join(ROOT, "assets", "fashion-mnist-subset")


def png(path, pix, w=28, h=28):
    raw = b"".join(b"\x00" + bytes(pix[y * w:(y + 1) * w]) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def linear(x, w, b):
    return x @ w.T + b


def conv(x, w, b, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((n, o, oh, ow), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, ky:ky + oh, kx:kx + ow], w[:, :, ky, kx])
    return out + b[None, :, None, None]


def maxpool2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def relu(v):
    return np.maximum(v, 0)


def reference(t, model, x):
    if model == "mlp":
        h = relu(linear(x.reshape(len(x), -1), t["1.weight"], t["1.bias"]))
        h = relu(linear(h, t["3.weight"], t["3.bias"]))
        return linear(h, t["5.weight"], t["5.bias"])
    if model == "cnn":
        h = maxpool2(relu(conv(x, t["0.weight"], t["0.bias"], 1)))
        h = maxpool2(relu(conv(h, t["3.weight"], t["3.bias"], 1)))
        h = relu(linear(h.reshape(len(h), -1), t["7.weight"], t["7.bias"]))
        return linear(h, t["9.weight"], t["9.bias"])
    raise SystemExit(f"--model {model}: this check knows mlp and cnn")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--wgtrain", default=os.path.join(ROOT, "target", "release", "wgtrain"))
    a = ap.parse_args()
    raw = gzip.open(os.path.join(SUBSET, "t10k-images-idx3-ubyte.gz")).read()[16:]
    n = a.images
    pixels = np.frombuffer(raw, np.uint8)[:n * 784]
    x = ((pixels.reshape(n, 1, 28, 28).astype(np.float32) / 255.0) - 0.2860) / 0.3530
    ref = reference(load_file(a.checkpoint), a.model, x).argmax(1).tolist()
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i in range(n):
            files.append(os.path.join(d, f"img{i:04}.png"))
            png(files[-1], raw[i * 784:(i + 1) * 784])
        out = subprocess.run([a.wgtrain, "predict", "--checkpoint", a.checkpoint, "--device", a.device,
                              "--json", "--top-k", "1", *files], capture_output=True, text=True, check=True)
    got = [p["top"][0]["class"] for p in json.loads(out.stdout)]
    same = sum(int(g == r) for g, r in zip(got, ref))
    print(f"{a.model}: wgtrain ({a.device}) and the numpy reference agree on {same} of {n} images")
    raise SystemExit(0 if same == n else 1)


if __name__ == "__main__":
    main()
