"""PyTorch reference accuracy for wgtrain's training recipe, on the same data and the same machine.

Trains a model from benches/pytorch_baseline.py (the same nets as wgtrain's presets) the way
`wgtrain train` does: inputs normalised per channel with the training set's mean and standard
deviation, shuffled mini-batches (the last partial batch kept), Adam (PyTorch defaults but the rate),
a per-epoch schedule (constant, or cosine annealing to 0 stepped once per epoch, as
`--lr-schedule cosine`), no augmentation; reports the test accuracy after each epoch in evaluation
mode. Not run by `cargo test`; used for the accuracy table in docs/BENCHMARKS.md:

    python3 benches/pytorch_recipe.py --model resnet --epochs 10 --schedule cosine --seed 1 --threads 2

The equivalent wgtrain run:

    wgtrain train --model resnet --epochs 10 --lr-schedule cosine --seed 1 --device cpu
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_baseline import MODELS  # noqa: E402


def idx(path):
    """An IDX file (plain or gzip) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise SystemExit(f"--data {directory}: no {stem}[.gz]")


def load(directory):
    xs, ys = [], []
    for part in ("train", "t10k"):
        xs.append(idx(find(directory, f"{part}-images-idx3-ubyte")))
        ys.append(idx(find(directory, f"{part}-labels-idx1-ubyte")))
    return xs[0], ys[0], xs[1], ys[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet", choices=sorted(MODELS))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", default="cosine", choices=["constant", "cosine"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    xtr, ytr, xte, yte = load(args.data)
    scaled = xtr.astype(np.float64) / 255.0
    mean, std = scaled.mean(), scaled.std()

    def tensor(x):
        return torch.from_numpy(((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)[:, None])

    xtr_t, xte_t = tensor(xtr), tensor(xte)
    ytr_t, yte_t = torch.from_numpy(ytr.astype(np.int64)), torch.from_numpy(yte.astype(np.int64))

    model = MODELS[args.model]()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {args.model}, "
          f"{sum(p.numel() for p in model.parameters())} params")
    for epoch in range(1, args.epochs + 1):
        if args.schedule == "cosine":
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / args.epochs))
            for g in opt.param_groups:
                g["lr"] = lr
        model.train()
        order = torch.from_numpy(np.random.permutation(len(xtr_t)))
        start, total, seen = time.perf_counter(), 0.0, 0
        for i in range(0, len(order), args.batch_size):
            b = order[i:i + args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr_t[b]), ytr_t[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            seen += len(b)
        secs = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte_t[i:i + 1000]).argmax(1) == yte_t[i:i + 1000]).sum().item()
                          for i in range(0, len(xte_t), 1000))
        acc = 100.0 * correct / len(xte_t)
        rows.append({"epoch": epoch, "loss": total / seen, "test_accuracy": acc,
                     "train_images_per_s": seen / secs})
        print(f"epoch {epoch:3}  loss {total / seen:.4f}  test {acc:.2f}%  {seen / secs:.0f} img/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "seed": args.seed, "schedule": args.schedule,
                       "torch": torch.__version__, "threads": args.threads, "epochs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
