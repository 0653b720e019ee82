"""Optimiser and scheduler factories by short name, and the dict `configure_optimizers` returns."""

from __future__ import annotations

from collections.abc import Iterable

import torch

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "cosine", "step", "plateau")


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Build a torch optimiser by short name.

    Args:
        params: Parameters to optimise.
        name: One of ``sgd``, ``adam``, ``adamw``, ``rmsprop``.
        lr: Learning rate.
        momentum: Momentum for SGD and RMSprop (ignored by Adam/AdamW).
        weight_decay: L2 penalty (decoupled for AdamW).
    """
    key = name.lower()
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if key == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    max_epochs: int,
    monitor: str = "val/loss",
) -> dict | None:
    """Build a Lightning ``lr_scheduler`` config dict, or ``None`` for ``name="none"``.

    ``cosine`` anneals over ``max_epochs``; ``step`` divides the lr by 10 every third of the run;
    ``plateau`` divides it by 10 after 3 epochs without improvement of ``monitor``.
    """
    key = name.lower()
    if key == "none":
        return None
    if key == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs))
        return {"scheduler": sched, "interval": "epoch"}
    if key == "step":
        step = max(1, max_epochs // 3)
        sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=0.1)
        return {"scheduler": sched, "interval": "epoch"}
    if key == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=3)
        return {"scheduler": sched, "interval": "epoch", "monitor": monitor}
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def configure(module: torch.nn.Module) -> dict:
    """The dict ``LightningModule.configure_optimizers`` returns, from the module's hparams.

    Reads ``optimizer``, ``lr``, ``momentum``, ``weight_decay`` and ``scheduler`` from
    ``module.hparams`` and the schedule length from ``module.trainer.max_epochs`` (1 when it
    is unset or unbounded), so every LightningModule configures its optimiser the same way.
    """
    h = module.hparams
    max_epochs = module.trainer.max_epochs
    max_epochs = max_epochs if max_epochs and max_epochs > 0 else 1
    opt = build_optimizer(module.parameters(), h.optimizer, h.lr, h.momentum, h.weight_decay)
    sched = build_scheduler(opt, h.scheduler, max_epochs)
    return {"optimizer": opt} if sched is None else {"optimizer": opt, "lr_scheduler": sched}
