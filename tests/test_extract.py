"""The extraction attack through the served marked model, on tiny data and tiny surrogates."""

import pytest

from fsw import extract, verify
from fsw.errors import ConfigError
from fsw.io import load_model, read_json
from fsw.oracle.server import create_app, serve_in_thread
from tests.conftest import tiny

QUIET = ["trainer.enable_progress_bar=false", "network.epochs=2"]


@pytest.fixture(scope="module")
def server(marked_mlp):
    with serve_in_thread(create_app(marked_mlp)) as url:
        yield url


def test_extraction_with_augmentation_through_the_api_then_verification(server, mlp_key, tmp_path):
    metrics = extract.run(
        tiny(
            "extract",
            *QUIET,
            f"remote.url={server}",
            "budget=300",
            "augment_rounds=1",
            "network=mlp",
            "network.arch.hidden=32",
            "network.epochs=10",  # 3 batches an epoch: enough steps to learn from 300 labels
            f"model_out={tmp_path}/model.pt",
            f"metrics_out={tmp_path}/metrics.json",
        )
    )
    assert metrics == read_json(tmp_path / "metrics.json")
    # 150 clean attacker images, then their 150 FGSM perturbations.
    assert (metrics["oracle"], metrics["queries"], metrics["train_size"]) == ("remote", 300, 300)
    assert metrics["test_acc"] > 0.3  # well above chance (0.1) after 300 labels
    _, arch, meta = load_model(tmp_path / "model.pt")
    assert (arch["name"], meta["kind"], meta["budget"]) == ("mlp", "extracted", 300)
    record = verify.run(
        tiny(
            "verify",
            f"model_in={tmp_path}/model.pt",
            f"key_in={mlp_key}",
            "suspect.attack=extract",
            "suspect.level=300",
            f"out={tmp_path}/verify.json",
        )
    )
    assert (record["suspect_network"], record["queries"], record["level"]) == ("mlp", 20, 300)


def test_extraction_of_another_architecture_is_limited_by_the_attackers_data(marked_mlp, tmp_path):
    # tiny() gives the attacker 500 images: a budget of 2000 cannot be spent without augmentation.
    metrics = extract.run(
        tiny(
            "extract",
            *QUIET,
            f"victim_in={marked_mlp}",
            "budget=2000",
            "network=cnn",
            "network.epochs=1",
            f"model_out={tmp_path}/model.pt",
            f"metrics_out={tmp_path}/metrics.json",
        )
    )
    assert (metrics["network"], metrics["oracle"], metrics["queries"]) == ("cnn", "local", 500)
    assert load_model(tmp_path / "model.pt")[1]["name"] == "cnn"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["budget=1", "augment_rounds=1", "victim_in=unused.pt"], "leaves nothing"),
        (["budget=100"], "needs the victim"),
    ],
)
def test_extraction_refuses_impossible_settings(overrides, message, tmp_path):
    cfg = tiny(
        "extract", *overrides, f"model_out={tmp_path}/m.pt", f"metrics_out={tmp_path}/m.json"
    )
    with pytest.raises(ConfigError, match=message):
        extract.run(cfg)
