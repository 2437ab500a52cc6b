"""Model and key files that torch's safe unpickler accepts but that fsw must refuse at load.

Hostile files, a few hundred bytes to a few hundred kilobytes, are built to make whatever uses
them hang or exhaust memory: metadata that contains itself or expands to billions of values through
pickle's shared references, tensors that claim billions of elements of a four-byte storage, zip
entries that unpack to far more than the file, a network description of a million layers. Each is
loaded in a subprocess with a memory limit and a deadline, so a regression fails here rather than
hanging the suite, and must be refused within a second.

Files that make no sense (NaN weights, weights of the wrong dtype, a NaN dropout rate, metadata of
the wrong type, ...) must be refused too, with an error naming the file and the fault.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import pytest
import torch

from fsw.io import MODEL_FORMAT, state_hash, torch_bytes
from fsw.key import key_hash, key_payload
from fsw.networks import build_network
from tests.bad_inputs import BadFile, assert_names_file_and_fault
from tests.test_safety import ARCH, small_key

MEMORY_LIMIT = 6 * 2**30  # address space of the loading subprocess: torch alone maps about 3.3 GB
DEADLINE_S = 30  # for the subprocess, imports included
REFUSED_WITHIN_S = 1.0  # for the load itself


# --------------------------------------------------------------------------- building files


def model_payload(change=None, rehash: bool = True) -> dict:
    """A small, valid model file's content, changed by `change`, its weights' hash recomputed."""
    torch.manual_seed(0)
    state = {name: value.clone() for name, value in build_network(dict(ARCH)).state_dict().items()}
    payload = {"format": MODEL_FORMAT, "arch": dict(ARCH), "state_dict": state, "state_hash": None,
               "meta": {"network": "mlp", "seed": 0}}
    if change is not None:
        change(payload)
    if rehash:
        payload["state_hash"] = state_hash(payload["state_dict"])
    return payload


def model_file(change, rehash: bool = True) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "model.pt"
        torch.save(model_payload(change, rehash), path)
        return path
    return make


def key_file(change, rehash: bool = True) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        payload = key_payload(small_key())
        change(payload)
        if rehash:
            payload["hash"] = key_hash(payload["inputs"], payload["labels"], payload["is_true_adversary"],
                                       payload["eps"])
        path = folder / "key.pt"
        torch.save(payload, path)
        return path
    return make


def containing_itself() -> list:
    loop: list = []
    loop.append(loop)
    return loop


def doubling(levels: int) -> list:
    """A list of 2**levels leaves that pickles in a few bytes per level: each level holds the one
    below twice, by reference."""
    nested: list = []
    for _ in range(levels):
        nested = [nested, nested]
    return nested


def wide(width: int = 1000, levels: int = 3) -> list:
    """width**levels strings: each level holds the one below `width` times, by reference."""
    nested: list | str = "x"
    for _ in range(levels):
        nested = [nested] * width
    return nested


def stride_zero(shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """A tensor of `shape` whose every element is the one element of its storage."""
    return torch.zeros(1, dtype=dtype).as_strided(shape, (0,) * len(shape))


def set_in(*where, value):
    """A change that sets payload[where[0]][where[1]]... to value."""
    def change(payload):
        target = payload
        for name in where[:-1]:
            target = target[name]
        target[where[-1]] = value
    return change


def huge_weight(payload):
    payload["state_dict"]["features.1.weight"] = stride_zero((100_000, 100_000))
    payload["state_hash"] = "0" * 64  # recorded, so a loader that checks it first must read the weight


def huge_key(payload):
    """Recorded with a made-up hash: a loader that checks it first must read every item."""
    n = 10_000_000
    payload.update(inputs=stride_zero((n, 1, 28, 28)), labels=stride_zero((n,), torch.int64),
                   is_true_adversary=stride_zero((n,), torch.bool), source_indices=stride_zero((n,), torch.int64))


def zip_bomb(kind: str) -> Callable[[Path], Path]:
    """A file whose zip entries are deflated: 50 MB of zeros in about 50 kB."""
    def make(folder: Path) -> Path:
        payload = model_payload() if kind == "model" else key_payload(small_key())
        payload["padding"] = torch.zeros(12_500_000)
        stored = zipfile.ZipFile(BytesIO(torch_bytes(payload)))
        path = folder / f"{kind}.pt"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
            for entry in stored.infolist():
                bomb.writestr(entry.filename, stored.read(entry.filename))
        return path
    return make


def oversized(folder: Path) -> Path:
    """A 300 MB file of zeros (sparse on disk: it takes no space)."""
    path = folder / "model.pt"
    with open(path, "wb") as handle:
        handle.truncate(300 * 2**20)
    return path


# --------------------------------------------------------------------------- hostile files

HOSTILE = [
    BadFile("model file whose metadata holds a list that contains itself",
            model_file(set_in("meta", "seed", value=containing_itself())), ("nested more than 8 levels deep",)),
    BadFile("model file whose metadata holds 2^40 values in a few hundred bytes (40 lists, each holding the "
            "one below twice)",
            model_file(set_in("meta", "seed", value=doubling(40))), ("nested more than 8 levels deep",)),
    BadFile("model file whose metadata holds 10^9 strings in a few kilobytes (3 lists, each holding the one "
            "below 1000 times)", model_file(set_in("meta", "network", value=wide())), ("more than 100000 values",)),
    BadFile("model file whose arch has a hidden size of 2^30 nested lists",
            model_file(set_in("arch", "hidden", value=doubling(30))), ("nested more than 8 levels deep",)),
    BadFile("model file whose arch asks for an MLP of 10^6 layers",
            model_file(set_in("arch", "depth", value=10**6)), ("arch.depth=1000000 is invalid",)),
    BadFile("model file with a weight of 10^10 elements on a storage of one (stride 0)",
            model_file(huge_weight, rehash=False), ("claims 10,000,000,000 elements",)),
    BadFile("key file whose metadata holds a list that contains itself",
            key_file(set_in("meta", "strategy", value=containing_itself())), ("nested more than 8 levels deep",), kind="key"),
    BadFile("key file of 10^7 items on storages of one element (stride 0)", key_file(huge_key, rehash=False),
            ("claims 10,000,000 elements",), kind="key"),
    BadFile("model file of 50 kB whose zip entries unpack to 50 MB", zip_bomb("model"), ("unpacks to",)),
    BadFile("key file of 50 kB whose zip entries unpack to 50 MB", zip_bomb("key"), ("unpacks to",), kind="key"),
    BadFile("model file of 300 MB (sparse: it takes no disk space)", oversized, ("larger than",)),
]

LOAD = """
import json, sys, time
from fsw.io import load_model
from fsw.key import load_key
started = time.perf_counter()
try:
    {"model": load_model, "key": load_key}[sys.argv[1]](sys.argv[2])
    outcome = {"error": None}
