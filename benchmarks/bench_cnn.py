"""The CNN's speed on one thread (as a sweep job runs): fsw's layout (channels-last convolutions,
pool before the second ReLU) against the Keras order in PyTorch's default layout, and fsw's training
step in float32 against bfloat16 autocast (its default precision, `network.precision`).

    python benchmarks/bench_cnn.py [--repeats 5] [--steps 20]

Both layouts start from the same weights and are checked to compute the same logits. Times a
training step (batch 128, Adam) and, for the float32 variants, inference (batch 100 in float32, as
fsw.inference), alternating the variants in every repeat; reports medians and their ratios. Writes
"cnn" in docs/benchmarks/<cpu-model>.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from record import record  # the sibling module: a script's folder is on sys.path
from torch import nn

from fsw.config import training_precision
from fsw.inference import INFERENCE_BATCH
from fsw.networks import CNN


def keras_order() -> nn.Module:
    """fsw's CNN with plain Conv2d layers in the Keras order (ReLU, then max-pool): PyTorch's
    default layout. Same parameter names, so fsw's weights load into it."""
    net = CNN()
    conv1, relu1, conv2, pool, relu2, *rest = net.features
    plain1, plain2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
    net.features = nn.Sequential(plain1, relu1, plain2, relu2, pool, *rest)
    return net


def step_ms(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, bf16: bool) -> float:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as Lightning's bf16-mixed
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps * 1000


@torch.inference_mode()
def inference_us_per_image(net: nn.Module, images: torch.Tensor) -> float:
    net.eval()
    started = time.perf_counter()
    for chunk in images.split(INFERENCE_BATCH):
        net(chunk)
    return (time.perf_counter() - started) / len(images) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
    images = torch.rand(1000, 1, 28, 28)
    networks = {"fsw": CNN(), "keras_order": keras_order()}
    networks["keras_order"].load_state_dict(networks["fsw"].state_dict())
    # variant -> (network, bfloat16 autocast in training)
    variants = {"fsw": (networks["fsw"], False), "fsw_bf16": (networks["fsw"], True),
                "keras_order": (networks["keras_order"], False)}
    with torch.no_grad():
        gap = (networks["fsw"].eval()(images) - networks["keras_order"].eval()(images)).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f"the two layouts disagree: largest logit difference {gap}")
    times = {name: {"train_step_ms": [], "inference_us_per_image": []} for name in variants}
    for repeat in range(args.repeats):
        for name, (net, bf16) in variants.items():
            step_ms(net, x, y, 2, bf16)  # warm-up: the optimizer's state, allocator, kernels
            times[name]["train_step_ms"].append(step_ms(net, x, y, args.steps, bf16))
            if not bf16:  # fsw infers in float32 whatever the training precision
                times[name]["inference_us_per_image"].append(inference_us_per_image(net, images))
        print(f"repeat {repeat + 1}/{args.repeats}", flush=True)
    medians = {name: {k: statistics.median(v) if v else None for k, v in t.items()} for name, t in times.items()}
    result = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": 1,
        "largest_logit_difference": gap,
        "median": medians,
        "runs": times,
        "ratio": {k: medians["fsw"][k] / medians["keras_order"][k] for k in medians["fsw"]},
        "bf16_train_step_ratio": medians["fsw_bf16"]["train_step_ms"] / medians["fsw"]["train_step_ms"],
        # whether fsw would train the CNN in bfloat16 here, or fall back to float32
        "bf16_native": training_precision("bf16-mixed", "cpu") == "bf16-mixed",
    }
    path = record("cnn", result)
    for name, m in medians.items():
        print(f"{name:12s} train step {m['train_step_ms']:6.1f} ms, inference {m['inference_us_per_image']} us/image")
    print(f"fsw / keras_order: {result['ratio']}; bf16 / float32 step: {result['bf16_train_step_ratio']:.2f} -> {path}")


if __name__ == "__main__":
    main()
