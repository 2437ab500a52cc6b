"""Stage `verify`: zero-bit black-box verification of a suspect model with a key.

Only the suspect's top-1 labels are used (the remote, label-only setting). The null model of the
paper: an unmarked model gets each key item right with probability 1/2, so the number of mismatches
m is Binomial(l, 1/2); the model is called marked iff m < theta, theta chosen at significance z.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import DictConfig, OmegaConf

from fsw.inference import test_accuracy
from fsw.config import setup_run
from fsw.data import load_splits
from fsw.errors import ConfigError
from fsw.io import load_model, provenance, write_json
from fsw.keygen import Key, load_key
from fsw.oracle.client import LocalOracle, Oracle, RemoteOracle
from fsw.stats.tests import binomial_p_value, binomial_threshold

log = logging.getLogger(__name__)


def verify_key(oracle: Oracle, key: Key, z: float, batch_size: int = 100) -> dict:
    """Query the key in batches; count mismatches; decide."""
    started = time.perf_counter()
    labels = torch.cat([oracle(chunk) for chunk in key.inputs.split(batch_size)])
    errors = int((labels != key.labels).sum())
    threshold = binomial_threshold(len(key), z)
    return {
        "key_errors": errors,
        "key_errors_true_adv": int(((labels != key.labels) & key.is_true_adversary).sum()),
        "key_errors_false_adv": int(((labels != key.labels) & ~key.is_true_adversary).sum()),
        "theta": threshold,
        "z": z,
        "p_value": binomial_p_value(errors, len(key)),
        "marked": errors < threshold,
        "queries": oracle.queries,
        "query_time_s": round(time.perf_counter() - started, 4),
    }


def query_suspect(cfg: DictConfig, net: torch.nn.Module | None, key: Key, decoys: torch.Tensor) -> dict:
    """verify_key through the remote API at cfg.remote.url if set, else through the local model."""
    z, batch_size = float(cfg.z), int(cfg.batch_size)
    if not cfg.remote.url:
        return {"oracle": "local", **verify_key(LocalOracle(net), key, z, batch_size)}
    budget = cfg.remote.budget
    with RemoteOracle.from_config(
        cfg.remote,
        batch_size=batch_size,
        budget=None if budget is None else int(budget),
        decoys=decoys,
        decoy_ratio=float(cfg.remote.decoys),
        seed=int(cfg.seed),
    ) as oracle:
        return {"oracle": "remote", **verify_key(oracle, key, z, batch_size)}


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    key = load_key(cfg.key_in)
    test = load_splits(cfg.data).test
    suspect = OmegaConf.to_container(cfg.suspect, resolve=True)
    # With a remote suspect the key queries go to the API alone; its file, if the verifier has it,
    # only describes it in the record (network, seed, test accuracy).
    if cfg.model_in:
        net, arch, meta = load_model(cfg.model_in)
    elif cfg.remote.url:
        net, arch, meta = None, {"name": suspect["network"]}, {"seed": suspect["seed"]}
    else:
        raise ConfigError("verify needs the suspect: model_in (its file) or remote.url (its API)")
    outcome = query_suspect(cfg, net, key, test.x)
    record = {
        "network": key.meta.get("network"),
        "seed": key.meta.get("model_seed"),
        "eps": key.eps,
        "key_size": len(key),
        "key_seed": key.seed,
        "key_hash": key.hash,
        "model_kind": suspect["kind"],
        "suspect_network": arch["name"],
        "suspect_seed": meta.get("seed"),
        "attack": suspect["attack"],
        "level": suspect["level"],
        "test_acc": None if net is None else test_accuracy(net, meta, test.x, test.y),
        **outcome,
        "wall_time_s": round(time.perf_counter() - started, 3),
        **provenance(),
    }
    log.info(
        "%s %s (%s) vs key %s: %d/%d errors in %d queries, theta %d -> %s",
        suspect["kind"], arch["name"], outcome["oracle"], key.hash[:12], outcome["key_errors"],
        len(key), outcome["queries"], outcome["theta"],
        "MARKED" if outcome["marked"] else "not marked",
    )
    write_json(cfg.out, record)
    return record
