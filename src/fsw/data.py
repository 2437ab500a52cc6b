"""MNIST and Fashion-MNIST as in-memory tensors, split into the owner's data, the attacker's data and
the test set."""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler, SequentialSampler, TensorDataset

from fsw.errors import DataError
from fsw.validate import DATASETS

log = logging.getLogger(__name__)

# md5 of the four uncompressed IDX files of each dataset's standard release, by data.name; the
# dataset's folder under the data root is fsw.validate.DATASETS's. A file may also be stored
# gzipped (NAME.gz, as both datasets are distributed); it is checked and read uncompressed.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
MD5 = {"mnist": MNIST_MD5, "fashion": FASHION_MNIST_MD5}
# Where a system package installs a dataset's files (gzipped), for the error message of a missing one.
PACKAGED = {"fashion": ("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist")}


@dataclass(frozen=True)
class Split:
    """Images in [0, 1] as float32 [N, 1, 28, 28], integer labels [N], and each image's index in
    the dataset's file it came from (so a key can name its source images)."""

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
    """A dataset's parts, each built from the raw arrays when first used: a verification reads only the
    test set, and converting the 45k owner images to float would cost it a quarter of a second."""

    owner = _Part()  # the model owner's training data; keys are drawn from it
    val = _Part()  # held out from the owner's data for validation during training
    attacker = _Part()  # disjoint from the owner's data: what a model thief trains with
    test = _Part()  # the official 10k test set

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 index: dict[str, torch.Tensor]):
        self._arrays = {"owner": train, "val": train, "attacker": train, "test": test}
        self._index = index


def _found(raw: Path, name: str) -> dict[str, Path | None]:
    """Each IDX file of dataset `name` in the folder `raw`: NAME, else NAME.gz, else None."""
    return {file: next((path for path in (raw / file, raw / f"{file}.gz") if path.is_file()), None)
            for file in MD5[name]}


def _missing_error(raw: Path, name: str, cause: Exception | None) -> DataError:
    found = _found(raw, name)
    missing = [file for file, path in found.items() if path is None]
    what = f"missing {', '.join(missing)}" if len(missing) < len(found) else "not found"
    because = f" (download failed: {cause})" if cause else ""
    package = PACKAGED.get(name)
    linked = (f", link the files of Debian's package {package[0]} there (ln -s {package[1]} {raw})"
              if package else "")
    return DataError(
        f"{DATASETS[name]} {what} under {raw}{because}. Expected the four IDX files {', '.join(found)} "
        f"in that folder, uncompressed or gzipped (NAME.gz). Point fsw at a folder holding "
        f"{DATASETS[name]}/raw/ with data.root=PATH or the FSW_DATA_ROOT environment variable{linked}, "
        f"or allow the download (data.download=true) online."
    )


def read_files(root: str | Path, name: str = "mnist") -> dict[str, bytes]:
    """The uncompressed bytes of each IDX file of dataset `name` under `root` (<root>/<folder>/raw/),
    each md5-checked: DataError naming the file, the expected md5 and what to do if one is missing,
    unreadable or not the standard file."""
    raw = Path(root).expanduser() / DATASETS[name] / "raw"
    contents = {}
    for file, path in _found(raw, name).items():
        if path is None:
            raise _missing_error(raw, name, None)
        expected = MD5[name][file]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{DATASETS[name]} file {path} cannot be read: {exc}") from exc
        if path.suffix == ".gz":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error):  # not gzip, truncated or damaged
                data = None
        actual = None if data is None else hashlib.md5(data).hexdigest()
        if actual != expected:
            found = "it does not decompress" if data is None else f"md5 {actual}"
            raise DataError(
                f"{DATASETS[name]} file {path} is corrupt: {found}, expected md5 {expected} "
                f"(of the uncompressed file). Replace it with the standard IDX file "
                f"(uncompressed, or gzipped as {file}.gz), or delete it and allow the download "
                f"(data.download=true) online."
            )
        contents[file] = data
    return contents


