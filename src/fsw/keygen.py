"""Stage `keygen`: FGSM key generation, the Key it produces, and key files."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from fsw.config import setup_run
from fsw.data import load_splits
from fsw.errors import KeyFileError, KeygenError
from fsw.inference import INFERENCE_BATCH, device_of, predict
from fsw.io import load_model, provenance, safe_torch_load, torch_save, write_json
from fsw.networks import INPUT_SHAPE, NUM_CLASSES

log = logging.getLogger(__name__)

KEY_FORMAT = "fsw-key/1"


@dataclass(frozen=True)
class Key:
    """A watermark key: l inputs with their ORIGINAL labels; half true, half false adversaries."""

    inputs: torch.Tensor  # float32 [l, 1, 28, 28] in [0, 1]
    labels: torch.Tensor  # int64 [l]
    is_true_adversary: torch.Tensor  # bool [l]: FGSM flipped the source model's prediction
    source_indices: torch.Tensor  # int64 [l]: index of each source image in the MNIST training file
    eps: float
    seed: int
    meta: dict  # network and seed of the source model, provenance

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


def fgsm(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """x' = clip(x + eps * sign(grad_x CE(net(x), y)), 0, 1), with the network in eval mode."""
    net.eval()
    device = device_of(net)
    x = x.to(device).clone().requires_grad_(True)
    loss = F.cross_entropy(net(x), y.to(device))
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp_(0.0, 1.0).detach().cpu()


@dataclass(frozen=True)
class Candidates:
    """FGSM applied to a pool of images; which ones the model got right and which FGSM flipped."""

    x_adv: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    correct: torch.Tensor  # the clean image is classified correctly
    flipped: torch.Tensor  # ... and its adversarial version is not


def find_candidates(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, eps: float,
    batch_size: int = INFERENCE_BATCH,
) -> Candidates:
    parts = []
    for xb, yb, ib in zip(x.split(batch_size), y.split(batch_size), index.split(batch_size)):
        correct = predict(net, xb) == yb
        x_adv = fgsm(net, xb, yb, eps)
        flipped = correct & (predict(net, x_adv) != yb)
        parts.append((x_adv, yb, ib, correct, flipped))
    return Candidates(*(torch.cat(column) for column in zip(*parts)))


def generate_key(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    *,
    size: int,
    eps: float,
    seed: int,
    pool_size: int,
    max_pool: int | None = None,
    meta: dict | None = None,
) -> tuple[Key, dict]:
    """Draw a key of `size` items (size/2 true and size/2 false adversaries) from images `x`.

    The pool of candidate images starts at `pool_size` random images and doubles until it holds
    enough of both kinds or reaches `max_pool`; then size/2 of each kind are drawn at random.
    """
    if size <= 0 or size % 2:
        raise KeygenError(f"key size must be a positive even number, got {size}")
    if not 0.0 < eps <= 1.0:
        raise KeygenError(f"eps must be in (0, 1], got {eps}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    limit = len(y) if max_pool is None else min(int(max_pool), len(y))
    half = size // 2
    chunks: list[Candidates] = []
    pool = 0
    target = min(pool_size, limit)
    while True:
        new = order[pool:target]
        chunks.append(find_candidates(net, x[new], y[new], index[new], eps))
        pool = target
        flipped = torch.cat([c.flipped for c in chunks])
        kept = torch.cat([c.correct & ~c.flipped for c in chunks])
        n_true, n_false = int(flipped.sum()), int(kept.sum())
        log.info("pool %d: %d true and %d false adversaries", pool, n_true, n_false)
        if (n_true >= half and n_false >= half) or pool >= limit:
            break
        target = min(2 * pool, limit)
    diagnostics = {
        "pool_size": pool,
        "correct": int(torch.cat([c.correct for c in chunks]).sum()),
        "true_adversaries_found": n_true,
        "false_adversaries_found": n_false,
        "eps": eps,
        "key_size": size,
    }
    if n_true < half or n_false < half:
        raise KeygenError(
            f"not enough adversaries for a key of {size} at eps={eps}: a pool of {pool} images gave "
            f"{n_true} true and {n_false} false adversaries, {half} of each are needed; "
            f"try another eps, a smaller key or a larger keygen.max_pool"
        )
    x_adv, labels, source = (torch.cat(col) for col in zip(*((c.x_adv, c.y, c.index) for c in chunks)))

    def draw(mask: torch.Tensor) -> torch.Tensor:
        where = mask.nonzero().squeeze(1)
        return where[torch.randperm(len(where), generator=generator)[:half]]

    chosen = torch.cat([draw(flipped), draw(kept)])
    chosen = chosen[torch.randperm(len(chosen), generator=generator)]  # true/false not in blocks
    key = Key(
        inputs=x_adv[chosen].contiguous(),
        labels=labels[chosen].contiguous(),
        is_true_adversary=flipped[chosen].contiguous(),
        source_indices=source[chosen].contiguous(),
        eps=float(eps),
        seed=int(seed),
        meta=dict(meta or {}),
    )
    diagnostics["key_hash"] = key.hash
    return key, diagnostics


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
    }


def save_key(path: str | Path, key: Key) -> Path:
    return torch_save(path, key_payload(key))


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
    return key


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    net, arch, meta = load_model(cfg.model_in)
    owner = load_splits(cfg.data).owner
    key, diagnostics = generate_key(
        net,
        owner.x,
        owner.y,
        owner.index,
        size=int(cfg.keygen.size),
        eps=float(cfg.keygen.eps),
        seed=int(cfg.seed),
        pool_size=int(cfg.keygen.pool_size),
        max_pool=cfg.keygen.max_pool,
        meta={"network": arch["name"], "model_seed": meta.get("seed"), **provenance()},
    )
    diagnostics["network"] = arch["name"]
    diagnostics["wall_time_s"] = round(time.perf_counter() - started, 3)
    save_key(cfg.key_out, key)
    write_json(cfg.report_out, diagnostics)
    return diagnostics
