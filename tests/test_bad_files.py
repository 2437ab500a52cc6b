"""Bad model and key files (truncated, corrupt, tampered with, of the wrong network or shape) are
each refused at load with an error that names the file and the fault."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fsw.errors import KeyFileError, ModelFileError
from fsw.io import MODEL_FORMAT, load_model, save_model
from fsw.key import key_hash, key_payload, load_key, save_key
from fsw.networks import build_network
from tests.bad_inputs import BadFile, Tried, assert_names_file_and_fault
from tests.test_safety import ARCH, small_key


def small_model(path: Path, arch: dict = ARCH, net: nn.Module | None = None) -> Path:
    torch.manual_seed(0)
    save_model(path, net if net is not None else build_network(dict(arch)), arch, {"seed": 0})
    return path


# --------------------------------------------------------------------------- bad model files


def truncated(tmp_path):
    data = small_model(tmp_path / "ok.pt").read_bytes()
    path = tmp_path / "model.pt"
    path.write_bytes(data[: len(data) // 2])
    return path


def cut_at_end(tmp_path):
    data = small_model(tmp_path / "ok.pt").read_bytes()
    path = tmp_path / "model.pt"
    path.write_bytes(data[:-200])
    return path


def empty(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"")
    return path


def garbage(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(range(256)) * 20)
    return path


def text(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("this is not a model\n" * 10)
    return path


def flipped_weight_byte(tmp_path):
    """One byte of a weight flipped on disk: torch reads it without complaint, the checksum does not."""
    torch.manual_seed(0)
    net = build_network(dict(ARCH))
    data = bytearray(small_model(tmp_path / "ok.pt", net=net).read_bytes())
    at = bytes(data).find(net.state_dict()["features.1.weight"].numpy().tobytes())
    assert at > 0
    data[at + 1001] ^= 0x40
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(data))
    return path


def flipped_pickle_byte(tmp_path):
    data = bytearray(small_model(tmp_path / "ok.pt").read_bytes())
    at = bytes(data).find(b"state_dict")
    data[at + 2] ^= 0xFF  # inside the pickled dict's key
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(data))
    return path


def not_fsw(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(build_network(dict(ARCH)).state_dict(), path)  # a bare state dict: no arch, no format
    return path


def wrong_architecture(tmp_path):
    """MLP weights in a file that says it is a CNN."""
    return small_model(tmp_path / "model.pt", arch={"name": "cnn"}, net=build_network(dict(ARCH)))


def wrong_hyper_parameters(tmp_path):
    return small_model(tmp_path / "model.pt", arch={**ARCH, "hidden": 32}, net=build_network(dict(ARCH)))


def wrong_number_of_classes(tmp_path):
    net = build_network(dict(ARCH))
    net.classifier = nn.Linear(16, 5)
    return small_model(tmp_path / "model.pt", net=net)


def unknown_network(tmp_path):
    return small_model(tmp_path / "model.pt", arch={"name": "resnet50"}, net=build_network(dict(ARCH)))


def negative_layer(tmp_path):
    return small_model(tmp_path / "model.pt", arch={**ARCH, "hidden": -1}, net=build_network(dict(ARCH)))


def huge_layer(tmp_path):
    """A forged arch asking for a 10^9-unit layer: refused by shape, never allocated."""
    return small_model(tmp_path / "model.pt", arch={**ARCH, "hidden": 10**9}, net=build_network(dict(ARCH)))


def weights_not_tensors(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": MODEL_FORMAT, "arch": ARCH, "state_dict": {"classifier.weight": [1.0, 2.0]},
                "meta": {}}, path)
    return path


def missing_file(tmp_path):
    return tmp_path / "nowhere" / "model.pt"


BAD_MODELS = [
    BadFile("model file cut to half its length", truncated, ("truncated or corrupt",)),
    BadFile("model file without its last 200 bytes", cut_at_end, ("truncated or corrupt",)),
    BadFile("empty model file", empty, ("empty",)),
    BadFile("model file of random bytes", garbage, ("corrupt",)),
    BadFile("text file as a model file", text, ("corrupt",)),
    BadFile("model file with one bit of a weight flipped (torch reads it without complaint)", flipped_weight_byte,
            ("corrupt: its weights do not match the sha256",)),
    BadFile("model file with one byte of its pickled dict flipped", flipped_pickle_byte,
            ("corrupt", "not an fsw model file", "lacks")),
    BadFile("a bare state dict, without format or arch", not_fsw, ("not an fsw model file",)),
    BadFile("MLP weights in a file whose arch says CNN", wrong_architecture,
            ("not those of network 'cnn' (wrong architecture)",)),
    BadFile("MLP weights of 16 hidden units in a file whose arch says 32", wrong_hyper_parameters,
            ("features.1.weight is (16, 784), 'mlp' needs (32, 784)",)),
    BadFile("model file whose classifier has 5 outputs", wrong_number_of_classes,
            ("wrong number of classes: its classifier has 5 outputs",)),
    BadFile("model file whose arch names an unknown network", unknown_network, ("unknown network 'resnet50'",)),
    BadFile("model file whose arch asks for -1 hidden units", negative_layer, ("arch.hidden=-1 is invalid",)),
    BadFile("model file whose arch asks for 10^9 hidden units (never allocated)", huge_layer,
            ("do not fit network 'mlp'",)),
    BadFile("model file whose weights are lists", weights_not_tensors, ("not tensors",)),
    BadFile("model file that does not exist", missing_file, ("not found",)),
]


@pytest.mark.parametrize("case", BAD_MODELS, ids=[case.make.__name__ for case in BAD_MODELS])
def test_bad_model_file_is_a_clear_error(tmp_path, case):
    path = case.make(tmp_path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert_names_file_and_fault(str(info.value), path, case.phrases)


def test_good_model_file_still_loads(tmp_path):
    torch.manual_seed(0)
    net = build_network(dict(ARCH)).eval()
    loaded, arch, _ = load_model(small_model(tmp_path / "m.pt", net=net))
    x = torch.rand(3, 1, 28, 28)
    assert arch == ARCH and torch.equal(loaded(x), net(x))


# --------------------------------------------------------------------------- bad key files


def doctored_key(tmp_path, change, rehash: bool = True) -> Path:
    payload = key_payload(small_key())
    recorded = payload["hash"]
    change(payload)
    if rehash:
        payload["hash"] = key_hash(payload["inputs"], payload["labels"], payload["is_true_adversary"],
                                   payload["eps"])
    else:
        payload["hash"] = recorded
    path = tmp_path / "key.pt"
    torch.save(payload, path)
    return path


def set_pixel(payload):
    payload["inputs"] = payload["inputs"].clone()
    payload["inputs"][0, 0, 14, 14] = 0.5 if payload["inputs"][0, 0, 14, 14] != 0.5 else 0.25


def swap_flags(payload):
    payload["is_true_adversary"] = ~payload["is_true_adversary"]


def empty_key(payload):
    for name in ("inputs", "labels", "is_true_adversary", "source_indices"):
        payload[name] = payload[name][:0]


def rgb_inputs(payload):
    payload["inputs"] = torch.rand(6, 3, 32, 32)


def fewer_labels(payload):
    payload["labels"] = payload["labels"][:4]


def label_out_of_range(payload):
    payload["labels"] = payload["labels"].clone()
    payload["labels"][0] = 12


def inputs_not_a_tensor(payload):
    payload["inputs"] = payload["inputs"].tolist()


def pixels_out_of_range(payload):
    payload["inputs"] = payload["inputs"] * 300


def doctored(change, rehash: bool = True):
    return lambda folder: doctored_key(folder, change, rehash)


def key_bytes_changed(cut):
    """A key file whose bytes are `cut(bytes of a good key file)`."""
    def make(folder: Path) -> Path:
        path = save_key(folder / "key.pt", small_key())
        path.write_bytes(cut(path.read_bytes()))
        return path
    return make


BAD_KEYS = [
    BadFile("key file with one pixel changed after keygen", doctored(set_pixel, rehash=False),
            ("does not match its recorded hash",), kind="key"),
    BadFile("key file with its true/false flags swapped after keygen", doctored(swap_flags, rehash=False),
            ("does not match its recorded hash",), kind="key"),
    BadFile("key file of no items", doctored(empty_key), ("is empty",), kind="key"),
    BadFile("key file of 3x32x32 inputs", doctored(rgb_inputs), ("does not fit the model: inputs [6, 3, 32, 32]",),
            kind="key"),
    BadFile("key file with fewer labels than inputs", doctored(fewer_labels), ("does not fit the model",),
            kind="key"),
    BadFile("key file with a label of 12", doctored(label_out_of_range),
            ("does not fit the model: its labels must be classes 0..9",), kind="key"),
    BadFile("key file whose inputs are a list", doctored(inputs_not_a_tensor, rehash=False),
            ("malformed: inputs is list",), kind="key"),
    BadFile("key file with pixel values up to 300", doctored(pixels_out_of_range),
            ("malformed: its inputs must be pixel values",), kind="key"),
    BadFile("key file cut to half its length", key_bytes_changed(lambda data: data[: len(data) // 2]),
            ("truncated or corrupt",), kind="key"),
    BadFile("empty key file", key_bytes_changed(lambda data: b""), ("empty",), kind="key"),
    BadFile("key file of random bytes", key_bytes_changed(lambda data: bytes(range(256)) * 20), ("corrupt",),
            kind="key"),
    BadFile("key file that does not exist", lambda folder: folder / "missing.pt", ("not found",), kind="key"),
]


@pytest.mark.parametrize("case", BAD_KEYS, ids=[case.input for case in BAD_KEYS])
def test_bad_key_file_is_refused(tmp_path, case):
    path = case.make(tmp_path)
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    assert_names_file_and_fault(str(info.value), path, case.phrases)


def test_key_must_match_an_external_record(tmp_path):
    """A key rebuilt with a fresh self-consistent hash passes its own check, not the keygen record's."""
    original = small_key()
    save_key(tmp_path / "key.pt", original)
    assert load_key(tmp_path / "key.pt", expected_hash=original.hash).hash == original.hash
    (tmp_path / "forged").mkdir()
    forged = doctored_key(tmp_path / "forged", set_pixel, rehash=True)
    assert load_key(forged).hash != original.hash  # self-consistent, so its own record passes
    with pytest.raises(KeyFileError, match="is not the expected key"):
        load_key(forged, expected_hash=original.hash)


FORGED = Tried("key file rebuilt with a new, self-consistent hash, checked against the keygen record",
               "refused: not the key the record names",
               '`KeyFileError` saying "is not the expected key"; the file\'s own hash check passes')
TRIED = [case.tried() for case in BAD_MODELS + BAD_KEYS] + [FORGED]
