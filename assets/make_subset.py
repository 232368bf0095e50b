#!/usr/bin/env python3
"""Rebuild the embedded Fashion-MNIST subset from the Debian package `dataset-fashion-mnist`.

Takes the first 1,000 training and first 200 test images of each class, keeping the original order,
and writes them as gzip'd IDX files (same format as the source) into fashion-mnist-subset/.
Usage: python3 assets/make_subset.py [SOURCE_DIR]   (default /usr/share/datasets/fashion-mnist)
"""
import gzip, struct, sys, os

SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion-mnist-subset")

def read(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]

def write(path, dims, payload):
    header = struct.pack(">I", 0x0800 | len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    # mtime=0 keeps the output byte-identical between runs.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(header + payload)

def subset(prefix, per_class, out_prefix):
    (n, h, w), images = read(os.path.join(SRC, prefix + "-images-idx3-ubyte.gz"))
    (nl,), labels = read(os.path.join(SRC, prefix + "-labels-idx1-ubyte.gz"))
    assert n == nl
    counts = [0] * 10
    keep = []
    for i, label in enumerate(labels):
        if counts[label] < per_class:
            counts[label] += 1
            keep.append(i)
    size = h * w
    write(os.path.join(OUT, out_prefix + "-images-idx3-ubyte.gz"), (len(keep), h, w),
          b"".join(images[i * size:(i + 1) * size] for i in keep))
    write(os.path.join(OUT, out_prefix + "-labels-idx1-ubyte.gz"), (len(keep),),
          bytes(labels[i] for i in keep))
    print(out_prefix, len(keep), counts)

os.makedirs(OUT, exist_ok=True)
subset("train", 1000, "train")
subset("t10k", 200, "t10k")
