"""The `fsw STAGE` command line: Hydra overrides and multiruns (-m), run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fsw.io import read_json
from tests.conftest import TINY_DATA

# `fsw` itself, whichever Python runs the tests.
FSW = [sys.executable, "-c", "import sys; from fsw.cli import main; sys.argv[0] = 'fsw'; main()"]
QUICK = [*TINY_DATA, "network.epochs=1", "trainer.enable_progress_bar=false", "threads=1"]


def fsw(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*FSW, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


def test_a_multirun_runs_every_job_with_its_own_outputs_and_no_run_folders(tmp_path):
    done = fsw(tmp_path, "train", "-m", "network=linear,mlp_small", *QUICK,
               "model_out=out/${network.name}/model.pt", "metrics_out=out/${network.name}/metrics.json")
    assert done.returncode == 0, done.stderr[-3000:]
    for network in ("linear", "mlp_small"):
        metrics = read_json(tmp_path / "out" / network / "metrics.json")
        assert metrics["network"] == network and metrics["config"]["network"]["epochs"] == 1
        assert (tmp_path / "out" / network / "model.pt").is_file()
    # Hydra invents no run folders: only its record of the sweep beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multirun.yaml", "out"]
    single = fsw(tmp_path, "train", "network=linear", *QUICK, "model_out=one/model.pt", "metrics_out=one/metrics.json")
    assert single.returncode == 0 and (tmp_path / "one" / "model.pt").is_file(), single.stderr[-3000:]


@pytest.mark.parametrize("shared", ["model_out=model.pt", "log_dir=logs"])
def test_a_multirun_whose_jobs_would_overwrite_each_others_outputs_is_refused(tmp_path, shared):
    own = ["model_out=out/${network.name}/model.pt", "log_dir=out/${network.name}/logs"]
    done = fsw(tmp_path, "train", "-m", "network=linear,mlp_small", *QUICK, "metrics_out=out/${network.name}/m.json",
               *[path for path in own if path.split("=")[0] != shared.split("=")[0]], shared)
    assert done.returncode == 1
    written = tmp_path / shared.split("=")[1]
    assert f"would overwrite {written}, written by job #0 (network=linear" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "out" / "mlp_small").exists()  # refused before it wrote anything
