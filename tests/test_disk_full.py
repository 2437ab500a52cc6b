"""A full disk: the error names the output that could not be written, and a stage that writes a
model (or key) and its metrics leaves both or neither.

The disk fills up in `os.fsync` of one output's temporary file, where a real full disk often shows
(file systems allocate blocks lazily): ENOSPC is raised there for that output only.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fsw import embed, train
from fsw import io as fsw_io
from fsw.attack import stage as attack_stage
from fsw.errors import OutputError
from fsw.io import read_json, write_json, write_together
from fsw.key import save_key
from tests.bad_inputs import Tried
from tests.conftest import tiny
from tests.test_safety import small_key

MODEL = "model.pt"
METRICS = "metrics.json"


def fill_disk_on(monkeypatch, name: str) -> None:
    """Make fsync fail with ENOSPC for the temporary file of the output called `name`."""
    fsync = os.fsync

    def full(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(fsw_io.os, "fsync", full)


def assert_no_space_error(info: pytest.ExceptionInfo, path: Path) -> None:
    message = str(info.value)
    assert str(path) in message and "no space left" in message.lower(), message


def test_a_full_disk_names_the_output(tmp_path, monkeypatch):
    target = tmp_path / METRICS
    fill_disk_on(monkeypatch, METRICS)
    with pytest.raises(OutputError) as info:
        write_json(target, {"a": 1})
    assert_no_space_error(info, target)
    assert list(tmp_path.iterdir()) == []


def test_outputs_written_together_are_all_or_nothing(tmp_path, monkeypatch):
    """The second output does not fit: the first is not written either, and its old version stays."""
    (tmp_path / MODEL).write_bytes(b"old model")
    fill_disk_on(monkeypatch, METRICS)
    with pytest.raises(OutputError) as info:
        write_together({tmp_path / MODEL: b"new model", tmp_path / METRICS: "{}\n"})
    assert_no_space_error(info, tmp_path / METRICS)
    assert [p.name for p in tmp_path.iterdir()] == [MODEL] and (tmp_path / MODEL).read_bytes() == b"old model"
    monkeypatch.undo()
    write_together({tmp_path / MODEL: b"new model", tmp_path / METRICS: "{}\n"})
    assert (tmp_path / MODEL).read_bytes() == b"new model" and read_json(tmp_path / METRICS) == {}


@pytest.fixture(scope="module")
def model_and_key(tmp_path_factory) -> tuple[Path, Path]:
    """A linear model trained for one epoch on tiny data, and a small key."""
    out = tmp_path_factory.mktemp("inputs")
    train.run(tiny("train", "network=linear", "network.epochs=1",
                   f"model_out={out}/{MODEL}", f"metrics_out={out}/{METRICS}"))
    return out / MODEL, save_key(out / "key.pt", small_key())


STAGES = {
    "train": (train.run, lambda model, key: ("train", "network=linear", "network.epochs=1")),
    "embed": (embed.run, lambda model, key: ("embed", f"model_in={model}", f"key_in={key}", "embed.max_epochs=1",
                                             "embed.batches_per_epoch=2", "trainer.enable_progress_bar=false")),
    "attack": (attack_stage.run, lambda model, key: ("attack", f"model_in={model}", "attack=prune_global",
                                                     "attack.level=0.5")),
}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_leaves_its_model_and_metrics_both_or_neither(model_and_key, tmp_path, monkeypatch, stage):
    run, overrides = STAGES[stage]
    out = tmp_path / "out"
    cfg = tiny(*overrides(*model_and_key), f"model_out={out}/{MODEL}", f"metrics_out={out}/{METRICS}")
    fill_disk_on(monkeypatch, METRICS)
    with pytest.raises(OutputError) as info:
        run(cfg)
    assert_no_space_error(info, out / METRICS)
    assert not out.exists() or list(out.iterdir()) == [], "a model without its metrics, or a temporary file"


NO_SPACE = '`OutputError` naming the output, saying "no space left"'
TRIED = [
    Tried("full disk (ENOSPC) while a JSON output is written", "an error naming the output; no file left",
          f"{NO_SPACE}; the folder is left empty"),
    Tried("full disk while the second of two outputs written together is written",
          "neither is written; the old version of the first stays",
          f"{NO_SPACE}; the first output keeps its old content and no temporary file is left"),
    Tried("full disk while train, embed or attack writes its metrics", "neither the model nor the metrics",
          f"{NO_SPACE}; the stage's output folder holds no file"),
]
