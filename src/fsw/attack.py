"""Stage `attack`: a removal attack on a (marked) model, with the attacker's data; never the key."""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig, OmegaConf

from fsw.attacks import apply_attack, check_attack
from fsw.inference import accuracy, test_accuracy, test_accuracy_meta
from fsw.config import setup_run
from fsw.data import load_splits
from fsw.io import load_model, save_model, write_json

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    name = cfg.attack.name
    level = OmegaConf.select(cfg, "attack.level")  # None when unset (???): check_attack says why
    check_attack(name, level)  # before the slow part, so that a bad sweep point fails at once
    net, arch, meta = load_model(cfg.model_in)
    splits = load_splits(cfg.data)
    attack_started = time.perf_counter()
    attacked, measured = apply_attack(name, level, net, arch, cfg, splits.attacker)
    attack_time = time.perf_counter() - attack_started
    metrics = {
        "network": arch["name"],
        "seed": meta.get("seed"),
        "attack": name,
        "level": level,
        "test_acc_before": test_accuracy(net, meta, splits.test.x, splits.test.y),
        "test_acc_after": accuracy(attacked, splits.test.x, splits.test.y),
        **measured,
        "attack_time_s": round(attack_time, 3),
        "wall_time_s": round(time.perf_counter() - started, 3),
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
    save_model(
        cfg.model_out,
        attacked,
        arch,
        {
            **{k: v for k, v in meta.items() if k in ("network", "seed")},
            "kind": "attacked",
            "attack": name,
            "level": level,
            **test_accuracy_meta(metrics["test_acc_after"], splits.test.y),
        },
    )
    write_json(cfg.metrics_out, metrics)
    return metrics
