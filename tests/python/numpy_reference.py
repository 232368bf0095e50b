#!/usr/bin/env python3
"""Check a wgtrain checkpoint against an independent implementation of PyTorch's layer definitions.

PyTorch's nn.Linear (y = x W^T + b), nn.Conv2d (cross-correlation, zero padding, stride),
nn.MaxPool2d(2), nn.BatchNorm1d/2d in evaluation mode (running statistics, eps 1e-5), the residual
add, global average pooling and dropout (identity in evaluation) are written here in numpy and applied
to the checkpoint read with the `safetensors` package, on the first N test images of the embedded
Fashion-MNIST subset, normalised with the mean and standard deviation stored in the checkpoint. The
classes must equal `wgtrain predict` on the same images saved as PNG, and every class probability must
agree to 1e-4. This is the evidence that the tensor names, layouts and evaluation semantics are
PyTorch's without PyTorch. `cargo test` runs it (tests/python.rs) where numpy and safetensors import;
CI installs them.

Usage: python3 tests/python/numpy_reference.py --checkpoint mlp.safetensors --model mlp [--device cpu]
"""
import argparse, gzip, json, os, struct, subprocess, tempfile, zlib

import numpy as np
from safetensors import safe_open
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


def conv(x, w, b=None, pad=0, stride=1):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
    return out if b is None else out + b[None, :, None, None]


def maxpool2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def relu(v):
    return np.maximum(v, 0)


def batchnorm(x, t, name):
    """Evaluation mode: running statistics, per channel (axis 1) of [N, C] or [N, C, H, W]."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = t[name + ".weight"] / np.sqrt(t[name + ".running_var"].astype(np.float64) + 1e-5)
    return (x - t[name + ".running_mean"].reshape(shape)) * scale.reshape(shape) + t[name + ".bias"].reshape(shape)


def block(x, t, name, stride):
    """A residual block: conv-bn-relu-conv-bn on the body, identity or conv1x1-bn shortcut, add."""
    h = relu(batchnorm(conv(x, t[f"{name}.body.0.weight"], pad=1, stride=stride), t, f"{name}.body.1"))
    h = batchnorm(conv(h, t[f"{name}.body.3.weight"], pad=1), t, f"{name}.body.4")
    if f"{name}.shortcut.0.weight" in t:
        s = batchnorm(conv(x, t[f"{name}.shortcut.0.weight"], stride=stride), t, f"{name}.shortcut.1")
    else:
        s = x
    return h + s


def reference(t, model, x):
    if model == "mlp":
        h = relu(linear(x.reshape(len(x), -1), t["1.weight"], t["1.bias"]))
        h = relu(linear(h, t["3.weight"], t["3.bias"]))
        return linear(h, t["5.weight"], t["5.bias"])
    if model == "mlp-bn":
        h = relu(batchnorm(linear(x.reshape(len(x), -1), t["1.weight"], t["1.bias"]), t, "2"))
        h = relu(batchnorm(linear(h, t["5.weight"], t["5.bias"]), t, "6"))
        return linear(h, t["9.weight"], t["9.bias"])
    if model == "cnn":
        h = maxpool2(relu(conv(x, t["0.weight"], t["0.bias"], 1)))
        h = maxpool2(relu(conv(h, t["3.weight"], t["3.bias"], 1)))
        h = relu(linear(h.reshape(len(h), -1), t["7.weight"], t["7.bias"]))
        return linear(h, t["9.weight"], t["9.bias"])
    if model == "lenet5":
        h = maxpool2(relu(conv(x, t["0.weight"], t["0.bias"], 2)))
        h = maxpool2(relu(conv(h, t["3.weight"], t["3.bias"])))
        h = relu(linear(h.reshape(len(h), -1), t["7.weight"], t["7.bias"]))
        h = relu(linear(h, t["9.weight"], t["9.bias"]))
        return linear(h, t["11.weight"], t["11.bias"])
    if model == "resnet":
        h = relu(batchnorm(conv(x, t["0.weight"], pad=1), t, "1"))
        h = relu(block(h, t, "3", 1))
        h = relu(block(h, t, "5", 2))
        h = relu(block(h, t, "7", 2))
        return linear(h.mean(axis=(2, 3)), t["10.weight"], t["10.bias"])
    raise SystemExit(f"--model {model}: this check knows mlp, mlp-bn, cnn, lenet5 and resnet")


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_images(n):
    """The first n test images of the embedded subset: raw bytes (one 784-byte string each)."""
    raw = gzip.open(os.path.join(SUBSET, "t10k-images-idx3-ubyte.gz")).read()[16:]
    return [raw[i * 784:(i + 1) * 784] for i in range(n)]


def wgtrain_predict(wgtrain, checkpoint, images, device="cpu"):
    """`wgtrain predict --json` on the images saved as PNG: an [N, classes] array of probabilities."""
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, img in enumerate(images):
            files.append(os.path.join(d, f"img{i:04}.png"))
            png(files[-1], img)
        out = subprocess.run([wgtrain, "predict", "--checkpoint", checkpoint, "--device", device,
                              "--json", "--top-k", "1000", *files], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"wgtrain predict failed: {out.stderr.strip()}")
    preds = json.loads(out.stdout)
    probs = np.zeros((len(preds), len(preds[0]["top"])))
    for i, p in enumerate(preds):
        for c in p["top"]:
            probs[i, c["class"]] = c["probability"]
    return probs


def agree_or_exit(got, ref, what):
    """Exit 0 when every image's class is the same and every probability agrees to 1e-4, else 1."""
    same = int((got.argmax(1) == ref.argmax(1)).sum())
    diff = float(np.abs(got - ref).max())
    print(f"{what} agree on {same} of {len(got)} images; largest probability difference {diff:.2e}")
    raise SystemExit(0 if same == len(got) and diff < 1e-4 else 1)


def normalisation(checkpoint):
    with safe_open(checkpoint, "np") as f:
        meta = f.metadata()
    return np.array(json.loads(meta["norm_mean"]), np.float32), np.array(json.loads(meta["norm_std"]), np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--wgtrain", default=os.path.join(ROOT, "target", "release", "wgtrain"))
    a = ap.parse_args()
    images = test_images(a.images)
    mean, std = normalisation(a.checkpoint)
    pixels = np.frombuffer(b"".join(images), np.uint8).reshape(len(images), 1, 28, 28)
    x = (pixels.astype(np.float32) / np.float32(255.0) - mean[0]) / std[0]
    ref = softmax(reference(load_file(a.checkpoint), a.model, x.astype(np.float64)))
    got = wgtrain_predict(a.wgtrain, a.checkpoint, images, a.device)
    agree_or_exit(got, ref, f"{a.model}: wgtrain ({a.device}) and the numpy reference")


if __name__ == "__main__":
    main()
