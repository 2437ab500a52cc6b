"""The Lightning Trainer of every stage that trains (train, embed, extract, the fine-tuning attacks,
figure1): the `trainer` config group plus what the stage sets, one progress line per epoch, and
where the stage has them (train, embed), per-epoch CSV metrics in `log_dir` and a checkpoint per
epoch in `checkpoint_dir`, from which a killed training resumes."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from fsw.config import resolved_config, training_precision

log = logging.getLogger(__name__)

CHECKPOINT = "last.ckpt"  # the one checkpoint of a job, overwritten each epoch


class EpochProgress(pl.Callback):
    """One log line per epoch with its metrics, and one when a training resumes: progress that
    survives in a job's log file, where Lightning's progress bar is switched off."""

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.ckpt_path:
            log.info("resumed from %s after epoch %d/%d", trainer.ckpt_path, trainer.current_epoch,
                     trainer.max_epochs)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        metrics = " ".join(f"{name}={value:.4f}" for name, value in sorted(trainer.callback_metrics.items()))
        log.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs, metrics)


class RandomState(pl.Callback):
    """torch's random state (dropout masks, noise augmentation) in each checkpoint, put back when the
    training resumes, so that it continues as an uninterrupted run would: Lightning's checkpoints
    hold the model, optimizer, schedule and loops but no random state. It is put back at the start
    of training rather than when the checkpoint is read, because Lightning reads callback states
    before it sets up the optimizers and the data, which an uninterrupted run had gone through
    before its first epoch. (NumPy's and Python's generators are not drawn from while training.)"""

    def __init__(self) -> None:
        self.resumed: dict | None = None

    def state_dict(self) -> dict:
        return {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}

    def load_state_dict(self, state_dict: dict) -> None:
        self.resumed = state_dict

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.resumed is not None:
            torch.set_rng_state(self.resumed["cpu"])
            if self.resumed["cuda"]:
                torch.cuda.set_rng_state_all(self.resumed["cuda"])


class EarlierEpochsLog(pl.Callback):
    """A resumed training's metrics.csv keeps the rows its interrupted run logged for the epochs
    the checkpoint holds (Lightning's CSVLogger deletes the file when it starts writing, before any
    hook of a callback) and drops those of the epoch the kill cut short, which the resumed training
    logs again. Made with the Trainer, before the file is deleted.

    Lightning logs an epoch's training metrics just after the epoch-end hooks, the checkpoint's
    among them: a kill in that instant loses the one row of the epoch's training metrics (its
    validation row is written before), not the training."""

    def __init__(self, path: Path):
        self.earlier = []
        if path.is_file():
            with open(path, newline="") as rows:
                self.earlier = list(csv.DictReader(rows))

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        for row in self.earlier:
            if int(row["epoch"]) < trainer.current_epoch:
                values = {name: int(value) if name == "epoch" else float(value)
                          for name, value in row.items() if value != "" and name != "step"}
                trainer.logger.log_metrics(values, step=int(row["step"]))


def job_checkpoints(cfg: DictConfig) -> Path:
    """The folder of this job's checkpoint under `cfg.checkpoint_dir`, named by a hash of what fixes
    the training: the resolved config except where its outputs go, and the content of each input
    file. A checkpoint left by a run with other parameters or inputs (a retrained source model at
    the same path) is never resumed: its folder has another name."""
    config = {name: value for name, value in resolved_config(cfg).items()
              if not name.endswith("_out") and name not in ("log_dir", "checkpoint_dir")}
    inputs = {}
    for name, path in config.items():
        if name.endswith("_in") and isinstance(path, str):
            with open(path, "rb") as handle:
                inputs[name] = hashlib.file_digest(handle, "sha256").hexdigest()
    digest = hashlib.sha256(json.dumps([config, inputs], sort_keys=True).encode()).hexdigest()
    return Path(cfg.checkpoint_dir) / digest[:16]


def make_trainer(cfg: DictConfig, *, max_epochs: int, precision: str | None = None,
                 limit_train_batches: int | None = None, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """A Lightning Trainer: the `trainer` config group, plus the arguments the stage sets from its
    own config (fsw.validate.STAGE_TRAINER_ARGUMENTS, which refuses them in the trainer group); an
    argument left None is the trainer group's or Lightning's. Where the stage has a `log_dir`, the
    epoch's metrics go to its metrics.csv; where it has a `checkpoint_dir`, a checkpoint is saved
    after each epoch (see `fit`)."""
    callbacks = [*callbacks, EpochProgress()]
    logger = False
    if cfg.get("log_dir"):
        # Every log_metrics call (two per epoch: validation, then the training epoch's metrics)
        # reaches the file at once, rather than every 100 steps: a killed job keeps its epochs.
        logger = CSVLogger(cfg.log_dir, name="", version="", flush_logs_every_n_steps=1)
        callbacks.append(EarlierEpochsLog(Path(cfg.log_dir) / "metrics.csv"))
    if cfg.get("checkpoint_dir"):
        # One file, overwritten after each epoch (Lightning writes it to a temporary file first, so a
        # kill leaves the previous one); saved at the epoch's end, after the other callbacks' hooks.
        checkpoints = ModelCheckpoint(dirpath=job_checkpoints(cfg), filename=Path(CHECKPOINT).stem,
                                      enable_version_counter=False, save_on_train_epoch_end=True)
        callbacks += [RandomState(), checkpoints]
    from_stage = {"max_epochs": max_epochs, "precision": precision, "limit_train_batches": limit_train_batches}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger,
                       enable_checkpointing=bool(cfg.get("checkpoint_dir")),
                       **{name: value for name, value in from_stage.items() if value is not None})


def network_trainer(cfg: DictConfig) -> pl.Trainer:
    """A Trainer that trains `cfg.network` with its group's epochs and precision."""
    return make_trainer(
        cfg,
        max_epochs=int(cfg.network.epochs),
        precision=training_precision(cfg.network.precision, cfg.trainer.accelerator),
    )


def fit(trainer: pl.Trainer, module: pl.LightningModule, train: DataLoader, val: DataLoader | None = None) -> None:
    """`trainer.fit`, resumed from the checkpoint an interrupted run of the same job left, if any;
    the checkpoint is deleted once the training has finished.

    The checkpoint is read with torch's allow-list (weights_only=True): it is this job's own file in
    the folder Snakemake gives it, never a model or key file handed to fsw (those go through
    fsw.io.safe_torch_load), and nothing in it needs more. It is deleted rather than kept as the
    last epoch's state because it is no output: its model is the model file the stage writes next,
    and a CNN's, with Adam's moments, is three times that file. (A kill between here and that write
    costs the rerun the whole training, not a wrong model.)"""
    checkpoint = Path(trainer.checkpoint_callback.dirpath) / CHECKPOINT if trainer.checkpoint_callback else None
    resume = checkpoint if checkpoint is not None and checkpoint.is_file() else None
    trainer.fit(module, train, val, ckpt_path=resume, weights_only=True)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
        try:  # the job's folder, then checkpoint_dir, where nothing else is left in them
            checkpoint.parent.rmdir()
            checkpoint.parent.parent.rmdir()
        except OSError:
            pass
