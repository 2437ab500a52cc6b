"""Fashion-MNIST (data=fashion) beside MNIST: read through the same md5-checked path, from gzipped or
uncompressed IDX files; every model and key file records its dataset and no stage mixes two; the
Fashion-MNIST sweep plans. Tests that need the Fashion-MNIST files skip, saying why, where the data
root has none (config/README.md says how to link Debian's dataset-fashion-mnist there)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fsw.data import FASHION_MNIST_MD5, MNIST_MD5, load_dataset, load_splits, read_files
from fsw.errors import DataError, ModelFileError
from fsw.io import load_model, read_json, save_model
from fsw.key import Key, load_key, save_key
from tests.conftest import REPO, TINY_MLP_FLOOR, tiny

SMALL = "t10k-labels-idx1-ubyte"  # the smallest file: the one copied and damaged


@pytest.fixture(scope="module")
def fashion_root(data_root) -> Path:
    """The data root, if it holds Fashion-MNIST's four files (uncompressed or gzipped)."""
    raw = data_root / "FashionMNIST" / "raw"
    missing = [name for name in FASHION_MNIST_MD5
               if not (raw / name).is_file() and not (raw / f"{name}.gz").is_file()]
    if missing:
        pytest.skip(f"Fashion-MNIST is not under {raw} (no {', '.join(missing)}): install Debian's "
                    "dataset-fashion-mnist and link /usr/share/datasets/fashion-mnist there (config/README.md)")
    return data_root


def copied_root(source: Path, tmp_path: Path, folder: str, damaged: str, gzipped: bool) -> Path:
    """A data root in tmp_path whose `folder`/raw/ links to the files of `source`'s, but for a real
    copy of `damaged` (safe to damage), gzipped or not, whatever form the source holds it in."""
    raw = tmp_path / "root" / folder / "raw"
    raw.mkdir(parents=True)
    for path in (source / folder / "raw").iterdir():
        name = path.name.removesuffix(".gz")
        if name != damaged:
            (raw / path.name).symlink_to(path.resolve())
            continue
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        (raw / (f"{name}.gz" if gzipped else name)).write_bytes(gzip.compress(data) if gzipped else data)
    return tmp_path / "root"


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_fashion_mnist_loads_as_its_own_dataset(fashion_root, data_root):
    train, test = load_dataset(fashion_root, "fashion", download=False)
    assert (len(train), len(test)) == (60_000, 10_000) and train.x.shape[1:] == (1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images of each kind of clothing.
    assert train.y.bincount().tolist() == [6000] * 10 and test.y.bincount().tolist() == [1000] * 10
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) == 1.0
    mnist, _ = load_dataset(data_root, "mnist", download=False)
    assert mnist.y.bincount().tolist() != [6000] * 10  # not MNIST read from another folder
    splits = load_splits(tiny("train", "data=fashion").data)
    assert splits.owner.y.tolist() == train.y[splits.owner.index].tolist()  # the same split code


def test_gzipped_and_uncompressed_files_read_the_same(data_root, tmp_path):
    """MNIST's smallest file gzipped (as the datasets are distributed) beside the others uncompressed."""
    root = copied_root(data_root, tmp_path, "MNIST", SMALL, gzipped=True)
    assert (root / "MNIST" / "raw" / f"{SMALL}.gz").is_file() and not (root / "MNIST" / "raw" / SMALL).exists()
    assert read_files(root)[SMALL] == read_files(data_root)[SMALL]
    _, test = load_dataset(root, download=False)
    _, reference = load_dataset(data_root, download=False)
    assert test.y.tolist() == reference.y.tolist()


@pytest.mark.parametrize("gzipped", [False, True], ids=["uncompressed", "gzipped"])
def test_a_corrupt_fashion_file_is_refused_naming_it_and_its_md5(fashion_root, tmp_path, gzipped):
    root = copied_root(fashion_root, tmp_path, "FashionMNIST", SMALL, gzipped)
    path = root / "FashionMNIST" / "raw" / (f"{SMALL}.gz" if gzipped else SMALL)
    read_files(root, "fashion")  # the copy itself is fine
    flip_a_byte(path)
    for load in (lambda: read_files(root, "fashion"), lambda: load_dataset(root, "fashion", download=True)):
        with pytest.raises(DataError) as info:  # present but corrupt: never downloaded over
            load()
        message = str(info.value)
        assert str(path) in message and "corrupt" in message and FASHION_MNIST_MD5[SMALL] in message, message


