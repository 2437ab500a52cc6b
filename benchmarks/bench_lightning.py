"""Time one training epoch of each network through Lightning and through a plain torch loop.

Both loops see the same data (the owner's MNIST split), batch size, optimizer, precision (the
network group's: the plain loop autocasts to bfloat16 where Lightning's bf16-mixed does) and threads.
The two loops alternate, so that machine noise hits both alike. `ratio`, Lightning / plain, compares
each loop's fastest epoch: other processes and the machine's host only ever add time to an epoch
(an MLP epoch of ~3-4 s varies by +-15% from run to run here), so the fastest of several is the
closest to what the code itself costs, as timeit's documentation argues; `ratio_median` compares
the medians. Lightning's epoch is timed from its epoch-start to its epoch-end hook; the whole
`Trainer.fit` call around it (the trainer's one-off start, ~0.1-0.3 s per job whatever the epochs)
is reported beside it as `lightning_fit_s` and `ratio_fit`. Lightning's per-step cost is also
measured on its own (`lightning_step_cost_ms`: both loops training one linear layer, where that cost
is the whole difference), and `ratio_from_step_cost` adds it to each network's fastest plain epoch:
a third estimate, which the networks' own epoch noise does not touch. Target: ratio <= 1.10.
Results: under "lightning" in docs/benchmarks/<cpu-model>.json.

    python benchmarks/bench_lightning.py [--networks mlp cnn irnn] [--batches N | NETWORK=N ...] [--threads 2]

`--batches cnn=100` times the CNN on 100 batches per epoch and the others on full epochs: a full
float32 CNN epoch takes ~2 min on a CPU without AVX512, and the default 5 repeats of both loops
time 10 of them, ~20 min.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from record import record  # the sibling module: a script's folder is on sys.path
from torch import nn

from fsw.classifier import OPTIMIZERS, Classifier
from fsw.config import training_precision
from fsw.data import load_splits
from fsw.networks import build_network
from fsw.stages import compose
from fsw.training import make_trainer

# Training epochs alone, on the CPU, as the plain loop runs them.
EPOCH_ONLY = ["trainer.limit_val_batches=0", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


def plain_epoch(net, loader, optimizer_name: str, lr: float, batches: int, precision: str) -> float:
    optimizer = OPTIMIZERS[optimizer_name](net.parameters(), lr=lr)
    net.train()
    started = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == batches:
            break
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


class EpochTimer(pl.Callback):
    def on_train_epoch_start(self, trainer, module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        self.seconds = time.perf_counter() - self.started


def lightning_epoch(cfg, net, loader, batches: int, precision: str) -> tuple[float, float]:
    """The epoch's seconds, and those of the whole fit call around it."""
    module = Classifier(net, cfg.network.optimizer, cfg.network.lr)
    timer = EpochTimer()
    trainer = make_trainer(cfg, max_epochs=1, limit_train_batches=batches, precision=precision, callbacks=[timer])
    started = time.perf_counter()
    trainer.fit(module, loader)
    return timer.seconds, time.perf_counter() - started


def alternating_epochs(cfg, make_net, owner, batches: int, precision: str, repeats: int):
    """Epoch seconds of the plain loop, of Lightning's epoch and of its whole fit call, alternating
    the two loops in every repeat so that machine noise hits both alike."""
    plain, lightning, fit = [], [], []
    for repeat in range(repeats):
        pl.seed_everything(repeat, verbose=False)
        plain.append(plain_epoch(make_net(), owner.loader(cfg.batch_size, shuffle=True),
                                 cfg.network.optimizer, cfg.network.lr, batches, precision))
        pl.seed_everything(repeat, verbose=False)
        epoch_s, fit_s = lightning_epoch(cfg, make_net(), owner.loader(cfg.batch_size, shuffle=True),
                                         batches, precision)
        lightning.append(epoch_s)
        fit.append(fit_s)
    return plain, lightning, fit


def lightning_step_cost_ms(repeats: int) -> float:
    """Lightning's own cost per training step (hooks, closure, data fetcher), whatever the network:
    both loops train one linear layer, whose step costs next to nothing, so the difference of their
    fastest epochs is that cost alone, where on the real networks run-to-run noise is larger than it."""
    cfg = compose("train", ["network=mlp", *EPOCH_ONLY])
    owner = load_splits(cfg.data).owner
    batches = -(-len(owner) // cfg.batch_size)
    plain, lightning, _ = alternating_epochs(cfg, lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
                                             owner, batches, "32-true", repeats)
    return round((min(lightning) - min(plain)) / batches * 1000, 3)


def batch_limits(parser: argparse.ArgumentParser, values: list[str], networks: list[str]) -> dict[str, int]:
    """`--batches` as {network: batches per epoch}: N applies to every network, NETWORK=N to one."""
    limits = {}
    for value in values:
        name, _, count = value.rpartition("=")
        if name and name not in networks:
            parser.error(f"--batches {value}: {name!r} is not among --networks {' '.join(networks)}")
        if not count.isdigit() or int(count) == 0:
            parser.error(f"--batches {value}: the number of batches must be a positive integer")
        limits.update({network: int(count) for network in ([name] if name else networks)})
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["mlp", "cnn", "irnn"])
    parser.add_argument("--batches", nargs="+", default=[], metavar="N|NETWORK=N",
                        help="batches per epoch, for every network or for one (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="alternating timings per loop")
    args = parser.parse_args()
    limits = batch_limits(parser, args.batches, args.networks)
    torch.set_num_threads(args.threads)
    step_cost = lightning_step_cost_ms(args.repeats * 3)
    print(json.dumps({"lightning_step_cost_ms": step_cost}))
    rows = []
    for name in args.networks:
        cfg = compose("train", [f"network={name}", *EPOCH_ONLY])
        owner = load_splits(cfg.data).owner
        batches = limits.get(name) or -(-len(owner) // cfg.batch_size)
        arch = OmegaConf.to_container(cfg.network.arch, resolve=True)
        precision = training_precision(cfg.network.precision, "cpu")
        plain, lightning, fit = alternating_epochs(cfg, lambda: build_network(arch), owner, batches, precision,
                                                   args.repeats)
        row = {"network": name, "precision": precision, "batches": batches, "batch_size": cfg.batch_size,
               "repeats": args.repeats, "plain_s": round(min(plain), 3), "lightning_s": round(min(lightning), 3),
               "plain_median_s": round(statistics.median(plain), 3),
               "lightning_median_s": round(statistics.median(lightning), 3),
               "lightning_fit_s": round(min(fit), 3)}
        row["ratio"] = round(row["lightning_s"] / row["plain_s"], 3)
        row["ratio_median"] = round(row["lightning_median_s"] / row["plain_median_s"], 3)
        row["ratio_fit"] = round(row["lightning_fit_s"] / row["plain_s"], 3)
        row["ratio_from_step_cost"] = round(1 + step_cost * batches / 1000 / row["plain_s"], 3)
        row["within_target"] = row["ratio"] <= 1.10
        rows.append(row)
        print(json.dumps(row))
    result = {"threads": args.threads, "torch": torch.__version__, "lightning": pl.__version__,
              "machine": platform.machine(), "cpus": torch.get_num_threads(),
              "lightning_step_cost_ms": step_cost, "rows": rows}
    path = record("lightning", result)
    print(f"written {path}")


if __name__ == "__main__":
    main()
