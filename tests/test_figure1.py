"""Stage `figure1`: a 2-D problem, a key made and embedded by the project's own code, the
frontier before and after stitching drawn as PNG + SVG, and what happened as JSON."""

from __future__ import annotations

import json

import pytest
import torch

from fsw.errors import ConfigError
from fsw.stages import compose

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def figure1_config(out, *overrides: str):
    return compose("figure1", ["threads=1", f"figure_out={out}/figure1_frontier.png", f"metrics_out={out}/metrics.json",
                           *overrides])


@pytest.fixture(scope="module")
def figure1_run(tmp_path_factory):
    from fsw import figure1

    out = tmp_path_factory.mktemp("figure1")
    return out, figure1.run(figure1_config(out))


def test_writes_the_figure_and_the_metrics(figure1_run):
    out, metrics = figure1_run
    assert (out / "figure1_frontier.png").read_bytes()[:8] == PNG_MAGIC
    svg = (out / "figure1_frontier.svg").read_text()
    assert "<svg" in svg and "after stitching" in svg  # text kept as text (svg.fonttype none)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert not list(out.glob(".*.tmp"))  # atomic writes left nothing behind


def test_the_key_holds_both_kinds_and_gets_stitched(figure1_run):
    _, metrics = figure1_run
    size = metrics["key_size"]
    assert size > 0 and metrics["true_adversaries"] == metrics["false_adversaries"] == size // 2
    # By construction the source model gets the false adversaries right and the true ones wrong.
    assert metrics["key_acc_before"] == pytest.approx(0.5)
    assert metrics["key_acc_after"] > metrics["key_acc_before"]
    assert metrics["key_acc_after"] == 1.0 and metrics["stitched"]
    assert metrics["frontier_moved"] > 0.0  # the frontier visibly moved
    # ...while the toy task is still solved.
    assert metrics["test_acc_before"] > 0.95 and metrics["test_acc_after"] > 0.95


def test_same_seed_same_metrics(figure1_run, tmp_path):
    from fsw import figure1

    _, first = figure1_run
    again = figure1.run(figure1_config(tmp_path))
    ignore = {"wall_time_s", "figure", "config"}  # the figure and config name each run's own files
    assert {k: v for k, v in again.items() if k not in ignore} == {k: v for k, v in first.items() if k not in ignore}


def test_moons_are_seeded_balanced_and_in_the_unit_square():
    from fsw.figure1 import moons

    x, y = moons(400, 0.12, torch.Generator().manual_seed(3))
    x2, y2 = moons(400, 0.12, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (400, 2) and int(y.sum()) == 200
    assert x.min() >= 0 and x.max() <= 1  # FGSM clips to [0, 1]: the data must live there


def test_stitching_data_takes_points_as_well_as_images():
    from fsw.data import Split
    from fsw.embed import stitching_data
    from fsw.key import Key

    def key(inputs):
        n = len(inputs)
        return Key(inputs, torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.bool),
                   torch.arange(n), 0.1, 0, {})

    for shape in ((2,), (1, 28, 28)):
        owner = Split(torch.rand(90, *shape), torch.ones(90, dtype=torch.long), torch.arange(90))
        x, y = stitching_data(owner, key(torch.rand(4, *shape)), 0.1)
        # 90 owner items, the 4 key items repeated ceil(0.1 * 90 / (0.9 * 4)) = 3 times
        assert x.shape == (90 + 12, *shape) and y.shape == (90 + 12,)
        assert torch.equal(y[90:], torch.zeros(12, dtype=torch.long)) and torch.equal(y[:90], owner.y)


@pytest.mark.parametrize("override,key", [
    ("figure1.noise=-1", "figure1.noise"), ("figure1.hidden=0", "figure1.hidden"), ("figure1.lr=0", "figure1.lr"),
    ("figure1.epochs=0", "figure1.epochs"), ("figure1.grid=1", "figure1.grid"), ("figure1.optimizer=adamw", "figure1.optimizer"),
    ("figure1.arrows=maybe", "figure1.arrows"), ("keygen.eps=0", "keygen.eps"), ("keygen.size=3", "keygen.size"),
    ("figure_out=''", "figure_out"),
])
def test_bad_value_fails_before_any_work(tmp_path, override, key):
    from fsw import figure1

    with pytest.raises(ConfigError) as info:
        figure1.run(figure1_config(tmp_path, override))
    assert f"{key}=" in str(info.value) and "is invalid" in str(info.value)
    assert not any(tmp_path.iterdir())


def test_figure_out_must_be_a_png(tmp_path):
    from fsw import figure1

    with pytest.raises(ConfigError, match="figure_out"):
        figure1.run(figure1_config(tmp_path, f"figure_out={tmp_path}/figure.svg"))
    assert not any(tmp_path.iterdir())
