"""What a stage does with its composed config before its work: checks, seeds, threads, and the
Lightning Trainer it trains with."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def resolved_config(cfg: DictConfig) -> dict:
    """`cfg` with every interpolation resolved, as plain data: each stage stores it in the record it
    writes, so that every number of a record traces back to the exact parameters that made it."""
    return OmegaConf.to_container(cfg, resolve=True)


def setup_run(cfg: DictConfig) -> None:
    """Check the config's values, seed everything and size torch's thread pool, so that a config
    fixes the result. A bad value raises ConfigError here, before the stage reads anything."""
    from fsw.validate import check_config  # range rules by dotted key; see fsw/validate.py for why

    check_config(cfg)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    seed_everything(int(cfg.seed))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch the way Lightning's `seed_everything` does, without importing
    Lightning: label-only stages (verify, keygen) would pay seconds per job for it."""
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# The precisions a network may train in (Lightning's names): bfloat16 autocast takes a CNN training
# step to ~0.55x its float32 time on a CPU with AVX512-BF16 (benchmarks/bench_cnn.py); 16-mixed
# needs a GPU.
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def training_precision(requested: str, accelerator: str) -> str:
    """`requested`, or 32-true where it is bf16-mixed and the device Lightning will pick has no
    native bfloat16: emulated, it would be slower than float32, not faster."""
    if requested != "bf16-mixed":
        return requested
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    if not native:
        log.warning("no native bfloat16 on this %s device: training in 32-true instead of bf16-mixed",
                    accelerator)
        return "32-true"
    return requested
