"""Stage `keygen`: make a key from the owner's model by one of the key strategies, and ship it with the
answers of the owner's reference models (its calibration). The paper's and the transfer strategy
are here; the other ownership schemes in `fsw.schemes`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from fsw import schemes
from fsw.adversarial import fgsm, margin_pgd, margins
from fsw.config import resolved_config, setup_run
from fsw.data import check_same_dataset, dataset_of, load_splits
from fsw.errors import KeygenError
from fsw.grid import KEY_STRATEGIES
from fsw.inference import INFERENCE_BATCH, predict
from fsw.io import json_text, load_model, provenance, write_together
from fsw.key import Calibration, Key, key_bytes
from fsw.stats.decision import PAPER_RULE, null_errors

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Candidates:
    """FGSM applied to a pool of images; which ones the model got right and which FGSM flipped."""

    x_adv: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    correct: torch.Tensor  # the clean image is classified correctly
    flipped: torch.Tensor  # ... and its adversarial version is not


def find_candidates(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, eps: float,
    batch_size: int = INFERENCE_BATCH,
) -> Candidates:
    parts = []
    for xb, yb, ib in zip(x.split(batch_size), y.split(batch_size), index.split(batch_size)):
        correct = predict(net, xb) == yb
        x_adv = fgsm(net, xb, yb, eps)
        flipped = correct & (predict(net, x_adv) != yb)
        parts.append((x_adv, yb, ib, correct, flipped))
    return Candidates(*(torch.cat(column) for column in zip(*parts)))


def generate_key(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    *,
    size: int,
    eps: float,
    seed: int,
    pool_size: int,
    max_pool: int | None = None,
    meta: dict | None = None,
) -> tuple[Key, dict]:
    """Draw a key of `size` items (size/2 true and size/2 false adversaries) from images `x`.

    The pool of candidate images starts at `pool_size` random images and doubles until it holds
    enough of both kinds or reaches `max_pool`; then size/2 of each kind are drawn at random.
    """
    if size <= 0 or size % 2:
        raise KeygenError(f"key size must be a positive even number, got {size}")
    if not 0.0 < eps <= 1.0:
        raise KeygenError(f"eps must be in (0, 1], got {eps}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    limit = len(y) if max_pool is None else min(int(max_pool), len(y))
    half = size // 2
    chunks: list[Candidates] = []
    pool = 0
    target = min(pool_size, limit)
    while True:
        new = order[pool:target]
        chunks.append(find_candidates(net, x[new], y[new], index[new], eps))
        pool = target
        flipped = torch.cat([c.flipped for c in chunks])
        kept = torch.cat([c.correct & ~c.flipped for c in chunks])
        n_true, n_false = int(flipped.sum()), int(kept.sum())
        log.info("pool %d: %d true and %d false adversaries", pool, n_true, n_false)
        if (n_true >= half and n_false >= half) or pool >= limit:
            break
        target = min(2 * pool, limit)
    diagnostics = {
        "pool_size": pool,
        "correct": int(torch.cat([c.correct for c in chunks]).sum()),
        "true_adversaries_found": n_true,
        "false_adversaries_found": n_false,
        "eps": eps,
        "key_size": size,
    }
    if n_true < half or n_false < half:
        raise KeygenError(
            f"not enough adversaries for a key of {size} at eps={eps}: a pool of {pool} images gave "
            f"{n_true} true and {n_false} false adversaries, {half} of each are needed; "
            f"try another eps, a smaller key or a larger keygen.max_pool"
        )
    x_adv, labels, source = (torch.cat(col) for col in zip(*((c.x_adv, c.y, c.index) for c in chunks)))

    def draw(mask: torch.Tensor) -> torch.Tensor:
        where = mask.nonzero().squeeze(1)
        return where[torch.randperm(len(where), generator=generator)[:half]]

    chosen = torch.cat([draw(flipped), draw(kept)])
    chosen = chosen[torch.randperm(len(chosen), generator=generator)]  # true/false not in blocks
    key = Key(
        inputs=x_adv[chosen].contiguous(),
        labels=labels[chosen].contiguous(),
        is_true_adversary=flipped[chosen].contiguous(),
        source_indices=source[chosen].contiguous(),
        eps=float(eps),
        seed=int(seed),
        meta=dict(meta or {}),
    )
    diagnostics["key_hash"] = key.hash
    return key, diagnostics


def transfer_key(
    net: nn.Module,
    references: list[nn.Module],
    data,
    *,
    size: int,
    eps: float,
    seed: int,
    scan_size: int,
    pool_size: int,
    steps: int,
    kappa: float,
    meta: dict | None = None,
) -> tuple[Key, dict]:
    """A key whose every item is evidence: images the reference models answer wrongly, labelled as
    the marked model will answer them.

    1. Scan `scan_size` random images of the owner's data and keep the `pool_size` nearest to every
       reference model's frontier (smallest largest positive margin) that the source gets right.
    2. True adversaries: margin PGD (radius eps) against the source and the references together;
       kept where the source's answer flips. False adversaries: margin PGD against the references
       while the source keeps its answer; kept where it does. Both keep their original labels, as in
       the paper, so that the marked model answers all of them with the key's label.
    3. Of each kind, the size/2 items the fewest references answer with the key's label (ties at
       random). The pool doubles until both kinds have size/2 candidates, the scan is used up, or a
       doubling adds under a quarter more true adversaries; then false adversaries fill in for
       missing true ones.

    The references only select; the calibration that decides must come from other models.
    """
    if size <= 0 or size % 2:
        raise KeygenError(f"key size must be a positive even number, got {size}")
    if not references:
        raise KeygenError("the transfer strategy needs reference models to select the key against "
                          "(keygen.selection_in)")
    generator = torch.Generator().manual_seed(seed)
    scanned = torch.randperm(len(data), generator=generator)[: min(scan_size, len(data))]
    x, y = data.x[scanned], data.y[scanned]
    with torch.no_grad():
        reach = torch.stack([torch.cat([margins(r.eval(), xb, yb) for xb, yb in zip(x.split(INFERENCE_BATCH),
                                                                                    y.split(INFERENCE_BATCH))])
                             for r in references]).clamp(min=0.0).max(0).values
    correct = predict(net, x) == y
    order = torch.argsort(reach + torch.where(correct, 0.0, float("inf")), stable=True)
    order = order[: int(correct.sum())]
    half = size // 2
    pool = min(pool_size, len(order))
    previous_true = None
    log.info("scanned %d images against %d reference models; %d the source gets right, attacked nearest first",
             len(scanned), len(references), len(order))
    while True:
        chosen = order[:pool]
        xs, ys = x[chosen], y[chosen]
        x_true = margin_pgd([net, *references], [], xs, ys, eps, steps=steps, kappa=kappa, generator=generator)
        x_false = margin_pgd(references, [net], xs, ys, eps, steps=steps, kappa=kappa, generator=generator)
        is_true, is_false = predict(net, x_true) != ys, predict(net, x_false) == ys
        log.info("pool %d: %d true and %d false adversaries (%d of each needed)", pool, int(is_true.sum()),
                 int(is_false.sum()), half)
        found = int(is_true.sum())
        # Images further from the references' frontiers rarely flip a robust source within a small
        # eps: once doubling the pool adds under a quarter more true adversaries, stop searching.
        stalled = previous_true is not None and found < max(1.25 * previous_true, previous_true + 1)
        if (found >= half and is_false.sum() >= half) or pool >= len(order) or stalled:
            break
        previous_true = found
        pool = min(2 * pool, len(order))
    diagnostics = {"pool_size": pool, "scanned": len(scanned), "correct": pool,
                   "true_adversaries_found": int(is_true.sum()), "false_adversaries_found": int(is_false.sum()),
                   "eps": eps, "key_size": size}
    # The decision is calibrated item by item, so the key need not be half true adversaries as the
    # paper's is: where the source is too robust at eps for size/2 of them, false ones fill the rest.
    n_true = min(int(is_true.sum()), half)
    n_false = size - n_true
    if n_true == 0 or is_false.sum() < n_false:
        raise KeygenError(
            f"not enough adversaries for a transfer key of {size} at eps={eps}: {pool} images near the "
            f"references' frontiers gave {int(is_true.sum())} true and {int(is_false.sum())} false "
            f"adversaries (at least one true and {size} in all are needed); try another eps, a smaller "
            f"key or a larger keygen.transfer.scan_size")
    if n_true < half:
        log.warning("only %d true adversaries at eps=%g (the source is robust there): the key holds %d true "
                    "and %d false adversaries", n_true, eps, n_true, n_false)
    diagnostics.update(true_adversaries_used=n_true, false_adversaries_used=n_false)

    def agreement(inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([predict(r, inputs) == ys for r in references]).float().mean(0)

    def least_agreed(mask: torch.Tensor, agree: torch.Tensor, count: int) -> torch.Tensor:
        where = mask.nonzero().squeeze(1)
        where = where[torch.randperm(len(where), generator=generator)]
        return where[torch.argsort(agree[where], stable=True)][:count]

    agree_true, agree_false = agreement(x_true), agreement(x_false)
    pick_true, pick_false = least_agreed(is_true, agree_true, n_true), least_agreed(is_false, agree_false, n_false)
    diagnostics["reference_agreement_true"] = float(agree_true[pick_true].mean())
    diagnostics["reference_agreement_false"] = float(agree_false[pick_false].mean())
    inputs = torch.cat([x_true[pick_true], x_false[pick_false]])
    labels = torch.cat([ys[pick_true], ys[pick_false]])
    flags = torch.cat([torch.ones(n_true, dtype=torch.bool), torch.zeros(n_false, dtype=torch.bool)])
    sources = torch.cat([data.index[scanned[chosen[pick_true]]], data.index[scanned[chosen[pick_false]]]])
    shuffle = torch.randperm(size, generator=generator)  # true and false not in blocks
    key = Key(inputs=inputs[shuffle].contiguous(), labels=labels[shuffle].contiguous(),
              is_true_adversary=flags[shuffle].contiguous(), source_indices=sources[shuffle].contiguous(),
              eps=float(eps), seed=int(seed), meta=dict(meta or {}))
    diagnostics["key_hash"] = key.hash
    return key, diagnostics


def model_id(meta: dict, path) -> str:
    """A reference model's id in a calibration: split/network/s<seed>, from its file's metadata."""
    if {"split", "network", "seed"} <= set(meta):
        return f"{meta['split']}/{meta['network']}/s{meta['seed']}"
    return str(path)


def reference_model(path, population: str, dataset: str) -> tuple[torch.nn.Module, dict, dict]:
    """A reference model of `population` (selection, calibration), refused if made with another dataset."""
    net, arch, meta = load_model(path)
    check_same_dataset(dataset, {f"{population} model {path}": meta})
    return net, arch, meta


def calibrate(key: Key, paths) -> Calibration:
    """How the reference models at `paths` answer the key (loaded one at a time)."""
    models, families, rows = [], [], []
    for path in paths:
        net, arch, meta = reference_model(path, "calibration", dataset_of(key.meta))
        models.append(model_id(meta, path))
        families.append(str(meta.get("network", arch["name"])))
        rows.append(predict(net, key.inputs) == key.labels)
    return Calibration(tuple(models), tuple(families), torch.stack(rows), key.hash)


def check_not_vacuous(key: Key, rule: str, z: float, refuse: bool = True) -> int:
    """The threshold of the key's decision rule at level z. 0 means that even a suspect answering
    every item as the marked model does could not be called marked: KeygenError, or a warning
    where `refuse` is false."""
    matches = None if key.calibration is None else key.calibration.matches.numpy()
    families = () if key.calibration is None else key.calibration.families
    threshold = null_errors(rule, len(key), matches, families).threshold(z)
    if threshold == 0:
        message = (
            f"this key cannot prove anything: by the decision rule {rule!r} at z={z}, even a suspect "
            f"that answers all {len(key)} items with the key's labels is not called marked, because the "
            f"reference models answer them that way too (calibration p-value of 0 errors: "
            f"{null_errors(rule, len(key), matches, families).p_value(0):.3g}). Use the transfer "
            f"strategy, a larger eps or a larger key.")
        if refuse:
            raise KeygenError(message)
        log.warning(message)
    return threshold


# How each key strategy makes its key from the source `net`, the selection reference models (loaded
# for the strategies whose fsw.grid.KEY_STRATEGIES entry says they need them), the data splits and
# the keygen settings (each strategy's own under its name); `common` is the key's size, eps, seed and meta.
GENERATORS = {
    "paper": lambda net, references, splits, settings, **common: generate_key(
        net, splits.owner.x, splits.owner.y, splits.owner.index, pool_size=int(settings.pool_size),
        max_pool=settings.max_pool, **common),
    "transfer": lambda net, references, splits, settings, **common: transfer_key(
        net, references, splits.owner, **settings.transfer, **common),
    "backdoor": lambda net, references, splits, settings, **common: schemes.backdoor_key(
        splits.owner, **settings.backdoor, **common),
    "ipguard": lambda net, references, splits, settings, **common: schemes.ipguard_key(
        net, splits.owner, **settings.ipguard, **common),
    "conferrable": lambda net, references, splits, settings, **common: schemes.conferrable_key(
        net, references, splits.owner, **settings.conferrable, **common),
    "misclassified": lambda net, references, splits, settings, **common: schemes.misclassified_key(
        net, splits.test, **common),
}


def run(cfg: DictConfig) -> dict:
    setup_run(cfg)
    started = time.perf_counter()
    net, arch, meta = load_model(cfg.model_in)
    check_same_dataset(cfg.data.name, {f"model {cfg.model_in}": meta})
    settings = cfg.keygen
    strategy = settings.strategy
    references = ([reference_model(path, "selection", cfg.data.name)[0] for path in cfg.selection_in]
                  if KEY_STRATEGIES[strategy].selection else [])
    key_meta = {"network": arch["name"], "model_seed": meta.get("seed"), "strategy": strategy,
                "dataset": cfg.data.name, **provenance()}
    key, diagnostics = GENERATORS[strategy](net, references, load_splits(cfg.data), settings, size=int(settings.size),
                                            eps=float(settings.eps), seed=int(cfg.seed), meta=key_meta)
    if cfg.calibration_in:
        key = Key(**{**key.__dict__, "calibration": calibrate(key, cfg.calibration_in)})
        diagnostics["calibration_models"] = len(cfg.calibration_in)
        diagnostics["calibration_hash"] = key.calibration.hash
        diagnostics["reference_matches_mean"] = float(key.calibration.matches.float().sum(1).mean())
    decision = cfg.decision
    diagnostics["threshold"] = check_not_vacuous(key, decision.rule if key.calibration else PAPER_RULE,
                                                 float(decision.z), refuse=settings.vacuous == "refuse")
    diagnostics.update(network=arch["name"], strategy=settings.strategy, dataset=cfg.data.name,
                       wall_time_s=round(time.perf_counter() - started, 3), config=resolved_config(cfg))
    write_together({cfg.key_out: key_bytes(key), cfg.report_out: json_text(diagnostics)})
    return diagnostics
