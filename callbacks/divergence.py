"""Stop a run the moment its loss or weights stop being finite numbers.

A learning rate far too high turns the loss into NaN within a few steps; without a check Lightning
trains on, keeps the NaN epochs, and a monitored metric that stays finite (accuracy of NaN logits)
can even save them as the best model. :class:`DivergenceStop` raises :class:`TrainingDiverged`
instead, before any checkpoint of that step or epoch is written: Lightning runs checkpoint
callbacks after every other callback in the same hook. ``litlab fit`` turns it into exit code 3.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from litlab.metrics import log_keys

from litlab.checks import check_at_least

log = logging.getLogger(__name__)

TRAIN_LOSS = log_keys.key("train", log_keys.LOSS)


class TrainingDiverged(RuntimeError):
    """The run's loss (or weights) became NaN or infinite.

    Args:
        epoch: Epoch in which it happened.
        what: The non-finite quantity, e.g. ``val/loss``.
        value: Its value (``nan``, ``inf``); ``None`` when another process saw it.
        hint: What to change, e.g. ``lower --model.lr``.
    """

    def __init__(self, epoch: int, what: str, value: float | None, hint: str) -> None:
        shown = "non-finite on another process" if value is None else f"{value}"
        super().__init__(f"training diverged at epoch {epoch} ({what}={shown}): {hint}")
        self.epoch = epoch
        self.what = what
        self.value = value


def _as_float(value: torch.Tensor) -> float:
    """A scalar (or the first non-finite element of a tensor) as a Python float."""
    flat = value.detach().float().reshape(-1)
    bad = flat[~torch.isfinite(flat)]
    return float(bad[0] if bad.numel() else flat[0])


class DivergenceStop(Callback):
    """Raises :class:`TrainingDiverged` when a loss or the weights are not finite.

    Checks the training loss after every step, ``val/loss`` after every validation (never the
    sanity check, whose weights are untrained), and the weights at the end of every training
    epoch and before every step checkpoint, so neither ``last.ckpt`` nor ``best.ckpt`` can hold
    NaN weights. Every decision is reduced over processes, so all DDP ranks stop together.

    Args:
        val_key: Logged validation loss to check.
        hint: The advice appended to the message.
        check_weights_every_n_steps: Also check the weights every N training steps (the step
            checkpoint interval); ``0`` checks them at epoch ends only.
    """

    def __init__(
        self,
        val_key: str = log_keys.VAL_LOSS,
        hint: str = "lower --model.lr",
        check_weights_every_n_steps: int = 0,
    ) -> None:
        check_at_least("check_weights_every_n_steps", check_weights_every_n_steps, 0)
        self.val_key = val_key
        self.hint = hint
        self.check_weights_every_n_steps = check_weights_every_n_steps

    def _stop_if(self, trainer: pl.Trainer, what: str, value: torch.Tensor | None) -> None:
        local = value is not None and not bool(torch.isfinite(value.detach()).all())
        if trainer.strategy.reduce_boolean_decision(local, all=False):
            shown = _as_float(value) if local and value is not None else None
            raise TrainingDiverged(trainer.current_epoch, what, shown, self.hint)

    def _check_weights(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        bad = next(
            (
                (name, p)
                for name, p in pl_module.named_parameters()
                if not bool(torch.isfinite(p.detach()).all())
            ),
            None,
        )
        name, param = bad if bad is not None else ("weights", None)
        self._stop_if(trainer, f"weights {name}", param)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """The step's loss, and the weights when a step checkpoint is due."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self._stop_if(trainer, TRAIN_LOSS, loss if isinstance(loss, torch.Tensor) else None)
        every = self.check_weights_every_n_steps
        if every and trainer.global_step % every == 0:
            self._check_weights(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The epoch's validation loss (skipped during the sanity check)."""
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.val_key)
        self._stop_if(trainer, self.val_key, value if isinstance(value, torch.Tensor) else None)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The weights, before the epoch's checkpoints are written."""
        self._check_weights(trainer, pl_module)
