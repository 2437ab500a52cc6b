"""The package as pip installs it: a wheel built from the checkout, installed into a fresh venv,
runs from a folder outside the checkout with nothing of the checkout on its path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import fsw
from fsw.stages import STAGES
from tests.conftest import REPO


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300,
                          check=False, **kwargs)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding the wheel. Its dependencies (torch, ...) are this interpreter's:
    a .pth file puts its site-packages after the venv's own, so nothing is downloaded or reinstalled."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"  # a copy: building in the checkout would leave build/ and *.egg-info there
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    # this environment's setuptools builds it; too old a one is named rather than failing obscurely
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--check-build-dependencies",
         "--no-index", "--wheel-dir", root / "dist", source])
    (wheel,) = (root / "dist").glob("fsw-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    # plain paths: .pth files there (an editable fsw of a checkout among them) are not processed
    dependencies = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    Path(site, "dependencies.pth").write_text("\n".join(dependencies) + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])
    return venv / "bin"


@pytest.fixture
def outside(tmp_path) -> dict:
    """Where to run an installed command: a folder outside the checkout, and an environment that
    names no part of it."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "FSW_CONFIG_DIR")}
    return {"cwd": tmp_path, "env": env}


def test_the_installed_package_is_the_wheels(installed, outside):
    done = run([installed / "python", "-c",
                "import json, fsw, fsw.stages; print(json.dumps([fsw.__file__, str(fsw.stages.config_dir())]))"],
               **outside)
    module, configs = map(Path, json.loads(done.stdout))
    venv = installed.parent
    assert module.is_relative_to(venv) and configs.is_relative_to(venv), (module, configs)
    assert (configs / "train.yaml").is_file() and any((configs / "network").glob("*.yaml"))


def test_help_lists_every_stage(installed, outside):
    done = run([installed / "fsw", "--help"], **outside)
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert set(STAGES) <= listed, done.stdout


def test_version(installed, outside):
    assert run([installed / "fsw", "--version"], **outside).stdout.strip() == f"fsw {fsw.__version__}"


def test_a_stage_runs_from_the_installed_package(installed, outside):
    """figure1 reads no MNIST: a few seconds with its toy problem made smaller still."""
    out = outside["cwd"] / "figure1"
    run([installed / "fsw", "figure1", f"figure_out={out}/frontier.png", f"metrics_out={out}/metrics.json",
         "threads=1", "figure1.n_train=300", "figure1.n_test=300", "figure1.epochs=10", "figure1.grid=40",
         "keygen.pool_size=300"], **outside)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["key_size"] > 0 and (out / "frontier.png").stat().st_size > 0
