"""A watermark key, the calibration it ships with, and key files (read without executing code)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from fsw.errors import KeyFileError
from fsw.io import torch_bytes, write_together
from fsw.networks import INPUT_SHAPE, NUM_CLASSES
from fsw.untrusted import safe_torch_load
from fsw.validate import MAX_SEED, Rule, choice, integer, record_problems

KEY_FORMAT = "fsw-key/1"
# The metadata fields of a key file that fsw reads back (into verify records).
KEY_META_RULES = {"network": Rule("str"), "model_seed": integer(0, MAX_SEED, optional=True),
                  "strategy": choice("fsw.grid:KEY_STRATEGIES"), "dataset": choice("fsw.validate:DATASETS")}


@dataclass(frozen=True)
class Key:
    """A watermark key: l inputs with the labels a marked model answers. The paper's: the ORIGINAL
    labels, half true, half false adversaries; the other strategies' in fsw.keygen and fsw.schemes."""

    inputs: torch.Tensor  # float32 [l, 1, 28, 28] in [0, 1]
    labels: torch.Tensor  # int64 [l]
    # bool [l]: an unmarked model is expected to answer the item otherwise (the paper: FGSM flipped
    # the source model's prediction)
    is_true_adversary: torch.Tensor
    # int64 [l]: index of each source image in the dataset's training file (its test file for the
    # misclassified strategy)
    source_indices: torch.Tensor
    eps: float
    seed: int
    meta: dict  # network and seed of the source model, dataset, strategy, provenance
    calibration: Calibration | None = None  # the owner's reference models' answers to this key

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def hash(self) -> str:
        return key_hash(self.inputs, self.labels, self.is_true_adversary, self.eps)


