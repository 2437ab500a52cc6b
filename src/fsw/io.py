"""Files shared by the stages: atomic writes, safe loading of untrusted files, provenance."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from fsw import __version__
from fsw.errors import OutputError
from fsw.untrusted import safe_torch_load
from fsw.validate import COUNT, MAX_SEED, Rule, choice, integer, number, record_problems

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask once, at import (os.umask can only read it by setting it)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Write through `write(tmp_path)` into a temporary file beside `path`, then rename it.

    A crash or kill at any point leaves either the old file or no file, never a half-written one.
    """
    return _write_all({Path(path): write})[0]


def write_together(outputs: Mapping[str | Path, bytes | str]) -> list[Path]:
    """Write each output's content, all or none: a stage's model (or key) and its metrics.

    Every output is written and synced to a temporary file beside it before any is renamed into
    place, so a full disk or another write error leaves the old files (or none), never a model
    without its metrics.
    """
    return _write_all({Path(path): _writer(content) for path, content in outputs.items()})


def _writer(content: bytes | str) -> Callable[[str], None]:
    data = content.encode() if isinstance(content, str) else content
    return lambda tmp: Path(tmp).write_bytes(data)


def _write_all(writers: dict[Path, Callable[[str], None]]) -> list[Path]:
    temporary: dict[Path, str] = {}
    renamed: list[Path] = []
    try:
        for path, write in writers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            # mkstemp makes the file private (0600); give it the mode open() would have given it.
            os.chmod(temporary[path], 0o666 & ~_UMASK)
            write(temporary[path])
            with open(temporary[path], "rb") as handle:
                os.fsync(handle.fileno())
        for path, tmp in temporary.items():
            os.replace(tmp, path)
            renamed.append(path)
    except BaseException as exc:
        for tmp in temporary.values():
            Path(tmp).unlink(missing_ok=True)
        for done in renamed:  # a rename failed after others: take those back, so that none is new
            done.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _output_error(path, exc, others=[p for p in writers if p != path]) from exc
        raise
    return list(writers)


def _output_error(path: Path, exc: OSError, others: list[Path]) -> OutputError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    reason = "no space left on the device (or over the disk quota)" if full else exc.strerror or str(exc)
    unwritten = f"none of {', '.join(map(str, [path, *others]))} was" if others else "it was not"
    advice = ": free some space, then rerun" if full else ""
    return OutputError(f"cannot write {path}: {reason}; {unwritten} written{advice}")


def write_json(path: str | Path, obj: Any) -> Path:
    return write_together({path: json_text(obj)})[0]


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def torch_bytes(obj: Any) -> bytes:
    """What torch.save writes for `obj`, made in memory. Saved to a path, torch names the folder inside
    its zip archive after the file, here a temporary file of random name, so equal content would give
    different files; saved to a buffer, the folder is always "archive"."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_save(path: str | Path, obj: Any) -> Path:
    return write_together({path: torch_bytes(obj)})[0]


@functools.cache
def git_commit() -> str:
    """The commit of the fsw checkout, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def provenance() -> dict[str, str]:
    return {"fsw_version": __version__, "git_commit": git_commit()}


