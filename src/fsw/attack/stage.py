"""The attack stage's torch side: apply a registered attack to a copy of a model, and the stage's run."""

from __future__ import annotations

import copy
import logging
import time

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fsw.attack import check_attack
from fsw.config import resolved_config, seed_everything, setup_run
from fsw.data import Split, check_same_dataset, load_splits
from fsw.inference import accuracy, test_accuracy, test_accuracy_meta
from fsw.io import json_text, load_model, model_bytes, write_together
from fsw.networks import build_network, weight_parameters

log = logging.getLogger(__name__)


def unchanged(net: nn.Module, level: float, cfg: DictConfig, data: Split) -> tuple[nn.Module, dict]:
    return net, {}


def apply_attack(
    name: str, level: float, net: nn.Module, arch: dict, cfg: DictConfig, data: Split
) -> tuple[nn.Module, dict]:
    """Attack a copy of `net` (left untouched); returns the attacked network, in eval mode, and what
    the attack measured, plus `weight_rel_change` = ||W' - W|| / ||W|| over all weight tensors.

    Seeded from `cfg.seed`, so the same inputs give the same model.
    """
    attack = check_attack(name, level)
    seed_everything(int(cfg.seed))
    attacked, measured = attack.apply(copy.deepcopy(net), level, cfg, data)
    # A fresh network of `arch` loading the attacked weights strictly: an attack that changed the
    # architecture fails here rather than in verify, and no pruning hook or frozen flag survives.
    rebuilt = build_network(arch)
    rebuilt.load_state_dict(attacked.state_dict(), strict=True)
    before = torch.cat([w.detach().flatten() for _, w in weight_parameters(net)])
    after = torch.cat([w.detach().flatten() for _, w in weight_parameters(rebuilt)])
    measured["weight_rel_change"] = float((after - before).norm() / before.norm())
    return rebuilt.eval(), measured


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    name = cfg.attack.name
    level = OmegaConf.select(cfg, "attack.level")  # None when unset (???): check_attack says why
    check_attack(name, level)  # before the slow part, so that a bad sweep point fails at once
    net, arch, meta = load_model(cfg.model_in)
    check_same_dataset(cfg.data.name, {f"model {cfg.model_in}": meta})
    splits = load_splits(cfg.data)
    attack_started = time.perf_counter()
    attacked, measured = apply_attack(name, level, net, arch, cfg, splits.attacker)
    attack_time = time.perf_counter() - attack_started
    metrics = {
        "network": arch["name"],
        "seed": meta.get("seed"),
        "dataset": cfg.data.name,
        "attack": name,
        "level": level,
        "test_acc_before": test_accuracy(net, meta, splits.test.x, splits.test.y),
        "test_acc_after": accuracy(attacked, splits.test.x, splits.test.y),
        **measured,
        "attack_time_s": round(attack_time, 3),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "config": resolved_config(cfg),
    }
    metrics["test_acc_drop"] = metrics["test_acc_before"] - metrics["test_acc_after"]
    log.info(
        "%s %s at level %s: test accuracy %.4f -> %.4f",
        arch["name"],
        name,
        level,
        metrics["test_acc_before"],
        metrics["test_acc_after"],
    )
    attacked_meta = {
        **{k: v for k, v in meta.items() if k in ("network", "seed")},
        "kind": "attacked",
        "dataset": cfg.data.name,
        "attack": name,
        "level": level,
        **test_accuracy_meta(metrics["test_acc_after"], splits.test.y),
    }
    write_together({cfg.model_out: model_bytes(attacked, arch, attacked_meta),
                    cfg.metrics_out: json_text(metrics)})
    return metrics
