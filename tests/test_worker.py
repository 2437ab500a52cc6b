"""The warm worker: a job's stage run in a fork of it gives what the job's own process gives, the
fork's output and errors reach the job, and neither the fork nor the worker outlives what it serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
import torch

from fsw import worker
from tests.conftest import TINY_DATA


@pytest.fixture
def warm_worker(tmp_path, monkeypatch):
    monkeypatch.setenv(worker.SOCKET_ENV, "")  # start() points this process at the worker; undone after
    worker.start(tmp_path / "worker.log")
    folder, process = worker._STARTED[-1]
    yield process
    worker._STARTED.remove((folder, process))
    process.stdin.close()
    assert process.wait(timeout=30) == 0  # the worker ends with the pipe from the process that started it
    folder.cleanup()


def wait_for(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(condition())


def train_overrides(out, *extra: str) -> list[str]:
    return [*TINY_DATA, "trainer.enable_progress_bar=false", "threads=1", "network=mlp", "network.epochs=1",
            f"model_out={out}/model.pt", f"metrics_out={out}/metrics.json", f"log_dir={out}/logs",
            f"checkpoint_dir={out}/checkpoints", *extra]


def test_a_stage_in_the_worker_gives_what_it_gives_in_its_own_process(warm_worker, tmp_path, monkeypatch, capfd):
    worker.run("train", [train_overrides(tmp_path / "forked")], str(tmp_path / "forked.usage.json"))
    assert "trained mlp" in capfd.readouterr().err  # the fork wrote to this process's stderr
    usage = json.loads((tmp_path / "forked.usage.json").read_text())
    assert usage["cpu_s"] > 0 and usage["max_rss_mb"] > 100
    assert wait_for(lambda: not psutil.Process(warm_worker.pid).children())  # the fork has ended and was reaped

    monkeypatch.setenv(worker.SOCKET_ENV, str(tmp_path / "no-worker.sock"))
    worker.run("train", [train_overrides(tmp_path / "here")], str(tmp_path / "here.usage.json"))
    assert not (tmp_path / "here.usage.json").exists()  # no worker answered: it ran in this process
    forked, here = (torch.load(tmp_path / run / "model.pt", weights_only=True)["state_dict"] for run in ("forked", "here"))
    assert forked.keys() == here.keys() and all(torch.equal(forked[name], here[name]) for name in forked)


def test_a_failing_stage_fails_its_job_and_leaves_the_worker_serving(warm_worker, tmp_path, capfd):
    with pytest.raises(SystemExit) as failed:
        worker.run("train", [train_overrides(tmp_path, "network=no_such_network")])
    assert failed.value.code == 1
    assert "no_such_network" in capfd.readouterr().err
    assert warm_worker.poll() is None
    worker.run("train", [train_overrides(tmp_path)])
    assert (tmp_path / "model.pt").is_file()


def test_a_fork_ends_when_its_job_is_cancelled(warm_worker, tmp_path):
    job = subprocess.Popen(
        [sys.executable, "-c", f"from fsw import worker; worker.run('train', [{train_overrides(tmp_path, 'network.epochs=500')!r}])"],
        env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = psutil.Process(warm_worker.pid)
    assert wait_for(server.children, seconds=60)
    [fork] = server.children()
    job.kill()
    job.wait()
    fork.wait(timeout=30)  # raises psutil.TimeoutExpired if the fork trains on
    assert not (tmp_path / "model.pt").exists()


def test_a_stages_exit_message_reaches_the_jobs_log(capsys):
    assert worker._status(sys.exit, "why it stopped") == 1
    assert worker._status(sys.exit, 3) == 3
    assert "why it stopped" in capsys.readouterr().err
