"""Shared fixtures: the real MNIST data root, tiny stage configs, and a small trained model and key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsw.data import load_dataset
from fsw.errors import DataError
from fsw.stages import compose

REPO = Path(__file__).resolve().parents[1]

# Tiny data for every stage test: a few thousand real MNIST images.
TINY_DATA = ["data.limit_owner=2000", "data.limit_val=200", "data.limit_attacker=500", "data.limit_test=500"]
# The least test accuracy of the MLP trained for 5 epochs on TINY_DATA, per dataset (data.name): the
# recipes are MNIST's, and Fashion-MNIST is harder (measured: 0.92 on MNIST, 0.81 on Fashion-MNIST).
TINY_MLP_FLOOR = {"mnist": 0.8, "fashion": 0.7}


@pytest.fixture(scope="session", autouse=True)
def data_root() -> Path:
    """The MNIST data root: FSW_DATA_ROOT, else ./data of the checkout (as for the Makefile);
    downloaded there once when absent and online."""
    root = Path(os.environ.get("FSW_DATA_ROOT", REPO / "data"))
    try:
        load_dataset(root)
    except DataError as error:
        pytest.exit(f"{error}", returncode=2)
    os.environ["FSW_DATA_ROOT"] = str(root)
    return root


def tiny(stage: str, *overrides: str):
    """A stage's config shrunk to tiny data and quiet, single-threaded training."""
    extra = list(TINY_DATA) if stage != "report" else []
    if stage in ("train", "embed"):
        extra += ["trainer.enable_progress_bar=false"]
    if stage != "report":
        extra += ["threads=1"]
    return compose(stage, extra + list(overrides))


@pytest.fixture(scope="session")
def trained_mlp(tmp_path_factory) -> Path:
    """The paper's MLP trained for 5 epochs on 2000 images (about 90% test accuracy)."""
    from fsw import train

    out = tmp_path_factory.mktemp("mlp")
    train.run(tiny("train", "network=mlp", "network.epochs=5",
                   f"model_out={out}/model.pt", f"metrics_out={out}/metrics.json"))
    return out / "model.pt"


@pytest.fixture(scope="session")
def reference_models(tmp_path_factory) -> list[Path]:
    """Four small unmarked models of two families (linear, a narrow MLP): a key's calibration."""
    from fsw import train

    paths = []
    for network in ("linear", "mlp_small"):
        for seed in (2, 3):
            out = tmp_path_factory.mktemp(f"{network}{seed}")
            train.run(tiny("train", f"network={network}", "network.epochs=2", f"seed={seed}",
                           f"model_out={out}/model.pt", f"metrics_out={out}/metrics.json"))
            paths.append(out / "model.pt")
    return paths


@pytest.fixture(scope="session")
def mlp_key(trained_mlp, reference_models, tmp_path_factory) -> Path:
    """A transfer-strategy key of 20 items made from the MLP: selected against two of the reference
    models, calibrated on the other two."""
    from fsw import keygen

    out = tmp_path_factory.mktemp("key")
    selection, calibration = reference_models[0::2], reference_models[1::2]
    keygen.run(tiny("keygen", f"model_in={trained_mlp}", "keygen.eps=0.1", "keygen.size=20", "keygen.strategy=transfer",
                    f"selection_in=[{','.join(map(str, selection))}]",
                    f"calibration_in=[{','.join(map(str, calibration))}]",
                    f"key_out={out}/key.pt", f"report_out={out}/keygen.json"))
    return out / "key.pt"


@pytest.fixture(scope="session")
def marked_mlp(trained_mlp, mlp_key, tmp_path_factory) -> Path:
    from fsw import embed

    out = tmp_path_factory.mktemp("marked")
    embed.run(tiny("embed", f"model_in={trained_mlp}", f"key_in={mlp_key}", "embed.lr=1e-3",
                   "embed.batches_per_epoch=10", f"model_out={out}/model.pt",
                   f"metrics_out={out}/metrics.json"))
    return out / "model.pt"
