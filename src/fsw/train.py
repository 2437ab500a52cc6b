"""Stage `train`: train a network on the owner's data (key sources, calibration models) or the
attacker's (held-out null models)."""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig, OmegaConf

from fsw.classifier import Classifier
from fsw.config import resolved_config, setup_run
from fsw.data import load_splits
from fsw.inference import INFERENCE_BATCH, accuracy, test_accuracy_meta
from fsw.io import json_text, model_bytes, write_together
from fsw.networks import build_network
from fsw.training import fit, network_trainer

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    splits = load_splits(cfg.data)
    arch = OmegaConf.to_container(cfg.network.arch, resolve=True)
    net = build_network(arch)
    module = Classifier.for_network(net, cfg.network)
    trainer = network_trainer(cfg)
    data = getattr(splits, cfg.split)
    fit(trainer, module, data.loader(cfg.batch_size, shuffle=True, seed=cfg.seed), splits.val.loader(INFERENCE_BATCH))
    net = module.net.cpu().eval()
    metrics = {
        "network": cfg.network.name,
        "architecture": arch["name"],
        "seed": int(cfg.seed),
        "epochs": int(trainer.current_epoch),
        "precision": trainer.precision,
        "split": cfg.split,
        "dataset": cfg.data.name,
        "train_size": len(data),
        "val_acc": accuracy(net, splits.val.x, splits.val.y),
        "test_acc": accuracy(net, splits.test.x, splits.test.y),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "config": resolved_config(cfg),
    }
    log.info("trained %s: test accuracy %.4f", cfg.network.name, metrics["test_acc"])
    meta = {"kind": "base", "network": cfg.network.name, "seed": int(cfg.seed), "split": cfg.split,
            "dataset": cfg.data.name}
    meta.update(test_accuracy_meta(metrics["test_acc"], splits.test.y))
    write_together({cfg.model_out: model_bytes(net, arch, meta), cfg.metrics_out: json_text(metrics)})
    return metrics
