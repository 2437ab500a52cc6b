"""What the default sweep's time is made of, on the machine at hand, as its jobs run (one thread each):

- the float32 rate of one thread: the best of a large matrix product and the CNN's second
  convolution (its costliest layer), in GFLOP/s;
- the CNN's training epoch against its FLOP bound: 4.32 TFLOP per 60,000-image epoch (forward
  ~24 MFLOP per image, backward twice that) over that rate; the epoch is measured as training
  steps of batch 128 (Adam) in the precision the sweep trains the CNN in here, scaled to 60,000
  images (Lightning adds its per-step cost, see bench_lightning.py: under 1% of a CNN step);
- a job's fixed cost: a fresh Python process that imports a training stage (torch, Lightning, fsw),
  composes its config and loads MNIST's splits, as every training-like job does before its work;
- with --results (a finished sweep), its wall time, job time per rule, and the fixed costs' share.

    python benchmarks/bench_sweep.py [--results results] [--repeats 3]

Writes its result under "sweep" in docs/benchmarks/<cpu-model>.json (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from record import record  # the sibling module: a script's folder is on sys.path

from fsw.config import training_precision
from fsw.networks import CNN
from fsw.report.sweep import benchmark_jobs

EPOCH_TFLOP = 4.32  # the CNN, 60,000 images, forward and backward
EPOCH_IMAGES = 60_000
BATCH = 128
JOB_START = """
import time; started = time.perf_counter()
import fsw.train
from fsw.stages import compose
from fsw.data import load_splits
load_splits(compose("train", ["network=cnn"]).data)
print(time.perf_counter() - started)
"""


def best_seconds(action, repeats: int) -> float:
    action()  # warm-up: kernels, allocator
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def float32_gflops(repeats: int) -> dict:
    """GFLOP/s of one thread on a 1024^3 matrix product and on the CNN's second convolution
    (batch 128, 32 -> 64 channels, 3x3 over 26x26), forward."""
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    matmul = 2 * 1024**3 / best_seconds(lambda: a @ b, repeats) / 1e9
    x, weight = torch.rand(BATCH, 32, 26, 26).to(memory_format=torch.channels_last), torch.rand(64, 32, 3, 3)
    conv_flop = 2 * BATCH * 24 * 24 * 64 * 32 * 9
    with torch.no_grad():
        conv = conv_flop / best_seconds(lambda: F.conv2d(x, weight), repeats) / 1e9
    return {"matmul": round(matmul, 1), "cnn_conv2": round(conv, 1), "best": round(max(matmul, conv), 1)}


def cnn_epoch_s(steps: int, repeats: int) -> tuple[float, str]:
    """Seconds of a 60,000-image CNN epoch at batch 128, in the precision the sweep trains it in here."""
    precision = training_precision("bf16-mixed", "cpu")
    net = CNN().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.rand(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    net.train()

    def train_steps():
        for _ in range(steps):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()

    per_image = best_seconds(train_steps, repeats) / (steps * BATCH)
    return per_image * EPOCH_IMAGES, precision


def job_start_s(repeats: int) -> float:
    """The fixed cost of a training-like job: the fastest of `repeats` fresh processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times = [float(subprocess.run([sys.executable, "-c", JOB_START], capture_output=True, text=True, check=True,
                                  env=env).stdout.strip().splitlines()[-1]) for _ in range(repeats)]
    return min(times)


def sweep_costs(results: Path, job_start: float) -> dict:
    jobs = benchmark_jobs(results / "benchmarks")
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {results}/benchmarks: run the sweep first")
    wall = float(jobs.finished.max() - (jobs.finished - jobs.s).min())
    per_rule = jobs.groupby("rule").s.agg(["count", "sum"]).round(1)
    return {
        "results": str(results),
        "wall_min": round(wall / 60, 1),
        "jobs": len(jobs),
        "job_min": round(float(jobs.s.sum()) / 60, 1),
        "job_min_by_rule": {rule: round(float(row["sum"]) / 60, 1) for rule, row in per_rule.iterrows()},
        "jobs_by_rule": {rule: int(row["count"]) for rule, row in per_rule.iterrows()},
        # every benchmarked job pays at most a training job's start (label-only jobs import less)
        "fixed_cost_share": round(len(jobs) * job_start / float(jobs.s.sum()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="a finished sweep's results folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="CNN training steps per repeat")
    parser.add_argument("--note", default="", help="how the sweep ran, when not alone on an idle machine")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rate = float32_gflops(args.repeats)
    epoch, precision = cnn_epoch_s(args.steps, args.repeats)
    bound = EPOCH_TFLOP * 1e12 / (rate["best"] * 1e9)
    start = job_start_s(args.repeats)
    result = {
        "threads": 1,
        "float32_gflops": rate,
        "cnn_epoch": {"precision": precision, "measured_s": round(epoch, 1), "flop_bound_s": round(bound, 1),
                      "ratio": round(epoch / bound, 2), "target_ratio": 1.5},
        "job_start_s": round(start, 2),
    }
    if args.results:
        result["sweep"] = {**sweep_costs(args.results, start), "note": args.note}
    path = record("sweep", result)
    print(f"{result} -> {path}")


if __name__ == "__main__":
    main()
