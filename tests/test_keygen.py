import pytest
import torch

from fsw.adversarial import fgsm
from fsw.errors import KeyFileError, KeygenError
from fsw.io import load_model
from fsw.key import load_key, save_key
from fsw.keygen import find_candidates, generate_key
from fsw.networks import build_network
from tests.conftest import tiny


def tiny_net():
    torch.manual_seed(0)
    return build_network({"name": "mlp", "hidden": 16, "dropout": 0.0}).eval()


def test_fgsm_is_a_sign_step_clipped_to_the_unit_box():
    net = tiny_net()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    x_adv = fgsm(net, x, y, 0.1)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    moved = (x_adv - x).abs()
    # Every pixel moves by eps unless clipping stopped it at 0 or 1.
    clipped = (x_adv == 0) | (x_adv == 1)
    assert torch.allclose(moved[~clipped], torch.full_like(moved[~clipped], 0.1), atol=1e-6)


def test_true_and_false_adversaries(trained_mlp, data_root):
    from fsw.data import load_dataset

    net, _, _ = load_model(trained_mlp)
    train, _ = load_dataset(data_root)
    x, y, index = train.x[:300], train.y[:300], train.index[:300]
    found = find_candidates(net, x, y, index, eps=0.1)
    from fsw.inference import predict

    clean = predict(net, x)
    adv = predict(net, found.x_adv)
    assert torch.equal(found.correct, clean == y)
    assert torch.equal(found.flipped, (clean == y) & (adv != y))
    assert 0 < int(found.flipped.sum()) < int(found.correct.sum())


def test_key_composition_and_labels(trained_mlp, mlp_key, data_root):
    from fsw.data import load_dataset
    from fsw.inference import predict

    key = load_key(mlp_key)
    net, _, _ = load_model(trained_mlp)
    train, _ = load_dataset(data_root)
    assert len(key) == 20 and int(key.is_true_adversary.sum()) == 10
    # Labels are the ORIGINAL labels of the source images, which the model got right.
    assert torch.equal(key.labels, train.y[key.source_indices])
    assert torch.equal(predict(net, train.x[key.source_indices]), key.labels)
    # True adversaries are misclassified by the source model, false ones are not.
    wrong = predict(net, key.inputs) != key.labels
    assert torch.equal(wrong, key.is_true_adversary)
    assert (key.inputs - train.x[key.source_indices]).abs().max() <= 0.1 + 1e-6


def test_key_round_trip_and_hash(mlp_key, tmp_path):
    key = load_key(mlp_key)
    save_key(tmp_path / "copy.pt", key)
    copy = load_key(tmp_path / "copy.pt")
    assert copy.hash == key.hash and torch.equal(copy.inputs, key.inputs)
    altered = torch.load(mlp_key, weights_only=True)
    altered["labels"][0] = (altered["labels"][0] + 1) % 10
    torch.save(altered, tmp_path / "altered.pt")
    with pytest.raises(KeyFileError, match="hash"):
        load_key(tmp_path / "altered.pt")


def test_key_is_deterministic_for_a_seed():
    net = tiny_net()
    x, y = torch.rand(400, 1, 28, 28), torch.randint(0, 10, (400,))
    y = net(x).argmax(1).detach()  # every image correctly classified
    index = torch.arange(400)
    args = dict(size=10, eps=0.002, pool_size=50)
    first, _ = generate_key(net, x, y, index, seed=1, **args)
    second, _ = generate_key(net, x, y, index, seed=1, **args)
    other, _ = generate_key(net, x, y, index, seed=2, **args)
    assert first.hash == second.hash
    assert first.hash != other.hash


def test_pool_grows_then_fails_with_counts():
    net = tiny_net()
    x = torch.rand(200, 1, 28, 28)
    y = net(x).argmax(1).detach()
    _, diagnostics = generate_key(net, x, y, torch.arange(200), size=10, eps=0.05, seed=0, pool_size=10)
    assert diagnostics["pool_size"] > 10  # the pool of 10 could not hold 5 of each kind
    with pytest.raises(KeygenError, match=r"gave \d+ true and \d+ false adversaries"):
        generate_key(net, x, y, torch.arange(200), size=400, eps=0.05, seed=0, pool_size=10)


@pytest.mark.parametrize("size", [0, 3, -2])
def test_bad_key_size(size):
    net = tiny_net()
    with pytest.raises(KeygenError, match="even"):
        generate_key(net, torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), torch.arange(4),
                     size=size, eps=0.1, seed=0, pool_size=4)


# --- the transfer strategy and the calibration a key ships with -----------------------------------

