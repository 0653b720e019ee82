"""Plain progress for logs: one line per epoch, and a few per prediction, instead of progress bars.

A progress bar redraws itself with carriage returns; written to a file or a pipe, each epoch
leaves thousands of characters on one "line". When stdout is not a terminal, ``litlab`` turns
the bar off and adds :class:`EpochLines`, which writes one line per epoch (its progress-bar
metrics and time) and a line per tenth of a prediction run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """``"train/loss=0.5120 val/acc=0.7310"``: scalar metrics by name, per-step values left out."""
    parts = []
    for name in sorted(metrics):
        if name.endswith("_step"):
            continue
        value = metrics[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        parts.append(f"{name.removesuffix('_epoch')}={number:.4g}")
    return " ".join(parts)


class EpochLines(Callback):
    """Write one plain line per training epoch, and progress lines while predicting.

    An epoch's line is written when the next epoch starts (or the fit ends), so it holds the
    metrics the LightningModule logs in its own ``on_train_epoch_end`` too, e.g.::

        epoch 3  train/loss=0.512 val/acc=0.731 val/loss=0.601  (12.4 s)

    Epochs are numbered from 0, as in ``metrics.csv`` and checkpoints. Only rank 0 writes.

    Args:
        stream: Where lines go; ``None`` is ``sys.stdout`` at the time of writing.
        predict_lines: Progress lines per prediction run (one per this fraction of its batches).
    """

    def __init__(self, stream: TextIO | None = None, predict_lines: int = 10) -> None:
        self.stream = stream
        self.predict_lines = max(1, predict_lines)
        self._epoch: int | None = None
        self._start = 0.0
        self._predict_start = 0.0

    def _write(self, trainer: pl.Trainer, line: str) -> None:
        if not trainer.is_global_zero:
            return
        stream = self.stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def _finish_epoch(self, trainer: pl.Trainer) -> None:
        if self._epoch is None:
            return
        seconds = time.monotonic() - self._start
        metrics = format_metrics(trainer.progress_bar_metrics)
        self._write(trainer, f"epoch {self._epoch}  {metrics}  ({seconds:.1f} s)")
        self._epoch = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish_epoch(trainer)
        self._epoch = trainer.current_epoch
        self._start = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish_epoch(trainer)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._predict_start = time.monotonic()

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        total = trainer.num_predict_batches[dataloader_idx]
        done = batch_idx + 1
        if not math.isfinite(total) or total <= 0:
            return
        step = max(1, math.ceil(total / self.predict_lines))
        if done % step == 0 or done == total:
            seconds = time.monotonic() - self._predict_start
            self._write(
                trainer,
                f"predict  {done}/{int(total)} batches ({100 * done / total:.0f} %)  "
                f"({seconds:.1f} s)",
            )