def _idx(data: bytes) -> torch.Tensor:
    """The uint8 array of an md5-checked IDX file: a 4-byte magic number whose last byte is the
    number of dimensions, each dimension's size as a big-endian 32-bit integer, then the values."""
    dims = data[3]
    shape = np.frombuffer(data, dtype=">u4", count=dims, offset=4).tolist()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * dims).view(shape)


def load_dataset(root: str | Path, name: str = "mnist", download: bool = True) -> tuple[Split, Split]:
    """The 60k training and 10k test images of dataset `name` from `root` (downloaded there if absent)."""
    images, labels, test_images, test_labels = _arrays(root, name, download)
    return _split(images, labels, torch.arange(len(labels))), _split(test_images, test_labels, torch.arange(len(test_labels)))


def _split(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> Split:
    """The images and labels at `index` of raw uint8 arrays, as a Split of new tensors."""
    return Split(images[index].unsqueeze(1).to(torch.float32).div_(255.0), labels[index], index)


def _arrays(root: str | Path, name: str, download: bool) -> tuple[torch.Tensor, ...]:
    """The raw train and test images (uint8) and labels (int64) of dataset `name` from `root`,
    md5-checked; torchvision's download of the dataset when a file is absent and `download`."""
    root = Path(root).expanduser()
    raw = root / DATASETS[name] / "raw"
    if None in _found(raw, name).values():
        if not download:
            raise _missing_error(raw, name, None)
        log.info("%s not found under %s; trying torchvision's download", DATASETS[name], raw)
        try:
            import torchvision.datasets

            getattr(torchvision.datasets, DATASETS[name])(root, train=True, download=True)
        except Exception as exc:  # any network or disk failure means the same thing to the user
            raise _missing_error(raw, name, exc) from exc
    stamp = tuple((str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
                  for path in _found(raw, name).values() if path is not None)
    return _read_checked(root.resolve(), name, stamp)


@functools.lru_cache(maxsize=2)
def _read_checked(root: Path, name: str, stamp: tuple) -> tuple[torch.Tensor, ...]:
    """The md5-checked raw arrays, read once per process, folder and dataset as long as the files
    (`stamp`: their paths, sizes and times) stay the same: a job that runs a stage many times (one
    verification per suspect model, one attack per sweep point) pays ~0.3 s once, not per run.
    Callers get new tensors."""
    files = read_files(root, name)
    return (_idx(files["train-images-idx3-ubyte"]), _idx(files["train-labels-idx1-ubyte"]).long(),
            _idx(files["t10k-images-idx3-ubyte"]), _idx(files["t10k-labels-idx1-ubyte"]).long())


def dataset_of(meta: Mapping) -> str:
    """The dataset (data.name) a model or key file was made with, from its metadata; files made
    before fsw recorded it are MNIST's."""
    return meta.get("dataset", "mnist")


def check_same_dataset(name: str, files: Mapping[str, Mapping]) -> None:
    """Refuse the model and key files `files` (what each is -> its metadata) made with another
    dataset than `name`, the stage's data.name: a key's images, a model's classes and the test set
    a stage measures with belong to one dataset, so one of another would only give wrong numbers."""
    other = {what: dataset_of(meta) for what, meta in files.items() if dataset_of(meta) != name}
    if other:
        made = "; ".join(f"{what} was made with data={dataset}" for what, dataset in other.items())
        raise DataError(
            f"datasets do not match: this stage reads data={name}, but {made}. fsw never mixes "
            f"datasets: run the stage with the files' data option, or give it files made with "
            f"data={name}."
        )


def load_splits(cfg) -> Splits:
    """Split a dataset's training set, with a fixed permutation, into attacker, validation and owner parts.

    `cfg` is the Hydra `data` group: name, root, download, split_seed, attacker_size, val_size and
    the optional limits that shrink each part for quick runs.
    """
    if cfg.name not in MD5:
        raise DataError(f"unknown dataset data.name={cfg.name!r}; fsw supports: {', '.join(MD5)}")
    images, labels, test_images, test_labels = _arrays(cfg.root, cfg.name, cfg.download)
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
