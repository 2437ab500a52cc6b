"""The Lightning Trainer of every stage that trains (train, embed, extract, the fine-tuning attacks,
figure1): the `trainer` config group plus what the stage sets, one progress line per epoch, and
where the stage has a `log_dir` (train, embed), the per-epoch metrics in its metrics.csv."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from fsw.config import training_precision

log = logging.getLogger(__name__)


class EpochProgress(pl.Callback):
    """One log line per epoch with its metrics: progress that survives in a job's log file, where
    Lightning's progress bar is switched off."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        metrics = " ".join(f"{name}={value:.4f}" for name, value in sorted(trainer.callback_metrics.items()))
        log.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs, metrics)


def make_trainer(cfg: DictConfig, *, max_epochs: int, precision: str | None = None,
                 limit_train_batches: int | None = None, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """A Lightning Trainer: the `trainer` config group, plus the arguments the stage sets from its
    own config (fsw.validate.STAGE_TRAINER_ARGUMENTS, which refuses them in the trainer group); an
    argument left None is the trainer group's or Lightning's. Where the stage has a `log_dir`, the
    epoch's metrics go to its metrics.csv."""
    logger = False
    if cfg.get("log_dir"):
        # Every log_metrics call (two per epoch: validation, then the training epoch's metrics)
        # reaches the file at once, rather than every 100 steps: a killed job keeps its epochs.
        logger = CSVLogger(cfg.log_dir, name="", version="", flush_logs_every_n_steps=1)
    from_stage = {"max_epochs": max_epochs, "precision": precision, "limit_train_batches": limit_train_batches}
    return instantiate(cfg.trainer, callbacks=[*callbacks, EpochProgress()], logger=logger,
                       **{name: value for name, value in from_stage.items() if value is not None})


def network_trainer(cfg: DictConfig) -> pl.Trainer:
    """A Trainer that trains `cfg.network` with its group's epochs and precision."""
    return make_trainer(
        cfg,
        max_epochs=int(cfg.network.epochs),
        precision=training_precision(cfg.network.precision, cfg.trainer.accelerator),
    )
