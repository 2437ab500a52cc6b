"""Faults: a crash or SIGKILL while writing leaves no output that looks complete; reruns finish the work.

Unit tests prove fsw.io.atomic_write (temp file + rename) never leaves a half-written file, and
that every writer of fsw goes through it. The end-to-end test (marked e2e) SIGKILLs a real
`snakemake` run while its train job is inside a write, checks Snakemake takes nothing as
complete, reruns with --rerun-incomplete to completion, then checks a rerun does nothing.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from fsw import io as fsw_io
from fsw.attack import ATTACKS
from fsw.io import atomic_write, load_model, read_json, save_model, torch_save, write_json
from fsw.key import load_key, save_key
from fsw.networks import build_network
from tests.conftest import REPO, TINY_DATA
from tests.test_safety import leaked_key_values, small_key

SRC = REPO / "src" / "fsw"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- atomic writes


class Crash(Exception):
    pass


def crash_midway(tmp: str) -> None:
    with open(tmp, "wb") as handle:
        handle.write(b"x" * 100_000)  # half of what it meant to write
    raise Crash("power cut")


def test_crash_inside_write_leaves_nothing(tmp_path):
    with pytest.raises(Crash):
        atomic_write(tmp_path / "out" / "model.pt", crash_midway)
    assert leftovers(tmp_path / "out") == []  # no target, no temp file


def test_crash_inside_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": True})
    with pytest.raises(Crash):
        atomic_write(target, crash_midway)
    assert read_json(target) == {"old": True} and leftovers(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("writer", ["write_json", "torch_save", "save_model", "save_key"])
def test_every_writer_is_atomic(tmp_path, monkeypatch, writer):
    """Fail the final rename: each writer then leaves no file at all (it wrote to a temp file)."""

    def no_rename(src, dst):
        raise Crash("killed just before the rename")

    monkeypatch.setattr(fsw_io.os, "replace", no_rename)
    target = tmp_path / "out.bin"
    calls = {
        "write_json": lambda: write_json(target, {"a": 1}),
        "torch_save": lambda: torch_save(target, {"a": torch.zeros(3)}),
        "save_model": lambda: save_model(target, build_network({"name": "mlp", "hidden": 8}), {"name": "mlp",
                                                                                             "hidden": 8}, {}),
        "save_key": lambda: save_key(target, small_key()),
    }
    with pytest.raises(Crash):
        calls[writer]()
    assert leftovers(tmp_path) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    """mkstemp makes 0600 files; outputs must be readable like any file the process creates."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_json(tmp_path / "r.json", {})
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from fsw.io import atomic_write

    def slow(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"x" * 1_000_000)
            handle.flush()
            print("writing", flush=True)
            time.sleep(120)  # killed here, half-way through its output
            handle.write(b"y" * 1_000_000)

    atomic_write(sys.argv[1], slow)
    """
)


def test_sigkill_inside_write_leaves_no_output(tmp_path):
    target = tmp_path / "model.pt"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not target.exists()
    # Only the hidden temp file of the interrupted write is left; no job reads or expects that name.
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".model.pt.") and partial.name.endswith(".tmp")


WRITES = {("torch", "save"), (None, "write_text"), (None, "write_bytes"), (None, "to_csv"), (None, "savefig"),
          ("json", "dump"), ("np", "save"), ("numpy", "save"), (None, "to_parquet")}
# Log files, which no job reads and Snakemake does not treat as outputs: (module, start of the call).
ALLOWED = {("workflow.py", "open(snakemake.log"), ("launch.py", "open(log_path"), ("worker.py", "open(log")}


def unguarded_writes(path: Path) -> list[str]:
    """Write calls of a module that are not inside a lambda or function handed to atomic_write."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def is_atomic_write(node) -> bool:
        func = getattr(node, "func", None)
        return isinstance(node, ast.Call) and (getattr(func, "id", None) or getattr(func, "attr", None)) == "atomic_write"

    handed_over = {arg.id for node in ast.walk(tree) if is_atomic_write(node) for arg in node.args
                   if isinstance(arg, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        if name == "open" and owner is None:
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            if not (isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")):
                continue
        elif (owner, name) not in WRITES and (None, name) not in WRITES:
            continue
        if any(path.name == module and ast.unparse(node).startswith(call) for module, call in ALLOWED):
            continue
        up, guarded = node, False
        while up in parents:
            up = parents[up]
            if isinstance(up, ast.Lambda) and is_atomic_write(parents.get(up)):
                guarded = True
            if isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef)) and up.name in handed_over:
                guarded = True
        if not guarded:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_every_output_write_in_fsw_goes_through_atomic_write():
    offences = [hit for path in sorted(SRC.rglob("*.py")) if path.name != "io.py" for hit in unguarded_writes(path)]
    assert not offences, "writes that a kill could leave half-done:\n" + "\n".join(offences)


# --------------------------------------------------------------------------- a real SIGKILL of snakemake

HANG_HOOK = textwrap.dedent(
    """
    # Test hook (tests/test_faults.py): when FSW_TEST_HANG_BEFORE_REPLACING is set, the process that
    # is about to rename a temp file onto a path ending so announces it and hangs there, so that
    # the test's SIGKILL lands in the middle of writing a job's outputs.
    import os

    _target = os.environ.get("FSW_TEST_HANG_BEFORE_REPLACING")
    if _target:
        _replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith(_target):
                with open(os.environ["FSW_TEST_HANG_FLAG"], "w") as flag:
                    flag.write(str(os.getpid()))
                import time
                time.sleep(300)
            return _replace(src, dst, *args, **kwargs)

        os.replace = replace
    """
)

MINI_SWEEP = {
    "results": "results",
    "networks": ["mlp"],
    "seeds": [0],
    "eps": [0.1],
    "key_sizes": [20],
    "strategies": ["paper"],
    "reference": {"selection": [], "calibration": []},
    "heldout": [],
    # --configfile merges mappings into config/config.yaml: each default attack is emptied by name.
    "attacks": {name: [] for name in ATTACKS if name != "none"},
    "overrides": {
        "data": TINY_DATA,
        "train": ["trainer.enable_progress_bar=false", "network.epochs=2", "network.arch.hidden=64"],
        "keygen": [],
        "embed": ["trainer.enable_progress_bar=false", "embed.lr=1e-3", "embed.batches_per_epoch=10",
                  "embed.max_epochs=30"],
        "verify": [],
        "report": [],
    },
}


# The targets: one key's chain, train -> keygen -> embed -> verify (marked and unmarked). Not `all`,
# which adds the default sweep's extraction and remote verification.
VERIFY = "results/verify/mlp/s0/eps0.1/l20/paper"
TARGETS = [f"{VERIFY}/marked/none/0.json", f"{VERIFY}/source.json"]


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "mini.yaml"), "--cores", "2", *args, *TARGETS]


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, timeout=timeout,
                          check=False)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A mini sweep (one MLP) started, then SIGKILLed (its whole process group) while the train job is
    renaming its second output into place: model.pt is written, metrics.json is not."""
    workdir = tmp_path_factory.mktemp("faults")
    (workdir / "mini.yaml").write_text(yaml.safe_dump(MINI_SWEEP))
    hook = workdir / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HANG_HOOK)
    flag = workdir / "hanging.pid"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
           "FSW_TEST_HANG_BEFORE_REPLACING": "results/train/owner/mlp/s0/metrics.json",
           "FSW_TEST_HANG_FLAG": str(flag)}
    with open(workdir / "killed.log", "w") as log:
        run = subprocess.Popen(snakemake_command(workdir), env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    hanging = None
    try:
        deadline = time.monotonic() + 600
        while not (flag.exists() and flag.read_text().strip()) and run.poll() is None:
            assert time.monotonic() < deadline, "the train job never reached its write"
            time.sleep(0.2)
        assert run.poll() is None, "snakemake ended before the kill:\n" + (workdir / "killed.log").read_text()[-3000:]
        hanging = int(flag.read_text())
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=60)
        if hanging is not None and alive(hanging):  # not in the group: end it by its id
            os.kill(hanging, signal.SIGKILL)
    time.sleep(0.5)
    return workdir, hanging


@pytest.mark.e2e
def test_sigkill_mid_write_then_rerun_then_nothing_to_do(killed_run):
    workdir, hanging = killed_run
    models = workdir / "results" / "train" / "owner" / "mlp" / "s0"
    assert not alive(hanging), "the killed job's process survived"

    # 1. The kill left no output Snakemake takes as complete.
    assert not (models / "metrics.json").exists()
    partial = [p.name for p in models.iterdir() if p.name.startswith(".metrics.json.")]
    assert partial, "the kill did not land inside the write of metrics.json"
    assert (models / "model.pt").exists()  # written before the kill, but its job did not finish
    assert any((workdir / ".snakemake" / "incomplete").iterdir()), "Snakemake did not mark the job incomplete"
    dry = snakemake(workdir, "-n")
    output = dry.stdout + dry.stderr
    assert dry.returncode != 0 and "incomplete" in output.lower(), output[-3000:]
    assert "results/train/owner/mlp/s0/model.pt" in output, output[-3000:]
    assert not (workdir / "results" / "keygen").exists()  # nothing downstream ran on the incomplete model

    # 2. Rerunning finishes the sweep. A killed Snakemake leaves its lock behind: the documented
    # recovery is `snakemake --unlock`, then a rerun with --rerun-incomplete.
    locked = snakemake(workdir, "--rerun-incomplete")
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    assert snakemake(workdir, "--unlock").returncode == 0
    done = snakemake(workdir, "--rerun-incomplete")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert all((workdir / target).exists() for target in TARGETS)
    metrics = read_json(models / "metrics.json")
    assert metrics["network"] == "mlp"
    _, arch, _ = load_model(models / "model.pt")  # complete, checksum-verified
    assert arch["name"] == "mlp"
    records = sorted((workdir / "results" / "verify").rglob("*.json"))
    assert len(records) == 2 and all(json.loads(p.read_text())["key_size"] == 20 for p in records)

    # 3. A finished sweep reruns as a no-op.
    again = snakemake(workdir, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    # 4. The jobs' logs name the key by hash only.
    key = load_key(workdir / "results" / "keygen" / "mlp" / "s0" / "eps0.1" / "l20" / "paper" / "key.pt")
    logs = {p: p.read_text() for p in (workdir / "results" / "logs").rglob("*.log")}
    assert len(logs) >= 4 and any("verify" in str(p) for p in logs)
    for path, text in logs.items():
        assert not leaked_key_values(text, key), f"{path}: {leaked_key_values(text, key)}"
