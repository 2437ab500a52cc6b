"""The same config and seed give byte-identical model and key files and identical records, on the CPU.

The whole chain train -> keygen -> embed -> verify runs twice from scratch with one config; every
file it writes is compared (model and key files byte for byte, their tensors bit for bit, JSON
records field by field, except wall times).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from fsw import embed, keygen, train, verify
from fsw.io import read_json, save_model
from fsw.key import Key, load_key, save_key
from fsw.networks import build_network
from tests.conftest import tiny

CPU = ["trainer.accelerator=cpu"]


def chain(out: Path, seed: int = 0) -> dict[str, Path]:
    out.mkdir(parents=True)
    train.run(tiny("train", *CPU, "network=mlp", "network.epochs=2", "network.arch.hidden=64", f"seed={seed}",
                   f"model_out={out}/model.pt", f"metrics_out={out}/train.json"))
    keygen.run(tiny("keygen", f"model_in={out}/model.pt", "keygen.eps=0.1", "keygen.size=20", f"seed={seed}",
                  f"key_out={out}/key.pt", f"report_out={out}/keygen.json"))
    embed.run(tiny("embed", *CPU, f"model_in={out}/model.pt", f"key_in={out}/key.pt", "embed.lr=1e-3",
                   "embed.batches_per_epoch=5", "embed.max_epochs=4", f"seed={seed}",
                   f"model_out={out}/marked.pt", f"metrics_out={out}/embed.json"))
    verify.run(tiny("verify", f"model_in={out}/marked.pt", f"key_in={out}/key.pt", f"out={out}/verify.json",
                    "suspect.kind=marked"))
    return {
        "model": out / "model.pt", "key": out / "key.pt", "marked": out / "marked.pt",
        "train": out / "train.json", "keygen": out / "keygen.json", "embed": out / "embed.json",
        "verify": out / "verify.json",
    }


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    return chain(root / "first"), chain(root / "second")


def comparable(record: dict) -> dict:
    """Measured durations (wall_time_s, query_time_s, ...) and, in the recorded config, the paths of
    the files (the two chains work in two folders) are the only fields allowed to differ."""
    config = {k: v for k, v in record["config"].items() if not k.endswith(("_in", "_out", "_dir")) and k != "out"}
    return {**{k: v for k, v in record.items() if not k.endswith("time_s")}, "config": config}


def tensors(path: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    state = payload.get("state_dict", payload)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def assert_bit_identical(a: Path, b: Path) -> None:
    first, second = tensors(a), tensors(b)
    assert first.keys() == second.keys() and first
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert torch.equal(first[name].view(-1).view(torch.uint8), second[name].view(-1).view(torch.uint8)), name


@pytest.mark.parametrize("name", ["model", "marked", "key"])
def test_tensors_are_bit_identical(twice, name):
    first, second = twice
    assert_bit_identical(first[name], second[name])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["model", "marked", "key"])
def test_files_are_byte_identical(twice, name):
    first, second = twice
    assert sha256(first[name]) == sha256(second[name])


def test_saving_the_same_content_twice_gives_the_same_bytes(tmp_path):
    """Every save goes through a temporary file of a random name, which must not reach the file."""
    arch = {"name": "mlp", "hidden": 8}
    torch.manual_seed(0)
    net = build_network(arch)
    key = Key(inputs=torch.rand(4, 1, 28, 28), labels=torch.arange(4), is_true_adversary=torch.arange(4) < 2,
              source_indices=torch.arange(4), eps=0.1, seed=0, meta={"network": "mlp"})
    for run in ("first", "second"):
        save_model(tmp_path / run / "model.pt", net, arch, {"seed": 0})
        save_key(tmp_path / run / "key.pt", key)
    for name in ("model.pt", "key.pt"):
        assert sha256(tmp_path / "first" / name) == sha256(tmp_path / "second" / name), name


def test_key_hash_is_identical(twice):
    first, second = twice
    a, b = load_key(first["key"]), load_key(second["key"])
    assert a.hash == b.hash
    assert read_json(first["keygen"])["key_hash"] == a.hash == read_json(second["keygen"])["key_hash"]
    assert torch.equal(a.source_indices, b.source_indices)


@pytest.mark.parametrize("name", ["train", "keygen", "embed", "verify"])
def test_records_are_identical(twice, name):
    first, second = twice
    a, b = read_json(first[name]), read_json(second[name])
    assert comparable(a) == comparable(b)


def test_another_seed_gives_another_key(twice, tmp_path):
    """Not vacuous: the key does depend on the seed (same model, keygen seed 1)."""
    first, _ = twice
    keygen.run(tiny("keygen", f"model_in={first['model']}", "keygen.eps=0.1", "keygen.size=20", "seed=1",
                  f"key_out={tmp_path}/key.pt", f"report_out={tmp_path}/keygen.json"))
    assert load_key(tmp_path / "key.pt").hash != load_key(first["key"]).hash