except BaseException as exc:
    outcome = {"error": type(exc).__name__, "message": str(exc)[:3000]}
outcome["seconds"] = time.perf_counter() - started
print(json.dumps(outcome))
"""


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def load_in_subprocess(kind: str, path: Path) -> dict:
    try:
        done = subprocess.run([sys.executable, "-c", LOAD, kind, str(path)], capture_output=True, text=True,
                              timeout=DEADLINE_S, preexec_fn=limit_memory, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path} hung: no answer within {DEADLINE_S} s")
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", HOSTILE, ids=[case.input for case in HOSTILE])
def test_hostile_file_is_refused_within_a_second(tmp_path, case):
    path = case.make(tmp_path)
    outcome = load_in_subprocess(case.kind, path)
    assert outcome["error"] == case.error.__name__, outcome
    assert_names_file_and_fault(outcome["message"], path, case.phrases)
    assert outcome["seconds"] < REFUSED_WITHIN_S, outcome


# --------------------------------------------------------------------------- files that make no sense


def weight(value):
    def change(payload):
        payload["state_dict"]["features.1.weight"][0, 0] = value
    return change


def nan_pixel(payload):
    payload["inputs"].view(-1)[0] = float("nan")


def float64_weights(payload):
    payload["state_dict"] = {name: value.double() for name, value in payload["state_dict"].items()}


NONSENSE = [
    BadFile("model file with a NaN weight", model_file(weight(float("nan"))), ("NaN or infinite",)),
    BadFile("model file with an infinite weight", model_file(weight(float("inf"))), ("NaN or infinite",)),
    BadFile("model file with float64 weights", model_file(float64_weights),
            ("features.1.weight is torch.float64, 'mlp' needs torch.float32",)),
    BadFile("model file with a NaN dropout rate", model_file(set_in("arch", "dropout", value=float("nan"))),
            ("arch['dropout'] is nan, not a finite number",)),
    BadFile("model file with a dropout rate of -0.5", model_file(set_in("arch", "dropout", value=-0.5)),
            ("arch.dropout=-0.5 is invalid",)),
    BadFile("model file whose hidden size is a string", model_file(set_in("arch", "hidden", value="16")),
            ("arch.hidden='16' is invalid",)),
    BadFile("model file whose arch has a field no network takes",
            model_file(set_in("arch", "activation", value="tanh")), ("arch.activation is not a field",)),
    BadFile("model file whose seed is a string", model_file(set_in("meta", "seed", value="zero")),
            ("meta.seed='zero' is invalid",)),
    BadFile("model file whose recorded test accuracy is 5", model_file(set_in("meta", "test_acc", value=5.0)),
            ("meta.test_acc=5.0 is invalid",)),
    BadFile("model file whose metadata holds an integer of 100 digits",
            model_file(set_in("meta", "budget", value=10**100)), ("beyond 64 bits",)),
    BadFile("model file whose metadata holds bytes", model_file(set_in("meta", "network", value=b"mlp")),
            ("is bytes",)),
    BadFile("key file with float labels", key_file(lambda p: p.update(labels=p["labels"].float())),
            ("labels is a torch.float32 tensor",), kind="key"),
    BadFile("key file with float64 inputs", key_file(lambda p: p.update(inputs=p["inputs"].double())),
            ("inputs is a torch.float64 tensor",), kind="key"),
    BadFile("key file with inputs of shape [6, 784]",
            key_file(lambda p: p.update(inputs=p["inputs"].reshape(6, 784))),
            ("does not fit the model: inputs [6, 784]",), kind="key"),
    BadFile("key file with a NaN input pixel", key_file(nan_pixel),
            ("NaN or infinite",), kind="key"),
    BadFile("key file with an eps of NaN", key_file(set_in("eps", value=float("nan"))),
            ("not a finite number",), kind="key"),
    BadFile("key file whose strategy is a number", key_file(set_in("meta", "strategy", value=5)),
            ("meta.strategy=5 is invalid",), kind="key"),
]


@pytest.mark.parametrize("case", NONSENSE, ids=[case.input for case in NONSENSE])
def test_nonsense_file_is_refused(tmp_path, case):
    path = case.make(tmp_path)
    with pytest.raises(case.error) as info:
        case.load(path)
    assert_names_file_and_fault(str(info.value), path, case.phrases)


WITHIN = f", within {REFUSED_WITHIN_S:g} s, in a subprocess of {MEMORY_LIMIT // 2**30} GiB of address space"
TRIED = [replace(case.tried(WITHIN), expected="refused at load, before anything in it is used, within a second")
         for case in HOSTILE] + [case.tried() for case in NONSENSE]
