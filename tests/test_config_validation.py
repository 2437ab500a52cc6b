"""Every config value has a rule; bad values fail before any work, with a message naming the key.

Two layers:
(a) the sweep config of the Snakemake workflow (workflow/schemas/config.schema.yaml, validated by the
    Snakefile, and its Hydra overrides, composed with each stage's config): a real
    `snakemake --configfile BAD.yaml` must exit non-zero naming the key, no job run;
(b) the Hydra stage configs: `run(cfg)` of each stage raises fsw.errors.ConfigError naming the key
    (fsw.validate, called from fsw.config.setup_run) before it reads data, a model or a key.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from fsw.errors import ConfigError
from fsw.grid import network_options
from fsw.stages import STAGES, compose
from fsw.sweep_config import check_sweep
from fsw.validate import RULES, check_config, problems
from tests.conftest import REPO, tiny

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

# --------------------------------------------------------------------------- (a) the sweep config

# name -> (what the bad config file sets, over config/config.yaml; a word the error must contain)
BAD_SWEEPS = {
    "negative eps": ({"eps": [-0.1]}, "'eps'"),
    "zero eps": ({"eps": [0]}, "'eps'"),
    "eps above 1": ({"eps": [0.1, 1.5]}, "'eps'"),
    "eps a string": ({"eps": ["0.1"]}, "'eps'"),
    "odd key size": ({"key_sizes": [3]}, "'key_sizes'"),
    "zero key size": ({"key_sizes": [0]}, "'key_sizes'"),
    "fractional key size": ({"key_sizes": [2.5]}, "'key_sizes'"),
    "unknown network": ({"networks": ["mlp", "resnet"]}, "'networks'"),
    "empty networks": ({"networks": []}, "'networks'"),
    "empty seeds": ({"seeds": []}, "'seeds'"),
    "empty eps": ({"eps": []}, "'eps'"),
    "empty key sizes": ({"key_sizes": []}, "'key_sizes'"),
    "negative seed": ({"seeds": [-1]}, "'seeds'"),
    "seed too large": ({"seeds": [2**33]}, "'seeds'"),
    "duplicate eps": ({"eps": [0.1, 0.1]}, "'eps'"),
    "negative null seed": ({"null_seeds": [-1]}, "'null_seeds'"),
    "unknown attack": ({"attacks": {"blur": [1]}}, "'blur'"),
    "negative attack level": ({"attacks": {"prune_global": [-0.5]}}, "'prune_global'"),
    "results with a space": ({"results": "my results"}, "'results'"),
    "results with '='": ({"results": "a=b"}, "'results'"),
    "results with a wildcard": ({"results": "out/{network}"}, "'results'"),
    "empty results": ({"results": ""}, "'results'"),
    "unknown setting": ({"epsilon": [0.1]}, "'epsilon'"),
    "unknown stage in overrides": ({"overrides": {"trian": []}}, "'trian'"),
    "override not key=value": ({"overrides": {"train": ["epochs 3"]}}, "'train'"),
    "override of a wildcard": ({"overrides": {"keygen": ["keygen.eps=0.5"]}}, "'keygen'"),
    "override of a path": ({"overrides": {"train": ["model_out=/tmp/x.pt"]}}, "'train'"),
    "override of hydra": ({"overrides": {"data": ["hydra.job.chdir=true"]}}, "'data'"),
}


# Misspelled keys: each must stop the run before its first job, naming the key and the nearest valid
# one. name -> (what the bad config file sets, over config/config.yaml; what the error must say).
TYPOS = {
    "top-level key": ({"netwroks": ["mlp"]}, ["netwroks", "did you mean 'networks'"]),
    "nested key": ({"reference": {"calibraton": [{"split": "owner", "seeds": [4], "networks": ["mlp"]}]}},
                   ["reference.calibraton", "did you mean 'reference.calibration'"]),
    "attack name": ({"attacks": {"prun_global": [0.5]}}, ["attacks.prun_global", "did you mean 'attacks.prune_global'"]),
    "stage of the overrides": ({"overrides": {"trian": ["network.epochs=2"]}},
                               ["overrides.trian", "did you mean 'overrides.train'"]),
    "field of a group": ({"heldout": [{"split": "owner", "seed": [21], "networks": ["mlp"]}]},
                         ["heldout[0].seed", "did you mean 'heldout[0].seeds'"]),
    "Hydra key": ({"overrides": {"embed": ["trainer.max_epoch=3"]}},
                  ["overrides.embed", "trainer.max_epoch", "did you mean 'embed.max_epochs'"]),
    "Hydra key of the shared data": ({"overrides": {"data": ["data.limit_ownr=100"]}},
                                     ["overrides.data", "data.limit_ownr", "did you mean 'data.limit_owner'"]),
    "Hydra key of a network option": ({"overrides": {"train": ["network.arch.hiden=64"]}},
                                      ["overrides.train", "network.arch.hiden", "did you mean 'network.arch.hidden'"]),
}

# The real `snakemake --cores 1` for every typo and a representative subset of the bad values (each
# call is ~3 s of CPU). Its target is the sweep's own config.yaml, a job of a second that imports no
# torch: a bad config that got through would write it, and start nothing costly.
RUNS = {
    **{name: (settings, [words]) for name, (settings, words) in BAD_SWEEPS.items()
       if name in ("negative eps", "odd key size", "unknown network", "results with a space", "override of a wildcard")},
    **TYPOS,
}


def snakemake_run(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def snakemake_dry_run(workdir: Path, configfile: Path) -> subprocess.CompletedProcess:
    return snakemake_run(workdir, configfile, "-n")


def merged_sweep(settings: dict) -> dict:
    """config/config.yaml updated with `settings` the way --configfile updates it (nested dicts merge)."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, settings)
    return config


