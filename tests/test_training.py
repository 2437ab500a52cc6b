"""The training stages' logs: each epoch's metrics in log_dir/metrics.csv, through Lightning's
CSVLogger."""

from __future__ import annotations

import csv

import pytest

from fsw import embed, train
from tests.conftest import tiny

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