def key_hash(inputs: torch.Tensor, labels: torch.Tensor, flags: torch.Tensor, eps: float) -> str:
    """sha256 of the key's content: what a verifier queries and expects back."""
    digest = hashlib.sha256()
    for tensor in (inputs.to(torch.float32), labels.to(torch.int64), flags.to(torch.bool)):
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update(repr(float(eps)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Calibration:
    """How the owner's reference models (never marked, never the held-out population) answer a key:
    `matches[c, i]` is true when model c gives item i the key's label. The decision rules of
    `fsw.stats.decision` fit their null distribution to it, so that one suspect can be judged by
    the key file alone. Linked to its key by the key's hash; `hash` covers all of it."""

    models: tuple[str, ...]  # one id per reference model, e.g. owner/mlp_fgsm/s2
    families: tuple[str, ...]  # the network option each was trained from
    matches: torch.Tensor  # bool [models, l]
    key_hash: str

    @property
    def hash(self) -> str:
        digest = hashlib.sha256(self.key_hash.encode())
        digest.update("\n".join(self.models).encode() + b"|" + "\n".join(self.families).encode() + b"|")
        digest.update(str(tuple(self.matches.shape)).encode())
        digest.update(self.matches.to(torch.bool).contiguous().numpy().tobytes())
        return digest.hexdigest()


def key_payload(key: Key) -> dict:
    """What a key file holds: the key's tensors and settings, and the hash of its content."""
    return {
        "format": KEY_FORMAT,
        "inputs": key.inputs,
        "labels": key.labels,
        "is_true_adversary": key.is_true_adversary,
        "source_indices": key.source_indices,
        "eps": key.eps,
        "seed": key.seed,
        "meta": key.meta,
        "hash": key.hash,
        "calibration": None if key.calibration is None else calibration_payload(key.calibration),
    }


def calibration_payload(calibration: Calibration) -> dict:
    return {"models": list(calibration.models), "families": list(calibration.families),
            "matches": calibration.matches.to(torch.bool), "key_hash": calibration.key_hash,
            "hash": calibration.hash}


def key_bytes(key: Key) -> bytes:
    return torch_bytes(key_payload(key))


def save_key(path: str | Path, key: Key) -> Path:
    return write_together({path: key_bytes(key)})[0]


def load_key(path: str | Path, expected_hash: str | None = None) -> Key:
    """Read a key file without executing code; refuse it if it is empty, malformed or tampered with.

    The content hash is checked against the one recorded in the file and, if given, against
    `expected_hash` (e.g. the `key_hash` of a keygen report or an earlier verify record): the file's
    own record catches corruption, an external record also catches a key rebuilt with a new hash.
    Error messages name the file and the fields at fault, never the key's values.
    """
    payload = safe_torch_load(path, "key", KeyFileError)
    fields = ("inputs", "labels", "is_true_adversary", "source_indices", "eps", "seed", "hash")
    if not isinstance(payload, dict) or payload.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{path} is not an fsw key file (expected format {KEY_FORMAT!r})")
    missing = [name for name in fields if name not in payload]
    if missing:
        raise KeyFileError(f"key file {path} lacks {', '.join(missing)}")
    tensors = {
        "inputs": (torch.float32,),
        "labels": (torch.int64, torch.int32, torch.int16, torch.uint8),
        "is_true_adversary": (torch.bool,),
        "source_indices": (torch.int64, torch.int32),
    }
    for name, dtypes in tensors.items():
        value = payload[name]
        if not isinstance(value, torch.Tensor) or value.dtype not in dtypes or value.dim() == 0:
            what = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
            raise KeyFileError(
                f"key file {path} is malformed: {name} is {what}, expected a {dtypes[0]} tensor"
            )
    eps, seed, recorded, meta = payload["eps"], payload["seed"], payload["hash"], payload.get("meta", {})
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps <= 1.0:
        raise KeyFileError(f"key file {path} is malformed: eps must be a number in (0, 1]")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise KeyFileError(f"key file {path} is malformed: seed must be an integer")
    if not isinstance(recorded, str) or not isinstance(meta, dict):
        raise KeyFileError(f"key file {path} is malformed: its hash must be a string and meta a dict")
    problems = record_problems(meta, KEY_META_RULES, "meta")
    if problems:
        raise KeyFileError(f"key file {path} is malformed: {'; '.join(problems)}")
    n = len(payload["labels"])
    if n == 0:
        raise KeyFileError(f"key file {path} is empty: it holds no key items")
    shapes = {name: tuple(payload[name].shape) for name in tensors}
    if shapes["inputs"] != (n, *INPUT_SHAPE) or shapes["labels"] != (n,) or any(
        shapes[name] != (n,) for name in ("is_true_adversary", "source_indices")
    ):
        raise KeyFileError(
            f"key file {path} does not fit the model: inputs {list(shapes['inputs'])}, labels "
            f"{list(shapes['labels'])}, is_true_adversary {list(shapes['is_true_adversary'])}, "
            f"source_indices {list(shapes['source_indices'])}; fsw networks take inputs of shape "
            f"[l, {', '.join(map(str, INPUT_SHAPE))}] with l labels, flags and source indices"
        )
    labels = payload["labels"].to(torch.int64)
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise KeyFileError(
            f"key file {path} does not fit the model: its labels must be classes 0..{NUM_CLASSES - 1}"
        )
    inputs = payload["inputs"]
    if not torch.isfinite(inputs).all() or inputs.min() < 0 or inputs.max() > 1:
        raise KeyFileError(f"key file {path} is malformed: its inputs must be pixel values in [0, 1]")
    key = Key(
        inputs=inputs,
        labels=labels,
        is_true_adversary=payload["is_true_adversary"],
        source_indices=payload["source_indices"].to(torch.int64),
        eps=float(eps),
        seed=int(seed),
        meta=meta,
    )
    if key.hash != recorded:
        raise KeyFileError(
            f"key file {path} does not match its recorded hash (recorded {recorded[:12]}..., "
            f"content {key.hash[:12]}...): it was modified or corrupted after it was made"
        )
    if expected_hash is not None and key.hash != expected_hash:
        raise KeyFileError(
            f"key file {path} is not the expected key: its hash is {key.hash[:12]}..., the record "
            f"says {str(expected_hash)[:12]}...; it was replaced after the record was made"
        )
    if payload.get("calibration") is None:
        return key
    return Key(**{**key.__dict__, "calibration": load_calibration(path, payload["calibration"], key)})


def load_calibration(path, payload, key: Key) -> Calibration:
    """The calibration of a key file, once it is known to be well-formed and to belong to `key`."""
    if not isinstance(payload, dict):
        raise KeyFileError(f"key file {path} is malformed: its calibration must be a dict")
    models, families, matches = payload.get("models"), payload.get("families"), payload.get("matches")
    key_hash, recorded = payload.get("key_hash"), payload.get("hash")
    if not (isinstance(models, list) and isinstance(families, list) and len(models) == len(families) >= 1
            and all(isinstance(v, str) for v in models + families)):
        raise KeyFileError(f"key file {path} is malformed: its calibration must name one or more "
                           "reference models and their families")
    if not isinstance(matches, torch.Tensor) or matches.dtype != torch.bool \
            or tuple(matches.shape) != (len(models), len(key)):
        raise KeyFileError(f"key file {path} is malformed: the calibration's matches must be a bool "
                           f"tensor of shape [{len(models)}, {len(key)}] (reference models x key items)")
    if key_hash != key.hash:
        raise KeyFileError(
            f"key file {path}: its calibration belongs to another key (key {key.hash[:12]}..., "
            f"calibration made for {str(key_hash)[:12]}...); a calibration decides only for its own key")
    calibration = Calibration(tuple(models), tuple(families), matches, key_hash)
    if calibration.hash != recorded:
        raise KeyFileError(f"key file {path}: its calibration does not match its recorded hash: it was "
                           "modified after keygen wrote it")
    return calibration
