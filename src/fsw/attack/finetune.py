"""Fine-tuning on the attacker's own data, the four variants of Adi et al. (2018):

FTLL  fine-tune the last layer only          RTLL  re-initialise the last layer, train only it
FTAL  fine-tune all layers                   RTAL  re-initialise the last layer, train all layers

The last layer is `net.classifier` in every fsw network. The level is the number of epochs over
the attacker's split; optimizer, learning rate and batch size come from `cfg.attack`.
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from fsw.data import Split


def finetune(
    net: nn.Module,
    level: float,
    cfg: DictConfig,
    data: Split,
    *,
    reinitialise_last: bool,
    train_all: bool,
) -> tuple[nn.Module, dict]:
    if reinitialise_last:
        net.classifier.reset_parameters()  # drawn from the RNG that apply_attack seeded
    trained = net if train_all else net.classifier
    net.requires_grad_(False)
    trained.requires_grad_(True)
    from fsw.classifier import Classifier  # Lightning (~5 s to import): only the attacks that train
    from fsw.training import fit, make_trainer

    module = Classifier(net, cfg.attack.optimizer, float(cfg.attack.lr))
    trainer = make_trainer(cfg, max_epochs=int(level))
    fit(trainer, module, data.loader(int(cfg.attack.batch_size), shuffle=True, seed=int(cfg.seed)))
    return module.net.cpu().eval(), {
        "epochs": int(trainer.current_epoch),
        "attacker_images": len(data),
        "trained_parameters": sum(p.numel() for p in trained.parameters()),
    }

