"""The training stages' logs and checkpoints: each epoch's metrics in log_dir/metrics.csv (Lightning's
CSVLogger), a checkpoint after each epoch in checkpoint_dir, and a SIGKILLed training that resumes
from it to the model an uninterrupted training makes."""

from __future__ import annotations

import csv
import importlib
import logging
import signal
import subprocess
import sys
import time

import pytest

from fsw import embed, train
from fsw.training import job_checkpoints
from tests.conftest import REPO, tiny
from tests.test_determinism import assert_bit_identical, comparable

QUICK = ["network=mlp", "network.arch.hidden=32", "network.epochs=3", "trainer.accelerator=cpu"]


def logged(folder) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as rows:
        return list(csv.DictReader(rows))


def test_training_and_embedding_log_each_epochs_metrics_to_log_dir(tmp_path, trained_mlp, mlp_key):
    record = train.run(tiny("train", *QUICK, f"model_out={tmp_path}/model.pt", f"metrics_out={tmp_path}/m.json",
                            f"log_dir={tmp_path}/train"))
    rows = logged(tmp_path / "train")
    validation, training = rows[0::2], rows[1::2]
    assert [row["epoch"] for row in training] == ["0", "1", "2"] == [row["epoch"] for row in validation]
    assert all(row["train/loss"] for row in training) and all(row["val/acc"] for row in validation)
    assert float(validation[-1]["val/acc"]) == pytest.approx(record["val_acc"])  # the trained model's

    marked = embed.run(tiny("embed", f"model_in={trained_mlp}", f"key_in={mlp_key}", "embed.batches_per_epoch=10",
                            f"model_out={tmp_path}/marked.pt", f"metrics_out={tmp_path}/e.json",
                            f"log_dir={tmp_path}/embed"))
    rows = logged(tmp_path / "embed")
    assert len(rows) == marked["epochs_used"] and float(rows[-1]["key/acc"]) == marked["key_acc_after"]
    assert all(row["train/loss"] for row in rows)


# A stage's training in a process of its own that pauses in the second epoch, after the first
# epoch's checkpoint: the test SIGKILLs it there. argv: the file that says it paused, the stage, then
# the overrides.
PAUSING_TRAINING = """
import importlib, sys, time
from pathlib import Path
from fsw.classifier import Classifier
from tests.conftest import tiny

training_step = Classifier.training_step

def pausing(self, batch, batch_idx):
    if self.current_epoch == 1 and batch_idx == 2:
        Path(sys.argv[1]).touch()
        time.sleep(600)
    return training_step(self, batch, batch_idx)

Classifier.training_step = pausing
importlib.import_module(f"fsw.{sys.argv[2]}").run(tiny(sys.argv[2], *sys.argv[3:]))
"""


def outputs(folder) -> list[str]:
    return [f"model_out={folder}/model.pt", f"metrics_out={folder}/metrics.json", f"log_dir={folder}/logs",
            f"checkpoint_dir={folder}/checkpoints"]


def kill_when_paused(tmp_path, stage: str, *overrides: str) -> None:
    paused = tmp_path / "paused"
    with open(tmp_path / "killed.log", "w") as log:
        child = subprocess.Popen([sys.executable, "-c", PAUSING_TRAINING, str(paused), stage, *overrides], cwd=REPO,
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not paused.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        log = (tmp_path / "killed.log").read_text()
        assert paused.exists(), "the training did not reach its second epoch:\n" + log[-3000:]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


def killed_and_resumed(tmp_path, caplog, stage: str, *overrides: str) -> tuple[dict, dict]:
    """`stage` SIGKILLed in its second epoch, then run again, and run uninterrupted: the two records.
    Checks that the second run resumed after the first epoch, left the same model and the same
    per-epoch log as the uninterrupted run, and that neither left a checkpoint behind."""
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    kill_when_paused(tmp_path, stage, *overrides, *outputs(killed))
    (checkpoint,) = (killed / "checkpoints").rglob("last.ckpt")
    assert not (killed / "model.pt").exists()
    run = importlib.import_module(f"fsw.{stage}").run
    with caplog.at_level(logging.INFO, logger="fsw.training"):
        resumed = run(tiny(stage, *overrides, *outputs(killed)))
    epochs = [message.split()[1] for message in caplog.messages if message.startswith("epoch ")]
    assert f"resumed from {checkpoint} after epoch 1/" in caplog.text
    assert epochs[0].startswith("2/")  # the first epoch was not trained again
    expected = run(tiny(stage, *overrides, *outputs(uninterrupted)))
    assert_bit_identical(killed / "model.pt", uninterrupted / "model.pt")
    assert comparable(resumed) == comparable(expected)
    log = (killed / "logs" / "metrics.csv").read_text()
    assert log == (uninterrupted / "logs" / "metrics.csv").read_text()  # every epoch once, the same numbers
    assert not (killed / "checkpoints").exists() and not (uninterrupted / "checkpoints").exists()
    return resumed, expected


def test_a_killed_training_resumes_from_its_last_checkpoint_to_the_uninterrupted_model(tmp_path, caplog):
    resumed, _ = killed_and_resumed(tmp_path, caplog, "train", *QUICK)
    assert resumed["epochs"] == 3
    log = (tmp_path / "killed" / "logs" / "metrics.csv").read_text().splitlines()
    assert log[0] == "epoch,step,train/loss,val/acc" and len(log) == 1 + 2 * 3  # validation, then training rows


def test_a_killed_embedding_resumes_from_its_last_checkpoint_to_the_uninterrupted_model(tmp_path, caplog,
                                                                                     trained_mlp, mlp_key):
    resumed, _ = killed_and_resumed(tmp_path, caplog, "embed", f"model_in={trained_mlp}", f"key_in={mlp_key}",
                                    "embed.lr=1e-4", "embed.batches_per_epoch=10", "embed.max_epochs=3",
                                    "trainer.accelerator=cpu")
    log = (tmp_path / "killed" / "logs" / "metrics.csv").read_text().splitlines()
    assert log[0] == "epoch,key/acc,step,train/loss" and len(log) == 1 + resumed["epochs_used"]


def test_a_checkpoint_belongs_to_the_parameters_and_the_inputs_of_its_job(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"a model")

    def folder(*overrides: str):
        return job_checkpoints(tiny("embed", f"model_in={model}", f"key_in={model}", "model_out=m.pt",
                                    "metrics_out=m.json", "checkpoint_dir=checkpoints", *overrides))

    first = folder()
    assert folder("model_out=elsewhere.pt", "log_dir=logs") == first  # where the outputs go is no parameter
    assert folder("embed.lr=0.1") != first
    model.write_bytes(b"a model retrained")
    assert folder() != first
