"""The ownership schemes beside the paper's (fsw.schemes), each a key strategy: their keys on tiny
real data, the embed stage (a backdoor is stitched, a fingerprint's source passed on unchanged), and
a verification that tells the marked model from an unmarked one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fsw import embed, keygen, verify
from fsw.data import load_dataset
from fsw.grid import KEY_STRATEGIES
from fsw.inference import predict
from fsw.io import load_model, read_json, state_hash
from fsw.key import load_key
from tests.conftest import REPO, tiny

SCHEMES = ("backdoor", "ipguard", "conferrable", "misclassified")
EPS = 0.1
SIZE = 20
# Tiny searches: a few hundred images, two surrogates of one epoch; the misclassified key asks for
# more items than the source gets wrong among the 500 tiny test images, so it comes out smaller.
SETTINGS = {
    "backdoor": ["keygen.backdoor.patch=5"],
    "ipguard": ["keygen.ipguard.scan_size=200"],
    "conferrable": ["keygen.conferrable.scan_size=300", "keygen.conferrable.surrogates=2",
                    "keygen.conferrable.surrogate_size=1000", "keygen.conferrable.surrogate_epochs=1"],
    "misclassified": ["keygen.size=100"],
}


def make_key(strategy: str, source: Path, references: list[Path], out: Path, *extra: str) -> Path:
    """keygen.run of one scheme: selected against the first model of each reference family,
    calibrated on the second."""
    keygen.run(tiny("keygen", f"model_in={source}", f"keygen.eps={EPS}", f"keygen.size={SIZE}",
                    f"keygen.strategy={strategy}", *SETTINGS[strategy],
                    f"selection_in=[{','.join(map(str, references[0::2]))}]",
                    f"calibration_in=[{','.join(map(str, references[1::2]))}]",
                    f"key_out={out}/key.pt", f"report_out={out}/keygen.json", *extra))
    return out / "key.pt"


@pytest.fixture(scope="module")
def keys(trained_mlp, reference_models, tmp_path_factory) -> dict[str, Path]:
    return {strategy: make_key(strategy, trained_mlp, reference_models, tmp_path_factory.mktemp(strategy))
            for strategy in SCHEMES}


@pytest.fixture(scope="module")
def marked(trained_mlp, keys, tmp_path_factory) -> dict[str, Path]:
    """Each scheme's marked model, as the embed stage makes it."""
    models = {}
    for strategy, key in keys.items():
        out = tmp_path_factory.mktemp(f"marked_{strategy}")
        embed.run(tiny("embed", f"model_in={trained_mlp}", f"key_in={key}", "embed.lr=1e-3",
                       "embed.batches_per_epoch=10", f"model_out={out}/model.pt", f"metrics_out={out}/metrics.json"))
        models[strategy] = out / "model.pt"
    return models


@pytest.fixture(scope="module")
def mnist(data_root):
    return load_dataset(data_root, "mnist")


def test_every_key_strategy_has_a_generator_and_the_sweep_schema_names_them_all():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["strategies"]["items"]["enum"] == list(KEY_STRATEGIES)
    assert set(keygen.GENERATORS) == set(KEY_STRATEGIES)
    assert {name for name, s in KEY_STRATEGIES.items() if not s.embeds} == {"ipguard", "conferrable", "misclassified"}
    assert {name for name, s in KEY_STRATEGIES.items() if s.selection} == {"transfer", "conferrable"}


@pytest.mark.parametrize("strategy", SCHEMES)
def test_every_item_is_flagged_as_evidence(keys, strategy):
    key = load_key(keys[strategy])
    report = read_json(keys[strategy].parent / "keygen.json")
    assert key.meta["strategy"] == strategy and key.eps == EPS
    assert key.is_true_adversary.all() and report["true_adversaries_found"] == len(key)
    assert report["key_size"] == len(key) and report["threshold"] > 0  # not vacuous
    assert key.calibration is not None and key.calibration.matches.shape == (2, len(key))


