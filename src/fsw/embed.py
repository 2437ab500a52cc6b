"""Stage `embed`: fine-tune a model until it classifies its key with the key's labels ("stitching").

The keys of a fingerprinting scheme (`fsw.grid.KEY_STRATEGIES`: embeds false) are made to fit the
source as it is: their marked model is the source, passed on unchanged, so that every later stage
treats every scheme alike."""

from __future__ import annotations

import logging
import math
import time

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from fsw.classifier import Classifier
from fsw.config import resolved_config, setup_run
from fsw.data import Split, batch_loader, check_same_dataset, load_splits
from fsw.errors import ConfigError
from fsw.grid import KEY_STRATEGIES
from fsw.inference import accuracy, test_accuracy, test_accuracy_meta
from fsw.io import json_text, load_model, model_bytes, write_together
from fsw.key import Key, load_key
from fsw.training import fit, make_trainer

log = logging.getLogger(__name__)


class StopWhenStitched(pl.Callback):
    """After each epoch, measure key accuracy (eval mode) and stop once the whole key is stitched."""

    def __init__(self, key: Key):
        self.key = key
        self.key_acc = float("nan")

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.key_acc = accuracy(module.net, self.key.inputs, self.key.labels)
        module.log("key/acc", self.key_acc, prog_bar=True)
        if self.key_acc >= 1.0:
            trainer.should_stop = True

    # Kept in the checkpoint: resumed from the epoch that stitched the key, the training stops
    # there as the uninterrupted one did, rather than fine-tuning one epoch more.
    def state_dict(self) -> dict:
        return {"key_acc": self.key_acc}

    def load_state_dict(self, state_dict: dict) -> None:
        self.key_acc = state_dict["key_acc"]

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.key_acc >= 1.0:
            trainer.should_stop = True


def stitching_data(owner: Split, key: Key, key_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The owner's inputs and labels plus the key repeated so that key items make up about
    `key_fraction` of them."""
    if not 0.0 < key_fraction < 1.0:
        raise ConfigError(f"embed.key_fraction must be in (0, 1), got {key_fraction}")
    repeats = max(1, math.ceil(key_fraction * len(owner) / ((1.0 - key_fraction) * len(key))))
    tiles = (repeats, *[1] * (key.inputs.dim() - 1))  # any input shape: images, or the 2-D toy's points
    x = torch.cat([owner.x, key.inputs.repeat(*tiles)])
    return x, torch.cat([owner.y, key.labels.repeat(repeats)])


def embed(net: torch.nn.Module, key: Key, owner: Split, cfg: DictConfig) -> tuple[torch.nn.Module, dict]:
    """Fine-tune `net` on the owner's data plus the oversampled key; returns it and the epochs used."""
    module = Classifier(net, cfg.embed.optimizer, cfg.embed.lr)
    stitched = StopWhenStitched(key)
    trainer = make_trainer(
        cfg,
        max_epochs=int(cfg.embed.max_epochs),
        limit_train_batches=int(cfg.embed.batches_per_epoch),
        callbacks=[stitched],
    )
    x, y = stitching_data(owner, key, float(cfg.embed.key_fraction))
    fit(trainer, module, batch_loader(x, y, int(cfg.batch_size), shuffle=True, seed=int(cfg.seed)))
    return module.net.cpu().eval(), {"epochs": int(trainer.current_epoch)}


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    net, arch, meta = load_model(cfg.model_in)
    key = load_key(cfg.key_in)
    check_same_dataset(cfg.data.name, {f"model {cfg.model_in}": meta, f"key {cfg.key_in}": key.meta})
    splits = load_splits(cfg.data)
    strategy = key.meta.get("strategy", "paper")
    fine_tuned = KEY_STRATEGIES[strategy].embeds
    before = {
        "test_acc_before": test_accuracy(net, meta, splits.test.x, splits.test.y),
        "key_acc_before": accuracy(net, key.inputs, key.labels),
    }
    if fine_tuned:
        net, info = embed(net, key, splits.owner, cfg)
        after = {"test_acc_after": accuracy(net, splits.test.x, splits.test.y),
                 "key_acc_after": accuracy(net, key.inputs, key.labels)}
    else:
        log.info("a %s key fingerprints the source as it is: the marked model is the source, not fine-tuned", strategy)
        info = {"epochs": 0}
        after = {"test_acc_after": before["test_acc_before"], "key_acc_after": before["key_acc_before"]}
    metrics = {
        "network": arch["name"],
        "seed": meta.get("seed"),
        "dataset": cfg.data.name,
        "eps": key.eps,
        "key_size": len(key),
        "key_hash": key.hash,
        "strategy": strategy,
        **before,
        **after,
        "fine_tuned": fine_tuned,
        "epochs_used": info["epochs"],
        "wall_time_s": round(time.perf_counter() - started, 3),
        "config": resolved_config(cfg),
    }
    metrics["test_acc_drop"] = metrics["test_acc_before"] - metrics["test_acc_after"]
    metrics["stitched"] = metrics["key_acc_after"] >= 1.0
    if not metrics["stitched"]:
        log.warning("key only %.2f stitched after %d epochs", metrics["key_acc_after"], info["epochs"])
    marked_meta = {
        **{k: v for k, v in meta.items() if k in ("network", "seed")},
        "kind": "marked",
        "dataset": cfg.data.name,
        "key_hash": key.hash,
        "fine_tuned": fine_tuned,
        **test_accuracy_meta(metrics["test_acc_after"], splits.test.y),
    }
    write_together({cfg.model_out: model_bytes(net, arch, marked_meta), cfg.metrics_out: json_text(metrics)})
    return metrics
