"""A data root with missing or corrupted MNIST files fails with a clear error naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fsw.data import MNIST_MD5, load_dataset, load_splits, read_files
from fsw.errors import DataError
from tests.conftest import tiny

SMALL = "t10k-labels-idx1-ubyte"  # 10 kB: the file the tests copy and damage


def data_copy(data_root: Path, tmp_path: Path, copied: str = SMALL) -> Path:
    """A data root in tmp_path: `copied` is a real copy (safe to damage), the other files are symlinks."""
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_MD5:
        source = data_root / "MNIST" / "raw" / name
        if name == copied:
            shutil.copyfile(source, raw / name)
        else:
            (raw / name).symlink_to(source)
    return tmp_path / "root"


def test_the_copy_is_valid(data_root, tmp_path):
    root = data_copy(data_root, tmp_path)
    read_files(root)
    train, test = load_dataset(root, download=False)
    assert len(train) == 60_000 and len(test) == 10_000


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def append(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0")


@pytest.mark.parametrize("damage", [flip_a_byte, truncate, append], ids=lambda f: f.__name__)
def test_corrupted_file_md5_mismatch(data_root, tmp_path, damage):
    root = data_copy(data_root, tmp_path)
    path = root / "MNIST" / "raw" / SMALL
    damage(path)
    for load in (lambda: read_files(root), lambda: load_dataset(root, download=False),
                 lambda: load_dataset(root, download=True)):  # present but corrupt: never downloaded over
        with pytest.raises(DataError) as info:
            load()
        message = str(info.value)
        assert str(path) in message and "corrupt" in message and MNIST_MD5[SMALL] in message, message


@pytest.mark.parametrize("missing", list(MNIST_MD5))
def test_missing_file_is_named(data_root, tmp_path, missing):
    root = data_copy(data_root, tmp_path)
    (root / "MNIST" / "raw" / missing).unlink()
    with pytest.raises(DataError) as info:
        load_dataset(root, download=False)
    message = str(info.value)
    assert f"missing {missing}" in message and str(root / "MNIST" / "raw") in message, message
    with pytest.raises(DataError, match=f"missing {missing}"):
        read_files(root)


def test_empty_data_root(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "nothing-here", download=False)
    assert "MNIST not found under" in str(info.value) and "FSW_DATA_ROOT" in str(info.value)


def test_unreadable_file(data_root, tmp_path):
    root = data_copy(data_root, tmp_path)
    path = root / "MNIST" / "raw" / SMALL
    path.unlink()
    path.mkdir()  # a folder where the file should be: present by name, unreadable as a file
    with pytest.raises(DataError) as info:
        read_files(root)
    assert f"missing {SMALL}" in str(info.value)


def test_a_stage_reports_the_corrupt_file(data_root, tmp_path):
    """Through a stage's data config (data.root), as the workflow runs it."""
    root = data_copy(data_root, tmp_path)
    flip_a_byte(root / "MNIST" / "raw" / SMALL)
    cfg = tiny("verify", "model_in=m.pt", "key_in=k.pt", "out=o.json", f"data.root={root}", "data.download=false")
    with pytest.raises(DataError, match=f"{SMALL} is corrupt"):
        load_splits(cfg.data)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batch_loader_gives_the_item_by_item_loaders_batches(shuffle):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from fsw.data import batch_loader

    x, y = torch.rand(70, 1, 28, 28), torch.randint(0, 10, (70,))
    loader = batch_loader(x, y, 16, shuffle=shuffle, seed=3)
    order = torch.cat([torch.as_tensor(batch) for batch in loader.sampler]).tolist()
    assert sorted(order) == list(range(70)) and (order != list(range(70))) is shuffle
    reference = list(DataLoader(TensorDataset(x, y), batch_size=16, sampler=order))
    ours = list(loader)
    assert len(ours) == len(reference) == 5  # the last batch is the 6 left over
    for (xb, yb), (xr, yr) in zip(ours, reference):
        assert torch.equal(xb, xr) and torch.equal(yb, yr)
    if shuffle:  # another seed, another order
        assert not torch.equal(next(iter(batch_loader(x, y, 16, True, seed=4)))[1], ours[0][1])


def test_an_epochs_shuffled_batches_depend_on_the_seed_and_the_epoch_alone():
    """What a resumed training needs: a fresh loader set to epoch e gives epoch e's batches."""
    import torch

    from fsw.data import batch_loader

    x, y = torch.rand(50, 1, 28, 28), torch.arange(50)

    def labels_of_epoch(loader, epoch: int) -> list[list[int]]:
        loader.sampler.set_epoch(epoch)  # as Lightning does before each epoch
        return [yb.tolist() for _, yb in loader]

    running = batch_loader(x, y, 8, shuffle=True, seed=3)
    epochs = [labels_of_epoch(running, epoch) for epoch in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    assert labels_of_epoch(batch_loader(x, y, 8, shuffle=True, seed=3), 2) == epochs[2]
    assert labels_of_epoch(batch_loader(x, y, 8, shuffle=True, seed=4), 2) != epochs[2]
    # A resumed Lightning training starts iterating before it sets the epoch.
    resumed = batch_loader(x, y, 8, shuffle=True, seed=3)
    batches = iter(resumed)
    resumed.sampler.set_epoch(2)
    assert [yb.tolist() for _, yb in batches] == epochs[2]


def test_mnist_is_read_once_per_folder_and_reread_when_a_file_changes(data_root, tmp_path):
    from fsw.data import _read_checked

    root = data_copy(data_root, tmp_path)
    _read_checked.cache_clear()
    first, _ = load_dataset(root, download=False)
    first.x.zero_()  # a stage's in-place change must not reach the next load
    second, _ = load_dataset(root, download=False)
    assert _read_checked.cache_info().hits == 1 and second.x.max() == 1.0
    flip_a_byte(root / "MNIST" / "raw" / SMALL)  # a new size or time: checked again, and refused
    with pytest.raises(DataError, match="corrupt"):
        load_dataset(root, download=False)


def test_splits_are_disjoint_sized_and_fixed_by_the_split_seed():
    import torch

    cfg = tiny("train").data
    splits = load_splits(cfg)
    parts = {name: getattr(splits, name) for name in ("owner", "val", "attacker")}
    assert [len(part) for part in parts.values()] == [2000, 200, 500] and len(splits.test) == 500
    indices = [set(part.index.tolist()) for part in parts.values()]
    assert sum(map(len, indices)) == len(set().union(*indices))  # no training image in two parts
    train, test = load_dataset(cfg.root, download=False)
    for part in [*parts.values(), splits.test]:
        source = test if part is splits.test else train
        assert torch.equal(part.x, source.x[part.index]) and torch.equal(part.y, source.y[part.index])
    again = load_splits(cfg)
    assert torch.equal(again.owner.index, splits.owner.index) and again.owner.x is not splits.owner.x


def test_a_split_is_built_when_first_read_and_then_kept():
    splits = load_splits(tiny("verify").data)
    assert "test" not in vars(splits) and "owner" not in vars(splits)
    test = splits.test
    assert splits.test is test and "owner" not in vars(splits)  # reading the test set built nothing else