MODEL_FORMAT = "fsw-model/1"
# The metadata fields of a model file that fsw reads back (to name, seed and describe models).
MODEL_META_RULES = {"network": Rule("str"), "seed": integer(0, MAX_SEED, optional=True),
                    "split": choice("fsw.validate:TRAINING_SPLITS"), "test_acc": number(0, 1), "test_size": COUNT,
                    "dataset": choice("fsw.validate:DATASETS")}


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict (names, dtypes, shapes and bytes): torch does not checksum what it reads,
    so without it a flipped byte in a weight would load silently."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_bytes(net: torch.nn.Module, arch: dict, meta: dict) -> bytes:
    """A model file: the state dict, what rebuilds the network (`arch`), metadata/provenance, and
    the state dict's sha256 (checked on load)."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return torch_bytes({
        "format": MODEL_FORMAT,
        "arch": dict(arch),
        "state_dict": state,
        "state_hash": state_hash(state),
        "meta": {**meta, **provenance()},
    })


def save_model(path: str | Path, net: torch.nn.Module, arch: dict, meta: dict) -> Path:
    return write_together({path: model_bytes(net, arch, meta)})[0]


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict, dict]:
    """Rebuild a network from a model file without executing code; returns (net in eval mode, arch, meta).

    The file is untrusted: it is unpickled with torch's allow-list only and within the limits of
    `fsw.untrusted` (sizes, finite values), its metadata and `arch` are checked field by field, its
    weights against their recorded sha256 (when the file has one), and their names, shapes and
    dtypes against the network its `arch` describes, built on the meta device first (so a forged
    `arch` cannot make us allocate a huge network) before the real one is built.
    """
    from fsw.errors import ModelFileError
    from fsw.networks import NUM_CLASSES, build_network

    payload = safe_torch_load(path, "model", ModelFileError)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not an fsw model file (expected format {MODEL_FORMAT!r})")
    arch, meta, state = payload.get("arch"), payload.get("meta", {}), payload.get("state_dict")
    if not isinstance(arch, dict) or not isinstance(state, dict) or not isinstance(meta, dict):
        raise ModelFileError(f"model file {path} lacks its network description, weights or metadata")
    bad = [str(name) for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad or not state:
        raise ModelFileError(
            f"model file {path} is malformed: "
            + (f"weights {', '.join(bad[:5])} are not tensors" if bad else "it holds no weights")
        )
    problems = record_problems(meta, MODEL_META_RULES, "meta")
    if problems:
        raise ModelFileError(f"model file {path} is malformed: {'; '.join(problems)}")
    recorded = payload.get("state_hash")
    if recorded is not None and recorded != state_hash(state):
        raise ModelFileError(
            f"model file {path} is corrupt: its weights do not match the sha256 recorded when it was "
            f"saved (recorded {str(recorded)[:12]}..., content {state_hash(state)[:12]}...)"
        )
    try:
        with torch.device("meta"):
            expected = {k: (tuple(v.shape), v.dtype) for k, v in build_network(arch).state_dict().items()}
    except ModelFileError as exc:
        raise ModelFileError(f"model file {path}: {exc}") from None
    name = arch.get("name")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"model file {path}: its weights are not those of network {name!r} (wrong architecture): "
            f"missing {', '.join(missing[:5]) or 'none'}; unexpected {', '.join(unexpected[:5]) or 'none'}"
        )
    wrong = {k: (tuple(state[k].shape), shape) for k, (shape, _) in expected.items() if tuple(state[k].shape) != shape}
    classes = state["classifier.weight"].shape[:1] if "classifier.weight" in expected else None
    if classes and classes[0] != NUM_CLASSES:
        raise ModelFileError(
            f"model file {path}: wrong number of classes: its classifier has {classes[0]} outputs, "
            f"fsw networks classify the {NUM_CLASSES} classes of its datasets"
        )
    if wrong:
        shown = "; ".join(f"{k} is {got}, {name!r} needs {want}" for k, (got, want) in list(wrong.items())[:3])
        raise ModelFileError(
            f"model file {path}: its weights do not fit network {name!r} as described by its arch "
            f"{arch} (wrong architecture or hyper-parameters): {shown}"
        )
    # load_state_dict would convert other dtypes silently.
    converted = [f"{k} is {state[k].dtype}, {name!r} needs {dtype}" for k, (_, dtype) in expected.items()
                 if state[k].dtype != dtype]
    if converted:
        raise ModelFileError(f"model file {path}: its weights are of the wrong type: {'; '.join(converted[:3])}")
    net = build_network(arch)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"model file {path}: the weights do not fit network {name!r}: {exc}") from None
    return net.eval(), arch, meta
