"""MNIST as in-memory tensors, split into the owner's data, the attacker's data and the test set."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler, SequentialSampler, TensorDataset

from fsw.errors import DataError

log = logging.getLogger(__name__)

# md5 of the four uncompressed IDX files of the standard MNIST release.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


@dataclass(frozen=True)
class Split:
    """Images in [0, 1] as float32 [N, 1, 28, 28], integer labels [N], and each image's index in
    the MNIST file it came from (so a key can name its source images)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
        return batch_loader(self.x, self.y, batch_size, shuffle, seed)


class EpochShuffle(Sampler):
    """The batches of one epoch: indices 0..size-1 in an order drawn from (seed, epoch) alone.
    Lightning calls `set_epoch` before each epoch, so a training resumed from its checkpoint after
    epoch e sees the very batches an uninterrupted one sees; one generator drawn from epoch after
    epoch would start the resumed training over from epoch 0's order. The order is drawn when the
    first batch is taken, not when iteration starts: Lightning starts a resumed training's
    iteration before it sets the epoch."""

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self):
        # SeedSequence mixes the two numbers into one seed: (seed, epoch) pairs never share an order.
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0])
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(seed))
        yield from order.split(self.batch_size)


def batch_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False,
                 seed: int = 0) -> DataLoader:
    """Batches of in-memory tensors, each gathered with one indexing operation rather than by
    indexing and collating the batch's items one by one (measured: ~9% of an MLP epoch on the CPU);
    shuffled anew each epoch (EpochShuffle) when `shuffle`."""
    dataset = TensorDataset(x, y)
    batches = (EpochShuffle(len(dataset), batch_size, seed) if shuffle
               else BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False))
    # batch_size=None: each batch of indices from the sampler is one dataset[...] call, uncollated.
    # The loader's own generator: each iteration draws a seed for worker processes (none here) from
    # it, rather than from torch's global generator, whose draws would then shift the dropout masks
    # with the moment Lightning starts an iteration, another in a resumed training.
    return DataLoader(dataset, batch_size=None, sampler=batches, generator=torch.Generator())


class _Part:
    """A part of Splits, built from the raw arrays when first read and then kept on the instance."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, splits: Splits | None, owner: type | None = None):
        if splits is None:
            return self
        part = _split(*splits._arrays[self.name], splits._index[self.name])
        splits.__dict__[self.name] = part  # a non-data descriptor: the instance's value wins from now on
        return part


class Splits:
    """MNIST's parts, each built from the raw arrays when first used: a verification reads only the
    test set, and converting the 45k owner images to float would cost it a quarter of a second."""

    owner = _Part()  # the model owner's training data; keys are drawn from it
    val = _Part()  # held out from the owner's data for validation during training
    attacker = _Part()  # disjoint from the owner's data: what a model thief trains with
    test = _Part()  # the official 10k test set

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 index: dict[str, torch.Tensor]):
        self._arrays = {"owner": train, "val": train, "attacker": train, "test": test}
        self._index = index


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _missing_error(raw: Path, cause: Exception | None) -> DataError:
    files = ", ".join(MNIST_MD5)
    missing = [name for name in MNIST_MD5 if not (raw / name).is_file()]
    what = f"missing {', '.join(missing)}" if missing and len(missing) < len(MNIST_MD5) else "not found"
    because = f" (download failed: {cause})" if cause else ""
    return DataError(
        f"MNIST {what} under {raw}{because}. Expected the four uncompressed IDX files {files} in "
        f"that folder. Point fsw at a folder holding MNIST/raw/ with data.root=PATH or the "
        f"FSW_DATA_ROOT environment variable, or allow the download (data.download=true) online."
    )


def check_mnist_files(root: Path) -> None:
    """Fail with a clear error if a raw MNIST file is missing or its md5 differs from the standard."""
    raw = root / "MNIST" / "raw"
    for name, expected in MNIST_MD5.items():
        path = raw / name
        if not path.is_file():
            raise _missing_error(raw, None)
        try:
            actual = _md5(path)
        except OSError as exc:
            raise DataError(f"MNIST file {path} cannot be read: {exc}") from exc
        if actual != expected:
            raise DataError(
                f"MNIST file {path} is corrupt: md5 {actual}, expected {expected}. "
                f"Replace it with the standard uncompressed IDX file."
            )


def load_mnist(root: str | Path, download: bool = True) -> tuple[Split, Split]:
    """The 60k training and 10k test images of MNIST from `root` (downloaded there if absent)."""
    images, labels, test_images, test_labels = _mnist_arrays(root, download)
    return _split(images, labels, torch.arange(len(labels))), _split(test_images, test_labels, torch.arange(len(test_labels)))


def _split(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> Split:
    """The images and labels at `index` of raw uint8 MNIST arrays, as a Split of new tensors."""
    return Split(images[index].unsqueeze(1).to(torch.float32).div_(255.0), labels[index], index)


def _mnist_arrays(root: str | Path, download: bool) -> tuple[torch.Tensor, ...]:
    """MNIST's raw train and test images (uint8) and labels (int64) from `root`, md5-checked."""
    root = Path(root).expanduser()
    raw = root / "MNIST" / "raw"
    if not all((raw / name).is_file() for name in MNIST_MD5):
        if not download:
            raise _missing_error(raw, None)
        log.info("MNIST not found under %s; trying torchvision's download", raw)
        try:
            from torchvision.datasets import MNIST

            MNIST(root, train=True, download=True)
        except Exception as exc:  # any network or disk failure means the same thing to the user
            raise _missing_error(raw, exc) from exc
    stamp = tuple((path.stat().st_size, path.stat().st_mtime_ns) for path in (raw / name for name in MNIST_MD5))
    return _read_checked_mnist(root.resolve(), stamp)


