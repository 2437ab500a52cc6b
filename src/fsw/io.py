"""Files shared by the stages: atomic writes, safe loading of untrusted files, provenance."""

from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from fsw import __version__


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Write through `write(tmp_path)` into a temporary file beside `path`, then rename it.

    A crash or kill at any point leaves either the old file or no file, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def torch_save(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def safe_torch_load(path: str | Path, what: str, error: type[Exception]) -> Any:
    """Load a torch file without executing code from it (`weights_only=True`).

    Every failure becomes `error` with a message naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise error(
            f"refusing to load {what} file {path}: it holds objects outside torch's safe allow-list "
            f"(a file that could run code on load); only fsw {what} files are accepted ({exc})"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise error(f"{what} file {path} is truncated or corrupt: {exc}") from exc


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


def save_model(path: str | Path, net: torch.nn.Module, arch: dict, meta: dict) -> Path:
    """A model file: the state dict, what rebuilds the network (`arch`), and metadata/provenance."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    payload = {
        "format": MODEL_FORMAT,
        "arch": dict(arch),
        "state_dict": state,
        "meta": {**meta, **provenance()},
    }
    return torch_save(path, payload)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict, dict]:
    """Rebuild a network from a model file without executing code; returns (net in eval mode, arch, meta)."""
    from fsw.errors import ModelFileError
    from fsw.networks import build_network

    payload = safe_torch_load(path, "model", ModelFileError)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not an fsw model file (expected format {MODEL_FORMAT!r})")
    arch, meta, state = payload.get("arch"), payload.get("meta", {}), payload.get("state_dict")
    if not isinstance(arch, dict) or not isinstance(state, dict):
        raise ModelFileError(f"model file {path} lacks its network description or weights")
    try:
        net = build_network(arch)
    except ModelFileError as exc:
        raise ModelFileError(f"model file {path}: {exc}") from exc
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"model file {path}: the weights do not fit network {arch.get('name')!r} "
            f"(wrong architecture or number of classes): {exc}"
        ) from exc
    return net.eval(), arch, meta
