"""Range rules for every stage config value, keyed by dotted path; `fsw.config.setup_run` checks them.

Every stage's `run(cfg)` starts with `setup_run(cfg)`, which calls `check_config(cfg)` before any
data, model or key is read: a bad value (`keygen.eps=-1`, `keygen.size=3`, `network.epochs=0`, ...) fails
at once with `fsw.errors.ConfigError` naming the dotted key, the value and the allowed range. All
problems of a config are reported together.

Why a table of rules and not Hydra structured configs (dataclasses registered in a ConfigStore):

- OmegaConf checks a structured config's *types* when it merges, but never calls `__post_init__`
  on a merge, so range checks would still need a separate pass (`OmegaConf.to_object`) in every
  stage; types alone catch none of the issue's cases (eps=-1, size=3, epochs=0 are well-typed).
- Structured schemas would have to mirror every YAML group (network/, data/, key/, embed/, trainer/,
  attack/, ...) in Python and be wired into each primary config's defaults list: two places to edit
  for each new key, and a schema mismatch fails at compose time with OmegaConf's wording, not ours.
- A rule applies only where its key exists, so one table serves every stage, old and new (serve,
  extract, attacks): a new stage calls `setup_run` and gets the checks of the keys it shares; a
  new key is one line here. `tests/test_config_validation.py` is table-driven over the same table.
- This module imports no torch, so the Snakefile can also check the sweep config's Hydra overrides
  by these rules before any job runs (`fsw.sweep_config`) without slowing every `snakemake` call.

Names (networks, optimizers) come from their registries, `fsw.networks.NETWORKS` and
`fsw.classifier.OPTIMIZERS`, imported only when such a value is checked, so this module stays
torch-free at import.
"""

from __future__ import annotations

import importlib
import math
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from fsw.errors import ConfigError

# The datasets fsw.data reads (data.name) -> the folder of each under the data root, <root>/<folder>/raw/:
# torchvision's layout, named after its dataset class (which downloads it there).
DATASETS = {"mnist": "MNIST", "fashion": "FashionMNIST"}
IRNN_MODES = {"rows": 28, "pixels": 784}  # fsw.networks.IRNN's modes -> sequence length
VACUOUS = ("refuse", "warn")  # what keygen does with a key on which the decision can call nothing marked
TRAINING_SPLITS = ("owner", "attacker")  # the parts of a dataset a model may be trained on
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range
MAX_HIDDEN_LAYERS = 64  # an MLP's depth: far beyond any useful MNIST model, and quick to build