@functools.lru_cache(maxsize=2)
def _read_checked_mnist(root: Path, stamp: tuple) -> tuple[torch.Tensor, ...]:
    """The md5-checked raw arrays, read once per process and folder as long as the files' sizes and
    times (`stamp`) stay the same: a job that runs a stage many times (one verification per suspect
    model, one attack per sweep point) pays ~0.3 s once, not per run. Callers get new tensors."""
    from torchvision.datasets import MNIST

    check_mnist_files(root)
    train, test = MNIST(root, train=True, download=False), MNIST(root, train=False, download=False)
    return train.data, train.targets.to(torch.long), test.data, test.targets.to(torch.long)


def load_splits(cfg) -> Splits:
    """Split MNIST's training set, with a fixed permutation, into attacker, validation and owner parts.

    `cfg` is the Hydra `data` group: root, download, split_seed, attacker_size, val_size and the
    optional limits that shrink each part for quick runs.
    """
    if cfg.name != "mnist":
        raise DataError(f"unknown dataset data.name={cfg.name!r}; fsw supports: mnist")
    images, labels, test_images, test_labels = _mnist_arrays(cfg.root, cfg.download)
    n_attacker, n_val = int(cfg.attacker_size), int(cfg.val_size)
    if n_attacker < 0 or n_val < 0 or n_attacker + n_val >= len(labels):
        raise DataError(
            f"data.attacker_size={n_attacker} and data.val_size={n_val} leave no owner data "
            f"out of {len(labels)} training images"
        )
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(cfg.split_seed)))
    attacker_idx, val_idx, owner_idx = torch.split(order, [n_attacker, n_val, len(labels) - n_attacker - n_val])

    def take(index: torch.Tensor, limit) -> torch.Tensor:
        return index if limit is None else index[: int(limit)]

    return Splits((images, labels), (test_images, test_labels), {
        "owner": take(owner_idx, cfg.limit_owner),
        "val": take(val_idx, cfg.limit_val),
        "attacker": take(attacker_idx, cfg.limit_attacker),
        "test": take(torch.arange(len(test_labels)), cfg.limit_test),
    })
