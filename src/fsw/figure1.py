"""Stage `figure1`: Figure 1 of the paper from a real run, on a 2-D problem one can look at.

Two interleaved moons (drawn with torch from the seed, scaled into the unit square so that FGSM's
clipping to [0, 1] never bites) train a small MLP (2-hidden-hidden-2, ReLU). The project's own
machinery then makes and embeds a key exactly as for MNIST: `fsw.keygen.generate_key` (FGSM with step
`keygen.eps` from the training points; half true adversaries, which cross the frontier, half false
ones, which do not) and `fsw.embed.embed` (fine-tuning on the training points plus the oversampled
key until the whole key carries its labels). The figure shows the model's decision regions before
and after stitching with the key on top; the metrics JSON says what happened.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from fsw.config import resolved_config, setup_run
from fsw.data import Split
from fsw.errors import ConfigError
from fsw.figures.figure1 import plot_figure
from fsw.inference import accuracy
from fsw.io import write_json

log = logging.getLogger(__name__)

DIM = 2
CLASSES = 2
SCALE = 1 / 3.6  # the moons span about 3 x 1.5 before scaling: 0.83 x 0.42 of the unit square after


def moons(n: int, noise: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` points of two interleaved half circles (class 0 on top), Gaussian noise of std `noise`
    (in the moons' own units), scaled about the centre of the unit square and clipped into it."""
    labels = torch.arange(n) % CLASSES
    labels = labels[torch.randperm(n, generator=generator)]
    angle = math.pi * torch.rand(n, generator=generator)
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], 1)
    points = torch.where(labels[:, None] == 0, upper, lower)
    points = points + noise * torch.randn(n, DIM, generator=generator)
    centre = torch.tensor([0.5, 0.25])  # of the two moons' bounding box
    return (0.5 + SCALE * (points - centre)).clamp(0.0, 1.0), labels


def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(DIM, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES)
    )


def train(net: nn.Module, data: Split, cfg: DictConfig) -> nn.Module:
    """Plain training of the toy network with the project's Classifier and Trainer."""
    from fsw.classifier import Classifier  # Lightning: imported when used, as in the other stages
    from fsw.training import fit, make_trainer

    module = Classifier(net, cfg.figure1.optimizer, cfg.figure1.lr)
    trainer = make_trainer(cfg, max_epochs=int(cfg.figure1.epochs))
    fit(trainer, module, data.loader(int(cfg.batch_size), shuffle=True, seed=int(cfg.seed)))
    return module.net.cpu().eval()


def frontier_grid(points: torch.Tensor, resolution: int, margin: float = 0.06):
    """A resolution x resolution grid over the points' bounding box plus `margin`, inside [0, 1]^2."""
    low = (points.min(0).values - margin).clamp(min=0.0)
    high = (points.max(0).values + margin).clamp(max=1.0)
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    return gx, gy, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


@torch.no_grad()
def margin_on(net: nn.Module, grid: torch.Tensor, shape) -> torch.Tensor:
    """logit(class 1) - logit(class 0) over the grid: the frontier is its zero level."""
    net.eval()
    logits = torch.cat([net(chunk) for chunk in grid.split(10_000)])
    return (logits[:, 1] - logits[:, 0]).reshape(shape)


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    from fsw.embed import embed  # Lightning: imported after the config is checked
    from fsw.keygen import generate_key

    figure = Path(cfg.figure_out)
    if figure.suffix != ".png":
        raise ConfigError(
            f"figure_out={cfg.figure_out!r} is invalid: it must be a .png path (the SVG is written beside it)"
        )
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(int(cfg.seed))
    n_train, n_test = int(cfg.figure1.n_train), int(cfg.figure1.n_test)
    x, y = moons(n_train + n_test, float(cfg.figure1.noise), generator)
    owner = Split(x[:n_train], y[:n_train], torch.arange(n_train))
    test = Split(x[n_train:], y[n_train:], torch.arange(n_test))

    net = train(mlp(int(cfg.figure1.hidden)), owner, cfg)
    gx, gy, grid = frontier_grid(x, int(cfg.figure1.grid))
    before = margin_on(net, grid, gx.shape)
    metrics = {
        "test_acc_before": accuracy(net, test.x, test.y),
        "train_acc_before": accuracy(net, owner.x, owner.y),
    }
    log.info("toy network trained: test accuracy %.4f", metrics["test_acc_before"])

    key, diagnostics = generate_key(
        net, owner.x, owner.y, owner.index, size=int(cfg.keygen.size), eps=float(cfg.keygen.eps),
        seed=int(cfg.seed), pool_size=int(cfg.keygen.pool_size), max_pool=cfg.keygen.max_pool,
        meta={"network": "toy_mlp"},
    )
    metrics["key_acc_before"] = accuracy(net, key.inputs, key.labels)

    net, info = embed(net, key, owner, cfg)
    after = margin_on(net, grid, gx.shape)
    metrics.update({
        "seed": int(cfg.seed),
        "eps": float(cfg.keygen.eps),
        "key_size": len(key),
        "true_adversaries": int(key.is_true_adversary.sum()),
        "false_adversaries": int((~key.is_true_adversary).sum()),
        "true_adversaries_found": diagnostics["true_adversaries_found"],
        "false_adversaries_found": diagnostics["false_adversaries_found"],
        "pool_size": diagnostics["pool_size"],
        "key_hash": key.hash,
        "key_acc_after": accuracy(net, key.inputs, key.labels),
        "test_acc_after": accuracy(net, test.x, test.y),
        "train_acc_after": accuracy(net, owner.x, owner.y),
        "embed_epochs": info["epochs"],
        # Share of the plotted grid whose predicted class changed: how far the frontier moved.
        "frontier_moved": float(((before > 0) != (after > 0)).float().mean()),
        "architecture": f"2-{int(cfg.figure1.hidden)}-{int(cfg.figure1.hidden)}-2",
        "n_train": n_train,
        "n_test": n_test,
        "figure": str(figure),
    })
    metrics["stitched"] = metrics["key_acc_after"] >= 1.0
    if not metrics["stitched"]:
        log.warning("toy key only %.2f stitched after %d epochs", metrics["key_acc_after"], info["epochs"])

    sources = owner.x[key.source_indices]  # the training points FGSM started from
    plot_figure(figure, gx, gy, before, after, owner, key, sources, metrics, arrows=bool(cfg.figure1.arrows))
    metrics["wall_time_s"] = round(time.perf_counter() - started, 3)
    metrics["config"] = resolved_config(cfg)
    write_json(cfg.metrics_out, metrics)
    return metrics