@dataclass(frozen=True)
class Rule:
    """What one config value may be. `kind`: int, number, bool, choice, str or path."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is excluded
    hi_open: bool = False
    even: bool = False
    registry: str = ""  # for kind "choice": "module:NAME" of a dict whose keys are the choices
    optional: bool = False  # null is allowed

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.choices()))
        elif self.kind in ("str", "path"):
            text = "a non-empty " + ("path" if self.kind == "path" else "string")
        elif self.kind == "bool":
            text = "true or false"
        else:
            text = {"int": "an integer", "number": "a number"}[self.kind]
            if self.even:
                text = "an even " + text.split()[-1]
            if self.lo is not None and self.hi is not None:
                text += f" in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
            elif self.lo is not None:
                text += f" {'>' if self.lo_open else '>='} {self.lo:g}"
            elif self.hi is not None:
                text += f" {'<' if self.hi_open else '<='} {self.hi:g}"
        return text + (" (or null)" if self.optional else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices()
        if self.kind in ("str", "path"):
            return isinstance(value, str) and value.strip() != "" and "\x00" not in value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            return False
        return not (self.even and value % 2)

    def choices(self) -> tuple:
        module, name = self.registry.split(":")
        return tuple(getattr(importlib.import_module(module), name))


def integer(lo=None, hi=None, *, even=False, optional=False) -> Rule:
    return Rule("int", lo, hi, even=even, optional=optional)


def number(lo=None, hi=None, *, lo_open=False, hi_open=False, optional=False) -> Rule:
    return Rule("number", lo, hi, lo_open=lo_open, hi_open=hi_open, optional=optional)


def fraction(*, lo_open=True, hi_open=True) -> Rule:
    return number(0, 1, lo_open=lo_open, hi_open=hi_open)


def choice(registry: str) -> Rule:
    """One of the keys of the dict `registry` ("module:NAME")."""
    return Rule("choice", registry=registry)


BOOL = Rule("bool")
PATH = Rule("path")
OPTIONAL_PATH = Rule("path", optional=True)
POSITIVE = integer(1)
OPTIONAL_POSITIVE = integer(1, optional=True)
COUNT = integer(0)  # a size that may be zero
DROPOUT = number(0, 1, hi_open=True)
LEARNING_RATE = number(0, lo_open=True)

# Every value a stage reads, by dotted path. A rule applies when its key is in the config.
RULES: dict[str, Rule] = {
    # _stage.yaml: every stage
    "seed": integer(0, MAX_SEED),
    "threads": OPTIONAL_POSITIVE,
    "batch_size": POSITIVE,
    # the files Snakemake passes (see the stages' primary configs)
    "model_in": OPTIONAL_PATH,  # null only where a stage allows it (verify with remote.url)
    "key_in": PATH,
    "model_out": PATH,
    "key_out": PATH,
    "report_out": PATH,
    "metrics_out": PATH,
    "log_dir": OPTIONAL_PATH,
    "checkpoint_dir": OPTIONAL_PATH,
    "out": PATH,
    "table_csv": PATH,
    "table_md": PATH,
    "tables_dir": PATH,
    "plot_dir": PATH,
    "recommended_strategy": choice("fsw.grid:KEY_STRATEGIES"),
    "url_file": OPTIONAL_PATH,
    "key_commitment": Rule("str", optional=True),
    # data/
    "data.name": choice("fsw.validate:DATASETS"),
    "data.root": PATH,
    "data.download": BOOL,
    "data.split_seed": integer(0, MAX_SEED),
    "data.attacker_size": COUNT,
    "data.val_size": COUNT,
    "data.limit_owner": OPTIONAL_POSITIVE,
    "data.limit_val": OPTIONAL_POSITIVE,
    "data.limit_attacker": OPTIONAL_POSITIVE,
    "data.limit_test": OPTIONAL_POSITIVE,
    # network/
    "network.name": Rule("str"),
    "network.arch.name": choice("fsw.networks:NETWORKS"),
    "network.arch.hidden": POSITIVE,
    "network.arch.dropout": DROPOUT,
    "network.arch.dropout_conv": DROPOUT,
    "network.arch.dropout_dense": DROPOUT,
    "network.arch.mode": choice("fsw.validate:IRNN_MODES"),
    "network.arch.depth": integer(0, MAX_HIDDEN_LAYERS),
    "network.arch.width": POSITIVE,
    "network.arch.dense": POSITIVE,
    "network.augment.kind": choice("fsw.classifier:AUGMENTATIONS"),
    "network.augment.eps": fraction(hi_open=False),
    "network.augment.sigma": number(0, lo_open=True),
    "split": choice("fsw.validate:TRAINING_SPLITS"),
    "network.optimizer": choice("fsw.classifier:OPTIMIZERS"),
    "network.gradient_clip_val": number(0, optional=True),
    "network.precision": choice("fsw.config:PRECISIONS"),
    "network.lr": LEARNING_RATE,
    "network.one_cycle": BOOL,
    "network.epochs": POSITIVE,
    "network.batch_size": POSITIVE,
    # trainer/
    "trainer.deterministic": BOOL,
    "trainer.enable_progress_bar": BOOL,
    "trainer.limit_train_batches": number(0, lo_open=True, optional=True),
    "trainer.limit_val_batches": number(0, optional=True),
    # key/
    "keygen.strategy": choice("fsw.grid:KEY_STRATEGIES"),
    "keygen.vacuous": choice("fsw.validate:VACUOUS"),
    "suspect.population": choice("fsw.grid:POPULATIONS"),
    "keygen.transfer.scan_size": POSITIVE,
    "keygen.transfer.pool_size": POSITIVE,
    "keygen.transfer.steps": POSITIVE,
    "keygen.transfer.kappa": number(0),
    "keygen.backdoor.patch": integer(1, 28),  # a square within the 28x28 image
    "keygen.ipguard.scan_size": POSITIVE,
    "keygen.ipguard.steps": POSITIVE,
    "keygen.ipguard.kappa": number(0),
    "keygen.conferrable.scan_size": POSITIVE,
    "keygen.conferrable.steps": POSITIVE,
    "keygen.conferrable.kappa": number(0),
    "keygen.conferrable.surrogates": POSITIVE,
    "keygen.conferrable.surrogate_size": POSITIVE,
    "keygen.conferrable.surrogate_epochs": POSITIVE,
    "keygen.conferrable.surrogate_hidden": POSITIVE,
    "decision.rule": choice("fsw.stats.decision:DECISION_RULES"),
    "decision.z": fraction(),
    "keygen.eps": fraction(hi_open=False),  # (0, 1]: an FGSM step on images in [0, 1]
    "keygen.size": integer(2, even=True),  # even: the paper's keys are half true, half false adversaries
    "keygen.pool_size": POSITIVE,
    "keygen.max_pool": OPTIONAL_POSITIVE,
    # embed/
    "embed.optimizer": choice("fsw.classifier:OPTIMIZERS"),
    "embed.lr": LEARNING_RATE,
    "embed.max_epochs": POSITIVE,
    "embed.batches_per_epoch": POSITIVE,
    "embed.key_fraction": fraction(),
    # remote label-only API (verify, extract)
    "remote.url": Rule("str", optional=True),
    "remote.budget": OPTIONAL_POSITIVE,
    "remote.batch_size": POSITIVE,
    "remote.timeout_s": number(0, lo_open=True),
    "remote.retries": COUNT,
    "remote.backoff_s": number(0),
    "remote.deadline_s": number(0, lo_open=True),
    "remote.decoys": number(0),
    # extract
    "victim_in": OPTIONAL_PATH,
    "budget": POSITIVE,
    "augment_rounds": COUNT,
    "augment_eps": fraction(hi_open=False),
    # serve
    "port": integer(0, 65535),  # 0: a free port chosen by the OS
    "max_batch": POSITIVE,
    "max_body_bytes": POSITIVE,
    "keep_alive_s": number(0),
    "read_timeout_s": number(0, lo_open=True),
    "max_concurrent_requests": POSITIVE,
    "stop_when_stdin_closes": BOOL,
    # figure1 (Figure 1: a 2-D problem, its frontier before and after stitching)
    "figure_out": PATH,  # the PNG; the SVG is written beside it
    "figure1.n_train": POSITIVE,
    "figure1.n_test": POSITIVE,
    "figure1.noise": number(0),
    "figure1.hidden": POSITIVE,
    "figure1.optimizer": choice("fsw.classifier:OPTIMIZERS"),
    "figure1.lr": LEARNING_RATE,
    "figure1.epochs": POSITIVE,
    "figure1.grid": integer(2),
    "figure1.arrows": BOOL,
}

# A network description (a model file's `arch`, as the config's `network.arch`), but for its name,
# which fsw.networks.build_network checks against its registry.
ARCH_RULES: dict[str, Rule] = {path.removeprefix("network.arch."): rule for path, rule in RULES.items()
                               if path.startswith("network.arch.") and path != "network.arch.name"}

# Keys whose value must be a list of paths, and whether it may be empty.
PATH_LISTS = {"records": False, "selection_in": True, "calibration_in": True}


@dataclass(frozen=True)
class SetByStage:
    """A Trainer argument that fsw sets from the stage's own config `keys`: in every stage that
    trains, or (`everywhere` false) only in the stages that have one of `keys`."""

    keys: tuple[str, ...]
    everywhere: bool = True


# The Trainer arguments fsw.training.make_trainer takes from the stage rather than from the
# `trainer` group. Each value has one key: when a trainer key and the stage's own could both set it,
# one was dropped without a word (`+trainer.max_epochs=1` trained for network.epochs epochs), so the
# trainer group holds only what no stage decides and a trainer key among these is refused, naming
# the key to set instead. `trainer.limit_train_batches` stays the trainer group's where no stage
# decides it (train, extract, the attacks); `trainer.precision` likewise outside train and extract.
STAGE_TRAINER_ARGUMENTS = {
    "max_epochs": SetByStage(("network.epochs", "embed.max_epochs", "attack.level", "figure1.epochs")),
    "precision": SetByStage(("network.precision",), everywhere=False),
    "limit_train_batches": SetByStage(("embed.batches_per_epoch",), everywhere=False),
    "callbacks": SetByStage(()),
    "logger": SetByStage(("log_dir",)),
    "enable_checkpointing": SetByStage(("checkpoint_dir",)),
}

_ABSENT = object()


def _problem(path: str, value: Any, rule: Rule) -> str:
    return f"{path}={value!r} is invalid: it must be {rule.describe()}"


def _set_by_stage_problem(argument: str, value: Any, keys: Iterable[str], present: bool) -> str:
    """The message for a trainer key that fsw sets from `keys`, which the stage has if `present`."""
    named = " or ".join(keys)
    if present:
        source = f"from {named}; set that instead"
    elif named:
        source = f"itself (from {named}, in the stages that have it)"
    else:
        source = "itself"
    return (f"trainer.{argument}={value!r} is refused: fsw sets the Trainer's {argument} {source} "
            f"(the trainer group holds only what no stage decides)")


def _stage_trainer_problems(cfg: DictConfig) -> list[str]:
    found = []
    for argument, setting in STAGE_TRAINER_ARGUMENTS.items():
        value = OmegaConf.select(cfg, f"trainer.{argument}", default=None)
        if value is None:  # the group's "not set", e.g. limit_train_batches: null
            continue
        present = [key for key in setting.keys if OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT]
        if present or setting.everywhere:
            found.append(_set_by_stage_problem(argument, value, present or setting.keys, bool(present)))
    return found


def problems(cfg: DictConfig | Mapping) -> list[str]:
    """Every rule the config breaks, one message each, in the order of RULES, then every trainer key
    that the stage sets itself (STAGE_TRAINER_ARGUMENTS)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    found = []
    for path, rule in RULES.items():
        try:
            value = OmegaConf.select(cfg, path, default=_ABSENT, throw_on_missing=True)
        except MissingMandatoryValue:
            found.append(f"{path} is required but not set (pass {path}=VALUE)")
            continue
        except (InterpolationResolutionError, OmegaConfBaseException) as exc:
            found.append(f"{path} cannot be resolved: {exc}")
            continue
        if value is _ABSENT:
            continue
        if isinstance(value, (DictConfig, ListConfig)) or not rule.accepts(value):
            found.append(_problem(path, value, rule))
    for path, may_be_empty in PATH_LISTS.items():
        try:
            value = OmegaConf.select(cfg, path, default=_ABSENT, throw_on_missing=True)
        except MissingMandatoryValue:
            found.append(f"{path} is required but not set (pass {path}=[PATH,...])")
            continue
        if value is _ABSENT:
            continue
        if not isinstance(value, ListConfig) or (len(value) == 0 and not may_be_empty) \
                or not all(PATH.accepts(v) for v in value):
            found.append(f"{path}={value!r} is invalid: it must be a {'' if may_be_empty else 'non-empty '}list of paths")
    return found + _stage_trainer_problems(cfg)


