"""The liver paper's stopping rule: patience 5 on validation loss, narrated as in its training log.

The paper stops "because loss value did not decrease for 5 epochs" and keeps the best-loss model;
its log prints ``Loss decreased from inf to 0.043!`` / ``Loss did not decrease for 1 epoch(s)!``
after every validation. Lightning's ``EarlyStopping`` already implements the rule, so this class
only adds the messages; the best-loss model is kept by a ``ModelCheckpoint`` on the same key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from litlab.metrics import log_keys

log = logging.getLogger(__name__)


class PaperEarlyStopping(EarlyStopping):
    """``EarlyStopping`` on ``val/loss`` (min, patience 5) that logs the paper's messages.

    After each check (never during the sanity check or ``fast_dev_run``) it logs, on rank zero,
    at INFO level to this module's logger:

    - ``Loss decreased from A to B!`` when the monitored value improved (``A`` is ``inf`` first);
    - ``Loss did not decrease for N epoch(s)!`` otherwise, ``N`` being Lightning's wait count;
    - ``Stopping training process because loss value did not decrease for P epochs!`` when
      patience runs out.

    A stop for any other reason (a NaN or infinite value, a stopping or divergence threshold)
    is logged at WARNING level with Lightning's reason, so no run ends without saying why.

    Args:
        monitor: Logged key to watch.
        patience: Checks without improvement before stopping (the paper: 5).
        mode: ``"min"`` or ``"max"``; for ``"max"`` the messages say "increase".
        min_delta: Smallest change that counts as an improvement.
        **kwargs: Passed on to ``lightning.pytorch.callbacks.EarlyStopping``.
    """

    def __init__(
        self,
        monitor: str = log_keys.VAL_LOSS,
        patience: int = 5,
        mode: str = "min",
        min_delta: float = 0.0,
        **kwargs: object,
    ) -> None:
        super().__init__(
            monitor=monitor, patience=patience, mode=mode, min_delta=min_delta, **kwargs
        )

    @property
    def _noun(self) -> str:
        name = self.monitor.rsplit("/", 1)[-1]
        return "Loss" if name == log_keys.LOSS else self.monitor

    @property
    def _verb(self) -> str:
        return "decrease" if self.mode == "min" else "increase"

    @contextmanager
    def _narrate(self, trainer: pl.Trainer) -> Iterator[None]:
        """Run one of Lightning's checks and describe what it changed."""
        best_before = self.best_score.clone()
        wait_before = self.wait_count
        reason_before = self.stopping_reason
        yield
        if not trainer.is_global_zero:
            return
        improved = not torch.equal(self.best_score.cpu(), best_before.cpu())
        if improved:
            log.info(
                "%s %sd from %.3f to %.3f!",
                self._noun,
                self._verb,
                float(best_before),
                float(self.best_score),
            )
        elif self.wait_count != wait_before:
            log.info("%s did not %s for %d epoch(s)!", self._noun, self._verb, self.wait_count)
        # Report the stop once, on the check that made it (the wait count moved this time).
        if (
            trainer.should_stop
            and self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
            and self.wait_count != wait_before
        ):
            log.info(
                "Stopping training process because %s value did not %s for %d epochs!",
                self._noun.lower(),
                self._verb,
                self.wait_count,
            )
        # Any other rule (a non-finite value, a threshold) says which, in Lightning's words.
        elif (
            trainer.should_stop
            and self.stopping_reason != reason_before
            and self.stopping_reason != EarlyStoppingReason.PATIENCE_EXHAUSTED
        ):
            log.warning("Stopping training process: %s", self.stopping_reason_message)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning's check (when it runs at train epoch end), then the paper's message."""
        with self._narrate(trainer):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning's check (when it runs after validation), then the paper's message."""
        with self._narrate(trainer):
            super().on_validation_end(trainer, pl_module)