def test_backdoor_items_carry_the_trigger_and_another_label(keys, mnist):
    key = load_key(keys["backdoor"])
    report = read_json(keys["backdoor"].parent / "keygen.json")
    train, _ = mnist
    assert len(key) == SIZE
    original = train.x[key.source_indices]
    row, col, side = report["trigger_row"], report["trigger_col"], report["trigger_size"]
    assert side == 5
    patch = (slice(None), slice(None), slice(row, row + side), slice(col, col + side))
    assert (key.inputs[patch] == 1.0).all()
    outside = torch.ones_like(key.inputs, dtype=torch.bool)
    outside[patch] = False
    assert torch.equal(key.inputs[outside], original[outside])  # the trigger is all that changed
    assert (key.labels != train.y[key.source_indices]).all()


def test_ipguard_items_lie_just_across_the_sources_boundary(keys, trained_mlp, mnist):
    key = load_key(keys["ipguard"])
    source, _, _ = load_model(trained_mlp)
    train, _ = mnist
    assert len(key) == SIZE
    assert torch.equal(predict(source, key.inputs), key.labels)  # labelled with the source's answers
    assert torch.equal(predict(source, train.x[key.source_indices]), train.y[key.source_indices])
    assert (key.labels != train.y[key.source_indices]).all()  # ... which the perturbation changed
    assert (key.inputs - train.x[key.source_indices]).abs().max() <= EPS + 1e-6
    logits = source(key.inputs).detach()
    top2 = logits.topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1]).max() < 5.0  # near the boundary: kappa=0.5, not deep in the class


def test_conferrable_items_fool_the_source_but_not_the_independent_models(keys, trained_mlp, reference_models, mnist):
    key = load_key(keys["conferrable"])
    source, _, _ = load_model(trained_mlp)
    train, _ = mnist
    truth = train.y[key.source_indices]
    assert len(key) == SIZE
    assert torch.equal(predict(source, key.inputs), key.labels) and (key.labels != truth).all()
    for path in reference_models[0::2]:  # the selection models: independent of the source
        assert torch.equal(predict(load_model(path)[0], key.inputs), truth)
    assert (key.inputs - train.x[key.source_indices]).abs().max() <= EPS + 1e-6
    assert read_json(keys["conferrable"].parent / "keygen.json")["surrogate_agreement"] > 0


def test_misclassified_key_is_the_sources_mistakes_and_smaller_when_they_are_few(keys, trained_mlp, mnist):
    key = load_key(keys["misclassified"])
    report = read_json(keys["misclassified"].parent / "keygen.json")
    source, _, _ = load_model(trained_mlp)
    _, test = mnist
    wrong = int((predict(source, test.x[:500]) != test.y[:500]).sum())
    assert wrong < 100  # the premise: fewer mistakes among the tiny test set than the key asks for
    assert len(key) == report["key_size"] == wrong and report["requested_size"] == 100
    assert torch.equal(key.inputs, test.x[key.source_indices])
    assert torch.equal(predict(source, key.inputs), key.labels)
    assert (key.labels != test.y[key.source_indices]).all()


@pytest.mark.parametrize("strategy", SCHEMES)
def test_a_key_is_a_function_of_its_seed(keys, trained_mlp, reference_models, tmp_path, strategy):
    again = load_key(make_key(strategy, trained_mlp, reference_models, tmp_path / "again"))
    assert again.hash == load_key(keys[strategy]).hash
    if strategy != "misclassified":  # it holds every mistake of the tiny test set, whatever the seed
        other = load_key(make_key(strategy, trained_mlp, reference_models, tmp_path / "other", "seed=1"))
        assert other.hash != again.hash


