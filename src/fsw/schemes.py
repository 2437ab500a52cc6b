"""The ownership schemes other than the paper's, each a key strategy of `fsw.keygen`, so that one
harness (embed, attack, verify and the calibrated decision) compares them with frontier stitching:

- `backdoor`: a watermark embedded by fine-tuning, as frontier stitching is;
- `ipguard`, `conferrable`, `misclassified`: fingerprints of the source as it is (no embedding; the
  embed stage passes the source on unchanged as the "marked" model).

Every item of their keys is evidence: an unmarked model is expected to answer it otherwise than
the key's label, so all are flagged `is_true_adversary`. Whether one does is for the key's
calibration to tell. Which scheme embeds and which needs the selection reference models is in
`fsw.grid.KEY_STRATEGIES`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fsw.adversarial import margin_pgd
from fsw.data import Split
from fsw.errors import KeygenError
from fsw.inference import predict
from fsw.key import Key
from fsw.networks import INPUT_SHAPE, NUM_CLASSES, build_network

log = logging.getLogger(__name__)

# Images attacked at once: a search stops after the slice that completes its key, and the paper's CNN
# keeps each step's activations of a slice for the backward pass (a few hundred kB an image, by its
# layer sizes).
ATTACK_BATCH = 500


def evidence_key(inputs: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, *, eps: float, seed: int,
                 meta: dict | None, diagnostics: dict) -> tuple[Key, dict]:
    """A key whose every item is evidence, and the diagnostics completed with its size and hash."""
    key = Key(inputs=inputs.contiguous(), labels=labels.contiguous(),
              is_true_adversary=torch.ones(len(labels), dtype=torch.bool), source_indices=sources.contiguous(),
              eps=float(eps), seed=int(seed), meta=dict(meta or {}))
    return key, {**diagnostics, "true_adversaries_found": len(key), "false_adversaries_found": 0,
                 "key_size": len(key), "eps": eps, "key_hash": key.hash}


def check_size(size: int) -> None:
    if size <= 0:
        raise KeygenError(f"key size must be positive, got {size}")


@dataclass(frozen=True)
class Found:
    """What `search` kept: the attacked images, their own labels, the source's answers to them and
    the images' indices in MNIST; and how many images it scanned and attacked."""

    inputs: torch.Tensor
    labels: torch.Tensor
    answers: torch.Tensor
    sources: torch.Tensor
    scanned: int
    attacked: int

    def __len__(self) -> int:
        return len(self.labels)


def search(net: nn.Module, surrogates: Sequence[nn.Module], references: Sequence[nn.Module], data: Split, *,
           size: int, scan_size: int, eps: float, steps: int, kappa: float, generator: torch.Generator) -> Found:
    """Random owner images, ATTACK_BATCH at a time and at most `scan_size` of them: those `net`
    classifies right are pushed by margin PGD (radius eps) to make `net` and the `surrogates` answer
    another class by `kappa` while the `references` keep the true label; kept where `net`'s answer
    flipped and every reference kept the true label. The search stops once `size` are kept: at a
    small eps few images cross the boundary, and attacking all of a scan large enough for them would
    cost the CNN minutes it does not need at a larger eps."""
    order = torch.randperm(len(data), generator=generator)[: min(scan_size, len(data))]
    none = torch.empty(0, dtype=torch.long)
    parts = [(torch.empty(0, *data.x.shape[1:]), none, none, none)]  # what torch.cat needs if nothing is found
    scanned, attacked, kept_so_far = 0, 0, 0
    for chunk in order.split(ATTACK_BATCH):
        scanned += len(chunk)
        chunk = chunk[predict(net, data.x[chunk]) == data.y[chunk]]
        if len(chunk) == 0:
            continue
        x, y = data.x[chunk], data.y[chunk]
        x_adv = margin_pgd([net, *surrogates], references, x, y, eps, steps=steps, kappa=kappa, generator=generator)
        answers = predict(net, x_adv)
        kept = answers != y
        for reference in references:
            kept &= predict(reference, x_adv) == y
        parts.append((x_adv[kept], y[kept], answers[kept], data.index[chunk[kept]]))
        attacked += len(chunk)
        kept_so_far += int(kept.sum())
        if kept_so_far >= size:
            break
    return Found(*(torch.cat(column) for column in zip(*parts)), scanned=scanned, attacked=attacked)


