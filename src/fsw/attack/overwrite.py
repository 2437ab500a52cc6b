"""Overwriting: the attacker stitches its own frontier-stitching key into the stolen model.

It draws the key from its own split with fsw.keygen.generate_key (FGSM step `cfg.attack.key.eps`)
and embeds it with fsw.embed.embed on that same split (settings `cfg.attack.embed`), exactly as
the owner marked the model. The level is the attacker's key size.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch import nn

from fsw.data import Split
from fsw.inference import accuracy
from fsw.keygen import generate_key


def overwrite(net: nn.Module, level: float, cfg: DictConfig, data: Split) -> tuple[nn.Module, dict]:
    from fsw.embed import embed  # Lightning (~5 s to import): only the attacks that train

    settings = cfg.attack
    key, diagnostics = generate_key(
        net,
        data.x,
        data.y,
        data.index,
        size=int(level),
        eps=float(settings.key.eps),
        seed=int(cfg.seed),
        pool_size=int(settings.key.pool_size),
        max_pool=settings.key.max_pool,
    )
    # embed() reads the owner's config layout; give it the attacker's settings in that layout.
    embed_cfg = OmegaConf.create(
        {
            "seed": cfg.seed,
            "batch_size": settings.batch_size,
            "embed": settings.embed,
            "trainer": cfg.trainer,
        }
    )
    net, info = embed(net, key, data, embed_cfg)
    return net, {
        "attacker_key_size": len(key),
        "attacker_eps": key.eps,
        "attacker_key_acc": accuracy(net, key.inputs, key.labels),
        "attacker_embed_epochs": info["epochs"],
        "attacker_key_pool": diagnostics["pool_size"],
    }