@pytest.mark.parametrize("name", BAD_SWEEPS)
def test_bad_sweep_value_is_refused_by_the_schema(name):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    settings, names = BAD_SWEEPS[name]
    with pytest.raises(WorkflowError) as info:
        validate(merged_sweep(settings), str(SCHEMA))
    assert names in str(info.value), str(info.value)


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Each of RUNS through a real `snakemake --cores 1`, three at a time."""
    jobs = {}
    for index, (name, (settings, _)) in enumerate(RUNS.items()):
        workdir = tmp_path_factory.mktemp(f"sweep{index}")
        configfile = workdir / "bad.yaml"
        configfile.write_text(yaml.safe_dump(settings))
        jobs[name] = (workdir, configfile)
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(jobs, pool.map(lambda job: snakemake_run(*job, "--cores", "1", "sweep_config"), jobs.values())))
    return {name: (jobs[name][0], done[name]) for name in jobs}


@pytest.mark.parametrize("name", RUNS)
def test_bad_sweep_config_fails_before_any_job(sweep_runs, name):
    workdir, done = sweep_runs[name]
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"snakemake accepted it:\n{output[-2000:]}"
    for words in RUNS[name][1]:
        assert words in output, f"the message does not say {words!r}:\n{output[-3000:]}"
    assert "Job stats" not in output and "rule sweep_config" not in output, output[-2000:]
    assert {path.name for path in workdir.iterdir()} <= {"bad.yaml", ".snakemake"}  # nothing was written


def test_a_hydra_key_of_some_network_options_only_is_refused_naming_the_others():
    """train jobs compose each network option of the sweep: a key only the CNN's have fails the rest."""
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["heldout"].append({"split": "attacker", "seeds": [12], "networks": ["cnn_fast"]})
    config["overrides"]["train"] = ["network.arch.dropout_conv=0.3"]
    with pytest.raises(ConfigError) as info:
        check_sweep(config)
    message = str(info.value)
    assert "overrides.train: network.arch.dropout_conv=0.3: the train config with network=irnn" in message
    assert "network=linear" in message and "network=cnn_fast" not in message, message
    config["networks"], config["reference"], config["heldout"] = ["cnn"], {"selection": [], "calibration": []}, []
    check_sweep(config)  # where every trained network is a CNN, the override applies