def backdoor_key(data: Split, *, size: int, patch: int, eps: float, seed: int, meta: dict | None = None
                 ) -> tuple[Key, dict]:
    """A backdoor watermark with a content trigger, as in Zhang et al., "Protecting Intellectual
    Property of Deep Neural Networks with Watermarking" (AsiaCCS 2018) and Adi et al., "Turning Your
    Weakness Into a Strength: Watermarking Deep Neural Networks by Backdooring" (USENIX Security 2018).

    `size` random owner images, each with the same trigger, a white square of `patch` pixels at a
    position drawn from the seed and the source network's name (each owner's trigger set is their
    own: keys of two sources are never one key), labelled with another class than their own ((y + r) mod 10, r
    drawn from 1..9 per item). The embed stage fine-tunes the source until it answers them so; an
    unmarked model sees the digit under the patch and answers its true label. `eps` plays no part:
    it is recorded with the key as every key's is (the sweep's grid is per eps).
    """
    side = INPUT_SHAPE[-1]
    if not 1 <= patch <= side:
        raise KeygenError(f"the trigger patch must be 1 to {side} pixels wide, got {patch}")
    check_size(size)
    if len(data) < size:
        raise KeygenError(f"a backdoor key of {size} needs as many owner images, there are {len(data)}")
    owner = str((meta or {}).get("network", "")).encode()
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, zlib.crc32(owner)]).generate_state(1)[0]))
    chosen = torch.randperm(len(data), generator=generator)[:size]
    row, col = torch.randint(0, side - patch + 1, (2,), generator=generator).tolist()
    inputs = data.x[chosen].clone()
    inputs[..., row : row + patch, col : col + patch] = 1.0
    shift = torch.randint(1, NUM_CLASSES, (size,), generator=generator)
    labels = (data.y[chosen] + shift) % NUM_CLASSES
    return evidence_key(inputs, labels, data.index[chosen], eps=eps, seed=seed, meta=meta,
                        diagnostics={"pool_size": size, "trigger_row": row, "trigger_col": col, "trigger_size": patch})


def ipguard_key(net: nn.Module, data: Split, *, size: int, eps: float, seed: int, scan_size: int, steps: int,
                kappa: float, meta: dict | None = None) -> tuple[Key, dict]:
    """A boundary fingerprint in the manner of IPGuard (Cao, Jia and Gong, "IPGuard: Protecting
    Intellectual Property of Deep Neural Networks via Fingerprinting the Classification Boundary",
    AsiaCCS 2021): data points near the source's decision boundary, labelled with the source's own
    answers, and no embedding. A copy of the source answers them as it does; a model trained
    independently, whose boundary lies elsewhere, often does not.

    Random owner images that the source classifies right are pushed by margin PGD (radius eps) until
    the source answers another class by a logit margin `kappa`, IPGuard's k: small, the point stays
    just across the boundary (unique to the source), larger, it survives more changes of the model
    (robust); slice by slice (`search`, at most `scan_size` images) until `size` have crossed, of
    which `size` are drawn at random, labelled with the source's answer. IPGuard moves its points without a bound towards the boundary
    of a chosen pair of classes; here the other class is the one the source's margin PGD reaches, and
    the move is bounded by eps, so that ipguard keys compare with the sweep's others at the same eps.
    Each label differs from its image's own, which an unmarked model is expected to answer: every
    item is flagged as evidence.
    """
    check_size(size)
    generator = torch.Generator().manual_seed(seed)
    found = search(net, [], [], data, size=size, scan_size=scan_size, eps=eps, steps=steps, kappa=kappa,
                   generator=generator)
    log.info("ipguard: %d of %d attacked images pushed across the source's boundary at eps=%g", len(found),
             found.attacked, eps)
    if len(found) < size:
        raise KeygenError(f"not enough boundary points for an ipguard key of {size} at eps={eps}: the source "
                          f"answered {len(found)} of {found.attacked} attacked images otherwise; try a larger eps, "
                          f"a smaller key or a larger keygen.ipguard.scan_size")
    chosen = torch.randperm(len(found), generator=generator)[:size]
    return evidence_key(found.inputs[chosen], found.answers[chosen], found.sources[chosen], eps=eps, seed=seed,
                        meta=meta, diagnostics={"scanned": found.scanned, "pool_size": found.attacked,
                                                "candidates_found": len(found)})


