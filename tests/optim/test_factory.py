"""Optimiser and scheduler factories: names, hyperparameters reaching torch, clear errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from litlab.optim.factory import (
    OPTIMIZERS,
    SCHEDULERS,
    build_optimizer,
    build_scheduler,
    configure,
)


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(2, 2).parameters())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_gets_lr_and_weight_decay(name: str) -> None:
    opt = build_optimizer(_params(), name.upper(), lr=0.02, momentum=0.5, weight_decay=1e-3)
    group = opt.param_groups[0]
    assert group["lr"] == 0.02 and group["weight_decay"] == 1e-3
    if name in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.5


def test_bad_names_and_lr_fail_listing_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; choose one of sgd, adam"):
        build_optimizer(_params(), "lbfgs", lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0, got 0"):
        build_optimizer(_params(), "sgd", lr=0)
    opt = build_optimizer(_params(), "sgd", lr=0.1)
    with pytest.raises(ValueError, match="unknown scheduler 'linear'; choose one of none, cosine"):
        build_scheduler(opt, "linear", max_epochs=3)


def test_schedulers_follow_the_run_length() -> None:
    opt = build_optimizer(_params(), "sgd", lr=1.0)
    assert build_scheduler(opt, "none", 9) is None
    cosine = build_scheduler(opt, "cosine", 9)["scheduler"]
    assert cosine.T_max == 9
    step = build_scheduler(opt, "step", 9)["scheduler"]
    assert step.step_size == 3 and step.gamma == 0.1
    plateau = build_scheduler(opt, "plateau", 9, monitor="val/acc")
    assert plateau["monitor"] == "val/acc" and set(SCHEDULERS) == {
        "none",
        "cosine",
        "step",
        "plateau",
    }


def test_configure_reads_the_module_hparams_and_trainer_length() -> None:
    module = torch.nn.Linear(2, 2)
    module.hparams = SimpleNamespace(
        optimizer="adamw", lr=0.003, momentum=0.9, weight_decay=0.01, scheduler="cosine"
    )
    module.trainer = SimpleNamespace(max_epochs=-1)  # unbounded: the schedule spans one epoch
    config = configure(module)
    assert type(config["optimizer"]) is torch.optim.AdamW
    assert config["lr_scheduler"]["scheduler"].T_max == 1
    module.hparams.scheduler = "none"
    assert set(configure(module)) == {"optimizer"}