def test_transfer_key_items_are_what_their_flags_say(trained_mlp, reference_models, mlp_key):
    from fsw.inference import predict

    key = load_key(mlp_key)
    source, _, _ = load_model(trained_mlp)
    answers = predict(source, key.inputs)
    assert key.meta["strategy"] == "transfer" and len(key) == 20 and int(key.is_true_adversary.sum()) == 10
    # the source flips exactly the true adversaries and keeps the false ones
    assert torch.equal(answers != key.labels, key.is_true_adversary)
    # every item lies within eps of the training image it was made from
    from fsw.data import load_dataset

    train, _ = load_dataset(__import__("os").environ["FSW_DATA_ROOT"])
    assert (key.inputs - train.x[key.source_indices]).abs().max() <= key.eps + 1e-6
    # the selection models (the first of each family) were fooled on the items they were picked against
    for path in reference_models[0::2]:
        net, _, _ = load_model(path)
        assert (predict(net, key.inputs) == key.labels).float().mean() <= 0.25


def test_key_ships_its_calibration(mlp_key, reference_models):
    from fsw.inference import predict

    key = load_key(mlp_key)
    calibration = key.calibration
    assert calibration.key_hash == key.hash and calibration.matches.shape == (2, 20)
    assert calibration.families == ("linear", "mlp_small") and calibration.models[0].endswith("/linear/s3")
    for row, path in zip(calibration.matches, reference_models[1::2]):
        net, _, _ = load_model(path)
        assert torch.equal(row, predict(net, key.inputs) == key.labels)


def test_a_calibration_from_another_key_is_refused(mlp_key, tmp_path):
    import dataclasses

    from fsw.io import torch_save
    from fsw.key import Calibration, Key, key_payload

    key = load_key(mlp_key)
    other = dataclasses.replace(key.calibration, key_hash="f" * 64)
    torch_save(tmp_path / "k.pt", key_payload(Key(**{**key.__dict__, "calibration": other})))
    with pytest.raises(KeyFileError, match="belongs to another key"):
        load_key(tmp_path / "k.pt")
    # ...and a calibration changed after keygen wrote it
    payload = key_payload(key)
    payload["calibration"]["matches"] = ~payload["calibration"]["matches"]
    torch_save(tmp_path / "k2.pt", payload)
    with pytest.raises(KeyFileError, match="modified after keygen"):
        load_key(tmp_path / "k2.pt")
    assert isinstance(key.calibration, Calibration)


def test_a_vacuous_key_is_refused(trained_mlp, reference_models, marked_mlp, tmp_path):
    """A key whose items the reference models all answer with its labels proves nothing: keygen says
    so and writes no key. Here the 'reference' is the marked model of this very key (the same
    settings and seed give the same key), which answers every item as a marked model does."""
    from fsw import keygen
    from tests.conftest import tiny

    overrides = [f"model_in={trained_mlp}", "keygen.eps=0.1", "keygen.size=20", "keygen.strategy=transfer",
                 f"selection_in=[{reference_models[0]},{reference_models[2]}]", f"calibration_in=[{marked_mlp}]",
                 f"key_out={tmp_path}/k.pt", f"report_out={tmp_path}/k.json"]
    with pytest.raises(KeygenError, match="cannot prove anything.*family_binomial"):
        keygen.run(tiny("keygen", *overrides))
    assert not (tmp_path / "k.pt").exists() and not (tmp_path / "k.json").exists()
    keygen.run(tiny("keygen", *overrides, "keygen.vacuous=warn"))  # kept on request, with threshold 0
    assert __import__("json").loads((tmp_path / "k.json").read_text())["threshold"] == 0


def test_a_source_too_robust_for_half_true_adversaries_gets_false_ones_in_their_place(trained_mlp, reference_models):
    """At a tiny eps the source flips on few of the scanned images: false adversaries fill in for
    the missing true ones; with none at all there is no key."""
    from fsw.data import load_splits
    from fsw.inference import predict
    from fsw.keygen import transfer_key

    source, _, _ = load_model(trained_mlp)
    references = [load_model(path)[0] for path in reference_models[0::2]]
    owner = load_splits(tiny("keygen", "model_in=x", "key_out=x", "report_out=x").data).owner
    key, found = transfer_key(source, references, owner, size=40, eps=0.005, seed=0, scan_size=200, pool_size=20,
                              steps=10, kappa=2.0)
    assert 0 < found["true_adversaries_found"] < 20  # the premise: fewer than half the key
    assert found["true_adversaries_used"] == found["true_adversaries_found"] == int(key.is_true_adversary.sum())
    assert found["false_adversaries_used"] == 40 - found["true_adversaries_used"] and len(key) == 40
    assert torch.equal(predict(source, key.inputs) != key.labels, key.is_true_adversary)
    with pytest.raises(KeygenError, match="at least one true"):
        transfer_key(source, references, owner, size=40, eps=1e-6, seed=0, scan_size=200, pool_size=20, steps=2,
                     kappa=2.0)
