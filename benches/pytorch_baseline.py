"""PyTorch CPU baseline for `wgtrain bench`, measured on the same machine in the same session.

Trains the reference models (shared/ARCHITECTURE.md, and the round-2 presets resnet and mlp-bn) with Adam on in-memory batches, as
`wgtrain bench` does (batches reused, so it times compute, not data loading), and prints training and
inference images/s per model and batch size. Not run by `cargo test`; used for docs/BENCHMARKS.md:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python benches/pytorch_baseline.py --threads 2 --seconds 2 --json out.json
"""

import argparse
import json
import time

import torch
from torch import nn


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10))


def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class Residual(nn.Module):
    """y = body(x) + shortcut(x); wgtrain's `res(...)` (state_dict names `body.*`, `shortcut.*`)."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


def block(cin, cout, stride):
    body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
    if cin == cout and stride == 1:
        shortcut = nn.Identity()
    else:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return Residual(body, shortcut)


def resnet(in_channels=1):
    return nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         block(16, 16, 1), nn.ReLU(), block(16, 32, 2), nn.ReLU(), block(32, 64, 2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def mlp_bn():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(128, 10))


MODELS = {"mlp": mlp, "cnn": cnn, "lenet5": lenet5, "resnet": resnet, "mlp-bn": mlp_bn}


def timed(step, seconds):
    """Images/s of `step` (returns the images it processed) after a warm-up, over `seconds`."""
    for _ in range(10):
        step()
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += step()
    return images / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--models", default="mlp,cnn,lenet5")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':8} {'batch':>5} {'train img/s':>12} {'infer img/s':>12}")
    for name in args.models.split(","):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            model = MODELS[name]()
            model.train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            x = torch.randn(batch, 1, 28, 28)
            y = torch.randint(0, 10, (batch,))
            loss_fn = nn.CrossEntropyLoss()

            def train_step():
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x), y).backward()
                opt.step()
                return batch

            def infer_step():
                with torch.no_grad():
                    model(x)
                return batch

            train = timed(train_step, args.seconds)
            infer = timed(infer_step, args.seconds)
            rows.append({"model": name, "batch": batch, "train_images_per_s": train,
                         "infer_images_per_s": infer, "threads": args.threads,
                         "torch": torch.__version__})
            print(f"{name:8} {batch:5} {train:12.0f} {infer:12.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
