"""Stage `extract`: steal a model through its label-only API and train a surrogate on the answers.

The attacker owns only its split of MNIST (never the key, never the owner's data) and a query
budget. It labels its images through the victim, optionally adds FGSM perturbations of them made
against its own surrogate (images near the surrogate's decision boundaries, where the victim's
labels teach it most), and trains the surrogate on every answer. Whether the watermark survives is
then the verify stage's question, asked of the surrogate file this stage writes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from fsw.adversarial import fgsm
from fsw.classifier import Classifier
from fsw.config import resolved_config, setup_run
from fsw.data import batch_loader, check_same_dataset, load_splits
from fsw.errors import ConfigError
from fsw.inference import accuracy, test_accuracy_meta
from fsw.io import json_text, load_model, model_bytes, write_together
from fsw.networks import build_network
from fsw.oracle.client import LocalOracle, Oracle, RemoteOracle
from fsw.training import fit, network_trainer

log = logging.getLogger(__name__)

FGSM_BATCH = 500  # images per gradient computation: bounds the memory of a CNN's activations


@contextlib.contextmanager
def victim_oracle(cfg: DictConfig, budget: int) -> Iterator[Oracle]:
    """The victim's API at cfg.remote.url, else the victim file cfg.victim_in queried here."""
    if cfg.remote.url:
        with RemoteOracle.from_config(
            cfg.remote, batch_size=int(cfg.remote.batch_size), budget=budget
        ) as oracle:
            yield oracle
    elif cfg.victim_in:
        net, _, meta = load_model(cfg.victim_in)
        check_same_dataset(cfg.data.name, {f"victim model {cfg.victim_in}": meta})
        yield LocalOracle(net)
    else:
        raise ConfigError("extract needs the victim: remote.url (its API) or victim_in (its file)")


def train_surrogate(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: DictConfig
) -> torch.nn.Module:
    """Train `net` (from its current weights) on the victim's labels `y` of images `x`; without
    validation, as the attacker holds no labelled data of its own."""
    module = Classifier.for_network(net, cfg.network)
    trainer = network_trainer(cfg)
    fit(trainer, module, batch_loader(x, y, int(cfg.batch_size), shuffle=True, seed=int(cfg.seed)))
    return module.net.cpu().eval()


def query_set_size(budget: int, rounds: int, available: int) -> int:
    """Images per query set: the clean set and each augmentation round get an equal share of the
    budget, and the clean set cannot be larger than the attacker's data."""
    if rounds < 0:
        raise ConfigError(f"augment_rounds must be >= 0, got {rounds}")
    per_set = min(budget // (rounds + 1), available)
    if per_set < 1:
        raise ConfigError(
            f"a budget of {budget} queries leaves nothing for {rounds + 1} query sets "
            f"of the attacker's {available} images"
        )
    return per_set


def extract(
    oracle: Oracle, images: torch.Tensor, per_set: int, cfg: DictConfig
) -> tuple[torch.nn.Module, int]:
    """The surrogate trained on `oracle`'s labels of `per_set` of `images` and of their FGSM
    perturbations in each augmentation round; returns it and how many images it learned from."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(int(cfg.seed)))
    clean = images[order[:per_set]]
    clean_labels = oracle(clean)
    xs, ys = [clean], [clean_labels]
    net = train_surrogate(
        build_network(OmegaConf.to_container(cfg.network.arch, resolve=True)),
        clean,
        clean_labels,
        cfg,
    )
    rounds = int(cfg.augment_rounds)
    for round_ in range(rounds):
        perturbed = torch.cat(
            [
                fgsm(net, xb, yb, float(cfg.augment_eps))
                for xb, yb in zip(
                    clean.split(FGSM_BATCH), clean_labels.split(FGSM_BATCH), strict=True
                )
            ]
        )
        xs.append(perturbed)
        ys.append(oracle(perturbed))
        net = train_surrogate(net, torch.cat(xs), torch.cat(ys), cfg)
        log.info(
            "augmentation round %d/%d: %d images, %d queries",
            round_ + 1,
            rounds,
            sum(map(len, xs)),
            oracle.queries,
        )
    return net, sum(map(len, xs))


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    splits = load_splits(cfg.data)
    per_set = query_set_size(int(cfg.budget), int(cfg.augment_rounds), len(splits.attacker))
    with victim_oracle(cfg, int(cfg.budget)) as oracle:
        net, train_size = extract(oracle, splits.attacker.x, per_set, cfg)
    arch = OmegaConf.to_container(cfg.network.arch, resolve=True)
    metrics = {
        "network": arch["name"],
        "seed": int(cfg.seed),
        "dataset": cfg.data.name,
        "oracle": "remote" if cfg.remote.url else "local",
        "budget": int(cfg.budget),
        "queries": oracle.queries,
        "augment_rounds": int(cfg.augment_rounds),
        "augment_eps": float(cfg.augment_eps),
        "train_size": train_size,
        "test_acc": accuracy(net, splits.test.x, splits.test.y),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "config": resolved_config(cfg),
    }
    log.info(
        "extracted a %s surrogate with %d queries: test accuracy %.4f",
        arch["name"],
        oracle.queries,
        metrics["test_acc"],
    )
    meta = {
        "kind": "extracted",
        "dataset": cfg.data.name,
        "network": arch["name"],
        "seed": int(cfg.seed),
        "budget": int(cfg.budget),
        "augment_rounds": int(cfg.augment_rounds),
        **test_accuracy_meta(metrics["test_acc"], splits.test.y),
    }
    write_together({cfg.model_out: model_bytes(net, arch, meta), cfg.metrics_out: json_text(metrics)})
    return metrics
