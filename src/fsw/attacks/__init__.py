"""Removal attacks on marked models: a registry name -> Attack, and the one way to apply them.

Every attack gets a copy of the model, a level, the attack stage's config and the attacker's data
(never the key) and returns a model of the same architecture; see fsw.attacks.base.Attack.
"""

from __future__ import annotations

import copy
from numbers import Real

import torch
from omegaconf import DictConfig
from torch import nn

from fsw.attacks import compression, finetune, none, overwrite, pruning, quantization
from fsw.config import seed_everything
from fsw.attacks.base import Attack, weight_parameters
from fsw.data import Split
from fsw.errors import ConfigError
from fsw.networks import build_network

ATTACKS: dict[str, Attack] = {
    attack.name: attack
    for module in (none, pruning, finetune, compression, quantization, overwrite)
    for attack in module.ATTACKS
}


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


def apply_attack(
    name: str, level: float, net: nn.Module, arch: dict, cfg: DictConfig, data: Split
) -> tuple[nn.Module, dict]:
    """Attack a copy of `net` (left untouched); returns the attacked network, in eval mode, and what
    the attack measured, plus `weight_rel_change` = ||W' - W|| / ||W|| over all weight tensors.

    Seeded from `cfg.seed`, so the same inputs give the same model.
    """
    attack = check_attack(name, level)
    seed_everything(int(cfg.seed))
    attacked, measured = attack.apply(copy.deepcopy(net), level, cfg, data)
    # A fresh network of `arch` loading the attacked weights strictly: an attack that changed the
    # architecture fails here rather than in verify, and no pruning hook or frozen flag survives.
    rebuilt = build_network(arch)
    rebuilt.load_state_dict(attacked.state_dict(), strict=True)
    before = torch.cat([w.detach().flatten() for _, w in weight_parameters(net)])
    after = torch.cat([w.detach().flatten() for _, w in weight_parameters(rebuilt)])
    measured["weight_rel_change"] = float((after - before).norm() / before.norm())
    return rebuilt.eval(), measured
