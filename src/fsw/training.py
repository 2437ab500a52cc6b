"""The Lightning Trainer of every stage that trains (train, embed, extract, the fine-tuning attacks,
figure1): the `trainer` config group plus what the stage sets, and one progress line per epoch."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from fsw.config import training_precision

log = logging.getLogger(__name__)


class EpochProgress(pl.Callback):
    """One log line per epoch with its metrics: progress that survives in a job's log file, where
    Lightning's progress bar is switched off."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        metrics = " ".join(f"{name}={value:.4f}" for name, value in sorted(trainer.callback_metrics.items()))
        log.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs, metrics)


def make_trainer(cfg: DictConfig, **kwargs) -> pl.Trainer:
    """A Lightning Trainer from the `trainer` config group; `kwargs` are set by the stage itself."""
    callbacks = [*kwargs.pop("callbacks", []), EpochProgress()]
    return instantiate(cfg.trainer, callbacks=callbacks, **kwargs)


def network_trainer(cfg: DictConfig, **kwargs) -> pl.Trainer:
    """A Trainer that trains `cfg.network` with its group's epochs and precision."""
    return make_trainer(
        cfg,
        max_epochs=int(cfg.network.epochs),
        precision=training_precision(cfg.network.precision, cfg.trainer.accelerator),
        **kwargs,
    )