def test_valid_hydra_overrides_pass(tmp_path):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["overrides"]["attack"] = [*config["overrides"]["attack"], "+attack.note=x"]
    config["overrides"]["verify"] = ["decision.z=0.01", "remote.timeout_s=5"]
    check_sweep(config)


@pytest.mark.parametrize("configfile", ["config.yaml", "smoke.yaml", "paper.yaml", "keysizes.yaml", "fashion.yaml"])
def test_shipped_sweep_configs_are_valid(configfile):
    """Each as Snakemake sees it with --configfile: merged into config/config.yaml."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / configfile).read_text()))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    check_sweep(config)


def test_sweep_overrides_are_range_checked():
    """The Hydra overrides inside the sweep config: checkable without composing (fsw.sweep_config.check_sweep)."""
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["overrides"]["train"] = [*config["overrides"]["train"], "network.epochs=0"]
    config["overrides"]["data"] = ["data.attacker_size=-5"]
    with pytest.raises(ConfigError) as info:
        check_sweep(config)
    message = str(info.value)
    assert "overrides.train: network.epochs=0" in message and "overrides.data: data.attacker_size=-5" in message


def test_populations_must_name_known_networks_and_never_share_a_model():
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["heldout"].append({"split": "owner", "seeds": [2], "networks": ["mlp", "lenet"]})
    with pytest.raises(ConfigError) as info:
        check_sweep(config)
    message = str(info.value)
    assert "unknown network 'lenet' (did you mean 'lenet5'?)" in message
    assert "model owner/mlp/2 is also in reference.calibration" in message
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["heldout"].append({"split": "owner", "seeds": [0], "networks": ["irnn"]})
    with pytest.raises(ConfigError, match="owner/irnn/0 is also in the key sources"):
        check_sweep(config)


def test_extraction_and_remote_eps_must_be_among_the_sweeps():
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["extraction"]["eps"] = [0.3]
    config["remote"]["eps"] = [*config["eps"], 0.5]
    with pytest.raises(ConfigError) as info:
        check_sweep(config)
    assert "extraction.eps [0.3]" in str(info.value) and "remote.eps [0.5]" in str(info.value)


def test_a_sweep_override_of_what_every_training_stage_sets_is_refused():
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["overrides"]["train"] = [*config["overrides"]["train"], "+trainer.max_epochs=1"]
    with pytest.raises(ConfigError, match=r"overrides.train: trainer.max_epochs=1 is refused: .*network.epochs"):
        check_sweep(config)


def test_bad_sweep_override_fails_in_snakemake(tmp_path):
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump({"overrides": {"train": ["network.epochs=0"]}}))
    done = snakemake_dry_run(tmp_path, configfile)
    assert done.returncode != 0 and "network.epochs=0" in done.stdout + done.stderr


# --------------------------------------------------------------------------- (b) the stage configs

PATHS = {
    "train": ["model_out={tmp}/model.pt", "metrics_out={tmp}/metrics.json"],
    "keygen": ["model_in={tmp}/model.pt", "key_out={tmp}/key.pt", "report_out={tmp}/keygen.json"],
    "embed": ["model_in={tmp}/model.pt", "key_in={tmp}/key.pt", "model_out={tmp}/marked.pt",
              "metrics_out={tmp}/metrics.json"],
    "verify": ["key_in={tmp}/key.pt", "model_in={tmp}/model.pt", "out={tmp}/record.json"],  # model_in may be null (remote)
}

# (stage, override, the dotted key the error must name)
BAD_VALUES = [
    ("keygen", "keygen.eps=-1", "keygen.eps"),
    ("keygen", "keygen.eps=0", "keygen.eps"),
    ("keygen", "keygen.eps=1.5", "keygen.eps"),
    ("keygen", "keygen.eps=abc", "keygen.eps"),
    ("keygen", "keygen.size=3", "keygen.size"),
    ("keygen", "keygen.size=0", "keygen.size"),
    ("keygen", "keygen.size=-4", "keygen.size"),
    ("keygen", "keygen.pool_size=0", "keygen.pool_size"),
    ("keygen", "keygen.max_pool=-1", "keygen.max_pool"),
    ("keygen", "seed=-1", "seed"),
    ("keygen", "data.attacker_size=-5", "data.attacker_size"),
    ("embed", "embed.key_fraction=2", "embed.key_fraction"),
    ("embed", "embed.key_fraction=0", "embed.key_fraction"),
    ("embed", "embed.lr=0", "embed.lr"),
    ("embed", "embed.max_epochs=0", "embed.max_epochs"),
    ("embed", "embed.batches_per_epoch=-1", "embed.batches_per_epoch"),
    ("embed", "embed.optimizer=adamw", "embed.optimizer"),
    ("embed", "batch_size=0", "batch_size"),
    ("train", "network.epochs=0", "network.epochs"),
    ("train", "network.epochs=2.5", "network.epochs"),
    ("train", "batch_size=0", "batch_size"),
    ("train", "network.lr=-0.1", "network.lr"),
    ("train", "network.one_cycle=sometimes", "network.one_cycle"),
    ("train", "network.precision=fp8", "network.precision"),
    ("train", "network.arch.hidden=0", "network.arch.hidden"),
    ("train", "network.arch.dropout=1.5", "network.arch.dropout"),
    ("train", "network=irnn network.arch.mode=cols", "network.arch.mode"),
    ("train", "network=cnn network.arch.dropout_dense=-0.5", "network.arch.dropout_dense"),
    ("train", "threads=0", "threads"),
    ("train", "data.val_size=-1", "data.val_size"),
    ("train", "data.limit_owner=0", "data.limit_owner"),
    ("train", "data.download=maybe", "data.download"),
    ("train", "data.name=cifar10", "data.name"),
    ("train", "data.root=''", "data.root"),
    ("train", "trainer.limit_train_batches=0", "trainer.limit_train_batches"),
    ("train", "model_out=''", "model_out"),
    ("verify", "decision.z=1.5", "decision.z"),
    ("verify", "decision.z=0", "decision.z"),
    ("verify", "decision.z=-0.05", "decision.z"),
    ("verify", "decision.rule=majority", "decision.rule"),
    ("keygen", "keygen.strategy=random", "keygen.strategy"),
    ("train", "split=test", "split"),
    ("train", "network.augment.kind=mixup", "network.augment.kind"),
    ("verify", "batch_size=0", "batch_size"),
    ("verify", "remote.timeout_s=0", "remote.timeout_s"),
    ("verify", "remote.retries=-1", "remote.retries"),
    ("verify", "remote.decoys=-0.5", "remote.decoys"),
    ("verify", "remote.budget=0", "remote.budget"),
]


def stage_module(stage: str):
    """The module whose run(cfg) does the stage's work: fsw.attack's run hands over to its torch side."""
    module = importlib.import_module(STAGES[stage].module)
    return importlib.import_module(f"{module.__name__}.stage") if stage == "attack" else module


def no_work(monkeypatch, module) -> None:
    """Make the stage fail loudly if it starts reading data, models or keys."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"{module.__name__}.run started working before it checked its config")

    for name in ("load_splits", "load_dataset", "load_model", "load_key", "build_network", "make_trainer"):
        monkeypatch.setattr(module, name, refuse, raising=False)