def record_problems(record: Mapping, rules: Mapping[str, Rule], prefix: str, closed: bool = False) -> list[str]:
    """The problems of what a file records (a model's arch, a file's metadata) by `rules`, keyed by
    field; with `closed`, a field without a rule is one too. Values are shown shortened: the file
    is untrusted."""
    found = []
    for field, value in record.items():
        rule = rules.get(field)
        if rule is None:
            if closed:
                found.append(f"{prefix}.{reprlib.repr(field)[1:-1]} is not a field fsw knows")
        elif not rule.accepts(value):
            found.append(f"{prefix}.{field}={reprlib.repr(value)} is invalid: it must be {rule.describe()}")
    return found


def check_config(cfg: DictConfig | Mapping) -> None:
    """Raise ConfigError naming every key of a stage config whose value breaks its rule."""
    found = problems(cfg)
    if found:
        raise ConfigError("bad config value" + ("s" if len(found) > 1 else "") + ": " + "; ".join(found))


def check_overrides(overrides: Iterable[str], where: str = "overrides") -> list[str]:
    """The problems of Hydra `key=value` override strings whose key has a rule (no composing needed)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    found = []
    for text in overrides:
        try:
            (override,) = OverridesParser.create().parse_overrides([str(text)])
        except HydraException as exc:
            found.append(f"{where}: cannot parse {text!r}: {exc}")
            continue
        if override.is_delete() or override.is_sweep_override():
            continue
        rule = RULES.get(override.key_or_group)
        value = override.value()
        if rule is not None and not rule.accepts(value):
            found.append(f"{where}: " + _problem(override.key_or_group, value, rule))
        argument = override.key_or_group.removeprefix("trainer.")
        setting = STAGE_TRAINER_ARGUMENTS.get(argument) if override.key_or_group.startswith("trainer.") else None
        # Without the stage's composed config, only what every training stage sets can be refused here.
        if setting is not None and setting.everywhere and value is not None:
            found.append(f"{where}: " + _set_by_stage_problem(argument, value, setting.keys, present=True))
    return found
