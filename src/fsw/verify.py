"""Stage `verify`: zero-bit black-box verification of a suspect model with a key.

Only the suspect's top-1 labels are used (the remote, label-only setting). The verdict is that of the
decision rule `decision.rule`, fitted to the calibration the key ships with (`fsw.stats.decision`);
the paper's rule (the number of errors m against Binomial(l, 1/2), marked iff m < theta) is recorded
beside it, labelled as such.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig, OmegaConf

from fsw.config import resolved_config, setup_run
from fsw.data import check_same_dataset, load_splits
from fsw.errors import ConfigError, KeyFileError
from fsw.inference import test_accuracy
from fsw.io import load_model, provenance, write_json
from fsw.key import Key, load_key
from fsw.oracle.client import LocalOracle, Oracle, RemoteOracle
from fsw.stats.decision import DECISION_RULES, PAPER_RULE, Decision, null_errors

log = logging.getLogger(__name__)


def verify_key(oracle: Oracle, key: Key, decision: DictConfig) -> dict:
    """Query the key, count the suspect's errors, and decide: by `decision.rule` with the key's
    calibration (the paper's rule where the key has none), beside the paper's own outcome and every
    calibrated rule's (for the report's comparison)."""
    started = time.perf_counter()
    # One call: a remote oracle checks the whole verification, key and decoys, against its budget
    # before its first request (it cuts the call into requests itself).
    labels = oracle(key.inputs)
    wrong = labels != key.labels
    errors, l, z = int(wrong.sum()), len(key), float(decision.z)
    calibration = key.calibration
    matches = None if calibration is None else calibration.matches.numpy()
    families = () if calibration is None else calibration.families

    def judge(rule: str) -> Decision:
        return null_errors(rule, l, matches, families).decide(rule, errors, z)

    paper = judge(PAPER_RULE)
    rules = {name: judge(name).as_record() for name, rule in DECISION_RULES.items()
             if rule.calibrated and calibration is not None}
    chosen = judge(decision.rule) if calibration is not None else paper
    return {
        "key_errors": errors,
        "key_errors_true_adv": int((wrong & key.is_true_adversary).sum()),
        "key_errors_false_adv": int((wrong & ~key.is_true_adversary).sum()),
        "answers": labels.tolist(),
        "z": z,
        "decision": {**chosen.as_record(), "calibration_hash": None if calibration is None else calibration.hash},
        PAPER_RULE: paper.as_record(),
        "rules": rules,
        "queries": oracle.queries,
        "query_time_s": round(time.perf_counter() - started, 4),
    }


def query_suspect(cfg: DictConfig, net: torch.nn.Module | None, key: Key, decoys: torch.Tensor) -> dict:
    """verify_key through the remote API at cfg.remote.url if set, else through the local model."""
    if not cfg.remote.url:
        return {"oracle": "local", **verify_key(LocalOracle(net), key, cfg.decision)}
    budget = cfg.remote.budget
    with RemoteOracle.from_config(
        cfg.remote,
        batch_size=int(cfg.batch_size),
        budget=None if budget is None else int(budget),
        decoys=decoys,
        decoy_ratio=float(cfg.remote.decoys),
        seed=int(cfg.seed),
    ) as oracle:
        return {"oracle": "remote", **verify_key(oracle, key, cfg.decision)}


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    key = load_key(cfg.key_in)
    if cfg.key_commitment is not None and key.hash != str(cfg.key_commitment).strip().lower():
        raise KeyFileError(f"key {cfg.key_in} is not the committed key: its hash is {key.hash}, the commitment "
                           f"{cfg.key_commitment}; a key made or changed after its commitment proves nothing")
    if key.calibration is None:
        log.warning("key %s ships no calibration: the verdict is the paper's rule, which calls most "
                    "unmarked models marked (README, 'What a verification proves')", key.hash[:12])
    suspect = OmegaConf.to_container(cfg.suspect, resolve=True)
    # With a remote suspect the key queries go to the API alone; its file, if the verifier has it,
    # only describes it in the record (network, seed, test accuracy).
    files = {f"key {cfg.key_in}": key.meta}
    if cfg.model_in:
        net, arch, meta = load_model(cfg.model_in)
        files[f"model {cfg.model_in}"] = meta
    elif cfg.remote.url:
        net, arch, meta = None, {"name": suspect["network"]}, {"seed": suspect["seed"]}
    else:
        raise ConfigError("verify needs the suspect: model_in (its file) or remote.url (its API)")
    check_same_dataset(cfg.data.name, files)
    test = load_splits(cfg.data).test
    outcome = query_suspect(cfg, net, key, test.x)
    record = {
        "network": key.meta.get("network"),
        "seed": key.meta.get("model_seed"),
        "dataset": cfg.data.name,
        "eps": key.eps,
        "key_size": len(key),
        "key_true_adversaries": int(key.is_true_adversary.sum()),
        "key_seed": key.seed,
        "key_hash": key.hash,
        "key_committed": cfg.key_commitment is not None,
        "strategy": key.meta.get("strategy", "paper"),
        "model_kind": suspect["kind"],
        "population": suspect["population"],
        "suspect_network": meta.get("network", arch["name"]),
        "suspect_seed": meta.get("seed"),
        "suspect_split": meta.get("split"),
        "attack": suspect["attack"],
        "level": suspect["level"],
        "test_acc": None if net is None else test_accuracy(net, meta, test.x, test.y),
        **outcome,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "config": resolved_config(cfg),
        **provenance(),
    }
    decision, paper = outcome["decision"], outcome[PAPER_RULE]
    log.info(
        "%s %s (%s) vs key %s: %d/%d errors in %d queries -> %s by %s (p = %.3g, marked below %d errors); "
        "the paper's rule: %s",
        suspect["population"], record["suspect_network"], outcome["oracle"], key.hash[:12], outcome["key_errors"],
        len(key), outcome["queries"], "MARKED" if decision["marked"] else "not marked", decision["rule"],
        decision["p_value"], decision["threshold"], "marked" if paper["marked"] else "not marked",
    )
    write_json(cfg.out, record)
    return record