@pytest.mark.parametrize("stage,override,key", BAD_VALUES, ids=[f"{s}:{o}" for s, o, _ in BAD_VALUES])
def test_bad_stage_value_fails_at_once_naming_the_key(tmp_path, monkeypatch, stage, override, key):
    module = stage_module(stage)
    no_work(monkeypatch, module)
    cfg = tiny(stage, *[p.format(tmp=tmp_path) for p in PATHS[stage]], *override.split())
    with pytest.raises(ConfigError) as info:
        module.run(cfg)
    message = str(info.value)
    assert f"{key}=" in message and "is invalid" in message, message
    assert not any(tmp_path.iterdir()), "the stage wrote something"


# (stage, a trainer override, the key of the stage's config that sets that Trainer argument)
SET_BY_THE_STAGE = [
    ("train", "+trainer.max_epochs=1", "network.epochs"),
    ("train", "+trainer.precision=bf16-mixed", "network.precision"),
    ("embed", "+trainer.max_epochs=1", "embed.max_epochs"),
    ("embed", "trainer.limit_train_batches=5", "embed.batches_per_epoch"),
    ("train", "+trainer.logger=true", "log_dir"),
    ("embed", "+trainer.enable_checkpointing=true", "checkpoint_dir"),
]


@pytest.mark.parametrize("stage,override,key", SET_BY_THE_STAGE, ids=[f"{s}:{o}" for s, o, _ in SET_BY_THE_STAGE])
def test_a_trainer_key_the_stage_sets_is_refused_naming_the_key_to_set(tmp_path, monkeypatch, stage, override, key):
    module = stage_module(stage)
    no_work(monkeypatch, module)
    cfg = tiny(stage, *[p.format(tmp=tmp_path) for p in PATHS[stage]], override)
    with pytest.raises(ConfigError) as info:
        module.run(cfg)
    argument = override.lstrip("+").split("=")[0]
    assert f"{argument}=" in str(info.value) and f"from {key}; set that instead" in str(info.value), str(info.value)