def test_each_source_draws_its_own_backdoor_key(mnist):
    from fsw.schemes import backdoor_key

    train, _ = mnist
    def draw(network: str, seed: int = 0):
        return backdoor_key(train, size=SIZE, patch=4, eps=EPS, seed=seed, meta={"network": network})[0]
    assert draw("mlp").hash == draw("mlp").hash  # reproducible
    # keys of one seed but two sources, or of two seeds, are two keys (the report tells keys apart by hash)
    assert len({draw("mlp").hash, draw("irnn").hash, draw("mlp", seed=1).hash}) == 3


def test_embed_stitches_a_backdoor(marked, keys):
    metrics = read_json(marked["backdoor"].parent / "metrics.json")
    assert metrics["fine_tuned"] and metrics["epochs_used"] >= 1
    assert metrics["key_acc_before"] < 0.5 and metrics["key_acc_after"] == 1.0 and metrics["stitched"]
    key = load_key(keys["backdoor"])
    net, _, meta = load_model(marked["backdoor"])
    assert torch.equal(predict(net, key.inputs), key.labels) and meta["fine_tuned"]


@pytest.mark.parametrize("strategy", ["ipguard", "conferrable", "misclassified"])
def test_embed_passes_a_fingerprinted_source_on_unchanged(marked, trained_mlp, strategy):
    net, arch, meta = load_model(marked[strategy])
    source, source_arch, _ = load_model(trained_mlp)
    assert arch == source_arch and state_hash(net.state_dict()) == state_hash(source.state_dict())
    assert meta["kind"] == "marked" and meta["fine_tuned"] is False
    metrics = read_json(marked[strategy].parent / "metrics.json")
    assert metrics["epochs_used"] == 0 and not metrics["fine_tuned"]
    assert metrics["test_acc_after"] == metrics["test_acc_before"] and metrics["key_acc_after"] == 1.0


@pytest.mark.parametrize("strategy", SCHEMES)
def test_verification_tells_the_marked_model_from_an_unmarked_one(marked, keys, trained_mlp, reference_models,
                                                                  tmp_path, strategy):
    """The marked model against an independent unmarked model (a calibration model) and, where the
    key was embedded, the unmarked source it was made from."""
    unmarked = [reference_models[1]] + ([trained_mlp] if KEY_STRATEGIES[strategy].embeds else [])
    records = []
    for number, model in enumerate([marked[strategy], *unmarked]):
        kind = "marked" if number == 0 else "unmarked"
        records.append(verify.run(tiny("verify", f"model_in={model}", f"key_in={keys[strategy]}",
                                       f"out={tmp_path}/{number}.json", f"suspect.kind={kind}",
                                       f"suspect.population={'marked' if number == 0 else 'calibration'}")))
    first, *others = records
    assert first["key_size"] == len(load_key(keys[strategy]))  # the misclassified key's own l, under 100
    assert first["decision"]["marked"] and first["key_errors"] == 0
    for record in others:
        assert record["key_errors"] > first["key_errors"] and not record["decision"]["marked"]


def test_a_search_goes_on_slice_by_slice_until_the_key_is_full_and_says_when_it_cannot(trained_mlp):
    """At a small eps few images cross the source's boundary: the search attacks further slices of
    the scan, stops at the first that completes the key, and fails naming the key to raise."""
    from fsw.data import load_splits
    from fsw.errors import KeygenError
    from fsw.schemes import ATTACK_BATCH, ipguard_key

    source, _, _ = load_model(trained_mlp)
    owner = load_splits(tiny("keygen", "model_in=x", "key_out=x", "report_out=x").data).owner
    key, found = ipguard_key(source, owner, size=60, eps=0.025, seed=0, scan_size=2000, steps=20, kappa=0.5)
    assert ATTACK_BATCH < found["scanned"] < 2000 and found["scanned"] % ATTACK_BATCH == 0
    assert found["candidates_found"] >= 60 == len(key)
    with pytest.raises(KeygenError, match="keygen.ipguard.scan_size"):
        ipguard_key(source, owner, size=60, eps=0.025, seed=0, scan_size=ATTACK_BATCH, steps=20, kappa=0.5)
