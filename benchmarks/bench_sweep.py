"""What the default sweep's time is made of, on the machine at hand, as its jobs run (one thread each):

- the float32 rate of one thread: the best of a large matrix product and the CNN's second
  convolution (its costliest layer), in GFLOP/s;
- the CNN's training epoch against its FLOP bound: 4.32 TFLOP per 60,000-image epoch (forward
  ~24 MFLOP per image, backward twice that) over that rate; the epoch is measured as training
  steps of batch 128 (Adam) in the precision the sweep trains the CNN in here, scaled to 60,000
  images (Lightning adds its per-step cost, see bench_lightning.py: under 1% of a CNN step);
- what a job that imports everything itself would pay first (config `worker: false`): a fresh
  Python process that imports a training stage (torch, Lightning, fsw), composes its config and
  loads MNIST's splits;
- with --results (a finished sweep): its wall time, job time per rule, and its jobs' overhead as
  they ran: per training job, its run time (Snakemake's benchmark) less the stage's own wall time
  (data, training, evaluation: metrics.json), i.e. process start, imports or the warm worker's
  round trip, config, saving; its median, counted for every job of the sweep, over the job time.

    python benchmarks/bench_sweep.py [--results results [--models results/train]] [--repeats 3]

Writes its result under "sweep" in docs/benchmarks/<cpu-model>.json (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from record import record  # the sibling module: a script's folder is on sys.path

from fsw.config import training_precision
from fsw.networks import CNN
from fsw.report.sweep import benchmark_jobs, job_costs

EPOCH_TFLOP = 4.32  # the CNN, 60,000 images, forward and backward
EPOCH_IMAGES = 60_000
BATCH = 128
PROCESS_START = """
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


def process_start_s(repeats: int) -> float:
    """The fixed cost of a training job in a process of its own: the fastest of `repeats`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times = [float(subprocess.run([sys.executable, "-c", PROCESS_START], capture_output=True, text=True, check=True,
                                  env=env).stdout.strip().splitlines()[-1]) for _ in range(repeats)]
    return min(times)


def job_overheads(results: Path, models: Path) -> list[float]:
    """Per training job of the sweep: its run time less its stage's own wall time, in seconds."""
    overheads = []
    for bench in sorted((results / "benchmarks" / "train").rglob("*.tsv")):
        metrics = models / bench.relative_to(results / "benchmarks" / "train").with_suffix("") / "metrics.json"
        if metrics.is_file():
            overheads.append(job_costs(bench)["s"] - json.loads(metrics.read_text())["wall_time_s"])
    return overheads


def sweep_costs(results: Path, models: Path) -> dict:
    jobs = benchmark_jobs(results / "benchmarks", results / "logs")
    overheads = job_overheads(results, models)
    if jobs.empty or not overheads:
        raise SystemExit(f"no benchmarked training jobs under {results}/benchmarks: run the sweep first")
    wall = float(jobs.finished.max() - (jobs.finished - jobs.s).min())
    per_rule = jobs.groupby("rule").s.agg(["count", "sum"]).round(1)
    overhead = statistics.median(overheads)
    return {
        "results": str(results),
        "wall_min": round(wall / 60, 1),
        "jobs": len(jobs),
        "job_min": round(float(jobs.s.sum()) / 60, 1),
        "job_min_by_rule": {rule: round(float(row["sum"]) / 60, 1) for rule, row in per_rule.iterrows()},
        "jobs_by_rule": {rule: int(row["count"]) for rule, row in per_rule.iterrows()},
        "job_overhead_s": {"median": round(overhead, 2), "max": round(max(overheads), 2),
                           "training_jobs": len(overheads)},
        "fixed_cost_share": round(len(jobs) * overhead / float(jobs.s.sum()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="a finished sweep's results folder")
    parser.add_argument("--models", type=Path, help="its trained models (config `models`; default RESULTS/train)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="CNN training steps per repeat")
    parser.add_argument("--note", default="", help="how the sweep ran, when not alone on an idle machine")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rate = float32_gflops(args.repeats)
    epoch, precision = cnn_epoch_s(args.steps, args.repeats)
    bound = EPOCH_TFLOP * 1e12 / (rate["best"] * 1e9)
    start = process_start_s(args.repeats)
    result = {
        "threads": 1,
        "float32_gflops": rate,
        "cnn_epoch": {"precision": precision, "measured_s": round(epoch, 1), "flop_bound_s": round(bound, 1),
                      "ratio": round(epoch / bound, 2), "target_ratio": 1.5},
        "process_start_s": round(start, 2),
    }
    if args.results:
        result["sweep"] = {**sweep_costs(args.results, args.models or args.results / "train"), "note": args.note}
    path = record("sweep", result)
    print(f"{result} -> {path}")


if __name__ == "__main__":
    main()
