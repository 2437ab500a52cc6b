"""Stage `attack`: removal attacks on a marked model, with the attacker's data and never the key.

This module is the registry: every attack's name, family, the levels it accepts and what a level
means, read by the workflow, the config checks and the report without importing torch. Each
attack's code lives in its own module here and is imported only when the attack is applied
(`fsw.attack.stage`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from types import MappingProxyType

from fsw.errors import ConfigError

FLOAT16_BITS = 16  # quantize's level for IEEE float16; 2..8 are integer grids
INTEGER_BITS = range(2, 9)
FAMILIES = ("pruning", "fine-tuning", "compression", "overwriting")


@dataclass(frozen=True)
class Attack:
    """A removal attack: `implementation(net, level, cfg, data, **options) -> (net, measurements)`.

    `net` is a private copy the attack may modify; `level` has passed `accepts`; `cfg` is the attack
    stage's config (the attack's settings under `cfg.attack`, plus `cfg.trainer` and `cfg.seed`);
    `data` is the attacker's split, disjoint from the owner's. No attack is given the key.
    """

    name: str
    family: str  # one of FAMILIES, or "none" for the unattacked baseline
    level_meaning: str  # what the level is and which values are allowed, shown in errors
    accepts: Callable[[float], bool]
    axis: str  # the x axis of its robustness figure: the level, with its unit
    implementation: str  # "module:function" under fsw.attack, imported when the attack is applied
    options: Mapping = field(default_factory=dict)  # keyword arguments of the implementation
    stronger_when_smaller: bool = False  # quantize: fewer bits per weight is a stronger attack

    def apply(self, net, level: float, cfg, data):
        module, function = self.implementation.split(":")
        attack = getattr(importlib.import_module(f"fsw.attack.{module}"), function)
        return attack(net, level, cfg, data, **self.options)


def is_whole(level: float) -> bool:
    return float(level).is_integer()


def _sparsity(level: float) -> bool:
    return 0.0 <= level < 1.0


def _epochs(level: float) -> bool:
    return level >= 1 and is_whole(level)


SPARSITY = "the fraction of weights set to zero, in [0, 1)"
EPOCHS = "the number of epochs over the attacker's data, a positive integer"
_FINETUNING = {  # name: (re-initialise the last layer, train all layers, axis)
    "ftll": (False, False, "epochs of fine-tuning the last layer on the attacker's data"),
    "ftal": (False, True, "epochs of fine-tuning all layers on the attacker's data"),
    "rtll": (True, False, "epochs of training a re-initialised last layer on the attacker's data"),
    "rtal": (True, True, "epochs of training all layers after re-initialising the last one"),
}

ATTACKS: Mapping[str, Attack] = MappingProxyType({attack.name: attack for attack in (
    Attack("none", "none", "0 (the model is left unchanged)", lambda level: level == 0, "unattacked",
           "stage:unchanged"),
    Attack("prune_global", "pruning", SPARSITY + ", one threshold over all layers", _sparsity,
           "pruning rate (share of weights zeroed, one threshold for all layers)", "pruning:prune_weights",
           {"global_threshold": True}),
    Attack("prune_layer", "pruning", SPARSITY + " in every layer", _sparsity,
           "pruning rate (share of each layer's weights zeroed)", "pruning:prune_weights",
           {"global_threshold": False}),
    *(Attack(name, "fine-tuning", EPOCHS, _epochs, axis, "finetune:finetune",
             {"reinitialise_last": reinit, "train_all": train_all})
      for name, (reinit, train_all, axis) in _FINETUNING.items()),
    Attack("lowrank", "compression", "the largest relative Frobenius error allowed in each layer, in (0, 1)",
           lambda level: 0.0 < level < 1.0, "low-rank bound (largest relative error allowed per layer)",
           "compression:compress"),
    Attack("quantize", "compression",
           f"the bits per weight: {FLOAT16_BITS} (float16) or {INTEGER_BITS.start}..{INTEGER_BITS.stop - 1} "
           "(integer grid)",
           lambda level: is_whole(level) and (level == FLOAT16_BITS or int(level) in INTEGER_BITS),
           f"bits per weight (fewer = stronger; {FLOAT16_BITS} = float16)", "quantization:quantize",
           stronger_when_smaller=True),
    Attack("overwrite", "overwriting", "the attacker's key size, a positive even integer",
           lambda level: level >= 2 and is_whole(level) and int(level) % 2 == 0,
           "attacker's key size (items embedded by the attacker)", "overwrite:overwrite"),
)})


def check_attack(name: str, level) -> Attack:
    """The attack registered as `name`, once `level` is known to be one it accepts."""
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; registered attacks: {', '.join(ATTACKS)}")
    attack = ATTACKS[name]
    if isinstance(level, bool) or not isinstance(level, Real) or not attack.accepts(level):
        raise ConfigError(
            f"attack {name!r} does not accept level {level!r}: its level is {attack.level_meaning}"
        )
    return attack


def run(cfg) -> dict:
    from fsw.attack.stage import run as run_stage  # torch: only when an attack runs

    return run_stage(cfg)