def test_every_argument_a_stage_gives_the_trainer_is_refused_in_the_trainer_group():
    import inspect

    from fsw.training import make_trainer
    from fsw.validate import STAGE_TRAINER_ARGUMENTS

    assert set(inspect.signature(make_trainer).parameters) - {"cfg"} <= set(STAGE_TRAINER_ARGUMENTS)


@pytest.mark.parametrize("stage", PATHS)
def test_missing_path_is_named(tmp_path, monkeypatch, stage):
    module = stage_module(stage)
    no_work(monkeypatch, module)
    first, *rest = PATHS[stage]
    cfg = tiny(stage, *[p.format(tmp=tmp_path) for p in rest])
    with pytest.raises(ConfigError, match=f"{first.split('=')[0]} is required"):
        module.run(cfg)


def test_every_problem_is_reported_at_once(tmp_path):
    cfg = tiny("keygen", *[p.format(tmp=tmp_path) for p in PATHS["keygen"]], "keygen.eps=-1", "keygen.size=3", "seed=-2")
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    assert all(f"{key}=" in str(info.value) for key in ("keygen.eps", "keygen.size", "seed"))


@pytest.mark.parametrize("stage,overrides", [
    *(("train", [f"network={option}"]) for option in network_options()),
    ("keygen", []), ("embed", []), ("verify", []),
    ("report", ["records=[a.json,b.json]", "table_csv=t.csv", "table_md=t.md", "tables_dir=t", "plot_dir=p"]),
    ("attack", ["model_in=m.pt", "model_out=a.pt", "metrics_out=a.json", "attack=prune_global",
                "attack.level=0.5"]),
    ("extract", ["victim_in=m.pt", "model_out=s.pt", "metrics_out=s.json"]),
    ("serve", ["model_in=m.pt"]),
    ("figure1", ["figure_out=f.png", "metrics_out=m.json"]),
])
def test_shipped_stage_configs_are_valid(tmp_path, stage, overrides):
    if stage not in STAGES:
        pytest.skip(f"no stage {stage}")
    paths = [p.format(tmp=tmp_path) for p in PATHS.get(stage, [])]
    assert problems(compose(stage, paths + overrides)) == []


