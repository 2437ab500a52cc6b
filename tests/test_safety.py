"""Untrusted model and key files: loading never runs code (bad files that run no code are in
tests/test_bad_files.py and tests/test_hostile_files.py).

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

from fsw import keygen, verify
from fsw.errors import KeyFileError, ModelFileError
from fsw.io import MODEL_FORMAT, load_model
from fsw.key import Key, key_payload, load_key
from fsw.networks import build_network
from tests.bad_inputs import Tried
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


TRIED = [Tried(
    f"{description}, read as a model and as a key", "refused before anything in it runs",
    f"`ModelFileError` and `KeyFileError` naming the file{'' if kind == 'pickle-p5' else REFUSING}, never "
    f"advising `weights_only=False`; the command did not run") for kind, description in EVIL.items()]


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
