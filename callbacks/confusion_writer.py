"""Write a run's test confusion matrix and what its DataModule says about the data, as JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning.pytorch as pl
from litlab.callbacks.run_files import CONFUSION_FILE
from litlab.datamodules.cache import write_atomically

log = logging.getLogger(__name__)


class TestConfusionWriter(pl.Callback):
    """Write the test confusion matrix and the data description to ``<run>/test_confusion.json``.

    Reads the module's ``test_confusion`` metric (``ClassificationModule`` has one; it is synced
    across processes) at the end of the test epoch, before the module's own hook resets it.
    """

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metric = getattr(pl_module, "test_confusion", None)
        if metric is None:
            log.warning(
                "%s has no test_confusion metric; nothing written", type(pl_module).__name__
            )
            return
        matrix = metric.compute().cpu().numpy().astype(int)
        if not trainer.is_global_zero:
            return
        describe = getattr(trainer.datamodule, "describe", None)
        payload = {
            "classes": list(getattr(pl_module, "class_names", [])),
            "matrix": matrix.tolist(),
            "metrics": {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith("test/") and v.numel() == 1
            },
            "data": describe() if callable(describe) else {},
            "fast_dev_run": bool(trainer.fast_dev_run),
        }
        text = json.dumps(payload, indent=2)
        path = write_atomically(
            Path(trainer.default_root_dir) / CONFUSION_FILE, lambda tmp: tmp.write_text(text)
        )
        log.info("test confusion matrix written to %s", path)
