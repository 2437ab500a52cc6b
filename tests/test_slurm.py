"""The smoke sweep on a real single-node SLURM cluster, through `snakemake --profile profiles/slurm`,
against a local run of the same sweep (`--profile profiles/local`).

Not part of a plain `pytest` (pyproject's addopts deselect the `slurm` marker): run it alone with
`pytest -m slurm`. tests/slurm/cluster.sh installs Debian's slurm-wlm and munge (root, apt-get) and
starts slurmctld and slurmd on 127.0.0.1; the test skips, with the script's reason, where that
cannot be done, and stops the cluster when it ends. It runs two smoke sweeps (~15 min on 2 cores).

The SLURM run is a GPU run (--config gpu=True) capped at the cluster's two stand-in GPUs
(--resources gpu=2), so it also checks that
training-like jobs, and only those, are submitted with a GPU request; torch finds no CUDA in them
and trains on the CPU, so their records must still equal the local run's.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slurm

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
TRAINING_LIKE = {"train", "embed", "attack", "extract"}
SKIP = 77  # cluster.sh: SLURM cannot be set up here


def snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(REPO / "config" / "smoke.yaml"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env or os.environ.copy(), timeout=2400,
                          check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node cluster: the environment that points SLURM's clients at it, and the
    cluster's folder (slurm.conf, jobcomp.log, daemon logs)."""
    state = tmp_path_factory.mktemp("slurm")
    try:
        up = subprocess.run(["bash", str(CLUSTER), "up", str(state)], capture_output=True, text=True,
                            timeout=900, check=False)
        if up.returncode == SKIP:
            pytest.skip(f"no SLURM cluster: {up.stdout.strip().splitlines()[-1]}")
        assert up.returncode == 0, f"cluster.sh up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}, state
    finally:
        subprocess.run(["bash", str(CLUSTER), "down", str(state)], capture_output=True, text=True,
                       timeout=300, check=False)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    done = snakemake(workdir, "--profile", str(REPO / "profiles" / "local"), "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def slurm_run(cluster, local_run, tmp_path_factory):
    """The sweep through sbatch; every job the controller still knows (MinJobAge is an hour); the
    jobs SLURM recorded as finished (jobcomp/filetxt)."""
    env, state = cluster
    workdir = tmp_path_factory.mktemp("slurm_run")
    done = snakemake(
        workdir, "--profile", str(REPO / "profiles" / "slurm"), "--config", "gpu=True", "--resources", "gpu=2",
        # no slurmdbd here: poll squeue, and poll it often (the default first wait is 40 s)
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    shown = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True,
                           env=env, check=True).stdout
    jobs = {fields["JobId"]: fields for fields in map(key_values, shown.splitlines())}
    finished = [key_values(line) for line in (state / "jobcomp.log").read_text().splitlines()]
    return workdir, done.stderr, jobs, finished


def planned_jobs(tmp_path_factory) -> list[str]:
    """The rule of every job a dry run of the smoke sweep plans, but the target rule `all` (which
    Snakemake runs on the submitting host)."""
    planned = snakemake(tmp_path_factory.mktemp("dry_run"), "--dry-run")
    assert planned.returncode == 0, planned.stderr[-4000:]
    return [rule for rule in re.findall(r"^rule (\w+):$", planned.stdout + planned.stderr, re.MULTILINE)
            if rule != "all"]


def key_values(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def declared_resources(log: str) -> dict[str, tuple[str, dict[str, str]]]:
    """SLURM job id -> (rule, resources Snakemake gave the job), from the Snakemake log."""
    by_jobid, rule, jobid = {}, None, None
    for line in log.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match.group(1)
        elif match := re.match(r"^\s+jobid: (\d+)$", line):
            jobid = match.group(1)
        elif rule and jobid and (match := re.match(r"^\s+resources: (.*)$", line)):
            by_jobid[jobid] = (rule, dict(item.split("=", 1) for item in match.group(1).split(", ")))
            rule = jobid = None
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    return {slurm_id: by_jobid[jobid] for jobid, slurm_id in submitted}


def megabytes(memory: str) -> int:
    """SLURM's memory display (2000M, 2G, ...) in megabytes."""
    return int(float(memory[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[memory[-1]])


def records(workdir: Path) -> dict[str, dict]:
    root = workdir / "results" / "smoke" / "verify"
    return {str(path.relative_to(root)): json.loads(path.read_text()) for path in sorted(root.rglob("*.json"))}


def test_every_job_went_through_sbatch_with_its_resources(slurm_run, tmp_path_factory):
    workdir, log, jobs, finished = slurm_run
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    submitted = declared_resources(log)
    ours = {job_id: job for job_id, job in jobs.items() if job["JobName"] == run_id}
    assert set(ours) == set(submitted)
    assert sorted(rule for rule, _ in submitted.values()) == sorted(planned_jobs(tmp_path_factory))
    rules = {rule for rule, _ in submitted.values()}
    assert {"train", "keygen", "embed", "attack", "verify", "extract", "verify_extracted",
            "verify_remote", "report"} <= rules
    for job_id, (rule, resources) in submitted.items():
        job = ours[job_id]
        assert job["JobState"] == "COMPLETED", (rule, job)
        assert job["Comment"].startswith(f"rule_{rule}"), (rule, job)
        assert megabytes(job["MinMemoryNode"]) == int(resources["mem_mb"]), (rule, job)
        minutes = int(resources["runtime"])
        assert job["TimeLimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00", (rule, job)
        # training-like jobs, and only those, asked for one GPU
        assert (job.get("TresPerJob") == "gres:gpu:1") == (rule in TRAINING_LIKE), (rule, job)
    # SLURM's own record of finished jobs (jobcomp/filetxt) has them all, completed
    assert {job["JobId"] for job in finished if job["Name"] == run_id and job["JobState"] == "COMPLETED"} \
        == set(submitted)
    # one SLURM log per job, kept by --slurm-keep-successful-logs, under the rule's folder
    logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {path.stem for path in logs} >= set(submitted)


def test_records_equal_those_of_a_local_run(slurm_run, local_run):
    workdir = slurm_run[0]
    on_slurm, local = records(workdir), records(local_run)
    assert set(on_slurm) == set(local) and len(local) >= 30
    for name, record in local.items():
        for field in ("key_errors", "decision", "paper_binomial", "test_acc"):
            assert on_slurm[name][field] == record[field], (name, field)
    assert (workdir / "results" / "smoke" / "tables" / "verification.csv").exists()
