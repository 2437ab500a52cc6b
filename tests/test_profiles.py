"""The profiles and per-rule resources, checked on dry runs of the smoke sweep (no job runs)."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

# The rules that train (and so may use a GPU); every other rule is CPU-only.
TRAINING_LIKE = {"train", "embed", "attack", "extract"}
# The rules of workflow/rules/{train,keygen,embed,attack,extract,verify}.smk: each declares its resources.
DECLARING = TRAINING_LIKE | {"keygen", "verify", "verify_remote", "verify_extracted"}


def dry_run(tmp_path, *args: str) -> dict[str, list[dict[str, str]]]:
    """Rule -> the resources of each of its jobs, as a dry run of the smoke sweep prints them."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(REPO / "config" / "smoke.yaml"), "-n", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in (done.stdout + done.stderr).splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match.group(1)
        elif rule and (match := re.match(r"^\s+resources: (.*)$", line)):
            jobs.setdefault(rule, []).append(dict(item.split("=", 1) for item in match.group(1).split(", ")))
            rule = None
    return jobs


def test_cpu_is_the_default_and_every_rule_declares_memory_and_time(tmp_path):
    jobs = dry_run(tmp_path, "--profile", str(REPO / "profiles" / "local"))
    assert DECLARING <= set(jobs)
    for rule in DECLARING:
        for resources in jobs[rule]:
            assert int(resources["mem_mb"]) >= 1000 and int(resources["runtime"]) >= 5, (rule, resources)
            assert int(resources.get("gpu", 0)) == 0, (rule, resources)


def test_offered_gpus_alone_change_nothing(tmp_path):
    """A GPU run is the sweep's choice (config `gpu`): --resources only caps it."""
    jobs = dry_run(tmp_path, "--cores", "2", "--resources", "gpu=2")
    assert all(int(resources.get("gpu", 0)) == 0 for of_rule in jobs.values() for resources in of_rule), jobs


def test_a_gpu_run_gives_the_training_like_rules_one_gpu_each(tmp_path):
    jobs = dry_run(tmp_path, "--cores", "2", "--config", "gpu=True", "--resources", "gpu=2")
    for rule, resources_of_jobs in jobs.items():
        for resources in resources_of_jobs:
            assert int(resources.get("gpu", 0)) == (rule in TRAINING_LIKE), (rule, resources)


def test_slurm_profile_gives_every_job_memory_and_time(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    jobs = dry_run(tmp_path, "--profile", str(REPO / "profiles" / "slurm"))
    for rule, resources_of_jobs in jobs.items():
        if rule == "all":  # a target without outputs: Snakemake runs it locally, never submits it
            continue
        for resources in resources_of_jobs:
            assert int(resources["mem_mb"]) >= 1000 and int(resources["runtime"]) >= 5, (rule, resources)
