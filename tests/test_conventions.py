"""The workflow follows Snakemake's conventions: `snakemake --lint` finds nothing, every job logs and
is benchmarked, and the Snakefiles use no internals of Snakemake's workflow object."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SNAKEFILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=env)


def test_snakemake_lint_finds_nothing(tmp_path):
    done = snakemake(tmp_path, "--lint")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Lints for" not in output, output[-6000:]


def test_every_job_logs_and_is_benchmarked(tmp_path):
    """Every job of the smoke sweep, as its dry run prints it; `all` only names the targets."""
    done = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "smoke.yaml"))
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = re.split(r"^(?:local)?rule (\w+):$", done.stdout + done.stderr, flags=re.MULTILINE)[1:]
    directives: dict[str, set[str]] = {}
    for rule, block in zip(jobs[0::2], jobs[1::2]):
        directives.setdefault(rule, set()).update(re.findall(r"^    (\w+):", block, flags=re.MULTILINE))
    assert len(directives) > 10, sorted(directives)
    missing = {rule: {"log", "benchmark"} - found for rule, found in directives.items()
               if rule != "all" and not {"log", "benchmark"} <= found}
    assert not missing, missing


def test_no_internals_of_the_workflow_object():
    """`workflow.global_resources` and the like change between Snakemake releases."""
    for path in SNAKEFILES:
        assert "global_resources" not in path.read_text(), path


def test_a_dry_run_of_the_default_sweep_imports_no_torch(tmp_path):
    """Every `snakemake` call parses the workflow, and checking the sweep composes Hydra configs:
    importing torch there would cost every call seconds. A `torch` that cannot be imported goes first
    on the path."""
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the workflow imported torch')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    done = snakemake(tmp_path, "-n", "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-4000:]