def test_every_rule_names_a_real_config_key(tmp_path):
    """No rule is dead: each dotted key exists in at least one stage's composed config."""
    configs = [compose(stage, [p.format(tmp=tmp_path) for p in PATHS.get(stage, [])] + extra)
               for stage, extra in [*(("train", [f"network={option}"]) for option in network_options()),
                                    ("keygen", []), ("embed", []),
                                    ("verify", []), ("report", [])]]
    for stage in ("serve", "extract", "figure1"):
        if stage in STAGES:
            try:
                configs.append(compose(stage, []))
            except Exception as exc:  # noqa: BLE001 - another engineer's stage may be in flux
                print(f"not checked: {stage} ({exc})")
    known = set()
    for cfg in configs:
        container = OmegaConf.to_container(cfg, resolve=False)

        def walk(node, prefix=""):
            for name, value in node.items():
                known.add(prefix + name)
                if isinstance(value, dict):
                    walk(value, prefix + name + ".")

        walk(container)
    dead = sorted(set(RULES) - known)
    assert not dead, f"rules for keys no stage config has: {dead}"


def test_choices_come_from_the_registries():
    from fsw.classifier import OPTIMIZERS
    from fsw.networks import NETWORKS

    assert set(RULES["network.arch.name"].choices()) == set(NETWORKS)
    assert set(RULES["network.optimizer"].choices()) == set(OPTIMIZERS)


NOT_CHECKED = {"report"}  # report.run does not call setup_run (its config is only file paths)


@pytest.mark.parametrize("stage", sorted(set(STAGES) - NOT_CHECKED))
def test_every_stage_checks_its_config_before_anything_else(stage):
    """run(cfg) of each stage starts with setup_run(cfg) (after its docstring), which validates."""
    import ast
    import inspect

    module = stage_module(stage)
    tree = ast.parse(inspect.getsource(module))
    (run,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "run"]
    body = [node for node in run.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    first = body[0]
    assert isinstance(first, ast.Expr) and ast.unparse(first.value) == "setup_run(cfg)", ast.unparse(first)


def schema_keys(schema: dict) -> dict[str, tuple[dict, bool]]:
    """Dotted key -> (its schema, whether its mapping requires it), for every key a sweep config may
    have. A list's items start a path of their own: a population's groups have split, seeds, networks."""
    def resolve(node: dict) -> dict:
        return {**schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], **node} if "$ref" in node else node

    keys = {}

    def walk(node: dict, prefix: str) -> None:
        node = resolve(node)
        if isinstance(node.get("items"), dict):
            walk(node["items"], "")
        for name, child in node.get("properties", {}).items():
            keys[prefix + name] = (resolve(child), name in node.get("required", []))
            walk(child, f"{prefix}{name}.")

    walk(schema, "")
    return keys


def test_schema_describes_every_key_and_gives_every_optional_one_a_default():
    keys = schema_keys(yaml.safe_load(SCHEMA.read_text()))
    assert {"gpu", "reference.calibration", "overrides.embed", "split"} <= set(keys)
    undescribed = [key for key, (node, _) in keys.items() if not node.get("description")]
    no_default = [key for key, (node, required) in keys.items() if not required and "default" not in node]
    assert not undescribed and not no_default, (undescribed, no_default)


def test_config_readme_describes_every_key():
    text = (REPO / "config" / "README.md").read_text()
    missing = [key for key in schema_keys(yaml.safe_load(SCHEMA.read_text())) if f"`{key}`" not in text]
    assert not missing, missing


def test_a_sweep_of_the_required_keys_gets_every_default():
    from snakemake.utils import validate

    config = {key: value for key, value in yaml.safe_load((REPO / "config" / "config.yaml").read_text()).items()
              if key in yaml.safe_load(SCHEMA.read_text())["required"]}
    validate(config, str(SCHEMA))
    assert (config["results"], config["models"], config["gpu"], config["attacks"]) == ("results", None, False, {})
    assert config["overrides"]["embed"] == [] and not any(config["overrides"].values())
    assert config["extraction"]["budgets"] == [] and config["remote"] == {"eps": []}
    check_sweep(config)


def test_schema_names_the_networks_fsw_builds():
    from fsw.grid import NETWORKS

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert tuple(schema["properties"]["networks"]["items"]["enum"]) == NETWORKS
    assert tuple(schema["properties"]["extraction"]["properties"]["surrogates"]["items"]["enum"]) == NETWORKS
