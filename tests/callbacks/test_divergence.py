"""DivergenceStop: a NaN loss or NaN weights stop the fit at once, before any checkpoint holds them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from litlab.callbacks.divergence import DivergenceStop, TrainingDiverged
from litlab.callbacks.run_checkpoint import run_checkpoints
from torch.utils.data import DataLoader, TensorDataset


class Breaks(pl.LightningModule):
    """Trains normally until ``at_step``, then breaks what ``how`` says.

    ``train``: the training loss is NaN; ``val``: val/loss is NaN from that epoch;
    ``weights``: the weights become NaN after the step while every loss stays finite.
    """

    def __init__(self, how: str, at_step: int) -> None:
        super().__init__()
        self.how, self.at_step = how, at_step
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        if self.how == "train" and self.global_step == self.at_step:
            loss = loss * float("nan")
        return loss

    def on_before_optimizer_step(self, optimizer):
        if self.how == "weights" and self.global_step == self.at_step:
            self.layer.weight.grad.fill_(float("inf"))  # the step makes the weights infinite

    def validation_step(self, batch, batch_idx):
        broken = self.how == "val" and self.global_step >= self.at_step
        loss = torch.tensor(float("nan")) if broken else self.layer(batch[0]).pow(2).mean()
        self.log("val/loss", loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(8, 2)), batch_size=2)  # 4 steps an epoch

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 2)), batch_size=2)


def _fit(
    cpu_trainer: Callable[..., pl.Trainer], root: Path, how: str, at_step: int
) -> list[pl.Callback]:
    writers = run_checkpoints(root / "ckpt", "val/loss", "min", every_n_steps=1)
    trainer = cpu_trainer(
        max_epochs=4,
        default_root_dir=root,
        callbacks=[DivergenceStop(check_weights_every_n_steps=1), *writers],
    )
    trainer.fit(Breaks(how, at_step))
    return writers


def _finite_weights(path: Path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(bool(torch.isfinite(t).all()) for t in state.values())


@pytest.mark.parametrize(
    ("how", "at_step", "message"),
    [
        ("train", 6, "training diverged at epoch 1 (train/loss=nan): lower --model.lr"),
        ("val", 8, "training diverged at epoch 1 (val/loss=nan): lower --model.lr"),
        ("weights", 5, "training diverged at epoch 1 (weights layer.weight=-inf)"),
    ],
)
def test_stops_at_once_and_keeps_only_finite_checkpoints(
    tmp_path, cpu_trainer, how, at_step, message
):
    with pytest.raises(TrainingDiverged) as caught:
        _fit(cpu_trainer, tmp_path, how, at_step)
    assert str(caught.value).startswith(message), caught.value
    assert caught.value.epoch == 1
    last = torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)
    assert last["global_step"] < at_step + 1  # nothing written after the step that broke
    for name in ("best.ckpt", "last.ckpt"):
        assert _finite_weights(tmp_path / "ckpt" / name), name


def test_a_nan_sanity_check_is_not_divergence(cpu_trainer):
    """Untrained weights may give any val/loss; only trained epochs count."""
    module = Breaks("val", 0)
    trainer = cpu_trainer(
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=1,
        enable_checkpointing=False,
        callbacks=[DivergenceStop()],
    )
    trainer.fit(module)
    assert trainer.state.finished
