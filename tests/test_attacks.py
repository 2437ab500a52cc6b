"""The removal attacks: one contract over every registered attack and network, then the stage."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from fsw import attack as attack_stage
from fsw.attack import ATTACKS, check_attack
from fsw.attack.stage import apply_attack
from fsw.classifier import Classifier
from fsw.data import Split, load_splits
from fsw.errors import ConfigError
from fsw.io import load_model, read_json, save_model
from fsw.networks import build_network
from fsw.stages import config_dir
from fsw.training import make_trainer
from tests.conftest import tiny

# The levels each attack is tested at; every registered attack needs an entry.
TEST_LEVELS = {
    "none": [0],
    "prune_global": [0.5],
    "prune_layer": [0.75],
    "ftll": [1],
    "ftal": [1],
    "rtll": [1],
    "rtal": [1],
    "lowrank": [0.3],
    "quantize": [4, 16],
    "overwrite": [4],
}
# Keep the attacker's key embedding short.
TEST_OVERRIDES = {
    "overwrite": [
        "attack.batch_size=64",
        "attack.embed.max_epochs=2",
        "attack.embed.batches_per_epoch=4",
    ],
}
CASES = [(name, level) for name in sorted(ATTACKS) for level in TEST_LEVELS.get(name, [])]
NETWORKS = ["mlp", "cnn", "irnn"]


def attack_cfg(name: str, *overrides: str):
    return tiny(
        "attack",
        f"attack={name}",
        "trainer.enable_progress_bar=false",
        "data.limit_attacker=256",
        *TEST_OVERRIDES.get(name, []),
        *overrides,
    )


def briefly_trained(arch: dict, owner: Split, epochs: int) -> tuple[torch.nn.Module, dict]:
    """A small network of `arch` trained just enough for the attacker to find FGSM adversaries."""
    pl.seed_everything(0, verbose=False)
    module = Classifier(build_network(arch), "adam", 1e-3)
    trainer = make_trainer(attack_cfg("none"), max_epochs=epochs)
    trainer.fit(module, owner.loader(64, shuffle=True))
    return module.net.eval(), arch


@pytest.fixture(scope="module")
def tiny_models(trained_mlp) -> dict:
    owner = load_splits(attack_cfg("none", "data.limit_owner=1000").data).owner
    return {
        "mlp": load_model(trained_mlp)[:2],
        "cnn": briefly_trained({"name": "cnn"}, owner, epochs=1),
        "irnn": briefly_trained({"name": "irnn", "hidden": 32, "mode": "rows"}, owner, epochs=3),
    }


@pytest.fixture(scope="module")
def attacker():
    return load_splits(attack_cfg("none").data).attacker


def snapshot(net: torch.nn.Module) -> dict:
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def weights_of(state: dict) -> dict:
    """The weight tensors of a state dict, as fsw.networks.weight_parameters selects them."""
    return {name: value for name, value in state.items() if value.dim() > 1}


def check_none(before, after, level, measured):
    assert same_weights(before, after)


def check_prune_global(before, after, level, measured):
    weights = weights_of(after).values()
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert abs(zeros / total - level) <= 1 / total
    assert measured["sparsity"] == zeros / total


def check_prune_layer(before, after, level, measured):
    for name, weight in weights_of(after).items():
        assert abs(float((weight == 0).float().mean()) - level) <= 1 / weight.numel(), name


def check_last_layer_only(before, after, level, measured):
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"classifier.weight", "classifier.bias"}
    assert measured["epochs"] == level


def check_all_layers(before, after, level, measured):
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert "classifier.weight" in changed and changed - {"classifier.weight", "classifier.bias"}
    assert measured["epochs"] == level


def rank(matrix: torch.Tensor) -> int:
    return int(torch.linalg.matrix_rank(matrix.double(), rtol=1e-5))


def check_lowrank(before, after, level, measured):
    for name, weight in weights_of(after).items():
        original = before[name].double()
        error = float((weight.double() - original).norm() / original.norm())
        assert error <= level + 1e-6, name
        if weight.dim() == 2:
            r = measured["ranks"][name]
            assert rank(weight) == r
            # the smallest such rank: the best rank r-1 approximation misses the bound
            s = torch.linalg.svdvals(original)
            assert r == 1 or float(s[r - 1 :].norm() / s.norm()) > level, name
        else:  # conv kernel [out, in, kh, kw]: Tucker-2 ranks of the channel modes
            channel_ranks = [rank(weight.flatten(1)), rank(weight.transpose(0, 1).flatten(1))]
            assert channel_ranks == measured["ranks"][name], name
    assert measured["max_rel_error"] <= level + 1e-6 and 0 < measured["param_ratio"] < 1


def check_quantize(before, after, level, measured):
    for name, weight in weights_of(after).items():
        assert not torch.equal(weight, before[name]), name
        if level == 16:
            assert torch.equal(weight, weight.half().float()), name
        else:
            assert max(len(row.unique()) for row in weight.flatten(1)) <= 2**level - 1, name
    assert measured["bits"] == level


def check_overwrite(before, after, level, measured):
    assert not same_weights(before, after)
    assert measured["attacker_key_size"] == level and 0 <= measured["attacker_key_acc"] <= 1


LEVEL_CHECKS = {
    "none": check_none,
    "prune_global": check_prune_global,
    "prune_layer": check_prune_layer,
    "ftll": check_last_layer_only,
    "rtll": check_last_layer_only,
    "ftal": check_all_layers,
    "rtal": check_all_layers,
    "lowrank": check_lowrank,
    "quantize": check_quantize,
    "overwrite": check_overwrite,
}


def test_every_registered_attack_is_tested_and_has_a_config():
    assert set(TEST_LEVELS) == set(ATTACKS) == set(LEVEL_CHECKS)
    options = {
        path.stem
        for path in (config_dir() / "attack").glob("*.yaml")
        if not path.stem.startswith("_")
    }
    assert options == set(ATTACKS)
    for option in options:  # the group option selects the attack of the same name
        cfg = tiny("attack", f"attack={option}")
        assert cfg.attack.name == option
        assert "key_in" not in cfg  # the attacker never has the owner's key


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("name,level", CASES)
def test_attack_contract(name, level, network, tiny_models, attacker, tmp_path):
    net, arch = tiny_models[network]
    cfg = attack_cfg(name)
    before = snapshot(net)

    attacked, measured = apply_attack(name, level, net, arch, cfg, attacker)

    assert same_weights(snapshot(net), before), "the attack modified its input model"
    assert not attacked.training
    save_model(tmp_path / "attacked.pt", attacked, arch, {"kind": "attacked"})
    reloaded, reloaded_arch, _ = load_model(tmp_path / "attacked.pt")
    assert reloaded_arch == arch and same_weights(snapshot(reloaded), snapshot(attacked))
    again, measured_again = apply_attack(name, level, net, arch, cfg, attacker)
    assert same_weights(snapshot(again), snapshot(attacked)) and measured_again == measured
    LEVEL_CHECKS[name](before, snapshot(attacked), level, measured)


def test_unknown_attack_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown attack 'prune'.*prune_global"):
        check_attack("prune", 0.5)


@pytest.mark.parametrize(
    "name,level",
    [
        ("none", 1),
        ("prune_global", 1.0),
        ("prune_layer", -0.1),
        ("prune_global", "half"),
        ("ftll", 0),
        ("ftal", 1.5),
        ("rtal", True),
        ("lowrank", 0),
        ("lowrank", 1),
        ("quantize", 12),
        ("quantize", 1),
        ("overwrite", 3),
        ("overwrite", 0),
    ],
)
def test_bad_level_is_a_config_error_naming_it(name, level):
    with pytest.raises(ConfigError, match=rf"attack '{name}' does not accept level {level!r}"):
        check_attack(name, level)


def test_stage_missing_level_is_a_config_error(tmp_path):
    cfg = attack_cfg(
        "ftll",
        f"model_in={tmp_path}/absent.pt",
        f"model_out={tmp_path}/m.pt",
        f"metrics_out={tmp_path}/m.json",
    )
    with pytest.raises(ConfigError, match="'ftll' does not accept level None: .* number of epochs"):
        attack_stage.run(cfg)


def test_stage_writes_attacked_model_and_metrics(marked_mlp, tmp_path):
    out = tmp_path / "attacked"
    metrics = attack_stage.run(
        attack_cfg(
            "prune_layer",
            "attack.level=0.5",
            f"model_in={marked_mlp}",
            f"model_out={out}/model.pt",
            f"metrics_out={out}/metrics.json",
        )
    )
    assert read_json(out / "metrics.json") == metrics
    assert (
        metrics["attack"] == "prune_layer"
        and metrics["level"] == 0.5
        and metrics["network"] == "mlp"
    )
    assert metrics["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert metrics["test_acc_after"] > 0.5 and metrics["test_acc_drop"] < 0.3
    _, arch, meta = load_model(out / "model.pt")
    _, source_arch, source_meta = load_model(marked_mlp)
    assert arch == source_arch
    assert meta["kind"] == "attacked" and meta["attack"] == "prune_layer" and meta["level"] == 0.5
    assert (meta["network"], meta["seed"]) == (source_meta["network"], source_meta["seed"])