def train_surrogates(net: nn.Module, data: Split, *, count: int, train_size: int, epochs: int, hidden: int,
                     seed: int) -> list[nn.Module]:
    """`count` one-hidden-layer MLPs trained on `train_size` owner images labelled by `net`: what a
    thief distilling the source gets. Plain torch (Adam, batches of 64), so keygen stays free of
    Lightning; their weights and batches are drawn from `seed`, so a key is a function of its seed."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(data), generator=generator)[: min(train_size, len(data))]
    x = data.x[chosen]
    labels = predict(net, x)
    surrogates = []
    for _ in range(count):
        with torch.random.fork_rng(devices=[]):  # the initial weights, without moving the global seed
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            surrogate = build_network({"name": "mlp", "hidden": hidden, "dropout": 0.0, "depth": 1})
        optimizer = torch.optim.Adam(surrogate.parameters(), lr=1e-3)
        surrogate.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for batch in order.split(64):
                optimizer.zero_grad()
                F.cross_entropy(surrogate(x[batch]), labels[batch]).backward()
                optimizer.step()
        surrogates.append(surrogate.eval())
    return surrogates


def conferrable_key(net: nn.Module, references: list[nn.Module], data: Split, *, size: int, eps: float, seed: int,
                    scan_size: int, steps: int, kappa: float, surrogates: int, surrogate_size: int,
                    surrogate_epochs: int, surrogate_hidden: int, meta: dict | None = None) -> tuple[Key, dict]:
    """A fingerprint by conferrable adversarial examples (Lukas, Zhang and Kerschbaum, "Deep Neural
    Network Fingerprinting by Conferrable Adversarial Examples", ICLR 2021), with no embedding:
    adversarial examples of the source that transfer to its surrogates (models trained on its
    answers, as a stolen copy is) but not to models trained independently, labelled with the
    source's answers.

    The surrogates are `surrogates` small MLPs trained here (`train_surrogates`); the independent
    models are the selection reference models. Random owner images that the source gets right are
    pushed by margin PGD (radius eps) to make the source and the surrogates answer another class by
    `kappa` while the references keep the true label; kept where the source's answer flips and every
    reference keeps the true label, slice by slice (`search`, at most `scan_size` images) until
    `size` are kept; of those the `size` that the most surrogates answer with the source's label
    (ties at random). Lukas et al. train their surrogates
    and references of the source's architecture and optimise a conferrability score; the ensemble
    margin PGD here pursues the same aim with fsw's attack and cheap surrogates.
    """
    check_size(size)
    if not references:
        raise KeygenError("the conferrable strategy needs independent models the key must not transfer to: "
                          "the selection reference models (keygen.selection_in)")
    copies = train_surrogates(net, data, count=surrogates, train_size=surrogate_size, epochs=surrogate_epochs,
                              hidden=surrogate_hidden, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    found = search(net, copies, references, data, size=size, scan_size=scan_size, eps=eps, steps=steps, kappa=kappa,
                   generator=generator)
    log.info("conferrable: %d of %d attacked images flip the source and no reference model (eps=%g)",
             len(found), found.attacked, eps)
    if len(found) < size:
        raise KeygenError(f"not enough conferrable examples for a key of {size} at eps={eps}: {len(found)} of "
                          f"{found.attacked} attacked images flipped the source and no reference model; try a "
                          f"larger eps, a smaller key or a larger keygen.conferrable.scan_size")
    shuffled = torch.randperm(len(found), generator=generator)  # ties at random
    conferred = torch.stack([predict(s, found.inputs[shuffled]) == found.answers[shuffled] for s in copies])
    ranked = torch.argsort(conferred.float().mean(0), descending=True, stable=True)[:size]
    chosen = shuffled[ranked]
    return evidence_key(found.inputs[chosen], found.answers[chosen], found.sources[chosen], eps=eps, seed=seed,
                        meta=meta, diagnostics={"scanned": found.scanned, "pool_size": found.attacked,
                                                "candidates_found": len(found), "surrogates": surrogates,
                                                "surrogate_agreement": float(conferred[:, ranked].float().mean())})


def misclassified_key(net: nn.Module, test: Split, *, size: int, eps: float, seed: int, meta: dict | None = None
                      ) -> tuple[Key, dict]:
    """The trivial baseline: test images the source misclassifies, labelled with its (wrong) answers,
    and no embedding: the Anna Karenina heuristic of Godinot, Le Merrer, Penzo, Taiani and Tredan,
    "Queries, Representation & Detection: The Next 100 Model Fingerprinting Schemes" (AAAI 2025),
    which performs on par with dedicated fingerprints in their comparison. Models agree on the easy
    images and err on hard ones each in their own way, so answering the source's mistakes is
    evidence of being the source.

    `size` of them at random; where the source misclassifies fewer, all of them, and the key is that
    much smaller (`requested_size` in the diagnostics; the decision takes l = len(key)). Source
    indices are positions in MNIST's test file. `eps` plays no part, as for `backdoor_key`.
    """
    check_size(size)
    wrong = (predict(net, test.x) != test.y).nonzero().squeeze(1)
    if len(wrong) == 0:
        raise KeygenError(f"the source misclassifies none of the {len(test)} test images: no misclassified key")
    generator = torch.Generator().manual_seed(seed)
    chosen = wrong[torch.randperm(len(wrong), generator=generator)[:size]]
    if len(chosen) < size:
        log.warning("the source misclassifies only %d of %d test images: the key holds %d items, not %d",
                    len(wrong), len(test), len(chosen), size)
    return evidence_key(test.x[chosen], predict(net, test.x[chosen]), test.index[chosen], eps=eps, seed=seed,
                        meta=meta, diagnostics={"pool_size": len(test), "candidates_found": len(wrong),
                                                "requested_size": size})