def test_a_truncated_gzip_file_is_refused(data_root, tmp_path):
    root = copied_root(data_root, tmp_path, "MNIST", SMALL, gzipped=True)
    path = root / "MNIST" / "raw" / f"{SMALL}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="does not decompress") as info:
        read_files(root)
    assert str(path) in str(info.value) and MNIST_MD5[SMALL] in str(info.value)


def test_missing_fashion_mnist_says_where_to_find_it(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "nothing-here", "fashion", download=False)
    message = str(info.value)
    assert f"FashionMNIST not found under {tmp_path / 'nothing-here' / 'FashionMNIST' / 'raw'}" in message
    for advice in ("FSW_DATA_ROOT", "dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist", "data.download=true"):
        assert advice in message, message


def test_every_file_records_its_dataset(trained_mlp, mlp_key, marked_mlp):
    assert load_model(trained_mlp)[2]["dataset"] == "mnist" and load_model(marked_mlp)[2]["dataset"] == "mnist"
    assert load_key(mlp_key).meta["dataset"] == "mnist"
    assert read_json(trained_mlp.parent / "metrics.json")["dataset"] == "mnist"


def test_an_unknown_dataset_in_a_file_is_refused(trained_mlp, tmp_path):
    net, arch, meta = load_model(trained_mlp)
    save_model(tmp_path / "m.pt", net, arch, {**meta, "dataset": "cifar10"})
    with pytest.raises(ModelFileError, match="meta.dataset='cifar10' is invalid"):
        load_model(tmp_path / "m.pt")


def model_of(path: Path, out: Path, dataset: str | None) -> Path:
    """A copy of a model file that says it was made with `dataset` (None: says nothing, as old files)."""
    net, arch, meta = load_model(path)
    meta = {key: value for key, value in meta.items() if key != "dataset"}
    save_model(out, net, arch, meta if dataset is None else {**meta, "dataset": dataset})
    return out


def key_of(path: Path, out: Path, dataset: str) -> Path:
    key = load_key(path)
    save_key(out, Key(**{**key.__dict__, "meta": {**key.meta, "dataset": dataset}}))
    return out


def mismatch_cases(trained_mlp: Path, mlp_key: Path, tmp: Path) -> dict[str, tuple]:
    """Stage -> (its run, its config on MNIST, the file it must refuse), each given one Fashion file."""
    from fsw import embed, extract, keygen, verify
    from fsw.attack import stage as attack

    model, key = model_of(trained_mlp, tmp / "fashion.pt", "fashion"), key_of(mlp_key, tmp / "fashion_key.pt", "fashion")
    out = [f"model_out={tmp}/o.pt", f"metrics_out={tmp}/o.json"]
    return {
        "keygen": (keygen.run, tiny("keygen", f"model_in={model}", f"key_out={tmp}/k.pt", f"report_out={tmp}/k.json"), model),
        "keygen calibration": (keygen.run, tiny(
            "keygen", f"model_in={trained_mlp}", "keygen.strategy=paper", "keygen.size=4", "keygen.vacuous=warn",
            f"calibration_in=[{model}]", f"key_out={tmp}/k.pt", f"report_out={tmp}/k.json"), model),
        "embed": (embed.run, tiny("embed", f"model_in={trained_mlp}", f"key_in={key}", *out), key),
        "attack": (attack.run, tiny("attack", f"model_in={model}", "attack=prune_global", "attack.level=0.5", *out), model),
        "extract": (extract.run, tiny("extract", f"victim_in={model}", "budget=100", "network=linear", *out), model),
        "verify": (verify.run, tiny("verify", f"model_in={trained_mlp}", f"key_in={key}", f"out={tmp}/v.json"), key),
    }


