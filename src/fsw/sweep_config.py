"""The sweep config, checked before Snakemake schedules any job: keys the schema does not know
(each named with the nearest known key), the Hydra overrides of every stage (by range, then by
composing each stage's config with them as its jobs will), and the populations of unmarked models.
Torch-free, so that every `snakemake` call stays fast; the rule `sweep_config` keeps the checked
config beside the results."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fsw.errors import ConfigError
from fsw.validate import check_overrides


def nearest(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'X'?)` with the known name closest to a misspelled one, or nothing."""
    near = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _dotted(path: Iterable[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def unknown_key_problems(config: Mapping, schema: Mapping) -> list[str]:
    """Every key of a sweep config its JSON schema does not know, at any depth, each named with the
    nearest known key: from the schema's own errors (additionalProperties, propertyNames)."""
    from jsonschema import Draft202012Validator

    found = []
    for error in Draft202012Validator(schema).iter_errors(config):
        where = _dotted(error.absolute_path)
        if error.validator == "additionalProperties" and error.validator_value is False:
            known = list(error.schema.get("properties", {}))
            unknown = [key for key in error.instance if key not in known]
        elif error.validator == "enum" and "propertyNames" in error.absolute_schema_path:
            known, unknown = error.validator_value, [error.instance]
        else:
            continue
        for key in unknown:
            path = _dotted([*error.absolute_path, key])
            found.append(f"unknown key {path!r}" + nearest(path, [_dotted([*error.absolute_path, k]) for k in known])
                         + f"; {where or 'the sweep config'} has {', '.join(map(str, known))}")
    return found


def check_sweep_keys(config: Mapping, schema_path: str | Path) -> None:
    """For the Snakefile, before the schema's own check: raise ConfigError naming every misspelled key."""
    found = unknown_key_problems(config, yaml.safe_load(Path(schema_path).read_text()))
    if found:
        raise ConfigError("bad sweep config: " + "; ".join(found))


# The stages whose jobs take the sweep's `overrides`; `data` applies to every one but report.
OVERRIDDEN_STAGES = ("train", "keygen", "embed", "attack", "extract", "verify", "report")


def stage_overrides(config: Mapping, stage: str) -> list[tuple[str, str]]:
    """(section of `overrides`, override) for every sweep override a job of `stage` gets, in order."""
    sections = (["data"] if stage != "report" else []) + [stage]
    return [(section, text) for section in sections for text in (config.get("overrides") or {}).get(section) or []]


def job_options(config: Mapping, stage: str) -> tuple[str, list[str]] | None:
    """The Hydra group whose option each job of `stage` picks from the sweep, and the options picked."""
    if stage == "train":
        groups = [*config["reference"]["selection"], *config["reference"]["calibration"], *config["heldout"]]
        return "network", sorted({*config["networks"], *(name for group in groups for name in group["networks"])})
    if stage == "extract":
        return "network", sorted(config["extraction"]["surrogates"])
    if stage == "attack":
        return "attack", sorted(name for name, levels in config["attacks"].items() if levels)
    return None


def _override_key(text: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([text])[0].key_or_group


def _config_keys(cfg: DictConfig) -> set[str]:
    keys = set()

    def walk(node: Mapping, prefix: str) -> None:
        for name, value in node.items():
            keys.add(prefix + str(name))
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{name}.")

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return keys


class Inapplicable(NamedTuple):
    """Why Hydra cannot apply an override: the key it names, the config's keys, Hydra's message."""

    key: str
    keys: set[str]
    message: str


def _inapplicable(stage: str, overrides: list[tuple[str, str]], choice: list[str]) -> dict[tuple[str, str], Inapplicable]:
    """(section, override) -> why, for each override that Hydra cannot apply to the stage's config
    with the group option `choice`: composed once when all apply, one by one to find those that don't."""
    from hydra.errors import HydraException

    from fsw.stages import compose

    failures = (HydraException, OmegaConfBaseException)
    try:
        compose(stage, [*(text for _, text in overrides), *choice])
        return {}
    except failures:
        pass
    try:
        compose(stage, choice)
    except failures:
        return {}  # an unknown network option: population_problems names it
    found, applied = {}, []
    for section, text in overrides:
        try:
            compose(stage, [*applied, text, *choice])
            applied.append(text)
        except failures as exc:
            keys = _config_keys(compose(stage, [*applied, *choice]))
            found[section, text] = Inapplicable(_override_key(text), keys, str(exc).splitlines()[0])
    return found


def override_problems(config: Mapping) -> list[str]:
    """Every sweep override that a job of its stage could not apply, each once: composed with each
    stage's config as its jobs compose it, and, where an override reaches into the group a job picks
    an option of (network, attack), with every option the sweep picks."""
    found: dict[tuple[str, str], tuple[str, list[list[str]], list[list[str]], list[Inapplicable]]] = {}
    for stage in OVERRIDDEN_STAGES:
        overrides = stage_overrides(config, stage)
        if not overrides:
            continue
        picked = job_options(config, stage)
        reached = picked and any(_override_key(text).split(".")[0] == picked[0] for _, text in overrides)
        variants = [[f"{picked[0]}={option}"] for option in picked[1]] if reached else [[]]
        for choice in variants:
            for override, why in _inapplicable(stage, overrides, choice).items():
                if found.get(override, (stage,))[0] != stage:
                    continue  # a data override, named once: as the first stage that reads it sees it
                _, _, failed, reasons = found.setdefault(override, (stage, variants, [], []))
                failed.append(choice)
                reasons.append(why)
    problems = []
    for (section, text), (stage, variants, failed, reasons) in found.items():
        key, keys = reasons[0].key, set().union(*(why.keys for why in reasons))
        options = "" if failed == variants else " with " + ", ".join(choice for choices in failed for choice in choices)
        where = f"the {stage} config{options}"
        why = (f"{where} has no key {key!r}{nearest(key, keys)}" if key not in keys
               else f"does not apply to {where}: {reasons[0].message}")
        problems.append(f"overrides.{section}: {text}: {why}")
    return problems


def population_problems(config: Mapping, network_options: Iterable[str]) -> list[str]:
    """Unknown network options in the populations, and models that belong to two of them (or are a
    key source): a model is its (split, network, seed), and the populations must never mix."""
    options = set(network_options)
    owner = {("owner", network, seed) for network in config.get("networks", []) for seed in config.get("seeds", [])}
    groups = {f"reference.{name}": groups for name, groups in (config.get("reference") or {}).items()}
    groups["heldout"] = config.get("heldout") or []
    found, seen = [], {model: "the key sources" for model in owner}
    for name, population in groups.items():
        for group in population:
            for network in group["networks"]:
                if network not in options:
                    found.append(f"{name}: unknown network {network!r}{nearest(network, options)}; "
                                 f"options: {', '.join(sorted(options))}")
                for seed in group["seeds"]:
                    model = (group["split"], network, seed)
                    if model in seen:
                        found.append(f"{name}: model {'/'.join(map(str, model))} is also in {seen[model]}; "
                                     "populations must never share a model")
                    seen.setdefault(model, name)
    return found


def check_sweep(config: Mapping, network_options: Iterable[str] | None = None) -> None:
    """For the Snakefile: check what the JSON schema cannot, before any job runs: the Hydra
    `overrides`, that the extraction and remote eps are among the sweep's (keys exist there), and
    that the null populations name known network options and never share a model."""
    from fsw.grid import network_options as options

    found = population_problems(config, options() if network_options is None else network_options)
    for stage, overrides in (config.get("overrides") or {}).items():
        found += check_overrides(overrides or [], where=f"overrides.{stage}")
    found += override_problems(config)
    for section in ("extraction", "remote"):
        unknown = sorted(set((config.get(section) or {}).get("eps", [])) - set(config.get("eps", [])))
        if unknown:
            found.append(f"{section}.eps {unknown} are not among the sweep's eps {config.get('eps')}: no key is made there")
    if found:
        raise ConfigError("bad config value" + ("s" if len(found) > 1 else "") + ": " + "; ".join(found))
