"""Untrusted model and key files: loading never runs code, and every bad file is a clear error.

Also: key values never reach a stage's log (only the key's hash and summary counts do).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shlex
from pathlib import Path

import pytest
import torch
from torch import nn

from fsw import keygen, verify
from fsw.errors import KeyFileError, ModelFileError
from fsw.io import MODEL_FORMAT, load_model, save_model
from fsw.key import Key, key_hash, key_payload, load_key, save_key
from fsw.networks import build_network
from tests.bad_inputs import BadFile, Tried, assert_names_file_and_fault
from tests.conftest import tiny

ARCH = {"name": "mlp", "hidden": 16, "dropout": 0.0}


# --------------------------------------------------------------------------- helpers


class RunsCommand:
    """Unpickling this runs a shell command (the classic malicious-pickle payload)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def touch_command(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def small_model(path: Path, arch: dict = ARCH, net: nn.Module | None = None) -> Path:
    torch.manual_seed(0)
    save_model(path, net if net is not None else build_network(dict(arch)), arch, {"seed": 0})
    return path


def small_key(n: int = 6) -> Key:
    generator = torch.Generator().manual_seed(0)
    return Key(
        inputs=torch.rand(n, 1, 28, 28, generator=generator),
        labels=torch.randint(0, 10, (n,), generator=generator),
        is_true_adversary=torch.arange(n) % 2 == 0,
        source_indices=torch.arange(n) * 7,
        eps=0.1,
        seed=0,
        meta={"network": "mlp"},
    )


# --------------------------------------------------------------------------- code execution


def evil_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Files that would run `touch marker` if unpickled with plain pickle / torch.load(weights_only=False)."""
    payload = RunsCommand(touch_command(marker))
    files = {}
    files["torch-zip"] = tmp_path / "evil_zip.pt"
    torch.save(payload, files["torch-zip"])
    files["torch-legacy"] = tmp_path / "evil_legacy.pt"
    torch.save(payload, files["torch-legacy"], _use_new_zipfile_serialization=False)
    files["pickle-p2"] = tmp_path / "evil_p2.pkl"
    files["pickle-p2"].write_bytes(pickle.dumps(payload, protocol=2))
    files["pickle-p5"] = tmp_path / "evil_p5.pkl"
    files["pickle-p5"].write_bytes(pickle.dumps(payload, protocol=5))
    # The payload hidden inside an otherwise well-formed fsw model / key file.
    net = build_network(dict(ARCH))
    state = {k: v for k, v in net.state_dict().items()}
    state["features.1.weight"] = payload
    files["inside-model"] = tmp_path / "evil_model.pt"
    torch.save({"format": MODEL_FORMAT, "arch": ARCH, "state_dict": state, "meta": {}}, files["inside-model"])
    doctored = key_payload(small_key())
    doctored["meta"] = {"network": payload}
    files["inside-key"] = tmp_path / "evil_key.pt"
    torch.save(doctored, files["inside-key"])
    return files


def test_the_malicious_files_are_real(tmp_path):
    """Control: the payload does run a command when unpickled the unsafe way."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(RunsCommand(touch_command(marker))))
    assert marker.exists()


EVIL = {
    "torch-zip": "file in torch's zip format whose pickle runs a shell command when unpickled",
    "torch-legacy": "the same in torch's older, non-zip format",
    "pickle-p2": "plain pickle (protocol 2) that runs a shell command",
    "pickle-p5": "plain pickle (protocol 5) that runs a shell command",
    "inside-model": "fsw model file with that pickle in place of a weight",
    "inside-key": "fsw key file with that pickle in its metadata",
}
REFUSING = ', saying "refusing to load", the global\'s name and "nothing from it was run"'


@pytest.mark.parametrize("kind", EVIL)
@pytest.mark.parametrize("loader,error", [(load_model, ModelFileError), (load_key, KeyFileError)],
                         ids=["load_model", "load_key"])
def test_loading_never_runs_code(tmp_path, kind, loader, error):
    marker = tmp_path / "PWNED"
    path = evil_files(tmp_path, marker)[kind]
    with pytest.raises(error) as info:
        loader(path)
    assert not marker.exists(), "loading the file ran its command"
    message = str(info.value)
    assert str(path) in message
    if kind not in ("pickle-p5",):  # protocol 5 fails on its framing opcode before reaching the global
        assert "refusing to load" in message and "system" in message and "nothing from it was run" in message
    assert "weights_only` set to `False`" not in message  # never advise the unsafe load


EVIL_TRIED = [Tried(
    f"{description}, read as a model and as a key", "refused before anything in it runs",
    f"`ModelFileError` and `KeyFileError` naming the file{'' if kind == 'pickle-p5' else REFUSING}, never "
    f"advising `weights_only=False`; the command did not run") for kind, description in EVIL.items()]


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
TRIED = EVIL_TRIED + [case.tried() for case in BAD_MODELS + BAD_KEYS] + [FORGED]


# --------------------------------------------------------------------------- keys stay out of logs


def leaked_key_values(output: str, key: Key) -> list[str]:
    """What in a log looks like the key's content (not its hash or counts)."""
    leaks = []
    for marker in ("tensor(", "array(", "Parameter containing"):
        if marker in output:
            leaks.append(f"a printed tensor/array ({marker!r})")
    # Any printed vector: 8 or more numbers in a row, separated by commas or spaces.
    run = re.search(r"(?:-?\d+(?:\.\d+)?(?:e-?\d+)?[,\s]+){7,}-?\d+(?:\.\d+)?", output)
    if run:
        leaks.append(f"a run of numbers: {run.group(0)[:80]!r}")
    for name, tensor in (("labels", key.labels), ("source_indices", key.source_indices)):
        values = tensor.tolist()
        for shown in (str(values), str(values)[1:-1], " ".join(map(str, values)), str(tensor.numpy())):
            if shown in output:
                leaks.append(f"the key's {name}")
    # Pixel values as torch/numpy print them (4 decimals); a printed image row holds many distinct ones.
    pixels = {f"{v:.4f}" for v in key.inputs.unique().tolist() if not f"{v:.4f}".endswith("0")}
    shown = {f"{float(t):.4f}" for t in re.findall(r"\d\.\d{4,}", output)} & pixels
    if len(shown) >= 3:
        leaks.append(f"key pixel values {sorted(shown)[:5]}")
    return leaks


def test_leak_detector_catches_printed_keys(mlp_key):
    """Control: the detector flags the usual ways a key could end up in a log."""
    key = load_key(mlp_key)
    for printed in (str(key.inputs[0]), str(key.labels), str(key.labels.tolist()), repr(key.source_indices.numpy()),
                    str(key.inputs[0, 0, 10].tolist())):
        assert leaked_key_values(f"[log] {printed}\n", key), printed
    assert not leaked_key_values(f"key {key.hash[:12]}: 20 items, 10 true adversaries, eps 0.1\n", key)


def test_stage_logs_hold_no_key_values(trained_mlp, tmp_path, caplog, capfd):
    """keygen then verify, with every logger at DEBUG: their output names the key by hash only."""
    caplog.set_level(logging.DEBUG)
    key_path = tmp_path / "key.pt"
    keygen.run(tiny("keygen", f"model_in={trained_mlp}", "keygen.eps=0.1", "keygen.size=20",
                  f"key_out={key_path}", f"report_out={tmp_path}/keygen.json"))
    verify.run(tiny("verify", f"model_in={trained_mlp}", f"key_in={key_path}", f"out={tmp_path}/v.json",
                    "suspect.kind=unmarked"))
    captured = capfd.readouterr()
    output = f"{caplog.text}\n{captured.out}\n{captured.err}"
    key = load_key(key_path)
    assert "adversaries" in output  # the stages did log (summary counts)
    assert not leaked_key_values(output, key)
    assert key.hash[:12] in output  # the key is named by its hash
