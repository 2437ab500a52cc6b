"""Reading an untrusted model or key file: torch's allow-list unpickler, within limits on how much
memory and time the file can make fsw spend, checked before anything in the file is used."""

from __future__ import annotations

import math
import pickle
import re
import reprlib
import zipfile
from pathlib import Path
from typing import Any

import torch

# The paper's CNN, fsw's largest network, makes a 4.8 MB file; a key of 1000 items makes 3.2 MB.
MAX_FILE_BYTES = 256 * 2**20
# torch stores zip entries uncompressed, so its files unpack to less than their size. Twice the
# size leaves room for a file re-zipped with compression (weights hardly compress) and none for a
# decompression bomb.
MAX_UNPACKED_RATIO = 2
# The plain data beside the tensors. fsw writes a few dozen values (a key's calibration: a few per
# reference model), nested at most three deep.
MAX_DEPTH = 8
MAX_VALUES = 100_000
MAX_TEXT = 1_000_000  # characters of all strings and dict keys together
MAX_INT = 2**63
TENSOR_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
                 torch.int16, torch.int8, torch.uint8, torch.bool)


def safe_torch_load(path: str | Path, what: str, error: type[Exception]) -> Any:
    """Load a torch file without executing code from it (`weights_only=True`), and only if it stays
    within the limits above.

    Every failure becomes `error` with a message naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise error(f"{what} file {path} is empty (0 bytes): truncated or never written")
    if size > MAX_FILE_BYTES:
        raise error(f"{what} file {path} is {size:,} bytes, larger than the {MAX_FILE_BYTES:,} bytes fsw reads")
    unpacked = unpacked_size(path, what, error)
    if unpacked > min(MAX_FILE_BYTES, MAX_UNPACKED_RATIO * size):
        raise error(
            f"{what} file {path} unpacks to {unpacked:,} bytes, {unpacked / size:.0f} times its size "
            f"({size:,} bytes): its zip entries are compressed, which torch never does; refused "
            f"before unpacking anything"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise error(
                f"refusing to load {what} file {path}: it references {unsafe.group(1)}, which is not on "
                f"torch's allow-list of safe types (unpickling arbitrary globals can run code). fsw "
                f"{what} files hold only tensors and plain values, so this file was not written by fsw "
                f"or was tampered with; nothing from it was run."
            ) from None
        raise error(f"{what} file {path} is corrupt or not a torch file: {_torch_reason(exc)}") from None
    except Exception as exc:
        raise error(
            f"{what} file {path} is truncated or corrupt: {type(exc).__name__}: {_torch_reason(exc)}"
        ) from exc
    problem = plain_data_problem(payload)
    if problem:
        raise error(f"{what} file {path} is refused before use: {problem}")
    return payload


def unpacked_size(path: Path, what: str, error: type[Exception]) -> int:
    """The size of a zip file's entries once unpacked, read from its directory (nothing is unpacked).
    0 for a file that is not a zip: torch's older format holds its tensors as they are, and torch.load
    reports a corrupt file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(entry.file_size for entry in archive.infolist())
    except zipfile.BadZipFile:
        return 0
    except (ValueError, EOFError, OSError) as exc:
        raise error(f"{what} file {path} is corrupt: its zip directory cannot be read ({exc})") from None


def plain_data_problem(payload: Any) -> str | None:
    """Why `payload` is not the plain data an fsw file holds, or None. Plain data: dicts with string
    keys, lists and tuples of strings, finite numbers, None and sound tensors, within the limits above.

    Every value counts each time it is reached, as it would for any later use (printing, JSON, a
    copy): shared references and cycles, which pickle stores in a few bytes, count as what they
    expand to, and the walk stops at the first limit.
    """
    values = text = 0
    pending: list[tuple[str, Any, int]] = [("", payload, 0)]
    while pending:
        where, value, depth = pending.pop()
        values += 1
        if isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                return f"{where} is nested more than {MAX_DEPTH} levels deep"
            if values + len(value) > MAX_VALUES:
                return f"it holds more than {MAX_VALUES} values"
            for key, item in value.items() if isinstance(value, dict) else enumerate(value):
                if isinstance(value, dict):
                    if not isinstance(key, str):
                        return f"{where or 'its content'} has a key of type {type(key).__name__}"
                    text += len(key)
                pending.append((f"{where}[{key!r:.40}]" if where else str(key)[:40], item, depth + 1))
        elif isinstance(value, str):
            text += len(value)
        elif isinstance(value, torch.Tensor):
            problem = tensor_problem(value)
            if problem:
                return f"{where} {problem}"
        elif problem := scalar_problem(value):
            return f"{where} {problem}"
        if text > MAX_TEXT:
            return f"its strings hold more than {MAX_TEXT} characters"
    return None


def scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"is an integer beyond 64 bits ({reprlib.repr(value)})" if abs(value) >= MAX_INT else None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value}, not a finite number"
    return f"is {type(value).__name__}, which fsw files never hold"


def tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why a tensor from a file is unsound, or None. Its elements must all be stored in the file: a
    tensor whose strides repeat a small storage can claim any shape."""
    if tensor.layout != torch.strided or tensor.dtype not in TENSOR_DTYPES:
        return f"is a {tensor.layout} tensor of {tensor.dtype}, which fsw files never hold"
    stored = tensor.untyped_storage().nbytes() // tensor.element_size() - tensor.storage_offset()
    if tensor.numel() > stored:
        return (f"claims {tensor.numel():,} elements (shape {list(tensor.shape)}) but its file stores "
                f"{max(stored, 0):,}: its strides repeat stored elements")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        return "holds NaN or infinite values"
    return None


def _torch_reason(exc: Exception) -> str:
    """The informative line of a torch.load error, without torch's advice to load unsafely."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    noise = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")
    kept = [line for line in lines if not line.startswith(noise)]
    reason = kept[0] if kept else lines[0] if lines else repr(exc)
    return reason.split(". ")[0].rstrip(".")[:300]