@pytest.mark.parametrize("stage", ["keygen", "keygen calibration", "embed", "attack", "extract", "verify"])
def test_no_stage_mixes_datasets(trained_mlp, mlp_key, tmp_path, stage):
    """Each stage on MNIST given one file made with Fashion-MNIST: refused, naming the file."""
    run, cfg, refused = mismatch_cases(trained_mlp, mlp_key, tmp_path)[stage]
    with pytest.raises(DataError) as info:
        run(cfg)
    message = str(info.value)
    assert "datasets do not match" in message and f"{refused} was made with data=fashion" in message, message
    assert "this stage reads data=mnist" in message
    assert not (tmp_path / "o.pt").exists() and not (tmp_path / "k.pt").exists() and not (tmp_path / "v.json").exists()


def test_a_file_without_its_dataset_is_mnists(trained_mlp, mlp_key, tmp_path):
    """Files made before fsw recorded the dataset: MNIST's, verified on MNIST, refused on Fashion-MNIST
    (before any Fashion-MNIST file is read: this runs without them)."""
    from fsw import verify

    old = model_of(trained_mlp, tmp_path / "old.pt", None)
    assert "dataset" not in load_model(old)[2]
    record = verify.run(tiny("verify", f"model_in={old}", f"key_in={mlp_key}", f"out={tmp_path}/v.json"))
    assert record["dataset"] == "mnist" and record["key_errors"] == 10
    with pytest.raises(DataError, match=f"model {old} was made with data=mnist"):
        verify.run(tiny("verify", "data=fashion", "data.download=false", f"model_in={old}",
                        f"key_in={key_of(mlp_key, tmp_path / 'k.pt', 'fashion')}", f"out={tmp_path}/w.json"))


def test_a_tiny_training_on_fashion_mnist(fashion_root, tmp_path):
    from fsw import keygen, train

    metrics = train.run(tiny("train", "data=fashion", "network=mlp", "network.epochs=5",
                             f"model_out={tmp_path}/m.pt", f"metrics_out={tmp_path}/m.json"))
    assert metrics["dataset"] == "fashion" and metrics["train_size"] == 2000
    assert metrics["test_acc"] > TINY_MLP_FLOOR["fashion"], metrics["test_acc"]
    assert load_model(tmp_path / "m.pt")[2]["dataset"] == "fashion"
    assert read_json(tmp_path / "m.json")["config"]["data"]["name"] == "fashion"
    with pytest.raises(DataError, match="this stage reads data=mnist"):  # a key on MNIST from it
        keygen.run(tiny("keygen", f"model_in={tmp_path}/m.pt", f"key_out={tmp_path}/k.pt", f"report_out={tmp_path}/k.json"))


def fashion_sweep() -> dict:
    """config/fashion.yaml as Snakemake reads it: merged over config/config.yaml."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "fashion.yaml").read_text()))
    return config


def test_the_fashion_sweep_reads_fashion_mnist_in_every_stage_that_reads_data():
    from fsw.sweep_config import OVERRIDDEN_STAGES, stage_overrides

    config, default = fashion_sweep(), yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["results"] == "results/fashion" and default["results"] == "results"
    for stage in OVERRIDDEN_STAGES:
        texts = [text for _, text in stage_overrides(config, stage)]
        assert ("data=fashion" in texts) is (stage != "report"), (stage, texts)
        assert "data=fashion" not in [text for _, text in stage_overrides(default, stage)]  # MNIST stays the default
    for key in ("networks", "seeds", "eps", "key_sizes", "strategies", "attacks", "reference", "heldout", "extraction"):
        assert config[key] == default[key], key


def test_the_fashion_sweep_plans(tmp_path):
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(REPO / "config" / "fashion.yaml"), "-n"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "results/fashion/train/owner/mlp/s0/model.pt" in done.stdout
    assert "results/fashion/tables/verification.csv" in done.stdout
    assert "results/train/" not in done.stdout and not (tmp_path / "results").exists()
