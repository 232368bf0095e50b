"""Alternated same-sitting rounds of `wgtrain bench` and benches/pytorch_baseline.py on the CPU, and
the ratio table docs/BENCHMARKS.md reports (wgtrain / PyTorch, training and inference, per round).

On these shared machines absolute timings drift between minutes, so each round runs wgtrain, then
PyTorch, then (where the CPU has AVX-512) wgtrain with `WGTRAIN_CPU_SIMD=avx2`, and only ratios
within a round are compared. Not run by `cargo test`:

    python3 benches/cpu_rounds.py --wgtrain target/release/wgtrain --python .venv/bin/python \\
        --rounds 2 --out /tmp/rounds

prints a markdown table (images/s per round, separated by ';') and leaves each run's JSON in --out.
"""

import argparse
import json
import os
import subprocess
import sys


def run(cmd, env=None):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def wgtrain_rows(path):
    with open(path) as f:
        d = json.load(f)
    return {(m["model"], m["batch_size"]): (m["train_images_per_sec"], m["inference_images_per_sec"])
            for m in d["models"]}


def torch_rows(path):
    with open(path) as f:
        return {(m["model"], m["batch"]): (m["train_images_per_s"], m["infer_images_per_s"])
                for m in json.load(f)}


def has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--wgtrain", default="target/release/wgtrain")
    ap.add_argument("--python", default=sys.executable, help="a Python with torch installed")
    ap.add_argument("--models", default="mlp,mlp-bn,cnn,lenet5,resnet")
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", required=True, help="directory for each run's JSON")
    args = ap.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.threads < 1:
        sys.exit("cpu_rounds.py: --rounds and --threads must be at least 1 and --seconds above 0")
    os.makedirs(args.out, exist_ok=True)
    common = ["--threads", str(args.threads), "--seconds", str(args.seconds), "--models", args.models,
              "--batch-sizes", args.batch_sizes]
    avx2 = has_avx512()
    rounds = []
    for r in range(1, args.rounds + 1):
        wg = os.path.join(args.out, f"round{r}-wgtrain.json")
        pt = os.path.join(args.out, f"round{r}-pytorch.json")
        run([args.wgtrain, "bench", "--device", "cpu", "--no-kernels", *common, "--json", wg])
        run([args.python, os.path.join(here, "pytorch_baseline.py"), *common, "--json", pt])
        row = [wgtrain_rows(wg), torch_rows(pt)]
        if avx2:
            w2 = os.path.join(args.out, f"round{r}-wgtrain-avx2.json")
            env = dict(os.environ, WGTRAIN_CPU_SIMD="avx2")
            run([args.wgtrain, "bench", "--device", "cpu", "--no-kernels", *common, "--json", w2], env)
            row.append(wgtrain_rows(w2))
        rounds.append(row)

    def per_round(f):
        return "; ".join(f(r) for r in rounds)

    head = "| model, batch | wgtrain train | PyTorch train | ratio |"
    head += " AVX2 conv kernels, ratio |" if avx2 else ""
    head += " wgtrain infer | PyTorch infer | ratio |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for key in rounds[0][0]:
        m, b = key
        cells = [f"{m} {b}",
                 per_round(lambda r: f"{r[0][key][0]:,.0f}"),
                 per_round(lambda r: f"{r[1][key][0]:,.0f}"),
                 "**" + per_round(lambda r: f"{r[0][key][0] / r[1][key][0]:.2f}x") + "**"]
        if avx2:
            cells.append(per_round(lambda r: f"{r[2][key][0] / r[1][key][0]:.2f}x"))
        cells += [per_round(lambda r: f"{r[0][key][1]:,.0f}"),
                  per_round(lambda r: f"{r[1][key][1]:,.0f}"),
                  "**" + per_round(lambda r: f"{r[0][key][1] / r[1][key][1]:.2f}x") + "**"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
